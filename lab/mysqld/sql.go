package mysqld

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// connTimeout bounds dialing one connection.
const connTimeout = 5 * time.Second

// DriverConfig returns a go-sql-driver configuration for the admin account
// over TCP, with interpolateParams=true and timeouts. db may be empty.
// caching_sha2_password works without TLS: the driver asks the server for
// its RSA public key.
func (i *Instance) DriverConfig(db string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = i.User()
	c.Passwd = i.AdminPassword
	c.Net = "tcp"
	c.Addr = i.Addr()
	c.DBName = db
	c.InterpolateParams = true
	c.Timeout = connTimeout
	c.ReadTimeout = 5 * time.Minute
	c.WriteTimeout = 5 * time.Minute
	return c
}

// DSN returns the go-sql-driver DSN of DriverConfig(db). It holds the
// password: never log it.
func (i *Instance) DSN(db string) string { return i.DriverConfig(db).FormatDSN() }

// Open returns a *sql.DB for the admin account over TCP. The caller closes it.
func (i *Instance) Open(db string) (*sql.DB, error) {
	conn, err := mysql.NewConnector(i.DriverConfig(db))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", i, err)
	}
	return sql.OpenDB(conn), nil
}

// rootSocketConfig is root@localhost over the unix socket with the empty
// password a fresh data folder has.
func (i *Instance) rootSocketConfig() *mysql.Config {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "unix"
	c.Addr = i.SocketPath()
	c.InterpolateParams = true
	c.Timeout = connTimeout
	c.ReadTimeout = time.Minute
	c.WriteTimeout = time.Minute
	return c
}

// connConfig is how we reach the server now: root over the socket before
// Bootstrap of a freshly created data folder, the admin account after.
func (i *Instance) connConfig() *mysql.Config {
	i.mu.Lock()
	fresh := !i.bootstrapped && i.created
	i.mu.Unlock()
	if fresh {
		return i.rootSocketConfig()
	}
	return i.DriverConfig("")
}

// ping makes and closes one connection.
func (i *Instance) ping(ctx context.Context) error {
	conn, err := mysql.NewConnector(i.connConfig())
	if err != nil {
		return err
	}
	c, err := conn.Connect(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// shutdownSQL sends SHUTDOWN. The server may drop the connection before it
// answers; that counts as success.
//
// It first kills the binlog dump threads serving replicas: one whose replica
// has gone notices only at its next heartbeat, and the shutdown waits for it
// (8 s and more).
func (i *Instance) shutdownSQL(ctx context.Context) error {
	conn, err := mysql.NewConnector(i.connConfig())
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	for _, id := range binlogDumpThreads(ctx, db) {
		_, _ = db.ExecContext(ctx, "KILL ?", id)
	}
	_, _ = db.ExecContext(ctx, "SHUTDOWN")
	return nil
}

// binlogDumpThreads returns the ids of connections running a binlog dump.
func binlogDumpThreads(ctx context.Context, db *sql.DB) []int64 {
	rows, err := db.QueryContext(ctx, "SHOW PROCESSLIST")
	if err != nil {
		return nil
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil
	}
	var ids []int64
	for rows.Next() {
		raw := make([]sql.RawBytes, len(names))
		ptrs := make([]any, len(names))
		for k := range raw {
			ptrs[k] = &raw[k]
		}
		if rows.Scan(ptrs...) != nil {
			return ids
		}
		var id int64
		var command string
		for k, n := range names {
			switch n {
			case "Id":
				id, _ = strconv.ParseInt(string(raw[k]), 10, 64)
			case "Command":
				command = string(raw[k])
			}
		}
		if strings.HasPrefix(command, "Binlog Dump") && id > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// Bootstrap prepares a freshly created instance: over the socket as root
// (empty password), with binary logging off so that no GTID is spent, it
// creates AdminUser@'127.%' with all privileges and AdminPassword, and sets
// the same password for root@localhost.
func (i *Instance) Bootstrap(ctx context.Context) error {
	i.mu.Lock()
	done := i.bootstrapped
	i.mu.Unlock()
	if done {
		return nil
	}
	if i.AdminPassword == "" {
		return fmt.Errorf("%s: Bootstrap needs AdminPassword (Create sets one)", i)
	}
	conn, err := mysql.NewConnector(i.rootSocketConfig())
	if err != nil {
		return fmt.Errorf("%s: %w", i, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: bootstrap: connect as root over %s: %w", i, i.SocketPath(), err)
	}
	defer c.Close()
	steps := []struct {
		what, query string
		args        []any
	}{
		{"turn off binary logging for the session", "SET SESSION sql_log_bin = 0", nil},
		{"create the admin account", "CREATE USER ?@'127.%' IDENTIFIED BY ?", []any{i.User(), i.AdminPassword}},
		{"grant the admin account all privileges", "GRANT ALL PRIVILEGES ON *.* TO ?@'127.%' WITH GRANT OPTION", []any{i.User()}},
		{"set root@localhost's password", "ALTER USER 'root'@'localhost' IDENTIFIED BY ?", []any{i.AdminPassword}},
	}
	for _, s := range steps {
		if _, err := c.ExecContext(ctx, s.query, s.args...); err != nil {
			return fmt.Errorf("%s: bootstrap: %s: %w", i, s.what, err)
		}
	}
	i.mu.Lock()
	i.bootstrapped = true
	i.mu.Unlock()
	return nil
}

// Exec runs statements one by one as the admin account.
func (i *Instance) Exec(ctx context.Context, stmts ...string) error {
	db, err := i.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %s: %w", i, redact(q), err)
		}
	}
	return nil
}

// QueryString returns the first column of the first row of q as a string
// ("" for NULL or no rows), as the admin account.
func (i *Instance) QueryString(ctx context.Context, q string, args ...any) (string, error) {
	db, err := i.Open("")
	if err != nil {
		return "", err
	}
	defer db.Close()
	row, err := queryRow(ctx, db, q, args...)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", i, redact(q), err)
	}
	if len(row) == 0 {
		return "", nil
	}
	return row[0].value, nil
}

// column is one named value of a row; value is "" for NULL.
type column struct{ name, value string }

// queryRow returns the first row of q (nil when there is none).
func queryRow(ctx context.Context, db *sql.DB, q string, args ...any) ([]column, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	raw := make([]sql.RawBytes, len(names))
	ptrs := make([]any, len(names))
	for k := range raw {
		ptrs[k] = &raw[k]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make([]column, len(names))
	for k, n := range names {
		row[k] = column{name: n, value: string(raw[k])}
	}
	return row, rows.Close()
}

// secretLiteral matches the string literal after IDENTIFIED BY or PASSWORD
// in a statement.
var secretLiteral = regexp.MustCompile(`(?i)(IDENTIFIED(\s+WITH\s+\S+)?\s+BY|PASSWORD\s*=?)\s*('([^'\\]|\\.|'')*'|"([^"\\]|\\.|"")*")`)

// redact hides password literals in a statement quoted in an error.
func redact(q string) string {
	return secretLiteral.ReplaceAllString(q, "$1 '***'")
}
