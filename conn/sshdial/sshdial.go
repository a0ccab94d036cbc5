// Package sshdial is the engine's SSH dialer: it adapts conn/sshconn's
// client to what the engine and the ssh step need from an SSH connection
// (engine.SSHClient, engine.SSHStarter), so that neither the engine nor
// the step types depend on the SSH library, and sshconn knows nothing of
// the engine. The CLI installs Dial as the runner's SSHDial.
//
// The engine keeps one client per endpoint for the whole run, which may
// last hours; a connection that ends meanwhile (a network blip, sshd
// restarted on the host, an idle timeout of a firewall) is replaced by a
// new one at the next command, and a command that could not be sent
// because of it is sent once more on the new connection.
package sshdial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/engine"
)

// sshAdapter makes an endpoint's sshconn connection an engine.SSHClient
// and an engine.SSHStarter. Its pool holds the one live connection and
// dials a new one when it has ended.
type sshAdapter struct {
	cfg  sshconn.Config
	pool *sshconn.Pool
	// reconnected is engine.SSHParams.Reconnected (may be nil).
	reconnected func(why error)

	mu   sync.Mutex
	last *sshconn.Client // the connection the last command went to
}

// use records that c serves the next command and reports a replaced one:
// why it was replaced, else how it ended.
func (a *sshAdapter) use(c *sshconn.Client, why error) *sshconn.Client {
	a.mu.Lock()
	prev := a.last
	a.last = c
	a.mu.Unlock()
	if prev != nil && prev != c && a.reconnected != nil {
		if why == nil {
			why = prev.Err()
		}
		a.reconnected(why)
	}
	return c
}

// on runs fn with the endpoint's live connection. When fn's command was not
// sent (sshconn.ErrNotStarted: the connection had ended, or its server
// kept refusing sessions), it is sent once more on a new connection; a
// failure to connect again is added to fn's error.
func on[T any](ctx context.Context, a *sshAdapter, fn func(*sshconn.Client) (T, error)) (T, error) {
	c, err := a.pool.Get(ctx, a.cfg)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(a.use(c, nil))
	if err == nil || !errors.Is(err, sshconn.ErrNotStarted) || ctx.Err() != nil {
		return v, err
	}
	c2, derr := a.pool.Replace(ctx, a.cfg, c)
	if derr != nil {
		return v, fmt.Errorf("%w; connecting again: %v", err, derr)
	}
	return fn(a.use(c2, err))
}

func (a *sshAdapter) Run(ctx context.Context, cmd string, stdin []byte) (string, string, int, error) {
	res, err := on(ctx, a, func(c *sshconn.Client) (sshconn.Result, error) {
		return c.Run(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	})
	return res.Stdout, res.Stderr, res.ExitCode, err
}

func (a *sshAdapter) Start(ctx context.Context, cmd string, stdin []byte) (engine.SSHProcess, error) {
	p, err := on(ctx, a, func(c *sshconn.Client) (*sshconn.Process, error) {
		return c.Start(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	})
	if err != nil {
		return nil, err
	}
	return sshProcess{p}, nil
}

func (a *sshAdapter) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return on(ctx, a, func(c *sshconn.Client) (net.Conn, error) { return c.DialTCP(ctx, addr) })
}

func (a *sshAdapter) Close() error { return a.pool.Close() }

// sshProcess makes an sshconn.Process an engine.SSHProcess.
type sshProcess struct{ p *sshconn.Process }

func (p sshProcess) Pid() int { return p.p.Pid }

func (p sshProcess) Wait() (string, string, int, error) {
	res, err := p.p.Wait()
	return res.Stdout, res.Stderr, res.ExitCode, err
}

// Dial is the engine's SSH dialer (an engine.SSHDialer): it opens an
// sshconn client (host keys always verified against the connection's
// known_hosts file), which is replaced by a new one when it ends (p's
// Reconnected is told). The client is also an engine.SSHStarter.
func Dial(ctx context.Context, p engine.SSHParams) (engine.SSHClient, error) {
	a := &sshAdapter{cfg: sshconn.Config{Host: p.Host, Port: p.Port, User: p.User, KeyFile: p.KeyFile,
		Password: p.Password, KnownHostsFile: p.KnownHosts, ConnectTimeout: p.ConnectTimeout}, pool: &sshconn.Pool{},
		reconnected: p.Reconnected}
	c, err := a.pool.Get(ctx, a.cfg)
	if err != nil {
		return nil, err
	}
	a.use(c, nil)
	return a, nil
}
