package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
)

// resumePlaybook changes local state with redo records (no MySQL or SSH):
// step 1 writes a record, step 2 needs a file the test creates later, step
// 3 writes a second record from what step 2 read.
const resumePlaybook = `name: resumable
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 first change
    redo: {action: write, path: "{{ dir }}/one.json", values: {n: "1"}}
    undo:
      - name: undo the first change
        redo: {action: clear, path: "{{ dir }}/one.json"}
  - name: Step 02 read what the operator provides
    redo: {action: read, path: "{{ dir }}/input.json", required: true}
    register: input
  - name: Step 03 second change
    redo: {action: write, path: "{{ dir }}/two.json", values: {from: input.values.n}}
`

// journalEvents returns the events of a run's journal with their fields.
func journalEvents(t *testing.T, state, id string) []journal.Record {
	t.Helper()
	raw, err := os.ReadFile(journal.Path(state, id))
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Record
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec journal.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

func countEvents(recs []journal.Record, event, nameHas string) int {
	n := 0
	for _, r := range recs {
		if name, _ := r.Fields["name"].(string); r.Event == event && strings.Contains(name, nameHas) {
			n++
		}
	}
	return n
}

// TestResumeFailedRun: a run fails at step 2; the operator fixes the cause;
// flow resume continues in the same journal without running step 1 again
// (its record, deleted meanwhile, stays deleted) and finishes.
func TestResumeFailedRun(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "resumable.yaml", resumePlaybook)
	code, stdout, stderr := runFlow("run", pb, "--state-dir", state, "--var", "dir="+dir)
	if code != 1 {
		t.Fatalf("flow run: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	run := onlyRun(t, state)
	if !strings.Contains(stderr, "flow resume "+run.RunID) {
		t.Errorf("the failure does not say how to resume:\n%s", stderr)
	}
	// prove step 1 is not repeated: remove what it wrote
	if err := os.Remove(filepath.Join(dir, "one.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "input.json"), []byte(`{"n":"7"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeRedo(t, filepath.Join(dir, "input.json"), map[string]any{"n": "7"})
	code, stdout, stderr = runFlow("resume", run.RunID, "--state-dir", state)
	if code != 0 {
		t.Fatalf("flow resume: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "one.json")); !os.IsNotExist(err) {
		t.Errorf("step 1 ran again on resume (one.json is back): %v", err)
	}
	two, err := os.ReadFile(filepath.Join(dir, "two.json"))
	if err != nil || !strings.Contains(string(two), `"7"`) {
		t.Errorf("step 3 did not write what step 2 read: %s, %v", two, err)
	}
	recs := journalEvents(t, state, run.RunID)
	if n := countEvents(recs, "step_restored", "Step 01"); n != 1 {
		t.Errorf("step_restored of step 1: %d records, want 1", n)
	}
	if n := countEvents(recs, "step_finished", "Step 03"); n != 1 {
		t.Errorf("step_finished of step 3: %d records, want 1", n)
	}
	if n := countEvents(recs, event.RunResumed, ""); n != 1 {
		t.Errorf("run_resumed: %d records, want 1", n)
	}
	if _, err := journal.Verify(state, run.RunID); err != nil {
		t.Errorf("the resumed journal fails verification: %v", err)
	}
	sum := onlyRun(t, state)
	if sum.Status != journal.StatusSuccess || sum.Attempts != 1 {
		t.Errorf("after resume the run is %+v, want success after 1 more attempt", sum)
	}
	code, _, stderr = runFlow("resume", run.RunID, "--state-dir", state)
	if code != 2 || !strings.Contains(stderr, "nothing to resume") {
		t.Errorf("resuming a finished run: exit %d, %s", code, stderr)
	}
}

// writeRedo writes a redo record file the way the redo step reads it.
func writeRedo(t *testing.T, path string, values map[string]any) {
	t.Helper()
	dir := t.TempDir()
	pb := writePlaybook(t, dir, "w.yaml", `name: w
params:
  path: {type: string, required: true}
steps:
  - redo: {action: write, path: "{{ path }}", values: {n: '"7"'}}
`)
	if code, out, errs := runFlow("run", pb, "--state-dir", filepath.Join(dir, "s"), "--var", "path="+path); code != 0 {
		t.Fatalf("writing %s: exit %d\n%s%s", path, code, out, errs)
	}
}

// TestResumeRefusesChangedPlaybook: the change is named; --force goes on.
func TestResumeRefusesChangedPlaybook(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "resumable.yaml", resumePlaybook)
	if code, _, _ := runFlow("run", pb, "--state-dir", state, "--var", "dir="+dir); code != 1 {
		t.Fatalf("flow run: exit %d, want 1", code)
	}
	run := onlyRun(t, state)
	writePlaybook(t, dir, "resumable.yaml", strings.Replace(resumePlaybook, "Step 03 second change", "Step 03 another change", 1))
	writeRedo(t, filepath.Join(dir, "input.json"), nil)
	code, _, stderr := runFlow("resume", run.RunID, "--state-dir", state)
	if code != 2 {
		t.Fatalf("resume of a changed playbook: exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{"changed since run", "-  - name: Step 03 second change", "+  - name: Step 03 another change", "--force"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, stderr)
		}
	}
	code, out, stderr := runFlow("resume", run.RunID, "--state-dir", state, "--force")
	if code != 0 {
		t.Fatalf("resume --force: exit %d\n%s%s", code, out, stderr)
	}
}

// TestResumeAsksWhenItCannotTell: a state-changing step declared
// `resume: ask` that failed makes resume stop with exit 3, naming the key;
// --rerun KEY answers.
func TestResumeAsksWhenItCannotTell(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	text := strings.Replace(resumePlaybook, `  - name: Step 03 second change
    redo:`, `  - name: Step 03 second change
    resume: ask
    redo:`, 1)
	text = strings.Replace(text, `"{{ dir }}/two.json"`, `"{{ dir }}/sub/two.json"`, 1)
	pb := writePlaybook(t, dir, "ask.yaml", text)
	writeRedo(t, filepath.Join(dir, "input.json"), nil)
	// a file where the folder should be: step 3 fails
	if err := os.WriteFile(filepath.Join(dir, "sub"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runFlow("run", pb, "--state-dir", state, "--var", "dir="+dir); code != 1 {
		t.Fatalf("flow run: exit %d, want 1\n%s%s", code, out, errs)
	}
	run := onlyRun(t, state)
	code, _, stderr := runFlow("resume", run.RunID, "--state-dir", state)
	if code != 3 {
		t.Fatalf("resume: exit %d, want 3\n%s", code, stderr)
	}
	key := "ask.yaml:13:5"
	for _, want := range []string{"resume stops at step", "--done '" + key + "'", "--rerun '" + key + "'"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, stderr)
		}
	}
	if err := os.Remove(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runFlow("resume", run.RunID, "--state-dir", state, "--rerun", "nope"); code != 2 || !strings.Contains(errs, key) {
		t.Errorf("--rerun with an unknown key: exit %d, want 2 listing %s\n%s%s", code, key, out, errs)
	}
	if code, out, errs := runFlow("resume", run.RunID, "--state-dir", state, "--rerun", key); code != 0 {
		t.Fatalf("resume --rerun: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "two.json")); err != nil {
		t.Errorf("step 3 did not run again: %v", err)
	}
}

// TestRollback: the finished change with an undo is undone; a dry run only
// shows it; a point of no return refuses.
func TestRollback(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "resumable.yaml", resumePlaybook)
	if code, _, _ := runFlow("run", pb, "--state-dir", state, "--var", "dir="+dir); code != 1 {
		t.Fatalf("flow run: exit %d, want 1", code)
	}
	run := onlyRun(t, state)
	code, out, errs := runFlow("rollback", run.RunID, "--state-dir", state, "--dry-run")
	if code != 0 || !strings.Contains(out, "1 change(s) to undo") || !strings.Contains(out, "Step 01 first change") {
		t.Fatalf("rollback --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "one.json")); err != nil {
		t.Fatalf("the dry run undid something: %v", err)
	}
	if code, out, errs := runFlow("rollback", run.RunID, "--state-dir", state); code != 3 || !strings.Contains(errs, "--yes") {
		t.Errorf("rollback without a terminal or --yes: exit %d, want 3\n%s%s", code, out, errs)
	}
	code, out, errs = runFlow("rollback", run.RunID, "--state-dir", state, "--yes")
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "one.json"))
	if err == nil && strings.Contains(string(b), `"n"`) {
		t.Errorf("the undo did not clear one.json: %s", b)
	}
	if sum := onlyRun(t, state); sum.Status != journal.StatusRolledBack {
		t.Errorf("after rollback the run is %q, want %s", sum.Status, journal.StatusRolledBack)
	}
	if code, _, errs := runFlow("resume", run.RunID, "--state-dir", state); code != 2 || !strings.Contains(errs, "rolled back") {
		t.Errorf("resume after rollback: exit %d\n%s", code, errs)
	}

	// point of no return
	state2 := filepath.Join(dir, "state2")
	pnr := strings.Replace(resumePlaybook, "  - name: Step 02 read what the operator provides\n", "  - name: Step 02 read what the operator provides\n    point_of_no_return: \"the data moved on: run restore.yaml instead\"\n", 1)
	pb2 := writePlaybook(t, dir, "pnr.yaml", pnr)
	os.Remove(filepath.Join(dir, "input.json"))
	if code, _, _ := runFlow("run", pb2, "--state-dir", state2, "--var", "dir="+dir); code != 1 {
		t.Fatalf("flow run: exit %d, want 1", code)
	}
	run2 := onlyRun(t, state2)
	code, out, errs = runFlow("rollback", run2.RunID, "--state-dir", state2, "--yes")
	if code != 3 || !strings.Contains(errs, "point of no return") || !strings.Contains(errs, "run restore.yaml instead") {
		t.Errorf("rollback past the point of no return: exit %d, want 3\n%s%s", code, out, errs)
	}
}

// TestResumeRefusesAChangedParameter: a resume given a parameter with
// another value than the run's (its finished steps used the old one) is
// refused (exit 2) naming both values; the same value again is accepted.
func TestResumeRefusesAChangedParameter(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "resumable.yaml", resumePlaybook)
	code, out, errOut := runFlow("run", pb, "--state-dir", state, "--var", "dir="+dir)
	if code != 1 {
		t.Fatalf("first run: exit %d, want 1 (no input yet)\n%s%s", code, out, errOut)
	}
	id := onlyRun(t, state).RunID
	writeRedo(t, filepath.Join(dir, "input.json"), map[string]any{"n": "7"})
	code, out, errOut = runFlow("resume", id, "--var", "dir="+dir+"/other", "--state-dir", state)
	if code != 2 || !strings.Contains(errOut, "a resume cannot change it") || !strings.Contains(errOut, "dir="+dir) {
		t.Fatalf("resume with another dir: exit %d, want 2 naming both values\n%s%s", code, out, errOut)
	}
	if code, out, errOut = runFlow("resume", id, "--var", "dir="+dir, "--state-dir", state); code != 0 {
		t.Fatalf("resume with the same dir: exit %d\n%s%s", code, out, errOut)
	}
}
