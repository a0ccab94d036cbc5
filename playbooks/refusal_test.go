package playbooks_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
	"github.com/flowdba/flow/redo"
	"github.com/go-sql-driver/mysql"
)

// refusal is one injected fault: inject breaks the lab and returns the
// words the refusal must name (node, value) and the repair, which the
// subtest runs (and then checks the lab is healthy) when it ends.
type refusal struct {
	name     string
	playbook string
	vars     map[string]string
	inject   func(t *testing.T, lab *drlab.Lab, redoPath string) (want []string, repair func())
	// outside says the fault lives where the state snapshot does not look
	// (a node's plugin folder).
	outside bool
}

// TestFlashbackRefusals injects each fault the playbooks must refuse on the
// shared lab and checks that start (or stop) exits 3 with a message naming
// the node and the value, and changes nothing: the lab's state (routers'
// dataservers, datasources and options, every node's GTIDs, read-only
// flags, replication and schemas, clone folders, the redo record) is the
// same before and after. Each fault is repaired and the lab checked healthy
// before the next.
func TestFlashbackRefusals(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	requireHealthy(t, lab)
	cases := []refusal{
		{name: "standby node down", playbook: "flashback-start.yaml", inject: injectNodeDown},
		{name: "standby slave disabled", playbook: "flashback-start.yaml", inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
			n := standbySlave(lab)
			routerExec(t, lab, drlab.ClusterStandby, "dbscale disable dataserver "+n.Name)
			return []string{n.Name, n.Host, "server disabled"}, func() {
				// disabling left it Master_Offline, which enabling does not end
				routerExec(t, lab, drlab.ClusterStandby, "dbscale enable dataserver "+n.Name, "dbscale flashback dataserver "+n.Name+" force online")
			}
		}},
		{name: "standby replication broken", playbook: "flashback-start.yaml", inject: injectBrokenReplication},
		{name: "write on the standby master", playbook: "flashback-start.yaml", inject: injectDivergence},
		{name: "DR link removed", playbook: "flashback-start.yaml", inject: injectNoDRLink},
		{name: "disk threshold", playbook: "flashback-start.yaml", vars: map[string]string{"disk_threshold": "1"},
			inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
				pm := lab.Master(drlab.ClusterPrimary, 0)
				return []string{"disk usage above 1%", pm.Host, "dbdata"}, func() {}
			}},
		{name: "lag above max_lag_seconds", playbook: "flashback-start.yaml", vars: map[string]string{"max_lag_seconds": "-1"},
			inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
				return []string{lab.Master(drlab.ClusterStandby, 0).Host, "lags 0s", "limit -1s"}, func() {}
			}},
		{name: "transparent-mode on", playbook: "flashback-start.yaml", inject: injectTransparentMode},
		// the site preflight: what the site parameters name must hold on every standby node
		{name: "option file missing", playbook: "flashback-start.yaml", vars: map[string]string{"conf_name": "no-such.cnf"},
			inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
				return []string{lab.Master(drlab.ClusterStandby, 0).Host, "no option file", "no-such.cnf (conf_name)"}, func() {}
			}},
		{name: "mysqld user missing", playbook: "flashback-start.yaml", vars: map[string]string{"mysqld_user": "flow-no-such-user"},
			inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
				return []string{lab.Master(drlab.ClusterStandby, 0).Host, "no OS user flow-no-such-user (mysqld_user)"}, func() {}
			}},
		{name: "snapshot folder cannot be created", playbook: "flashback-start.yaml", vars: map[string]string{"side_dir_name": "../../../../../../../../../../proc/flow-no-such"},
			inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
				return []string{lab.Master(drlab.ClusterStandby, 0).Host, "cannot create the snapshot folder /proc/flow-no-such (side_dir_name)"}, func() {}
			}},
		{name: "node account cannot persist skip_replica_start", playbook: "flashback-start.yaml", inject: injectNoPersistPrivilege, outside: true},
		{name: "clone plugin not loadable", playbook: "flashback-start.yaml", inject: injectNoClonePlugin, outside: true},
		{name: "drill already active", playbook: "flashback-start.yaml", inject: func(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
			sm := lab.Master(drlab.ClusterStandby, 0)
			repair := injectMarker(t, lab, "20990101T000000Z-someone-else")
			return []string{"a drill is already active", sm.Host}, repair
		}},
		{name: "stop without a redo record", playbook: "flashback-stop.yaml", inject: func(t *testing.T, lab *drlab.Lab, redoPath string) ([]string, func()) {
			sm := lab.Master(drlab.ClusterStandby, 0)
			repair := injectMarker(t, lab, "20990101T000000Z-someone-else")
			return []string{"no redo record", redoPath, sm.Host}, repair
		}},
		{name: "stop with a redo record of another run", playbook: "flashback-stop.yaml", inject: injectForeignRedo},
		// the planned switchover refuses before it freezes anything
		{name: "switchover with a lagging standby", playbook: "dr-switchover.yaml", vars: map[string]string{"to": "target", "max_lag_seconds": "1"}, inject: injectStandbyLag},
		{name: "switchover with broken standby replication", playbook: "dr-switchover.yaml", vars: map[string]string{"to": "target"}, inject: injectBrokenReplication},
		{name: "switchover with a writable standby", playbook: "dr-switchover.yaml", vars: map[string]string{"to": "target"}, inject: injectWritableStandby},
		{name: "switchover without a DR link", playbook: "dr-switchover.yaml", vars: map[string]string{"to": "target"}, inject: injectNoDRLink},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			redoPath := filepath.Join(t.TempDir(), "redo.json")
			pristine := labState(t, lab, redoPath)
			want, repair := c.inject(t, lab, redoPath)
			t.Cleanup(func() {
				repair()
				requireHealthy(t, lab)
			})
			before := labState(t, lab, redoPath)
			// the snapshot sees the fault (so it would see a change)
			if d := stateDiff(pristine, before); len(d) == 0 && c.vars == nil && !c.outside {
				t.Errorf("the lab's state snapshot does not show the injected fault")
			} else {
				t.Logf("the fault as the snapshot sees it:\n%s", strings.Join(d, "\n"))
			}
			res := drill(t, lab, c.playbook, engine.ModeRun, redoPath, c.vars)
			msg := requireRefused(t, res, want...)
			after := labState(t, lab, redoPath)
			requireUnchanged(t, c.playbook, before, after)
			t.Logf("%s exited %d in %s: %s", c.playbook, engine.ExitCode(res.Err), res.Elapsed.Round(time.Millisecond), msg)
		})
	}
}

// injectNoPersistPrivilege revokes PERSIST_RO_VARIABLES_ADMIN from the node
// account on one standby slave (outside the binlog, as root over the
// socket): start could not keep a donor's replication stopped across a
// restart there. The repair grants it back.
func injectNoPersistPrivilege(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	n := standbySlave(lab)
	inst, err := lab.Instance(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "root", inst.AdminPassword, "unix", inst.SocketPath()
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	account := fmt.Sprintf("'%s'@'127.%%'", inst.User())
	exec := func(q string) {
		t.Helper()
		conn, err := root.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, s := range []string{"SET SESSION sql_log_bin = 0", q} {
			if _, err := conn.ExecContext(context.Background(), s); err != nil {
				t.Fatalf("%s on %s: %v", s, n, err)
			}
		}
	}
	exec("REVOKE PERSIST_RO_VARIABLES_ADMIN ON *.* FROM " + account)
	return []string{n.Host, "lacks SYSTEM_VARIABLES_ADMIN or PERSIST_RO_VARIABLES_ADMIN"}, func() {
		exec("GRANT PERSIST_RO_VARIABLES_ADMIN ON *.* TO " + account + " WITH GRANT OPTION")
		root.Close()
	}
}

// standbySlave returns a standby node that is not its shard's master.
func standbySlave(lab *drlab.Lab) drlab.Node {
	for _, n := range lab.ClusterNodes(drlab.ClusterStandby) {
		if n.Index != drlab.MasterIndex(drlab.ClusterStandby) {
			return n
		}
	}
	panic("the lab has no standby slave")
}

func injectNodeDown(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	n := standbySlave(lab)
	inst, err := lab.Instance(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := inst.Stop(ctx); err != nil {
		t.Fatalf("stop %s: %v", n, err)
	}
	// Up starts whatever is down and re-checks the lab
	return []string{n.Name, n.Host, "Server down"}, func() { drlabtest.Lab(t, lab.Shards) }
}

// nodeConn returns one connection to a node (session settings stick).
func nodeConn(t *testing.T, lab *drlab.Lab, n drlab.Node) (*sql.Conn, func()) {
	t.Helper()
	db, err := lab.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatalf("%s: %v", n, err)
	}
	return conn, func() { conn.Close(); db.Close() }
}

func execAll(t *testing.T, conn *sql.Conn, what string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %s: %v", what, q, err)
		}
	}
}

// waitAll waits until every node of the lab has executed the primary
// master's GTIDs of shard 0 (bounded).
func waitAll(t *testing.T, lab *drlab.Lab, gtids string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range lab.Nodes {
		inst, err := lab.Instance(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.WaitGTIDs(ctx, gtids); err != nil {
			t.Fatalf("waiting for %s: %v", n, err)
		}
	}
}

func gtidExecuted(t *testing.T, conn *sql.Conn) string {
	t.Helper()
	var g string
	if err := conn.QueryRowContext(context.Background(), "SELECT @@GLOBAL.gtid_executed").Scan(&g); err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(g, "\n", "")
}

// injectBrokenReplication stops the standby master's SQL thread with error
// 1062: a row written there without binlog, then the same key written on
// the primary.
func injectBrokenReplication(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	pm, sm := lab.Master(drlab.ClusterPrimary, 0), lab.Master(drlab.ClusterStandby, 0)
	pc, pclose := nodeConn(t, lab, pm)
	execAll(t, pc, "primary master", "CREATE DATABASE IF NOT EXISTS flow_refusal", "CREATE TABLE IF NOT EXISTS flow_refusal.t (id INT PRIMARY KEY)")
	waitAll(t, lab, gtidExecuted(t, pc))
	sc, sclose := nodeConn(t, lab, sm)
	execAll(t, sc, "standby master", "SET SESSION sql_log_bin = 0", "INSERT INTO flow_refusal.t VALUES (1)")
	execAll(t, pc, "primary master", "INSERT INTO flow_refusal.t VALUES (1)")
	// bounded poll until the standby master's applier stopped on the row
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var errno int
		var state string
		err := sc.QueryRowContext(ctx, `SELECT a.SERVICE_STATE, (SELECT MAX(LAST_ERROR_NUMBER) FROM performance_schema.replication_applier_status_by_worker)
			FROM performance_schema.replication_applier_status a WHERE CHANNEL_NAME = ''`).Scan(&state, &errno)
		if err != nil {
			t.Fatal(err)
		}
		if state == "OFF" && errno == 1062 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the standby master's SQL thread did not stop with error 1062 (state %s, errno %d)", state, errno)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return []string{sm.Host, "SQL=No", "1062"}, func() {
		execAll(t, sc, "repair the standby master", "DELETE FROM flow_refusal.t WHERE id = 1", "START REPLICA")
		waitAll(t, lab, gtidExecuted(t, pc))
		execAll(t, pc, "primary master", "DROP DATABASE flow_refusal")
		waitAll(t, lab, gtidExecuted(t, pc))
		sclose()
		pclose()
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// emptyTransaction commits an empty transaction with the given GTID.
func emptyTransaction(t *testing.T, conn *sql.Conn, what, gtid string) {
	t.Helper()
	execAll(t, conn, what, "SET gtid_next = '"+gtid+"'", "BEGIN", "COMMIT", "SET gtid_next = 'AUTOMATIC'")
}

// injectDivergence writes on the standby master (binlogged): an empty
// transaction under a new server uuid, so the standby holds a GTID the
// primary lacks. The repair commits the same empty transaction on the
// primary master: then the standby has nothing the primary lacks.
func injectDivergence(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	pm, sm := lab.Master(drlab.ClusterPrimary, 0), lab.Master(drlab.ClusterStandby, 0)
	gtid := newUUID(t) + ":1"
	sc, sclose := nodeConn(t, lab, sm)
	defer sclose()
	emptyTransaction(t, sc, "standby master", gtid)
	// the standby slaves replicate it from the standby master
	for _, n := range lab.ClusterNodes(drlab.ClusterStandby) {
		inst, err := lab.Instance(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.WaitGTIDs(context.Background(), gtid); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"GTID divergence", sm.Host, gtid, pm.Host}, func() {
		pc, pclose := nodeConn(t, lab, pm)
		defer pclose()
		emptyTransaction(t, pc, "primary master", gtid)
		waitAll(t, lab, gtidExecuted(t, pc))
	}
}

// routerExec runs statements on a cluster's router.
func routerExec(t *testing.T, lab *drlab.Lab, cluster string, stmts ...string) {
	t.Helper()
	db, err := lab.OpenRouter(cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s router: %s: %v", cluster, strings.Fields(q)[0]+" "+strings.Join(strings.Fields(q)[1:4], " "), err)
		}
	}
}

// injectNoDRLink removes the DR link from the primary router; the repair
// adds it again as the lab builds it (next group id, dataserver, server
// datasource, slave of every replication datasource).
func injectNoDRLink(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	routerExec(t, lab, drlab.ClusterPrimary,
		"dbscale dynamic remove datasource "+drlab.DRSource,
		"dbscale dynamic remove dataserver "+drlab.DRServer)
	pr := lab.Router(drlab.ClusterPrimary)
	return []string{drlab.DRServer, pr.Addr()}, func() {
		db, err := lab.OpenRouter(drlab.ClusterPrimary)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var gid int
		if err := db.QueryRow("dbscale request next group id").Scan(&gid); err != nil {
			t.Fatal(err)
		}
		sb := lab.Router(drlab.ClusterStandby)
		stmts := []string{
			fmt.Sprintf(`dbscale dynamic add dataserver server_name=%s,server_host="%s",server_port=%d,server_user="%s",server_password="%s",dbscale_server`,
				drlab.DRServer, sb.Host, sb.Port, lab.Credentials.RouterUser, lab.Credentials.StandbyRouterPassword),
			fmt.Sprintf("dbscale dynamic add server datasource %s %s-1-1000-400-800 group_id = %d", drlab.DRSource, drlab.DRServer, gid),
		}
		for k := range lab.Shards {
			stmts = append(stmts, fmt.Sprintf("dbscale dynamic add slave %s to %s", drlab.DRSource, drlab.DataSourceName(k)))
		}
		routerExec(t, lab, drlab.ClusterPrimary, stmts...)
	}
}

func injectTransparentMode(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	routerExec(t, lab, drlab.ClusterStandby, "dbscale set global 'transparent-mode' = 1")
	return []string{"transparent-mode", lab.Router(drlab.ClusterStandby).Addr() + " = 1"}, func() {
		routerExec(t, lab, drlab.ClusterStandby, "dbscale set global 'transparent-mode' = 0")
	}
}

// injectMarker creates a drill marker of another run on the standby
// master, as start does (not binlogged); the repair drops it.
func injectMarker(t *testing.T, lab *drlab.Lab, runID string) func() {
	sm := lab.Master(drlab.ClusterStandby, 0)
	sc, sclose := nodeConn(t, lab, sm)
	execAll(t, sc, "standby master", "SET SESSION sql_log_bin = 0", "CREATE DATABASE flow_drill",
		"CREATE TABLE flow_drill.active (run_id VARCHAR(64) PRIMARY KEY, operator VARCHAR(64), control_host VARCHAR(255), started_at DATETIME(6), donor VARCHAR(64), detach_gtid TEXT)",
		"INSERT INTO flow_drill.active VALUES ('"+runID+"', 'someone', 'elsewhere', NOW(6), 'normal_0_1', '')")
	return func() {
		execAll(t, sc, "standby master", "DROP DATABASE flow_drill")
		sclose()
	}
}

// injectForeignRedo leaves a drill marker of one run and a redo record of
// another.
func injectForeignRedo(t *testing.T, lab *drlab.Lab, redoPath string) ([]string, func()) {
	sm := lab.Master(drlab.ClusterStandby, 0)
	repair := injectMarker(t, lab, "20990101T000000Z-marker")
	rec := &redo.Record{RunID: "20990101T000000Z-record", Playbook: "flashback-start", Values: map[string]any{
		"run_id":     "20990101T000000Z-record",
		"masters":    []any{map[string]any{"ds": drlab.DataSourceName(0), "servername": sm.Name, "host": sm.Host, "port": sm.Port}},
		"donors":     []any{map[string]any{"ds": drlab.DataSourceName(0), "servername": standbySlave(lab).Name, "host": standbySlave(lab).Host, "port": sm.Port}},
		"recipients": []any{},
		"detach":     []any{},
	}}
	if err := redo.Write(redoPath, rec); err != nil {
		t.Fatal(err)
	}
	return []string{"20990101T000000Z-record", "20990101T000000Z-marker", sm.Host}, repair
}

// injectNoClonePlugin makes the clone plugin unloadable on a standby
// slave: an earlier drill may have installed it, so it is uninstalled
// (without binary logging) and mysql_clone.so is removed from the node's own
// plugin folder (the lab gives every node one); the repair links the file
// again and reinstalls the plugin when it was installed.
func injectNoClonePlugin(t *testing.T, lab *drlab.Lab, _ string) ([]string, func()) {
	n := standbySlave(lab)
	db, err := lab.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var active int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'").Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active > 0 {
		execAll(t, conn, "uninstall the clone plugin", "SET SESSION sql_log_bin = 0", "UNINSTALL PLUGIN clone")
	}
	link := filepath.Join(drlab.PluginDir(n), "mysql_clone.so")
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("the lab node %s has no linked clone plugin: %v", n, err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	return []string{"the clone plugin cannot load", n.Host}, func() {
		if err := os.Symlink(target, link); err != nil {
			t.Errorf("repair: %v", err)
		}
		if active > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := db.Conn(ctx)
			if err != nil {
				t.Errorf("repair: %v", err)
				return
			}
			defer c.Close()
			execAll(t, c, "reinstall the clone plugin", "SET SESSION sql_log_bin = 0", "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
		}
	}
}
