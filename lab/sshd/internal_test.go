package sshd

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartFailureNamesLog checks the message of a start failure: the
// waiting error, the log file and its last lines.
func TestStartFailureNamesLog(t *testing.T) {
	dir := t.TempDir()
	s := &Proc{LogFile: filepath.Join(dir, "sshd.log"), Addrs: []string{"127.0.0.1"}}
	if err := os.WriteFile(s.LogFile, []byte("Server listening\nfatal: Cannot bind any address.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := s.startFailed(errors.New("sshd pid 42 exited before answering on 127.0.0.1"))
	for _, want := range []string{"pid 42 exited", s.LogFile, "fatal: Cannot bind any address."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestWaitReadyNoticesExit runs waitReady against a process that exits at
// once (no sshd listens): it must report the exit, not wait for its timeout.
func TestWaitReadyNoticesExit(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Addrs: []string{"127.0.0.1"}, Pid: cmd.Process.Pid, exited: make(chan struct{})}
	s := &Server{Addrs: p.Addrs, Port: freeLoopbackPort(t), Procs: []*Proc{p}}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	err := s.waitReady(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "exited before answering") {
		t.Errorf("want an early-exit error, got %v", err)
	}
}

// freeLoopbackPort returns a port nothing listens on at 127.0.0.1.
func freeLoopbackPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
