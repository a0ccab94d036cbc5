package dbscale

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

const v97 = "9.7.4-2"

var dataserverColumns = []string{"servername", "host", "port", "username", "status", "master-online-status",
	"master_backup", "remote_user", "remote_port", "max_needed_conn/max_mysql_conn", "master_priority"}

func TestShowDataserversComputesStatusesLive(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	db := fc.db("admin", false)

	cols, rows := query(t, db, "dbscale show dataservers")
	if !reflect.DeepEqual(cols, dataserverColumns) {
		t.Fatalf("columns %v", cols)
	}
	want := [][]string{
		{"normal_0_0", "Server normal", "Master_Online"},
		{"normal_0_1", "Slave normal", "Not_A_Master"},
		{"normal_0_2", "Slave normal", "Not_A_Master"},
	}
	for i, w := range want {
		r := rows[i]
		if r[0] != w[0] || r[4] != w[1] || r[5] != w[2] || r[3] != "dbscale_internal" || r[2] != "16315" ||
			r[6] != "1" || r[7] != "root" || r[8] != "22" || r[9] != "" || r[10] != "0" {
			t.Errorf("row %d: %v", i, r)
		}
	}

	n1, n2 := fc.nodes["normal_0_1"], fc.nodes["normal_0_2"]
	set := func(n *fakeNode, f func(r *fakeReplica)) {
		n.mu.Lock()
		f(n.replica)
		n.mu.Unlock()
	}
	status := func(name string) string {
		_, rows := query(t, db, "dbscale show dataservers where servername = ?", name)
		if len(rows) != 1 {
			t.Fatalf("%s: %d rows", name, len(rows))
		}
		return rows[0][4]
	}
	set(n1, func(r *fakeReplica) { r.lag = "31" })
	if got := status("normal_0_1"); got != "Slave normal, catching master 31s" {
		t.Errorf("lagging: %q", got)
	}
	mustExec(t, db, "dbscale set global max_replication_delay = 60")
	if got := status("normal_0_1"); got != "Slave normal" {
		t.Errorf("lag below max-replication-delay: %q", got)
	}
	set(n1, func(r *fakeReplica) { r.io, r.sql = "No", "No" })
	if got := status("normal_0_1"); got != "Server normal, slave down" {
		t.Errorf("stopped: %q", got)
	}
	set(n1, func(r *fakeReplica) { r.io, r.sqlErrno = "Yes", 1062 })
	if got := status("normal_0_1"); got != "Server normal, slave error" {
		t.Errorf("sql error: %q", got)
	}
	n2.setReplica(nil)
	if got := status("normal_0_2"); got != "Server normal, slave down" {
		t.Errorf("no replication configured: %q", got)
	}
	fc.nodes["normal_0_0"].setDown(true)
	if got := status("normal_0_0"); got != "Server down" {
		t.Errorf("down master: %q", got)
	}
	fc.nodes["normal_0_0"].setDown(false)

	// WHERE on any column, LIKE and =.
	_, rows = query(t, db, "dbscale show dataservers where `master-online-status` = 'Master_Online'")
	if len(rows) != 1 || rows[0][0] != "normal_0_0" {
		t.Errorf("filter on master-online-status: %v", rows)
	}
	_, rows = query(t, db, "dbscale show dataservers where status like '%slave%' and port like '%16315%';")
	if len(rows) != 2 {
		t.Errorf("filter status like: %v", rows)
	}
	wantErr(t, db, "dbscale show dataservers where nosuch like 'x'", CodeBadField, "Unknown column 'nosuch'")
	_, rows = query(t, db, "  DBSCALE   Show\tDataServers \\G")
	if len(rows) != 3 {
		t.Errorf("trailing \\G: %v", rows)
	}
}

func TestClusterInfoAndNextGroupID(t *testing.T) {
	fc := newFakeCluster(t, 2, v97, nil)
	fc.cfg.OtherRouters = nil
	db := fc.db("app", false)
	cols, rows := query(t, db, "dbscale request cluster info")
	wantCols := []string{"master_dbscale", "cluster_server_id", "host", "join time", "ka init Version", "ka update Version",
		"dynamic node Version", "dynamic space Version", "master re-scramble delay", "dbscale version"}
	if !reflect.DeepEqual(cols, wantCols) {
		t.Fatalf("columns %v", cols)
	}
	if len(rows) != 1 || rows[0][0] != "master" || rows[0][2] != fc.r.Addr() || rows[0][9] != defaultVersion {
		t.Errorf("rows %v", rows)
	}
	if _, err := time.Parse(timeLayout, rows[0][3]); err != nil {
		t.Errorf("join time %q: %v", rows[0][3], err)
	}
	cols, rows = query(t, db, "dbscale request next group id")
	if !reflect.DeepEqual(cols, []string{"next_group_id"}) || rows[0][0] != "102" {
		t.Errorf("next group id: %v %v", cols, rows)
	}
	adb := fc.db("admin", false)
	mustExec(t, adb, "dbscale set global 'multiple-mode' = 0")
	wantErr(t, db, "dbscale request cluster info", CodeNotMultiple, msgNotMultiple)
}

func TestShowDatasource(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, map[string]string{"enable-disaster-mode": "0"})
	db := fc.db("admin", false)
	cols, rows := query(t, db, "dbscale show datasource type=replication")
	wantCols := []string{"Name", "Type", "SourceStatus", "LoadBalanceStrategy", "MasterSource", "MasterSourceStatus",
		"MasterServer", "MasterServerHostInfo", "MasterServerStatus", "SelectMasterTime", "SlaveSource",
		"SlaveSourceStatus", "SlaveServers", "SlaveServerHostInfo", "SlaveServerStatus", "SlaveExecutedGtidStatus"}
	if !reflect.DeepEqual(cols, wantCols) {
		t.Fatalf("columns %v", cols)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %v", rows)
	}
	r0, r1 := rows[0], rows[1]
	if r0[0] != "normal_0" || r0[1] != "Replication" || r0[2] != "Working" || r0[3] != "MASTER" || r0[4] != "normal_0_normal_0_0" ||
		r0[6] != "normal_0_0" || r0[8] != "Server normal" || r0[10] != "normal_0_normal_0_1" || r0[11] != "Working" ||
		r0[14] != "Slave normal" || r0[15] != "GTID good" {
		t.Errorf("row 0 %v", r0)
	}
	if r1[0] != "normal_0" || r1[4] != "" || r1[6] != "" || r1[10] != "normal_0_normal_0_2" {
		t.Errorf("row 1 %v", r1)
	}
	// An errant transaction on a slave.
	fc.nodes["normal_0_2"].gtids = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-11"
	_, rows = query(t, db, "dbscale show datasource type = replication where SlaveSource like '%0_2'")
	if len(rows) != 1 || rows[0][15] != "GTID error" {
		t.Errorf("gtid status: %v", rows)
	}

	cols, rows = query(t, db, "dbscale show datasource type=SERVER")
	if !reflect.DeepEqual(cols, []string{"Name", "Type", "Server", "ServerHostInfo", "ServerStatus", "SourceStatus", "Is-internal"}) {
		t.Fatalf("server columns %v", cols)
	}
	if len(rows) != 3 || rows[1][0] != "normal_0_normal_0_1" || rows[1][1] != "Server" || rows[1][6] != "YES" || rows[1][5] != "Working" {
		t.Errorf("server rows %v", rows)
	}
	wantErr(t, db, "dbscale show datasource type=bogus", CodeDataSource, "Unknown DataSource type.")
	wantErr(t, db, "dbscale show datasource type=mgr", CodeDataSource, "No DataSource of the type.")
	wantErr(t, db, "dbscale show datasource nosuch", CodeDataSource, "DataSource 'nosuch' does not exist")
	_, rows = query(t, db, "dbscale show datasource normal_0")
	if len(rows) != 2 {
		t.Errorf("by name: %v", rows)
	}
	_, rows = query(t, db, "dbscale show datasource normal_0_normal_0_2")
	if len(rows) != 1 || rows[0][2] != "normal_0_2" {
		t.Errorf("internal by name: %v", rows)
	}
	mustExec(t, db, "dbscale disable dataserver normal_0_1")
	_, rows = query(t, db, "dbscale show datasource type=replication where SlaveSourceStatus like 'Stop'")
	if len(rows) != 1 || rows[0][14] != "server disabled" {
		t.Errorf("disabled slave: %v", rows)
	}
}

func TestOptions(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	admin, app := fc.db("admin", false), fc.db("app", false)
	cols, rows := query(t, app, "dbscale show options like 'transparent-mode'")
	if !reflect.DeepEqual(cols, []string{"option_name", "value"}) || !reflect.DeepEqual(rows, [][]string{{"transparent-mode", "0"}}) {
		t.Errorf("%v %v", cols, rows)
	}
	for q, want := range map[string]string{
		"dbscale set global 'enable-read-only'=1":        "1",
		`dbscale set global "enable-read-only" = 0`:      "0",
		"DBSCALE SET GLOBAL `enable_read_only`='1'":      "1",
		"dbscale set global enable-read-only=TRUE":       "1",
		"dbscale set global Enable_Read-Only = off;":     "0",
		"dbscale set instance ENABLE_READ_ONLY = \"on\"": "1",
	} {
		mustExec(t, admin, "dbscale set global enable_read_only = "+map[string]string{"0": "1", "1": "0"}[want])
		mustExec(t, admin, q)
		if _, rows := query(t, app, "dbscale show global options like 'enable-read-only'"); rows[0][1] != want {
			t.Errorf("%s: value %v", q, rows)
		}
	}
	mustExec(t, admin, "dbscale set global 'log-level' = 'DEBUG'", "dbscale set global 'enable-super-readonly-on-slave'=0")
	_, rows = query(t, app, "dbscale show options like '%level%'")
	if rows[0][1] != "DEBUG" {
		t.Errorf("log-level %v", rows)
	}
	_, rows = query(t, app, "dbscale show option like 'enable_super_readonly_on_slave'")
	if len(rows) != 1 || rows[0][1] != "FALSE" {
		t.Errorf("TRUE/FALSE option: %v", rows)
	}

	// Session values are the session's only.
	conn, err := app.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "dbscale set session 'max-connect-by-result-num'=5"); err != nil {
		t.Fatal(err)
	}
	var name, v string
	if err := conn.QueryRowContext(t.Context(), "dbscale show session options like 'max-connect-by-result-num'").Scan(&name, &v); err != nil || v != "5" {
		t.Errorf("session value %q %v", v, err)
	}
	if err := conn.QueryRowContext(t.Context(), "dbscale show global options like 'max-connect-by-result-num'").Scan(&name, &v); err != nil || v != "1000000" {
		t.Errorf("global value %q %v", v, err)
	}

	wantErr(t, app, "dbscale set global 'enable-read-only'=1", CodeAccess, msgSetAdminOnly)
	wantErr(t, app, "dbscale set instance 'enable-read-only'=1", CodeAccess, msgSetAdminOnly)
	wantErr(t, admin, "dbscale set global 'no-such-option'=1", CodeUnknownOption, "Unknown option 'no-such-option'")
	wantErr(t, admin, "dbscale set global 'enable-read-only'=maybe", CodeBadOptionValue, "enable-read-only")
	wantErr(t, admin, "dbscale set global max-replication-delay='ten'", CodeBadOptionValue, "max-replication-delay")
	wantErr(t, admin, "dbscale set global 'slave-dbscale-mode'=1", CodeOptionRule, msgSlaveModeRule)
	mustExec(t, admin, "dbscale set global 'enable-disaster-mode'=1", "dbscale set global 'slave-dbscale-mode'=1")
	if _, rows := query(t, app, "dbscale show options like 'slave_dbscale_mode'"); rows[0][1] != "1" {
		t.Errorf("slave-dbscale-mode %v", rows)
	}
}

func TestPrivilegesOfAdminCommands(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	app := fc.db("app", false)
	for _, q := range []string{
		"dbscale dynamic add dataserver server_name=x,server_host=127.0.0.1,server_port=1,server_user=u,server_password=p",
		"dbscale dynamic add server datasource s x-1-1000-400-800",
		"dbscale dynamic add slave s to normal_0",
		"dbscale dynamic remove datasource s",
		"dbscale dynamic remove dataserver x",
		"dbscale disable dataserver normal_0_1",
		"dbscale enable dataserver normal_0_1",
		"dbscale flashback dataserver normal_0_1 force online",
	} {
		wantErr(t, app, q, CodeAccess, msgAdminOnly)
	}
	// Read-only commands work for anyone.
	query(t, app, "dbscale show dataservers")
	query(t, app, "dbscale show datasource type=server")
}

func TestDynamicCommands(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	db := fc.db("admin", false)
	// A plain MySQL node, added and attached as a slave of normal_0: it gets
	// pointed at normal_0's master.
	extra := fc.be.add("127.0.0.201", 3306, "u1", "p'1,x", v97)
	mustExec(t, db, `dbscale dynamic add dataserver server_name="extra_0",server_host='127.0.0.201',server_port=3306,server_user=u1,server_password='p\'1,x',remote_user=ops,remote_port=2222`)
	_, rows := query(t, db, "dbscale show dataservers where servername='extra_0'")
	if len(rows) != 1 || rows[0][4] != "Server normal, slave down" || rows[0][7] != "ops" || rows[0][8] != "2222" {
		t.Errorf("extra_0 row %v", rows)
	}
	wantErr(t, db, "dbscale dynamic add dataserver server_name=extra_0,server_host=127.0.0.201,server_port=3306,server_user=u,server_password=p",
		CodeDataServer, "already exists")
	wantErr(t, db, "dbscale dynamic add dataserver server_name=far,server_host=10.0.0.1,server_port=3306,server_user=u,server_password=p",
		CodeDynamicArgs, "loopback")
	wantErr(t, db, "dbscale dynamic add dataserver server_name=nop,server_host=127.0.0.1,server_user=u,server_password=p",
		CodeDynamicArgs, "server_port is required")
	for _, spec := range []string{"extra_0-1-1000-1001-800", "extra_0-500-1000-400-800", "extra_0-1-800-400-800"} {
		wantErr(t, db, "dbscale dynamic add server datasource bad_src "+spec, CodeDynamicArgs, "bad connection pool")
	}
	wantErr(t, db, "dbscale dynamic add server datasource s2 nosuch-1-1000-400-800", CodeDataServer, "DataServer 'nosuch' does not exist")
	wantErr(t, db, "dbscale dynamic add server datasource s2 extra_0-1-1000-400-800 group_id = 100", CodeDynamicArgs, "group_id 100 is used")
	mustExec(t, db, "dbscale dynamic add server datasource extra_src, extra_0-1-1000-400-800")
	_, rows = query(t, db, "dbscale request next group id")
	if rows[0][0] != "102" {
		t.Errorf("next group id after an automatic one: %v", rows)
	}
	wantErr(t, db, "dbscale dynamic add slave extra_src to nosuch", CodeDataSource, "does not exist")
	wantErr(t, db, "dbscale dynamic add slave normal_0 to normal_0", CodeDataSource, "not a server datasource")
	mustExec(t, db, "dbscale dynamic add slave extra_src to normal_0")
	r := extra.replicaState()
	m := fc.cfg.DataSources[0].Servers[0]
	if r == nil || r.host != m.Host || r.port != m.Port || r.user != "repl" || r.passwd != "repl-secret-pw" || !r.autoPosition || r.io != "Yes" {
		t.Fatalf("extra_0 replication %+v", r)
	}
	if !extra.ran("CHANGE REPLICATION SOURCE TO") || extra.ran("CHANGE MASTER") {
		t.Errorf("statements not translated for 9.7: %v", extra.statements())
	}
	_, rows = query(t, db, "dbscale show datasource type=replication where SlaveSource = 'extra_src'")
	if len(rows) != 1 || rows[0][11] != "Working" || rows[0][12] != "extra_0" || len(rows[0]) != 16 {
		t.Errorf("attached slave row %v", rows)
	}
	wantErr(t, db, "dbscale dynamic add slave extra_src to normal_0", CodeDataSource, "already a slave")

	wantErr(t, db, "dbscale dynamic remove dataserver extra_0", CodeDataServer, "still used by datasource extra_src")
	wantErr(t, db, "dbscale dynamic remove dataserver normal_0_1", CodeDataServer, "still used by datasource normal_0")
	wantErr(t, db, "dbscale dynamic remove datasource nosuch", CodeDataSource, "DataSource 'nosuch' does not exist")
	wantErr(t, db, "dbscale dynamic remove dataserver nosuch", CodeDataServer, "DataServer 'nosuch' does not exist")
	wantErr(t, db, "dbscale dynamic remove datasource normal_0", CodeDataSource, "replication datasource")
	mustExec(t, db, `dbscale dynamic remove datasource "extra_src";`, "dbscale dynamic remove dataserver extra_0")
	if r := extra.replicaState(); r == nil || r.io != "Yes" {
		t.Errorf("removing the link must not stop replication: %+v", r)
	}
	_, rows = query(t, db, "dbscale show dataservers")
	if len(rows) != 3 {
		t.Errorf("after removes: %v", rows)
	}
	mustExec(t, db, "dbscale flashback dataserver normal_0_1 force online")
	wantErr(t, db, "dbscale flashback dataserver nosuch force online", CodeDataServer, "does not exist")
	if strings.Contains(fc.logText(), "p'1,x") || strings.Contains(fc.logText(), "repl-secret-pw") {
		t.Errorf("a password reached the log:\n%s", fc.logText())
	}
}

func TestDisableStopsAndEnableStartsReplication(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	db := fc.db("admin", false)
	n1 := fc.nodes["normal_0_1"]
	mustExec(t, db, "dbscale disable dataserver normal_0_1")
	if r := n1.replicaState(); r.io != "No" || r.sql != "No" || !n1.ran("STOP REPLICA") {
		t.Errorf("after disable: %+v %v", r, n1.statements())
	}
	_, rows := query(t, db, "dbscale show dataservers where servername = 'normal_0_1'")
	if rows[0][4] != "server disabled" || rows[0][5] != "Master_Offline" {
		t.Errorf("disabled row %v", rows)
	}
	// Force online while disabled: online again, still disabled.
	mustExec(t, db, "dbscale flashback dataserver normal_0_1 force online")
	_, rows = query(t, db, "dbscale show dataservers where servername = 'normal_0_1'")
	if rows[0][4] != "server disabled" || rows[0][5] != "Not_A_Master" {
		t.Errorf("disabled and forced online %v", rows)
	}
	mustExec(t, db, "dbscale disable dataserver normal_0_1")
	mustExec(t, db, "dbscale enable dataserver normal_0_1")
	if r := n1.replicaState(); r.io != "Yes" || !n1.ran("START REPLICA") {
		t.Errorf("after enable: %+v", r)
	}
	// Enabled: replicating again, but offline until force online (giogii's
	// stop sends enable, then flashback … force online).
	_, rows = query(t, db, "dbscale show dataservers where servername = 'normal_0_1'")
	if rows[0][4] != "Slave normal" || rows[0][5] != "Master_Offline" {
		t.Errorf("enabled row %v", rows)
	}
	_, rows = query(t, db, "dbscale show dataservers where `master-online-status` = 'Master_Offline'")
	if len(rows) != 1 || rows[0][0] != "normal_0_1" {
		t.Errorf("WHERE master-online-status = 'Master_Offline': %v", rows)
	}
	mustExec(t, db, "DBSCALE FLASHBACK DATASERVER normal_0_1 FORCE ONLINE")
	_, rows = query(t, db, "dbscale show dataservers where servername = 'normal_0_1'")
	if rows[0][4] != "Slave normal" || rows[0][5] != "Not_A_Master" {
		t.Errorf("forced online %v", rows)
	}
	if !strings.Contains(fc.logText(), "normal_0_1 force online: Master_Offline -> Not_A_Master") {
		t.Errorf("log lacks the force online:\n%s", fc.logText())
	}
	// Again: nothing to do, OK, and the log says so.
	mustExec(t, db, "dbscale flashback dataserver normal_0_1 force online")
	if !strings.Contains(fc.logText(), "normal_0_1 force online: it was not offline") {
		t.Errorf("log lacks the no-op force online:\n%s", fc.logText())
	}
	// Non-admins are refused.
	wantErr(t, fc.db("app", false), "dbscale flashback dataserver normal_0_1 force online", CodeAccess, "only root/dbscale/dbscale_internal_user")
	wantErr(t, db, "dbscale disable dataserver normal_0_0", CodeDataServer, "master of normal_0")
	wantErr(t, db, "dbscale disable dataserver nosuch", CodeDataServer, "does not exist")
	// A node that is down: the flag still changes.
	n1.setDown(true)
	mustExec(t, db, "dbscale disable dataserver normal_0_1")
	_, rows = query(t, db, "dbscale show dataservers where servername = 'normal_0_1'")
	if rows[0][4] != "server disabled" {
		t.Errorf("disabled down node %v", rows)
	}
}

func TestReadOnlyRejectsWritesOnly(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, map[string]string{"enable-read-only": "1"})
	db := fc.db("app", false)
	for _, q := range []string{"insert into t values (1)", "UPDATE t SET a=1", "delete from t", "replace into t values (1)",
		"create database a", "alter table t add c int", "drop database a", "truncate table t", "rename table a to b",
		"grant select on *.* to x", "/* c */ INSERT INTO t VALUES (2)"} {
		wantErr(t, db, q, CodeReadOnly, "enable-read-only")
	}
	master := fc.nodes["normal_0_0"]
	if master.ran("insert") || master.ran("create") {
		t.Errorf("a refused statement reached the master: %v", master.statements())
	}
	mustExec(t, db, "set autocommit=1", "use appdb", "dbscale show dataservers")
	query(t, db, "select 1")
	query(t, db, "show tables")
	admin := fc.db("admin", false)
	mustExec(t, admin, "dbscale set global 'enable-read-only' = 0")
	mustExec(t, db, "insert into t values (1)")
	if !master.ran("insert into t values (1)") {
		t.Errorf("insert not forwarded: %v", master.statements())
	}
}

func TestSlaveModeGatesReplicationStatements(t *testing.T) {
	fc := newFakeCluster(t, 2, v97, map[string]string{"enable-disaster-mode": "1"})
	db := fc.db("admin", false)
	for _, q := range []string{"start slave", "stop slave", "reset slave all", "stop replica", "show binary logs",
		"change master to master_host='127.0.0.1', master_port=1"} {
		wantErr(t, db, q, CodeSlaveModeOff, msgSlaveModeOff)
	}
	// Status statements always answer, translated, with the spelling's columns.
	cols, _ := query(t, db, "show slave status")
	if cols[0] != "Slave_IO_State" || cols[1] != "Master_Host" || column(t, cols, nil, "Seconds_Behind_Master") != nil {
		t.Errorf("show slave status columns %v", cols)
	}
	cols, _ = query(t, db, "SHOW REPLICA STATUS")
	if cols[0] != "Replica_IO_State" {
		t.Errorf("show replica status columns %v", cols)
	}
	cols, rows := query(t, db, "show master status")
	if !reflect.DeepEqual(cols, []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB", "Executed_Gtid_Set"}) || len(rows) != 1 {
		t.Errorf("show master status %v %v", cols, rows)
	}
	m0, m1 := fc.nodes["normal_0_0"], fc.nodes["normal_1_0"]
	if !m0.ran("SHOW BINARY LOG STATUS") || m1.ran("SHOW BINARY LOG STATUS") {
		t.Errorf("show master status goes to the catalog master only")
	}

	mustExec(t, db, "dbscale set global 'slave-dbscale-mode' = 1")
	mustExec(t, db, "change master to master_host='127.0.0.99', master_port=3306, master_user='r', master_password='x', master_auto_position=1")
	for _, m := range []*fakeNode{m0, m1} {
		if r := m.replicaState(); r == nil || r.host != "127.0.0.99" || !r.autoPosition {
			t.Errorf("CHANGE MASTER on every datasource's master: %+v", r)
		}
	}
	mustExec(t, db, "start slave")
	if m0.replicaState().io != "Yes" || m1.replicaState().io != "Yes" {
		t.Error("start slave on every master")
	}
	// A routing hint picks one datasource.
	mustExec(t, db, "/* dbscale datasource=normal_1 */ stop slave")
	if m0.replicaState().io != "Yes" || m1.replicaState().io != "No" {
		t.Error("hinted stop slave must stop normal_1's master only")
	}
	cols, rows = query(t, db, "/* dbscale datasource=normal_1 */ show slave status")
	if io := column(t, cols, rows, "Slave_IO_Running"); len(io) != 1 || io[0] != "No" {
		t.Errorf("hinted show slave status %v", rows)
	}
	cols, rows = query(t, db, "show binary logs")
	if cols[0] != "Log_name" || len(rows) != 1 {
		t.Errorf("show binary logs %v %v", cols, rows)
	}
	// Switching the mode off: the next replication statement of a session
	// that used it stops the slaves first, then fails with 9001.
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "start slave"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "dbscale set global 'slave-dbscale-mode' = 0")
	if _, err := conn.ExecContext(t.Context(), "start slave"); err == nil || !strings.Contains(err.Error(), "9001") {
		t.Errorf("want 9001, got %v", err)
	}
	if m0.replicaState().io != "No" {
		t.Error("the refused statement should have stopped the slave first")
	}
}

func TestForwardingAndSession(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, nil)
	db := fc.db("app", false)
	m := fc.nodes["normal_0_0"]
	m.errs["SELECT BROKEN"] = mysql.NewError(1146, "Table 'x.broken' doesn't exist")
	wantErr(t, db, "select broken", 1146, "Table 'x.broken' doesn't exist")
	_, rows := query(t, db, "select 42")
	if rows[0][0] != "42" {
		t.Errorf("forwarded select %v", rows)
	}
	_, rows = query(t, db, "select @@version_comment limit 1")
	if !strings.Contains(rows[0][0], "DBScale") {
		t.Errorf("version comment %v", rows)
	}
	// The schema of the DSN reaches the backend; a bad one fails the login.
	query(t, fc.dbWith("app", "appdb", false), "select 1")
	if !m.ran("/* connect */ USE appdb") {
		t.Errorf("DSN schema not used: %v", m.statements())
	}
	if _, _, err := tryQuery(fc.dbWith("app", "nosuchdb", false), "select 1"); err == nil || !strings.Contains(err.Error(), "1049") {
		t.Errorf("login with a bad schema: %v", err)
	}
	wantErr(t, db, "use nosuchdb", 1049, "Unknown database")
	mustExec(t, db, "use `otherdb`")
	if !m.ran("use `otherdb`") {
		t.Errorf("USE not forwarded: %v", m.statements())
	}
	// Prepared statements (no interpolateParams) work minimally.
	pdb := fc.db("admin", true)
	_, rows = query(t, pdb, "dbscale show dataservers where servername = ?", "normal_0_2")
	if len(rows) != 1 || rows[0][0] != "normal_0_2" {
		t.Errorf("prepared dbscale command %v", rows)
	}
	_, rows = query(t, pdb, "select ?", "it's")
	if rows[0][0] != "'it\\'s'" {
		t.Errorf("prepared forwarded select %v", rows)
	}
	// The server package wraps errors of COM_STMT_EXECUTE: they arrive as
	// 1105 carrying the real code in the text (documented limitation).
	mustExec(t, fc.db("admin", false), "dbscale set global 'enable-read-only' = 1")
	_, err := pdb.Exec("insert into t values (?)", 1)
	if err == nil || !strings.Contains(err.Error(), "1105") || !strings.Contains(err.Error(), "ERROR 1290") {
		t.Errorf("prepared write under read-only: %v", err)
	}
	// Unknown dbscale commands name themselves.
	wantErr(t, db, "dbscale frob the router", CodeParse, "Unknown DBScale command 'dbscale frob the router'")
	wantErr(t, db, "  ;", mysql.ER_EMPTY_QUERY, "Query was empty")
}

func TestStatePersistsAcrossRestart(t *testing.T) {
	fc := newFakeCluster(t, 1, v97, map[string]string{"enable-disaster-mode": "1"})
	db := fc.db("admin", false)
	fc.be.add("127.0.0.202", 3306, "u2", "dyn-secret-pw", v97)
	mustExec(t, db,
		"dbscale set global 'enable-read-only'=1",
		"dbscale set global max-replication-delay = 7",
		"dbscale disable dataserver normal_0_2",
		`dbscale dynamic add dataserver server_name=extra_1,server_host="127.0.0.202",server_port=3306,server_user="u2",server_password="dyn-secret-pw"`,
		"dbscale dynamic add server datasource src_1 extra_1-1-1000-400-800 group_id = 300",
		"dbscale dynamic add slave src_1 to normal_0",
	)
	before := snapshotRows(t, db)
	fc.restart()
	db = fc.db("admin", false)
	after := snapshotRows(t, db)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("state changed across restart:\nbefore %v\nafter  %v", before, after)
	}
	_, rows := query(t, db, "dbscale request next group id")
	if rows[0][0] != "301" {
		t.Errorf("next group id %v", rows)
	}
	// The dynamic server's password survived (its probe logs in), the
	// configured ones are not in the file.
	b, err := os.ReadFile(filepath.Join(fc.dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "node-secret-pw") || strings.Contains(string(b), "repl-secret-pw") || strings.Contains(string(b), "adm!n") {
		t.Errorf("state.json holds a configured password:\n%s", b)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.server("extra_1").Password != "dyn-secret-pw" {
		t.Errorf("dynamic password not persisted: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(fc.dir, stateFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v", fi.Mode())
	}
	leftovers, _ := filepath.Glob(filepath.Join(fc.dir, ".state-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	wantErr(t, db, "insert into t values (1)", CodeReadOnly, "enable-read-only")
}

// snapshotRows collects every listing whose content must survive a restart.
func snapshotRows(t *testing.T, db *sql.DB) [][][]string {
	t.Helper()
	var out [][][]string
	for _, q := range []string{"dbscale show dataservers", "dbscale show options", "dbscale show datasource type=replication",
		"dbscale show datasource type=server", "dbscale request next group id"} {
		_, rows := query(t, db, q)
		out = append(out, rows)
	}
	return out
}
