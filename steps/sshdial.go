package steps

import (
	"context"
	"net"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/engine"
)

// sshAdapter makes an sshconn.Client an engine.SSHClient.
type sshAdapter struct{ c *sshconn.Client }

func (a sshAdapter) Run(ctx context.Context, cmd string, stdin []byte) (string, string, int, error) {
	res, err := a.c.Run(ctx, sshconn.Command{Cmd: cmd, Stdin: stdin})
	return res.Stdout, res.Stderr, res.ExitCode, err
}

func (a sshAdapter) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return a.c.DialTCP(ctx, addr)
}

func (a sshAdapter) Close() error { return a.c.Close() }

// DialSSH is the engine's SSH dialer: it opens an sshconn client (host
// keys always verified against the connection's known_hosts file).
func DialSSH(ctx context.Context, p engine.SSHParams) (engine.SSHClient, error) {
	c, err := sshconn.Dial(ctx, sshconn.Config{Host: p.Host, Port: p.Port, User: p.User, KeyFile: p.KeyFile,
		Password: p.Password, KnownHostsFile: p.KnownHosts, ConnectTimeout: p.ConnectTimeout})
	if err != nil {
		return nil, err
	}
	return sshAdapter{c}, nil
}
