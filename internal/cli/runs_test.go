package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/journal/runlock"
)

// tinyPlaybook runs without MySQL or SSH: set, log, assert and a skipped step.
const tinyPlaybook = `name: tiny
params:
  greeting: {type: string, default: hi}
  admin_password: {type: string, secret: true}
steps:
  - name: Step 01 compute
    id: compute
    set:
      x: '"1"'
  - name: Step 02 say
    log: {msg: "{{ greeting }} {{ x }}"}
  - name: Step 03 check
    assert: {that: x == "1", message: "x is not 1"}
  - name: Step 04 never
    when: x == "2"
    log: {msg: never}
`

// writePlaybook writes a playbook into dir and returns its path.
func writePlaybook(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// onlyRun returns the single run in state, failing otherwise.
func onlyRun(t *testing.T, state string) journal.Summary {
	t.Helper()
	runs, err := journal.List(state)
	if err != nil || len(runs) != 1 {
		t.Fatalf("journal.List(%s) = %+v, %v; want one run", state, runs, err)
	}
	return runs[0]
}

func TestRunJournalStatusAudit(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "tiny.yaml", tinyPlaybook)
	const pass = "Pw-never-in-the-journal-42"

	code, stdout, stderr := runFlow("run", pb, "--state-dir", state, "--var", "greeting=hello", "--var", "admin_password="+pass)
	if code != 0 {
		t.Fatalf("flow run: exit %d\n%s%s", code, stdout, stderr)
	}
	run := onlyRun(t, state)
	if run.Status != journal.StatusSuccess || run.ExitCode != 0 || run.Mode != "run" || run.Name != "tiny" {
		t.Errorf("the run's summary = %+v", run)
	}
	raw, err := os.ReadFile(journal.Path(state, run.RunID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), pass) {
		t.Errorf("the journal holds the secret parameter:\n%s", raw)
	}

	code, stdout, _ = runFlow("runs", "--state-dir", state)
	if code != 0 || !strings.Contains(stdout, run.RunID) || !strings.Contains(stdout, "success") || !strings.Contains(stdout, "tiny.yaml") {
		t.Errorf("flow runs: exit %d\n%s", code, stdout)
	}

	code, stdout, stderr = runFlow("status", run.RunID, "--state-dir", state)
	if code != 0 {
		t.Fatalf("flow status: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"status    success (exit 0)", "admin_password=******", "greeting=hello",
		"steps: 3 done, 0 failed, 0 refused, 1 skipped", "done", "tiny.yaml:6 Step 01 compute [set]",
		"tiny.yaml:12 Step 03 check [assert]", "skipped", "Step 04 never", `why: ` + "`when: x == \"2\"` is false"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("flow status lacks %q:\n%s", want, stdout)
		}
	}
	if code, last, _ := runFlow("status", "last", "--state-dir", state); code != 0 || last != stdout {
		t.Errorf("flow status last differs from flow status %s (exit %d)", run.RunID, code)
	}

	code, stdout, stderr = runFlow("audit", run.RunID, "--state-dir", state)
	if code != 0 || !strings.Contains(stdout, "journal intact: 22 records") {
		t.Fatalf("flow audit of an untouched journal: exit %d\n%s%s", code, stdout, stderr)
	}

	// an operator "corrects" the journal: audit names the line
	lines := strings.SplitAfter(string(raw), "\n")
	bad := 0
	for i, l := range lines {
		if strings.Contains(l, `"event":"step_started"`) && strings.Contains(l, "Step 02 say") {
			lines[i] = strings.Replace(l, "Step 02 say", "Step 02 said", 1)
			bad = i + 1
			break
		}
	}
	if bad == 0 {
		t.Fatalf("no step_started record of Step 02 in the journal:\n%s", raw)
	}
	if err := os.WriteFile(journal.Path(state, run.RunID), []byte(strings.Join(lines, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runFlow("audit", run.RunID, "--state-dir", state)
	if want := "line " + strconv.Itoa(bad) + ": its hash does not match its content"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("flow audit of an edited journal: exit %d, stderr %q; want exit 1 and %q\n%s", code, stderr, want, stdout)
	}

	// a dry run gets a journal too, marked dry-run
	if code, stdout, stderr := runFlow("run", "--dry-run", pb, "--state-dir", state, "--var", "admin_password="+pass); code != 0 {
		t.Fatalf("flow run --dry-run: exit %d\n%s%s", code, stdout, stderr)
	}
	runs, _ := journal.List(state)
	if len(runs) != 2 || runs[1].Mode != "dry-run" || runs[1].Status != journal.StatusSuccess {
		t.Errorf("after a dry run the runs are %+v", runs)
	}

	if code, _, stderr := runFlow("status", "nope", "--state-dir", state); code != 2 || !strings.Contains(stderr, `no run "nope"`) {
		t.Errorf("flow status nope: exit %d, %s", code, stderr)
	}

	// a misspelt parameter name: the run is invalid, and the value (maybe a
	// password) stays out of the journal
	if code, _, stderr := runFlow("run", pb, "--state-dir", state, "--var", "admin_pasword="+pass); code != 2 || !strings.Contains(stderr, "nothing ran") {
		t.Errorf("flow run with a misspelt parameter: exit %d: %s", code, stderr)
	}
	runs, _ = journal.List(state)
	if len(runs) != 3 || runs[2].Status != journal.StatusInvalid {
		t.Fatalf("after an invalid run the runs are %+v", runs)
	}
	if raw, _ := os.ReadFile(journal.Path(state, runs[2].RunID)); strings.Contains(string(raw), pass) {
		t.Errorf("the journal of the invalid run holds the misspelt parameter's value:\n%s", raw)
	}
}

// TestRunRefusedAndFailed: the journal says refused (exit 3) and failed
// (exit 1), and flow status names the step.
func TestRunRefusedAndFailed(t *testing.T) {
	dir := t.TempDir()
	refuse := writePlaybook(t, dir, "refuse.yaml", `name: refuse
steps:
  - name: Step 01 the disk is full
    assert: {that: 1 > 2, message: "the disk is full"}
`)
	fail := writePlaybook(t, dir, "fail.yaml", `name: fail
steps:
  - name: Step 01 never holds
    set: {x: 1}
    until: x == 2
    retries: 1
    interval: 10ms
`)
	for _, c := range []struct {
		pb, status, step string
		code             int
	}{
		{refuse, journal.StatusRefused, "refused  ", 3},
		{fail, journal.StatusFailed, "failed   ", 1},
	} {
		state := filepath.Join(dir, c.status)
		code, _, stderr := runFlow("run", c.pb, "--state-dir", state)
		run := onlyRun(t, state)
		if code != c.code || run.Status != c.status || run.ExitCode != c.code {
			t.Errorf("%s: exit %d, journal %+v; want exit %d and status %s", c.pb, code, run, c.code, c.status)
		}
		if !strings.Contains(stderr, "flow status "+run.RunID+" --state-dir "+state) {
			t.Errorf("%s: stderr does not say how to see the run:\n%s", c.pb, stderr)
		}
		_, stdout, _ := runFlow("status", run.RunID, "--state-dir", state)
		if !strings.Contains(stdout, c.step) || !strings.Contains(stdout, "Step 01") || !strings.Contains(stdout, "error:") {
			t.Errorf("%s: flow status does not show the %s step:\n%s", c.pb, c.status, stdout)
		}
	}
}

// TestRunLockHeld: a second run on the same state directory fails fast with
// exit 2 naming the holder, and leaves no journal.
func TestRunLockHeld(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "tiny.yaml", tinyPlaybook)
	l, err := runlock.Acquire(state, runlock.Holder{RunID: "20261123T204501Z-beef", Playbook: "flashback-start.yaml", Host: "ctl-holder", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runFlow("run", pb, "--state-dir", state)
	for _, want := range []string{"20261123T204501Z-beef", "host ctl-holder", "pid 4242", "since ", "flashback-start.yaml"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refused run's stderr lacks %q: %s", want, stderr)
		}
	}
	if code != 2 {
		t.Errorf("flow run while the lock is held: exit %d, want 2", code)
	}
	if runs, _ := journal.List(state); len(runs) != 0 {
		t.Errorf("the refused run left a journal: %+v", runs)
	}
	if code, _, _ := runFlow("run", "--dry-run", pb, "--state-dir", state); code != 2 {
		t.Errorf("flow run --dry-run while the lock is held: exit %d, want 2", code)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runFlow("run", pb, "--state-dir", state); code != 0 {
		t.Errorf("flow run after the lock was released: exit %d: %s", code, stderr)
	}
	if _, err := runlock.ReadHolder(state); err == nil {
		t.Error("the finished run left its lock sidecar")
	}
}

// TestDefaultStateDirAndPlan: without --state-dir the journal goes to the
// DBA's own state folder ($XDG_STATE_HOME/flow, else ~/.local/state/flow),
// or to $FLOW_STATE_DIR when set, whatever the working directory; plan
// writes none. A working directory whose .flow holds runs of an earlier
// flow's default is named in the notes and errors, with --state-dir .flow.
func TestDefaultStateDirAndPlan(t *testing.T) {
	dir := t.TempDir()
	pb := writePlaybook(t, dir, "tiny.yaml", tinyPlaybook)
	xdg := filepath.Join(dir, "xdg-state")
	t.Setenv("FLOW_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", xdg)
	state := filepath.Join(xdg, "flow")
	t.Chdir(dir)
	if code, _, stderr := runFlow("plan", pb); code != 0 {
		t.Fatalf("flow plan: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("flow plan created the state directory: %v", err)
	}
	if code, _, stderr := runFlow("run", pb); code != 0 {
		t.Fatalf("flow run: exit %d: %s", code, stderr)
	}
	onlyRun(t, state)
	if _, err := os.Stat(".flow"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("flow run wrote ./.flow in the working directory: %v", err)
	}
	t.Chdir(t.TempDir())
	if code, stdout, _ := runFlow("runs"); code != 0 || !strings.Contains(stdout, "success") {
		t.Errorf("flow runs from another folder: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ := runFlow("runs", "--state-dir", filepath.Join(dir, "empty")); code != 0 || !strings.Contains(stdout, "no runs in") {
		t.Errorf("flow runs of an empty state dir: exit %d\n%s", code, stdout)
	}
	// no XDG_STATE_HOME: the home directory's .local/state/flow
	home := filepath.Join(dir, "home")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", home)
	if code, _, stderr := runFlow("run", pb); code != 0 {
		t.Fatalf("flow run with HOME only: exit %d: %s", code, stderr)
	}
	onlyRun(t, filepath.Join(home, ".local", "state", "flow"))
	// FLOW_STATE_DIR moves the default
	shared := filepath.Join(dir, "shared-state")
	t.Setenv("FLOW_STATE_DIR", shared)
	if code, _, stderr := runFlow("run", pb); code != 0 {
		t.Fatalf("flow run with FLOW_STATE_DIR: exit %d: %s", code, stderr)
	}
	onlyRun(t, shared)
	t.Chdir(t.TempDir())
	if code, stdout, _ := runFlow("runs"); code != 0 || !strings.Contains(stdout, "success") {
		t.Errorf("flow runs from another folder with FLOW_STATE_DIR: exit %d\n%s", code, stdout)
	}
	// runs an earlier flow kept in ./.flow are named, never silently lost
	legacy := t.TempDir()
	t.Chdir(legacy)
	if code, _, stderr := runFlow("run", pb, "--state-dir", ".flow"); code != 0 {
		t.Fatalf("flow run --state-dir .flow: exit %d: %s", code, stderr)
	}
	code, _, stderr := runFlow("run", pb)
	if code != 0 || !strings.Contains(stderr, "./.flow holds runs") || !strings.Contains(stderr, "--state-dir .flow") {
		t.Errorf("flow run beside an old ./.flow: exit %d, want a note naming it:\n%s", code, stderr)
	}
	if code, _, stderr := runFlow("status", "nope"); code != 2 || !strings.Contains(stderr, "--state-dir .flow") {
		t.Errorf("flow status of an unknown run beside an old ./.flow: exit %d, want the hint:\n%s", code, stderr)
	}
}

// TestRedoDefaultInStateDir: a redo step whose path renders empty keeps
// the record as redo.json in the run's state directory, not in the working
// directory.
func TestRedoDefaultInStateDir(t *testing.T) {
	dir := t.TempDir()
	pb := writePlaybook(t, dir, "redo.yaml", `name: redo-default
params:
  redo_path: {type: string, default: ""}
steps:
  - name: write the record
    redo: {action: write, path: "{{ redo_path }}", values: {step: "'one'"}}
  - name: read it back
    redo: {action: read, path: "{{ redo_path }}"}
    register: rec
  - assert: {that: rec.values.step == "one", message: "read back {{ rec.values }}"}
`)
	state := filepath.Join(dir, "state")
	t.Chdir(t.TempDir())
	if code, _, stderr := runFlow("run", pb, "--state-dir", state); code != 0 {
		t.Fatalf("flow run: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "redo.json")); err != nil {
		t.Errorf("the record is not in the state directory: %v", err)
	}
	if files, _ := filepath.Glob("*"); len(files) != 0 {
		t.Errorf("the run wrote into the working directory: %v", files)
	}
}

// waitPlaybook's second step waits for a value that never comes (a bounded
// poll of up to a minute): the moment to interrupt.
const waitPlaybook = `name: waits
steps:
  - name: Step 01 hello
    log: {msg: hello}
  - name: Step 02 wait for a value that never comes
    set: {x: '"1"'}
    until: x == "2"
    retries: 600
    interval: 100ms
`

// TestRunInterrupted runs flow as a process, signals it while step 2 waits,
// and expects exit 130, the message on stderr and an interrupted journal.
func TestRunInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flow and runs it as a process")
	}
	dir := t.TempDir()
	bin := testutil.BuildFlow(t)
	pb := writePlaybook(t, dir, "wait.yaml", waitPlaybook)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", pb, "--state-dir", state, "--log-format", "json")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waiting := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				seen := false
				for sc.Scan() {
					var ev struct {
						Event string `json:"event"`
						Line  int    `json:"line"`
					}
					if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "step_started" && ev.Line == 5 && !seen {
						seen = true
						waiting <- true
					}
				}
				if !seen {
					waiting <- false
				}
			}()
			if !<-waiting {
				cmd.Wait()
				t.Fatalf("flow ended before step 2 started; stderr:\n%s", stderr.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			if ctx.Err() != nil {
				t.Fatalf("flow did not end within 2 minutes of %s", sig)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("flow after %s: %v, want exit 130; stderr:\n%s", sig, err, stderr.String())
			}
			run := onlyRun(t, state)
			for _, want := range []string{"flow: interrupted:", "flow resume " + run.RunID, run.RunID} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if run.Status != journal.StatusInterrupted || run.ExitCode != 130 {
				t.Errorf("the journal says %+v, want interrupted, exit 130", run)
			}
			raw, _ := os.ReadFile(journal.Path(state, run.RunID))
			finished := ""
			for _, line := range strings.Split(string(raw), "\n") {
				var rec journal.Record
				if json.Unmarshal([]byte(line), &rec) == nil && rec.Event == event.RunFinished {
					finished, _ = rec.Fields["status"].(string)
				}
			}
			if finished != journal.StatusInterrupted {
				t.Errorf("the run_finished record's status is %q, want interrupted:\n%s", finished, raw)
			}
			full, err := journal.Load(state, run.RunID)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(full.Steps); n != 2 || full.Steps[1].Line != 5 || full.Steps[1].State != journal.StepFailed {
				t.Errorf("the interrupted run's steps = %+v", full.Steps)
			}
			if _, err := journal.Verify(state, run.RunID); err != nil {
				t.Errorf("the interrupted run's journal fails verification: %v", err)
			}
			if _, err := runlock.ReadHolder(state); err == nil {
				t.Error("the interrupted run left its lock sidecar")
			}
		})
	}
}

// TestDryRunLogSaysChangesNotMade: a log line a dry run reaches after it
// listed a change says that the listed changes were not made; before any
// change it is printed as written.
func TestDryRunLogSaysChangesNotMade(t *testing.T) {
	dir := t.TempDir()
	pb := writePlaybook(t, dir, "said.yaml", `name: said
steps:
  - name: before
    log: {msg: nothing yet}
  - name: the change
    redo: {action: write, path: "`+filepath.Join(dir, "rec.json")+`", values: {step: "'one'"}}
  - name: after
    log: {msg: the record is written}
`)
	code, stdout, stderr := runFlow("run", "--dry-run", pb, "--state-dir", filepath.Join(dir, "state"))
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	out := stdout + stderr
	if !strings.Contains(out, "(dry run: the 1 change(s) listed so far were not made) the record is written") {
		t.Errorf("the log line after the listed change does not say it was not made:\n%s", out)
	}
	if strings.Contains(out, "were not made) nothing yet") {
		t.Errorf("the log line before any change got the dry-run note:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "rec.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run wrote the record: %v", err)
	}
}

// TestInterruptedHint: an interrupted run's way on says what resume means:
// continue (nothing changed, or changes stand) or try again (the rescue put
// everything back).
func TestInterruptedHint(t *testing.T) {
	id := "20261208T000000Z-abcd"
	for _, c := range []struct {
		o    engine.Outcome
		want string
	}{
		{engine.Outcome{}, "stopped before it changed anything"},
		{engine.Outcome{Changes: 4, Rescues: []engine.RescueOutcome{{Step: "x:80 freeze", Outcome: "done", Changes: 2}}}, "its rescue put back what it had changed"},
		{engine.Outcome{Changes: 4}, "stopped; see what ran"},
		{engine.Outcome{Changes: 4, Rescues: []engine.RescueOutcome{{Step: "x:80 freeze", Outcome: "failed"}}}, "stopped; see what ran"},
		{engine.Outcome{Changes: 4, NoReturn: "open", Rescues: []engine.RescueOutcome{{Step: "x:80 freeze", Outcome: "done"}}}, "stopped; see what ran"},
	} {
		got := interruptedHint(c.o, id, "")
		if !strings.Contains(got, c.want) || !strings.Contains(got, "\n  flow resume "+id) {
			t.Errorf("%+v: %q, want %q and the resume line", c.o, got, c.want)
		}
	}
}
