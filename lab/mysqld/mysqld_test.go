package mysqld_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/mysqltest"
)

// newInstance returns an Instance on an address and in a folder reserved for
// the test, stopped in Cleanup.
func newInstance(t *testing.T, name string) *mysqld.Instance {
	t.Helper()
	mysqltest.NeedMySQL(t)
	in, err := mysqld.Locate()
	if err != nil {
		t.Fatal(err)
	}
	r := mysqltest.Reserve(t)
	i := &mysqld.Instance{Install: in, Root: r.Dir, Name: name, Host: r.Host, Port: r.Port}
	t.Cleanup(func() {
		if err := i.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return i
}

func provision(t *testing.T, i *mysqld.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := i.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	k := strings.LastIndexByte(string(b), ')')
	return k > 0 && k+2 < len(b) && b[k+2] != 'Z'
}

func TestProvisionLayoutAccountsAndStop(t *testing.T) {
	i := newInstance(t, "node1")
	provision(t, i)
	ctx := context.Background()

	// Production layout: <root>/<name>/{dbdata,logfile,tmp,socket,pid} and my<port>.conf.
	if i.Dir() != filepath.Join(i.Root, "node1") {
		t.Errorf("Dir = %s", i.Dir())
	}
	for _, sub := range []string{"dbdata", "logfile", "tmp", "socket", "pid", "my" + strconv.Itoa(i.Port) + ".conf", "dbdata/auto.cnf", "logfile/error.log", "logfile/out.log", "socket/mysql.sock", "pid/mysqld.pid"} {
		if _, err := os.Stat(filepath.Join(i.Dir(), sub)); err != nil {
			t.Errorf("layout: %v", err)
		}
	}
	conf, err := os.ReadFile(i.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"basedir=" + i.Install.BaseDir + "\n", "bind-address=" + i.Host + "\n", "gtid-mode=ON\n", "enforce-gtid-consistency=ON\n", "mysqlx=OFF\n", "secure-file-priv=\n", "skip-name-resolve\n", "report_host=" + i.Host + "\n", "innodb_buffer_pool_size=64M\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("option file lacks %q", want)
		}
	}
	if strings.Contains(string(conf), i.AdminPassword) {
		t.Error("the option file holds the admin password")
	}

	// Settings as the server sees them.
	for q, want := range map[string]string{
		"SELECT @@log_bin":                  "1",
		"SELECT @@gtid_mode":                "ON",
		"SELECT @@enforce_gtid_consistency": "ON",
		"SELECT @@report_host":              i.Host,
		"SELECT @@skip_name_resolve":        "1",
		"SELECT @@datadir":                  i.DataDir() + "/",
		"SELECT @@innodb_buffer_pool_size":  strconv.Itoa(64 << 20),
		"SELECT CURRENT_USER()":             "admin@127.%",
		"SELECT COUNT(*) FROM mysql.user WHERE authentication_string = ''": "0",
	} {
		got, err := i.QueryString(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}
	if id := serverID(t, i); id == 0 {
		t.Error("server_id is 0")
	}

	// The password is random, not fixed, and a wrong one is refused.
	if len(i.AdminPassword) < 20 || i.AdminPassword == mysqld.NewPassword() {
		t.Errorf("weak admin password (%d characters)", len(i.AdminPassword))
	}
	wrong := *i.DriverConfig("")
	wrong.Passwd = "not-" + i.AdminPassword
	conn, err := mysql.NewConnector(&wrong)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := conn.Connect(ctx); err == nil {
		c.Close()
		t.Error("a wrong password was accepted")
	} else if me := (*mysql.MySQLError)(nil); !errors.As(err, &me) || me.Number != 1045 {
		t.Errorf("wrong password: %v, want error 1045", err)
	}

	safe := i.SupervisorPID()
	pid, err := i.MysqldPID()
	if err != nil || safe == 0 {
		t.Fatalf("pids: mysqld_safe %d, mysqld %d (%v)", safe, pid, err)
	}
	if !i.Running() {
		t.Fatal("Running = false")
	}
	if err := i.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if i.Running() || alive(safe) || alive(pid) {
		t.Fatalf("after Stop: Running %v, mysqld_safe alive %v, mysqld alive %v", i.Running(), alive(safe), alive(pid))
	}
	if !strings.Contains(tail(t, i.ErrorLog()), "Shutdown complete") {
		t.Error("the error log does not show a clean shutdown")
	}
	if err := i.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// A restart uses the admin account and keeps the data.
	if err := i.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := i.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := i.QueryString(ctx, "SELECT CURRENT_USER()"); err != nil || got != "admin@127.%" {
		t.Errorf("after restart: %q, %v", got, err)
	}
}

func serverID(t *testing.T, i *mysqld.Instance) uint32 {
	t.Helper()
	v, err := i.QueryString(context.Background(), "SELECT @@server_id")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

func tail(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

func TestSupervisorRestartsKilledMysqld(t *testing.T) {
	i := newInstance(t, "")
	provision(t, i)
	ctx := context.Background()
	if err := i.Exec(ctx, "CREATE DATABASE keep"); err != nil {
		t.Fatal(err)
	}
	old, err := i.MysqldPID()
	if err != nil {
		t.Fatal(err)
	}
	safe := i.SupervisorPID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// mysqld_safe starts a new mysqld.
	if err := i.WaitRestart(ctx, old); err != nil {
		t.Fatal(err)
	}
	pid, err := i.MysqldPID()
	if err != nil || pid == old {
		t.Fatalf("mysqld pid %d (%v), was %d", pid, err, old)
	}
	if got, err := i.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'keep'"); err != nil || got != "1" {
		t.Errorf("after the restart: %q, %v", got, err)
	}
	if i.SupervisorPID() != safe || !alive(safe) {
		t.Errorf("mysqld_safe changed: %d, was %d", i.SupervisorPID(), safe)
	}
	if err := i.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || alive(safe) {
		t.Error("processes left after Stop")
	}
}

// TestRestartAfterStaleSocketLock: a killed mysqld leaves its socket lock
// behind; when its pid belongs to another live process by the time
// mysqld_safe restarts mysqld, the new mysqld refuses to start and
// mysqld_safe gives up. WaitRestart removes the stale lock and starts the
// instance again. The test stands the pid reuse in with its own pid.
func TestRestartAfterStaleSocketLock(t *testing.T) {
	i := newInstance(t, "")
	provision(t, i)
	ctx := context.Background()
	old, err := i.MysqldPID()
	if err != nil {
		t.Fatal(err)
	}
	lock := i.SocketPath() + ".lock"
	if err := os.WriteFile(lock, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := i.WaitRestart(ctx, old); err != nil {
		t.Fatal(err)
	}
	if log, err := os.ReadFile(i.ErrorLog()); err != nil || !strings.Contains(string(log), "is using unix socket file") {
		t.Errorf("the restart was not refused first (the test shows nothing): %v\n%s", err, tail(t, i.ErrorLog()))
	}
	if got, err := i.QueryString(ctx, "SELECT 1"); err != nil || got != "1" {
		t.Errorf("after the restart: %q, %v", got, err)
	}
	if err := i.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBareMysqldHasNoSupervisor(t *testing.T) {
	i := newInstance(t, "")
	i.Bare = true
	provision(t, i)
	pid, err := i.MysqldPID()
	if err != nil {
		t.Fatal(err)
	}
	if s := i.SupervisorPID(); s != 0 {
		t.Errorf("SupervisorPID = %d, want 0", s)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if !strings.Contains(string(cmdline), "mysqld") {
		t.Errorf("pid %d is %q", pid, cmdline)
	}
	if err := i.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Error("mysqld still alive after Stop")
	}
}

func TestStopKillsAServerThatDoesNotShutDown(t *testing.T) {
	i := newInstance(t, "")
	provision(t, i)
	pid, err := i.MysqldPID()
	if err != nil {
		t.Fatal(err)
	}
	safe := i.SupervisorPID()
	// A stopped process can neither answer SHUTDOWN nor handle SIGTERM.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = i.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), i.Addr()) {
		t.Errorf("Stop = %v, want an error naming %s that says it killed it", err, i.Addr())
	}
	if i.Running() || alive(pid) || alive(safe) {
		t.Error("processes left after Stop")
	}
}

func TestReplicaReplicatesARow(t *testing.T) {
	src := newInstance(t, "source")
	rep := newInstance(t, "replica")
	provision(t, src)
	provision(t, rep)
	ctx := context.Background()
	if err := mysqld.ReplicateFrom(ctx, rep, src, src.User(), src.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO app.t VALUES (1, 'hello')"); err != nil {
		t.Fatal(err)
	}
	gtids, err := src.QueryString(ctx, "SELECT @@GLOBAL.gtid_executed")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(gtids, ":1-3") {
		t.Errorf("source gtid_executed = %q, want its own uuid:1-3", gtids)
	}
	if err := rep.WaitGTIDs(ctx, gtids); err != nil {
		t.Fatal(err)
	}
	if got, err := rep.QueryString(ctx, "SELECT v FROM app.t WHERE id = 1"); err != nil || got != "hello" {
		t.Errorf("replica row: %q, %v", got, err)
	}
	u1, _ := src.QueryString(ctx, "SELECT @@server_uuid")
	u2, _ := rep.QueryString(ctx, "SELECT @@server_uuid")
	if u1 == u2 || u1 == "" {
		t.Errorf("server_uuid %q and %q: want distinct", u1, u2)
	}
}

func TestReplicateFromAWrongPasswordNamesTheReplica(t *testing.T) {
	src := newInstance(t, "source")
	rep := newInstance(t, "replica")
	provision(t, src)
	provision(t, rep)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	secret := "wrong-" + mysqld.NewPassword()
	err := mysqld.ReplicateFrom(ctx, rep, src, src.User(), secret)
	if err == nil {
		t.Fatal("replication with a wrong password started")
	}
	if !strings.Contains(err.Error(), rep.Addr()) || strings.Contains(err.Error(), secret) {
		t.Errorf("error %q: want the replica's address and no password", err)
	}
}

func TestLocateSaysRunMakeMysql(t *testing.T) {
	t.Setenv(mysqld.EnvHome, t.TempDir())
	_, err := mysqld.Locate()
	if err == nil || !strings.Contains(err.Error(), "run `make mysql`") {
		t.Errorf("Locate = %v", err)
	}
}

func TestValidateRefusesNonLoopbackAndLongSockets(t *testing.T) {
	in := &mysqld.Install{}
	for _, i := range []*mysqld.Instance{
		{Install: in, Root: "/tmp", Host: "10.0.0.1", Port: 3306},
		{Install: in, Root: "/tmp", Host: "localhost", Port: 3306},
		{Install: in, Root: "/tmp", Host: "127.0.0.2", Port: 0},
		{Install: in, Root: "relative", Host: "127.0.0.2", Port: 3306},
		{Install: in, Root: "/tmp/" + strings.Repeat("x", 100), Host: "127.0.0.2", Port: 3306},
	} {
		if err := i.Validate(); err == nil {
			t.Errorf("%+v: no error", i)
		} else if !strings.Contains(err.Error(), i.Addr()) {
			t.Errorf("%v: does not name the instance", err)
		}
	}
	ok := &mysqld.Instance{Install: in, Root: "/tmp", Host: "127.0.0.2", Port: 16315}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	if ok.ConfigPath() != "/tmp/16315/my16315.conf" {
		t.Errorf("ConfigPath = %s", ok.ConfigPath())
	}
}
