package playbooks_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/gtid"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/lab/drlab"
)

// The operator contract (issue #11) proved on the lab with the real flow
// binary and the shipped flashback-start: whatever the operator does at a
// confirmation prompt or during a wait (no terminal, Ctrl-C, a hang-up, a
// wrong word, SIGTERM), the exit code, the journal and the cluster as seen
// from outside flow agree. Prompts are answered through a real
// pseudo-terminal, as a DBA's terminal would.

// Bounds of the operator tests' waits.
const (
	// promptWait bounds the wait for a confirmation prompt to show
	// (verify and the detach run before the prompts).
	promptWait = 2 * time.Minute
	// exitWait bounds the wait for flow to exit after the operator acted
	// (a rescue included).
	exitWait = 3 * time.Minute
)

// ansiSeq matches the escape sequences of the progress view.
var ansiSeq = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]`)

// screenText is what a terminal showed, without escape sequences and
// carriage returns.
func screenText(s string) string {
	return strings.ReplaceAll(ansiSeq.ReplaceAllString(s, ""), "\r", "")
}

// ptyFlow is flow running on a pseudo-terminal of its own (flow is the
// session leader, the terminal its controlling terminal).
type ptyFlow struct {
	cmd    *exec.Cmd
	tty    *os.File // the terminal's master side
	out    *testutil.SyncBuffer
	copied chan struct{}
	exited chan struct{}
	err    error // cmd.Wait's
	closed bool
}

// onPTY starts flow with args on a 150×40 pseudo-terminal.
func (h *harness) onPTY(t *testing.T, args ...string) *ptyFlow {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Dir = filepath.Dir(h.pbDir)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TERM=") && !strings.HasPrefix(e, "NO_COLOR=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 150})
	if err != nil {
		t.Fatalf("starting flow on a pseudo-terminal: %v", err)
	}
	p := &ptyFlow{cmd: cmd, tty: tty, out: &testutil.SyncBuffer{}, copied: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(p.copied)
		_, _ = io.Copy(p.out, tty) // ends with EIO once flow has exited or the master is closed
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		p.hangUp()
	})
	return p
}

// screen is what the terminal showed so far.
func (p *ptyFlow) screen() string { return screenText(p.out.String()) }

// waitPrompt polls the terminal (bounded by promptWait) until it shows the
// confirmation prompt of gate and its closing question; it fails the test
// when flow exits first.
func (p *ptyFlow) waitPrompt(t *testing.T, g engine.Gate) {
	t.Helper()
	head := "confirmation: " + g.Pos.Short() + " " + g.Step
	deadline := time.Now().Add(promptWait)
	for {
		s := p.screen()
		if i := strings.Index(s, head); i >= 0 && strings.Contains(s[i:], "to continue") {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("flow exited before it showed the prompt %q (%v):\n%s", head, p.err, tail(p.screen()))
		case <-time.After(20 * time.Millisecond): // poll interval, bounded by the deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show the prompt %q within %s:\n%s", head, promptWait, tail(p.screen()))
		}
	}
}

// typeLine types a line on the terminal.
func (p *ptyFlow) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := p.tty.Write([]byte(s + "\r")); err != nil {
		t.Fatalf("typing %q: %v", s, err)
	}
}

// interrupt presses Ctrl-C: the terminal sends SIGINT to its foreground
// process group, as a DBA's terminal does.
func (p *ptyFlow) interrupt(t *testing.T) {
	t.Helper()
	if _, err := p.tty.Write([]byte{0x03}); err != nil {
		t.Fatalf("pressing Ctrl-C: %v", err)
	}
}

// hangUp closes the terminal's master side: the kernel hangs the terminal
// up and sends SIGHUP to flow, as when the DBA's SSH session drops.
func (p *ptyFlow) hangUp() {
	if !p.closed {
		p.closed = true
		_ = p.tty.Close()
	}
}

// wait waits (bounded by exitWait) until flow exits and returns its exit
// code (-1 when a signal ended it).
func (p *ptyFlow) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(exitWait):
		_ = p.cmd.Process.Kill()
		t.Fatalf("flow did not exit within %s:\n%s", exitWait, tail(p.screen()))
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("flow: %v", p.err)
	}
	if !p.closed {
		<-p.copied
	}
	return p.cmd.ProcessState.ExitCode()
}

// startGates are flashback-start's confirmation points: before the
// detach, and at the point of no return.
func startGates(t *testing.T, h *harness) (detach, noReturn engine.Gate) {
	t.Helper()
	pb, diags := engine.Load(filepath.Join(h.pbDir, "flashback-start.yaml"))
	if pb == nil {
		t.Fatalf("flashback-start.yaml: %v", diags)
	}
	gates := engine.Gates(pb)
	if len(gates) != 2 {
		t.Fatalf("flashback-start.yaml has %d confirmation points, want 2 (before the detach, at the point of no return): %v", len(gates), gates)
	}
	return gates[0], gates[1]
}

// operatorArgs is `flow run flashback-start.yaml` on the lab without --yes
// and without --log-format: as a DBA types it.
func (h *harness) operatorArgs(d cycleDirs) []string {
	return []string{"run", filepath.Join(h.pbDir, "flashback-start.yaml"), "-c", h.lab.IniPath(),
		"--var", "redo_path=" + d.redo, "--state-dir", d.state}
}

// journalOf is the one run of a state folder, read back and verified, with
// its records.
type journalOf struct {
	run  *journal.Run
	recs []journal.Record
}

func onlyRun(t *testing.T, state string) *journalOf {
	t.Helper()
	runs, err := journal.List(state)
	if err != nil || len(runs) != 1 {
		t.Fatalf("the state folder %s holds %d run(s), want 1: %v", state, len(runs), err)
	}
	id := runs[0].RunID
	run, err := journal.Load(state, id)
	if err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	recs, err := journal.Records(state, id) // verifies the hash chain
	if err != nil {
		t.Fatalf("run %s: the journal does not verify: %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(state, "runs", id, "seal.json")); err != nil {
		t.Errorf("run %s: the journal was not closed (no seal.json): %v", id, err)
	}
	return &journalOf{run: run, recs: recs}
}

// events returns the fields of every record of the event.
func (j *journalOf) events(ev string) []map[string]any {
	var out []map[string]any
	for _, r := range j.recs {
		if r.Event == ev {
			out = append(out, r.Fields)
		}
	}
	return out
}

// requireEnd checks the run's end as the journal records it: status, and
// the exit code and number of changes of its run_exit record (changes < 0:
// any number above 0).
func (j *journalOf) requireEnd(t *testing.T, status string, code, changes int) {
	t.Helper()
	if j.run.Status != status {
		t.Errorf("the journal says the run is %q, want %q (error: %s)", j.run.Status, status, j.run.Error)
	}
	exits := j.events("run_exit")
	if len(exits) != 1 {
		t.Fatalf("the journal holds %d run_exit record(s), want 1", len(exits))
	}
	if got := num(exits[0]["exit_code"]); got != code {
		t.Errorf("run_exit records exit code %d, want %d", got, code)
	}
	switch got := num(exits[0]["changes"]); {
	case changes < 0 && got == 0:
		t.Errorf("run_exit records no change: the test meant to interrupt the run after its first change")
	case changes >= 0 && got != changes:
		t.Errorf("run_exit records %d change(s), want %d", got, changes)
	}
	if changes == 0 {
		if d := j.events("step_dispatched"); len(d) > 0 {
			t.Errorf("the journal records %d change(s) dispatched (first: %v), want none", len(d), d[0]["name"])
		}
	}
}

// requireConfirmation checks that the journal records, at the
// confirmation point named step, the outcome and how it came about, with
// the operator's name.
func (j *journalOf) requireConfirmation(t *testing.T, step, outcome, how string) map[string]any {
	t.Helper()
	var seen []string
	for _, f := range j.events("confirmation") {
		seen = append(seen, fmt.Sprintf("%v: %v (%v)", f["name"], f["outcome"], f["how"]))
		if f["name"] == step && f["outcome"] == outcome && f["how"] == how {
			if op, _ := f["operator"].(string); op == "" {
				t.Errorf("the confirmation record of %q names no operator: %v", step, f)
			}
			return f
		}
	}
	t.Errorf("the journal records no confirmation %q: %s (%s); it records: %v", step, outcome, how, seen)
	return nil
}

// requireSignal checks that the journal records the signal first, and
// that no signal abandoned the rescue.
func (j *journalOf) requireSignal(t *testing.T, name string) {
	t.Helper()
	sigs := j.events("signal")
	if len(sigs) == 0 || sigs[0]["signal"] != name {
		t.Errorf("the journal records the signal(s) %v, want %s first", sigs, name)
	}
	for _, f := range sigs {
		if a, _ := f["action"].(string); strings.HasPrefix(a, "abandon") {
			t.Errorf("a signal abandoned the rescue: %v", f)
		}
	}
}

// requireRescued checks that start's rescue section ran to its end.
func (j *journalOf) requireRescued(t *testing.T) {
	t.Helper()
	if len(j.events("rescue_started")) == 0 || len(j.events("rescue_finished")) == 0 {
		t.Errorf("the journal does not record start's rescue section running to its end (rescue_started %d, rescue_finished %d, rescue_failed %d)",
			len(j.events("rescue_started")), len(j.events("rescue_finished")), len(j.events("rescue_failed")))
	}
	if len(j.events("rescue_failed")) > 0 {
		t.Errorf("the rescue failed: %v", j.events("rescue_failed"))
	}
}

func num(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return -1
		}
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return -1
}

// requireNoRun checks that no change of the point of no return was sent.
func (j *journalOf) requireNotDispatched(t *testing.T, step string) {
	t.Helper()
	for _, f := range j.events("step_dispatched") {
		if f["name"] == step {
			t.Errorf("the journal records %q as dispatched: the point of no return was passed", step)
		}
	}
}

// TestOperatorContract runs the operator's cases on the shared lab, each
// from a healthy lab and leaving it healthy:
//   - no terminal and no --yes: exit 3 before any step; refused; untouched
//   - Ctrl-C at the first prompt; a hang-up at the first prompt: exit 130,
//     nothing sent, the journal closed saying who or what ended the prompt
//   - a wrong word at the first prompt: exit 3, untouched
//   - a hang-up at the point of no return's prompt (with the extra SIGHUPs
//     a shell and tmux send): exit 130, the rescue ran to its end, the
//     point of no return not passed, the cluster back to normal
//   - a wrong word at the point of no return's prompt: exit 4 (aborted),
//     the rescue ran, the cluster back to normal
//   - SIGTERM during a wait-gtid (a standby slave held back): exit 130,
//     the signal and the rescue in the journal, the cluster back to normal
//   - SIGTERM during a clone, past the point of no return: exit 130, the
//     signal in the journal, no rescue, the drill left open; resume and
//     stop bring the cluster back to normal
//   - both confirmations typed: exit 0 (then stop restores the standby)
//   - invalid input: exit 2, nothing ran
//
// "Untouched" is the lab's state snapshot (labState) equal before and
// after; "back to normal" is requireHealthy: the DR link on the primary
// router, no dataserver disabled or down, every standby master
// replicating from its primary master, the standby router read-only,
// both clusters' data equal.
func TestOperatorContract(t *testing.T) {
	h := newHarness(t)
	detach, noReturn := startGates(t, h)
	word := h.lab.Router(drlab.ClusterStandby).Host

	untouched := func(t *testing.T, run func(d cycleDirs) int) (*journalOf, int) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		before := labState(t, h.lab, d.redo)
		code := run(d)
		requireUnchanged(t, "the run", before, labState(t, h.lab, d.redo))
		return onlyRun(t, d.state), code
	}

	t.Run("no_terminal_no_yes", func(t *testing.T) {
		var r *flowResult
		j, code := untouched(t, func(d cycleDirs) int {
			r = h.flow(context.Background(), h.operatorArgs(d), nil) // standard input: /dev/null
			return r.Code
		})
		if code != engine.ExitRefused {
			t.Fatalf("exit %d, want %d (refused)\n%s", code, engine.ExitRefused, r.errorText())
		}
		for _, w := range []string{"no terminal", "nothing was run", "--yes", detach.Pos.Short(), noReturn.Pos.Short()} {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("the refusal does not name %q:\n%s", w, r.errorText())
			}
		}
		j.requireEnd(t, journal.StatusRefused, engine.ExitRefused, 0)
		if s := j.events("step_started"); len(s) > 0 {
			t.Errorf("a step ran (%v): the run must be refused before its first step", s[0]["name"])
		}
	})

	t.Run("ctrl_c_at_the_first_prompt", func(t *testing.T) {
		var p *ptyFlow
		j, code := untouched(t, func(d cycleDirs) int {
			p = h.onPTY(t, h.operatorArgs(d)...)
			p.waitPrompt(t, detach)
			p.interrupt(t)
			return p.wait(t)
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d (interrupted)\n%s", code, engine.ExitInterrupted, tail(p.screen()))
		}
		for _, w := range []string{"SIGINT received", "nothing was confirmed", "stopped before it changed anything", "flow resume "} {
			if !strings.Contains(p.screen(), w) {
				t.Errorf("the terminal does not say %q:\n%s", w, tail(p.screen()))
			}
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, 0)
		j.requireConfirmation(t, detach.Step, "interrupted", "signal at the prompt")
		j.requireSignal(t, "SIGINT")
	})

	t.Run("hang_up_at_the_first_prompt", func(t *testing.T) {
		j, code := untouched(t, func(d cycleDirs) int {
			p := h.onPTY(t, h.operatorArgs(d)...)
			p.waitPrompt(t, detach)
			p.hangUp()
			return p.wait(t)
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d (interrupted; -1: flow died of the SIGHUP)", code, engine.ExitInterrupted)
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, 0)
		j.requireConfirmation(t, detach.Step, "interrupted", "terminal hung up")
		j.requireSignal(t, "SIGHUP")
		for _, f := range j.events("confirmation") {
			if f["outcome"] == "declined" {
				t.Errorf("the hang-up is recorded as the operator's decline: %v", f)
			}
		}
	})

	t.Run("wrong_word_at_the_first_prompt", func(t *testing.T) {
		var p *ptyFlow
		j, code := untouched(t, func(d cycleDirs) int {
			p = h.onPTY(t, h.operatorArgs(d)...)
			p.waitPrompt(t, detach)
			p.typeLine(t, word+"0")
			return p.wait(t)
		})
		if code != engine.ExitRefused {
			t.Fatalf("exit %d, want %d (refused)\n%s", code, engine.ExitRefused, tail(p.screen()))
		}
		if !strings.Contains(p.screen(), "refused before it changed anything") {
			t.Errorf("the terminal does not say the run changed nothing:\n%s", tail(p.screen()))
		}
		j.requireEnd(t, journal.StatusRefused, engine.ExitRefused, 0)
		if f := j.requireConfirmation(t, detach.Step, "declined", "typed"); f != nil && f["typed"] != word+"0" {
			t.Errorf("the journal records %v as typed, want %q", f["typed"], word+"0")
		}
	})

	// the cases that get past the first prompt: the detach is done, the
	// rescue must put the cluster back
	rescued := func(t *testing.T, run func(d cycleDirs) int) (*journalOf, int) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		code := run(d)
		for _, p := range waitNoSideInstance(h.lab) {
			t.Errorf("after the run: %s", p)
		}
		requireHealthy(t, h.lab)
		if _, err := os.Stat(d.redo); err == nil {
			if b, _ := os.ReadFile(d.redo); len(strings.TrimSpace(string(b))) > 0 {
				t.Errorf("the redo record %s is left after the rescue: %s", d.redo, b)
			}
		}
		return onlyRun(t, d.state), code
	}

	t.Run("hang_up_at_the_point_of_no_return", func(t *testing.T) {
		j, code := rescued(t, func(d cycleDirs) int {
			p := h.onPTY(t, h.operatorArgs(d)...)
			p.waitPrompt(t, detach)
			p.typeLine(t, word)
			p.waitPrompt(t, noReturn)
			p.hangUp()
			// one hang-up sends SIGHUP more than once: the shell forwards
			// it to its jobs, tmux or sshd sends it to the session; none of
			// them may abandon the rescue. Each is sent once flow recorded
			// the one before (identical pending signals would merge).
			for n := 1; n <= 2; n++ {
				waitRecords(t, d.state, "signal", n)
				_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP)
			}
			return p.wait(t)
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d (interrupted; -1: flow died of the SIGHUP)", code, engine.ExitInterrupted)
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, -1)
		j.requireConfirmation(t, detach.Step, "confirmed", "typed")
		j.requireConfirmation(t, noReturn.Step, "interrupted", "terminal hung up")
		j.requireSignal(t, "SIGHUP")
		if n := len(j.events("signal")); n != 3 {
			t.Errorf("the journal records %d signal(s), want 3 (the hang-up's SIGHUP and two more during the clean-up)", n)
		}
		j.requireRescued(t)
		j.requireNotDispatched(t, noReturn.Step)
	})

	t.Run("wrong_word_at_the_point_of_no_return", func(t *testing.T) {
		var p *ptyFlow
		j, code := rescued(t, func(d cycleDirs) int {
			p = h.onPTY(t, h.operatorArgs(d)...)
			p.waitPrompt(t, detach)
			p.typeLine(t, word)
			p.waitPrompt(t, noReturn)
			p.typeLine(t, "yes")
			return p.wait(t)
		})
		if code != engine.ExitAborted {
			t.Fatalf("exit %d, want %d (aborted after a change)\n%s", code, engine.ExitAborted, tail(p.screen()))
		}
		for _, w := range []string{"state-changing step(s)", "the rescue of", "ran to its end", "stopped after it had changed something"} {
			if !strings.Contains(p.screen(), w) {
				t.Errorf("the terminal does not say %q:\n%s", w, tail(p.screen()))
			}
		}
		j.requireEnd(t, journal.StatusAborted, engine.ExitAborted, -1)
		j.requireConfirmation(t, noReturn.Step, "declined", "typed")
		j.requireRescued(t)
		j.requireNotDispatched(t, noReturn.Step)
	})

	t.Run("sigterm_during_wait_gtid", func(t *testing.T) {
		lab := h.lab
		slave := standbySlave(lab)
		var conn *sql.Conn
		var release func()
		var held, primaryGTID string
		var injectErr error
		var sent bool
		waitStep := ""
		j, code := rescued(t, func(d cycleDirs) int {
			args := append(h.operatorArgs(d), "--yes", "--log-format", "json")
			r := h.flow(context.Background(), args, func(ev flowEvent, pid int) bool {
				switch {
				case conn == nil && injectErr == nil && ev.Event == "step_started" && ev.Name == "Step 06 check replication relationship":
					// before the detach, flow paused: the standby slave
					// stops applying (a global read lock), and one more
					// primary transaction reaches the standby master, so
					// the slave cannot reach the detach point
					injectErr = paused(pid, func() error {
						var err error
						conn, release, primaryGTID, err = holdBackSlave(lab, slave)
						return err
					})
				case !sent && conn != nil && ev.Event == "step_started" && ev.Type == "wait-gtid" &&
					strings.HasPrefix(ev.Name, "Step 11 ") && strings.Contains(ev.Name, " "+slave.Host+" "):
					waitStep, sent = ev.Name, true
					_ = syscall.Kill(pid, syscall.SIGTERM)
				}
				return false
			})
			if conn != nil {
				held = gtidExecuted(t, conn)
				release()
			}
			if injectErr != nil {
				t.Fatalf("holding the standby slave %s back: %v", slave, injectErr)
			}
			if !sent {
				t.Fatalf("no wait-gtid of Step 11 on %s started: exit %d\n%s", slave.Host, r.Code, r.errorText())
			}
			return r.Code
		})
		if code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d (interrupted)", code, engine.ExitInterrupted)
		}
		if ok, err := gtidContains(held, primaryGTID); err != nil || ok {
			t.Errorf("the held-back slave had applied %s (%v): the wait could have ended by itself", primaryGTID, err)
		}
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, -1)
		j.requireSignal(t, "SIGTERM")
		j.requireRescued(t)
		requireStepCut(t, j, waitStep)
	})

	// past the point of no return (the clones run after Step 12 opened the
	// standby) a signal leaves the drill open: no rescue, which would
	// re-attach a standby that may hold the drill's writes; resume finishes
	// the start and stop restores the standby
	t.Run("sigterm_during_the_clone", func(t *testing.T) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		var cloneAt string
		args := append(h.operatorArgs(d), "--yes", "--log-format", "json")
		r := h.flow(context.Background(), args, func(ev flowEvent, pid int) bool {
			if cloneAt == "" && ev.Event == "clone_started" {
				cloneAt = ev.Donor
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
			return false
		})
		if cloneAt == "" {
			t.Fatalf("no clone started: exit %d\n%s", r.Code, r.errorText())
		}
		if r.Code != engine.ExitInterrupted {
			t.Fatalf("exit %d, want %d (interrupted)\n%s", r.Code, engine.ExitInterrupted, r.errorText())
		}
		j := onlyRun(t, d.state)
		j.requireEnd(t, journal.StatusInterrupted, engine.ExitInterrupted, -1)
		j.requireSignal(t, "SIGTERM")
		if n := len(j.events("rescue_started")); n > 0 {
			t.Errorf("start's rescue ran %d time(s) past the point of no return", n)
		}
		if !strings.Contains(r.Stderr, "flow resume "+r.RunID) {
			t.Errorf("the error does not say to resume run %s:\n%s", r.RunID, r.errorText())
		}
		cut := ""
		for _, s := range j.run.Steps {
			if s.Type == "clone" && s.State != journal.StepDone {
				cut = s.Name
			}
		}
		if cut == "" {
			t.Errorf("no clone step was cut short by the SIGTERM (donor %s): every clone finished", cloneAt)
		} else {
			requireStepCut(t, j, cut)
		}
		for _, p := range openDrillProblems(h.lab) {
			t.Errorf("after the SIGTERM: %s", p)
		}
		if rr := h.flow(context.Background(), resumeArgs(r.RunID, d.state), nil); rr.Code != 0 {
			t.Fatalf("resume after the SIGTERM: exit %d\n%s", rr.Code, rr.errorText())
		}
		if st := h.flow(context.Background(), h.runArgs("flashback-stop.yaml", d.state, d.redo), nil); st.Code != 0 {
			t.Fatalf("stop after the resumed start: exit %d\n%s", st.Code, st.errorText())
		}
		requireHealthy(t, h.lab)
	})

	t.Run("both_confirmations_typed", func(t *testing.T) {
		h.ensureHealthy(t)
		d := newCycleDirs(t)
		p := h.onPTY(t, h.operatorArgs(d)...)
		p.waitPrompt(t, detach)
		p.typeLine(t, word)
		p.waitPrompt(t, noReturn)
		p.typeLine(t, word)
		if code := p.wait(t); code != engine.ExitOK {
			t.Fatalf("exit %d, want 0\n%s", code, tail(p.screen()))
		}
		j := onlyRun(t, d.state)
		j.requireEnd(t, journal.StatusSuccess, engine.ExitOK, -1)
		j.requireConfirmation(t, detach.Step, "confirmed", "typed")
		j.requireConfirmation(t, noReturn.Step, "confirmed", "typed")
		if st := h.flow(context.Background(), h.runArgs("flashback-stop.yaml", d.state, d.redo), nil); st.Code != 0 {
			t.Fatalf("stop after the confirmed start: exit %d\n%s", st.Code, st.errorText())
		}
		requireHealthy(t, h.lab)
	})

	t.Run("invalid_input", func(t *testing.T) {
		var r *flowResult
		j, code := untouched(t, func(d cycleDirs) int {
			r = h.flow(context.Background(), append(h.operatorArgs(d), "--var", "max_lag_seconds=soon"), nil)
			return r.Code
		})
		if code != engine.ExitInvalid {
			t.Fatalf("exit %d, want %d (invalid input)\n%s", code, engine.ExitInvalid, r.errorText())
		}
		if !strings.Contains(r.Stderr, "max_lag_seconds") {
			t.Errorf("the error does not name the parameter:\n%s", r.errorText())
		}
		j.requireEnd(t, journal.StatusInvalid, engine.ExitInvalid, 0)
		if s := j.events("step_started"); len(s) > 0 {
			t.Errorf("a step ran (%v): invalid input must stop the run before its first step", s[0]["name"])
		}
	})
}

// waitRecords polls (bounded by exitWait) the journal of the one run in
// state until it holds n records of the event; flow may still be writing
// it, so it is read as text, not verified.
func waitRecords(t *testing.T, state, event string, n int) {
	t.Helper()
	waitJournal(t, state, event, n, func(string) bool { return true })
}

// waitStepStarted is waitRecords for the start of the step named name.
func waitStepStarted(t *testing.T, state, name string) {
	t.Helper()
	quoted, _ := json.Marshal(name)
	waitJournal(t, state, event.StepStarted, 1, func(line string) bool {
		return strings.Contains(line, `"name":`+string(quoted))
	})
}

// waitJournal polls (bounded by exitWait) until the journal of the one run
// in state holds n records of ev whose line matches.
func waitJournal(t *testing.T, state, ev string, n int, match func(line string) bool) {
	t.Helper()
	deadline := time.Now().Add(exitWait)
	for {
		files, _ := filepath.Glob(filepath.Join(state, "runs", "*", "journal.jsonl"))
		got := 0
		if len(files) == 1 {
			b, _ := os.ReadFile(files[0])
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"event":"`+ev+`"`) && match(line) {
					got++
				}
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal in %s holds %d matching %s record(s) after %s, want %d", state, got, ev, exitWait, n)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// holdBackSlave makes a standby slave unable to apply anything new: a
// global read lock held on one of its sessions (its applier waits, its
// replication stays running, so a wait-gtid on it keeps waiting); then one
// transaction is written on the primary master and waited for on the
// standby master. It returns the session, the release (UNLOCK TABLES and
// close) and that transaction's GTID set.
func holdBackSlave(lab *drlab.Lab, slave drlab.Node) (*sql.Conn, func(), string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := lab.OpenNode(slave)
	if err != nil {
		return nil, nil, "", err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, "", err
	}
	release := func() {
		_, _ = conn.ExecContext(context.Background(), "UNLOCK TABLES")
		conn.Close()
		db.Close()
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		release()
		return nil, nil, "", fmt.Errorf("%s: FLUSH TABLES WITH READ LOCK: %w", slave, err)
	}
	if _, err := lab.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltPrimary, Duration: time.Second, MaxRows: 1}); err != nil {
		release()
		return nil, nil, "", fmt.Errorf("a write on the primary: %w", err)
	}
	pdb, err := lab.OpenNode(lab.Master(drlab.ClusterPrimary, slave.Shard))
	if err != nil {
		release()
		return nil, nil, "", err
	}
	defer pdb.Close()
	var g string
	if err := pdb.QueryRowContext(ctx, `SELECT REPLACE(@@GLOBAL.gtid_executed, '\n', '')`).Scan(&g); err != nil {
		release()
		return nil, nil, "", err
	}
	inst, err := lab.Instance(lab.Master(drlab.ClusterStandby, slave.Shard), nil)
	if err == nil {
		err = inst.WaitGTIDs(ctx, g)
	}
	if err != nil {
		release()
		return nil, nil, "", fmt.Errorf("the standby master did not receive the primary's write: %w", err)
	}
	return conn, release, g, nil
}

// gtidContains reports whether the GTID set have holds every transaction
// of want (MySQL's GTID_SUBSET, on no server: plain set algebra).
func gtidContains(have, want string) (bool, error) {
	s, err := gtid.Parse(have)
	if err != nil {
		return false, err
	}
	w, err := gtid.Parse(want)
	if err != nil {
		return false, err
	}
	return s.Contains(w), nil
}

// requireStepCut checks that the journal records the step as cut short by
// the signal: started, not finished.
func requireStepCut(t *testing.T, j *journalOf, name string) {
	t.Helper()
	for _, s := range j.run.Steps {
		if s.Name != name {
			continue
		}
		if s.State == journal.StepDone {
			t.Errorf("%q finished: the signal came after it, not during it", name)
		}
		t.Logf("%q: %s: %s", name, s.State, firstLine(s.Error))
		return
	}
	t.Errorf("the journal records no step %q", name)
}
