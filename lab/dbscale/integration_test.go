package dbscale

// Integration tests: the emulator in front of real MySQL 9.7 servers (from
// lab/mysqltest; run `make mysql` first). Skipped with -short.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gosql "github.com/go-sql-driver/mysql"

	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/mysqltest"
)

// realCluster is three real MySQL nodes (node 0 the master, 1 and 2 its
// replicas) and the topology an emulator fronts them with.
type realCluster struct {
	nodes []*mysqltest.Server
	cfg   *Config
	res   mysqltest.Reservation // the emulator's address and folder
	// router is the in-process emulator (startInProcess), logf its log.
	router *Router
	logf   func(string, ...any)
}

// newRealCluster starts the nodes and writes the Config: users from the
// test, each node reached with its own admin account, which is also the
// replication account.
func newRealCluster(t *testing.T, opts map[string]string) *realCluster {
	t.Helper()
	p0 := mysqltest.Start(t)
	rc := &realCluster{nodes: []*mysqltest.Server{p0, mysqltest.StartReplica(t, p0), mysqltest.StartReplica(t, p0)}}
	ds := DataSourceConfig{Name: "normal_0"}
	for i, n := range rc.nodes {
		ds.Servers = append(ds.Servers, ServerConfig{Name: fmt.Sprintf("normal_0_%d", i), Host: n.Host, Port: n.Port,
			User: n.User, Password: n.Password})
	}
	rc.cfg = &Config{
		Users:        []User{{Name: "admin", Password: mysqld.NewPassword(), Admin: true}, {Name: "app", Password: mysqld.NewPassword()}},
		ProbeTimeout: 3 * time.Second, DRRetryTimeout: time.Minute,
		DataSources: []DataSourceConfig{ds}, Options: opts,
	}
	if err := rc.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rc.res = mysqltest.Reserve(t)
	return rc
}

// addr is the emulator's address.
func (rc *realCluster) addr() string { return net.JoinHostPort(rc.res.Host, fmt.Sprint(rc.res.Port)) }

// open returns a go-sql-driver pool to the emulator (interpolateParams=true).
func (rc *realCluster) open(t *testing.T, user, schema string) *sql.DB {
	t.Helper()
	c := gosql.NewConfig()
	for _, u := range rc.cfg.Users {
		if u.Name == user {
			c.User, c.Passwd = u.Name, u.Password
		}
	}
	c.Net, c.Addr, c.DBName, c.InterpolateParams = "tcp", rc.addr(), schema, true
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 5*time.Second, time.Minute, time.Minute
	conn, err := gosql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// startInProcess runs the emulator in this process.
func (rc *realCluster) startInProcess(t *testing.T, logf func(string, ...any)) *Router {
	t.Helper()
	r, err := Start(Options{Dir: filepath.Join(rc.res.Dir, "dbscale"), Listen: rc.addr(), Config: rc.cfg, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rc.router, rc.logf = r, logf
	return r
}

// restartInProcess closes the in-process emulator and starts it again on
// the same address and folder.
func (rc *realCluster) restartInProcess(t *testing.T) {
	t.Helper()
	if err := rc.router.Close(); err != nil {
		t.Fatal(err)
	}
	rc.startInProcess(t, rc.logf)
}

// emuProcess is the emulator run as the lab runs it: the dbscale-emu binary.
type emuProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// buildEmulator compiles cmd/dbscale-emu into the test's temporary folder
// (once per test).
func buildEmulator(t *testing.T) string {
	t.Helper()
	if builtEmulator[t.Name()] != "" {
		return builtEmulator[t.Name()]
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build dbscale-emu: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dbscale-emu")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/flowdba/flow/cmd/dbscale-emu").CombinedOutput(); err != nil {
		t.Fatalf("go build dbscale-emu: %v\n%s", err, b)
	}
	builtEmulator[t.Name()] = out
	return out
}

// builtEmulator maps a test to its binary.
var builtEmulator = map[string]string{}

// startProcess writes the topology file (the first time) and starts the
// binary, waiting (bounded) until it accepts connections.
func (rc *realCluster) startProcess(t *testing.T) *emuProcess {
	t.Helper()
	dir := filepath.Join(rc.res.Dir, "dbscale")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(dir, "topology.yaml")
	if _, err := os.Stat(topo); err != nil {
		if err := os.WriteFile(topo, []byte(configYAML(rc.cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &emuProcess{stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(buildEmulator(t), "--dir", dir, "--listen", rc.addr())
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", rc.addr(), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("dbscale-emu exited before listening: %v\n%s", err, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbscale-emu did not listen on %s within 30s:\n%s", rc.addr(), p.stderr)
		}
	}
}

// stop signals the process and waits (bounded) for it to exit.
func (p *emuProcess) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("dbscale-emu after SIGTERM: %v\n%s", err, p.stderr)
		}
		p.done <- err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("dbscale-emu did not stop within 30s of %v", sig)
	}
}

// configYAML writes a Config as the lab would: YAML with every password
// quoted.
func configYAML(c *Config) string {
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range c.Users {
		fmt.Fprintf(&b, "  - {name: %q, password: %q, admin: %v}\n", u.Name, u.Password, u.Admin)
	}
	fmt.Fprintf(&b, "probe_timeout: %s\ndr_retry_timeout: %s\ndatasources:\n", c.ProbeTimeout, c.DRRetryTimeout)
	for _, ds := range c.DataSources {
		fmt.Fprintf(&b, "  - name: %s\n    servers:\n", ds.Name)
		for _, s := range ds.Servers {
			fmt.Fprintf(&b, "      - {name: %s, host: %q, port: %d, user: %q, password: %q}\n", s.Name, s.Host, s.Port, s.User, s.Password)
		}
	}
	b.WriteString("options:\n")
	for k, v := range c.Options {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	return b.String()
}

// replicaField reads one column of SHOW REPLICA STATUS on a node ("" when
// it is not a replica).
func replicaField(t *testing.T, n *mysqltest.Server, col string) string {
	t.Helper()
	cols, rows := query(t, n.DB(t), "SHOW REPLICA STATUS")
	if len(rows) == 0 {
		return ""
	}
	return column(t, cols, rows, col)[0]
}

// mysqlCLI runs the real mysql client against the emulator.
func mysqlCLI(t *testing.T, rc *realCluster, user string, sqlText string) (string, error) {
	t.Helper()
	in, err := mysqld.Locate()
	if err != nil {
		t.Fatal(err)
	}
	var pw string
	for _, u := range rc.cfg.Users {
		if u.Name == user {
			pw = u.Password
		}
	}
	extra := filepath.Join(t.TempDir(), "client.cnf")
	if err := os.WriteFile(extra, []byte(fmt.Sprintf("[client]\nuser=%s\npassword=%q\n", user, pw)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, in.Bin("mysql"), "--defaults-extra-file="+extra, "-h", rc.res.Host,
		"-P", fmt.Sprint(rc.res.Port), "--batch", "-e", sqlText)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestIntegrationForwardingStatusAndDisable(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real MySQL")
	}
	rc := newRealCluster(t, nil)
	rc.startInProcess(t, t.Logf)
	p0, p1, p2 := rc.nodes[0], rc.nodes[1], rc.nodes[2]
	admin := rc.open(t, "admin", "")

	// Statements go to the master; results and error codes come back as
	// MySQL sent them.
	mustExec(t, admin, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20))")
	app := rc.open(t, "app", "d")
	if _, err := app.Exec("INSERT INTO t VALUES (?, ?)", 1, "it's"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := app.QueryRow("SELECT v FROM t WHERE id = ?", 1).Scan(&v); err != nil || v != "it's" {
		t.Fatalf("select through the router: %q %v", v, err)
	}
	wantErr(t, app, "INSERT INTO t VALUES (1, 'dup')", 1062, "Duplicate entry")
	wantErr(t, app, "SELECT * FROM nosuch", 1146, "doesn't exist")
	wantErr(t, app, "SELEC 1", 1064, "syntax")
	wantErr(t, app, "USE nosuchdb", 1049, "Unknown database")
	if got := p0.QueryString(t, "SELECT COUNT(*) FROM d.t"); got != "1" {
		t.Errorf("row not on the master: %s", got)
	}
	p1.WaitGTIDs(t, p0.GTIDExecuted(t))

	// The real mysql client logs in (caching_sha2_password over TLS) and
	// runs dbscale commands and forwarded statements.
	out, err := mysqlCLI(t, rc, "app", "select @@version_comment limit 1; dbscale show dataservers; select v from d.t;")
	if err != nil {
		t.Fatalf("mysql CLI: %v\n%s", err, out)
	}
	for _, want := range []string{"DBScale emulator", "normal_0_0\t" + p0.Host + "\t", "Server normal\tMaster_Online", "Slave normal\tNot_A_Master", "it's"} {
		if !strings.Contains(out, want) {
			t.Errorf("mysql CLI output lacks %q:\n%s", want, out)
		}
	}
	out, err = mysqlCLI(t, rc, "app", "dbscale set global 'enable-read-only'=1")
	if err == nil || !strings.Contains(out, "ERROR 1227") || !strings.Contains(out, msgSetAdminOnly) {
		t.Errorf("mysql CLI privilege error: %v\n%s", err, out)
	}

	// Statuses are live.
	statuses := func() map[string]string {
		_, rows := query(t, admin, "dbscale show dataservers")
		m := map[string]string{}
		for _, row := range rows {
			m[row[0]] = row[4]
		}
		return m
	}
	if s := statuses(); s["normal_0_0"] != "Server normal" || s["normal_0_1"] != "Slave normal" || s["normal_0_2"] != "Slave normal" {
		t.Errorf("statuses %v", s)
	}
	p2.Exec(t, "STOP REPLICA")
	if s := statuses(); s["normal_0_2"] != "Server normal, slave down" {
		t.Errorf("stopped replica: %v", s)
	}
	p2.Exec(t, "START REPLICA")

	// SHOW MASTER STATUS keeps its 8.0 columns on 9.7.
	cols, rows := query(t, admin, "show master status")
	if strings.Join(cols, ",") != "File,Position,Binlog_Do_DB,Binlog_Ignore_DB,Executed_Gtid_Set" || len(rows) != 1 ||
		strings.ReplaceAll(rows[0][4], "\n", "") != p0.GTIDExecuted(t) {
		t.Errorf("show master status %v %v (master at %s)", cols, rows, p0.GTIDExecuted(t))
	}

	// Disable stops replication on the node; enable restarts it and it
	// catches up.
	mustExec(t, admin, "dbscale disable dataserver normal_0_1")
	if got := replicaField(t, p1, "Replica_IO_Running"); got != "No" {
		t.Errorf("after disable: Replica_IO_Running %s", got)
	}
	if s := statuses(); s["normal_0_1"] != "server disabled" {
		t.Errorf("disabled: %v", s)
	}
	mustExec(t, admin, "INSERT INTO d.t VALUES (2, 'while disabled')")
	if got := p1.QueryString(t, "SELECT COUNT(*) FROM d.t"); got != "1" {
		t.Errorf("a disabled node still replicates: %s rows", got)
	}
	mustExec(t, admin, "dbscale enable dataserver normal_0_1")
	p1.WaitGTIDs(t, p0.GTIDExecuted(t))
	if got := p1.QueryString(t, "SELECT COUNT(*) FROM d.t"); got != "2" {
		t.Errorf("enabled node did not catch up: %s rows", got)
	}
	online := func() map[string]string {
		_, rows := query(t, admin, "dbscale show dataservers")
		m := map[string]string{}
		for _, row := range rows {
			m[row[0]] = row[4] + " / " + row[5]
		}
		return m
	}
	// Enabled, replicating, but still Master_Offline until force online
	// (giogii's stop: enable, then flashback … force online).
	if s := online(); s["normal_0_1"] != "Slave normal / Master_Offline" {
		t.Errorf("after enable: %v", s)
	}

	// The emulator restarts (the lab kills it) and keeps its state, the
	// offline mark included.
	mustExec(t, admin, "dbscale set global 'enable-read-only' = 1")
	rc.restartInProcess(t)
	admin = rc.open(t, "admin", "")
	if s := online(); s["normal_0_1"] != "Slave normal / Master_Offline" {
		t.Errorf("after a restart: %v", s)
	}
	mustExec(t, admin, "DBSCALE FLASHBACK DATASERVER normal_0_1 FORCE ONLINE")
	if s := online(); s["normal_0_1"] != "Slave normal / Not_A_Master" || s["normal_0_0"] != "Server normal / Master_Online" {
		t.Errorf("after force online: %v", s)
	}
	wantErr(t, admin, "INSERT INTO d.t VALUES (3, 'read only')", CodeReadOnly, "enable-read-only")
	var n int
	if err := admin.QueryRow("SELECT COUNT(*) FROM d.t").Scan(&n); err != nil || n != 2 {
		t.Errorf("read after restart: %d %v", n, err)
	}
}

func TestIntegrationDRBetweenTwoEmulators(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real MySQL")
	}
	primary := newRealCluster(t, map[string]string{"enable-disaster-mode": "1"})
	standby := newRealCluster(t, map[string]string{"enable-disaster-mode": "1", "slave-dbscale-mode": "1", "enable-read-only": "1"})
	var logs bytes.Buffer
	primary.startInProcess(t, func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) })
	sp := standby.startProcess(t)
	pdb, sdb := primary.open(t, "admin", ""), standby.open(t, "admin", "")
	p0, s0, s1, s2 := primary.nodes[0], standby.nodes[0], standby.nodes[1], standby.nodes[2]

	mustExec(t, pdb, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)", "INSERT INTO shop.orders VALUES (1)")

	// giogii's AddBackupCluster against the primary router.
	var gid string
	if err := pdb.QueryRow("dbscale request next group id").Scan(&gid); err != nil {
		t.Fatal(err)
	}
	var standbyAdmin string
	for _, u := range standby.cfg.Users {
		if u.Admin {
			standbyAdmin = u.Password
		}
	}
	mustExec(t, pdb,
		fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="%s",server_port=%d,server_user="admin",server_password="%s",dbscale_server`,
			standby.res.Host, standby.res.Port, standbyAdmin),
		"dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800 group_id = "+gid,
		"dbscale dynamic add slave slave_dbscale_source to normal_0")

	// The standby's master replicates from the primary's master with
	// auto-position, and the rows flow down to the standby's replicas.
	if got := replicaField(t, s0, "Source_Host"); got != p0.Host {
		t.Fatalf("standby master's source %q, want %s", got, p0.Host)
	}
	if got := replicaField(t, s0, "Auto_Position"); got != "1" {
		t.Errorf("Auto_Position %q", got)
	}
	mustExec(t, pdb, "INSERT INTO shop.orders VALUES (2)")
	want := p0.GTIDExecuted(t)
	for _, n := range []*mysqltest.Server{s0, s1, s2} {
		n.WaitGTIDs(t, want)
		if got := n.QueryString(t, "SELECT COUNT(*) FROM shop.orders"); got != "2" {
			t.Errorf("%s has %s rows", n, got)
		}
	}
	// Read through the standby router, as giogii's VerifyBIsASlave does.
	cols, rows := query(t, sdb, "show slave status")
	if got := column(t, cols, rows, "Master_Host"); got[0] != p0.Host {
		t.Errorf("standby router show slave status Master_Host %v", got)
	}
	if got := column(t, cols, rows, "Slave_IO_Running"); got[0] != "Yes" {
		t.Errorf("Slave_IO_Running %v", got)
	}
	_, rows = query(t, pdb, "dbscale show dataservers where servername = 'slave_dbscale_server'")
	if len(rows) != 1 || rows[0][4] != "Slave normal" || rows[0][5] != "Not_A_Master" {
		t.Errorf("DR row %v", rows)
	}
	wantErr(t, sdb, "INSERT INTO shop.orders VALUES (99)", CodeReadOnly, "enable-read-only")

	// The standby emulator is killed (SIGKILL) and restarted: nothing lost.
	sp.stop(t, syscall.SIGKILL)
	standby.startProcess(t)
	sdb = standby.open(t, "admin", "")
	var name, val string
	if err := sdb.QueryRow("dbscale show options like 'slave-dbscale-mode'").Scan(&name, &val); err != nil || val != "1" {
		t.Errorf("standby slave-dbscale-mode after restart: %q %v", val, err)
	}
	wantErr(t, sdb, "INSERT INTO shop.orders VALUES (98)", CodeReadOnly, "enable-read-only")

	// The drill's start: the primary drops the link (replication goes on),
	// the standby stops replicating through its router, leaves slave mode
	// and disables a replica.
	mustExec(t, pdb, "dbscale dynamic remove datasource slave_dbscale_source", "dbscale dynamic remove dataserver slave_dbscale_server")
	mustExec(t, pdb, "INSERT INTO shop.orders VALUES (3)")
	s0.WaitGTIDs(t, p0.GTIDExecuted(t))
	mustExec(t, sdb, "stop slave")
	if got := replicaField(t, s0, "Replica_IO_Running"); got != "No" {
		t.Errorf("stop slave through the standby router: IO %s", got)
	}
	mustExec(t, sdb, "dbscale set global 'slave-dbscale-mode'=0", "dbscale disable dataserver normal_0_1", `dbscale set global "enable-read-only" = 0`)
	wantErr(t, sdb, "start slave", CodeSlaveModeOff, msgSlaveModeOff)
	if got := replicaField(t, s1, "Replica_IO_Running"); got != "No" {
		t.Errorf("disabled standby replica still replicates: %s", got)
	}
	mustExec(t, sdb, "INSERT INTO shop.orders VALUES (100)")

	// The drill's stop: re-add the link while the standby is still out of
	// slave mode (pending), then switch the mode on: the primary (restarted
	// in between) finishes the set-up.
	mustExec(t, sdb, "dbscale set global 'enable-read-only' = 1", "dbscale enable dataserver normal_0_1")
	mustExec(t, pdb, "DELETE FROM shop.orders WHERE id = 3")
	if err := pdb.QueryRow("dbscale request next group id").Scan(&gid); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pdb,
		fmt.Sprintf(`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host='%s',server_port=%d,server_user='admin',server_password='%s',dbscale_server`,
			standby.res.Host, standby.res.Port, standbyAdmin),
		"dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800 group_id = "+gid,
		"dbscale dynamic add slave slave_dbscale_source to normal_0")
	_, rows = query(t, pdb, "dbscale show datasource type=replication where SlaveDBScale = 'Yes'")
	if len(rows) != 1 || rows[0][11] != "Connecting" {
		t.Fatalf("link while the standby refuses: %v", rows)
	}
	primary.restartInProcess(t)
	mustExec(t, sdb, "dbscale set global 'slave-dbscale-mode'=1")
	waitFor(t, "the standby master to replicate from the primary again", time.Minute, func() bool {
		return replicaField(t, s0, "Replica_IO_Running") == "Yes" && replicaField(t, s0, "Replica_SQL_Running") == "Yes"
	})
	// The standby has an errant row (id 100, written during the drill):
	// the primary's delete of id 3 applies, and so does a new insert.
	mustExec(t, primary.open(t, "admin", ""), "INSERT INTO shop.orders VALUES (4)")
	s0.WaitGTIDs(t, p0.GTIDExecuted(t))
	if got := s0.QueryString(t, "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.orders"); got != "1,2,4,100" {
		t.Errorf("standby rows %s", got)
	}
	if strings.Contains(logs.String(), standbyAdmin) || strings.Contains(logs.String(), p0.Password) {
		t.Errorf("a password reached the log:\n%s", logs.String())
	}
}
