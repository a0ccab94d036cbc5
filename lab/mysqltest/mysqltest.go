// Package mysqltest starts throwaway real MySQL servers for tests.
//
// Each server binds its own loopback address (a random 127.a.b.c outside
// 127.0.0.0/24, which the lab uses) on a port the OS picks, so test binaries
// of different packages running in parallel never collide. An address is
// claimed with a lock file held while the server lives. The server's folders
// live under a temporary folder that is removed when the test ends (kept,
// and logged, when the test failed).
//
// MySQL comes from the install made by `make mysql` (see lab/mysql).
package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/mysqld"
)

// startTimeout bounds creating, starting and bootstrapping one server.
const startTimeout = 2 * time.Minute

// stopTimeout bounds a clean shutdown in Cleanup.
const stopTimeout = time.Minute

// Server is a running MySQL server started by Start or StartReplica.
type Server struct {
	// Host is the server's loopback address.
	Host string
	// Port is its TCP port.
	Port int
	// User and Password are an account with all privileges, for host '127.%'.
	// root@localhost (socket only) has the same password.
	User, Password string
	// Inst is the underlying instance (folders, pids, Stop, Start ...).
	Inst *mysqld.Instance
}

// Option changes how Start creates a server.
type Option func(*config)

type config struct {
	supervised bool
	bufferPool string
	extra      []string
	name       string
	password   string
}

// WithSupervisor chooses whether mysqld runs under mysqld_safe (true, the
// default, as on a production node) or bare (false). Without the supervisor,
// a restart the server asks for (as at the end of CLONE INSTANCE) fails with
// error 3707.
func WithSupervisor(on bool) Option { return func(c *config) { c.supervised = on } }

// WithOptions adds lines to the [mysqld] group of the option file, e.g.
// WithOptions("plugin-load-add=mysql_clone.so").
func WithOptions(lines ...string) Option {
	return func(c *config) { c.extra = append(c.extra, lines...) }
}

// WithClone loads the clone plugin at startup.
func WithClone() Option { return WithOptions("plugin-load-add=mysql_clone.so") }

// WithBufferPool sets innodb_buffer_pool_size (default 64M).
func WithBufferPool(size string) Option { return func(c *config) { c.bufferPool = size } }

// WithName names the instance folder (default: the port number).
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithPassword sets the admin password instead of a random one; pass
// another Server's Password so that a clone recipient, which receives the
// donor's accounts, keeps working with the same credentials.
func WithPassword(pw string) Option { return func(c *config) { c.password = pw } }

// NeedMySQL skips t under -short (`make unit` runs no MySQL; `make test`
// runs the test): every test that starts a MySQL server says so through
// Start, StartReplica or this, so the fast suite passes on a clean clone.
func NeedMySQL(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a MySQL server: not run by -short (make unit); make test runs it")
	}
}

// Start starts a throwaway MySQL instance on a loopback address for the test
// and stops it in t.Cleanup. It fails the test (t.Fatal) with "run `make
// mysql`" if MySQL is not installed, and skips it under -short (NeedMySQL).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	NeedMySQL(t)
	cfg := config{supervised: true}
	for _, o := range opts {
		o(&cfg)
	}
	in, err := mysqld.Locate()
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	reapOrphans()
	cl, err := claimAddress()
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	inst := &mysqld.Instance{
		Install:    in,
		Root:       cl.dir,
		Name:       cfg.name,
		Host:       cl.host,
		Port:       cl.port,
		Bare:       !cfg.supervised,
		BufferPool: cfg.bufferPool,
		Extra:      cfg.extra,
		// Empty means Create generates a random one.
		AdminPassword: cfg.password,
	}
	if err := cl.record(cl.dir); err != nil {
		cl.release(true)
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := inst.Stop(ctx); err != nil {
			t.Errorf("mysqltest: %v", err)
		}
		keep := t.Failed()
		if keep {
			t.Logf("mysqltest: kept the folders of %s in %s", inst, inst.Dir())
		}
		cl.release(!keep)
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := inst.Provision(ctx); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	return &Server{Host: inst.Host, Port: inst.Port, User: inst.User(), Password: inst.AdminPassword, Inst: inst}
}

// StartReplica starts another instance replicating from src with GTID
// auto-position (as src's admin account) and waits until its replication
// threads run.
func StartReplica(t testing.TB, src *Server, opts ...Option) *Server {
	t.Helper()
	r := Start(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := mysqld.ReplicateFrom(ctx, r.Inst, src.Inst, src.User, src.Password); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	return r
}

// Addr returns "host:port".
func (s *Server) Addr() string { return s.Inst.Addr() }

// DSN returns a go-sql-driver DSN for the admin account over TCP with
// interpolateParams=true and timeouts; db may be empty. It holds the
// password: do not log it.
func (s *Server) DSN(db string) string { return s.Inst.DSN(db) }

// DB returns a *sql.DB for the admin account, closed in t.Cleanup.
func (s *Server) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := s.Inst.Open("")
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs the statements in order as the admin account and fails the test
// on the first error.
func (s *Server) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Inst.Exec(ctx, stmts...); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
}

// QueryString returns the first column of the first row of q ("" for NULL or
// no row) and fails the test on error.
func (s *Server) QueryString(t testing.TB, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	v, err := s.Inst.QueryString(ctx, q)
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	return v
}

// GTIDExecuted returns @@GLOBAL.gtid_executed with the newlines MySQL puts
// between UUIDs removed.
func (s *Server) GTIDExecuted(t testing.TB) string {
	t.Helper()
	return strings.ReplaceAll(s.QueryString(t, "SELECT @@GLOBAL.gtid_executed"), "\n", "")
}

// WaitGTIDs waits until the server has executed the GTID set (as a replica
// catching up), failing the test after a bounded wait.
func (s *Server) WaitGTIDs(t testing.TB, gtids string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Inst.WaitGTIDs(ctx, gtids); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
}

// String names the server, e.g. "mysqld 127.31.7.200:40311".
func (s *Server) String() string { return fmt.Sprint(s.Inst) }
