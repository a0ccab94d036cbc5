package sshd_test

import (
	"context"
	"net"
	"testing"

	"github.com/flowdba/flow/lab/sshd"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

// BenchmarkStartStop measures writing keys and config, starting sshd until
// all three addresses answer, and stopping it.
func BenchmarkStartStop(b *testing.B) {
	sshdtest.Start(b) // installs OpenSSH if needed
	ln, err := net.Listen("tcp", "127.0.0.215:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx := context.Background()
	dir := b.TempDir()
	for b.Loop() {
		s, err := sshd.Start(ctx, dir, []string{"127.0.0.215", "127.0.0.216", "127.0.0.217"}, port)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
