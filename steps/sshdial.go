package steps

import (
	"context"
	"net"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/engine"
)

// SSHStarter is implemented by SSH clients that can start a command and
// tell its remote pid before it ends (DialSSH's clients do). The ssh step
// uses it for state-changing commands, so that the journal knows which
// remote process to wait for if flow dies while the command runs.
type SSHStarter interface {
	// Start starts cmd as engine.SSHClient.Run does and returns once the
	// remote pid is known; ctx governs the command's whole life.
	Start(ctx context.Context, cmd string, stdin []byte) (SSHProcess, error)
}

// SSHProcess is a remote command started by SSHStarter.Start.
type SSHProcess interface {
	// Pid is the remote process id of the shell running the command; it
	// leads the command's process group.
	Pid() int
	// Wait waits for the command to end and reports it as
	// engine.SSHClient.Run does.
	Wait() (stdout, stderr string, rc int, err error)
}

// sshAdapter makes an sshconn.Client an engine.SSHClient and an
// SSHStarter.
type sshAdapter struct{ c *sshconn.Client }

func (a sshAdapter) Run(ctx context.Context, cmd string, stdin []byte) (string, string, int, error) {
	res, err := a.c.Run(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	return res.Stdout, res.Stderr, res.ExitCode, err
}

func (a sshAdapter) Start(ctx context.Context, cmd string, stdin []byte) (SSHProcess, error) {
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

// sshProcess makes an sshconn.Process an SSHProcess.
type sshProcess struct{ p *sshconn.Process }

func (p sshProcess) Pid() int { return p.p.Pid }

func (p sshProcess) Wait() (string, string, int, error) {
	res, err := p.p.Wait()
	return res.Stdout, res.Stderr, res.ExitCode, err
}

// DialSSH is the engine's SSH dialer: it opens an sshconn client (host
// keys always verified against the connection's known_hosts file). The
// client is also an SSHStarter.
func DialSSH(ctx context.Context, p engine.SSHParams) (engine.SSHClient, error) {
	c, err := sshconn.Dial(ctx, sshconn.Config{Host: p.Host, Port: p.Port, User: p.User, KeyFile: p.KeyFile,
		Password: p.Password, KnownHostsFile: p.KnownHosts, ConnectTimeout: p.ConnectTimeout})
	if err != nil {
		return nil, err
	}
	return sshAdapter{c}, nil
}
