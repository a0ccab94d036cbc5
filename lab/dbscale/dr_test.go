package dbscale

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// drPair is a primary and a standby router, each over its own fake nodes.
type drPair struct {
	primary, standby *fakeCluster
	pdb, sdb         *sql.DB
}

func newDRPair(t *testing.T, shards int) *drPair {
	standby := newFakeCluster(t, shards, v97, map[string]string{
		"enable-disaster-mode": "1", "slave-dbscale-mode": "1", "enable-read-only": "1"})
	primary := newFakeCluster(t, shards, v97, map[string]string{"enable-disaster-mode": "1"})
	// The standby's masters start without replication.
	for k := range shards {
		standby.nodes[fmt.Sprintf("normal_%d_0", k)].setReplica(nil)
	}
	return &drPair{primary: primary, standby: standby, pdb: primary.db("admin", false), sdb: standby.db("admin", false)}
}

// addLink runs giogii's AddBackupCluster on the primary: next group id,
// the dbscale_server dataserver (created once), a server datasource and the
// slave attach to normal_K.
func (p *drPair) addLink(t *testing.T, source string, k int) {
	t.Helper()
	_, rows := query(t, p.pdb, "dbscale request next group id")
	gid := rows[0][0]
	_, rows = query(t, p.pdb, "dbscale show dataservers where servername = 'slave_dbscale_server'")
	if len(rows) == 0 {
		// The standby's admin password holds both quote characters.
		mustExec(t, p.pdb, fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="%s",server_port=%d,server_user="admin",server_password='adm!n \'pw"',dbscale_server`,
			p.standby.r.Host(), p.standby.r.Port()))
	}
	mustExec(t, p.pdb,
		fmt.Sprintf("dbscale dynamic add server datasource %s slave_dbscale_server-1-1000-400-800 group_id = %s", source, gid),
		fmt.Sprintf("dbscale dynamic add slave %s to normal_%d", source, k))
}

// standbyReplicatesFrom checks that the standby's master of normal_K
// replicates from the primary's master of normal_K with auto-position.
func (p *drPair) standbyReplicatesFrom(t *testing.T, k int) bool {
	t.Helper()
	r := p.standby.nodes[fmt.Sprintf("normal_%d_0", k)].replicaState()
	m := p.primary.cfg.DataSources[k].Servers[0]
	return r != nil && r.host == m.Host && r.port == m.Port && r.user == "repl" && r.passwd == "repl-secret-pw" && r.autoPosition && r.io == "Yes"
}

func TestDRLinkWiresTheStandbyThroughItsRouter(t *testing.T) {
	p := newDRPair(t, 2)
	p.addLink(t, "slave_dbscale_source", 0)
	if !p.standbyReplicatesFrom(t, 0) {
		t.Fatalf("standby normal_0 master: %+v", p.standby.nodes["normal_0_0"].replicaState())
	}
	s0 := p.standby.nodes["normal_0_0"]
	if !s0.ran("CHANGE REPLICATION SOURCE TO") || !s0.ran("START REPLICA") || s0.ran("CHANGE MASTER") {
		t.Errorf("the standby router must translate for 9.7: %v", s0.statements())
	}
	if p.standby.nodes["normal_1_0"].replicaState() != nil {
		t.Error("the link to normal_0 must not touch the standby's normal_1")
	}
	p.addLink(t, "slave_dbscale_source_1", 1)
	if !p.standbyReplicatesFrom(t, 1) {
		t.Fatalf("standby normal_1 master: %+v", p.standby.nodes["normal_1_0"].replicaState())
	}

	_, rows := query(t, p.pdb, "dbscale show dataservers where servername = 'slave_dbscale_server'")
	want := []string{"slave_dbscale_server", p.standby.r.Host(), strconv.Itoa(p.standby.r.Port()), "admin", "Slave normal",
		"Not_A_Master", "1", "", "", "", "0"}
	if len(rows) != 1 || strings.Join(rows[0], "|") != strings.Join(want, "|") {
		t.Errorf("DR row %v, want %v", rows, want)
	}
	cols, rows := query(t, p.pdb, "dbscale show datasource type=replication where SlaveDBScale = 'Yes'")
	if cols[len(cols)-1] != "SlaveDBScale" || len(rows) != 2 {
		t.Fatalf("DR rows %v %v", cols, rows)
	}
	r := rows[0]
	if r[10] != "slave_dbscale_source" || r[11] != "Working" || r[12] != "" || r[13] != "" || r[15] != "" {
		t.Errorf("DR replication row %v", r)
	}
	_, rows = query(t, p.pdb, "dbscale show datasource type=server where `Is-internal` = 'NO'")
	if len(rows) != 2 || rows[0][0] != "slave_dbscale_source" || rows[0][2] != "slave_dbscale_server" || rows[0][3] != "" || rows[0][4] != "Slave normal" {
		t.Errorf("DR server rows %v", rows)
	}
	// Through the standby router, replication status reads like 8.0's.
	cols, rows = query(t, p.sdb, "show slave status")
	if got := column(t, cols, rows, "Master_Host"); got[0] != p.primary.cfg.DataSources[0].Servers[0].Host {
		t.Errorf("standby Master_Host %v", got)
	}
	if got := column(t, cols, rows, "Auto_Position"); got[0] != "1" {
		t.Errorf("standby Auto_Position %v", got)
	}
	_, rows = query(t, p.sdb, "dbscale show dataservers where servername like '%dbscale%'")
	if len(rows) != 0 {
		t.Errorf("the standby lists no DR row: %v", rows)
	}

	// Removing the link does not stop replication (the playbook does).
	mustExec(t, p.pdb, "dbscale dynamic remove datasource slave_dbscale_source")
	wantErr(t, p.pdb, "dbscale dynamic remove dataserver slave_dbscale_server", CodeDataServer, "still used by datasource slave_dbscale_source_1")
	mustExec(t, p.pdb, "dbscale dynamic remove datasource slave_dbscale_source_1", "dbscale dynamic remove dataserver slave_dbscale_server")
	if !p.standbyReplicatesFrom(t, 0) || !p.standbyReplicatesFrom(t, 1) {
		t.Error("removing the DR link stopped replication")
	}
	// The playbook's stop slave through the standby router stops every shard.
	mustExec(t, p.sdb, "stop slave")
	for k := range 2 {
		if r := p.standby.nodes[fmt.Sprintf("normal_%d_0", k)].replicaState(); r.io != "No" {
			t.Errorf("normal_%d not stopped", k)
		}
	}
	for _, fc := range []*fakeCluster{p.primary, p.standby} {
		if log := fc.logText(); strings.Contains(log, "repl-secret-pw") || strings.Contains(log, "adm!n") {
			t.Errorf("a password reached the log:\n%s", log)
		}
	}
}

func TestDRLinkPendingUntilTheStandbyAcceptsAndAcrossRestart(t *testing.T) {
	p := newDRPair(t, 1)
	mustExec(t, p.sdb, "dbscale set global 'slave-dbscale-mode' = 0")
	p.addLink(t, "slave_dbscale_source", 0)
	_, rows := query(t, p.pdb, "dbscale show datasource type=replication where SlaveSource = 'slave_dbscale_source'")
	if len(rows) != 1 || rows[0][11] != "Connecting" {
		t.Fatalf("pending link row %v", rows)
	}
	if p.standbyReplicatesFrom(t, 0) {
		t.Fatal("the standby refused, yet replicates")
	}
	// The primary restarts while the link is pending; the standby then
	// accepts; the restarted primary finishes the set-up.
	p.primary.restart()
	p.pdb = p.primary.db("admin", false)
	mustExec(t, p.sdb, "dbscale set global 'slave-dbscale-mode' = 1")
	waitFor(t, "the pending DR link to be set up", 20*time.Second, func() bool { return p.standbyReplicatesFrom(t, 0) })
	waitFor(t, "the link to show Working", 10*time.Second, func() bool {
		_, rows := query(t, p.pdb, "dbscale show datasource type=replication where SlaveSource = 'slave_dbscale_source'")
		return len(rows) == 1 && rows[0][11] == "Working"
	})
	// A standby that is down also leaves the link pending.
	mustExec(t, p.pdb, "dbscale dynamic remove datasource slave_dbscale_source")
	addr := p.standby.r.Addr()
	if err := p.standby.r.Close(); err != nil {
		t.Fatal(err)
	}
	p.standby.nodes["normal_0_0"].setReplica(nil)
	mustExec(t, p.pdb, "dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800",
		"dbscale dynamic add slave slave_dbscale_source to normal_0")
	_, rows = query(t, p.pdb, "dbscale show dataservers where servername = 'slave_dbscale_server'")
	if rows[0][4] != "Server down" {
		t.Errorf("standby router down: %v", rows)
	}
	p.standby.start(addr)
	waitFor(t, "the DR link to be set up once the standby is back", 20*time.Second, func() bool { return p.standbyReplicatesFrom(t, 0) })
}

func TestDRLinkRefusedForGoodIsUndone(t *testing.T) {
	p := newDRPair(t, 1)
	p.standby.nodes["normal_0_0"].errs["CHANGE REPLICATION SOURCE"] = mysqlErr(1227, "Access denied; you need the REPLICATION_SLAVE_ADMIN privilege")
	_, rows := query(t, p.pdb, "dbscale request next group id")
	mustExec(t, p.pdb, fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="%s",server_port=%d,server_user="admin",server_password='adm!n \'pw"',dbscale_server`,
		p.standby.r.Host(), p.standby.r.Port()),
		"dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800 group_id = "+rows[0][0])
	wantErr(t, p.pdb, "dbscale dynamic add slave slave_dbscale_source to normal_0", CodeDRLink, "REPLICATION_SLAVE_ADMIN")
	_, rows = query(t, p.pdb, "dbscale show datasource type=replication where SlaveSource = 'slave_dbscale_source'")
	if len(rows) != 0 {
		t.Errorf("a refused attach must be undone: %v", rows)
	}
	// A login refused by the standby router is final too (and says so
	// without the password).
	mustExec(t, p.pdb, "dbscale dynamic remove datasource slave_dbscale_source", "dbscale dynamic remove dataserver slave_dbscale_server",
		fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="%s",server_port=%d,server_user="admin",server_password='WrongPw1',dbscale_server`,
			p.standby.r.Host(), p.standby.r.Port()),
		"dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800")
	_, err := p.pdb.Exec("dbscale dynamic add slave slave_dbscale_source to normal_0")
	if err == nil || !strings.Contains(err.Error(), "9006") || strings.Contains(err.Error(), "WrongPw1") {
		t.Errorf("bad standby password: %v", err)
	}
	wantErr(t, p.pdb, fmt.Sprintf("dbscale dynamic add dataserver server_name=self,server_host=%s,server_port=%d,server_user=a,server_password=b,dbscale_server",
		p.primary.r.Host(), p.primary.r.Port()), CodeDynamicArgs, "this dbscale itself")
}
