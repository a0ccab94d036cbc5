package playbooks_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/drlab"
)

// labState is a text snapshot of everything a flashback playbook could
// change on the lab, one fact per line, sorted: the routers' dataservers,
// datasources and global options, and per node its GTIDs, read-only flags,
// replication, schemas and the clone folder next to its instance; plus
// whether a redo record exists. Two snapshots taken without writes in
// between are equal unless something changed the lab.
func labState(t *testing.T, lab *drlab.Lab, redo string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, cluster := range []string{drlab.ClusterPrimary, drlab.ClusterStandby} {
		db, err := lab.OpenRouter(cluster)
		if err != nil {
			t.Fatalf("state: %s router: %v", cluster, err)
		}
		for _, q := range []string{
			"dbscale show dataservers",
			"dbscale show datasource type = REPLICATION",
			"dbscale show datasource type = SERVER",
			"dbscale show global options",
		} {
			rows, err := queryRows(ctx, db, q)
			if err != nil && !strings.Contains(err.Error(), "No DataSource") {
				db.Close()
				t.Fatalf("state: %s router: %s: %v", cluster, q, err)
			}
			for _, r := range rows {
				add("%s router | %s | %s", cluster, q, r)
			}
		}
		db.Close()
	}
	for _, n := range lab.Nodes {
		prefix := fmt.Sprintf("%s %s %s", n.Cluster, n.Name, n.Host)
		if _, err := os.Stat(filepath.Join(filepath.Dir(n.InstanceDir), "clonebackup")); err == nil {
			add("%s | clone folder clonebackup exists", prefix)
		}
		if _, err := os.Stat(filepath.Join(n.InstanceDir, "dbdata_bak")); err == nil {
			add("%s | dbdata_bak exists", prefix)
		}
		db, err := lab.OpenNode(n)
		if err != nil {
			t.Fatal(err)
		}
		var gtid, schemas string
		var ro, sro int
		err = db.QueryRowContext(ctx, `SELECT REPLACE(@@GLOBAL.gtid_executed, '\n', ''), @@GLOBAL.read_only, @@GLOBAL.super_read_only,
			(SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME) FROM information_schema.SCHEMATA)`).Scan(&gtid, &ro, &sro, &schemas)
		if err != nil {
			add("%s | unreachable", prefix)
			db.Close()
			continue
		}
		add("%s | gtid_executed %s", prefix, gtid)
		add("%s | read_only %d super_read_only %d", prefix, ro, sro)
		add("%s | schemas %s", prefix, schemas)
		rs, err := queryRows(ctx, db, "SHOW REPLICA STATUS")
		if err != nil {
			t.Fatalf("state: %s: SHOW REPLICA STATUS: %v", prefix, err)
		}
		if len(rs) == 0 {
			add("%s | no replica", prefix)
		}
		// the columns that say what the node replicates and whether it runs
		var st []struct {
			host, io, sqlRun string
			ioErr, sqlErr    int
		}
		rows, err := db.QueryContext(ctx, `SELECT c.HOST, s.SERVICE_STATE, a.SERVICE_STATE, s.LAST_ERROR_NUMBER, w.LAST_ERROR_NUMBER
			FROM performance_schema.replication_connection_configuration c
			JOIN performance_schema.replication_connection_status s USING (CHANNEL_NAME)
			JOIN performance_schema.replication_applier_status a USING (CHANNEL_NAME)
			JOIN (SELECT CHANNEL_NAME, MAX(LAST_ERROR_NUMBER) AS LAST_ERROR_NUMBER FROM performance_schema.replication_applier_status_by_worker GROUP BY CHANNEL_NAME) w USING (CHANNEL_NAME)`)
		if err != nil {
			t.Fatalf("state: %s: replication status: %v", prefix, err)
		}
		for rows.Next() {
			var e struct {
				host, io, sqlRun string
				ioErr, sqlErr    int
			}
			if err := rows.Scan(&e.host, &e.io, &e.sqlRun, &e.ioErr, &e.sqlErr); err != nil {
				t.Fatal(err)
			}
			st = append(st, e)
		}
		rows.Close()
		for _, e := range st {
			add("%s | replicates from %s io %s sql %s io_errno %d sql_errno %d", prefix, e.host, e.io, e.sqlRun, e.ioErr, e.sqlErr)
		}
		db.Close()
	}
	if _, err := os.Stat(redo); err == nil {
		b, _ := os.ReadFile(redo)
		add("redo record %s exists: %s", redo, strings.TrimSpace(string(b)))
	}
	sort.Strings(out)
	return out
}

// queryRows runs q and returns each row as "col=value, …".
func queryRows(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = c + "=" + vals[i].String
		}
		out = append(out, strings.Join(parts, ", "))
	}
	return out, rows.Err()
}

// stateDiff lists the lines only in a (-) and only in b (+).
func stateDiff(a, b []string) []string {
	in := func(s []string) map[string]int {
		m := map[string]int{}
		for _, x := range s {
			m[x]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d []string
	for _, x := range a {
		if mb[x] == 0 {
			d = append(d, "- "+x)
		}
	}
	for _, x := range b {
		if ma[x] == 0 {
			d = append(d, "+ "+x)
		}
	}
	return d
}

// requireUnchanged fails the test when the lab's state differs from before.
func requireUnchanged(t *testing.T, what string, before, after []string) {
	t.Helper()
	if d := stateDiff(before, after); len(d) > 0 {
		t.Errorf("%s changed the lab:\n%s", what, strings.Join(d, "\n"))
	}
}

// requireHealthy fails the test unless the lab is in its normal state:
// both clusters hold the same data and GTIDs, every replica of both
// clusters replicates (both threads running, the standby masters from
// their primary masters), the DR link is in place, the standby router is
// read-only with no dataserver disabled or Master_Offline, and no drill
// marker exists. It
// waits (bounded) for replication to catch up.
func requireHealthy(t *testing.T, lab *drlab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := lab.Check(ctx, drlab.CheckOptions{Wait: 90 * time.Second})
	if err != nil || !rep.OK {
		t.Fatalf("the lab is not healthy: the clusters differ: %v\n%v", err, rep)
	}
	// replication may still be settling after a repair: a bounded poll
	const bound = 90 * time.Second
	deadline := time.Now().Add(bound)
	for {
		problems := healthProblems(ctx, lab)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lab is not healthy after %s:\n%s", bound, strings.Join(problems, "\n"))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the lab is not healthy:\n%s", strings.Join(problems, "\n"))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// healthProblems lists what is not in the lab's normal state (see
// requireHealthy).
func healthProblems(ctx context.Context, lab *drlab.Lab) []string {
	return healthProblemsAs(ctx, lab, drlab.ClusterPrimary)
}

// healthProblemsAs is healthProblems with the cluster built as primary
// (the lab's normal state) in the role it holds now: after a switchover,
// primary is drlab.ClusterStandby.
func healthProblemsAs(ctx context.Context, lab *drlab.Lab, primary string) []string {
	standby := drlab.ClusterStandby
	if primary == drlab.ClusterStandby {
		standby = drlab.ClusterPrimary
	}
	var problems []string
	// a clone instance a failed test left running (no playbook leaves one
	// after a finished start or stop)
	problems = append(problems, sideInstances(lab)...)
	for _, n := range lab.Nodes {
		db, err := lab.OpenNode(n)
		if err != nil {
			return []string{err.Error()}
		}
		rows, err := queryRows(ctx, db, "SELECT c.HOST AS host, s.SERVICE_STATE AS io, a.SERVICE_STATE AS sql_thread FROM performance_schema.replication_connection_configuration c JOIN performance_schema.replication_connection_status s USING (CHANNEL_NAME) JOIN performance_schema.replication_applier_status a USING (CHANNEL_NAME)")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", n, err))
		}
		master := n.Index == drlab.MasterIndex(n.Cluster)
		want := lab.Master(n.Cluster, n.Shard).Host
		if master {
			want = lab.Master(primary, n.Shard).Host
		}
		switch {
		case master && n.Cluster == primary:
			if len(rows) != 0 {
				problems = append(problems, fmt.Sprintf("%s (primary master) replicates: %v", n, rows))
			}
		case len(rows) != 1 || rows[0] != fmt.Sprintf("host=%s, io=ON, sql_thread=ON", want):
			problems = append(problems, fmt.Sprintf("%s replication %v, want host=%s, io=ON, sql_thread=ON", n, rows, want))
		}
		if master && n.Cluster == standby {
			problems = append(problems, lagProblems(ctx, db, n)...)
		}
		// a switchover freezes the primary masters (super_read_only) and
		// leaves every master writable again, its router read-only or not
		if master {
			var ro, sro int
			if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@GLOBAL.super_read_only").Scan(&ro, &sro); err != nil || ro != 0 || sro != 0 {
				problems = append(problems, fmt.Sprintf("%s (master) read_only=%d super_read_only=%d, want 0 and 0 (%v)", n, ro, sro, err))
			}
		}
		// flow's holds (persisted skip_replica_start) released; the site's
		// own persisted setting kept
		var held, site int
		if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM performance_schema.persisted_variables WHERE VARIABLE_NAME IN ('skip_replica_start', 'skip_slave_start')), "+
			"(SELECT COUNT(*) FROM performance_schema.persisted_variables WHERE VARIABLE_NAME = ?)", drlab.SitePersisted.Variable).Scan(&held, &site); err != nil || held != 0 || site != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d persisted skip_replica_start, %d persisted %s, want 0 and 1 (%v)", n, held, site, drlab.SitePersisted.Variable, err))
		}
		var marker int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'flow_drill'").Scan(&marker); err != nil || marker != 0 {
			problems = append(problems, fmt.Sprintf("%s carries a drill marker (flow_drill) or cannot say: %v", n, err))
		}
		db.Close()
	}
	for _, cluster := range []string{drlab.ClusterPrimary, drlab.ClusterStandby} {
		db, err := lab.OpenRouter(cluster)
		if err != nil {
			return append(problems, err.Error())
		}
		ds, err := queryRows(ctx, db, "dbscale show dataservers")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s router: %v", cluster, err))
		}
		link := false
		for _, r := range ds {
			if strings.Contains(strings.ToLower(r), "disabled") || strings.Contains(strings.ToLower(r), "down") || strings.Contains(r, "Master_Offline") {
				problems = append(problems, fmt.Sprintf("%s router: %s", cluster, r))
			}
			link = link || strings.HasPrefix(r, "servername="+drlab.DRServer+",")
		}
		if cluster == primary && !link {
			problems = append(problems, "the primary router has no "+drlab.DRServer+" (DR link)")
		}
		opts, err := queryRows(ctx, db, "dbscale show global options")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s router: %v", cluster, err))
		}
		want := map[string]string{"enable-read-only": "0", "slave-dbscale-mode": "0", "transparent-mode": "0"}
		if cluster == standby {
			want = map[string]string{"enable-read-only": "1", "slave-dbscale-mode": "1", "transparent-mode": "0"}
		}
		for name, v := range want {
			if !contains(opts, "option_name="+name+", value="+v) {
				problems = append(problems, fmt.Sprintf("%s router: option %s is not %s", cluster, name, v))
			}
		}
		db.Close()
	}
	return problems
}

// healthyLag is the most a standby master may lag for the lab to count as
// healthy: a third of verify's max_lag_seconds (30), so a test's start is
// not refused for a lag a previous test left.
const healthyLag = 10

// lagProblems reports a standby master whose Seconds_Behind_Source is
// unknown or above healthyLag.
func lagProblems(ctx context.Context, db *sql.DB, n drlab.Node) []string {
	rows, err := queryRows(ctx, db, "SHOW REPLICA STATUS")
	if err != nil || len(rows) != 1 {
		return []string{fmt.Sprintf("%s: replica status %d row(s): %v", n, len(rows), err)}
	}
	for _, f := range strings.Split(rows[0], ", ") {
		if v, ok := strings.CutPrefix(f, "Seconds_Behind_Source="); ok {
			if lag, err := strconv.Atoi(v); err != nil || lag > healthyLag {
				return []string{fmt.Sprintf("%s lags %q s (healthy: at most %d)", n, v, healthyLag)}
			}
			return nil
		}
	}
	return []string{fmt.Sprintf("%s: no Seconds_Behind_Source in its replica status", n)}
}

// sideInstances lists the mysqld and mysqld_safe processes running in a
// lab node's host folder that are not the node's own (flashback-start
// used to start a clone instance beside each recipient; none may run now),
// with their command lines.
func sideInstances(lab *drlab.Lab) []string {
	var out []string
	for _, p := range lab.Processes() {
		if p.What == "other" {
			args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
			out = append(out, fmt.Sprintf("a side mysqld is still running (pid %d): %s", p.PID, strings.TrimSpace(strings.ReplaceAll(string(args), "\x00", " "))))
		}
	}
	return out
}

// waitNoSideInstance polls (bounded by portWait) until no side instance
// runs in the lab; it returns those still running at the deadline.
func waitNoSideInstance(lab *drlab.Lab) []string {
	deadline := time.Now().Add(portWait)
	for {
		left := sideInstances(lab)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(250 * time.Millisecond) // poll interval, bounded by the deadline above
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stepKey is a step's position in a playbook: base name and line.
type stepKey struct {
	File string
	Line int
}

func (k stepKey) String() string { return fmt.Sprintf("%s:%d", k.File, k.Line) }

// executed reads a real run's JSON events: per step position, how often it
// started and how often it was skipped, and its type.
type executed struct {
	started, skipped int
	typ, name        string
}

func realSteps(t *testing.T, res *enginetest.Result) map[stepKey]*executed {
	t.Helper()
	out := map[stepKey]*executed{}
	for _, line := range strings.Split(res.Log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev struct {
			Event string `json:"event"`
			File  string `json:"file"`
			Line  int    `json:"line"`
			Type  string `json:"type"`
			Name  string `json:"name"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("a log line is no JSON: %v: %s", err, line)
		}
		if ev.Event != "step_started" && ev.Event != "step_skipped" {
			continue
		}
		k := stepKey{ev.File, ev.Line}
		e := out[k]
		if e == nil {
			e = &executed{typ: ev.Type, name: ev.Name}
			out[k] = e
		}
		if ev.Event == "step_started" {
			e.started++
		} else {
			e.skipped++
		}
	}
	return out
}

// fidelity compares a dry run's verdicts with what the real run then did,
// per step position (a step in a loop counts once per item): the real run
// must start a step as often as the dry run said WILL RUN or RUNS there,
// and skip it as often as the dry run said WILL SKIP; so every leaf step
// the real run started or skipped must have had its verdict.
// Groups and includes get no verdict when they simply run, so only their
// skips count. It returns the differences, each marked UNKNOWN when the dry
// run said so for that position (allowed) or not (a fidelity defect).
func fidelity(t *testing.T, dry *enginetest.Result, real *enginetest.Result) (unknown, wrong []string) {
	t.Helper()
	verdicts := map[stepKey]map[string]int{}
	names := map[stepKey]string{}
	for _, v := range dry.Runner.Verdicts() {
		k := stepKey{filepath.Base(v.Pos.File), v.Pos.Line}
		if verdicts[k] == nil {
			verdicts[k] = map[string]int{}
		}
		verdicts[k][v.Verdict]++
		names[k] = v.Step
	}
	ran := realSteps(t, real)
	keys := map[stepKey]bool{}
	for k := range verdicts {
		keys[k] = true
	}
	for k := range ran {
		keys[k] = true
	}
	sorted := make([]stepKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].File != sorted[j].File {
			return sorted[i].File < sorted[j].File
		}
		return sorted[i].Line < sorted[j].Line
	})
	for _, k := range sorted {
		v := verdicts[k]
		e := ran[k]
		if e == nil {
			e = &executed{}
		}
		group := e.typ == "group" || e.typ == "include"
		dryRan := v["WILL RUN"] + v["RUNS"]
		drySkip := v["WILL SKIP"]
		realRan := e.started
		realSkip := e.skipped
		if group && v["UNKNOWN"] == 0 {
			// a group that runs has no verdict of its own
			dryRan = realRan
		}
		if dryRan == realRan && drySkip == realSkip {
			continue
		}
		name := names[k]
		if name == "" {
			name = e.name
		}
		msg := fmt.Sprintf("%s %q: dry run %v, real run started %d skipped %d", k, name, verdictList(v), e.started, e.skipped)
		if v["UNKNOWN"] > 0 {
			unknown = append(unknown, msg)
		} else {
			wrong = append(wrong, msg)
		}
	}
	return unknown, wrong
}

func verdictList(v map[string]int) string {
	if len(v) == 0 {
		return "[no verdict]"
	}
	var parts []string
	for _, k := range []string{"RUNS", "WILL RUN", "WILL SKIP", "UNKNOWN", "REFUSED"} {
		if v[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", k, v[k]))
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// requireRefused fails the test unless res is a refusal (exit 3) whose
// message holds every want.
func requireRefused(t *testing.T, res *enginetest.Result, want ...string) string {
	t.Helper()
	if res.Err == nil {
		t.Fatalf("%s did not refuse\n%s", filepath.Base(res.File), tail(res.Log))
	}
	msg := res.Err.Error()
	if code := engine.ExitCode(res.Err); code != engine.ExitRefused {
		t.Errorf("%s exited %d, not %d (refused): %s\n%s", filepath.Base(res.File), code, engine.ExitRefused, msg, tail(res.Log))
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("the refusal does not name %q: %s", w, msg)
		}
	}
	return msg
}
