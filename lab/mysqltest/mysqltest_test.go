package mysqltest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/flowdba/flow/lab/mysqltest"
)

func TestStartServesSQLOnItsOwnAddress(t *testing.T) {
	s := mysqltest.Start(t)
	if !strings.HasPrefix(s.Host, "127.") || strings.HasPrefix(s.Host, "127.0.0.") {
		t.Fatalf("host %s: want a loopback address outside 127.0.0.0/24", s.Host)
	}
	if got := s.QueryString(t, "SELECT @@bind_address"); got != s.Host {
		t.Errorf("bind_address = %q, want %q", got, s.Host)
	}
	if got := s.QueryString(t, "SELECT @@port"); got != strconv.Itoa(s.Port) {
		t.Errorf("port = %q, want %d", got, s.Port)
	}
	// The admin account authenticates with caching_sha2_password over plain TCP.
	if got := s.QueryString(t, "SELECT plugin FROM mysql.user WHERE user = '"+s.User+"'"); got != "caching_sha2_password" {
		t.Errorf("admin plugin = %q", got)
	}
	if got := s.QueryString(t, "SELECT @@basedir"); got != s.Inst.Install.BaseDir+"/" && got != s.Inst.Install.BaseDir {
		t.Errorf("basedir = %q, want %q", got, s.Inst.Install.BaseDir)
	}
	if got := s.QueryString(t, "SELECT @@gtid_mode"); got != "ON" {
		t.Errorf("gtid_mode = %q", got)
	}
	// Bootstrap spends no GTID, so replicas of this server do not replay it.
	if got := s.GTIDExecuted(t); got != "" {
		t.Errorf("gtid_executed = %q, want empty", got)
	}
	s.Exec(t, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1), (2)")
	if got := s.QueryString(t, "SELECT COUNT(*) FROM d.t"); got != "2" {
		t.Errorf("count = %q", got)
	}
	db := s.DB(t)
	var n int
	if err := db.QueryRow("SELECT id FROM d.t WHERE id = ?", 2).Scan(&n); err != nil || n != 2 {
		t.Errorf("query with a parameter: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(s.Inst.Dir(), "dbdata", "mysql.ibd")); err != nil {
		t.Error(err)
	}
	if err := s.Inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Inst.Running() {
		t.Error("still running after Stop")
	}
}

func TestCloneRestartsOnlyUnderTheSupervisor(t *testing.T) {
	donor := mysqltest.Start(t, mysqltest.WithClone())
	donor.Exec(t, "CREATE DATABASE cloned", "CREATE TABLE cloned.t (id INT PRIMARY KEY)", "INSERT INTO cloned.t VALUES (7)")
	const count = "SELECT COUNT(*) FROM cloned.t WHERE id = 7"
	clone := func(t *testing.T, r *mysqltest.Server) error {
		r.Exec(t, "SET GLOBAL clone_valid_donor_list = '"+donor.Addr()+"'")
		_, err := r.DB(t).Exec("CLONE INSTANCE FROM ?@?:? IDENTIFIED BY ?", donor.User, donor.Host, donor.Port, donor.Password)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("mysqld_safe restarts the recipient", func(t *testing.T) {
		r := mysqltest.Start(t, mysqltest.WithClone(), mysqltest.WithPassword(donor.Password))
		before, err := r.Inst.MysqldPID()
		if err != nil {
			t.Fatal(err)
		}
		if err := clone(t, r); err != nil {
			t.Fatalf("clone: %v", err)
		}
		if err := r.Inst.WaitRestart(ctx, before); err != nil {
			t.Fatal(err)
		}
		if got := r.QueryString(t, count); got != "1" {
			t.Errorf("cloned row count = %q", got)
		}
		if r.Inst.SupervisorPID() == 0 {
			t.Error("mysqld_safe is gone after the clone")
		}
	})

	t.Run("bare mysqld fails the restart with 3707", func(t *testing.T) {
		r := mysqltest.Start(t, mysqltest.WithClone(), mysqltest.WithSupervisor(false), mysqltest.WithPassword(donor.Password))
		err := clone(t, r)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 3707 {
			t.Fatalf("clone: %v, want error 3707", err)
		}
		// The server shuts down; a manual start completes the clone.
		if !pollStopped(r) {
			t.Fatal("the recipient did not shut down after error 3707")
		}
		if err := r.Inst.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Inst.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.QueryString(t, count); got != "1" {
			t.Errorf("cloned row count = %q", got)
		}
	})
}

// pollStopped waits up to a minute for the server's processes to exit.
func pollStopped(s *mysqltest.Server) bool {
	deadline := time.Now().Add(time.Minute)
	for s.Inst.Running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func TestStartReplicaReplicates(t *testing.T) {
	src := mysqltest.Start(t)
	rep := mysqltest.StartReplica(t, src)
	src.Exec(t, "CREATE DATABASE r", "CREATE TABLE r.t (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO r.t VALUES (1, 'replicated')")
	gtids := src.GTIDExecuted(t)
	rep.WaitGTIDs(t, gtids)
	if got := rep.QueryString(t, "SELECT v FROM r.t WHERE id = 1"); got != "replicated" {
		t.Errorf("replica row = %q", got)
	}
	if got := rep.GTIDExecuted(t); got != gtids {
		t.Errorf("replica gtid_executed = %q, source %q", got, gtids)
	}
	if got := rep.QueryString(t, "SELECT HOST FROM performance_schema.replication_connection_configuration"); got != src.Host {
		t.Errorf("replica's source host = %q, want %q", got, src.Host)
	}
}

func TestParallelServersGetDistinctAddresses(t *testing.T) {
	mysqltest.NeedMySQL(t)
	addrs := make(chan string, 3)
	t.Run("group", func(t *testing.T) {
		for k := range 3 {
			t.Run(strconv.Itoa(k), func(t *testing.T) {
				t.Parallel()
				s := mysqltest.Start(t)
				if got := s.QueryString(t, "SELECT @@report_host"); got != s.Host {
					t.Errorf("report_host = %q, want %q", got, s.Host)
				}
				addrs <- s.Host
			})
		}
	})
	close(addrs)
	seen := map[string]bool{}
	for a := range addrs {
		if seen[a] {
			t.Errorf("address %s used twice", a)
		}
		seen[a] = true
	}
	if len(seen) != 3 {
		t.Errorf("%d servers started, want 3", len(seen))
	}
}

func TestReserveReleasesItsClaim(t *testing.T) {
	var dir, lock string
	t.Run("inner", func(t *testing.T) {
		r := mysqltest.Reserve(t)
		dir = r.Dir
		lock = filepath.Join(os.TempDir(), "flow-mysqltest", r.Host+".lock")
		if _, err := os.Stat(lock); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("folder %s left behind (%v)", dir, err)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock %s left behind (%v)", lock, err)
	}
}
