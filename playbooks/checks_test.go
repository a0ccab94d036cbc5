package playbooks_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowdba/flow/lab/drlab"
)

// checkWait is how long the independent checks wait, at most, for
// replication to catch up after flashback-stop.
const checkWait = 2 * time.Minute

// restoredProblems runs the independent checks that say a flashback drill
// was undone, reading the lab directly (not through the playbooks), and
// returns what does not hold (nil when everything does):
//   - lab.Check: every node of both clusters holds its shard's primary
//     master's data and GTIDs (waiting, bounded, for replication);
//   - every standby node holds no drill row (cluster 'standby'), exactly as
//     many primary rows as its shard's primary master, and no flow_drill
//     schema (the drill marker);
//   - the primary master of shard 0 holds at least minPrimary primary rows
//     (the rows the caller knows were acknowledged; 0 skips this);
//   - every standby master replicates from its shard's primary master with
//     both threads ON;
//   - no dataserver of the standby router is disabled;
//   - the redo record at redo is absent or empty.
//
// wait bounds lab.Check's wait for replication to converge (checkWait
// after a stop; 0 compares once).
func restoredProblems(ctx context.Context, lab *drlab.Lab, redo string, minPrimary int, wait time.Duration) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	cctx, cancel := context.WithTimeout(ctx, wait+time.Minute)
	defer cancel()
	rep, err := lab.Check(cctx, drlab.CheckOptions{Wait: wait})
	switch {
	case err != nil:
		add("lab check: %v", err)
	case !rep.OK:
		add("the clusters differ after stop:\n%v", rep)
	}

	count := func(db *sql.DB, q string) (int, error) {
		var n int
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := db.QueryRowContext(qctx, q).Scan(&n)
		return n, err
	}
	const primaryRowsQ = "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'primary'"
	wantPrimary := map[int]int{}
	for k := 0; k < lab.Shards; k++ {
		pm := lab.Master(drlab.ClusterPrimary, k)
		db, err := lab.OpenNode(pm)
		if err != nil {
			add("%s: %v", pm, err)
			continue
		}
		n, err := count(db, primaryRowsQ)
		db.Close()
		if err != nil {
			add("%s: %s: %v", pm, primaryRowsQ, err)
			continue
		}
		wantPrimary[k] = n
		if k == 0 && n < minPrimary {
			add("the primary master %s holds %d primary rows, fewer than the %d acknowledged writes", pm, n, minPrimary)
		}
	}
	for _, n := range lab.ClusterNodes(drlab.ClusterStandby) {
		db, err := lab.OpenNode(n)
		if err != nil {
			add("%s: %v", n, err)
			continue
		}
		if got, err := count(db, "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'standby'"); err != nil || got != 0 {
			add("%s still has %d drill rows (%v)", n, got, err)
		}
		if want, ok := wantPrimary[n.Shard]; ok {
			if got, err := count(db, primaryRowsQ); err != nil || got != want {
				add("%s has %d primary rows, the primary master %d (%v)", n, got, want, err)
			}
		}
		if got, err := count(db, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'flow_drill'"); err != nil || got != 0 {
			add("%s still carries the drill marker flow_drill (%v)", n, err)
		}
		// start's hold on the donor (persisted skip_replica_start) is gone:
		// the lab's nodes have none of their own
		if got, err := count(db, "SELECT COUNT(*) FROM performance_schema.persisted_variables WHERE VARIABLE_NAME IN ('skip_replica_start', 'skip_slave_start')"); err != nil || got != 0 {
			add("%s still has skip_replica_start persisted: a restart would not start its replication (%v)", n, err)
		}
		// the node's own persisted settings survive the swap (a clone copies
		// no mysqld-auto.cnf; stop carries the node's own into the snapshot)
		site := drlab.SitePersisted
		if got, err := count(db, "SELECT COUNT(*) FROM performance_schema.persisted_variables p JOIN performance_schema.global_variables g USING (VARIABLE_NAME) "+
			"WHERE VARIABLE_NAME = '"+site.Variable+"' AND p.VARIABLE_VALUE = '"+site.Value+"' AND g.VARIABLE_VALUE = '"+site.Value+"'"); err != nil || got != 1 {
			add("%s lost the site's persisted setting %s = %s (%v)", n, site.Variable, site.Value, err)
		}
		db.Close()
		problems = append(problems, keptKeyFiles(lab, n)...)
		problems = append(problems, supervisorSkipsReplication(lab, n)...)
	}

	for k := 0; k < lab.Shards; k++ {
		pm, sm := lab.Master(drlab.ClusterPrimary, k), lab.Master(drlab.ClusterStandby, k)
		db, err := lab.OpenNode(sm)
		if err != nil {
			add("%s: %v", sm, err)
			continue
		}
		var srcHost, io, sqlRun string
		row := db.QueryRowContext(ctx, "SELECT c.HOST, s.SERVICE_STATE, a.SERVICE_STATE FROM performance_schema.replication_connection_configuration c JOIN performance_schema.replication_connection_status s USING (CHANNEL_NAME) JOIN performance_schema.replication_applier_status a USING (CHANNEL_NAME)")
		if err := row.Scan(&srcHost, &io, &sqlRun); err != nil || srcHost != pm.Host || io != "ON" || sqlRun != "ON" {
			add("standby master %s replicates from %q (io %s, sql %s, err %v), want %s with both threads ON", sm, srcHost, io, sqlRun, err, pm.Host)
		}
		db.Close()
	}

	if rdb, err := lab.OpenRouter(drlab.ClusterStandby); err != nil {
		add("standby router: %v", err)
	} else {
		rows, err := queryRows(ctx, rdb, "dbscale show dataservers")
		rdb.Close()
		if err != nil {
			add("standby router: dbscale show dataservers: %v", err)
		}
		for _, r := range rows {
			if strings.Contains(strings.ToLower(r), "disabled") {
				add("standby router: a dataserver is still disabled: %s", r)
			}
		}
	}

	if b, err := os.ReadFile(redo); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		add("the redo record %s was not cleared: %s", redo, strings.TrimSpace(string(b)))
	} else if err != nil && !os.IsNotExist(err) {
		add("the redo record %s: %v", redo, err)
	}
	return problems
}

// keptKeyFiles says where a standby node restored by stop (its drill data
// is in dbdata_bak) does not have the TLS and RSA key files it had before
// (a clone copies none, and mysqld makes new ones: a client that verifies
// the node's CA would fail).
func keptKeyFiles(lab *drlab.Lab, n drlab.Node) []string {
	inst, err := lab.Instance(n, nil)
	if err != nil {
		return []string{err.Error()}
	}
	bak := filepath.Join(inst.Dir(), "dbdata_bak")
	if _, err := os.Stat(bak); err != nil {
		return nil // never restored, or the drill data was removed
	}
	var out []string
	for _, f := range []string{"ca.pem", "server-cert.pem", "public_key.pem"} {
		before, err1 := os.ReadFile(filepath.Join(bak, f))
		now, err2 := os.ReadFile(filepath.Join(inst.DataDir(), f))
		if err1 != nil || err2 != nil || !bytes.Equal(before, now) {
			out = append(out, fmt.Sprintf("%s has another %s than before the drill (%v, %v): a client that verifies it would fail", n, f, err1, err2))
		}
	}
	return out
}

// supervisorSkipsReplication says where the mysqld_safe supervising a
// standby node's mysqld passes --skip-slave-start: it keeps the option, so
// a crash of that mysqld would leave the node's replication stopped (stop
// started the restored nodes so before; it holds their replication by a
// persisted setting now, released once every node is back).
func supervisorSkipsReplication(lab *drlab.Lab, n drlab.Node) []string {
	inst, err := lab.Instance(n, nil)
	if err != nil {
		return []string{err.Error()}
	}
	pid, err := inst.MysqldPID()
	if err != nil {
		return []string{err.Error()}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", n, err)}
	}
	ppid := ""
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			ppid = strings.TrimSpace(v)
		}
	}
	cmd, err := os.ReadFile("/proc/" + ppid + "/cmdline")
	if err != nil {
		return []string{fmt.Sprintf("%s: the supervisor (pid %s) of mysqld %d: %v", n, ppid, pid, err)}
	}
	args := strings.ReplaceAll(string(cmd), "\x00", " ")
	if strings.Contains(args, "skip-slave-start") || strings.Contains(args, "skip-replica-start") {
		return []string{fmt.Sprintf("%s runs under `%s`: a crash of its mysqld would leave its replication stopped", n, strings.TrimSpace(args))}
	}
	return nil
}
