package planfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	_ "github.com/flowdba/flow/engine/funcs"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/internal/planfile"
	"github.com/flowdba/flow/steps"
)

const (
	uA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uC = "5f33bc69-93ec-33a3-b055-e02ccc64b784"
)

// Keys as the engine makes them.
const (
	kRead    = "t.yaml:5:5"
	kDisable = "t.yaml:9:5"
	kSkip    = "t.yaml:12:5"
	kLoop    = "t.yaml:15:5"
	kInLoop  = "t.yaml:15:5 > t.yaml:18:9"
	kLater   = "t.yaml:22:5"
	kMarker  = "t.yaml:25:5"
)

func dataservers(status string) map[string]any {
	return map[string]any{"rows": []any{map[string]any{"servername": "normal_0_2", "host": "127.0.2.3", "status": status,
		"master-online-status": "Not_A_Master"}}, "count": 1, "target": "mysql target (127.0.2.100:16310)"}
}

// recorded makes a plan as a dry run would: the events it emits and its
// verdicts.
func recorded(t *testing.T) *planfile.Plan {
	t.Helper()
	rec := planfile.NewRecorder()
	rec.Observe("run_started", map[string]any{"run_id": "20260101T000000Z-plan"})
	rec.Observe("step_started", map[string]any{"key": kRead, "type": "sql", "mutates": false})
	rec.Observe("step_finished", map[string]any{"key": kRead, "name": "standby dataservers", "type": "sql", "mutates": false,
		"output": dataservers("Slave normal")})
	rec.Observe("step_finished", map[string]any{"key": "t.yaml:7:5", "name": "node", "type": "sql", "mutates": false,
		"output": map[string]any{"row": map[string]any{"gtid_executed": uA + ":1-100", "read_only": 1, "pw": "hunter2-secret"}}})
	rec.Observe("step_started", map[string]any{"key": kDisable, "type": "sql", "mutates": true})
	rec.Observe("step_finished", map[string]any{"key": kDisable, "type": "sql", "mutates": true})
	rec.Observe("step_finished", map[string]any{"key": kLater, "name": "after", "type": "sql", "mutates": false,
		"output": map[string]any{"status": "stopped"}})
	verdicts := []engine.Verdict{
		{Key: kRead, Pos: engine.Pos{File: "t.yaml", Line: 5}, Step: "standby dataservers", Verdict: "RUNS"},
		{Key: kDisable, Pos: engine.Pos{File: "t.yaml", Line: 9}, Step: "disable the donor", Verdict: "WILL RUN", Mutates: true,
			Actions: []engine.Action{{Target: "mysql target (127.0.2.100:16310)", Text: "dbscale disable dataserver normal_0_2"}}},
		{Key: kSkip, Pos: engine.Pos{File: "t.yaml", Line: 12}, Step: "install clone", Verdict: "WILL SKIP", Reason: "`when: false`", Mutates: true},
		{Key: kLoop, Pos: engine.Pos{File: "t.yaml", Line: 15}, Step: "each recipient", Verdict: "UNKNOWN", Reason: "for each item of `recipients`"},
		{Key: kInLoop, Pos: engine.Pos{File: "t.yaml", Line: 18}, Step: "clone", Verdict: "UNKNOWN", Mutates: true},
		{Key: kMarker, Pos: engine.Pos{File: "t.yaml", Line: 25}, Step: "marker", Verdict: "WILL RUN", Mutates: true,
			Actions: []engine.Action{{Target: "mysql node (127.0.2.2:16315)", Text: "INSERT INTO flow_drill.active VALUES ('20260101T000000Z-plan', '" + uA + ":1-100')"}}},
	}
	m := &secret.Masker{}
	m.Add("hunter2-secret")
	p := rec.Plan(planfile.Subject{Playbook: planfile.PlaybookRef{File: "t.yaml"}}, "test", time.Now(), verdicts, m.Apply)
	// through the file, as a run reads it
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "hunter2-secret") {
		t.Fatalf("the plan file holds a secret:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode %v, want 0600", fi.Mode().Perm())
	}
	back, err := planfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Observations[kLater].AfterChange || back.Observations[kRead].AfterChange {
		t.Fatalf("after_change marks: %+v", back.Observations)
	}
	return back
}

func binder(t *testing.T) *planfile.Binder {
	b := planfile.NewBinder(recorded(t), "plan.json")
	m := &secret.Masker{}
	m.Add("hunter2-secret")
	b.Mask = m.Apply
	b.Observe("run_started", map[string]any{"run_id": "20260102T000000Z-live"})
	return b
}

func requireDrift(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no drift found; want one naming %q", words)
	}
	for _, w := range append(words, "Make a new plan", "flow plan t.yaml") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not name %q:\n%s", w, err)
		}
	}
}

func TestBoundRunAsPlanned(t *testing.T) {
	b := binder(t)
	if err := b.Observed(kRead, nil, dataservers("Slave normal")); err != nil {
		t.Fatal(err)
	}
	// the node's GTIDs grew; its secret is masked the same way
	if err := b.Observed("t.yaml:7:5", nil, map[string]any{"row": map[string]any{"gtid_executed": uA + ":1-130", "read_only": 1, "pw": "hunter2-secret"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Change(kDisable, nil, []engine.Action{{Target: "mysql target (127.0.2.100:16310)", Text: "dbscale disable dataserver normal_0_2"}}); err != nil {
		t.Fatal(err)
	}
	// after the first change what the run reads is its own doing
	if err := b.Observed(kLater, nil, map[string]any{"status": "running"}); err != nil {
		t.Fatal(err)
	}
	// an UNKNOWN for_each: its items run unbound
	for _, k := range []string{"t.yaml:15:5#0 > t.yaml:18:9", "t.yaml:15:5#1 > t.yaml:18:9"} {
		if err := b.Change(k, nil, []engine.Action{{Target: "x", Text: "CLONE INSTANCE FROM …"}}); err != nil {
			t.Fatal(err)
		}
	}
	// the run's id and a detach point taken later
	if err := b.Change(kMarker, nil, []engine.Action{{Target: "mysql node (127.0.2.2:16315)", Text: "INSERT INTO flow_drill.active VALUES ('20260102T000000Z-live', '" + uA + ":1-160')"}}); err != nil {
		t.Fatal(err)
	}
	// a rescue section is never bound
	if err := b.Change(kMarker+" rescue > t.yaml:40:9", nil, []engine.Action{{Target: "x", Text: "DROP DATABASE flow_drill"}}); err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	if s.Observations != 2 || s.Changes != 2 || s.Unbound != 3 || s.AfterChange != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n := len(b.Unbound()); n != 2 {
		t.Fatalf("unbound steps %d, want 2", n)
	}
}

func TestRoleChangedRefuses(t *testing.T) {
	b := binder(t)
	err := b.Observed(kRead, nil, dataservers("server disabled"))
	requireDrift(t, err, "rows[0].status", `planned "Slave normal"`, `live "server disabled"`, "plan.json")
}

func TestGTIDLostOrNewServerRefuses(t *testing.T) {
	b := binder(t)
	err := b.Observed("t.yaml:7:5", nil, map[string]any{"row": map[string]any{"gtid_executed": uA + ":1-100," + uC + ":1", "read_only": 1, "pw": "hunter2-secret"}})
	requireDrift(t, err, "row.gtid_executed", uC)
	b = binder(t)
	err = b.Observed("t.yaml:7:5", nil, map[string]any{"row": map[string]any{"gtid_executed": uA + ":1-50", "read_only": 1, "pw": "hunter2-secret"}})
	requireDrift(t, err, "row.gtid_executed", "lost transactions", uA+":51-100")
}

func TestStatementChangedRefuses(t *testing.T) {
	b := binder(t)
	err := b.Change(kDisable, nil, []engine.Action{{Target: "mysql target (127.0.2.100:16310)", Text: "dbscale disable dataserver normal_0_0"}})
	requireDrift(t, err, "statement 1", `planned "dbscale disable dataserver normal_0_2"`, `live "dbscale disable dataserver normal_0_0"`)
	b = binder(t)
	err = b.Change(kDisable, nil, []engine.Action{{Target: "mysql target (127.0.2.100:16311)", Text: "dbscale disable dataserver normal_0_2"}})
	requireDrift(t, err, "target", "16311")
}

func TestChangeThePlanSkippedOrNeverSawRefuses(t *testing.T) {
	b := binder(t)
	requireDrift(t, b.Change(kSkip, nil, nil), "WILL SKIP", "`when: false`")
	b = binder(t)
	requireDrift(t, b.Change("t.yaml:30:5", nil, nil), "never saw")
	b = binder(t)
	requireDrift(t, b.Observed("t.yaml:31:5", nil, map[string]any{}), "never saw")
}

func TestSkippedStepRefusesAtTheNextStep(t *testing.T) {
	b := binder(t)
	b.Observe("step_skipped", map[string]any{"key": kRead, "name": "standby dataservers", "reason": "`when: x` is false"})
	requireDrift(t, b.Change(kDisable, nil, []engine.Action{{Target: "mysql target (127.0.2.100:16310)", Text: "dbscale disable dataserver normal_0_2"}}),
		"standby dataservers", "skipped by this run", "the plan saw it run")
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFits(t *testing.T) {
	dir := t.TempDir()
	pbPath := filepath.Join(dir, "p.yaml")
	inc := filepath.Join(dir, "inc.yaml")
	writeFile(t, inc, "name: inc\nsteps:\n  - log: {msg: hi}\n")
	writeFile(t, pbPath, `name: p
params:
  host: {type: string, required: true}
  password: {type: string, required: true, secret: true, config: a.password}
  port: {type: int, default: 5, config: a.port}
steps:
  - include: inc.yaml
`)
	ini := filepath.Join(dir, "c.ini")
	writeFile(t, ini, "[a]\npassword = hunter2-secret\nport = 7\n")
	load := func() (*engine.Playbook, *config.Config) {
		pb, diags := engine.Load(pbPath)
		if pb == nil {
			t.Fatal(diags)
		}
		cfg, err := config.Load(ini)
		if err != nil {
			t.Fatal(err)
		}
		return pb, cfg
	}
	pb, cfg := load()
	sub := planfile.Describe(pbPath, pb, ini, cfg, map[string]string{"host": "127.0.0.1"})
	if sub.Params["password"] != secret.Mask || sub.Config.Values["a.password"] != secret.Mask || sub.Params["port"] != "7" || len(sub.Playbook.Includes) != 1 {
		t.Fatalf("subject %+v", sub)
	}
	p := &planfile.Plan{Format: planfile.Format, FlowVersion: "v1", Created: time.Now().Add(-time.Minute), Subject: sub}
	if err := p.Fits("plan.json", sub, "v1", time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	fitErr := func(now planfile.Subject, version string, maxAge time.Duration) string {
		err := p.Fits("plan.json", now, version, maxAge, time.Now())
		if err == nil {
			t.Fatal("the plan fits")
		}
		if !strings.Contains(err.Error(), "Make a new plan") {
			t.Errorf("no advice: %v", err)
		}
		return err.Error()
	}
	if e := fitErr(planfile.Describe(pbPath, pb, ini, cfg, map[string]string{"host": "127.0.0.2"}), "v1", time.Hour); !strings.Contains(e, `parameter host: planned "127.0.0.1", now "127.0.0.2"`) {
		t.Error(e)
	}
	if e := fitErr(sub, "v2", time.Hour); !strings.Contains(e, "made by flow v1") {
		t.Error(e)
	}
	if e := fitErr(sub, "v1", time.Second); !strings.Contains(e, "older than --plan-max-age 1s") {
		t.Error(e)
	}
	writeFile(t, ini, "[a]\npassword = hunter2-secret\nport = 8\n")
	writeFile(t, inc, "name: inc\nsteps:\n  - log: {msg: changed}\n")
	pb, cfg = load()
	e := fitErr(planfile.Describe(pbPath, pb, ini, cfg, map[string]string{"host": "127.0.0.1"}), "v1", time.Hour)
	for _, w := range []string{"included playbook", "config key a.port", "parameter port"} {
		if !strings.Contains(e, w) {
			t.Errorf("%q not named in %s", w, e)
		}
	}
	if strings.Contains(e, "hunter2") {
		t.Errorf("a secret in the error: %s", e)
	}
}

// TestLockStepOutputIsNotCompared: a dry run only looks at the lock the
// run takes; their outputs differ by design.
func TestLockStepOutputIsNotCompared(t *testing.T) {
	b := binder(t)
	lock := &engine.Step{Type: "lock", Spec: &steps.LockStep{}}
	if err := b.Observed(kRead, lock, map[string]any{"acquired": true}); err != nil {
		t.Fatal(err)
	}
	sql := &engine.Step{Type: "sql"}
	requireDrift(t, b.Observed(kRead, sql, map[string]any{"acquired": true}), "acquired")
}
