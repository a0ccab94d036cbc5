package playbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// The planned DR switchover (issue #15) on the lab: dr-switchover.yaml
// makes the cluster of the config section `to` the primary. The lab's
// config names the cluster built as primary [source] and the one built as
// standby [target], so `to=target` switches and `to=source` switches back.

// switchover runs dr-switchover.yaml on the lab with to and extra vars.
func switchover(t *testing.T, lab *drlab.Lab, to string, mode engine.Mode, extra map[string]string) *enginetest.Result {
	t.Helper()
	vars := map[string]string{"to": to}
	for k, v := range extra {
		vars[k] = v
	}
	return drill(t, lab, "dr-switchover.yaml", mode, "", vars)
}

// requireRoles fails the test unless the routers say the cluster built as
// primaryNow is the primary (slave-dbscale-mode as flow reads it).
func requireRoles(t *testing.T, lab *drlab.Lab, primaryNow string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	roles, err := lab.Roles(ctx)
	if err != nil || !roles.Known || roles.Primary != primaryNow {
		t.Fatalf("the routers' roles: %+v (%v), want the cluster built as %s the primary", roles, err, primaryNow)
	}
}

// requireHealthyAs is requireHealthy with the roles swapped when primary is
// drlab.ClusterStandby (bounded poll: replication settles after a switch).
func requireHealthyAs(t *testing.T, lab *drlab.Lab, primary string) {
	t.Helper()
	if problems := waitHealthyAs(lab, primary); len(problems) > 0 {
		t.Fatalf("the lab (the cluster built as %s the primary) is not healthy:\n%s", primary, strings.Join(problems, "\n"))
	}
}

// switchBackOnCleanup restores the lab's built roles when a test left it
// switched, so that the next test finds its normal state.
func switchBackOnCleanup(t *testing.T, lab *drlab.Lab) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if roles, err := lab.Roles(ctx); err == nil && roles.Known && roles.Primary == drlab.ClusterPrimary {
			return
		}
		if res := switchover(t, lab, "source", engine.ModeRun, nil); res.Err != nil {
			t.Errorf("switching the lab back after the test: %v\n%s", res.Err, tail(res.Log))
		}
	})
}

// dropFollowerRows deletes, on the primary master of each shard (the lab
// switched back), the rows the follow writer wrote through the cluster
// built as standby while it was the primary: the other tests count the
// rows written through that router as a drill's, which stop must have
// discarded. It waits until every node has the deletes.
func dropFollowerRows(lab *drlab.Lab) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for k := 0; k < lab.Shards; k++ {
		db, err := lab.OpenNode(lab.Master(drlab.ClusterPrimary, k))
		if err != nil {
			return err
		}
		var gtid string
		_, err = db.ExecContext(ctx, "DELETE FROM "+drlab.WorkloadSchema+"."+drlab.WorkloadTable+" WHERE cluster = ?", drlab.ClusterStandby)
		if err == nil {
			err = db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&gtid)
		}
		db.Close()
		if err != nil && !strings.Contains(err.Error(), "doesn't exist") {
			return fmt.Errorf("deleting the follow writer's rows: %w", err)
		}
		for _, n := range lab.Nodes {
			if n.Shard != k {
				continue
			}
			inst, err := lab.Instance(n, nil)
			if err != nil {
				return err
			}
			if err := inst.WaitGTIDs(ctx, gtid); err != nil {
				return fmt.Errorf("%s after deleting the follow writer's rows: %w", n, err)
			}
		}
	}
	return nil
}

// follower is the lab's writer that follows the primary across a
// switchover (drlab.Lab.Follow), run in the background.
type follower struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	res    *drlab.FollowResult
	err    error
}

func startFollower(lab *drlab.Lab) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.res, f.err = lab.Follow(ctx, drlab.FollowOptions{Duration: 20 * time.Minute, Rate: 200})
	}()
	return f
}

// stop ends the writer and returns what it acknowledged and measured.
func (f *follower) stop(t *testing.T) *drlab.FollowResult {
	t.Helper()
	f.cancel()
	f.wg.Wait()
	if f.res == nil {
		t.Fatalf("the writer: %v", f.err)
	}
	return f.res
}

// TestSwitchoverAndBack: with a writer running that follows the primary,
// a switchover to the standby and back. A run whose `to` is the primary
// already changes nothing; the dry run's verdicts match the real run's
// steps; after the switch the routers, the nodes' replication and the DR
// link are those of swapped roles, and the shipped verify, start and stop
// work with the same, unchanged config; after the way back every row the
// writer got an OK for is on every node. The write outage (the writer's
// longest gap between two acknowledged writes) is logged, not asserted:
// tests do not time things.
func TestSwitchoverAndBack(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	requireHealthy(t, lab)
	t.Cleanup(func() {
		if err := dropFollowerRows(lab); err != nil {
			t.Error(err)
		}
	})
	switchBackOnCleanup(t, lab)

	before := labState(t, lab, "")
	noop := switchover(t, lab, "source", engine.ModeRun, nil)
	if noop.Err != nil {
		t.Fatalf("to=source on a lab whose [source] is the primary: %v\n%s", noop.Err, tail(noop.Log))
	}
	if !strings.Contains(noop.Log, "is the primary already: nothing to do") {
		t.Errorf("the no-op run does not say so:\n%s", tail(noop.Log))
	}
	requireUnchanged(t, "to=source on the primary", before, labState(t, lab, ""))
	bad := switchover(t, lab, "primary", engine.ModeRun, nil)
	requireRefused(t, bad, "to = primary", "source or target")

	dry := switchover(t, lab, "target", engine.ModeDryRun, nil)
	if dry.Err != nil {
		t.Fatalf("dry run of the switchover: %v\n%s", dry.Err, tail(dry.Log))
	}
	requireUnchanged(t, "the switchover's dry run", before, labState(t, lab, ""))
	w := startFollower(lab)
	waitWrites(t, lab, drlab.ClusterPrimary)
	sw := switchover(t, lab, "target", engine.ModeRun, nil)
	if sw.Err != nil {
		w.stop(t)
		t.Fatalf("switchover to target: %v\n%s", sw.Err, tail(sw.Log))
	}
	unknown, wrong := fidelity(t, dry, sw)
	t.Logf("switchover: dry run %d verdict(s), %d change(s); %d UNKNOWN, %d wrong", len(dry.Runner.Verdicts()), dry.Runner.Changes(), len(unknown), len(wrong))
	for _, d := range wrong {
		t.Errorf("the switchover's dry run was wrong: %s", d)
	}
	requireRoles(t, lab, drlab.ClusterStandby)
	requireHealthyAs(t, lab, drlab.ClusterStandby)
	waitWrites(t, lab, drlab.ClusterStandby)

	// the same config, the other roles: every shipped playbook follows
	redoPath := filepath.Join(t.TempDir(), "redo.json")
	for _, pb := range []string{"flashback-verify.yaml", "flashback-start.yaml", "flashback-stop.yaml"} {
		if res := drill(t, lab, pb, engine.ModeRun, redoPath, nil); res.Err != nil {
			w.stop(t)
			t.Fatalf("%s after the switchover: %v\n%s", pb, res.Err, tail(res.Log))
		}
	}
	requireHealthyAs(t, lab, drlab.ClusterStandby)
	again := switchover(t, lab, "target", engine.ModeRun, nil)
	if again.Err != nil || !strings.Contains(again.Log, "is the primary already") {
		t.Errorf("to=target once switched: %v (want nothing to do)\n%s", again.Err, tail(again.Log))
	}

	back := switchover(t, lab, "source", engine.ModeRun, nil)
	if back.Err != nil {
		w.stop(t)
		t.Fatalf("switchover back to source: %v\n%s", back.Err, tail(back.Log))
	}
	requireRoles(t, lab, drlab.ClusterPrimary)
	waitWrites(t, lab, drlab.ClusterPrimary)
	fr := w.stop(t)
	t.Logf("writer: %d row(s) acknowledged, %d error(s) %v, %d switch(es) of router; write outage (longest gap) %s (seq %d → %d, %s → %s, %d failed write(s) inside)",
		fr.Rows, fr.Errors, fr.ErrorsByKind, fr.Switches, fr.LongestGap.Duration.Round(time.Millisecond),
		fr.LongestGap.SeqBefore, fr.LongestGap.SeqAfter, fr.LongestGap.ClusterBefore, fr.LongestGap.ClusterAfter, fr.LongestGap.Errors)
	if fr.Switches < 2 || fr.Rows == 0 {
		t.Errorf("the writer moved %d time(s) between routers with %d row(s): want there and back", fr.Switches, fr.Rows)
	}
	if len(fr.InDoubt) > 0 {
		t.Logf("writes without an answer (may or may not be stored): %v", fr.InDoubt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := lab.Check(ctx, drlab.CheckOptions{Wait: 90 * time.Second, Acked: fr.Acked()})
	if err != nil || !rep.OK {
		t.Fatalf("after there and back, the nodes differ or lack an acknowledged row: %v\n%v", err, rep)
	}
	requireHealthy(t, lab)
}

// TestSwitchoverWriteBehindTheRouter: after the freeze a write sent to the
// primary's master directly (not through the router) is refused by MySQL
// (super_read_only, error 1290); one that still reaches it (its
// super_read_only switched off by hand) is found before the point of no
// return: the switchover is refused, its rescue makes the old primary
// writable again (exit 4: something had changed), and the DR link and the
// roles are as before. The writes come from site steps that a wrapper
// splices in after the catch-up (extend:).
func TestSwitchoverWriteBehindTheRouter(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	requireHealthy(t, lab)
	switchBackOnCleanup(t, lab)
	shipped, err := filepath.Abs("dr-switchover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "switchover-with-a-direct-write.yaml")
	if err := os.WriteFile(wrapper, []byte(`name: switchover-with-a-direct-write
steps:
  - include: `+shipped+`
    with: {to: target}
    extend:
      - after: "Step 05 {{ p.ds }} standby master {{ p.new.host }} applies it"
        steps:
          - name: test writes to the frozen primary master directly
            ignore_errors: true
            sql: {on: node, at: "{{ pairs[0].old }}", exec: "CREATE DATABASE IF NOT EXISTS flow_bypass_refused"}
          - name: test switches super_read_only off by hand
            sql: {on: node, at: "{{ pairs[0].old }}", exec: "SET GLOBAL super_read_only = OFF"}
          - name: test writes to the primary master directly
            sql: {on: node, at: "{{ pairs[0].old }}", exec: "CREATE DATABASE IF NOT EXISTS flow_bypass"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pm := lab.Master(drlab.ClusterPrimary, 0)
	t.Cleanup(func() {
		pc, done := nodeConn(t, lab, pm)
		execAll(t, pc, "primary master", "DROP DATABASE IF EXISTS flow_bypass")
		waitAll(t, lab, gtidExecuted(t, pc))
		done()
		requireHealthy(t, lab)
	})
	res := drill(t, lab, wrapper, engine.ModeRun, "", nil)
	if res.Err == nil {
		t.Fatalf("the switchover went on after a write behind the router\n%s", tail(res.Log))
	}
	if code := engine.ExitCode(res.Err); code != engine.ExitAborted {
		t.Errorf("exit %d, want %d (aborted after the rescue): %v", code, engine.ExitAborted, res.Err)
	}
	for _, w := range []string{pm.Host, "directly, not through the router"} {
		if !strings.Contains(res.Err.Error(), w) {
			t.Errorf("the refusal does not say %q: %v", w, res.Err)
		}
	}
	if !strings.Contains(res.Log, "rescue the old primary takes writes again") {
		t.Errorf("the rescue did not run:\n%s", tail(res.Log))
	}
	if !strings.Contains(res.Log, "super-read-only") {
		t.Errorf("the direct write to the frozen master was not refused by super_read_only:\n%s", tail(res.Log))
	}
	pdb, err := lab.OpenNode(pm)
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	if n := queryInt(t, pdb, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'flow_bypass_refused'"); n != 0 {
		t.Errorf("the frozen primary master took a direct write (flow_bypass_refused exists)")
	}
	requireRoles(t, lab, drlab.ClusterPrimary)
	// the old primary takes writes again (router and masters) and the DR
	// link is in place
	requireHealthy(t, lab)
}

// waitWrites waits (bounded) until the writer's rows reach the master of
// the cluster built as built through that cluster's router: the writer
// writes to the primary now.
func waitWrites(t *testing.T, lab *drlab.Lab, built string) {
	t.Helper()
	db, err := lab.OpenNode(lab.Master(built, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := "SELECT COUNT(*) FROM " + drlab.WorkloadSchema + "." + drlab.WorkloadTable + " WHERE cluster = ?"
	count := func() int {
		var n int
		if err := db.QueryRow(q, built).Scan(&n); err != nil {
			return -1 // the table may not exist yet
		}
		return n
	}
	first := count()
	deadline := time.Now().Add(time.Minute)
	for count() <= first {
		if time.Now().After(deadline) {
			t.Fatalf("the writer wrote nothing through the %s router within a minute", built)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// injectStandbyLag holds the standby master's applier back: a session on
// the standby master locks a table the primary then writes to, until the
// standby lags at least 2 seconds. The repair lets it go and waits.
func injectStandbyLag(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	pm, sm := lab.Master(drlab.ClusterPrimary, 0), lab.Master(drlab.ClusterStandby, 0)
	pc, pclose := nodeConn(t, lab, pm)
	execAll(t, pc, "primary master", "CREATE DATABASE IF NOT EXISTS flow_refusal", "CREATE TABLE IF NOT EXISTS flow_refusal.lag (id INT PRIMARY KEY)")
	waitAll(t, lab, gtidExecuted(t, pc))
	sc, sclose := nodeConn(t, lab, sm)
	execAll(t, sc, "standby master", "LOCK TABLES flow_refusal.lag READ")
	execAll(t, pc, "primary master", "INSERT INTO flow_refusal.lag VALUES (1)")
	db, err := lab.OpenNode(sm)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lagRE := regexp.MustCompile(`(?:^|, )Seconds_Behind_Source=(\d+)`)
	for {
		rows, err := queryRows(ctx, db, "SHOW REPLICA STATUS")
		if err != nil {
			t.Fatal(err)
		}
		lag := -1
		if len(rows) == 1 {
			if m := lagRE.FindStringSubmatch(rows[0]); m != nil {
				lag, _ = strconv.Atoi(m[1])
			}
		}
		if lag >= 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the standby master does not lag (Seconds_Behind_Source %d)", lag)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return []string{sm.Host, "lags", "limit 1s"}, func() {
		execAll(t, sc, "standby master", "UNLOCK TABLES")
		execAll(t, pc, "primary master", "DROP DATABASE flow_refusal")
		waitAll(t, lab, gtidExecuted(t, pc))
		sclose()
		pclose()
	}
}

// injectWritableStandby opens the standby router for writes (as a drill
// does) without a drill.
func injectWritableStandby(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	routerExec(t, lab, drlab.ClusterStandby, "dbscale set global 'enable-read-only' = 0")
	r := lab.Router(drlab.ClusterStandby)
	return []string{r.Host, "takes writes"}, func() {
		routerExec(t, lab, drlab.ClusterStandby, "dbscale set global 'enable-read-only' = 1")
	}
}

// TestSwitchoverOperator: the operator contract on dr-switchover, with the
// real flow binary on a pseudo-terminal, as a DBA types it (no --yes).
// Ctrl-C, a hang-up or a wrong word at the prompt change nothing (exit
// 130, 130, 3); Ctrl-C during the catch-up wait, after the freeze, runs the
// rescue: the old primary takes writes again and keeps the DR link (exit
// 130); typing the word switches. The cluster is checked from outside flow
// after each.
func TestSwitchoverOperator(t *testing.T) {
	h := newHarness(t)
	switchBackOnCleanup(t, h.lab)
	pb, diags := engine.Load(filepath.Join(h.pbDir, "dr-switchover.yaml"))
	if pb == nil {
		t.Fatalf("dr-switchover.yaml: %v", diags)
	}
	gates := engine.Gates(pb)
	if len(gates) != 1 {
		t.Fatalf("dr-switchover.yaml has %d confirmation points, want 1: %v", len(gates), gates)
	}
	gate := gates[0]
	word := h.lab.Router(drlab.ClusterStandby).Host
	args := func(d cycleDirs) []string {
		return []string{"run", filepath.Join(h.pbDir, "dr-switchover.yaml"), "-c", h.lab.IniPath(), "--var", "to=target", "--state-dir", d.state}
	}
	untouched := func(t *testing.T, run func(d cycleDirs) (*ptyFlow, int)) (*journalOf, *ptyFlow, int) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		before := labState(t, h.lab, d.redo)
		p, code := run(d)
		requireUnchanged(t, "the switchover", before, labState(t, h.lab, d.redo))
		return onlyRun(t, d.state), p, code
	}

	t.Run("ctrl_c_at_the_prompt", func(t *testing.T) {
		j, p, code := untouched(t, func(d cycleDirs) (*ptyFlow, int) {
			p := h.onPTY(t, args(d)...)
			p.waitPrompt(t, gate)
			p.interrupt(t)
			return p, p.wait(t)
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d\n%s", code, engine.ExitInterrupted, tail(p.screen()))
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, 0)
		j.requireConfirmation(t, gate.Step, "interrupted", "signal at the prompt")
		j.requireSignal(t, "SIGINT")
	})
	t.Run("hang_up_at_the_prompt", func(t *testing.T) {
		j, _, code := untouched(t, func(d cycleDirs) (*ptyFlow, int) {
			p := h.onPTY(t, args(d)...)
			p.waitPrompt(t, gate)
			p.hangUp()
			return p, p.wait(t)
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d", code, engine.ExitInterrupted)
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, 0)
		j.requireConfirmation(t, gate.Step, "interrupted", "terminal hung up")
		j.requireSignal(t, "SIGHUP")
	})
	t.Run("wrong_word", func(t *testing.T) {
		j, p, code := untouched(t, func(d cycleDirs) (*ptyFlow, int) {
			p := h.onPTY(t, args(d)...)
			p.waitPrompt(t, gate)
			p.typeLine(t, "yes")
			return p, p.wait(t)
		})
		if code != engine.ExitRefused {
			t.Fatalf("exit %d, want %d\n%s", code, engine.ExitRefused, tail(p.screen()))
		}
		if !strings.Contains(p.screen(), "refused before it changed anything") {
			t.Errorf("the terminal does not say the run changed nothing:\n%s", tail(p.screen()))
		}
		j.requireEnd(t, journal.StatusRefused, engine.ExitRefused, 0)
		j.requireConfirmation(t, gate.Step, "declined", "typed")
	})
	t.Run("ctrl_c_during_the_catch_up", func(t *testing.T) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		// the standby master cannot apply the next primary transaction:
		// the catch-up after the freeze waits
		_, repair := injectStandbyLag(t, h.lab, "")
		released := false
		release := func() {
			if !released {
				released = true
				repair()
			}
		}
		defer release()
		p := h.onPTY(t, args(d)...)
		p.waitPrompt(t, gate)
		p.typeLine(t, word)
		waitRecords(t, d.state, "gtid_wait_started", 1)
		p.interrupt(t)
		code := p.wait(t)
		release()
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d\n%s", code, engine.ExitInterrupted, tail(p.screen()))
		}
		j := onlyRun(t, d.state)
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, -1)
		j.requireRescued(t)
		j.requireNotDispatched(t, "Step 06 remove the DR link on the old primary")
		requireRoles(t, h.lab, drlab.ClusterPrimary)
		requireHealthy(t, h.lab) // the primary router read-write, the DR link there
	})
	// the freeze's rescue covers the whole way to the point of no return:
	// Ctrl-C between the catch-up and Step 06 (a site step waits there)
	// makes the old primary writable again too
	t.Run("ctrl_c_before_the_dr_link_moves", func(t *testing.T) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		const waiting = "test waits before the DR link moves"
		wrapper := filepath.Join(h.pbDir, "switchover-waiting-before-step-06.yaml")
		if err := os.WriteFile(wrapper, []byte(`name: switchover-waiting-before-step-06
steps:
  - include: dr-switchover.yaml
    with: {to: target}
    extend:
      - before: Step 06 move the DR link
        steps:
          - name: `+waiting+`
            ssh: {on: standby_ssh, host: "{{ pairs[0].new.host }}", command: "test -f `+filepath.Join(t.TempDir(), "never")+`", ok_codes: [0, 1], changes: false}
            until: result.rc == 0
            interval: 100ms
            timeout: 2m
`), 0o644); err != nil {
			t.Fatal(err)
		}
		p := h.onPTY(t, "run", wrapper, "-c", h.lab.IniPath(), "--state-dir", d.state, "--yes")
		waitStepStarted(t, d.state, waiting)
		p.interrupt(t)
		if code := p.wait(t); code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d\n%s", code, engine.ExitInterrupted, tail(p.screen()))
		}
		j := onlyRun(t, d.state)
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, -1)
		j.requireRescued(t)
		j.requireNotDispatched(t, "Step 06 remove the DR link on the old primary")
		requireRoles(t, h.lab, drlab.ClusterPrimary)
		requireHealthy(t, h.lab) // router and masters writable, the DR link there
	})
	t.Run("typed_word", func(t *testing.T) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		p := h.onPTY(t, args(d)...)
		p.waitPrompt(t, gate)
		p.typeLine(t, word)
		if code := p.wait(t); code != 0 {
			t.Fatalf("exit %d, want 0\n%s", code, tail(p.screen()))
		}
		j := onlyRun(t, d.state)
		j.requireEnd(t, journal.StatusSuccess, 0, -1)
		j.requireConfirmation(t, gate.Step, "confirmed", "typed")
		requireRoles(t, h.lab, drlab.ClusterStandby)
		requireHealthyAs(t, h.lab, drlab.ClusterStandby)
	})
}

// TestSwitchoverFailsPastNoReturn: a step that fails after the point of no
// return (a site step spliced in after Step 07 fails until a file exists)
// runs no rescue: both routers stay read-only (never two writable
// clusters), the error says so and names `flow resume`; once the cause is
// gone, the resume finishes the switchover.
func TestSwitchoverFailsPastNoReturn(t *testing.T) {
	h := newHarness(t)
	switchBackOnCleanup(t, h.lab)
	h.ensureHealthy(t)
	flag := filepath.Join(t.TempDir(), "go-on")
	wrapper := filepath.Join(h.pbDir, "switchover-failing-past-no-return.yaml")
	if err := os.WriteFile(wrapper, []byte(`name: switchover-failing-past-no-return
steps:
  - include: dr-switchover.yaml
    with: {to: target}
    extend:
      - after: Step 07 the new primary stops replicating
        steps:
          - name: test fails until `+flag+` exists
            ssh: {on: standby_ssh, host: "{{ pairs[0].new.host }}", command: "test -f `+flag+`", changes: false}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newCycleDirs(t)
	args := []string{"run", wrapper, "-c", h.lab.IniPath(), "--state-dir", d.state, "--log-format", "json", "--yes"}
	r := h.flow(context.Background(), args, nil)
	if r.Code != engine.ExitStepFailed {
		t.Fatalf("exit %d, want %d (failed)\n%s", r.Code, engine.ExitStepFailed, r.errorText())
	}
	for _, w := range []string{"past its point of no return", "both routers stay read-only", "flow resume " + r.RunID} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("the error does not say %q:\n%s", w, r.errorText())
		}
	}
	if strings.Contains(r.Stdout, `"event":"rescue_started"`) {
		t.Errorf("a rescue ran after the point of no return")
	}
	for _, cluster := range []string{drlab.ClusterPrimary, drlab.ClusterStandby} {
		db, err := h.lab.OpenRouter(cluster)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := queryRows(context.Background(), db, "dbscale show options like 'enable-read-only'")
		db.Close()
		if err != nil || len(opts) != 1 || !strings.HasSuffix(opts[0], "value=1") {
			t.Errorf("the %s router after the failure: enable-read-only %v (%v), want 1", cluster, opts, err)
		}
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rr := h.flow(context.Background(), resumeArgs(r.RunID, d.state), nil); rr.Code != 0 {
		t.Fatalf("resume: exit %d\n%s", rr.Code, rr.errorText())
	}
	requireRoles(t, h.lab, drlab.ClusterStandby)
	requireHealthyAs(t, h.lab, drlab.ClusterStandby)
}
