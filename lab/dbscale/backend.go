package dbscale

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Endpoint is a MySQL server (a node or another router) and the account to
// use on it. Its String form never shows the password.
type Endpoint struct {
	// Host and Port are the server's loopback address.
	Host string
	Port int
	// User and Password are the account to log in with.
	User     string
	Password string
	// DB is the default schema for the connection ("" for none).
	DB string
	// Timeout bounds dialing and the handshake; ReadTimeout, when not zero,
	// bounds every read of the connection (probes set it; forwarding does
	// not, so long statements are not cut).
	Timeout     time.Duration
	ReadTimeout time.Duration
}

// Addr returns host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// String names the endpoint as user@host:port.
func (e Endpoint) String() string { return e.User + "@" + e.Addr() }

// Backend opens connections to MySQL nodes and to other routers. The
// emulator uses MySQLBackend; unit tests fake it in-process.
type Backend interface {
	Connect(ctx context.Context, ep Endpoint) (BackendConn, error)
}

// BackendConn is one connection to a MySQL server. It is used by one
// goroutine at a time.
type BackendConn interface {
	// Execute runs one statement with the text protocol. A statement error
	// is a *mysql.MyError; any other error means the connection is broken.
	Execute(query string) (*mysql.Result, error)
	// UseDB changes the default schema (COM_INIT_DB).
	UseDB(db string) error
	// ServerVersion is the version from the server's handshake.
	ServerVersion() string
	Close() error
}

// MySQLBackend connects to real MySQL servers with go-mysql's client.
type MySQLBackend struct{}

// Connect dials ep and logs in. caching_sha2_password works without TLS
// (the client asks the server for its RSA key).
func (MySQLBackend) Connect(ctx context.Context, ep Endpoint) (BackendConn, error) {
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := &net.Dialer{Timeout: timeout}
	setTimeouts := func(c *client.Conn) error {
		c.ReadTimeout = ep.ReadTimeout
		c.WriteTimeout = timeout
		return nil
	}
	// The handshake has no deadline of its own: bound it with one on the
	// socket, lifted once logged in when no read timeout is wanted.
	var raw net.Conn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			raw = nc
			if dl, ok := ctx.Deadline(); ok {
				_ = nc.SetDeadline(dl)
			}
		}
		return nc, err
	}
	c, err := client.ConnectWithDialer(ctx, "tcp", ep.Addr(), ep.User, ep.Password, ep.DB, dial, setTimeouts)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		_ = raw.SetDeadline(time.Time{})
	}
	return mysqlConn{c}, nil
}

// mysqlConn adapts *client.Conn to BackendConn.
type mysqlConn struct{ c *client.Conn }

func (m mysqlConn) Execute(q string) (*mysql.Result, error) { return m.c.Execute(q) }
func (m mysqlConn) UseDB(db string) error                   { return m.c.UseDB(db) }
func (m mysqlConn) ServerVersion() string                   { return m.c.GetServerVersion() }
func (m mysqlConn) Close() error                            { return m.c.Close() }
