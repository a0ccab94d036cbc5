package steps_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/mysqltest"
)

// replPlaybook is a playbook on the connection `node` (a mysqltest server)
// whose steps are given.
func replPlaybook(steps string) string {
	return mysqltest.PlaybookHead("replication-test", "node") + "steps:\n" + steps
}

// replRun runs a replication test playbook and returns its result and the
// statements it journaled (as the journal's `statement` records hold them).
func replRun(t *testing.T, srv *mysqltest.Server, mode engine.Mode, steps string) (*enginetest.Result, []string) {
	t.Helper()
	j := &enginetest.Journal{}
	res := enginetest.Run(t, replPlaybook(steps), enginetest.Options{Vars: srv.PlaybookVars(), Mode: mode, Journal: j})
	sent := journaled(j)
	if strings.Contains(res.Log, srv.Password) || strings.Contains(res.Out, srv.Password) {
		t.Fatalf("the password reached the log or the listing")
	}
	return res, sent
}

// threadStates reads, independently of the step, the replica's receiver
// and applier states from performance_schema ("" when there is no
// channel).
func threadStates(t *testing.T, srv *mysqltest.Server) (io, sqlT string) {
	t.Helper()
	return srv.QueryString(t, "SELECT IFNULL(MAX(SERVICE_STATE), '') FROM performance_schema.replication_connection_status WHERE CHANNEL_NAME = ''"),
		srv.QueryString(t, "SELECT IFNULL(MAX(SERVICE_STATE), '') FROM performance_schema.replication_applier_status WHERE CHANNEL_NAME = ''")
}

// journaled returns the statements a run journaled (its `statement`
// records' text), in order.
func journaled(j *enginetest.Journal) []string {
	var sent []string
	for _, e := range j.Events() {
		if e.Event == "statement" {
			sent = append(sent, fmt.Sprint(e.Fields["text"]))
		}
	}
	return sent
}

func wantSent(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journaled statements:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestReplicationStepAgainstMySQL drives the replication step on real
// MySQL 9.7 with real GTID replication between two servers: status reports
// the replica under flow's field names, stop/start of one thread and of
// both change exactly those threads (read back from performance_schema,
// not from the step), a start catches up what the source wrote meanwhile,
// reset keeps the source and reset all forgets it, a node that is no
// replica gives configured: false, and the journal holds exactly the
// REPLICA statements 9.7 needs.
func TestReplicationStepAgainstMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	src := mysqltest.Start(t)
	rep := mysqltest.StartReplica(t, src)
	src.Exec(t, "CREATE DATABASE r", "CREATE TABLE r.t (id INT PRIMARY KEY)", "INSERT INTO r.t VALUES (1)")
	rep.WaitGTIDs(t, src.GTIDExecuted(t))

	t.Run("status of a running replica", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeRun, fmt.Sprintf(`  - name: Step 07 replica status
    replication: {on: node, action: status}
    register: rs
  - assert:
      that: >-
        rs.configured && rs.running && rs.io_running && rs.sql_running && !rs.io_connecting &&
        rs.source_host == %q && rs.source_port == %d && rs.source_user == %q && rs.auto_position &&
        rs.seconds_behind != nil && rs.seconds_behind <= 30 && rs.last_io_errno == 0 && rs.last_sql_errno == 0 &&
        gtid_contains(rs.executed_gtid_set, %q) && gtid_contains(rs.retrieved_gtid_set, %q) &&
        rs.channel == "" && rs.count == 1 && len(rs.channels) == 1 && rs.channels[0].source_host == rs.source_host &&
        rs.spelling == "REPLICA" && version_series(rs.version) == "9.7" && !rs.router &&
        rs.source_uuid == %q && rs.all.source_uuid == rs.source_uuid && rs.all.replica_io_running == "Yes"
      message: "status: {{ rs }}"
`, src.Host, src.Port, src.User, src.GTIDExecuted(t), src.GTIDExecuted(t), src.QueryString(t, "SELECT @@server_uuid")))
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "SHOW REPLICA STATUS")
		if !strings.Contains(res.Log, "replication of the default channel from "+src.Addr()+": IO Yes, SQL Yes, behind ") {
			t.Errorf("the log does not describe the replica:\n%s", res.Log)
		}
	})

	t.Run("stop and start one thread", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeRun, `  - name: Step 09 stop receiving
    replication: {on: node, action: stop, threads: io}
    pre: true
    post:
      - that: result.configured && !result.io_running && result.sql_running && !result.running
        message: "after stop io: {{ result }}"
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "STOP REPLICA IO_THREAD")
		if io, sqlT := threadStates(t, rep); io != "OFF" || sqlT != "ON" {
			t.Fatalf("after stop io: receiver %s applier %s, want OFF ON", io, sqlT)
		}
		src.Exec(t, "INSERT INTO r.t VALUES (2)", "INSERT INTO r.t VALUES (3)")
		if n := rep.QueryString(t, "SELECT COUNT(*) FROM r.t"); n != "1" {
			t.Fatalf("the replica received rows with its receiver stopped: %s", n)
		}
		res, sent = replRun(t, rep, engine.ModeRun, `  - name: start receiving
    replication: {on: node, action: start, threads: io, channel: ""}
    pre: true
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "START REPLICA IO_THREAD FOR CHANNEL ''")
		rep.WaitGTIDs(t, src.GTIDExecuted(t))
		if n := rep.QueryString(t, "SELECT COUNT(*) FROM r.t"); n != "3" {
			t.Fatalf("after start io the replica has %s rows, want 3", n)
		}
	})

	t.Run("stop twice, then start: idempotent", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeRun, `  - name: stop
    replication: {on: node, action: stop}
    pre: true
  - name: stop again
    replication: {on: node, action: stop}
    pre: true
    register: again
  - assert:
      that: again.configured && !again.io_running && !again.sql_running
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "STOP REPLICA", "STOP REPLICA")
		if io, sqlT := threadStates(t, rep); io != "OFF" || sqlT != "OFF" {
			t.Fatalf("after stop: receiver %s applier %s, want OFF OFF", io, sqlT)
		}
		src.Exec(t, "INSERT INTO r.t VALUES (4)")
		res, sent = replRun(t, rep, engine.ModeRun, `  - name: start
    replication: {on: node, action: start}
    pre: true
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "START REPLICA")
		rep.WaitGTIDs(t, src.GTIDExecuted(t))
	})

	t.Run("a dry run stops nothing and shows the statement", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeDryRun, `  - name: Step 09 stop replica
    replication: {on: node, action: stop}
    pre: true
  - name: Step 07 status
    replication: {on: node, action: status}
    register: rs
  - assert:
      that: rs.running
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "SHOW REPLICA STATUS") // the read ran for real, the stop did not
		if io, sqlT := threadStates(t, rep); io != "ON" || sqlT != "ON" {
			t.Fatalf("a dry run changed replication: receiver %s applier %s", io, sqlT)
		}
		for _, want := range []string{"[WILL RUN ] test.yaml:10 Step 09 stop replica", "STOP REPLICA\n", "before 8.0.22: STOP SLAVE", "[RUNS     ] test.yaml:13 Step 07 status"} {
			if !strings.Contains(res.Out, want) {
				t.Errorf("the dry run lacks %q:\n%s", want, res.Out)
			}
		}
	})

	t.Run("a channel the node lacks", func(t *testing.T) {
		res, _ := replRun(t, rep, engine.ModeRun, `  - name: status of nosuch
    replication: {on: node, action: status, channel: nosuch}
    register: rs
  - assert: {that: "!rs.configured && !rs.running && rs.count == 0"}
  - name: stop nosuch
    replication: {on: node, action: stop, channel: nosuch}
    pre: true
`)
		if res.Err == nil || !strings.Contains(res.Err.Error(), "STOP REPLICA FOR CHANNEL 'nosuch'") || !strings.Contains(res.Err.Error(), "no such channel on this node") {
			t.Fatalf("stop on a missing channel: %v\n%s", res.Err, res.Log)
		}
	})

	t.Run("on_restart stopped survives a crash of mysqld; default forgets it", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeRun, `  - name: freeze the donor
    replication: {on: node, action: stop, on_restart: stopped}
    pre: true
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "STOP REPLICA", "SET PERSIST_ONLY skip_replica_start = ON")
		const persisted = "SELECT IFNULL(MAX(VARIABLE_VALUE), 'none') FROM performance_schema.persisted_variables WHERE VARIABLE_NAME = 'skip_replica_start'"
		if v := rep.QueryString(t, persisted); v != "ON" {
			t.Fatalf("persisted skip_replica_start = %s, want ON", v)
		}
		// SIGKILL: mysqld_safe starts mysqld again, as after a crash
		pid, err := rep.Inst.MysqldPID()
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := rep.Inst.WaitRestart(ctx, pid); err != nil {
			t.Fatal(err)
		}
		if io, sqlT := threadStates(t, rep); io != "OFF" || sqlT != "OFF" {
			t.Fatalf("after the restart: receiver %s applier %s, want OFF OFF (skip_replica_start persisted)", io, sqlT)
		}
		src.Exec(t, "INSERT INTO r.t VALUES (5)")
		before := rep.QueryString(t, "SELECT COUNT(*) FROM r.t")
		res, sent = replRun(t, rep, engine.ModeRun, `  - name: release the donor
    replication: {on: node, action: start, on_restart: default}
    pre: true
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "RESET PERSIST IF EXISTS skip_replica_start", "START REPLICA")
		if v := rep.QueryString(t, persisted); v != "none" {
			t.Fatalf("persisted skip_replica_start = %s after on_restart: default, want none", v)
		}
		rep.WaitGTIDs(t, src.GTIDExecuted(t))
		if after := rep.QueryString(t, "SELECT COUNT(*) FROM r.t"); after == before {
			t.Fatalf("the replica has %s rows before and after the start: it did not replicate the row written while it was frozen", after)
		}
	})

	t.Run("reset keeps the source, reset all forgets it", func(t *testing.T) {
		res, sent := replRun(t, rep, engine.ModeRun, `  - name: reset
    replication: {on: node, action: reset}
    pre: true
    register: rr
  - assert:
      that: rr.configured && !rr.running && rr.source_host != ""
      message: "after reset: {{ rr }}"
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "STOP REPLICA", "RESET REPLICA")
		if h := rep.QueryString(t, "SELECT IFNULL(MAX(HOST), '') FROM performance_schema.replication_connection_configuration"); h != src.Host {
			t.Fatalf("after reset the configured source is %q, want %s", h, src.Host)
		}
		res, sent = replRun(t, rep, engine.ModeRun, `  - name: forget
    replication: {on: node, action: reset, all: true}
    pre: true
    post:
      - that: "!result.configured && !result.running && result.source_host == '' && result.seconds_behind == nil && result.count == 0"
        message: "after reset all: {{ result }}"
`)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		wantSent(t, sent, "STOP REPLICA", "RESET REPLICA ALL")
		if n := rep.QueryString(t, "SELECT COUNT(*) FROM performance_schema.replication_connection_configuration"); n != "0" {
			t.Fatalf("after reset all %s channel(s) are still configured", n)
		}
		if !strings.Contains(res.Log, "not a replica (no replication channel configured)") {
			t.Errorf("the log does not say the node is no replica now:\n%s", res.Log)
		}
	})

	t.Run("a node that is not a replica", func(t *testing.T) {
		res, sent := replRun(t, src, engine.ModeRun, `  - name: status
    replication: {on: node, action: status}
    register: rs
  - assert:
      that: >-
        !rs.configured && !rs.running && !rs.io_running && !rs.sql_running && rs.source_host == "" &&
        rs.source_port == 0 && rs.seconds_behind == nil && rs.count == 0 && len(rs.channels) == 0 && rs.executed_gtid_set == ""
      message: "status of a source: {{ rs }}"
  - name: stop is harmless
    replication: {on: node, action: stop}
    pre: true
  - name: start fails
    replication: {on: node, action: start}
    pre: true
`)
		wantSent(t, sent, "SHOW REPLICA STATUS", "STOP REPLICA", "START REPLICA")
		if res.Err == nil {
			t.Fatalf("START REPLICA on a node with no source succeeded\n%s", res.Log)
		}
		for _, want := range []string{"test.yaml:", "start fails", src.Addr(), "`START REPLICA`", "it is not a replica; configure one with CHANGE REPLICATION SOURCE TO"} {
			if !strings.Contains(res.Err.Error(), want) {
				t.Errorf("the error lacks %q: %v", want, res.Err)
			}
		}
		if n := src.QueryString(t, "SELECT COUNT(*) FROM performance_schema.replication_connection_configuration"); n != "0" {
			t.Fatalf("the source has %s replication channel(s) now", n)
		}
	})
}

// TestReplicationResume: an interrupted stop or start is run again on
// resume (they set a state), and running it again leaves that state.
func TestReplicationResume(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	src := mysqltest.Start(t)
	rep := mysqltest.StartReplica(t, src)
	pb := replPlaybook(`  - name: Step 09 stop replica
    replication: {on: node, action: stop}
    pre: true
    register: r
  - assert:
      that: "!r.running && r.configured"
`)
	key := stepKey(t, pb, "Step 09 stop replica")
	target := fmt.Sprintf("mysql node (%s)", rep.Addr())
	rec := &engine.StepRecord{Key: key, Status: engine.StepStarted, Started: time.Now().Add(-time.Minute), Sent: []string{target + ": STOP REPLICA"}}
	res := runAttempt(t, pb, rep.PlaybookVars(), nil, resumeWith(rec), time.Minute, nil)
	res.wantDecision(t, key, "rerun", "sets a state")
	if res.Err != nil {
		t.Fatalf("resume: %v\n%s", res.Err, res.Log)
	}
	if io, sqlT := threadStates(t, rep); io != "OFF" || sqlT != "OFF" {
		t.Fatalf("after the resumed stop: receiver %s applier %s", io, sqlT)
	}
}
