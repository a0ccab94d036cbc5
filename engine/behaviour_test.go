package engine_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
)

// run runs a playbook (YAML text, saved as test.yaml) in mode and returns
// the result; the named probe keys start from zero.
func run(t *testing.T, text string, mode engine.Mode, files map[string]string, keys ...string) *enginetest.Result {
	t.Helper()
	for _, k := range keys {
		resetProbe(k)
	}
	return enginetest.Run(t, text, enginetest.Options{Mode: mode, Files: files})
}

func wantExit(t *testing.T, res *enginetest.Result, code int) {
	t.Helper()
	if got := engine.ExitCode(res.Err); got != code {
		t.Fatalf("exit code %d, want %d; error: %v\nlog:\n%s", got, code, res.Err, res.Log)
	}
}

func wantRuns(t *testing.T, key string, n int64) {
	t.Helper()
	if got := probe(key).runs.Load(); got != n {
		t.Errorf("probe %s ran %d times, want %d", key, got, n)
	}
}

func wantIn(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}

// TestGuardRefusedBeforeChange: a precondition that does not hold before
// anything changed stops the run with exit 3; the error names the guard's
// file:line:col, its message and the values it read, and the step never
// runs.
func TestGuardRefusedBeforeChange(t *testing.T) {
	const pb = `name: refuse
params:
  threshold: {type: int, default: 45}
steps:
  - name: Step 01 measure
    set: {usage: "60"}
  - name: Step 02 change
    pre:
      - that: usage < threshold
        message: "usage {{ usage }}% is over {{ threshold }}%"
    testprobe: {key: refuse, changes: true}
`
	res := run(t, pb, engine.ModeRun, nil, "refuse")
	wantExit(t, res, engine.ExitRefused)
	var re *engine.RefusedError
	if !errors.As(res.Err, &re) {
		t.Fatalf("want a RefusedError, got %T: %v", res.Err, res.Err)
	}
	if re.Pos.Line != 9 || re.Pos.Col != 15 || !strings.HasSuffix(re.Pos.File, "test.yaml") {
		t.Errorf("refusal at %s, want test.yaml:9:15 (the guard)", re.Pos)
	}
	wantIn(t, "error", res.Err.Error(), "test.yaml:9:15: refused by guard `usage < threshold` of step \"Step 02 change\"",
		"usage 60% is over 45%", "(saw threshold=45, usage=60)")
	wantIn(t, "log", res.Log, "Step 02 change refused")
	wantRuns(t, "refuse", 0)
}

// TestRefusalAfterChangeIsAborted: once a state-changing step ran, a
// refusal is no longer "nothing changed" (exit 3) but an aborted run (exit
// 4): the operator must look at a half-done change.
func TestRefusalAfterChangeIsAborted(t *testing.T) {
	const pb = `name: refuse late
steps:
  - name: Step 01 change
    when: "true"
    testprobe: {key: late, changes: true}
  - name: Step 02 check
    assert: {that: "1 > 2", message: too late}
`
	res := run(t, pb, engine.ModeRun, nil, "late")
	wantExit(t, res, engine.ExitAborted)
	wantIn(t, "error", res.Err.Error(), "refused by guard `1 > 2`", "too late")
	wantRuns(t, "late", 1)
}

// TestFailingStep: a failing step stops the run with exit 1 and an error
// naming the step's position; later steps do not run.
func TestFailingStep(t *testing.T) {
	const pb = `name: fail
steps:
  - name: Step 01 fails
    testprobe: {key: fail, fail: true}
  - name: Step 02 never
    testprobe: {key: fail-next}
`
	res := run(t, pb, engine.ModeRun, nil, "fail", "fail-next")
	wantExit(t, res, engine.ExitStepFailed)
	var se *engine.StepError
	if !errors.As(res.Err, &se) || se.Pos.Line != 3 || se.Pos.Col != 5 {
		t.Fatalf("want a StepError at line 3, got %T: %v", res.Err, res.Err)
	}
	wantIn(t, "error", res.Err.Error(), `step "Step 01 fails" failed`, "probe fail failed on run 1 as told")
	wantIn(t, "log", res.Log, "[ERROR] Step 01 fails failed")
	wantRuns(t, "fail", 1)
	wantRuns(t, "fail-next", 0)
	if engine.ExitCode(nil) != engine.ExitOK {
		t.Error("ExitCode(nil) is not 0")
	}
}

// TestWhenSkip: a false `when` skips the step, logs why with the values it
// read, and records steps.<id>.skipped.
func TestWhenSkip(t *testing.T) {
	const pb = `name: skip
vars: {x: 0}
steps:
  - id: maybe
    name: Step 01 maybe
    when: x > 1
    testprobe: {key: skip, changes: true}
  - assert:
      that: steps.maybe.skipped && !steps.maybe.ok
      message: "skipped={{ steps.maybe.skipped }}"
`
	res := run(t, pb, engine.ModeRun, nil, "skip")
	wantExit(t, res, engine.ExitOK)
	wantIn(t, "log", res.Log, "Step 01 maybe skipped: `when: x > 1` is false (x=0)")
	wantRuns(t, "skip", 0)
}

// TestUntilCounter: `until` re-runs a step until it holds; the counter a
// set step increments reaches exactly the bound.
func TestUntilCounter(t *testing.T) {
	const pb = `name: poll
vars: {n: 0}
steps:
  - name: Step 01 count up
    set: {n: "n + 1"}
    until: n >= 3
    retries: 10
    interval: 10ms
  - assert: {that: n == 3, message: "n is {{ n }}"}
`
	res := run(t, pb, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitOK)
	wantIn(t, "log", res.Log, "`n >= 3` holds after 3 attempts", "waiting (attempt 1/11", "waiting (attempt 2/11")
	if strings.Contains(res.Log, "attempt 3/11") {
		t.Errorf("waited after the condition held:\n%s", res.Log)
	}
}

// TestUntilGivesUp: when retries run out the step fails with the last
// values the condition saw.
func TestUntilGivesUp(t *testing.T) {
	const pb = `name: poll
vars: {n: 0}
steps:
  - name: Step 01 count up
    set: {n: "n + 1"}
    until: n > 100
    retries: 2
    interval: 10ms
  - testprobe: {key: gaveup-next}
`
	res := run(t, pb, engine.ModeRun, nil, "gaveup-next")
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "gave up after 3 attempts", "`until: n > 100` still false (n=3)")
	wantRuns(t, "gaveup-next", 0)
}

// TestUntilTimeout: with only a timeout, polling stops at the deadline and
// the error says what it waited for.
func TestUntilTimeout(t *testing.T) {
	const pb = `name: poll
vars: {n: 0}
steps:
  - name: Step 01 never true
    set: {n: "n + 1"}
    until: n < 0
    timeout: 100ms
    interval: 10ms
`
	res := run(t, pb, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "timed out after", "(timeout: 100ms) waiting for `until: n < 0` still false")
}

// TestHintOnFailure: a failed step's error ends with its rendered `hint:`
// (what to do); a guard's refusal does not get it, and a step that
// succeeds never renders it.
func TestHintOnFailure(t *testing.T) {
	const pb = `name: hint
vars: {n: 0, host: 127.0.0.9}
steps:
  - name: Step 01 fine
    set: {n: "n + 1"}
    hint: "{{ n / 0 }}"
  - name: Step 02 never true
    set: {n: "n + 1"}
    until: n < 0
    timeout: 50ms
    interval: 10ms
    hint: "kill what is left on {{ host }} by hand, then resume"
`
	res := run(t, pb, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "Step 02 never true", "still false", "; what to do: kill what is left on 127.0.0.9 by hand, then resume")

	const refused = `name: hint
vars: {n: 0}
steps:
  - name: Step 01 refused
    pre: [{that: "n > 0", message: "n is not positive"}]
    set: {n: 1}
    hint: never shown
`
	res = run(t, refused, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitRefused)
	if strings.Contains(res.Err.Error(), "never shown") {
		t.Errorf("a refusal carries the hint: %v", res.Err)
	}
}

// TestRetriesOnFailure: a failing step is retried; it succeeds on the
// third run and the run goes on.
func TestRetriesOnFailure(t *testing.T) {
	const pb = `name: retry
steps:
  - name: Step 01 flaky
    testprobe: {key: flaky, fail_times: 2}
    retries: 3
    interval: 10ms
  - testprobe: {key: flaky-next}
`
	res := run(t, pb, engine.ModeRun, nil, "flaky", "flaky-next")
	wantExit(t, res, engine.ExitOK)
	wantRuns(t, "flaky", 3)
	wantRuns(t, "flaky-next", 1)
	wantIn(t, "log", res.Log, "waiting (attempt 1/4", "probe flaky failed on run 1 as told")

	resetProbe("flaky")
	res = run(t, strings.Replace(pb, "retries: 3", "retries: 1", 1), engine.ModeRun, nil, "flaky", "flaky-next")
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "still failing after 2 attempts", "probe flaky failed on run 2 as told")
	wantRuns(t, "flaky-next", 0)
}

// TestStepTimeout: a step that does not finish within its timeout fails.
func TestStepTimeout(t *testing.T) {
	const pb = `name: timeout
steps:
  - name: Step 01 waits for company that never comes
    testprobe: {key: lonely, await: 5}
    timeout: 50ms
`
	res := run(t, pb, engine.ModeRun, nil, "lonely")
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "Step 01 waits for company that never comes", "deadline exceeded")
}

// TestRescueAndAlways: a failing step runs its rescue then its always
// section (both see the error), and the run still fails; later steps do not
// run. On success neither rescue runs and always sees an empty error.
func TestRescueAndAlways(t *testing.T) {
	const pb = `name: rescue
steps:
  - name: Step 01 fails
    testprobe: {key: rs-main, fail: FAIL}
    rescue:
      - testprobe: {key: rs-rescue, msg: "rescuing after: {{ error }}"}
    always:
      - testprobe: {key: rs-always, msg: "always sees: [{{ error }}]"}
  - testprobe: {key: rs-next}
`
	keys := []string{"rs-main", "rs-rescue", "rs-always", "rs-next"}
	res := run(t, strings.Replace(pb, "FAIL", "true", 1), engine.ModeRun, nil, keys...)
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), `step "Step 01 fails" failed`, "probe rs-main failed on run 1 as told")
	wantIn(t, "log", res.Log, "rescuing after: ", "probe rs-main failed on run 1 as told", "always sees: [", "rescue section done")
	wantRuns(t, "rs-rescue", 1)
	wantRuns(t, "rs-always", 1)
	wantRuns(t, "rs-next", 0)
	if i, j := strings.Index(res.Log, "rescuing after"), strings.Index(res.Log, "always sees"); i < 0 || j < i {
		t.Errorf("always ran before rescue:\n%s", res.Log)
	}

	res = run(t, strings.Replace(pb, "FAIL", "false", 1), engine.ModeRun, nil, keys...)
	wantExit(t, res, engine.ExitOK)
	wantRuns(t, "rs-rescue", 0)
	wantRuns(t, "rs-always", 1)
	wantRuns(t, "rs-next", 1)
	wantIn(t, "log", res.Log, "always sees: []")
}

// TestRescueFailsToo: when the rescue fails as well, both errors are
// reported.
func TestRescueFailsToo(t *testing.T) {
	const pb = `name: rescue
steps:
  - name: Step 01 fails
    testprobe: {key: rf-main, fail: true}
    rescue:
      - testprobe: {key: rf-rescue, fail: true}
`
	res := run(t, pb, engine.ModeRun, nil, "rf-main", "rf-rescue")
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "probe rf-main failed", "and its rescue failed", "probe rf-rescue failed")
}

// TestParallelDegree: a for_each group runs at most `parallel:` items at
// once and does reach that degree; without `parallel:` items run one at a
// time. Parallel items log under their own worker ids.
func TestParallelDegree(t *testing.T) {
	for _, tc := range []struct {
		parallel string
		degree   int64
	}{{"parallel: 3", 3}, {"parallel: 2", 2}, {"", 1}, {`parallel: "{{ degree }}"`, 4}} {
		key := "par" + strconv.FormatInt(tc.degree, 10)
		pb := `name: par
params: {degree: {type: int, default: 4}}
vars: {items: [a, b, c, d, e, f, g]}
steps:
  - name: fan out
    for_each: items
    ` + tc.parallel + `
    steps:
      - name: "item {{ item }}"
        testprobe: {key: ` + key + `, await: ` + strconv.FormatInt(tc.degree, 10) + `, msg: "working on {{ item }} #{{ index }}"}
    register: per_item
  - assert:
      that: len(per_item) == 7 && all(per_item, .ok)
`
		res := run(t, pb, engine.ModeRun, nil, key)
		wantExit(t, res, engine.ExitOK)
		wantRuns(t, key, 7)
		if got := probe(key).max.Load(); got != tc.degree {
			t.Errorf("%q: at most %d items ran at once, want %d", tc.parallel, got, tc.degree)
		}
		ids := map[string]bool{}
		for _, m := range regexp.MustCompile(`\[ID:(\d+)\] \[ INFO\] working on`).FindAllStringSubmatch(res.Log, -1) {
			ids[m[1]] = true
		}
		if tc.degree > 1 && len(ids) != 7 || tc.degree == 1 && len(ids) != 1 {
			t.Errorf("%q: items logged under worker ids %v", tc.parallel, ids)
		}
	}
}

// TestParallelTemplateOutOfRange: a templated parallel: outside 1–256
// fails the group before any item runs, naming the value and the position.
func TestParallelTemplateOutOfRange(t *testing.T) {
	const pb = `name: par range
params: {degree: {type: int, default: 4}}
steps:
  - for_each: "[1, 2, 3]"
    parallel: "{{ degree }}"
    steps:
      - testprobe: {key: pr}
`
	resetProbe("pr")
	res := enginetest.Run(t, pb, enginetest.Options{Mode: engine.ModeRun, Vars: map[string]string{"degree": "0"}})
	wantExit(t, res, engine.ExitStepFailed)
	wantRuns(t, "pr", 0)
	wantIn(t, "error", res.Err.Error(), ":5:15: parallel: 0 is not a whole number from 1 to 256")
}

// TestParallelFailureStopsNewItems: after an item fails no new item starts
// and the group fails with that item's error.
func TestParallelFailureStopsNewItems(t *testing.T) {
	const pb = `name: par fail
vars: {items: [1, 2, 3, 4, 5, 6]}
steps:
  - for_each: items
    steps:
      - testprobe: {key: pf, fail: true}
`
	res := run(t, pb, engine.ModeRun, nil, "pf")
	wantExit(t, res, engine.ExitStepFailed)
	wantRuns(t, "pf", 1)
}

// TestIncludeWith: an included playbook gets its parameters from `with:`
// (expressions in the caller's scope) and its defaults; what it sets comes
// back through `register:`; its log lines name the included file and line.
func TestIncludeWith(t *testing.T) {
	const child = `name: child
params:
  limit: {type: int, required: true}
  tag: {type: string, default: none}
steps:
  - testprobe: {key: inc, msg: "limit={{ limit }} tag={{ tag }}"}
  - set: {doubled: limit * 2}
`
	const pb = `name: parent
vars: {base: 41}
steps:
  - name: Step 01 include
    include: child.yaml
    with: {limit: "{{ base + 1 }}", tag: plain text}
    register: out
  - assert: {that: out.doubled == 84, message: "doubled is {{ out.doubled }}"}
`
	res := run(t, pb, engine.ModeRun, map[string]string{"child.yaml": child}, "inc")
	wantExit(t, res, engine.ExitOK)
	wantRuns(t, "inc", 1)
	if !regexp.MustCompile(`\[ *child\.yaml: +6\] \[ID:1\] \[ INFO\] limit=42 tag=plain text`).MatchString(res.Log) {
		t.Errorf("log lacks the child's line 6 with limit=42 tag=plain text:\n%s", res.Log)
	}
}

// TestPlanVerdicts: a plan executes nothing and lists WILL RUN, WILL SKIP
// (with the reason) and UNKNOWN (a condition on a value only a run knows),
// then the summary line. A dry run executes the read-only step for real,
// which turns the UNKNOWN into WILL RUN, and still changes nothing.
func TestPlanVerdicts(t *testing.T) {
	const pb = `name: plan
vars: {x: 1}
steps:
  - name: Step 01 read
    testprobe: {key: pl-read, msg: read}
    register: r
  - name: Step 02 change
    when: x == 1
    testprobe: {key: pl-change, changes: true, msg: "change {{ x }}"}
  - name: Step 03 skipped
    when: x == 2
    testprobe: {key: pl-skip, changes: true}
  - name: Step 04 depends on the read
    when: r.n > 0
    testprobe: {key: pl-unknown, changes: true}
`
	keys := []string{"pl-read", "pl-change", "pl-skip", "pl-unknown"}
	res := run(t, pb, engine.ModePlan, nil, keys...)
	wantExit(t, res, engine.ExitOK)
	for _, k := range keys {
		wantRuns(t, k, 0)
	}
	wantIn(t, "plan", res.Out,
		"[WILL RUN ] test.yaml:4 Step 01 read — read-only",
		"[WILL RUN ] test.yaml:7 Step 02 change\n              on probe pl-change:\n                change 1\n",
		"[WILL SKIP] test.yaml:10 Step 03 skipped — `when: x == 2` is false (x=1)",
		"[UNKNOWN  ] test.yaml:13 Step 04 depends on the read — `when: r.n > 0` depends on r",
		"Summary: 2 change(s) that `run` would make, 1 step(s) UNKNOWN until a real run.\n")
	verdicts := map[string]string{}
	for _, v := range res.Runner.Verdicts() {
		verdicts[v.Step] = v.Verdict
	}
	want := map[string]string{"Step 01 read": "WILL RUN", "Step 02 change": "WILL RUN", "Step 03 skipped": "WILL SKIP", "Step 04 depends on the read": "UNKNOWN"}
	for k, v := range want {
		if verdicts[k] != v {
			t.Errorf("plan verdict of %q is %q, want %q", k, verdicts[k], v)
		}
	}

	res = run(t, pb, engine.ModeDryRun, nil, keys...)
	wantExit(t, res, engine.ExitOK)
	wantRuns(t, "pl-read", 1)
	wantRuns(t, "pl-change", 0)
	wantRuns(t, "pl-unknown", 0)
	wantIn(t, "dry run", res.Out,
		"[RUNS     ] test.yaml:4 Step 01 read — read-only: executed for real",
		"[WILL RUN ] test.yaml:7 Step 02 change",
		"[WILL SKIP] test.yaml:10 Step 03 skipped",
		"[WILL RUN ] test.yaml:13 Step 04 depends on the read",
		"Summary: 2 change(s) that `run` would make.\n")
}

// TestConfirmWithoutTerminal: a step that needs confirmation is refused
// (exit 3) when there is no terminal and no --yes, and does not run.
func TestConfirmWithoutTerminal(t *testing.T) {
	const pb = `name: confirm
steps:
  - name: Step 01 drop
    when: "true"
    confirm: "drop it"
    testprobe: {key: confirm, changes: true}
`
	res := run(t, pb, engine.ModeRun, nil, "confirm")
	wantExit(t, res, engine.ExitRefused)
	wantIn(t, "error", res.Err.Error(), `type "drop it"`, "pass --yes")
	wantRuns(t, "confirm", 0)
}

// logLineRE is the seed tool's line layout with the playbook's file:line.
var logLineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d \[ *[^:\]]+\.yaml: *\d+\] \[ID:\d+\] \[ ?(DEBUG|INFO|WARN|ERROR)\] .+$`)

// TestLogLineFormat runs a playbook with the text formatter: every line
// has the seed tool's layout, and a step's lines carry the step's own line
// in the playbook.
func TestLogLineFormat(t *testing.T) {
	const pb = `name: logs
vars: {who: world}
steps:
  - name: Step 01 debug
    log: {msg: "hello {{ who }} at debug", level: debug}
  - name: Step 02 info
    log: {msg: "hello at info"}

  - name: Step 03 warn
    log: {msg: "hello at warn", level: warn}
  - name: Step 04 error
    log: {msg: "hello at error", level: error}
  - name: Step 05 group
    for_each: "[1, 2]"
    parallel: 2
    steps:
      - name: "Step 05.{{ item }}"
        log: {msg: "item {{ item }}"}
`
	res := run(t, pb, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitOK)
	lines := strings.Split(strings.TrimRight(res.Log, "\n"), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d log lines:\n%s", len(lines), res.Log)
	}
	for _, l := range lines {
		if !logLineRE.MatchString(l) {
			t.Errorf("log line does not match the layout: %q", l)
		}
	}
	for msg, line := range map[string]int{"hello world at debug": 4, "hello at info": 6, "hello at warn": 9, "hello at error": 11, "item 1": 17, "item 2": 17} {
		re := regexp.MustCompile(`\[ *test\.yaml: *` + strconv.Itoa(line) + `\] \[ID:\d+\] \[ ?[A-Z]+\] ` + regexp.QuoteMeta(msg) + `$`)
		found := false
		for _, l := range lines {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("no log line %q at playbook line %d:\n%s", msg, line, res.Log)
		}
	}
	wantIn(t, "log", res.Log, "[DEBUG] hello world at debug", "[ WARN] hello at warn", "[ERROR] hello at error", "[ INFO] Step 02 info success")
}

// TestNullValues: a YAML null (~, null or nothing) in vars is nil in
// expressions, and renders as nothing in text.
func TestNullValues(t *testing.T) {
	const pb = `name: nulls
vars: {a: ~, b: null, c: , d: "~"}
steps:
  - log: {msg: "[{{ a }}] [{{ b }}] [{{ c }}] [{{ d }}]"}
  - assert:
      that: a == nil && b == nil && c == nil && d == "~"
`
	res := run(t, pb, engine.ModeRun, nil)
	wantExit(t, res, engine.ExitOK)
	wantIn(t, "log", res.Log, "[ INFO] [] [] [] [~]\n")
}

// TestTemplatedTimeoutAndInterval: timeout: and interval: may name a
// duration parameter ({{ wait }}): the bound follows the parameter (here
// set with --var), and a value that is not a duration fails naming it.
func TestTemplatedTimeoutAndInterval(t *testing.T) {
	const pb = `name: timeout
params:
  wait: {type: duration, default: 10m}
  every: {type: string, default: 10ms}
steps:
  - name: Step 01 waits for company that never comes
    testprobe: {key: lonely-t, await: 5}
    timeout: "{{ wait }}"
  - name: Step 02 flaky
    testprobe: {key: flaky-t, fail_times: 1}
    retries: 2
    interval: "{{ every }}"
`
	resetProbe("lonely-t")
	res := enginetest.Run(t, pb, enginetest.Options{Mode: engine.ModeRun, Vars: map[string]string{"wait": "50ms"}})
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), "Step 01 waits for company that never comes", "deadline exceeded")

	resetProbe("flaky-t")
	second := pb[:strings.Index(pb, "  - name: Step 01")] + pb[strings.Index(pb, "  - name: Step 02"):]
	res = enginetest.Run(t, second, enginetest.Options{Mode: engine.ModeRun, Vars: map[string]string{"every": "soon"}})
	wantExit(t, res, engine.ExitStepFailed)
	wantIn(t, "error", res.Err.Error(), `interval: "soon" is not a duration such as 500ms, 30s or 5m`)

	loadFail(t, "name: t\nsteps:\n  - testprobe: {key: x}\n    until: result.ok\n    interval: \"{{ 1 }}\"\n", nil, "`until:` needs a bound")
	loadOK(t, "name: t\nparams:\n  w: {type: duration, default: 1s}\nsteps:\n  - testprobe: {key: x}\n    until: \"true\"\n    timeout: \"{{ w }}\"\n", nil)
}
