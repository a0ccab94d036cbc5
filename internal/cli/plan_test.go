package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/redo"
)

// bindPlaybook reads a record (its donor is what the plan observes), keeps
// a secret, and writes the donor to another record (the change the plan
// shows). It needs no MySQL and no SSH.
const bindPlaybook = `name: bind-unit
params:
  rec: {type: string, required: true, help: the record read}
  out: {type: string, required: true, help: the record written}
  token: {type: string, default: "", secret: true, help: a secret the plan must not hold}
steps:
  - name: read the donor record
    redo: {action: read, path: "{{ rec }}"}
    register: r
  - name: keep the token
    set:
      t: token
  - name: write the choice
    redo: {action: write, path: "{{ out }}", values: {donor: r.values.donor}}
`

const bindSecret = "s3cr3t-token-value"

func writeDonor(t *testing.T, path, donor string) {
	t.Helper()
	rec := &redo.Record{Values: map[string]any{"donor": donor}, WrittenAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RunID: "r0", Playbook: "test"}
	if err := redo.Write(path, rec); err != nil {
		t.Fatal(err)
	}
}

func readDonor(t *testing.T, path string) string {
	t.Helper()
	rec, err := redo.Read(path, redo.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := rec.Values["donor"].(string)
	return d
}

// TestPlanOutAndRunPlan: flow plan --out saves a dry run's plan; flow run
// --plan runs it when nothing drifted, refuses (exit 3, naming the step,
// the field and both values, writing nothing) when the record it read
// changed, and refuses up front (exit 2) a plan of other parameters, of
// another playbook, too old, or with --dry-run.
func TestPlanOutAndRunPlan(t *testing.T) {
	dir := t.TempDir()
	pb := filepath.Join(dir, "bind.yaml")
	if err := os.WriteFile(pb, []byte(bindPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, out, plan := filepath.Join(dir, "rec.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "plan.json")
	state := filepath.Join(dir, "state")
	writeDonor(t, rec, "normal_0_2")
	vars := []string{"--var", "rec=" + rec, "--var", "out=" + out, "--var", "token=" + bindSecret, "--state-dir", state}
	flow := func(want int, args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runFlow(append(args, vars...)...)
		if code != want {
			t.Fatalf("flow %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, bindSecret) {
			t.Fatalf("flow %s printed the secret", strings.Join(args, " "))
		}
		return stdout, stderr
	}

	// without --out, plan stays offline
	stdout, _ := flow(0, "plan", pb)
	if !strings.Contains(stdout, "offline") {
		t.Fatalf("flow plan without --out:\n%s", stdout)
	}

	stdout, _ = flow(0, "plan", pb, "--out", plan)
	for _, w := range []string{"Plan written to " + plan, "2 observation(s)", "1 change(s)", "flow run " + pb, "--var 'token=…'", "--plan " + plan} {
		if !strings.Contains(stdout, w) {
			t.Errorf("flow plan --out does not say %q:\n%s", w, stdout)
		}
	}
	raw, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), bindSecret) {
		t.Fatalf("the plan file holds the secret:\n%s", raw)
	}
	var saved struct {
		Observations map[string]struct {
			Step   string
			Output map[string]any
		}
		Steps []struct {
			Verdict string
			Actions []struct{ Text string }
		}
		Playbook struct{ SHA256 string }
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	var sawDonor, sawWrite bool
	for _, o := range saved.Observations {
		if v, _ := o.Output["values"].(map[string]any); v != nil && v["donor"] == "normal_0_2" {
			sawDonor = true
		}
	}
	for _, s := range saved.Steps {
		for _, a := range s.Actions {
			sawWrite = sawWrite || s.Verdict == "WILL RUN" && strings.Contains(a.Text, "donor = normal_0_2")
		}
	}
	if !sawDonor || !sawWrite || len(saved.Playbook.SHA256) != 64 {
		t.Fatalf("the plan lacks the observed donor (%v), the rendered write (%v) or the playbook hash:\n%s", sawDonor, sawWrite, raw)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("flow plan --out wrote the record")
	}

	// the plan runs as made
	stdout, _ = flow(0, "run", pb, "--plan", plan, "--log-level", "info")
	for _, w := range []string{"Bound to the plan " + plan, "2 observation(s) as planned, 1 change(s) as planned"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("flow run --plan does not say %q:\n%s", w, stdout)
		}
	}
	if d := readDonor(t, out); d != "normal_0_2" {
		t.Fatalf("the run wrote donor %q", d)
	}

	// drift: the record now names another donor
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	writeDonor(t, rec, "normal_0_1")
	_, stderr := flow(3, "run", pb, "--plan", plan)
	for _, w := range []string{"bind.yaml:7", "read the donor record", "values.donor", `planned "normal_0_2"`, `live "normal_0_1"`, "Make a new plan", "--out " + plan} {
		if !strings.Contains(stderr, w) {
			t.Errorf("the refusal does not name %q:\n%s", w, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the refused run wrote the record")
	}

	// refused up front: nothing runs
	writeDonor(t, rec, "normal_0_2")
	code, _, stderr := runFlow("run", pb, "--plan", plan, "--var", "rec="+rec, "--var", "out="+out+".other", "--var", "token="+bindSecret, "--state-dir", state)
	if code != 2 || !strings.Contains(stderr, "parameter out: planned") {
		t.Errorf("other parameters: exit %d\n%s", code, stderr)
	}
	_, stderr = flow(2, "run", pb, "--plan", plan, "--plan-max-age", "1ns")
	if !strings.Contains(stderr, "older than --plan-max-age") {
		t.Errorf("an old plan:\n%s", stderr)
	}
	_, stderr = flow(2, "run", pb, "--plan", plan, "--dry-run")
	if !strings.Contains(stderr, "cannot be combined with --dry-run") {
		t.Errorf("--plan --dry-run:\n%s", stderr)
	}
	_, stderr = flow(2, "run", pb, "--plan", filepath.Join(dir, "none.json"))
	if !strings.Contains(stderr, "none.json") {
		t.Errorf("a missing plan:\n%s", stderr)
	}
	if err := os.WriteFile(pb, []byte(bindPlaybook+"  - log: {msg: one more step}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr = flow(2, "run", pb, "--plan", plan)
	if !strings.Contains(stderr, "the playbook changed") {
		t.Errorf("a changed playbook:\n%s", stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a run refused up front wrote the record")
	}
}
