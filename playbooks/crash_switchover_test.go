package playbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/lab/drlab"
)

// The crash sweep of dr-switchover (issue #15): for every step boundary of
// a switchover (to=target, "switch") and of the way back (to=source,
// "back"), the real flow binary is SIGKILLed right after that step
// started, with the lab's writer following the primary, and the run is
// taken up with `flow resume`. The resumed run must end the switchover:
// the roles swapped, the DR link, replication and read-only flags those of
// the new roles; then the lab is switched back (after a "switch" point)
// and every row the writer got an OK for must be on every node.
// FLOW_CRASH_SWEEP, FLOW_CRASH_MATCH and FLOW_CRASH_SKIP select the points
// as for TestCrashSweep ("switch|back NAME KEY"); the sample in `go test`
// is four points around the point of no return.

// switchArgs is `flow run dr-switchover.yaml --var to=TO` on the lab.
func (h *harness) switchArgs(to, state string) []string {
	return []string{"run", filepath.Join(h.pbDir, "dr-switchover.yaml"), "-c", h.lab.IniPath(), "--var", "to=" + to,
		"--state-dir", state, "--log-format", "json", "--yes"}
}

// switchoverReference runs a switchover and the way back normally, with
// the writer running, and returns their kill points.
func (h *harness) switchoverReference(t *testing.T) (sw, back []killPoint) {
	t.Helper()
	h.ensureHealthy(t)
	ctx := context.Background()
	d := newCycleDirs(t)
	w := startFollower(h.lab)
	defer w.cancel()
	groups := map[string]string{}
	s := h.flow(ctx, h.switchArgs("target", d.state), nil)
	if s.Code != 0 {
		t.Fatalf("reference switchover: exit %d\n%s", s.Code, s.errorText())
	}
	b := h.flow(ctx, h.switchArgs("source", d.state), nil)
	if b.Code != 0 {
		t.Fatalf("reference switchover back: exit %d\n%s", b.Code, b.errorText())
	}
	w.stop(t)
	if err := dropFollowerRows(h.lab); err != nil {
		t.Fatal(err)
	}
	return killPoints("switch", s, groups), killPoints("back", b, groups)
}

// sampleSwitchPoints picks the sample: the freeze, the point of no return,
// the DR link's dataserver on the new primary, and opening it (the way back).
func sampleSwitchPoints(sw, back []killPoint) (out []killPoint, missing []string) {
	pick := func(what string, list []killPoint, ok func(killPoint) bool) {
		pickPoint(&out, &missing, what, list, ok)
	}
	byName := func(name string) func(killPoint) bool { return func(k killPoint) bool { return k.Name == name } }
	pick(`switch "Step 04 freeze the primary router"`, sw, byName("Step 04 freeze the primary router"))
	pick(`switch "Step 06 remove the DR link on the old primary"`, sw, byName("Step 06 remove the DR link on the old primary"))
	pick(`back "re-add the standby cluster dataserver"`, back, byName("re-add the standby cluster dataserver"))
	pick(`back "Step 10 the new primary takes writes"`, back, byName("Step 10 the new primary takes writes"))
	return out, missing
}

// TestCrashSweepSwitchover: the switchover's SIGKILL sweep (see the
// comment at the top of this file).
func TestCrashSweepSwitchover(t *testing.T) {
	h := newHarness(t)
	began := time.Now()
	sw, back := h.switchoverReference(t)
	var points []killPoint
	mode := os.Getenv("FLOW_CRASH_SWEEP")
	if mode == "full" {
		points = append(append(points, sw...), back...)
	} else {
		var missing []string
		points, missing = sampleSwitchPoints(sw, back)
		for _, m := range missing {
			t.Errorf("sample kill point %s: no step of that name in the reference run", m)
		}
		mode = "sample"
	}
	points = selectPoints(t, points, "FLOW_CRASH_MATCH", true)
	points = selectPoints(t, points, "FLOW_CRASH_SKIP", false)
	passed := 0
	for i, k := range points {
		t.Run(fmt.Sprintf("%s/%03d_%s", k.Playbook, k.Index, strings.ReplaceAll(k.label(), "/", "_")), func(t *testing.T) {
			res := h.switchTrial(t, k)
			status := "PASS"
			if !res.Passed {
				status = "FAIL"
				t.Errorf("kill point %s: %s", k, res.Failure)
				h.reset(t, "after the failed kill point "+k.String())
			} else {
				passed++
			}
			t.Logf("[%d/%d] %s %s in %s; %s", i+1, len(points), status, k, res.Took.Round(time.Second), strings.Join(res.Notes, "; "))
		})
	}
	t.Logf("switchover crash sweep (%s): %d kill points in the switch, %d in the way back; %d run, %d passed; %s in all",
		mode, len(sw), len(back), len(points), passed, time.Since(began).Round(time.Second))
}

// switchTrial runs one kill point: (after a normal switch for a "back"
// point) the switchover killed at the point's step and resumed, its end
// state checked, the lab switched back when needed, and every acknowledged
// row checked on every node.
func (h *harness) switchTrial(t *testing.T, k killPoint) (res trialResult) {
	h.ensureHealthy(t)
	began := time.Now()
	res.Point = k
	defer func() { res.Took = time.Since(began) }()
	fail := func(format string, args ...any) trialResult {
		res.Failure = fmt.Sprintf(format, args...)
		return res
	}
	ctx := context.Background()
	d := newCycleDirs(t)
	h.leaks = nil
	w := startFollower(h.lab)
	defer w.cancel()
	to, primaryAfter := "target", drlab.ClusterStandby
	if k.Playbook == "back" {
		if s := h.flow(ctx, h.switchArgs("target", d.state), nil); s.Code != 0 {
			return fail("the normal switch before the kill point: exit %d: %s", s.Code, s.errorText())
		}
		to, primaryAfter = "source", drlab.ClusterPrimary
	}
	r := h.flow(ctx, h.switchArgs(to, d.state), func(ev flowEvent, _ int) bool {
		return ev.Event == "step_started" && ev.Key == k.Key
	})
	if !r.Killed {
		return fail("the kill point was not reached: flow exited %d: %s", r.Code, r.errorText())
	}
	run, err := journal.Load(d.state, r.RunID)
	if err != nil {
		return fail("the killed run's journal: %v", err)
	}
	res.Notes = append(res.Notes, "at the kill: "+stepState(d.state, r.RunID, k.Key))
	if run.Status != journal.StatusSuccess {
		if run.Status != journal.StatusInterrupted {
			return fail("the killed run's journal says %q, want %q", run.Status, journal.StatusInterrupted)
		}
		if msg := h.resume(ctx, d.state, r.RunID, k.Key, &res); msg != "" {
			return fail("%s", msg)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	roles, err := h.lab.Roles(rctx)
	cancel()
	if err != nil || !roles.Known || roles.Primary != primaryAfter {
		return fail("after the resumed switchover the routers' roles are %+v (%v), want %s the primary", roles, err, primaryAfter)
	}
	if problems := waitHealthyAs(h.lab, primaryAfter); len(problems) > 0 {
		return fail("after the resumed switchover: %s", strings.Join(problems, "; "))
	}
	if k.Playbook == "switch" {
		if b := h.flow(ctx, h.switchArgs("source", d.state), nil); b.Code != 0 {
			return fail("the normal way back after the resumed switch: exit %d: %s", b.Code, b.errorText())
		}
	}
	fr := w.stop(t)
	res.Notes = append(res.Notes, fmt.Sprintf("writer: %d row(s), longest gap %s", fr.Rows, fr.LongestGap.Duration.Round(time.Millisecond)))
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rep, err := h.lab.Check(cctx, drlab.CheckOptions{Wait: checkWait, Acked: fr.Acked()})
	if err != nil || !rep.OK {
		return fail("after the trial the nodes differ or lack an acknowledged row: %v %v", err, rep)
	}
	if err := dropFollowerRows(h.lab); err != nil {
		return fail("%v", err)
	}
	if problems := waitHealthy(h.lab); len(problems) > 0 {
		return fail("the lab after the trial: %s", strings.Join(problems, "; "))
	}
	if run, err := journal.Load(d.state, r.RunID); err != nil || run.Status != journal.StatusSuccess {
		return fail("the resumed run's journal: %v, status %v", err, statusOf(run))
	}
	if _, err := journal.Verify(d.state, r.RunID); err != nil {
		return fail("the resumed run's journal does not verify: %v", err)
	}
	if len(h.leaks) > 0 {
		return fail("a secret of the lab's config reached the output of %s", strings.Join(h.leaks, ", "))
	}
	res.Passed = true
	return res
}

// waitHealthyAs is waitHealthy with the roles of healthProblemsAs.
func waitHealthyAs(lab *drlab.Lab, primary string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), healthyWait+time.Minute)
	defer cancel()
	deadline := time.Now().Add(healthyWait)
	for {
		problems := healthProblemsAs(ctx, lab, primary)
		if len(problems) == 0 || time.Now().After(deadline) {
			return problems
		}
		select {
		case <-ctx.Done():
			return problems
		case <-time.After(500 * time.Millisecond):
		}
	}
}
