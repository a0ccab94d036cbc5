package steps_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/mysqltest"
	_ "github.com/flowdba/flow/steps"
)

const sqlPlaybook = `name: sql-test
params:
  host: {type: string, required: true}
  port: {type: int, required: true}
  user: {type: string, required: true}
  password: {type: string, required: true, secret: true}
  who: {type: string, default: "O'Brien; DROP TABLE t; --"}
connections:
  node: {mysql: {host: "{{ host }}", port: "{{ port }}", user: "{{ user }}", password: "{{ password }}"}}
steps:
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

func nodeVars(s *mysqltest.Server) map[string]string {
	return map[string]string{"host": s.Host, "port": strconv.Itoa(s.Port), "user": s.User, "password": s.Password}
}

// TestSQLStepAgainstMySQL runs query and exec steps on a real server: a
// hostile interpolated value is stored verbatim (it cannot change the
// statement), rows come back typed, and the password is never logged.
func TestSQLStepAgainstMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	res := enginetest.Run(t, sqlPlaybook, enginetest.Options{Vars: nodeVars(srv)})
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
	pb := `name: fail
params:
  host: {type: string, required: true}
  port: {type: int, required: true}
  user: {type: string, required: true}
  password: {type: string, required: true, secret: true}
connections:
  node: {mysql: {host: "{{ host }}", port: "{{ port }}", user: "{{ user }}", password: "{{ password }}"}}
steps:
  - name: Step 01 bad
    sql: {on: node, query: "SELECT nosuchcolumn FROM mysql.user"}
`
	res := enginetest.Run(t, pb, enginetest.Options{Vars: nodeVars(srv)})
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
	pb := `name: dry
params:
  host: {type: string, required: true}
  port: {type: int, required: true}
  user: {type: string, required: true}
  password: {type: string, required: true, secret: true}
connections:
  node: {mysql: {host: "{{ host }}", port: "{{ port }}", user: "{{ user }}", password: "{{ password }}"}}
steps:
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
	res := enginetest.Run(t, pb, enginetest.Options{Vars: nodeVars(srv), Mode: engine.ModeDryRun})
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
