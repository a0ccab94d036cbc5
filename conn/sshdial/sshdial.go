// Package sshdial is the engine's SSH dialer: it adapts conn/sshconn's
// client to what the engine and the ssh step need from an SSH connection
// (engine.SSHClient, engine.SSHStarter), so that neither the engine nor
// the step types depend on the SSH library, and sshconn knows nothing of
// the engine. The CLI installs Dial as the runner's SSHDial.
package sshdial

import (
	"context"
	"net"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/engine"
)

// sshAdapter makes an sshconn.Client an engine.SSHClient and an
// engine.SSHStarter.
type sshAdapter struct{ c *sshconn.Client }

func (a sshAdapter) Run(ctx context.Context, cmd string, stdin []byte) (string, string, int, error) {
	res, err := a.c.Run(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	return res.Stdout, res.Stderr, res.ExitCode, err
}

func (a sshAdapter) Start(ctx context.Context, cmd string, stdin []byte) (engine.SSHProcess, error) {
	p, err := a.c.Start(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	if err != nil {
		return nil, err
	}
	return sshProcess{p}, nil
}

func (a sshAdapter) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return a.c.DialTCP(ctx, addr)
}

func (a sshAdapter) Close() error { return a.c.Close() }

// sshProcess makes an sshconn.Process an engine.SSHProcess.
type sshProcess struct{ p *sshconn.Process }

func (p sshProcess) Pid() int { return p.p.Pid }

func (p sshProcess) Wait() (string, string, int, error) {
	res, err := p.p.Wait()
	return res.Stdout, res.Stderr, res.ExitCode, err
}

// Dial is the engine's SSH dialer (an engine.SSHDialer): it opens an
// sshconn client (host keys always verified against the connection's
// known_hosts file). The client is also an engine.SSHStarter.
func Dial(ctx context.Context, p engine.SSHParams) (engine.SSHClient, error) {
	c, err := sshconn.Dial(ctx, sshconn.Config{Host: p.Host, Port: p.Port, User: p.User, KeyFile: p.KeyFile,
		Password: p.Password, KnownHostsFile: p.KnownHosts, ConnectTimeout: p.ConnectTimeout})
	if err != nil {
		return nil, err
	}
	return sshAdapter{c}, nil
}
