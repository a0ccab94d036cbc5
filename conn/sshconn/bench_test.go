package sshconn_test

import (
	"context"
	"testing"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/conn/sshtest"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

// benchRun measures one command round trip (new session, exec, exit status)
// on an established connection.
func benchRun(b *testing.B, c *sshconn.Client) {
	ctx := context.Background()
	for b.Loop() {
		res, err := c.Run(ctx, sshconn.Command{Cmd: "true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

func BenchmarkRunSSHTest(b *testing.B) {
	srv := sshtest.Start(b)
	benchRun(b, dialB(b, sshconn.Config{Host: srv.Host, Port: srv.Port, User: sshtest.User,
		KeyFile: srv.ClientKeyFile(b), KnownHostsFile: srv.KnownHostsFile(b)}))
}

func BenchmarkRunOpenSSH(b *testing.B) {
	srv := sshdtest.Start(b, opensshAddrs[0])
	benchRun(b, dialB(b, opensshConfig(srv, opensshAddrs[0])))
}

// BenchmarkDialOpenSSH measures TCP connect, handshake, host key check and
// public key login.
func BenchmarkDialOpenSSH(b *testing.B) {
	srv := sshdtest.Start(b, opensshAddrs[0])
	cfg := opensshConfig(srv, opensshAddrs[0])
	for b.Loop() {
		c, err := sshconn.Dial(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

func dialB(b *testing.B, cfg sshconn.Config) *sshconn.Client {
	c, err := sshconn.Dial(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}
