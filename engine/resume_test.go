package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
)

// attempt runs text once with a memory journal, continuing the events of
// earlier (a resume) when given; it returns the result and all events.
func attempt(t *testing.T, path string, earlier []engine.ResumeEvent, opts ...func(*engine.ResumeState)) (*enginetest.Result, []engine.ResumeEvent) {
	t.Helper()
	j := &enginetest.Journal{}
	o := enginetest.Options{Mode: engine.ModeRun, Journal: j}
	if earlier != nil {
		o.Resume = engine.BuildResumeState(earlier)
		for _, f := range opts {
			f(o.Resume)
		}
	}
	res := enginetest.RunPlaybook(t, enginetest.Load(t, path), o)
	return res, append(append([]engine.ResumeEvent(nil), earlier...), j.Events()...)
}

func runs(key string) int { return int(probe(key).runs.Load()) }

func countEv(evs []engine.ResumeEvent, event string) int {
	n := 0
	for _, e := range evs {
		if e.Event == event {
			n++
		}
	}
	return n
}

// TestResumeRestoresFinishedSteps: a finished state-changing step is not run
// again and its output comes back; a failed one declared `resume: rerun`
// runs again.
func TestResumeRestoresFinishedSteps(t *testing.T) {
	for _, k := range []string{"ra", "rb"} {
		resetProbe(k)
	}
	path := enginetest.Write(t, `name: r
steps:
  - name: a
    testprobe: {key: ra, changes: true, msg: first}
    register: a
  - name: b
    testprobe: {key: rb, changes: true, fail_times: 1}
    resume: rerun
  - name: c
    assert: {that: a.msg == "first", message: "a's output was not restored"}
`, nil)
	res, evs := attempt(t, path, nil)
	wantExit(t, res, 1)
	res, evs = attempt(t, path, evs)
	wantExit(t, res, 0)
	if runs("ra") != 1 || runs("rb") != 2 {
		t.Errorf("runs: a %d (want 1), b %d (want 2)", runs("ra"), runs("rb"))
	}
	if n := countEv(evs, "step_restored"); n != 1 {
		t.Errorf("%d step_restored events, want 1", n)
	}
	if !strings.Contains(res.Log, "running it again (the step is declared idempotent (resume: rerun))") {
		t.Errorf("the log does not say why b runs again:\n%s", res.Log)
	}
}

// TestResumeUnsureStops: without a way to tell, resume stops with exit 3
// naming the key; the operator's --done answer goes on without running it.
func TestResumeUnsureStops(t *testing.T) {
	for _, k := range []string{"ua", "ub"} {
		resetProbe(k)
	}
	path := enginetest.Write(t, `name: u
steps:
  - name: a
    testprobe: {key: ua, changes: true, fail_times: 1}
  - name: b
    testprobe: {key: ub, changes: true}
`, nil)
	res, evs := attempt(t, path, nil)
	wantExit(t, res, 1)
	res, _ = attempt(t, path, evs)
	wantExit(t, res, 3)
	if !strings.Contains(res.Err.Error(), "--done 'test.yaml:3:5'") || runs("ua") != 1 {
		t.Fatalf("resume without a judgement: %v (a ran %d times)", res.Err, runs("ua"))
	}
	res, _ = attempt(t, path, evs, func(rs *engine.ResumeState) { rs.Done["test.yaml:3:5"] = true })
	wantExit(t, res, 0)
	if runs("ua") != 1 || runs("ub") != 1 {
		t.Errorf("after --done: a ran %d times (want 1), b %d (want 1)", runs("ua"), runs("ub"))
	}
}

// TestResumeRestartsAnItem: in a `resume: restart` group only the item
// interrupted inside starts over; finished items are not run again.
func TestResumeRestartsAnItem(t *testing.T) {
	for _, k := range []string{"g1", "gy"} {
		resetProbe(k)
	}
	path := enginetest.Write(t, `name: g
steps:
  - name: items
    for_each: '["x", "y"]'
    resume: restart
    steps:
      - testprobe: {key: g1, changes: true}
      - when: item == "y"
        testprobe: {key: gy, changes: true, fail_times: 1}
`, nil)
	res, evs := attempt(t, path, nil)
	wantExit(t, res, 1)
	res, _ = attempt(t, path, evs)
	wantExit(t, res, 0)
	if runs("g1") != 3 || runs("gy") != 2 {
		t.Errorf("runs: g1 %d (want 3: x once, y twice), gy %d (want 2)", runs("g1"), runs("gy"))
	}
	if !strings.Contains(res.Log, `item 1 (y) was interrupted in an earlier attempt: it starts over`) {
		t.Errorf("the log does not say the item starts over:\n%s", res.Log)
	}
}

// TestResumeAfterRescue: a group whose rescue ran starts over from its first
// step; a rescue cut short runs again first.
func TestResumeAfterRescue(t *testing.T) {
	for _, k := range []string{"s1", "s2", "resc"} {
		resetProbe(k)
	}
	path := enginetest.Write(t, `name: s
steps:
  - name: grp
    rescue:
      - testprobe: {key: resc, changes: true}
    steps:
      - testprobe: {key: s1, changes: true}
      - testprobe: {key: s2, changes: true, fail_times: 2}
`, nil)
	res, evs := attempt(t, path, nil)
	wantExit(t, res, 1)
	if runs("resc") != 1 {
		t.Fatalf("the rescue ran %d times", runs("resc"))
	}
	// the rescue finished: the group starts over, the rescue is not repeated
	res, evs2 := attempt(t, path, evs)
	wantExit(t, res, 1) // s2 fails a second time, as told
	if runs("s1") != 2 || runs("resc") != 2 {
		t.Errorf("after a finished rescue: s1 %d (want 2), rescue %d (want 2: the new failure's)", runs("s1"), runs("resc"))
	}
	// cut the journal right after the second rescue's step started (flow
	// killed inside the rescue): the rescue runs again from its start, its
	// earlier step is not judged as an interrupted change
	cut := 0
	for i, e := range evs2 {
		if k, _ := e.Fields["key"].(string); e.Event == "step_started" && strings.Contains(k, " rescue > ") {
			cut = i + 1
		}
	}
	res, _ = attempt(t, path, evs2[:cut])
	wantExit(t, res, 0)
	if runs("resc") != 3 || runs("s1") != 3 || runs("s2") != 3 {
		t.Errorf("after a rescue cut short: rescue %d (want 3), s1 %d (want 3), s2 %d (want 3)", runs("resc"), runs("s1"), runs("s2"))
	}
}

// TestRestoredNumbersAreWhole: a JSON journal gives numbers back as
// json.Number (or float64); a restored output has whole numbers as int again, so a large one
// renders as it did (4000000000, not 4e+09).
func TestRestoredNumbersAreWhole(t *testing.T) {
	rs := engine.BuildResumeState([]engine.ResumeEvent{{Seq: 1, Event: "step_finished", Fields: map[string]any{
		"key": "k", "output": map[string]any{"port": float64(16315), "id": json.Number("4000000000"), "ratio": json.Number("0.5"),
			"rows": []any{map[string]any{"n": json.Number("3")}}}}}})
	out := rs.Steps["k"].Output
	if out["port"] != 16315 || out["id"] != 4000000000 || out["ratio"] != 0.5 || out["rows"].([]any)[0].(map[string]any)["n"] != 3 {
		t.Errorf("restored output = %#v", out)
	}
}

// TestResumeAfterNoChangeReadsAgain: when the earlier attempts sent no
// change (refused or interrupted before the first one), a resumed run runs
// its read-only steps again instead of restoring answers that may be stale
// (verify's checks of an hour ago); once a change was sent, finished reads
// are restored as before, so later steps see what the change was based on.
func TestResumeAfterNoChangeReadsAgain(t *testing.T) {
	for _, k := range []string{"fr-read", "fr-change"} {
		resetProbe(k)
	}
	path := enginetest.Write(t, `name: r
steps:
  - name: read
    testprobe: {key: fr-read}
  - name: change
    testprobe: {key: fr-change, changes: true, fail_times: 1}
    resume: rerun
`, nil)
	// the first attempt is refused before the change (its guard holds only
	// with go=true, given to the resumed run)
	guarded := enginetest.Write(t, `name: r
params:
  go: {type: bool, default: false}
steps:
  - name: read
    testprobe: {key: fr-read}
  - name: change
    pre: go
    testprobe: {key: fr-change, changes: true}
`, nil)
	res, evs := attempt(t, guarded, nil)
	wantExit(t, res, engine.ExitRefused)
	o := enginetest.Options{Mode: engine.ModeRun, Journal: &enginetest.Journal{}, Resume: engine.BuildResumeState(evs), Vars: map[string]string{"go": "true"}}
	res = enginetest.RunPlaybook(t, enginetest.Load(t, guarded), o)
	wantExit(t, res, engine.ExitOK)
	if runs("fr-read") != 2 {
		t.Errorf("the read ran %d times, want 2: after an attempt that changed nothing it runs again", runs("fr-read"))
	}

	for _, k := range []string{"fr-read", "fr-change"} {
		resetProbe(k)
	}
	res, evs = attempt(t, path, nil)
	wantExit(t, res, 1)
	res, _ = attempt(t, path, evs)
	wantExit(t, res, 0)
	if runs("fr-read") != 1 {
		t.Errorf("the read ran %d times, want 1: after a change was sent it is restored", runs("fr-read"))
	}
}

// TestNoRescuePastNoReturn: a group's rescue runs for a failure before the
// point of no return inside it, not after it: the run ends failed with the
// point's message, the journal has rescue_skipped, and a resumed run that
// finds the point done (restored) and fails again still does not rescue;
// it finishes from the failed step, not from the group's start.
func TestNoRescuePastNoReturn(t *testing.T) {
	for _, k := range []string{"pn-before", "pn-open", "pn-after", "pn-resc"} {
		resetProbe(k)
	}
	const text = `name: pnr
steps:
  - name: grp
    rescue:
      - testprobe: {key: pn-resc, changes: true}
    steps:
      - testprobe: {key: pn-before, changes: true, fail_times: BEFORE}
      - name: open
        testprobe: {key: pn-open, changes: true}
        point_of_no_return: "run {{ run.id }}: writes may have landed; finish with flow resume"
      - testprobe: {key: pn-after, changes: true, fail_times: 2}
        resume: rerun
`
	// a failure before the point: the rescue runs
	res, _ := attempt(t, enginetest.Write(t, strings.Replace(text, "BEFORE", "1", 1), nil), nil)
	wantExit(t, res, 1)
	if runs("pn-resc") != 1 || runs("pn-open") != 0 {
		t.Fatalf("before the point: rescue ran %d time(s) (want 1), open %d (want 0)", runs("pn-resc"), runs("pn-open"))
	}
	resetProbe("pn-resc")
	resetProbe("pn-before")

	path := enginetest.Write(t, strings.Replace(text, "BEFORE", "0", 1), nil)
	res, evs := attempt(t, path, nil)
	wantExit(t, res, 1)
	if runs("pn-resc") != 0 {
		t.Errorf("past the point of no return the rescue ran %d time(s)", runs("pn-resc"))
	}
	wantIn(t, "error", res.Err.Error(), "past the point of no return the rescue does not run", "writes may have landed; finish with flow resume")
	skipped := false
	for _, e := range evs {
		if e.Event == "rescue_skipped" && e.Fields["why"] == "past the point of no return" {
			skipped = true
		}
	}
	if !skipped {
		t.Errorf("no rescue_skipped event with why %q in the journal", "past the point of no return")
	}
	// resumed: open is restored, pn-after fails once more, no rescue
	res, evs = attempt(t, path, evs)
	wantExit(t, res, 1)
	if runs("pn-resc") != 0 || runs("pn-open") != 1 || runs("pn-before") != 1 {
		t.Errorf("resumed: rescue %d (want 0), open %d (want 1), before %d (want 1)", runs("pn-resc"), runs("pn-open"), runs("pn-before"))
	}
	res, _ = attempt(t, path, evs)
	wantExit(t, res, 0)
	if runs("pn-after") != 3 || runs("pn-resc") != 0 {
		t.Errorf("the third attempt: after %d (want 3), rescue %d (want 0)", runs("pn-after"), runs("pn-resc"))
	}
}
