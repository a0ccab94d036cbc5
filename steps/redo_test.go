package steps_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/redo"
	_ "github.com/flowdba/flow/steps"
	"github.com/sirupsen/logrus"
)

// rawResult is what rawRun produced.
type rawResult struct {
	Log, Out string
	Err      error
}

// rawRun loads and runs a playbook like enginetest.Run, but its log is NOT
// passed through the run's masker afterwards: what the steps log is what the
// test sees, so a leak by a step cannot be hidden by the formatter. log, when
// not nil, receives the log as it is written (to watch a run in progress).
func rawRun(t *testing.T, yaml string, mode engine.Mode, vars map[string]string, jsonLog bool, timeout time.Duration, log *testutil.SyncBuffer) *rawResult {
	t.Helper()
	pb := enginetest.Load(t, enginetest.Write(t, yaml, nil))
	if log == nil {
		log = &testutil.SyncBuffer{}
	}
	out := &testutil.SyncBuffer{}
	l := logrus.New()
	l.SetOutput(log)
	l.SetLevel(logrus.DebugLevel)
	if jsonLog {
		l.SetFormatter(logfmt.JSON{})
	} else {
		l.SetFormatter(logfmt.Text{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := engine.NewRunner(engine.Options{Mode: mode, Vars: vars, JSON: jsonLog, Log: l, Out: out, Operator: "test", Host: "test", RunID: "run-" + t.Name()})
	err := r.Run(ctx, pb)
	return &rawResult{Log: log.String(), Out: out.String(), Err: err}
}

const redoPlaybook = `name: redo-test
params:
  dir: {type: string, required: true}
  donor: {type: string, default: normal_0_1}
steps:
  - name: Step 01 write
    id: w
    redo: {action: write, path: "{{ dir }}/log/flashback_redo.json", values: {donor: donor, port: "16315", frozen: "true", nodes: "['a', 'b']"}}
  - name: Step 02 read
    id: rd
    redo: {action: read, path: "{{ dir }}/log/flashback_redo.json"}
  - name: Step 03 check
    assert:
      that: steps.rd.found && steps.rd.values.donor == donor && steps.rd.values.port == 16315 && steps.rd.values.frozen && len(steps.rd.values.nodes) == 2 && steps.rd.playbook == "redo-test" && steps.rd.run_id == run.id
      message: "read back {{ steps.rd.values }}"
  - name: Step 04 clear
    id: cl
    redo: {action: clear, path: "{{ dir }}/log/flashback_redo.json"}
  - name: Step 05 read optional
    id: opt
    redo: {action: read, path: "{{ dir }}/log/flashback_redo.json", required: false}
  - name: Step 06 check
    assert:
      that: steps.cl.existed && !steps.opt.found && len(steps.opt.values) == 0
  - name: Step 07 read required
    redo: {action: read, path: "{{ dir }}/log/flashback_redo.json", written_by: "flashback-start.yaml (Step 13 write redo)"}
`

// TestRedoStepRoundTrip writes, reads back (typed values, metadata), clears,
// and checks the two kinds of missing-record read.
func TestRedoStepRoundTrip(t *testing.T) {
	dir := t.TempDir()
	res := rawRun(t, redoPlaybook, engine.ModeRun, map[string]string{"dir": dir}, false, time.Minute, nil)
	if res.Err == nil {
		t.Fatalf("the required read of a cleared record succeeded:\n%s", res.Log)
	}
	msg := res.Err.Error()
	for _, want := range []string{"Step 07 read required", filepath.Join(dir, "log", "flashback_redo.json"), "flashback-start.yaml (Step 13 write redo)", "no redo record"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	for _, want := range []string{"Step 03 check success", "Step 06 check success", "required: false"} {
		if !strings.Contains(res.Log, want) {
			t.Errorf("log lacks %q:\n%s", want, res.Log)
		}
	}
	assertNoTempFiles(t, dir)
}

// TestRedoStepLegacy reads a file as the original tool left it and writes
// the same line back.
func TestRedoStepLegacy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gio_flashback_redo.log")
	if err := os.WriteFile(path, []byte("target-Not_A_Master-normal_0_1"), 0o644); err != nil {
		t.Fatal(err)
	}
	pb := `name: legacy
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 read
    register: old
    redo: {action: read, path: "{{ dir }}/gio_flashback_redo.log", format: legacy}
  - assert:
      that: old.values.side == "target" && old.values.status == "Not_A_Master" && old.values.donor == "normal_0_1"
  - name: Step 02 write back
    redo:
      action: write
      path: "{{ dir }}/copy/gio_flashback_redo.log"
      format: legacy
      values: {side: old.values.side, status: old.values.status, donor: old.values.donor}
`
	res := rawRun(t, pb, engine.ModeRun, map[string]string{"dir": dir}, false, time.Minute, nil)
	if res.Err != nil {
		t.Fatalf("%v\n%s", res.Err, res.Log)
	}
	b, err := os.ReadFile(filepath.Join(dir, "copy", "gio_flashback_redo.log"))
	if err != nil || string(b) != "target-Not_A_Master-normal_0_1\n" {
		t.Fatalf("legacy file written as %q (%v)", b, err)
	}
	// a legacy write with other names is refused when the playbook loads
	bad := strings.Replace(pb, "status: old.values.status", "state: old.values.status", 1)
	_, diags := engine.Load(enginetest.Write(t, bad, nil))
	if !strings.Contains(diags.Error(), "legacy format holds exactly the values side, status, donor") {
		t.Fatalf("want a load error for legacy names, got %v", diags)
	}
}

// TestRedoStepCorrupt reads a truncated JSON record and a garbage legacy
// line: both fail, quoting the bad part; nothing is defaulted.
func TestRedoStepCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := redo.Write(good, &redo.Record{Values: map[string]any{"donor": "normal_0_1"}}); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(good)
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), full[:len(full)-12], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.log"), []byte("target Not_A_Master normal_0_1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, format, want string }{
		{"bad.json", "json", "the JSON ends early"},
		{"bad.log", "legacy", `"target Not_A_Master normal_0_1"`},
	} {
		pb := `name: corrupt
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 read
    redo: {action: read, path: "{{ dir }}/` + c.file + `", format: ` + c.format + `, required: false}
`
		res := rawRun(t, pb, engine.ModeRun, map[string]string{"dir": dir}, false, time.Minute, nil)
		if res.Err == nil || !strings.Contains(res.Err.Error(), c.want) || !strings.Contains(res.Err.Error(), "corrupt") || !strings.Contains(res.Err.Error(), c.file) {
			t.Errorf("%s: want a corruption error quoting %s, got %v", c.file, c.want, res.Err)
		}
	}
}

// TestRedoStepRefusesSecrets refuses secret-looking names and secret
// expressions when the playbook loads, and values equal to a secret of the
// run when it runs (leaving no file and not quoting the secret).
func TestRedoStepRefusesSecrets(t *testing.T) {
	dir := t.TempDir()
	head := `name: secrets
params:
  dir: {type: string, required: true}
  pw: {type: string, required: true, secret: true}
steps:
  - name: Step 01 write
    redo: {action: write, path: "{{ dir }}/redo.json", values: `
	for _, c := range []struct{ values, want string }{
		{`{donor: "'x'", donor_password: "'y'"}`, `"donor_password"`},
		{`{donor: "'x'", SysPassword: "'y'"}`, `"SysPassword"`},
		{`{donor: "'x'", cred: pw}`, "reads a secret"},
		{`{donor: "'x'", dsn: "'admin:' + pw + '@tcp(h)'"}`, "reads a secret"},
	} {
		_, diags := engine.Load(enginetest.Write(t, head+c.values+"}\n", nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s: want a load error with %s, got %v", c.values, c.want, diags)
		}
	}
	// the value is the secret, but the expression does not read it: caught at run time
	// (the secret is passed with --var: the engine does not register a
	// secret parameter's default value as a secret)
	res := rawRun(t, head+`{donor: "'x'", note: "'Hunter2-' + 'Secret'"}}`+"\n", engine.ModeRun, map[string]string{"dir": dir, "pw": "Hunter2-Secret"}, false, time.Minute, nil)
	if res.Err == nil || !strings.Contains(res.Err.Error(), `refusing to write redo value "note"`) {
		t.Fatalf("want a refusal, got %v\n%s", res.Err, res.Log)
	}
	if strings.Contains(res.Err.Error()+res.Log, "Hunter2-Secret") {
		t.Fatalf("the secret leaked:\n%v\n%s", res.Err, res.Log)
	}
	if _, err := os.Stat(filepath.Join(dir, "redo.json")); !os.IsNotExist(err) {
		t.Fatalf("a refused record was written: %v", err)
	}
	assertNoTempFiles(t, dir)
}

// TestRedoStepPlanAndDryRun: the plan lists all three actions without
// touching the disk; the dry run reads for real and writes nothing.
func TestRedoStepPlanAndDryRun(t *testing.T) {
	dir := t.TempDir()
	if err := redo.Write(filepath.Join(dir, "in.json"), &redo.Record{Values: map[string]any{"donor": "normal_0_3"}}); err != nil {
		t.Fatal(err)
	}
	pb := `name: preview
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 read
    id: rd
    redo: {action: read, path: "{{ dir }}/in.json"}
  - name: Step 02 write
    redo: {action: write, path: "{{ dir }}/out.json", values: {donor: steps.rd.values.donor, port: "16315"}}
  - name: Step 03 clear
    redo: {action: clear, path: "{{ dir }}/in.json"}
`
	vars := map[string]string{"dir": dir}
	plan := rawRun(t, pb, engine.ModePlan, vars, false, time.Minute, nil)
	if plan.Err != nil {
		t.Fatalf("plan: %v", plan.Err)
	}
	for _, want := range []string{
		"read redo record " + dir + "/in.json (json format; required",
		"write redo record " + dir + "/out.json (json format, atomically):",
		"donor = {{ steps.rd.values.donor }}", "port = 16315",
		"remove redo record " + dir + "/in.json",
	} {
		if !strings.Contains(plan.Out, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan.Out)
		}
	}
	dry := rawRun(t, pb, engine.ModeDryRun, vars, false, time.Minute, nil)
	if dry.Err != nil {
		t.Fatalf("dry run: %v\n%s", dry.Err, dry.Log)
	}
	for _, want := range []string{"[RUNS     ]", "donor = normal_0_3", "[WILL RUN ]"} {
		if !strings.Contains(dry.Out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry.Out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.json")); !os.IsNotExist(err) {
		t.Fatalf("the dry run wrote a record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "in.json")); err != nil {
		t.Fatalf("the dry run cleared a record: %v", err)
	}
}

// TestRedoStepJSONFile checks the file a write leaves: the documented JSON
// layout with metadata.
func TestRedoStepJSONFile(t *testing.T) {
	dir := t.TempDir()
	pb := `name: flashback-start
params:
  dir: {type: string, required: true}
steps:
  - name: Step 13 write redo
    redo: {action: write, path: "{{ dir }}/r.json", values: {side: "'target'", donor: "'normal_0_1'"}}
`
	res := rawRun(t, pb, engine.ModeRun, map[string]string{"dir": dir}, false, time.Minute, nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if doc["version"] != float64(1) || doc["playbook"] != "flashback-start" || doc["run_id"] != "run-"+t.Name() || doc["written_at"] == "" {
		t.Fatalf("metadata: %s", b)
	}
	if v := doc["values"].(map[string]any); v["donor"] != "normal_0_1" || v["side"] != "target" {
		t.Fatalf("values: %s", b)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(info.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// TestRedoLoadErrors checks the fields' validation when a playbook loads.
func TestRedoLoadErrors(t *testing.T) {
	for _, c := range []struct{ step, want string }{
		{`{path: x}`, "needs `action:`"},
		{`{action: append, path: x}`, `unknown action "append"`},
		{`{action: read}`, "needs `path:`"},
		{`{action: read, path: x, format: yaml}`, `unknown redo format "yaml"`},
		{`{action: read, path: x, values: {a: "1"}}`, "`values:` goes with `action: write`"},
		{`{action: write, path: x}`, "needs `values:`"},
		{`{action: write, path: x, values: {a: "1"}, required: false}`, "`required:` goes with `action: read`"},
		{`{action: clear, path: x, written_by: start}`, "`written_by:` goes with `action: read`"},
		{`{action: write, path: x, values: {a: "nosuch"}}`, "unknown name nosuch"},
	} {
		_, diags := engine.Load(enginetest.Write(t, "name: r\nsteps:\n  - name: Step 01\n    redo: "+c.step+"\n", nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s: want %q, got %v", c.step, c.want, diags)
		}
	}
}

// TestRedoResume: an interrupted write or clear runs again (both are
// idempotent), and the record ends as one run leaves it.
func TestRedoResume(t *testing.T) {
	dir := t.TempDir()
	pb := `name: redo-resume
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 write
    redo: {action: write, path: "{{ dir }}/r.json", values: {donor: "'n1'"}}
  - name: Step 02 clear
    redo: {action: clear, path: "{{ dir }}/r.json"}
`
	vars := map[string]string{"dir": dir}
	for _, name := range []string{"Step 01 write", "Step 02 clear"} {
		key := stepKey(t, pb, name)
		res := runAttempt(t, pb, vars, nil, resumeWith(&engine.StepRecord{Key: key, Status: engine.StepStarted, Started: time.Now()}), time.Minute, nil)
		res.wantDecision(t, key, "rerun", "again")
		if res.Err != nil {
			t.Fatalf("%s: %v\n%s", name, res.Err, res.Log)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "r.json")); !os.IsNotExist(err) {
		t.Fatalf("the record was not cleared: %v", err)
	}
}

// TestRedoUpdateInPlace: `action: update` sets the values it names in this
// run's record and keeps the others (one record, updated in place, instead
// of a second full write); with no record, or another run's, it refuses and
// leaves the file as it was.
func TestRedoUpdateInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redo.json")
	pb := `name: redo-update
params:
  path: {type: string, required: true}
steps:
  - redo: {action: write, path: "{{ path }}", values: {donor: "'normal_0_1'", snapshots: "'pending'"}}
  - redo: {action: update, path: "{{ path }}", values: {snapshots: "'sealed'"}}
  - redo: {action: read, path: "{{ path }}"}
    register: rd
  - assert:
      that: rd.values.donor == "normal_0_1" && rd.values.snapshots == "sealed" && rd.run_id == run.id
      message: "record after the update: {{ rd.values }} of run {{ rd.run_id }}"
`
	if res := rawRun(t, pb, engine.ModeRun, map[string]string{"path": path}, false, time.Minute, nil); res.Err != nil {
		t.Fatalf("write, update, read: %v\n%s", res.Err, res.Log)
	}

	only := `name: redo-update
params:
  path: {type: string, required: true}
steps:
  - redo: {action: update, path: "{{ path }}", values: {snapshots: "'sealed'"}}
`
	missing := filepath.Join(dir, "none.json")
	res := rawRun(t, only, engine.ModeRun, map[string]string{"path": missing}, false, time.Minute, nil)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "has no record to update: write it first") {
		t.Errorf("update of no record: %v", res.Err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a refused update created %s (%v)", missing, err)
	}

	other := filepath.Join(dir, "other.json")
	if err := redo.Write(other, &redo.Record{Values: map[string]any{"snapshots": "pending"}, RunID: "20260101T000000Z", Playbook: "flashback-start", WrittenAt: time.Now(), Format: redo.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(other)
	res = rawRun(t, only, engine.ModeRun, map[string]string{"path": other}, false, time.Minute, nil)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "is the record of run 20260101T000000Z (flashback-start), not of this run") {
		t.Errorf("update of another run's record: %v", res.Err)
	}
	if after, _ := os.ReadFile(other); string(after) != string(before) {
		t.Errorf("a refused update changed the record:\n%s\nwas:\n%s", after, before)
	}
}
