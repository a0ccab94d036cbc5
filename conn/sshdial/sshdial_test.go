package sshdial_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/conn/sshdial"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/lab/sshd"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

// addr is this test's sshd address (the other packages' tests use others).
const addr = "127.0.0.231"

func params(srv *sshd.Server) engine.SSHParams {
	return engine.SSHParams{Host: addr, Port: srv.Port, User: srv.User, KeyFile: srv.ClientKeyFile,
		KnownHosts: srv.KnownHostsFile, ConnectTimeout: 10 * time.Second}
}

// dropSessions SIGKILLs the sshd processes serving the connections to srv
// (the listener's children), as a network failure or a restart of sshd on
// the host would end them, and returns how many there were.
func dropSessions(t *testing.T, srv *sshd.Server) int {
	t.Helper()
	n := 0
	for _, p := range srv.Procs {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(p.Pid)).Output()
		for _, f := range strings.Fields(string(out)) {
			if err := exec.Command("kill", "-9", f).Run(); err != nil {
				t.Fatalf("kill %s: %v", f, err)
			}
			n++
		}
	}
	return n
}

// TestDroppedConnectionIsReplaced: the engine keeps the client Dial
// returned for the whole run; once its connection was dropped by the
// server side, the next commands (Run, Start) still run, on a new
// connection, host key verified again. Before, every later command of
// the run failed with "open session: EOF" (a poll for 3 minutes, until
// its timeout).
func TestDroppedConnectionIsReplaced(t *testing.T) {
	srv := sshdtest.Start(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var whys []error
	p := params(srv)
	p.Reconnected = func(why error) { whys = append(whys, why) }
	cl, err := sshdial.Dial(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.(interface{ Close() error }).Close()
	if out, _, rc, err := cl.Run(ctx, "echo one", nil); err != nil || rc != 0 || out != "one\n" {
		t.Fatalf("first command: %q rc %d: %v", out, rc, err)
	}
	for round := range 2 {
		if n := dropSessions(t, srv); n == 0 {
			t.Fatal("no sshd process served the connection")
		}
		out, _, rc, err := cl.Run(ctx, "echo again", nil)
		if err != nil || rc != 0 || out != "again\n" {
			t.Fatalf("round %d: the command after the dropped connection: %q rc %d: %v", round, out, rc, err)
		}
	}
	dropSessions(t, srv)
	proc, err := cl.(engine.SSHStarter).Start(ctx, "echo started", nil)
	if err != nil {
		t.Fatalf("Start after the dropped connection: %v", err)
	}
	if out, _, rc, err := proc.Wait(); err != nil || rc != 0 || out != "started\n" || proc.Pid() <= 0 {
		t.Fatalf("Start after the dropped connection: %q rc %d pid %d: %v", out, rc, proc.Pid(), err)
	}
	// each replacement was reported with a reason (EOF, a reset, the
	// failed session: which one depends on when the client noticed)
	if len(whys) != 3 {
		t.Fatalf("Reconnected was called %d times (%v), want 3", len(whys), whys)
	}
	for _, why := range whys {
		if why == nil {
			t.Error("Reconnected got no reason")
		}
	}
}

// TestHostDownIsAnError: with the connection dropped and sshd stopped, the
// command fails at once naming the host and the refused reconnection.
func TestHostDownIsAnError(t *testing.T) {
	srv := sshdtest.Start(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := sshdial.Dial(ctx, params(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.(interface{ Close() error }).Close()
	dropSessions(t, srv)
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = cl.Run(ctx, "echo never", nil)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want an error naming %s and the refused connection, got %v", addr, err)
	}
}
