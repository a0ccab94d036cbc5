package steps_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/lab/mysqltest"
	_ "github.com/flowdba/flow/steps"
	"github.com/sirupsen/logrus"
)

var sqlPlaybook = mysqltest.PlaybookHead("sql-test", "node", `who: {type: string, default: "O'Brien; DROP TABLE t; --"}`) + `steps:
  - name: Step 01 create
    sql: {on: node, exec: "CREATE DATABASE IF NOT EXISTS flowtest"}
    pre: true
  - name: Step 02 table
    sql: {on: node, exec: "CREATE TABLE IF NOT EXISTS flowtest.t (id INT PRIMARY KEY, who VARCHAR(100))"}
    pre: true
  - name: Step 03 insert a hostile value
    sql: {on: node, exec: "INSERT INTO flowtest.t VALUES (1, {{ who }})"}
    pre: true
  - name: Step 04 read it back
    id: back
    sql: {on: node, query: "SELECT id, who FROM flowtest.t WHERE who = {{ who }}"}
    post:
      - that: result.count == 1 && result.row.id == 1 && result.row.who == who
        message: the value did not survive quoting
  - name: Step 05 the table still exists
    sql: {on: node, query: "SELECT COUNT(*) AS n FROM flowtest.t"}
    register: cnt
  - assert:
      that: cnt.row.n == 1
      message: "expected one row, saw {{ cnt.row.n }}"
  - name: Step 06 version
    sql: {on: node, query: "SELECT @@version AS v"}
    register: ver
  - assert:
      that: version_compare(ver.row.v, "8.0.22") >= 0
`

// TestSQLStepAgainstMySQL runs query and exec steps on a real server: a
// hostile interpolated value is stored verbatim (it cannot change the
// statement), rows come back typed, and the password is never logged.
func TestSQLStepAgainstMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	res := enginetest.Run(t, sqlPlaybook, enginetest.Options{Vars: srv.PlaybookVars()})
	if res.Err != nil {
		t.Fatalf("run failed: %v\n%s", res.Err, res.Log)
	}
	if got := srv.QueryString(t, "SELECT who FROM flowtest.t WHERE id = 1"); got != "O'Brien; DROP TABLE t; --" {
		t.Fatalf("stored %q", got)
	}
	if strings.Contains(res.Log, srv.Password) {
		t.Fatalf("password leaked into the log:\n%s", res.Log)
	}
	if !strings.Contains(res.Log, `[DEBUG] INSERT INTO flowtest.t VALUES (1, 'O''Brien; DROP TABLE t; --')`) {
		t.Fatalf("statement not logged at DEBUG before it ran:\n%s", res.Log)
	}
}

// TestSQLStepErrorNamesHostAndStatement checks a failing statement's error.
func TestSQLStepErrorNamesHostAndStatement(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	pb := mysqltest.PlaybookHead("fail", "node") + `steps:
  - name: Step 01 bad
    sql: {on: node, query: "SELECT nosuchcolumn FROM mysql.user"}
`
	res := enginetest.Run(t, pb, enginetest.Options{Vars: srv.PlaybookVars()})
	if engine.ExitCode(res.Err) != engine.ExitStepFailed {
		t.Fatalf("exit %d, err %v", engine.ExitCode(res.Err), res.Err)
	}
	msg := res.Err.Error()
	for _, want := range []string{"test.yaml:10:5", "Step 01 bad", srv.Addr(), "SELECT nosuchcolumn", "1054"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
}

// TestDryRunExecutesReadsOnly proves the dry run reads for real (its guard
// sees real rows) and does not execute the write.
func TestDryRunExecutesReadsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	srv.Exec(t, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1),(2)")
	pb := mysqltest.PlaybookHead("dry", "node") + `steps:
  - name: Step 01 count
    sql: {on: node, query: "SELECT COUNT(*) AS n FROM d.t"}
    register: c
  - name: Step 02 delete
    when: c.row.n > 1
    sql: {on: node, exec: "DELETE FROM d.t WHERE id > 1"}
    effect: {deleted: true}
  - name: Step 03 only after delete
    when: deleted
    sql: {on: node, exec: "INSERT INTO d.t VALUES (9)"}
  - name: Step 04 skipped
    when: c.row.n > 5
    sql: {on: node, exec: "DROP TABLE d.t"}
`
	res := enginetest.Run(t, pb, enginetest.Options{Vars: srv.PlaybookVars(), Mode: engine.ModeDryRun})
	if res.Err != nil {
		t.Fatalf("dry run failed: %v\n%s", res.Err, res.Log)
	}
	if got := srv.QueryString(t, "SELECT COUNT(*) FROM d.t"); got != "2" {
		t.Fatalf("the dry run changed data: %s rows", got)
	}
	for _, want := range []string{"[RUNS     ] test.yaml:10 Step 01 count", "[WILL RUN ] test.yaml:13 Step 02 delete",
		"DELETE FROM d.t WHERE id > 1", "[WILL RUN ] test.yaml:17 Step 03 only after delete",
		"[WILL SKIP] test.yaml:20 Step 04 skipped — `when: c.row.n > 5` is false (c.row.n=2)",
		"Summary: 2 change(s) that `run` would make."} {
		if !strings.Contains(res.Out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, res.Out)
		}
	}
}

// journalEvents collects a run's events as its journal would record them
// (through engine.Options.Observer), to rebuild the resume state of an
// attempt as `flow resume` does.
type journalEvents struct {
	mu   sync.Mutex
	list []engine.ResumeEvent
	// on, when set, is called with every event (from the run's goroutines).
	on func(name string, f map[string]any)
}

func (j *journalEvents) observe(name string, f map[string]any) {
	j.mu.Lock()
	tm, _ := f["time"].(time.Time)
	j.list = append(j.list, engine.ResumeEvent{Seq: int64(len(j.list) + 1), Time: tm, Event: name, Fields: f})
	on := j.on
	j.mu.Unlock()
	if on != nil {
		on(name, f)
	}
}

// state folds the events so far into a resume state.
func (j *journalEvents) state() *engine.ResumeState {
	j.mu.Lock()
	defer j.mu.Unlock()
	return engine.BuildResumeState(append([]engine.ResumeEvent(nil), j.list...))
}

// named returns the fields of the events called name.
func (j *journalEvents) named(name string) []map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, e := range j.list {
		if e.Event == name {
			out = append(out, e.Fields)
		}
	}
	return out
}

// attempt is one run of a playbook: a first attempt, or a resumed one.
type attempt struct {
	Err    error
	Log    string
	Events *journalEvents
}

// runAttempt runs yaml (written as test.yaml, so step keys are
// "test.yaml:LINE:COL") for real; rs, when not nil, makes it resume
// earlier attempts. ev, when not nil, receives the events.
func runAttempt(t *testing.T, yaml string, vars map[string]string, dial engine.SSHDialer, rs *engine.ResumeState, timeout time.Duration, ev *journalEvents) *attempt {
	t.Helper()
	return runLoaded(enginetest.Load(t, enginetest.Write(t, yaml, nil)), vars, dial, rs, timeout, ev, "run-"+t.Name())
}

// runLoaded is runAttempt for a loaded playbook; it may run in a goroutine
// of its own.
func runLoaded(pb *engine.Playbook, vars map[string]string, dial engine.SSHDialer, rs *engine.ResumeState, timeout time.Duration, ev *journalEvents, runID string) *attempt {
	if ev == nil {
		ev = &journalEvents{}
	}
	log := &testutil.SyncBuffer{}
	l := logrus.New()
	l.SetOutput(log)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(logfmt.Text{})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := engine.NewRunner(engine.Options{Mode: engine.ModeRun, Vars: vars, Log: l, SSHDial: dial, Resume: rs,
		Observer: ev.observe, Operator: "test", Host: "test", RunID: runID})
	err := r.Run(ctx, pb)
	return &attempt{Err: err, Log: log.String(), Events: ev}
}

// resumeWith is a resume state holding only rec.
func resumeWith(rec *engine.StepRecord) *engine.ResumeState {
	if rec.Notes == nil {
		rec.Notes = map[string]any{}
	}
	return &engine.ResumeState{Steps: map[string]*engine.StepRecord{rec.Key: rec}, Done: map[string]bool{}, Rerun: map[string]bool{}}
}

// decision returns the step's resume decision and why ("" if none).
func (a *attempt) decision(t *testing.T, key string) (string, string) {
	t.Helper()
	for _, f := range a.Events.named("step_resume_decision") {
		if f["key"] == key {
			d, _ := f["decision"].(string)
			why, _ := f["why"].(string)
			return d, why
		}
	}
	return "", ""
}

// wantDecision fails the test unless the step's resume decision is want
// and its reason holds every part of why.
func (a *attempt) wantDecision(t *testing.T, key, want string, why ...string) {
	t.Helper()
	d, w := a.decision(t, key)
	if d != want {
		t.Fatalf("resume decision for %s: %q (%s), want %q; error %v\n%s", key, d, w, want, a.Err, a.Log)
	}
	for _, s := range why {
		if !strings.Contains(w, s) {
			t.Errorf("the reason %q lacks %q", w, s)
		}
	}
}

// wantAsked fails the test unless the resume stopped at the step asking
// the operator (exit 3, --done/--rerun) with a message holding want.
func (a *attempt) wantAsked(t *testing.T, key string, want ...string) {
	t.Helper()
	if engine.ExitCode(a.Err) != engine.ExitRefused {
		t.Fatalf("exit %d, want %d (the operator asked): %v\n%s", engine.ExitCode(a.Err), engine.ExitRefused, a.Err, a.Log)
	}
	msg := a.Err.Error()
	t.Logf("refusal: %s", msg)
	for _, s := range append([]string{"--done '" + key + "'", "--rerun '" + key + "'", "flow cannot tell whether it took effect"}, want...) {
		if !strings.Contains(msg, s) {
			t.Errorf("the refusal lacks %q:\n%s", s, msg)
		}
	}
	if d, _ := a.decision(t, key); d != "ask" {
		t.Errorf("the decision journaled for %s is %q, want ask (the operator's call)", key, d)
	}
	if n := len(a.Events.named("step_started")); n != 0 {
		t.Errorf("the step was recorded as started again (%d step_started) although the resume stopped before it", n)
	}
}

// stepKey is the key of the step whose `- name:` line is name in yaml.
func stepKey(t *testing.T, yaml, name string) string {
	t.Helper()
	for i, l := range strings.Split(yaml, "\n") {
		if strings.TrimSpace(l) == "- name: "+name {
			return fmt.Sprintf("test.yaml:%d:%d", i+1, strings.Index(l, "-")+3)
		}
	}
	t.Fatalf("no step %q in the playbook", name)
	return ""
}

// sqlResumePlaybook is a playbook with one sql step (its fields given),
// registered as r, then an assertion on r.
func sqlResumePlaybook(fields, assert string) string {
	return mysqltest.PlaybookHead("sql-resume", "node") + `steps:
  - name: Step 01 change
    register: r
    sql: {on: node, ` + fields + `}
  - assert:
      that: ` + assert + `
      message: "output {{ r }}"
`
}

// TestSQLResume drives the sql step's resume decisions on a real server:
// a statement the server rejected runs again; a `check:` returning rows is
// done, none runs again; an idempotent form runs again; anything else (and
// a statement interrupted while it ran) asks the operator.
func TestSQLResume(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	srv.Exec(t, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
	vars := srv.PlaybookVars()
	target := fmt.Sprintf("mysql node (%s)", srv.Addr())
	started := func(key, stmt string) *engine.StepRecord {
		return &engine.StepRecord{Key: key, Status: engine.StepStarted, Started: time.Now().Add(-time.Minute), Sent: []string{target + ": " + stmt}}
	}
	rows := func(where string) string { return srv.QueryString(t, "SELECT COUNT(*) FROM d.t WHERE "+where) }

	t.Run("rejected by the server: run again", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "INSERT INTO d.t VALUES (1)"`, "r.rows_affected == 1")
		key := stepKey(t, pb, "Step 01 change")
		first := runAttempt(t, pb, vars, nil, nil, time.Minute, nil)
		if first.Err == nil || !strings.Contains(first.Err.Error(), "Error 1062") {
			t.Fatalf("the first attempt did not fail with a duplicate key: %v", first.Err)
		}
		rs := first.Events.state()
		if rec := rs.Steps[key]; rec == nil || rec.Status != engine.StepFailed {
			t.Fatalf("journal state of %s: %+v", key, rs.Steps[key])
		}
		srv.Exec(t, "DELETE FROM d.t WHERE id = 1") // what the operator fixed before resuming
		res := runAttempt(t, pb, vars, nil, rs, time.Minute, nil)
		res.wantDecision(t, key, "rerun", "rejected", "MySQL error 1062")
		if res.Err != nil {
			t.Fatalf("resume: %v\n%s", res.Err, res.Log)
		}
		if rows("id = 1") != "1" {
			t.Fatal("the statement did not run again")
		}
	})

	t.Run("interrupted while it ran: the operator is asked", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "INSERT INTO d.t VALUES (5)"`, "true")
		key := stepKey(t, pb, "Step 01 change")
		rec := started(key, "INSERT INTO d.t VALUES (5)")
		rec.Status = engine.StepFailed
		rec.Error = fmt.Sprintf("test.yaml:12:5: step \"Step 01 change\" failed: %s: `INSERT INTO d.t VALUES (5)`: Error 1317 (70100): Query execution was interrupted", target)
		res := runAttempt(t, pb, vars, nil, resumeWith(rec), time.Minute, nil)
		res.wantAsked(t, key, "an INSERT", "Error 1317")
		if rows("id = 5") != "0" {
			t.Fatal("the statement ran")
		}
	})

	t.Run("check returns rows: done", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "INSERT INTO d.t VALUES (2)", check: "SELECT id FROM d.t WHERE id = 2"`, "r.count == 1 && r.row.id == 2 && r.rows_affected == 0")
		key := stepKey(t, pb, "Step 01 change")
		srv.Exec(t, "INSERT INTO d.t VALUES (2)") // the interrupted attempt took effect
		res := runAttempt(t, pb, vars, nil, resumeWith(started(key, "INSERT INTO d.t VALUES (2)")), time.Minute, nil)
		res.wantDecision(t, key, "done", "`check:` query returns 1 row(s)")
		if res.Err != nil {
			t.Fatalf("resume: %v\n%s", res.Err, res.Log) // running it again fails with a duplicate key
		}
	})

	t.Run("check returns no row: run again", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "INSERT INTO d.t VALUES (3)", check: "SELECT id FROM d.t WHERE id = 3"`, "r.rows_affected == 1")
		key := stepKey(t, pb, "Step 01 change")
		res := runAttempt(t, pb, vars, nil, resumeWith(started(key, "INSERT INTO d.t VALUES (3)")), time.Minute, nil)
		res.wantDecision(t, key, "rerun", "no row")
		if res.Err != nil {
			t.Fatalf("resume: %v\n%s", res.Err, res.Log)
		}
		if rows("id = 3") != "1" {
			t.Fatal("the statement did not run again")
		}
	})

	t.Run("idempotent form: run again", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "CREATE TABLE IF NOT EXISTS d.u (id INT PRIMARY KEY)"`, "true")
		key := stepKey(t, pb, "Step 01 change")
		res := runAttempt(t, pb, vars, nil, resumeWith(started(key, "CREATE TABLE IF NOT EXISTS d.u (id INT PRIMARY KEY)")), time.Minute, nil)
		res.wantDecision(t, key, "rerun", "IF NOT EXISTS")
		if res.Err != nil {
			t.Fatalf("resume: %v\n%s", res.Err, res.Log)
		}
		if got := srv.QueryString(t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'd' AND TABLE_NAME = 'u'"); got != "1" {
			t.Fatal("the statement did not run again")
		}
	})

	t.Run("any other statement: the operator is asked", func(t *testing.T) {
		pb := sqlResumePlaybook(`exec: "INSERT INTO d.t VALUES (4)"`, "true")
		key := stepKey(t, pb, "Step 01 change")
		res := runAttempt(t, pb, vars, nil, resumeWith(started(key, "INSERT INTO d.t VALUES (4)")), time.Minute, nil)
		res.wantAsked(t, key, "an INSERT: running it again could add the rows twice", "INSERT INTO d.t VALUES (4)")
		if rows("id = 4") != "0" {
			t.Fatal("the statement ran")
		}
	})
}

// TestSQLCancelKillsTheStatement: a statement cut short by the step's
// timeout (the same cancellation Ctrl-C gives) is killed on the server, not
// only abandoned by the client.
func TestSQLCancelKillsTheStatement(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	pb := mysqltest.PlaybookHead("cancel", "node") + `steps:
  - name: Step 01 a long statement
    sql: {on: node, exec: "DO SLEEP(600) /* flow-cancel-test */"}
    pre: true
    timeout: 1s
`
	res := enginetest.Run(t, pb, enginetest.Options{Vars: srv.PlaybookVars()})
	if engine.ExitCode(res.Err) != engine.ExitStepFailed || !strings.Contains(res.Err.Error(), "timed out") {
		t.Fatalf("exit %d, err %v", engine.ExitCode(res.Err), res.Err)
	}
	if !strings.Contains(res.Log, "its statement was killed on the server (KILL QUERY") {
		t.Errorf("the log does not say the statement was killed:\n%s", res.Log)
	}
	db := srv.DB(t)
	// the kill is asynchronous on the server: poll, bounded
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%flow-cancel-test%' AND INFO NOT LIKE '%PROCESSLIST%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the statement still runs on the server 10s after the step was cancelled")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
