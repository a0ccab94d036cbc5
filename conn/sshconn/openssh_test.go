package sshconn_test

// Tests against a real OpenSSH server (lab/sshd). They install OpenSSH when
// it is missing and the tests run as root (as in CI), and fail, not skip,
// when it cannot be had.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/lab/sshd"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

// Loopback addresses for these tests' sshd (the MySQL lab uses low ones).
var opensshAddrs = []string{"127.0.0.221", "127.0.0.222", "127.0.0.223"}

// opensshConfig returns a Config for srv at address ip.
func opensshConfig(srv *sshd.Server, ip string) sshconn.Config {
	return sshconn.Config{
		Host: ip, Port: srv.Port, User: srv.User,
		KeyFile: srv.ClientKeyFile, KnownHostsFile: srv.KnownHostsFile, ConnectTimeout: testTimeout,
	}
}

func TestOpenSSHRun(t *testing.T) {
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	res := run(t, c, sshconn.Command{Cmd: "echo out; echo err >&2; exit 5"})
	if want := (sshconn.Result{Stdout: "out\n", Stderr: "err\n", ExitCode: 5}); res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}
	in := "secret'\"$(x)\nline2\n"
	if res := run(t, c, sshconn.Command{Cmd: "cat", Stdin: []byte(in)}); res.Stdout != in || res.ExitCode != 0 {
		t.Errorf("cat: %+v", res)
	}
	if res := run(t, c, sshconn.Command{Cmd: "id -un"}); strings.TrimSpace(res.Stdout) != srv.User {
		t.Errorf("id -un: %q, want %q", res.Stdout, srv.User)
	}
	// A quoted hostile value stays one argument through the login shell.
	hostileArg := "a'b; echo INJECTED $(id) `id`\n"
	res = run(t, c, sshconn.Command{Cmd: "printf '%s' " + sshconn.ShellQuote(hostileArg)})
	if res.Stdout != hostileArg {
		t.Errorf("quoted argument came back as %q", res.Stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := c.Run(ctx, sshconn.Command{Cmd: "kill -TERM $$"})
	var ke *sshconn.KilledError
	if !errors.As(err, &ke) || ke.Signal != "TERM" {
		t.Errorf("a command killed by TERM: want a KilledError, got %v", err)
	}
}

func TestOpenSSHCancelKillsRemoteSleep(t *testing.T) {
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	tok := token(t)
	pattern := "sleep 902" + tok
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	found := make(chan bool, 1)
	go func() {
		defer cancel()
		found <- pollPgrep(pattern)
	}()
	// sleep runs as a child of the shell: killing the shell alone would
	// leave it behind.
	_, err := c.Run(ctx, sshconn.Command{Cmd: pattern + "; echo after"})
	if !<-found {
		t.Fatalf("the remote %q never showed up in pgrep (Run: %v)", pattern, err)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), pattern) {
		t.Fatalf("want context.Canceled naming the command, got %v", err)
	}
	waitFor(t, "the remote sleep to be gone (pgrep -f "+pattern+")", func() bool { return len(pgrep(t, pattern)) == 0 })
}

func TestOpenSSHStartPid(t *testing.T) {
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	tok := token(t)
	pattern := "sleep 903" + tok
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := c.Start(ctx, sshconn.Command{Cmd: pattern + "; echo after"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pid "+strconv.Itoa(p.Pid)+" to run the command", func() bool {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cmdline")
		return strings.Contains(string(cmdline), pattern)
	})
	if pgid, err := syscall.Getpgid(p.Pid); err != nil || pgid != p.Pid {
		t.Errorf("pid %d is in process group %d (%v): want it to lead its group", p.Pid, pgid, err)
	}
	// A signal reaches the whole group (sshd uses killpg).
	if err := p.Signal("KILL"); err != nil {
		t.Fatal(err)
	}
	_, err = p.Wait()
	var ke *sshconn.KilledError
	if !errors.As(err, &ke) || ke.Signal != "KILL" {
		t.Errorf("want a KilledError for KILL, got %v", err)
	}
	waitFor(t, "the group's sleep to be gone", func() bool { return len(pgrep(t, pattern)) == 0 })

	// Output after the pid line is kept, exit status reported.
	p, err = c.Start(ctx, sshconn.Command{Cmd: "echo one; echo two >&2; exit 6"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait()
	if want := (sshconn.Result{Stdout: "one\n", Stderr: "two\n", ExitCode: 6}); err != nil || res != want {
		t.Errorf("got %+v, %v; want %+v", res, err, want)
	}
}

func TestOpenSSHDialTCP(t *testing.T) {
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	ln := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := c.DialTCP(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := strings.Repeat("via sshd ", 50000)
	go func() { _, _ = io.WriteString(conn, msg) }()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo through sshd: %v", err)
	}
}

func TestOpenSSHKnownHostsSeveralAddresses(t *testing.T) {
	srv := sshdtest.Start(t, opensshAddrs...)
	// The generated known_hosts verifies every address.
	for _, a := range opensshAddrs {
		c := dial(t, opensshConfig(srv, a))
		res := run(t, c, sshconn.Command{Cmd: "echo $SSH_CONNECTION"})
		if !strings.Contains(res.Stdout, " "+a+" ") {
			t.Errorf("%s: SSH_CONNECTION %q", a, res.Stdout)
		}
	}
	keys, err := srv.HostKeys()
	if err != nil {
		t.Fatal(err)
	}
	// Only the first address's ed25519 key is known. sshd also has an
	// ECDSA key, which x/crypto would prefer (golang/go#49631).
	only := writeKnownHosts(t, srv.Addr(opensshAddrs[0]), keys[0])
	cfg := opensshConfig(srv, opensshAddrs[0])
	cfg.KnownHostsFile = only
	c := dial(t, cfg)
	run(t, c, sshconn.Command{Cmd: "true"})

	cfg = opensshConfig(srv, opensshAddrs[1])
	cfg.KnownHostsFile = only
	_, err = sshconn.Dial(context.Background(), cfg)
	var hke *sshconn.HostKeyError
	if !errors.As(err, &hke) || !hke.Unknown() || !strings.Contains(err.Error(), srv.Addr(opensshAddrs[1])) ||
		!strings.Contains(err.Error(), "ssh-keyscan -p "+strconv.Itoa(srv.Port)+" "+opensshAddrs[1]) {
		t.Errorf("%s is not in the file: want an unknown-host error, got %v", opensshAddrs[1], err)
	}

	// The second address listed with another sshd's key: a changed key.
	other := sshdtest.Start(t, opensshAddrs[2])
	otherKeys, err := other.HostKeys()
	if err != nil {
		t.Fatal(err)
	}
	cfg = opensshConfig(srv, opensshAddrs[1])
	cfg.KnownHostsFile = writeKnownHosts(t, srv.Addr(opensshAddrs[1]), otherKeys[0])
	_, err = sshconn.Dial(context.Background(), cfg)
	if !errors.As(err, &hke) || hke.Unknown() || !strings.Contains(err.Error(), "HOST KEY CHANGED") {
		t.Errorf("want a changed-key error, got %v", err)
	}
}

func TestOpenSSHManyConcurrentSessions(t *testing.T) {
	// OpenSSH allows 10 sessions per connection (MaxSessions); the client
	// queues beyond its own cap instead of failing.
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			res, err := c.Run(ctx, sshconn.Command{Cmd: "sleep 0.2; echo " + strconv.Itoa(i)})
			if err == nil && res.Stdout != strconv.Itoa(i)+"\n" {
				err = fmt.Errorf("run %d: %q", i, res.Stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestOpenSSHCancelManyAtOnce(t *testing.T) {
	// Eight commands fill the command sessions; cancelling them all needs
	// eight kill(1) sessions too, which must fit in OpenSSH's MaxSessions.
	srv := sshdtest.Start(t, opensshAddrs[0])
	c := dial(t, opensshConfig(srv, opensshAddrs[0]))
	tok := token(t)
	pattern := "sleep 904" + tok
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Run(ctx, sshconn.Command{Cmd: pattern + "; echo after"})
			errs <- err
		}()
	}
	waitFor(t, "eight remote sleeps", func() bool { return len(pgrep(t, pattern)) >= 8 })
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("want context.Canceled, got %v", err)
		}
	}
	waitFor(t, "all remote sleeps to be gone", func() bool { return len(pgrep(t, pattern)) == 0 })
}

// TestOpenSSHPasswordLogin logs in to a real OpenSSH server by password
// alone (no key file), as sites do: commands run, the remote pid of a
// started command is known, a TCP tunnel works, a wrong password is refused
// without showing it, and the host key is verified as with keys.
func TestOpenSSHPasswordLogin(t *testing.T) {
	pw := "pw'$(x) " + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := sshdtest.StartWith(t, sshd.Options{Password: pw}, opensshAddrs[2])
	cfg := sshconn.Config{Host: opensshAddrs[2], Port: srv.Port, User: srv.User, Password: pw,
		KnownHostsFile: srv.KnownHostsFile, ConnectTimeout: testTimeout}
	c := dial(t, cfg)
	if res := run(t, c, sshconn.Command{Cmd: "id -un"}); strings.TrimSpace(res.Stdout) != srv.User {
		t.Errorf("id -un: %q", res.Stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, err := c.Start(ctx, sshconn.Command{Cmd: "sleep 0.2; echo done"})
	if err != nil || p.Pid <= 0 {
		t.Fatalf("start: pid %v, %v", p, err)
	}
	if res, err := p.Wait(); err != nil || res.Stdout != "done\n" {
		t.Errorf("wait: %+v, %v", res, err)
	}
	nc, err := c.DialTCP(ctx, srv.Addr(opensshAddrs[2]))
	if err != nil {
		t.Fatalf("tunnel to the sshd itself: %v", err)
	}
	line := make([]byte, 7)
	if _, err := io.ReadFull(nc, line); err != nil || string(line) != "SSH-2.0" {
		t.Errorf("through the tunnel: %q, %v", line, err)
	}
	nc.Close()

	bad := cfg
	bad.Password = pw + "x"
	if c2, err := sshconn.Dial(ctx, bad); err == nil {
		c2.Close()
		t.Fatal("a wrong password logged in")
	} else if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("wrong password: %v", err)
	}
	unknown := cfg
	unknown.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(unknown.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c2, err := sshconn.Dial(ctx, unknown); err == nil {
		c2.Close()
		t.Fatal("an unknown host key was accepted with a password")
	}
}
