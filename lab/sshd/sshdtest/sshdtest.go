// Package sshdtest starts a real OpenSSH server (lab/sshd) for a test,
// installing OpenSSH first when it is missing and the test runs as root.
// A test that needs it fails, never skips, when it cannot be had.
package sshdtest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/sshd"
)

// installTimeout bounds apt-get update plus install.
const installTimeout = 5 * time.Minute

// Start makes sure OpenSSH is installed, then starts an sshd listening on
// one free port at every address of addrs (default 127.0.0.1) with its
// files in a temporary directory, and stops it when the test ends.
func Start(t testing.TB, addrs ...string) *sshd.Server {
	t.Helper()
	return StartWith(t, sshd.Options{}, addrs...)
}

// StartWith is Start with sshd options (e.g. a password to accept).
func StartWith(t testing.TB, o sshd.Options, addrs ...string) *sshd.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts OpenSSH's sshd: not run by -short (make unit); make test runs it")
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	if err := sshd.EnsureInstalled(ctx); err != nil {
		t.Fatalf("this test needs a real OpenSSH server and it cannot be installed: %v", err)
	}
	dir := t.TempDir()
	// A port free on the first address may be taken on another: retry a
	// few fresh ports before giving up.
	var lastErr error
	for range 5 {
		port, err := freePort(addrs[0])
		if err != nil {
			t.Fatalf("find a free port on %s: %v", addrs[0], err)
		}
		srv, err := sshd.StartWith(ctx, dir, addrs, port, o)
		if err == nil {
			t.Cleanup(func() {
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer scancel()
				if err := srv.Stop(sctx); err != nil {
					t.Errorf("stop sshd: %v", err)
				}
			})
			return srv
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "cannot listen") {
			break
		}
	}
	t.Fatalf("start sshd: %v", lastErr)
	return nil
}

// freePort asks the kernel for a free port on ip.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if port <= 0 {
		return 0, errors.New("no port assigned: " + strconv.Itoa(port))
	}
	return port, nil
}
