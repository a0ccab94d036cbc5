package playbooks_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/lab/drlab"
)

// Faults in the environment while flashback-start runs (issue #6): each
// must end the run with a clear error naming what failed, leave a journal
// that records the failed step, and let `flow resume` finish the run once
// the fault is gone; then the drill cycle completes and the independent
// checks hold.

// Bounds of the fault tests' waits.
const (
	// recoverWait bounds the wait for a faulty component to answer again.
	recoverWait = 3 * time.Minute
	// portWait bounds a poll on a TCP port (refusing or accepting).
	portWait = 30 * time.Second
)

// faultRun starts a fault test: a healthy lab, primary writes, fresh
// journal and redo folders, and the primary rows before.
type faultRun struct {
	h    *harness
	d    cycleDirs
	w    *primaryWriter
	base int
}

func newFaultRun(t *testing.T, h *harness) *faultRun {
	t.Helper()
	if h == nil {
		h = newHarness(t)
	}
	h.ensureHealthy(t)
	h.leaks = nil
	base, err := primaryRows(context.Background(), h.lab)
	if err != nil {
		t.Fatalf("primary rows: %v", err)
	}
	f := &faultRun{h: h, d: newCycleDirs(t), base: base}
	f.w = startPrimaryWrites(h.lab)
	t.Cleanup(func() { f.w.stop() })
	return f
}

// requireFailed checks a run the fault made fail: exit 1, flow's error
// naming every want, and a journal that says the run failed with a failed
// step whose name starts with stepPrefix ("" for any) and whose error names
// want[0]. Before start's point of no return (Step 12 set read write) its
// rescue section must have run; past it (pastNoReturn) it must not have
// (the standby may hold the drill's writes: re-attaching it would keep
// them), the journal says why, and the error says to resume. It returns
// the failed step.
func requireFailed(t *testing.T, r *flowResult, state, stepPrefix string, pastNoReturn bool, want ...string) journal.Step {
	t.Helper()
	if r.Code != engine.ExitStepFailed {
		t.Fatalf("the run under the fault: exit %d, want %d (step failed)\n%s", r.Code, engine.ExitStepFailed, r.errorText())
	}
	msg := strings.ToLower(r.Stderr)
	for _, w := range want {
		if !strings.Contains(msg, strings.ToLower(w)) {
			t.Errorf("flow's error does not name %q:\n%s", w, r.errorText())
		}
	}
	if r.RunID == "" {
		t.Fatal("no run id in the event stream")
	}
	run, err := journal.Load(state, r.RunID)
	if err != nil {
		t.Fatalf("the failed run's journal: %v", err)
	}
	if run.Status != journal.StatusFailed {
		t.Errorf("the journal says the run is %q, want %q", run.Status, journal.StatusFailed)
	}
	var found *journal.Step
	var failed []string
	for _, s := range run.Failed() {
		failed = append(failed, fmt.Sprintf("%s: %s", s.Name, firstLine(s.Error)))
		if found == nil && s.Type != "group" && s.Type != "include" && strings.HasPrefix(s.Name, stepPrefix) && strings.Contains(s.Error, want[0]) {
			found = &s
		}
	}
	if found == nil {
		t.Fatalf("the journal records no failed step %q… whose error names %s; failed steps:\n%s", stepPrefix, want[0], strings.Join(failed, "\n"))
	}
	recs, err := journal.Records(state, r.RunID)
	if err != nil {
		t.Fatal(err)
	}
	rescued, skipped := false, false
	for _, rec := range recs {
		rescued = rescued || rec.Event == "rescue_started"
		skipped = skipped || rec.Event == "rescue_skipped" && rec.Fields["why"] == "past the point of no return"
	}
	switch {
	case !pastNoReturn && !rescued:
		t.Errorf("the journal records no rescue_started: start's rescue section did not run")
	case pastNoReturn && rescued:
		t.Errorf("start's rescue section ran past the point of no return (it re-attaches a standby that may hold the drill's writes)")
	case pastNoReturn && !skipped:
		t.Errorf("the journal records no rescue_skipped past the point of no return")
	case pastNoReturn && !strings.Contains(r.Stderr, "past the point of no return the rescue does not run") || pastNoReturn && !strings.Contains(r.Stderr, "flow resume "+r.RunID):
		t.Errorf("flow's error does not say the rescue did not run and to resume run %s:\n%s", r.RunID, r.errorText())
	}
	t.Logf("the fault failed step %q: %s", found.Name, firstLine(found.Error))
	return *found
}

// resumeAfterFault runs `flow resume` once the fault is gone: it must
// succeed and restore what finished before the rescued group (the verify
// include); after a rescue it starts the group "drill setup" over from its
// first step, past the point of no return (no rescue) it goes on from the
// failed step.
func (f *faultRun) resumeAfterFault(t *testing.T, runID string, pastNoReturn bool) *flowResult {
	t.Helper()
	rr := f.h.flow(context.Background(), resumeArgs(runID, f.d.state), nil)
	if rr.Code != 0 {
		t.Fatalf("flow resume after the fault: exit %d\n%s", rr.Code, rr.errorText())
	}
	const first = "Step 06 check replication relationship"
	restored, restarted, opened := 0, false, false
	for _, ev := range rr.Events {
		switch {
		case ev.Event == "step_restored":
			restored++
			opened = opened || ev.Name == "Step 12 set read write"
			if ev.Name == first && !pastNoReturn {
				t.Errorf("resume restored %q, the first step of the rescued group: the group must start over", ev.Name)
			}
		case ev.Event == "step_started" && ev.Name == first:
			restarted = true
		}
	}
	if restored == 0 {
		t.Errorf("resume restored no step from the journal (verify ran before the fault)")
	}
	switch {
	case !pastNoReturn && !restarted:
		t.Errorf("resume did not start the rescued group over from %q", first)
	case pastNoReturn && (restarted || !opened):
		t.Errorf("resume past the point of no return started the group over (%v) or did not restore Step 12 set read write (%v): it must go on from the failed step", restarted, opened)
	}
	how := "the rescued group started over"
	if pastNoReturn {
		how = "it went on from the failed step"
	}
	t.Logf("resume: exit 0 in %s, %d step(s) restored, %s", rr.Took.Round(time.Millisecond), restored, how)
	return rr
}

// finish completes the cycle after a resumed start (drill writes, a
// normal stop) and runs the independent checks.
func (f *faultRun) finish(t *testing.T, runID string) { f.finishStop(t, runID, nil) }

// finishStop is finish with onEvent watching the stop (as flow's callback)
// and returns the stop's result.
func (f *faultRun) finishStop(t *testing.T, runID string, onEvent func(flowEvent, int) bool) *flowResult {
	t.Helper()
	ctx := context.Background()
	if err := drillWrites(ctx, f.h.lab); err != nil {
		t.Fatalf("after the resumed start: %v", err)
	}
	st := f.h.flow(ctx, f.h.runArgs("flashback-stop.yaml", f.d.state, f.d.redo), onEvent)
	if st.Code != 0 {
		t.Fatalf("stop after the resumed start: exit %d\n%s", st.Code, st.errorText())
	}
	rows, err := f.w.stop()
	if err != nil {
		t.Errorf("primary writes during the test: %v", err)
	}
	for _, p := range restoredProblems(ctx, f.h.lab, f.d.redo, f.base+rows, checkWait) {
		t.Error(p)
	}
	if run, err := journal.Load(f.d.state, runID); err != nil || run.Status != journal.StatusSuccess {
		t.Errorf("the resumed run's journal: %v, status %s", err, statusOf(run))
	}
	if _, err := journal.Verify(f.d.state, runID); err != nil {
		t.Errorf("the resumed run's journal does not verify: %v", err)
	}
	if len(f.h.leaks) > 0 {
		t.Errorf("a secret of the lab's config reached the output of %s", strings.Join(f.h.leaks, ", "))
	}
	return st
}

// TestFaultDonorKilledDuringClone: the donor's mysqld is SIGKILLed as the
// first clone starts (mysqld_safe restarts it; the skip_replica_start
// Step 12 persisted keeps its replication stopped). The clone fails naming
// the donor; past the point of no return the rescue does not run, the
// drill stays open; the journal has the failed clone step; once the donor
// answers again its replication is still stopped at the detach point (read
// from outside), resume has no need to freeze it again, goes on from the
// failed clone and succeeds; stop then finds the donor at the detach point
// (the drill's writes did not reach it).
func TestFaultDonorKilledDuringClone(t *testing.T) {
	f := newFaultRun(t, nil)
	lab := f.h.lab
	var donor drlab.Node
	var oldPID int
	var killErr error
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), func(ev flowEvent, _ int) bool {
		if ev.Event == "clone_started" && oldPID == 0 && killErr == nil {
			donor, oldPID, killErr = killNodeMysqld(lab, ev.Donor)
		}
		return false
	})
	if killErr != nil {
		t.Fatalf("killing the donor: %v", killErr)
	}
	if oldPID == 0 {
		t.Fatalf("no clone started (no clone_started event): exit %d\n%s", r.Code, r.errorText())
	}
	t.Logf("killed the donor %s (mysqld pid %d) as the clone started; the run ended with exit %d in %s", donor, oldPID, r.Code, r.Took.Round(time.Millisecond))
	requireFailed(t, r, f.d.state, "Step 16 clone", true, donor.Host, "clone")
	for _, p := range openDrillProblems(lab) {
		t.Errorf("after the failed clone: %s", p)
	}

	inst, err := lab.Instance(donor, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverWait)
	defer cancel()
	began := time.Now()
	if err := inst.WaitRestart(ctx, oldPID); err != nil {
		t.Fatalf("the donor did not come back: %v", err)
	}
	t.Logf("the donor answers again after %s", time.Since(began).Round(time.Millisecond))
	requireFrozen(t, lab, donor)
	rr := f.resumeAfterFault(t, r.RunID, true)
	for _, ev := range rr.Events {
		if ev.Event == "step_finished" && strings.HasPrefix(ev.Name, "Step 16 freeze donor "+donor.Name+" again") {
			t.Errorf("the resume had to freeze the restarted donor %s again: its restart started its replication", donor.Name)
		}
	}
	f.finish(t, r.RunID)
	requireReplicating(t, lab, donor)
}

// TestFaultDonorRestartedDuringTheDrill: start completes; the donor's
// mysqld is SIGKILLed during the drill and mysqld_safe starts it again
// (a crash, a reboot). Its replication stays stopped at the detach point
// (persisted skip_replica_start, read from outside), so the drill's
// writes do not reach it and stop succeeds (before, stop refused with
// exit 3: the donor held the drill's writes, and the drill had to be
// ended by hand); after stop no skip_replica_start is left on the donor
// and its replication runs.
func TestFaultDonorRestartedDuringTheDrill(t *testing.T) {
	restartedDuringTheDrill(t, func(_ *drlab.Lab, donor string) string { return donor })
}

// TestFaultStandbyMasterRestartedDuringTheDrill: as above for the standby
// master. Before, its restart started its replication from the primary
// master (receiver/applier ON/ON): the drill took production's writes,
// though the routers said the standby was detached. Now it stays detached
// (Step 10's hold), and stop releases the hold, which the swap carried
// into its snapshot.
func TestFaultStandbyMasterRestartedDuringTheDrill(t *testing.T) {
	lab := restartedDuringTheDrill(t, func(lab *drlab.Lab, _ string) string { return lab.Master(drlab.ClusterStandby, 0).Addr() })
	// after the drill a crash of the restored standby master's mysqld starts
	// its replication again (before, stop's mysqld_safe kept
	// --skip-slave-start: the standby stopped taking the primary's writes)
	master := crashAndWaitRestart(t, lab, lab.Master(drlab.ClusterStandby, 0).Addr())
	states := ""
	for deadline := time.Now().Add(time.Minute); states != "ON/ON" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		states = replicationThreads(t, lab, master)
	}
	if states != "ON/ON" {
		t.Errorf("after a crash following the drill %s has receiver/applier %s, want ON/ON: its replication did not start", master, states)
	}
}

// restartedDuringTheDrill runs start, SIGKILLs the mysqld of the node pick
// names (given the lab and the donor's address), waits until mysqld_safe
// has started it again, checks its replication stayed stopped, ends the
// drill (stop exit 0, the independent checks) and checks its replication
// runs again. It returns the lab.
func restartedDuringTheDrill(t *testing.T, pick func(lab *drlab.Lab, donor string) string) *drlab.Lab {
	f := newFaultRun(t, nil)
	lab := f.h.lab
	donorAddr := ""
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), func(ev flowEvent, _ int) bool {
		if ev.Event == "clone_started" && donorAddr == "" {
			donorAddr = ev.Donor
		}
		return false
	})
	if r.Code != 0 || donorAddr == "" {
		t.Fatalf("start: exit %d, donor %q\n%s", r.Code, donorAddr, r.errorText())
	}
	node := crashAndWaitRestart(t, lab, pick(lab, donorAddr))
	requireFrozen(t, lab, node)
	f.finish(t, r.RunID) // drill writes, stop (exit 0), the independent checks
	requireReplicating(t, lab, node)
	return lab
}

// crashAndWaitRestart SIGKILLs the mysqld of the lab node at addr and
// waits until mysqld_safe has started it again.
func crashAndWaitRestart(t *testing.T, lab *drlab.Lab, addr string) drlab.Node {
	t.Helper()
	node, pid, err := killNodeMysqld(lab, addr)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := lab.Instance(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverWait)
	defer cancel()
	if err := inst.WaitRestart(ctx, pid); err != nil {
		t.Fatalf("%s did not come back: %v", node, err)
	}
	return node
}

// requireFrozen checks from outside flow that a restarted node's
// replication threads are off.
func requireFrozen(t *testing.T, lab *drlab.Lab, n drlab.Node) {
	t.Helper()
	if states := replicationThreads(t, lab, n); states != "OFF/OFF" {
		t.Fatalf("after its restart %s has receiver/applier %s, want OFF/OFF: the restart started its replication", n, states)
	}
}

// requireReplicating checks from outside flow that a node replicates
// after stop (that no standby node keeps a persisted skip_replica_start is
// one of restoredProblems' checks, which finish runs).
func requireReplicating(t *testing.T, lab *drlab.Lab, n drlab.Node) {
	t.Helper()
	if states := replicationThreads(t, lab, n); states != "ON/ON" {
		t.Errorf("after stop %s has receiver/applier %s, want ON/ON", n, states)
	}
}

// replicationThreads reads a node's receiver and applier states from
// performance_schema ("OFF/OFF", "ON/ON"; "/" for no replica).
func replicationThreads(t *testing.T, lab *drlab.Lab, n drlab.Node) string {
	t.Helper()
	db, err := lab.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var states string
	if err := db.QueryRow("SELECT CONCAT((SELECT IFNULL(MAX(SERVICE_STATE), '') FROM performance_schema.replication_connection_status), '/', " +
		"(SELECT IFNULL(MAX(SERVICE_STATE), '') FROM performance_schema.replication_applier_status))").Scan(&states); err != nil {
		t.Fatal(err)
	}
	return states
}

// openDrillProblems says how the lab differs from a drill left open past
// start's point of no return: the standby router writable, the DR link
// removed from the primary router.
func openDrillProblems(lab *drlab.Lab) []string {
	ctx, cancel := context.WithTimeout(context.Background(), portWait)
	defer cancel()
	var out []string
	for _, c := range []struct{ cluster, q, want string }{
		{drlab.ClusterStandby, "dbscale show options like 'enable-read-only'", "0"},
		{drlab.ClusterPrimary, "dbscale show dataservers", ""},
	} {
		db, err := lab.OpenRouter(c.cluster)
		if err != nil {
			return append(out, err.Error())
		}
		rows, err := queryRows(ctx, db, c.q)
		db.Close()
		if err != nil {
			return append(out, fmt.Sprintf("%s router: %s: %v", c.cluster, c.q, err))
		}
		text := strings.Join(rows, "\n")
		switch {
		case c.want != "" && (len(rows) != 1 || !strings.HasSuffix(rows[0], "="+c.want)):
			out = append(out, fmt.Sprintf("the standby router is not open for the drill: %s", text))
		case c.want == "" && strings.Contains(text, "slave_dbscale_server"):
			out = append(out, "the primary router has the DR link again (re-attached)")
		}
	}
	return out
}

// killNodeMysqld SIGKILLs the mysqld of the lab node at addr (host:port).
func killNodeMysqld(lab *drlab.Lab, addr string) (drlab.Node, int, error) {
	for _, n := range lab.Nodes {
		if n.Addr() != addr {
			continue
		}
		inst, err := lab.Instance(n, nil)
		if err != nil {
			return n, 0, err
		}
		pid, err := inst.MysqldPID()
		if err != nil {
			return n, 0, err
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return n, 0, fmt.Errorf("kill mysqld %d of %s: %w", pid, n, err)
		}
		return n, pid, nil
	}
	return drlab.Node{}, 0, fmt.Errorf("no lab node at %q", addr)
}

// TestFaultStandbyRouterRestarted: the standby router's emulator is
// SIGKILLed when start reaches Step 11 (flow paused meanwhile, so the
// router is gone before flow's next statement to it, Step 12) and started
// again (drlab.Up): the next statement to the standby router fails naming
// its address, the journal has the failed step, and resume succeeds. In
// "back before the rescue" the router answers again right after that
// statement failed (flow paused until it does), so start's rescue section
// reaches it; in "down through the rescue" it is started again only after
// the run ended, so the rescue's own statements to it fail too and resume
// must run the rescue again before starting the group over.
func TestFaultStandbyRouterRestarted(t *testing.T) {
	h := newHarness(t)
	t.Run("back before the rescue", func(t *testing.T) { routerFault(t, h, true) })
	t.Run("down through the rescue", func(t *testing.T) { routerFault(t, h, false) })
}

func routerFault(t *testing.T, h *harness, beforeRescue bool) {
	f := newFaultRun(t, h)
	lab := f.h.lab
	router := lab.Router(drlab.ClusterStandby)
	var killed, restarted bool
	var killErr error
	upDone := make(chan error, 1)
	upCtx, upCancel := context.WithTimeout(context.Background(), recoverWait)
	defer upCancel()
	restart := func() {
		restarted = true
		go func() {
			_, _, err := drlab.Up(upCtx, drlab.Options{Dir: lab.Dir})
			upDone <- err
		}()
	}
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), func(ev flowEvent, pid int) bool {
		switch {
		case !killed && killErr == nil && ev.Event == "step_started" && ev.Name == "Step 11 waiting for standby cluster slave node apply master node binlog":
			killErr = paused(pid, func() error { return killRouter(lab, router) })
			killed = killErr == nil
		case killed && !restarted && beforeRescue && ev.Event == "step_failed":
			// flow waits (paused) until the router answers again
			restart()
			if err := paused(pid, func() error { return waitRouter(lab, router) }); err != nil {
				t.Errorf("the restarted standby router: %v", err)
			}
		}
		return false
	})
	if !restarted {
		restart()
	}
	if err := <-upDone; err != nil {
		t.Fatalf("restarting the standby router: %v", err)
	}
	if err := waitRouter(lab, router); err != nil {
		t.Fatal(err)
	}
	if killErr != nil || !killed {
		t.Fatalf("killing the standby router at Step 11: %v (killed %v); the run: exit %d\n%s", killErr, killed, r.Code, r.errorText())
	}
	t.Logf("killed the standby router at Step 11; restarted it %s; the run ended with exit %d in %s",
		map[bool]string{true: "as soon as a step failed", false: "after the run ended"}[beforeRescue], r.Code, r.Took.Round(time.Millisecond))
	requireFailed(t, r, f.d.state, "", false, router.Addr())
	f.resumeAfterFault(t, r.RunID, false)
	f.finish(t, r.RunID)
}

// waitRouter polls until a cluster's router answers `dbscale show
// dataservers`, bounded by portWait.
func waitRouter(lab *drlab.Lab, r drlab.Router) error {
	deadline := time.Now().Add(portWait)
	for {
		err := pingRouter(lab, r.Cluster)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s router %s does not answer within %s: %v", r.Cluster, r.Addr(), portWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pingRouter(lab *drlab.Lab, cluster string) error {
	db, err := lab.OpenRouter(cluster)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = queryRows(ctx, db, "dbscale show dataservers")
	return err
}

// paused runs fn while the process pid is stopped (SIGSTOP, then SIGCONT
// whatever fn returns).
func paused(pid int, fn func() error) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP to flow %d: %w", pid, err)
	}
	ferr := fn()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && ferr == nil {
		ferr = fmt.Errorf("SIGCONT to flow %d: %w", pid, err)
	}
	return ferr
}

// killRouter SIGKILLs the lab's router process(es) of r's cluster and
// waits until its port refuses connections.
func killRouter(lab *drlab.Lab, r drlab.Router) error {
	what := "router " + r.Cluster
	n := 0
	for _, p := range lab.Processes() {
		if p.What != what {
			continue
		}
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill the %s router (pid %d): %w", r.Cluster, p.PID, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no live %s router process", r.Cluster)
	}
	return waitPort(r.Addr(), false)
}

// waitPort polls addr until it accepts TCP connections (open) or refuses
// them (!open), bounded by portWait.
func waitPort(addr string, open bool) error {
	deadline := time.Now().Add(portWait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if c != nil {
			c.Close()
		}
		if (err == nil) == open {
			return nil
		}
		if time.Now().After(deadline) {
			state := map[bool]string{true: "accept", false: "refuse"}[open]
			return fmt.Errorf("%s did not %s connections within %s (last: %v)", addr, state, portWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultSSHRefused: from the point of no return on, SSH to the standby
// master's host is refused (the lab's sshd stops listening there and the
// session flow holds is cut), so start's Step 15 fails naming the host;
// the journal has the failed step; once sshd listens there again, resume
// succeeds.
func TestFaultSSHRefused(t *testing.T) {
	f := newFaultRun(t, nil)
	lab := f.h.lab
	node := lab.Master(drlab.ClusterStandby, 0) // a recipient of every start
	ref, err := newSSHRefusal(lab, node.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ref.off(); err != nil {
			t.Errorf("restoring sshd: %v", err)
		}
	})
	var onErr error
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), func(ev flowEvent, pid int) bool {
		if !ref.active && onErr == nil && ev.Event == "step_started" && ev.Name == "Step 12 set read write" {
			// flow is paused meanwhile, so the refusal is in place before
			// its next SSH command (Step 15)
			onErr = paused(pid, ref.on)
		}
		return false
	})
	if err := ref.off(); err != nil {
		t.Fatalf("restoring sshd: %v", err)
	}
	if onErr != nil {
		t.Fatalf("refusing SSH to %s: %v", node.Host, onErr)
	}
	if ref.cut == 0 {
		t.Errorf("no SSH session to %s was open to cut", node.Host)
	}
	t.Logf("SSH to %s refused from Step 12 on (%d session process(es) cut); the run ended with exit %d in %s", node.Host, ref.cut, r.Code, r.Took.Round(time.Millisecond))
	requireFailed(t, r, f.d.state, "Step 15", true, node.Host)
	for _, p := range openDrillProblems(lab) {
		t.Errorf("after the refused SSH: %s", p)
	}
	f.resumeAfterFault(t, r.RunID, true)
	f.finish(t, r.RunID)
}

// sshRefusal makes the lab's sshd refuse one address: it rewrites the
// sshd's config without that ListenAddress and sends SIGHUP (sshd re-execs
// itself with the same pid and re-reads its config), then cuts the
// sessions already open to that address (SIGKILL to the sshd processes
// holding an established socket whose local end is it). off restores the
// config the same way.
type sshRefusal struct {
	pid      int
	config   string
	original []byte
	host     string
	port     int
	active   bool
	cut      int // session processes killed
}

func newSSHRefusal(lab *drlab.Lab, host string) (*sshRefusal, error) {
	cfg := filepath.Join(lab.SSHD.Dir, "sshd_config")
	b, err := os.ReadFile(cfg)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(b), "\nListenAddress "+host+"\n") {
		return nil, fmt.Errorf("%s has no `ListenAddress %s`", cfg, host)
	}
	cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(lab.SSHD.PID) + "/cmdline")
	if !strings.Contains(string(cmd), cfg) {
		return nil, fmt.Errorf("the lab's sshd pid %d does not run %s", lab.SSHD.PID, cfg)
	}
	return &sshRefusal{pid: lab.SSHD.PID, config: cfg, original: b, host: host, port: lab.SSHD.Port}, nil
}

func (s *sshRefusal) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// reload writes config and makes sshd re-read it.
func (s *sshRefusal) reload(config []byte) error {
	if err := os.WriteFile(s.config, config, 0o600); err != nil {
		return err
	}
	if err := syscall.Kill(s.pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP to sshd %d: %w", s.pid, err)
	}
	return nil
}

func (s *sshRefusal) on() error {
	s.active = true
	without := strings.Replace(string(s.original), "\nListenAddress "+s.host+"\n", "\n", 1)
	if err := s.reload([]byte(without)); err != nil {
		return err
	}
	if err := waitPort(s.addr(), false); err != nil {
		return err
	}
	pids, err := socketHolders(s.host, s.port)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if !strings.HasPrefix(string(cmd), "sshd") {
			continue // only the lab sshd's session processes
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			s.cut++
		}
	}
	return nil
}

// off restores sshd's config and waits until the address answers with an
// SSH banner. It does nothing when the refusal is not active.
func (s *sshRefusal) off() error {
	if !s.active {
		return nil
	}
	if err := s.reload(s.original); err != nil {
		return err
	}
	deadline := time.Now().Add(portWait)
	for {
		err := sshBanner(s.addr())
		if err == nil {
			s.active = false
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd does not answer on %s again within %s: %v", s.addr(), portWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sshBanner reads the SSH identification line at addr.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return errors.New("no SSH banner: " + strings.TrimSpace(line))
	}
	return nil
}

// socketHolders returns the pids holding an established TCP socket whose
// local end is host:port (from /proc/net/tcp and /proc/PID/fd).
func socketHolders(host string, port int) ([]int, error) {
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("%q is not an IPv4 address", host)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 9 && fl[1] == local && fl[3] == "01" { // 01: ESTABLISHED
			inodes["socket:["+fl[9]+"]"] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && inodes[l] {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// TestFaultSSHDroppedDuringStop: every SSH session process of the lab's
// sshd is SIGKILLed (a network failure, sshd restarted on the hosts) while
// stop waits for the first recipient's mysqld to exit, flow paused
// meanwhile so the connections are dead before its next command. Stop
// connects again and succeeds, and its log says so; the independent checks
// hold. Before, the engine kept the dead connections: every later command
// to those hosts failed ("open session: EOF"), the waits for their whole
// 3-minute timeout, and stop ended with exit 1.
func TestFaultSSHDroppedDuringStop(t *testing.T) {
	f := newFaultRun(t, nil)
	lab := f.h.lab
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), nil)
	if r.Code != 0 {
		t.Fatalf("start: exit %d\n%s", r.Code, r.errorText())
	}
	cut, dropErr := 0, error(nil)
	st := f.finishStop(t, r.RunID, func(ev flowEvent, pid int) bool {
		if cut == 0 && dropErr == nil && ev.Event == "step_started" && strings.HasSuffix(ev.Name, "waits for mysqld to exit") {
			dropErr = paused(pid, func() error {
				var err error
				cut, err = dropSSHSessions(lab)
				return err
			})
		}
		return false
	})
	if dropErr != nil || cut == 0 {
		t.Fatalf("dropping the SSH sessions: %d cut, %v", cut, dropErr)
	}
	if !strings.Contains(st.Stderr+st.Stdout, "the next command went over a new connection") {
		t.Errorf("stop's log does not say that it connected again:\n%s", st.errorText())
	}
	t.Logf("%d SSH session process(es) cut while stop waited for a mysqld to exit; stop exit 0 in %s", cut, st.Took.Round(time.Millisecond))
}

// dropSSHSessions SIGKILLs the lab sshd's session processes (its children)
// and says how many there were.
func dropSSHSessions(lab *drlab.Lab) (int, error) {
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(lab.SSHD.PID)).Output()
	if err != nil {
		return 0, fmt.Errorf("pgrep -P %d: %v", lab.SSHD.PID, err)
	}
	n := 0
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			n++
		}
	}
	return n, nil
}

// TestFaultInterruptedDuringClone: the operator presses Ctrl-C (SIGINT) as
// the first clone starts, after the point of no return. flow aborts the
// clone (KILL QUERY), which leaves its partial copy in the snapshot folder
// (MySQL then refuses a clone into that folder, 1007), and exits 130 with
// the standby open for the drill. `flow resume` starts that recipient over
// — once no clone runs on it, from an empty folder — and finishes the
// start; then the cycle completes and the independent checks hold.
func TestFaultInterruptedDuringClone(t *testing.T) {
	f := newFaultRun(t, nil)
	sent := false
	var into string
	r := f.h.flow(context.Background(), f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), func(ev flowEvent, pid int) bool {
		if ev.Event == "clone_started" && !sent {
			sent, into = true, ev.Name
			_ = syscall.Kill(pid, syscall.SIGINT)
		}
		return false
	})
	if !sent {
		t.Fatalf("no clone started (no clone_started event): exit %d\n%s", r.Code, r.errorText())
	}
	if r.Code != engine.ExitInterrupted {
		t.Fatalf("exit %d after SIGINT during %q, want %d\n%s", r.Code, into, engine.ExitInterrupted, r.errorText())
	}
	t.Logf("SIGINT during %q: exit %d in %s: %s", into, r.Code, r.Took.Round(time.Millisecond), firstLine(r.errorText()))
	rr := f.h.flow(context.Background(), resumeArgs(r.RunID, f.d.state), nil)
	if rr.Code != 0 {
		t.Fatalf("flow resume after the interrupted clone: exit %d\n%s", rr.Code, rr.errorText())
	}
	emptied := false
	for _, ev := range rr.Events {
		emptied = emptied || ev.Event == "step_finished" && strings.HasPrefix(ev.Name, "Step 16 no partial snapshot on ")
	}
	if !emptied {
		t.Errorf("the resume did not start the interrupted recipient over from an empty folder")
	}
	f.finish(t, r.RunID)
}

// TestFaultKilledRightAfterShutdown: flow is SIGKILLed right after stop
// sent SHUTDOWN to a recipient, and resumed at once, while that mysqld is
// still exiting (no socket file, connections refused, the process still
// there). Resume judges the SHUTDOWN done, waits for the process to end
// and finishes the stop; it used to send SHUTDOWN again and fail on
// "connection refused", on every later attempt too (crash sweep, stop #31).
func TestFaultKilledRightAfterShutdown(t *testing.T) {
	f := newFaultRun(t, nil)
	ctx := context.Background()
	if r := f.h.flow(ctx, f.h.runArgs("flashback-start.yaml", f.d.state, f.d.redo), nil); r.Code != 0 {
		t.Fatalf("start: exit %d\n%s", r.Code, r.errorText())
	}
	if err := drillWrites(ctx, f.h.lab); err != nil {
		t.Fatal(err)
	}
	var at string
	r := f.h.flow(ctx, f.h.runArgs("flashback-stop.yaml", f.d.state, f.d.redo), func(ev flowEvent, _ int) bool {
		if at == "" && ev.Event == "statement" && strings.TrimSpace(ev.Text) == "SHUTDOWN" {
			at = ev.Name
			return true
		}
		return false
	})
	if at == "" || !r.Killed {
		t.Fatalf("flow was not killed after a SHUTDOWN (killed %v): exit %d\n%s", r.Killed, r.Code, r.errorText())
	}
	// the kill may have come before the statement left: send it as flow
	// would have, so the resume below meets a mysqld that is exiting
	host := strings.TrimPrefix(at, "shutdown instance ")
	var node *drlab.Node
	for i, n := range f.h.lab.Nodes {
		if n.Cluster == drlab.ClusterStandby && n.Host == host {
			node = &f.h.lab.Nodes[i]
		}
	}
	if node == nil {
		t.Fatalf("no standby node at %q (from step %q)", host, at)
	}
	if db, err := f.h.lab.OpenNode(*node); err == nil {
		_, _ = db.ExecContext(ctx, "SHUTDOWN") // refused when flow's SHUTDOWN got there first
		db.Close()
	}
	rr := f.h.flow(ctx, resumeArgs(r.RunID, f.d.state), nil)
	if rr.Code != 0 {
		t.Fatalf("resume right after the kill at %q: exit %d\n%s", at, rr.Code, rr.errorText())
	}
	judged := false
	for _, ev := range rr.Events {
		judged = judged || ev.Event == "step_resume_decision" && strings.HasPrefix(ev.Name, "shutdown instance ") && ev.Decision == "done"
	}
	if !judged {
		t.Errorf("the resume did not judge the cut SHUTDOWN done")
	}
	rows, err := f.w.stop()
	if err != nil {
		t.Errorf("primary writes during the test: %v", err)
	}
	for _, p := range restoredProblems(ctx, f.h.lab, f.d.redo, f.base+rows, checkWait) {
		t.Error(p)
	}
}
