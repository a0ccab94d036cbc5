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

// drRows returns the `show datasource type=replication` rows of one slave
// source as datasource name → SlaveSourceStatus, checking the other DR
// columns on the way.
func drRows(t *testing.T, p *drPair, source string) map[string]string {
	t.Helper()
	cols, rows := query(t, p.pdb, "dbscale show datasource type=replication where SlaveSource = '"+source+"'")
	out := map[string]string{}
	for _, r := range rows {
		if r[12] != "" || r[13] != "" || r[15] != "" || cols[len(cols)-1] != "SlaveDBScale" || r[len(r)-1] != "Yes" {
			t.Errorf("DR row %v (columns %v)", r, cols)
		}
		if _, dup := out[r[0]]; dup {
			t.Errorf("two rows of %s on %s: %v", source, r[0], rows)
		}
		out[r[0]] = r[11]
	}
	return out
}

// wantLinks checks the links of a source, datasource → SlaveSourceStatus.
func wantLinks(t *testing.T, p *drPair, source string, want map[string]string) {
	t.Helper()
	if got := drRows(t, p, source); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("links of %s: %v, want %v", source, got, want)
	}
}

// addDRSource adds the dbscale_server dataserver of the standby router
// (once) and the server datasource slave_dbscale_source wrapping it.
func (p *drPair) addDRSource(t *testing.T) {
	t.Helper()
	_, rows := query(t, p.pdb, "dbscale show dataservers where servername = 'slave_dbscale_server'")
	if len(rows) == 0 {
		mustExec(t, p.pdb, fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="%s",server_port=%d,server_user="admin",server_password='adm!n \'pw"',dbscale_server`,
			p.standby.r.Host(), p.standby.r.Port()))
	}
	mustExec(t, p.pdb, "dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800")
}

// One DR source (the standby router) attached to both datasources, as
// `flow lab up --shards 2` does: one link, one set-up and one retry per
// datasource.
func TestDRSourceAttachedToTwoDatasources(t *testing.T) {
	p := newDRPair(t, 2)
	const src = "slave_dbscale_source"
	// The standby refuses for now: both links stay pending, each retried.
	mustExec(t, p.sdb, "dbscale set global 'slave-dbscale-mode' = 0")
	p.addDRSource(t)
	mustExec(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_0", "dbscale dynamic add slave "+src+" to normal_1")
	wantErr(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_1", CodeDataSource, "already a slave of normal_1")
	wantLinks(t, p, src, map[string]string{"normal_0": "Connecting", "normal_1": "Connecting"})
	if !p.primary.r.retrying("normal_0", src) || !p.primary.r.retrying("normal_1", src) {
		t.Fatal("each pending link needs its own retry")
	}
	// Removing one link stops its retry only; re-attaching starts a new one
	// although the other link of the same source is still retrying.
	mustExec(t, p.pdb, "dbscale dynamic remove slave "+src+" from normal_1")
	wantLinks(t, p, src, map[string]string{"normal_0": "Connecting"})
	if p.primary.r.retrying("normal_1", src) || !p.primary.r.retrying("normal_0", src) {
		t.Fatal("remove slave from normal_1 must stop that link's retry only")
	}
	wantErr(t, p.pdb, "dbscale dynamic remove slave "+src+" from normal_1", CodeDataSource, "not a slave of normal_1")
	mustExec(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_1")
	wantLinks(t, p, src, map[string]string{"normal_0": "Connecting", "normal_1": "Connecting"})
	if !p.primary.r.retrying("normal_1", src) {
		t.Fatal("the re-attached link to normal_1 is not retried")
	}
	// Both links survive a restart and are retried after it.
	p.primary.restart()
	p.pdb = p.primary.db("admin", false)
	wantLinks(t, p, src, map[string]string{"normal_0": "Connecting", "normal_1": "Connecting"})
	mustExec(t, p.sdb, "dbscale set global 'slave-dbscale-mode' = 1")
	waitFor(t, "both standby masters to replicate from their primary masters", 20*time.Second, func() bool {
		return p.standbyReplicatesFrom(t, 0) && p.standbyReplicatesFrom(t, 1)
	})
	waitFor(t, "both links to show Working", 10*time.Second, func() bool {
		return fmt.Sprint(drRows(t, p, src)) == fmt.Sprint(map[string]string{"normal_0": "Working", "normal_1": "Working"})
	})
	waitFor(t, "the retries to end", 10*time.Second, func() bool {
		return !p.primary.r.retrying("normal_0", src) && !p.primary.r.retrying("normal_1", src)
	})
	_, rows := query(t, p.pdb, "dbscale show datasource type=server where `Is-internal` = 'NO'")
	if len(rows) != 1 || rows[0][0] != src || rows[0][2] != "slave_dbscale_server" {
		t.Errorf("one server datasource for both links: %v", rows)
	}

	// remove datasource detaches it from every datasource, and stops no
	// replication.
	wantErr(t, p.pdb, "dbscale dynamic remove dataserver slave_dbscale_server", CodeDataServer, "still used by datasource "+src)
	mustExec(t, p.pdb, "dbscale dynamic remove datasource "+src)
	wantLinks(t, p, src, map[string]string{})
	wantErr(t, p.pdb, "dbscale dynamic remove slave "+src+" from normal_0", CodeDataSource, "not a slave of normal_0")
	if !p.standbyReplicatesFrom(t, 0) || !p.standbyReplicatesFrom(t, 1) {
		t.Error("removing the DR links stopped replication")
	}
	// Attached again from scratch, each link is set up at once.
	for k := range 2 {
		p.standby.nodes[fmt.Sprintf("normal_%d_0", k)].setReplica(nil)
	}
	p.addDRSource(t)
	mustExec(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_0", "dbscale dynamic add slave "+src+" to normal_1")
	wantLinks(t, p, src, map[string]string{"normal_0": "Working", "normal_1": "Working"})
	if !p.standbyReplicatesFrom(t, 0) || !p.standbyReplicatesFrom(t, 1) {
		t.Error("re-attached links did not set up replication")
	}
	if log := p.primary.logText(); strings.Contains(log, "repl-secret-pw") || strings.Contains(log, "adm!n") {
		t.Errorf("a password reached the log:\n%s", log)
	}
}

// A link pending on one datasource does not hold up, nor undo, the link of
// the same source on another; a refusal for good undoes only its own link.
func TestDRLinksOfOneSourceAreIndependent(t *testing.T) {
	p := newDRPair(t, 2)
	const src = "slave_dbscale_source"
	p.addDRSource(t)
	// The standby's master of normal_1 is down: that link waits for it.
	p.standby.nodes["normal_1_0"].setDown(true)
	mustExec(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_0", "dbscale dynamic add slave "+src+" to normal_1")
	wantLinks(t, p, src, map[string]string{"normal_0": "Working", "normal_1": "Connecting"})
	if !p.standbyReplicatesFrom(t, 0) || p.primary.r.retrying("normal_0", src) || !p.primary.r.retrying("normal_1", src) {
		t.Fatal("normal_0 must be wired at once and normal_1 retried")
	}
	p.standby.nodes["normal_1_0"].setDown(false)
	waitFor(t, "the normal_1 link to be set up once the standby master is back", 20*time.Second, func() bool {
		return p.standbyReplicatesFrom(t, 1)
	})
	waitFor(t, "both links to show Working", 10*time.Second, func() bool {
		return fmt.Sprint(drRows(t, p, src)) == fmt.Sprint(map[string]string{"normal_0": "Working", "normal_1": "Working"})
	})

	// A refusal for good on normal_1 undoes that attach only.
	mustExec(t, p.pdb, "dbscale dynamic remove slave "+src+" from normal_1")
	p.standby.nodes["normal_1_0"].errs["CHANGE REPLICATION SOURCE"] = mysqlErr(1227, "Access denied; you need the REPLICATION_SLAVE_ADMIN privilege")
	wantErr(t, p.pdb, "dbscale dynamic add slave "+src+" to normal_1", CodeDRLink, "REPLICATION_SLAVE_ADMIN")
	wantLinks(t, p, src, map[string]string{"normal_0": "Working"})
}
