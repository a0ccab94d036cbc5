package sshconn

import (
	"context"
	"fmt"
	"io"
	"net"
)

// DialTCP opens a TCP connection from the remote host to addr (host:port as
// the remote host resolves it, typically 127.0.0.1:PORT for a service that
// listens only on the remote loopback), tunnelled through this SSH
// connection. ctx bounds the opening only. The connection supports deadlines
// (the SSH library's own forwarded connections do not), so it can be used by
// go-sql-driver with readTimeout/writeTimeout; see the package
// documentation for registering it with mysql.RegisterDialContext.
func (c *Client) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	ch, err := c.conn.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: forward to %s: %w", c.name, addr, c.connErr(err))
	}
	return newTunnelConn(ch, addr), nil
}

// tunnelAddr is the forwarded destination, reported as RemoteAddr.
type tunnelAddr string

// Network is "tcp".
func (a tunnelAddr) Network() string { return "tcp" }

// String is the forwarded host:port.
func (a tunnelAddr) String() string { return string(a) }

// tunnelConn is one end of an in-memory pipe whose other end is pumped to
// and from the SSH channel; the pipe gives it working deadlines.
type tunnelConn struct {
	net.Conn
	remote tunnelAddr
}

// RemoteAddr is the forwarded destination.
func (t *tunnelConn) RemoteAddr() net.Addr { return t.remote }

// newTunnelConn connects ch to a pipe and returns the pipe's user end. Closing
// either side closes the other: the pumps end and close what they hold.
func newTunnelConn(ch net.Conn, addr string) net.Conn {
	user, inner := net.Pipe()
	go func() {
		_, _ = io.Copy(inner, ch) // remote → user
		_ = inner.Close()
	}()
	go func() {
		_, _ = io.Copy(ch, inner) // user → remote
		_ = ch.Close()
	}()
	return &tunnelConn{Conn: user, remote: tunnelAddr(addr)}
}
