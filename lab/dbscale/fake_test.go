package dbscale

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	gosql "github.com/go-sql-driver/mysql"
)

// fakeBackend serves fake MySQL nodes by address; any other address (an
// emulated router) is reached with the real client.
type fakeBackend struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
}

func newFakeBackend() *fakeBackend { return &fakeBackend{nodes: map[string]*fakeNode{}} }

// add registers a fake node at host:port with the account it accepts.
func (b *fakeBackend) add(host string, port int, user, password, version string) *fakeNode {
	n := &fakeNode{version: version, user: user, password: password, errs: map[string]*mysql.MyError{}}
	b.mu.Lock()
	b.nodes[net.JoinHostPort(host, strconv.Itoa(port))] = n
	b.mu.Unlock()
	return n
}

func (b *fakeBackend) Connect(ctx context.Context, ep Endpoint) (BackendConn, error) {
	b.mu.Lock()
	n := b.nodes[ep.Addr()]
	b.mu.Unlock()
	if n == nil {
		return MySQLBackend{}.Connect(ctx, ep)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, fmt.Errorf("dial tcp %s: connect: connection refused", ep.Addr())
	}
	if ep.User != n.user || ep.Password != n.password {
		return nil, mysql.NewError(mysql.ER_ACCESS_DENIED_ERROR, "Access denied for user '"+ep.User+"'")
	}
	if ep.DB == "nosuchdb" {
		return nil, mysql.NewError(mysql.ER_BAD_DB_ERROR, "Unknown database 'nosuchdb'")
	}
	if ep.DB != "" {
		n.log = append(n.log, "/* connect */ USE "+ep.DB)
	}
	n.conns++
	return &fakeConn{n: n, db: ep.DB}, nil
}

// fakeReplica is the replication state of a fake node.
type fakeReplica struct {
	io, sql            string
	ioErrno, sqlErrno  int
	lag                string // "" is NULL
	host, user, passwd string
	port               int
	autoPosition       bool
}

// fakeNode is an in-memory MySQL server that understands the few
// statements the router sends.
type fakeNode struct {
	mu       sync.Mutex
	version  string
	user     string
	password string
	down     bool
	gtids    string
	replica  *fakeReplica
	log      []string
	errs     map[string]*mysql.MyError // statement prefix (upper case) → error
	conns    int
}

func (n *fakeNode) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

// statements returns the statements run so far.
func (n *fakeNode) statements() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.log...)
}

// ran reports whether some statement contains s (case-insensitive).
func (n *fakeNode) ran(s string) bool {
	for _, q := range n.statements() {
		if strings.Contains(strings.ToUpper(q), strings.ToUpper(s)) {
			return true
		}
	}
	return false
}

func (n *fakeNode) replicaState() *fakeReplica {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.replica == nil {
		return nil
	}
	c := *n.replica
	return &c
}

func (n *fakeNode) setReplica(r *fakeReplica) {
	n.mu.Lock()
	n.replica = r
	n.mu.Unlock()
}

type fakeConn struct {
	n      *fakeNode
	db     string
	closed bool
}

func (c *fakeConn) ServerVersion() string { return c.n.version }
func (c *fakeConn) Close() error          { c.closed = true; return nil }

func (c *fakeConn) UseDB(db string) error {
	_, err := c.Execute("USE " + db)
	return err
}

func (c *fakeConn) FieldList(string, string) ([]*mysql.Field, error) { return nil, nil }

var (
	optRe       = regexp.MustCompile(`(?i)\b((?:SOURCE|MASTER)_[A-Z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\d+)`)
	legacyRe    = regexp.MustCompile(`(?i)^(START|STOP|RESET)\s+SLAVE|^CHANGE\s+MASTER|^SHOW\s+(SLAVE|MASTER)\s|^RESET\s+MASTER`)
	errBrokenIO = errors.New("fake: connection closed")
)

func (c *fakeConn) Execute(q string) (*mysql.Result, error) {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down || c.closed {
		return nil, errBrokenIO
	}
	n.log = append(n.log, q)
	_, body := splitLeadingComments(q)
	up := strings.ToUpper(strings.Join(strings.Fields(body), " "))
	for prefix, e := range n.errs {
		if strings.HasPrefix(up, prefix) {
			return nil, e
		}
	}
	modern := dialectOf(n.version).noSlave
	if modern && legacyRe.MatchString(up) {
		return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax near '"+strings.Fields(up)[1]+"'")
	}
	switch {
	case strings.HasPrefix(up, "USE "):
		c.db = strings.Trim(strings.TrimPrefix(body, body[:4]), "` ")
		if c.db == "nosuchdb" {
			return nil, mysql.NewError(mysql.ER_BAD_DB_ERROR, "Unknown database 'nosuchdb'")
		}
		return &mysql.Result{}, nil
	case up == "SELECT @@GLOBAL.GTID_EXECUTED":
		return (&table{cols: []string{"@@GLOBAL.gtid_executed"}, rows: [][]string{{n.gtids}}}).result(), nil
	case up == "SHOW REPLICA STATUS" || up == "SHOW SLAVE STATUS":
		prefix, src := "Replica", "Source"
		if up == "SHOW SLAVE STATUS" {
			prefix, src = "Slave", "Master"
		}
		t := &table{cols: []string{prefix + "_IO_State", src + "_Host", src + "_User", src + "_Port",
			prefix + "_IO_Running", prefix + "_SQL_Running", "Replicate_Do_DB", "Last_IO_Errno", "Last_SQL_Errno",
			"Seconds_Behind_" + src, "Get_" + map[bool]string{true: "Source", false: "master"}[src == "Source"] + "_public_key",
			"Executed_Gtid_Set", "Auto_Position"}}
		if r := n.replica; r != nil {
			t.rows = append(t.rows, []string{"", r.host, r.user, strconv.Itoa(r.port), r.io, r.sql, "",
				strconv.Itoa(r.ioErrno), strconv.Itoa(r.sqlErrno), r.lag, "1", n.gtids, map[bool]string{true: "1", false: "0"}[r.autoPosition]})
		}
		return t.result(), nil
	case up == "SHOW BINARY LOG STATUS" || up == "SHOW MASTER STATUS":
		return (&table{cols: []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB", "Executed_Gtid_Set"},
			rows: [][]string{{"binlog.000002", "157", "", "dbscale_tmp", n.gtids}}}).result(), nil
	case up == "SHOW BINARY LOGS":
		return (&table{cols: []string{"Log_name", "File_size", "Encrypted"}, rows: [][]string{{"binlog.000001", "180", "No"}}}).result(), nil
	case strings.HasPrefix(up, "STOP REPLICA") || strings.HasPrefix(up, "STOP SLAVE"):
		if n.replica != nil {
			n.replica.io, n.replica.sql = "No", "No"
		}
		return &mysql.Result{}, nil
	case strings.HasPrefix(up, "START REPLICA") || strings.HasPrefix(up, "START SLAVE"):
		if n.replica == nil || n.replica.host == "" {
			return nil, mysql.NewError(13117, "Replica failed to initialize applier metadata structure from the repository")
		}
		n.replica.io, n.replica.sql = "Yes", "Yes"
		return &mysql.Result{}, nil
	case strings.HasPrefix(up, "RESET REPLICA") || strings.HasPrefix(up, "RESET SLAVE"):
		if strings.HasSuffix(up, " ALL") {
			n.replica = nil
		}
		return &mysql.Result{}, nil
	case strings.HasPrefix(up, "CHANGE REPLICATION SOURCE TO") || strings.HasPrefix(up, "CHANGE MASTER TO"):
		if n.replica != nil && n.replica.io == "Yes" {
			return nil, mysql.NewError(13117, "This operation cannot be performed with a running replica io thread")
		}
		r := &fakeReplica{io: "No", sql: "No"}
		if n.replica != nil {
			c := *n.replica
			r = &c
		}
		for _, m := range optRe.FindAllStringSubmatch(body, -1) {
			key := strings.ToUpper(m[1])
			key = key[strings.IndexByte(key, '_')+1:]
			val := strings.Trim(m[2], "'")
			switch key {
			case "HOST":
				r.host = val
			case "PORT":
				r.port, _ = strconv.Atoi(val)
			case "USER":
				r.user = val
			case "PASSWORD":
				r.passwd = val
			case "AUTO_POSITION":
				r.autoPosition = val == "1"
			}
		}
		n.replica = r
		return &mysql.Result{}, nil
	case strings.HasPrefix(up, "SELECT "):
		return (&table{cols: []string{"v"}, rows: [][]string{{strings.TrimPrefix(body, body[:7])}}}).result(), nil
	case strings.HasPrefix(up, "INSERT") || strings.HasPrefix(up, "CREATE") || strings.HasPrefix(up, "SET ") || strings.HasPrefix(up, "BEGIN") || strings.HasPrefix(up, "COMMIT"):
		return &mysql.Result{AffectedRows: 1}, nil
	}
	return &mysql.Result{}, nil
}

// fakeCluster is a router in front of fake nodes, for the unit tests.
type fakeCluster struct {
	t     testing.TB
	be    *fakeBackend
	cfg   *Config
	dir   string
	r     *Router
	nodes map[string]*fakeNode
	logMu sync.Mutex
	logs  []string
}

// loopbackHost hands out distinct 127.0.0.x hosts to the fake nodes of one
// test binary (fake nodes never listen: only the router does).
var (
	hostMu   sync.Mutex
	nextHost = 10
)

func newHost() string {
	hostMu.Lock()
	defer hostMu.Unlock()
	nextHost++
	return fmt.Sprintf("127.0.%d.%d", nextHost/250, 1+nextHost%250)
}

// newFakeCluster starts a router over shards×3 fake nodes: node 0 of each
// datasource is its master, nodes 1 and 2 replicate from it.
func newFakeCluster(t testing.TB, shards int, version string, opts map[string]string) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{t: t, be: newFakeBackend(), dir: t.TempDir(), nodes: map[string]*fakeNode{}}
	cfg := &Config{
		Users: []User{
			{Name: "admin", Password: "adm!n 'pw\"", Admin: true},
			{Name: "app", Password: "app-pw"},
		},
		NodeUser: "dbscale_internal", NodePassword: "node-secret-pw",
		ReplicationUser: "repl", ReplicationPassword: "repl-secret-pw",
		RemoteUser: "root", RemotePort: "22",
		ProbeTimeout: time.Second, DRRetryTimeout: time.Minute,
		Options: opts,
	}
	for k := range shards {
		ds := DataSourceConfig{Name: fmt.Sprintf("normal_%d", k)}
		var masterHost string
		for i := range 3 {
			host := newHost()
			name := fmt.Sprintf("normal_%d_%d", k, i)
			n := fc.be.add(host, 16315, "dbscale_internal", "node-secret-pw", version)
			n.gtids = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10"
			if i == 0 {
				masterHost = host
			} else {
				n.replica = &fakeReplica{io: "Yes", sql: "Yes", lag: "0", host: masterHost, port: 16315, user: "repl", autoPosition: true}
			}
			fc.nodes[name] = n
			ds.Servers = append(ds.Servers, ServerConfig{Name: name, Host: host, Port: 16315})
		}
		cfg.DataSources = append(cfg.DataSources, ds)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	fc.cfg = cfg
	fc.start("127.0.0.1:0")
	return fc
}

// start (re)starts the router on addr.
func (fc *fakeCluster) start(addr string) {
	fc.t.Helper()
	r, err := Start(Options{Dir: fc.dir, Listen: addr, Config: fc.cfg, Backend: fc.be, Logf: fc.logf})
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.r = r
	fc.t.Cleanup(func() { r.Close() })
}

// restart closes the router and starts it again on the same address.
func (fc *fakeCluster) restart() {
	fc.t.Helper()
	addr := fc.r.Addr()
	if err := fc.r.Close(); err != nil {
		fc.t.Fatal(err)
	}
	fc.start(addr)
}

func (fc *fakeCluster) logf(format string, args ...any) {
	fc.logMu.Lock()
	fc.logs = append(fc.logs, fmt.Sprintf(format, args...))
	fc.logMu.Unlock()
}

// logText returns everything logged so far.
func (fc *fakeCluster) logText() string {
	fc.logMu.Lock()
	defer fc.logMu.Unlock()
	return strings.Join(fc.logs, "\n")
}

// db opens a go-sql-driver pool to the router as user (interpolateParams
// on unless prepared is set).
func (fc *fakeCluster) db(user string, prepared bool) *sql.DB {
	fc.t.Helper()
	return fc.dbWith(user, "", prepared)
}

// dbWith is db with a default schema in the DSN.
func (fc *fakeCluster) dbWith(user, schema string, prepared bool) *sql.DB {
	fc.t.Helper()
	var pw string
	for _, u := range fc.cfg.Users {
		if u.Name == user {
			pw = u.Password
		}
	}
	c := gosql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, pw, "tcp", fc.r.Addr(), schema
	c.InterpolateParams = !prepared
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	conn, err := gosql.NewConnector(c)
	if err != nil {
		fc.t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	fc.t.Cleanup(func() { db.Close() })
	return db
}

// query runs q and returns the column names and the rows as strings.
func query(t *testing.T, db *sql.DB, q string, args ...any) ([]string, [][]string) {
	t.Helper()
	cols, rows, err := tryQuery(db, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return cols, rows
}

func tryQuery(db *sql.DB, q string, args ...any) ([]string, [][]string, error) {
	rs, err := db.Query(q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return nil, nil, err
	}
	var out [][]string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			} else {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	return cols, out, rs.Err()
}

// mustExec runs statements and fails the test on error.
func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// wantErr runs q and checks the MySQL error code and that the message
// contains want.
func wantErr(t *testing.T, db *sql.DB, q string, code uint16, want string) {
	t.Helper()
	_, err := db.Exec(q)
	var me *gosql.MySQLError
	if !errors.As(err, &me) {
		t.Fatalf("%s: got %v, want MySQL error %d", q, err, code)
	}
	if me.Number != code || !strings.Contains(me.Message, want) {
		t.Fatalf("%s: got error %d %q, want %d containing %q", q, me.Number, me.Message, code, want)
	}
}

// column returns the values of one column.
func column(t *testing.T, cols []string, rows [][]string, name string) []string {
	t.Helper()
	for i, c := range cols {
		if c == name {
			var out []string
			for _, r := range rows {
				out = append(out, r[i])
			}
			return out
		}
	}
	t.Fatalf("no column %q in %v", name, cols)
	return nil
}

// waitFor polls cond until it holds or the bound runs out.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mysqlErr builds a MySQL error for a fake node to answer.
func mysqlErr(code uint16, msg string) *mysql.MyError { return mysql.NewError(code, msg) }
