package steps_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/gtid"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/lab/mysqltest"
)

// waitHead is the header of the wait-gtid test playbooks: `node` is the
// replica, `src` its source.
var waitHead = mysqltest.PlaybookHead("wait-test", "node", `src_host: {type: string, required: true}`, `src_port: {type: int, required: true}`, `src_password: {type: string, required: true, secret: true}`, `ref: {type: string, default: ""}`) + `  src: {mysql: {host: "{{ src_host }}", port: "{{ src_port }}", user: "{{ user }}", password: "{{ src_password }}"}}
steps:
`

func waitVars(node, src *mysqltest.Server, ref string) map[string]string {
	return map[string]string{
		"host": node.Host, "port": strconv.Itoa(node.Port), "user": node.User, "password": node.Password,
		"src_host": src.Host, "src_port": strconv.Itoa(src.Port), "src_password": src.Password, "ref": ref,
	}
}

// waitForLog polls a running playbook's log until it contains want.
func waitForLog(log *testutil.SyncBuffer, want string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(log.String(), want) {
			return true
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
	return false
}

// TestWaitGTIDAgainstMySQL runs wait-gtid against a real source and replica:
// it really waits for a stopped applier that is started later, times out
// quoting the missing set, fails after the grace period when nothing can
// bring the transactions, and fails fast on a broken replica.
func TestWaitGTIDAgainstMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	src := mysqltest.Start(t)
	rep := mysqltest.StartReplica(t, src)
	src.Exec(t, "CREATE DATABASE w", "CREATE TABLE w.t (id INT PRIMARY KEY)")
	rep.WaitGTIDs(t, src.GTIDExecuted(t))

	t.Run("catches up after the applier is started again", func(t *testing.T) {
		rep.Exec(t, "STOP REPLICA SQL_THREAD")
		inserts := make([]string, 50)
		for i := range inserts {
			inserts[i] = fmt.Sprintf("INSERT INTO w.t VALUES (%d)", i+1)
		}
		src.Exec(t, inserts...)
		pb := waitHead + `  - name: Step 10 wait for the replica
    register: w
    wait-gtid: {on: node, source: src, progress: 300ms}
  - name: Step 11 count
    register: c
    sql: {on: node, query: "SELECT COUNT(*) AS n FROM w.t"}
  - assert:
      that: w.count == 0 && w.missing == "" && w.waited_ms > 0 && gtid_contains(w.gtid_executed, w.reference) && c.row.n == 50
      message: "wait-gtid returned {{ w }} with {{ c.row.n }} rows on the replica"
`
		log := &testutil.SyncBuffer{}
		started := make(chan string, 1)
		go func() {
			// start the applier once the step has reported progress while
			// the rows were still missing
			defer close(started)
			if !waitForLog(log, `"event":"gtid_wait_progress"`, time.Minute) {
				started <- "the step never reported progress"
				return
			}
			started <- "rows on the replica before START: " + rep.QueryString(t, "SELECT COUNT(*) FROM w.t")
			rep.Exec(t, "START REPLICA SQL_THREAD")
		}()
		res := rawRun(t, pb, engine.ModeRun, waitVars(rep, src, ""), true, 2*time.Minute, log)
		note := <-started
		if res.Err != nil {
			t.Fatalf("%v (%s)\n%s", res.Err, note, res.Log)
		}
		t.Logf("%s; log:\n%s", note, res.Log)
		if note != "rows on the replica before START: 0" {
			t.Fatalf("the applier was started too early or not at all: %s", note)
		}
		for _, want := range []string{"50 transaction(s) missing", `"event":"gtid_wait_started"`, `"event":"gtid_wait_done"`, `"missing_count":50`, "trx/s", "SQL thread) of the default channel is stopped (no error)"} {
			if !strings.Contains(res.Log, want) {
				t.Errorf("log lacks %q:\n%s", want, res.Log)
			}
		}
		for _, secret := range []string{rep.Password, src.Password} {
			if strings.Contains(res.Log, secret) {
				t.Fatalf("a password leaked into the log")
			}
		}
	})

	t.Run("reports its progress to the view", func(t *testing.T) {
		rep.Exec(t, "STOP REPLICA SQL_THREAD")
		uuid := src.QueryString(t, "SELECT @@server_uuid")
		done, err := gtid.Parse(src.GTIDExecuted(t))
		if err != nil || done.String() != fmt.Sprintf("%s:1-%d", uuid, done.Count()) {
			t.Fatalf("the source's gtid_executed is not one interval of its own: %v %v", done, err)
		}
		inserts := make([]string, 40)
		for i := range inserts {
			inserts[i] = fmt.Sprintf("INSERT INTO w.t VALUES (%d)", 200+i)
		}
		src.Exec(t, inserts...)
		half := fmt.Sprintf("%s:1-%d", uuid, done.Count()+20)
		pb := waitHead + `  - name: Step 10 wait for the replica
    wait-gtid: {on: node, source: src, stopped_grace: 2m, timeout: 2m}
`
		progress := make(chan map[string]any, 1000)
		var obs []map[string]any
		res := make(chan error, 1)
		p := enginetest.Load(t, enginetest.Write(t, pb, nil))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r := engine.NewRunner(engine.Options{Mode: engine.ModeRun, Vars: waitVars(rep, src, ""), Operator: "test", Host: "test",
				Observer: func(event string, f map[string]any) {
					if event == "step_progress" {
						progress <- f
					}
				}})
			res <- r.Run(ctx, p)
		}()
		// next is the next progress report whose missing count is want
		next := func(want uint64) map[string]any {
			t.Helper()
			limit := time.After(time.Minute)
			for {
				select {
				case f := <-progress:
					obs = append(obs, f)
					if f["missing"] == want {
						return f
					}
				case err := <-res:
					t.Fatalf("the wait ended (%v) before a report of %d missing transaction(s): %v", err, want, obs)
				case <-limit:
					t.Fatalf("no report of %d missing transaction(s) within a minute: %v", want, obs)
				}
			}
		}
		first := next(40)
		wantFor := rep.Addr() + ") to apply 40 missing transaction(s) of the gtid_executed of mysql src (" + src.Addr() + ")"
		if wf, _ := first["waits_for"].(string); !strings.Contains(wf, wantFor) || first["rate"] != 0.0 || first["rate_unit"] != "trx/s" || first["eta_s"] != nil {
			t.Fatalf("the first report %v: want waits_for ending %q, rate 0 and no estimate", first, wantFor)
		}
		// let the applier apply half of them and stop
		rep.Exec(t, "START REPLICA SQL_THREAD UNTIL SQL_AFTER_GTIDS = '"+half+"'")
		mid := next(20)
		rate, _ := mid["rate"].(float64)
		eta, _ := mid["eta_s"].(float64)
		if rate <= 0 || eta <= 0 || math.Abs(eta-20/rate) > 1e-6 {
			t.Fatalf("after 20 transactions were applied the report says %v: want a rate and an estimate of 20/rate", mid)
		}
		if wf, _ := mid["waits_for"].(string); !strings.Contains(wf, "to apply 20 missing transaction(s)") {
			t.Fatalf("the report %v does not say what it waits for", mid)
		}
		// the applier stops at the UNTIL position: start it for the rest
		deadline := time.Now().Add(time.Minute)
		for rep.QueryString(t, "SELECT SERVICE_STATE FROM performance_schema.replication_applier_status") != "OFF" {
			if time.Now().After(deadline) {
				t.Fatal("the applier did not stop at its UNTIL position within a minute")
			}
			time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for an outcome
		}
		rep.Exec(t, "START REPLICA SQL_THREAD")
		if err := <-res; err != nil {
			t.Fatalf("the wait failed: %v (reports %v)", err, obs)
		}
		for _, f := range obs {
			if wf, _ := f["waits_for"].(string); strings.Contains(wf, rep.Password) || strings.Contains(wf, src.Password) {
				t.Fatal("a password leaked into a progress report")
			}
		}
	})

	t.Run("plan and dry run", func(t *testing.T) {
		pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: node, source: src, timeout: 30s}
  - name: Step 11 wait for a set
    wait-gtid: {on: node, gtid: ref, interval: 50ms}
`
		vars := waitVars(rep, src, src.GTIDExecuted(t))
		plan := rawRun(t, pb, engine.ModePlan, vars, false, time.Minute, nil)
		if plan.Err != nil {
			t.Fatalf("plan: %v", plan.Err)
		}
		for _, want := range []string{"wait until @@GLOBAL.gtid_executed contains @@GLOBAL.gtid_executed of mysql src (" + src.Addr() + ")",
			"timeout 30s", "poll every 50ms", "contains " + src.GTIDExecuted(t)} {
			if !strings.Contains(plan.Out, want) {
				t.Errorf("plan lacks %q:\n%s", want, plan.Out)
			}
		}
		dry := rawRun(t, pb, engine.ModeDryRun, vars, false, time.Minute, nil)
		if dry.Err != nil || strings.Count(dry.Out, "[RUNS     ]") != 2 {
			t.Fatalf("dry run should execute both waits: %v\n%s\n%s", dry.Err, dry.Out, dry.Log)
		}
		if strings.Contains(plan.Out+dry.Out+dry.Log, rep.Password) {
			t.Fatal("a password leaked")
		}
	})

	t.Run("times out quoting the missing set", func(t *testing.T) {
		foreign := "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:1-10"
		pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: node, gtid: ref, timeout: 1500ms}
`
		res := rawRun(t, pb, engine.ModeRun, waitVars(rep, src, src.GTIDExecuted(t)+","+foreign), false, time.Minute, nil)
		if res.Err == nil {
			t.Fatal("the wait for transactions that never come succeeded")
		}
		msg := res.Err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"within 1.5s (timeout)", "10 transaction(s) still missing: " + foreign, "Step 10 wait", rep.Addr()} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
	})

	t.Run("applier stopped without error fails after the grace period", func(t *testing.T) {
		rep.Exec(t, "STOP REPLICA SQL_THREAD")
		defer rep.Exec(t, "START REPLICA SQL_THREAD")
		src.Exec(t, "INSERT INTO w.t VALUES (100)")
		pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: node, source: src, stopped_grace: 1s, timeout: 10m}
`
		res := rawRun(t, pb, engine.ModeRun, waitVars(rep, src, ""), false, time.Minute, nil)
		if res.Err == nil {
			t.Fatal("a wait on a stopped applier succeeded")
		}
		msg := res.Err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"will not catch up by itself", "applier (SQL thread) of the default channel is stopped (no error)", "1 transaction(s)", "START REPLICA"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
		if strings.Contains(msg, "timeout") {
			t.Errorf("it waited out the timeout instead of the grace period: %s", msg)
		}
	})

	t.Run("a node that is not a replica fails after the grace period", func(t *testing.T) {
		pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: src, gtid: ref, stopped_grace: 500ms, timeout: 10m}
`
		res := rawRun(t, pb, engine.ModeRun, waitVars(rep, src, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:1-3"), false, time.Minute, nil)
		if res.Err == nil || !strings.Contains(res.Err.Error(), "it has no replication channel (it is not a replica)") {
			t.Fatalf("want a no-channel error, got %v", res.Err)
		}
	})

	// last: this breaks replication
	t.Run("fails fast on a broken replica", func(t *testing.T) {
		rep.WaitGTIDs(t, src.GTIDExecuted(t))
		rep.Exec(t, "INSERT INTO w.t VALUES (1000)")
		src.Exec(t, "INSERT INTO w.t VALUES (1000)", "INSERT INTO w.t VALUES (1001)")
		pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: node, source: src, timeout: 10m, stopped_grace: 10m}
`
		// the run's own deadline is far below the step's timeout and grace:
		// only failing fast passes
		res := rawRun(t, pb, engine.ModeRun, waitVars(rep, src, ""), false, time.Minute, nil)
		if res.Err == nil {
			t.Fatal("the wait on a broken replica succeeded")
		}
		msg := res.Err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"replication stopped with an error", "applier (SQL thread) of the default channel stopped with", "error 1062", "Duplicate entry '1000'", "2 transaction(s)"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
	})
}

// TestWaitGTIDLoadErrors checks the fields' validation when a playbook loads.
func TestWaitGTIDLoadErrors(t *testing.T) {
	for _, c := range []struct{ step, want string }{
		{`{on: node, gtid: ref, source: src}`, "has both `gtid:` and `source:`"},
		{`{on: node}`, "needs the set to wait for"},
		{`{on: node, source: {on: src, prot: 1}}`, "`source:` takes on, host and port (or at), not \"prot\""},
		{`{on: node, source: [src]}`, "`source:` is a connection name, {on:, host:, port:} or {on:, at:}"},
		{`{on: node, source: nosuch}`, `no mysql connection named "nosuch"`},
		{`{on: node, gtid: ref, timeout: 10}`, "`timeout: 10`: not a duration"},
		{`{on: node, gtid: ref, interval: 0s}`, "`interval:` must be more than zero"},
		{`{on: node, gtid: ref, stopped_grace: soon}`, "`stopped_grace: soon`: not a duration"},
		{`{on: node, gtid: ref, bogus: 1}`, `unknown key "bogus"`},
	} {
		_, diags := engine.Load(enginetest.Write(t, waitHead+"  - name: Step 10 wait\n    wait-gtid: "+c.step+"\n", nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s: want %q, got %v", c.step, c.want, diags)
		}
	}
}

// TestWaitGTIDPlanOffline renders a plan without any server: the reference
// set is shown, clipped at a UUID boundary when long, and the source form
// names the connection.
func TestWaitGTIDPlanOffline(t *testing.T) {
	var parts []string
	for i := 0; i < 12; i++ {
		parts = append(parts, fmt.Sprintf("%08x-bbbb-cccc-dddd-eeeeeeeeeeee:1-%d", i, 100+i))
	}
	pb := waitHead + `  - name: Step 10 wait
    wait-gtid: {on: node, gtid: ref, timeout: 2m, stopped_grace: 5s}
  - name: Step 11 wait for the source
    wait-gtid: {on: node, host: "{{ src_host }}", source: {on: src, port: 3307}}
`
	vars := map[string]string{"host": "127.0.0.2", "port": "16315", "user": "admin", "password": "Pw-never-shown", "src_host": "127.0.0.3", "src_port": "16315", "src_password": "Pw-never-shown-2", "ref": strings.Join(parts, ",")}
	res := rawRun(t, pb, engine.ModePlan, vars, false, time.Minute, nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, want := range []string{
		"on mysql node (127.0.0.2:16315):", "wait until @@GLOBAL.gtid_executed contains " + parts[0] + "," + parts[1],
		"more UUID(s))", "timeout 2m", "after 5s if the applier stays stopped",
		"on mysql node (127.0.0.3:16315):", "@@GLOBAL.gtid_executed of mysql src (127.0.0.3:3307), read once at the start",
		"poll every 200ms, timeout 10m;",
	} {
		if !strings.Contains(res.Out, want) {
			t.Errorf("plan lacks %q:\n%s", want, res.Out)
		}
	}
	if strings.Contains(res.Out, parts[11]) {
		t.Errorf("the long reference was not clipped:\n%s", res.Out)
	}
	assertNoSecret(t, "plan", res.Out+res.Log, "Pw-never-shown")
}
