package steps_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/lab/mysqltest"
	"github.com/sirupsen/logrus"
)

// lockPlaybook takes the lock, then waits until the test opens its gate
// (a row of flowgate.g), then logs: a run stays in step 2 for as long as
// the test wants, holding the lock.
var lockPlaybook = mysqltest.PlaybookHead("lock-test", "node", `gate: {type: int, default: 1}`, `wait: {type: string, default: 0s}`) + `steps:
  - name: Step 01 lock
    id: lk
    lock: {on: node, wait: "{{ wait }}"}
  - name: Step 02 wait for the gate
    sql: {on: node, query: "SELECT v FROM flowgate.g WHERE id = {{ gate }}"}
    until: result.count == 1 && result.row.v >= 1
    interval: 50ms
    timeout: 3m
  - name: Step 03 after the gate
    log: {msg: "after the gate: acquired={{ steps.lk.acquired }} free={{ steps.lk.free }} holder={{ steps.lk.holder.run_id }}"}
`

// lockRun is a playbook run in the background, with its own run id,
// operator and control host.
type lockRun struct {
	id   string
	done chan struct{}
	err  error
	log  *testutil.SyncBuffer
}

// startLockRun runs lockPlaybook (or yaml) in the background; the test's
// cleanup interrupts it and waits for it.
func startLockRun(t *testing.T, srv *mysqltest.Server, yaml, runID, operator string, mode engine.Mode, vars map[string]string) *lockRun {
	t.Helper()
	pb := enginetest.Load(t, enginetest.Write(t, yaml, nil))
	v := srv.PlaybookVars()
	for k, x := range vars {
		v[k] = x
	}
	lr := &lockRun{id: runID, done: make(chan struct{}), log: &testutil.SyncBuffer{}}
	log := logrus.New()
	log.SetOutput(lr.log)
	log.SetLevel(logrus.DebugLevel)
	r := engine.NewRunner(engine.Options{Mode: mode, Vars: v, Log: log, RunID: runID, Operator: operator, Host: "ctl-" + runID})
	log.SetFormatter(logfmt.Masked{Inner: logfmt.Text{}, Mask: r.Masker().Apply})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	go func() {
		defer close(lr.done)
		lr.err = r.Run(ctx, pb)
	}()
	t.Cleanup(func() {
		cancel()
		<-lr.done
	})
	return lr
}

// wait waits for the run to end, at most a minute.
func (lr *lockRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-lr.done:
		return lr.err
	case <-time.After(time.Minute):
		t.Fatalf("run %s did not end within a minute:\n%s", lr.id, lr.log)
	}
	return nil
}

// finished reports whether the run ended.
func (lr *lockRun) finished() bool {
	select {
	case <-lr.done:
		return true
	default:
		return false
	}
}

// pollUntil checks cond every 20ms until it holds; it fails the test after
// limit, or at once when the run ends first (run may be nil).
func pollUntil(t *testing.T, what string, limit time.Duration, run *lockRun, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if run != nil && run.finished() {
			t.Fatalf("run %s ended (err %v) before %s:\n%s", run.id, run.err, what, run.log)
		}
		if time.Now().After(deadline) {
			if run != nil {
				t.Fatalf("waited %s for %s; the run's log:\n%s", limit, what, run.log)
			}
			t.Fatalf("waited %s for %s", limit, what)
		}
		<-tick.C
	}
}

// lockGates makes the gate table the playbook polls.
func lockGates(t *testing.T, srv *mysqltest.Server) {
	srv.Exec(t, "CREATE DATABASE flowgate", "CREATE TABLE flowgate.g (id INT PRIMARY KEY, v INT NOT NULL)",
		"INSERT INTO flowgate.g VALUES (1, 0), (2, 0), (3, 0)")
}

// holderOf is the connection id holding lock `flow` (0 when free).
func holderOf(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var id sql.NullInt64
	if err := db.QueryRow("SELECT IS_USED_LOCK('flow')").Scan(&id); err != nil {
		t.Fatalf("IS_USED_LOCK: %v", err)
	}
	return id.Int64
}

// attrsOf reads a connection's attributes.
func attrsOf(t *testing.T, db *sql.DB, id int64) map[string]string {
	t.Helper()
	m, err := readAttrs(db, id)
	if err != nil {
		t.Fatalf("session_connect_attrs: %v", err)
	}
	return m
}

func readAttrs(db *sql.DB, id int64) (map[string]string, error) {
	rows, err := db.Query("SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = ?", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// runHolds waits until run id holds the lock and returns its connection.
func runHolds(t *testing.T, db *sql.DB, run *lockRun, limit time.Duration) int64 {
	t.Helper()
	var conn int64
	pollUntil(t, "run "+run.id+" to hold lock `flow`", limit, run, func() bool {
		var id sql.NullInt64
		if err := db.QueryRow("SELECT IS_USED_LOCK('flow')").Scan(&id); err != nil || !id.Valid {
			return false // free, or the server is restarting
		}
		if m, err := readAttrs(db, id.Int64); err != nil || m["flow_run_id"] != run.id {
			return false
		}
		conn = id.Int64
		return true
	})
	return conn
}

func isFree(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var free int
	if err := db.QueryRow("SELECT IS_FREE_LOCK('flow')").Scan(&free); err != nil {
		t.Fatalf("IS_FREE_LOCK: %v", err)
	}
	return free == 1
}

func openGate(t *testing.T, db *sql.DB, gate int) {
	t.Helper()
	if _, err := db.Exec("UPDATE flowgate.g SET v = 1 WHERE id = ?", gate); err != nil {
		t.Fatal(err)
	}
}

// TestLockHeldUntilTheRunEnds: the lock is taken in step 1, still held
// (seen from another connection) while the run waits in step 2, and free
// the moment the run returns. A second run meanwhile fails at once with
// exit code 2, naming the holder's run id, operator, host, pid and start;
// with `wait:` it says how long it waited.
func TestLockHeldUntilTheRunEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	lockGates(t, srv)
	db := srv.DB(t)
	if !isFree(t, db) {
		t.Fatal("lock `flow` is taken before any run")
	}
	a := startLockRun(t, srv, lockPlaybook, "run-a", "alice", engine.ModeRun, nil)
	conn := runHolds(t, db, a, time.Minute)
	if isFree(t, db) {
		t.Fatal("IS_FREE_LOCK says free while run-a holds it")
	}
	if !strings.Contains(a.log.String(), "Step 02 wait for the gate") {
		// the lock is held by step 1; check it is still held in step 2
		pollUntil(t, "run-a to reach step 2", time.Minute, a, func() bool { return strings.Contains(a.log.String(), "Step 02 wait for the gate") })
	}
	if got := holderOf(t, db); got != conn {
		t.Fatalf("in step 2 the lock is held by connection %d, not run-a's %d", got, conn)
	}
	attrs := attrsOf(t, db, conn)
	since, err := time.Parse(time.RFC3339, attrs["flow_since"])
	if err != nil || time.Since(since) > 5*time.Minute || time.Until(since) > time.Second {
		t.Fatalf("flow_since = %q (%v): not the run's start", attrs["flow_since"], err)
	}

	// a second run fails fast, naming the holder
	b := startLockRun(t, srv, lockPlaybook, "run-b", "bob", engine.ModeRun, map[string]string{"gate": "2"})
	err = b.wait(t)
	if code := engine.ExitCode(err); code != engine.ExitInvalid {
		t.Fatalf("second run: exit %d, want %d: %v\n%s", code, engine.ExitInvalid, err, b.log)
	}
	want := fmt.Sprintf("lock `flow` on %s is held by run run-a of alice on ctl-run-a (pid %d) since %s (connection id %d): wait for it to finish or check `flow status run-a` on that host",
		srv.Addr(), os.Getpid(), attrs["flow_since"], conn)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("second run's error\n%v\nlacks\n%s", err, want)
	}
	if strings.Contains(b.log.String(), "Step 02") {
		t.Fatalf("the second run went on past the lock:\n%s", b.log)
	}
	if got := holderOf(t, db); got != conn {
		t.Fatalf("after the second run the lock is held by %d, not run-a's %d", got, conn)
	}

	// with wait:, the error says it waited
	c := startLockRun(t, srv, lockPlaybook, "run-c", "carol", engine.ModeRun, map[string]string{"gate": "3", "wait": "200ms"})
	err = c.wait(t)
	if code := engine.ExitCode(err); code != engine.ExitInvalid || !strings.Contains(err.Error(), "(connection id "+strconv.FormatInt(conn, 10)+") after waiting 200ms:") {
		t.Fatalf("run with wait: exit %d: %v\n%s", engine.ExitCode(err), err, c.log)
	}

	if a.finished() {
		t.Fatalf("run-a ended early: %v\n%s", a.err, a.log)
	}
	openGate(t, db, 1)
	if err := a.wait(t); err != nil {
		t.Fatalf("run-a failed: %v\n%s", err, a.log)
	}
	if !strings.Contains(a.log.String(), "after the gate: acquired=true free=true holder=") {
		t.Errorf("run-a's output is not acquired:\n%s", a.log)
	}
	if !isFree(t, db) {
		t.Fatalf("lock `flow` still held (by %d) after run-a returned", holderOf(t, db))
	}
}

// TestLockDryRunOnlyLooks: a dry run never takes the lock (it is still free
// while the dry run waits in step 2) and, when a run holds it, reports the
// holder in its output and a warning but does not fail.
func TestLockDryRunOnlyLooks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	lockGates(t, srv)
	db := srv.DB(t)

	d := startLockRun(t, srv, lockPlaybook, "dry-1", "dora", engine.ModeDryRun, nil)
	pollUntil(t, "the dry run to check the lock", time.Minute, d, func() bool {
		return strings.Contains(d.log.String(), "is free; a real run takes it here")
	})
	pollUntil(t, "the dry run to reach step 2", time.Minute, d, func() bool { return strings.Contains(d.log.String(), "Step 02 wait for the gate") })
	if !isFree(t, db) {
		t.Fatalf("the dry run took the lock (held by %d, attributes %v)", holderOf(t, db), attrsOf(t, db, holderOf(t, db)))
	}
	openGate(t, db, 1)
	if err := d.wait(t); err != nil {
		t.Fatalf("dry run failed: %v\n%s", err, d.log)
	}
	if !strings.Contains(d.log.String(), "after the gate: acquired=false free=true holder=") {
		t.Errorf("dry run's output:\n%s", d.log)
	}

	// a real run holds it: the dry run names it and goes on
	a := startLockRun(t, srv, lockPlaybook, "run-a", "alice", engine.ModeRun, map[string]string{"gate": "2"})
	conn := runHolds(t, db, a, time.Minute)
	d2 := startLockRun(t, srv, lockPlaybook, "dry-2", "dora", engine.ModeDryRun, nil)
	if err := d2.wait(t); err != nil {
		t.Fatalf("dry run with the lock held failed: %v\n%s", err, d2.log)
	}
	for _, want := range []string{"after the gate: acquired=false free=false holder=run-a",
		"[ WARN] dry run: lock `flow` on " + srv.Addr() + " is held by run run-a of alice on ctl-run-a",
		"a real run would stop here (exit 2)"} {
		if !strings.Contains(d2.log.String(), want) {
			t.Errorf("dry run's log lacks %q:\n%s", want, d2.log)
		}
	}
	if got := holderOf(t, db); got != conn {
		t.Fatalf("after the dry run the lock is held by %d, not run-a's %d", got, conn)
	}
	openGate(t, db, 2)
	if err := a.wait(t); err != nil {
		t.Fatalf("run-a failed: %v\n%s", err, a.log)
	}
}

// TestLockSurvivesRestartAndReportsATakeover: the lock server restarts
// while a run holds the lock: the keeper warns once and takes it again
// when the server is back. Then its connection is killed while another
// session waits for the lock: that session gets it, the keeper's GET_LOCK
// returns 0, and the run stops before its next step naming the new holder.
func TestLockSurvivesRestartAndReportsATakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	lockGates(t, srv)
	db := srv.DB(t)
	a := startLockRun(t, srv, lockPlaybook, "run-a", "alice", engine.ModeRun, nil)
	first := runHolds(t, db, a, time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Inst.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// the holder is a connection to the restarted server (its ids start
	// again from 1, so it may even carry the old id): the keeper must say
	// it took the lock again on it
	second := runHolds(t, db, a, time.Minute)
	t.Logf("the lock was on connection %d before the restart, on %d after it", first, second)
	pollUntil(t, "the keeper to log the lock taken again", time.Minute, a, func() bool {
		return strings.Contains(a.log.String(), fmt.Sprintf("taken again (connection id %d)", second))
	})
	if n := strings.Count(a.log.String(), "lost the connection that held it"); n != 1 {
		t.Fatalf("the loss was warned %d times, want once:\n%s", n, a.log)
	}

	// another session queues for the lock, then the run's connection dies
	s, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sid int64
	if err := s.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&sid); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		var r sql.NullInt64
		err := s.QueryRowContext(ctx, "SELECT GET_LOCK('flow', 60)").Scan(&r)
		if err == nil && r.Int64 != 1 {
			err = fmt.Errorf("GET_LOCK returned %v", r)
		}
		got <- err
	}()
	pollUntil(t, "the test's session to wait for the lock", time.Minute, a, func() bool {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM performance_schema.threads WHERE PROCESSLIST_ID = ? AND PROCESSLIST_STATE LIKE '%lock%'", sid).Scan(&n)
		return err == nil && n == 1
	})
	if _, err := db.Exec("KILL " + strconv.FormatInt(second, 10)); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the test's session did not get the lock: %v", err)
	}
	held := fmt.Sprintf("is now held by connection id %d of %s@", sid, srv.User)
	pollUntil(t, "the keeper to see the lock taken by another session", time.Minute, a, func() bool {
		return strings.Contains(a.log.String(), held)
	})
	openGate(t, db, 1)
	err = a.wait(t)
	if err == nil || !strings.Contains(err.Error(), "no further step runs") || !strings.Contains(err.Error(), held) {
		t.Fatalf("run-a did not stop on the lost lock: %v\n%s", err, a.log)
	}
	if strings.Contains(a.log.String(), "after the gate") {
		t.Fatalf("step 3 ran after the lock was lost:\n%s", a.log)
	}
	if n := strings.Count(a.log.String(), "lost the connection that held it"); n != 2 {
		t.Errorf("the losses were warned %d times, want twice (restart, kill):\n%s", n, a.log)
	}
}

// TestConnectionAttributesNameTheRun: every connection of a run (here a
// sql step's and the lock's) carries program_name=flow and the run's
// flow_* attributes; a comma in a value cannot add a bogus attribute. A
// second lock step of the same run finds the lock its own and goes on.
func TestConnectionAttributesNameTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	srv := mysqltest.Start(t)
	lockGates(t, srv)
	db := srv.DB(t)
	pb := strings.Replace(lockPlaybook, "  - name: Step 02 wait for the gate\n", `  - name: Step 01b own attributes
    sql:
      on: node
      query: >-
        SELECT MAX(IF(ATTR_NAME = 'program_name', ATTR_VALUE, NULL)) AS prog,
               MAX(IF(ATTR_NAME = 'flow_run_id', ATTR_VALUE, NULL)) AS run_id,
               MAX(IF(ATTR_NAME = 'flow_operator', ATTR_VALUE, NULL)) AS op,
               COUNT(*) AS n
        FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID()
    post:
      - that: 'result.row.prog == "flow" && result.row.run_id == "run-e" && result.row.op == "eve;x:y"'
        message: "the sql step's connection has attributes {{ result.row }}"
  - name: Step 01c the same lock again (an included playbook's)
    id: again
    lock: {on: node}
    post: result.acquired
  - name: Step 02 wait for the gate
`, 1)
	e := startLockRun(t, srv, pb, "run-e", "eve,x:y", engine.ModeRun, nil)
	conn := runHolds(t, db, e, time.Minute)
	attrs := attrsOf(t, db, conn)
	want := map[string]string{"program_name": "flow", "flow_run_id": "run-e", "flow_host": "ctl-run-e",
		"flow_pid": strconv.Itoa(os.Getpid()), "flow_operator": "eve;x:y"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	if _, err := time.Parse(time.RFC3339, attrs["flow_since"]); err != nil {
		t.Errorf("flow_since = %q: %v", attrs["flow_since"], err)
	}
	if _, bogus := attrs["x"]; bogus {
		t.Errorf("the comma in the operator made an attribute x: %v", attrs)
	}
	var name string
	var lost int
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Performance_schema_session_connect_attrs_lost'").Scan(&name, &lost); err != nil || lost != 0 {
		t.Errorf("the server truncated the attributes of %d connection(s) (%v): keep them short", lost, err)
	}
	pollUntil(t, "run-e to reach step 2", time.Minute, e, func() bool { return strings.Contains(e.log.String(), "Step 02 wait for the gate") })
	openGate(t, db, 1)
	if err := e.wait(t); err != nil {
		t.Fatalf("run-e failed: %v\n%s", err, e.log)
	}
	if want := fmt.Sprintf("lock `flow` on %s is already held by this run (connection id %d)", srv.Addr(), conn); !strings.Contains(e.log.String(), want) {
		t.Errorf("a second lock step of the run: log lacks %q:\n%s", want, e.log)
	}
	if !isFree(t, db) {
		t.Errorf("lock `flow` still held after run-e")
	}
}

// TestLockLoadErrors checks the fields' validation when a playbook loads.
func TestLockLoadErrors(t *testing.T) {
	head := "name: l\nconnections:\n  node: {mysql: {host: 127.0.0.9, user: u}}\n  box: {ssh: {host: 127.0.0.9, user: u}}\nsteps:\n  - lock: "
	for _, c := range []struct{ fields, want string }{
		{"{on: node, wait: 5}", "`wait: 5` is not a duration"},
		{"{on: node, wait: -1s}", "`wait: -1s` is negative"},
		{"{on: node, name: " + strings.Repeat("n", 65) + "}", "must have 1 to 64 characters, not 65"},
		{"{on: node, name: \"\"}", "must have 1 to 64 characters, not 0"},
		{"{on: box}", "box"},
		{"{on: node, timeout_s: 3}", "timeout_s"},
	} {
		_, diags := engine.Load(enginetest.Write(t, head+c.fields+"\n", nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%q: want %q, got %v", c.fields, c.want, diags)
		}
	}
	for _, ok := range []string{"{on: node}", "{on: node, wait: 0}", "{on: node, wait: 0s, name: flow-dr}", "{on: node, wait: \"{{ 1 }}\"}"} {
		if pb, diags := engine.Load(enginetest.Write(t, head+ok+"\n", nil)); pb == nil || len(diags) > 0 {
			t.Errorf("%q: %v", ok, diags)
		}
	}
}

// TestLockPlanOffline renders the step without a server.
func TestLockPlanOffline(t *testing.T) {
	pb := `name: lock-plan
connections:
  node: {mysql: {host: 127.0.0.9, port: 16310, user: u}}
steps:
  - name: Step 00 lock
    lock: {on: node, name: "O'Brien", wait: 30s}
`
	res := enginetest.Run(t, pb, enginetest.Options{Mode: engine.ModePlan})
	if res.Err != nil {
		t.Fatalf("plan: %v\n%s", res.Err, res.Log)
	}
	for _, want := range []string{"mysql node (127.0.0.9:16310)", "take lock `O'Brien` (GET_LOCK, waiting at most 30s) on a connection of its own and hold it until the run ends"} {
		if !strings.Contains(res.Out, want) {
			t.Errorf("plan lacks %q:\n%s", want, res.Out)
		}
	}
}

// TestLockIfUnreachable: a lock server that does not answer stops the run,
// unless the step says `if_unreachable: later` (the run goes on, warned).
func TestLockIfUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	pb := func(mode string) string {
		return fmt.Sprintf(`name: unreachable
connections:
  node: {mysql: {host: 127.0.0.1, port: %d, user: u, password: p, connect_timeout: 1s}}
steps:
  - name: Step 01 lock
    lock: {on: node, name: flow-test%s}
    register: lk
  - name: Step 02 after
    assert: {that: lk.pending == true, message: not pending}
`, port, mode)
	}
	res := enginetest.Run(t, pb(""), enginetest.Options{})
	if engine.ExitCode(res.Err) != engine.ExitStepFailed || !strings.Contains(res.Err.Error(), "cannot connect") {
		t.Fatalf("default: exit %d, %v", engine.ExitCode(res.Err), res.Err)
	}
	res = enginetest.Run(t, pb(", if_unreachable: later"), enginetest.Options{})
	if res.Err != nil {
		t.Fatalf("if_unreachable: later: %v\n%s", res.Err, res.Log)
	}
	if !strings.Contains(res.Log, "it is taken as soon as the server answers") {
		t.Errorf("no warning that the lock is pending:\n%s", res.Log)
	}
}
