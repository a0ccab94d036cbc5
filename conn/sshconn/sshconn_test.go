package sshconn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/conn/sshtest"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// keyConfig returns a Config that logs into srv with its client key.
func keyConfig(t *testing.T, srv *sshtest.Server) sshconn.Config {
	return sshconn.Config{
		Host:           srv.Host,
		Port:           srv.Port,
		User:           sshtest.User,
		KeyFile:        srv.ClientKeyFile(t),
		KnownHostsFile: srv.KnownHostsFile(t),
		ConnectTimeout: testTimeout,
	}
}

// dial connects or fails the test; the client is closed at the end.
func dial(t *testing.T, cfg sshconn.Config) *sshconn.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := sshconn.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// run runs cmd or fails the test on a Go error.
func run(t *testing.T, c *sshconn.Client, cmd sshconn.Command) sshconn.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := c.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("Run(%q): %v", cmd.Cmd, err)
	}
	return res
}

// token returns a random marker for finding our own processes with pgrep.
func token(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(b[0])<<16|int(b[1])<<8|int(b[2])) + "." + strconv.Itoa(int(b[3]))
}

// pgrep returns the pids whose command line matches pattern.
func pgrep(t *testing.T, pattern string) []string {
	t.Helper()
	pids, err := pgrepErr(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func pgrepErr(pattern string) ([]string, error) {
	out, err := exec.Command("pgrep", "-f", pattern).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil, nil // nothing matched
	}
	if err != nil {
		return nil, fmt.Errorf("pgrep -f %q: %v", pattern, err)
	}
	return strings.Fields(string(out)), nil
}

// pollPgrep polls (every 10 ms, for at most testTimeout) until a process
// matches pattern. Safe to call from any goroutine.
func pollPgrep(pattern string) bool {
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if pids, err := pgrepErr(pattern); err != nil || len(pids) > 0 {
			return err == nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// waitFor polls cond every 10 ms until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", testTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunOutputAndExitCode(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	res := run(t, c, sshconn.Command{Cmd: "echo out; echo err >&2; exit 3"})
	want := sshconn.Result{Stdout: "out\n", Stderr: "err\n", ExitCode: 3}
	if res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}
	if res := run(t, c, sshconn.Command{Cmd: "true"}); res.ExitCode != 0 {
		t.Errorf("true: exit %d", res.ExitCode)
	}
	// Larger than the SSH windows, on both streams.
	res = run(t, c, sshconn.Command{Cmd: "head -c 3000000 /dev/zero | tr '\\0' x; head -c 500000 /dev/zero | tr '\\0' y >&2"})
	if len(res.Stdout) != 3000000 || strings.Trim(res.Stdout, "x") != "" || len(res.Stderr) != 500000 {
		t.Errorf("large output: %d stdout bytes, %d stderr bytes", len(res.Stdout), len(res.Stderr))
	}
}

func TestRunStdin(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	in := "s3cr3t'\"$(x)\nsecond line\n\x00binary"
	res := run(t, c, sshconn.Command{Cmd: "cat", Stdin: []byte(in)})
	if res.Stdout != in {
		t.Errorf("cat echoed %q, want %q", res.Stdout, in)
	}
	// Without Stdin the command sees end of input at once.
	if res := run(t, c, sshconn.Command{Cmd: "wc -c"}); strings.TrimSpace(res.Stdout) != "0" {
		t.Errorf("wc -c without stdin: %q", res.Stdout)
	}
}

func TestPasswordAuth(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	cfg.KeyFile = ""
	cfg.Password = srv.Password()
	c := dial(t, cfg)
	if res := run(t, c, sshconn.Command{Cmd: "echo ok"}); res.Stdout != "ok\n" {
		t.Errorf("got %q", res.Stdout)
	}
}

func TestRunKilledBySignalIsAnError(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := c.Run(ctx, sshconn.Command{Cmd: "echo before; kill -TERM $$; echo after"})
	var ke *sshconn.KilledError
	if !errors.As(err, &ke) || ke.Signal != "TERM" {
		t.Fatalf("want a KilledError for TERM, got %v", err)
	}
	if res.ExitCode != 128+15 || res.Stdout != "before\n" {
		t.Errorf("got %+v, want exit 143 and the output before the kill", res)
	}
	if !strings.Contains(err.Error(), "echo before;") || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("error should name the command and the host: %v", err)
	}
}

func TestRunCancelKillsRemoteCommand(t *testing.T) {
	t.Run("server honours signals", func(t *testing.T) { testRunCancel(t, false) })
	// Like OpenSSH in root sessions: only the kill(1) in a second session
	// can stop the command.
	t.Run("server ignores signals", func(t *testing.T) { testRunCancel(t, true) })
}

func testRunCancel(t *testing.T, ignoreSignals bool) {
	srv := sshtest.Start(t)
	srv.SetIgnoreSignals(ignoreSignals)
	c := dial(t, keyConfig(t, srv))
	tok := token(t)
	secret := "stdin-secret-" + tok
	// The shell stays the parent of sleep, so killing only the shell would
	// leave sleep running: the whole process group must go.
	cmd := sshconn.Command{Cmd: "sleep 900" + tok + "; echo after", Stdin: []byte(secret)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	found := make(chan bool, 1)
	go func() {
		defer cancel()
		found <- pollPgrep("sleep 900" + tok)
	}()
	res, err := c.Run(ctx, cmd)
	if !<-found {
		t.Fatalf("the remote sleep never showed up in pgrep (Run: %v)", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v (%+v)", err, res)
	}
	if !strings.Contains(err.Error(), "sleep 900"+tok) || strings.Contains(err.Error(), secret) {
		t.Errorf("error must name the command and not contain stdin: %v", err)
	}
	waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep 900"+tok)) == 0 })
	// The connection is still usable.
	if res := run(t, c, sshconn.Command{Cmd: "echo still"}); res.Stdout != "still\n" {
		t.Errorf("after cancel: %q", res.Stdout)
	}
}

func TestRunDeadlineBeforeStart(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Run(ctx, sshconn.Command{Cmd: "true"}); !errors.Is(err, context.Canceled) {
		t.Errorf("want context.Canceled, got %v", err)
	}
	if _, err := c.Run(context.Background(), sshconn.Command{Cmd: "  "}); err == nil {
		t.Error("an empty command must be refused")
	}
}

func TestStartReportsPid(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	p, err := c.Start(ctx, sshconn.Command{Cmd: `printf '%s\n' "it's" '$HOME'; cat; exit 4`, Stdin: []byte("in\n")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid <= 0 {
		t.Errorf("pid %d", p.Pid)
	}
	res, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := sshconn.Result{Stdout: "it's\n$HOME\nin\n", ExitCode: 4}
	if res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}

	// A long-running command: the pid is the process running it (the
	// server is local, so /proc shows it), and it leads its process group.
	tok := token(t)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	p, err = c.Start(ctx2, sshconn.Command{Cmd: "sleep 901" + tok + "; echo after"})
	if err != nil {
		t.Fatal(err)
	}
	// The pid is printed just before the exec, so poll until it shows.
	waitFor(t, "pid "+strconv.Itoa(p.Pid)+" to run the command", func() bool {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cmdline")
		return strings.Contains(string(cmdline), "sleep 901"+tok)
	})
	if pgid, err := syscallGetpgid(p.Pid); err != nil || pgid != p.Pid {
		t.Errorf("pid %d has process group %d (%v), want it to lead its group", p.Pid, pgid, err)
	}
	cancel2()
	if _, err := p.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("want context.Canceled, got %v", err)
	}
	waitFor(t, "the started sleep to be gone", func() bool { return len(pgrep(t, "sleep 901"+tok)) == 0 })
}

func TestProcessSignal(t *testing.T) {
	srv := sshtest.Start(t)
	srv.SetIgnoreSignals(true) // Signal must not depend on signal requests
	c := dial(t, keyConfig(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := c.Start(ctx, sshconn.Command{
		Cmd: "trap 'echo got-term; exit 7' TERM; touch " + sshconn.ShellQuote(ready) + "; while :; do sleep 0.01; done",
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the trap to be installed", func() bool { _, err := os.Stat(ready); return err == nil })
	if err := p.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 || !strings.Contains(res.Stdout, "got-term") {
		t.Errorf("got %+v, want exit 7 from the trap", res)
	}
}

func TestConcurrentRuns(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			res, err := c.Run(ctx, sshconn.Command{Cmd: "echo " + strconv.Itoa(i)})
			if err == nil && res.Stdout != strconv.Itoa(i)+"\n" {
				err = fmt.Errorf("run %d: stdout %q", i, res.Stdout)
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

func TestUnknownHostKeyRefused(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(cfg.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sshconn.Dial(context.Background(), cfg)
	var hke *sshconn.HostKeyError
	if !errors.As(err, &hke) || !hke.Unknown() {
		t.Fatalf("want an unknown-host HostKeyError, got %v", err)
	}
	msg := err.Error()
	t.Logf("unknown host: %s", msg)
	for _, want := range []string{
		sshtest.User + "@" + srv.Addr(),
		"unknown",
		cfg.KnownHostsFile,
		"ssh-keyscan -p " + strconv.Itoa(srv.Port) + " 127.0.0.1 >> " + cfg.KnownHostsFile,
		hke.Fingerprint,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if !isHostKey(srv, hke.Fingerprint) {
		t.Errorf("fingerprint %s is not one of the server's keys", hke.Fingerprint)
	}
	if srv.Connections() != 0 {
		t.Errorf("the server saw %d authenticated connections", srv.Connections())
	}
}

func TestMissingKnownHostsFile(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "nope")
	_, err := sshconn.Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Errorf("want a missing-file error with a hint, got %v", err)
	}
	cfg.KnownHostsFile = ""
	if _, err := sshconn.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "KnownHostsFile") {
		t.Errorf("an empty KnownHostsFile must be refused, got %v", err)
	}
}

func isHostKey(srv *sshtest.Server, fp string) bool {
	for _, k := range srv.HostKeys() {
		if ssh.FingerprintSHA256(k) == fp {
			return true
		}
	}
	return false
}

// writeKnownHosts writes one line per key for addr.
func writeKnownHosts(t *testing.T, addr string, keys ...ssh.PublicKey) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChangedHostKeyRefused(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KnownHostsFile = writeKnownHosts(t, srv.Addr(), other)
	_, err = sshconn.Dial(context.Background(), cfg)
	var hke *sshconn.HostKeyError
	if !errors.As(err, &hke) || hke.Unknown() {
		t.Fatalf("want a changed-key HostKeyError, got %v", err)
	}
	msg := err.Error()
	t.Logf("changed key: %s", msg)
	for _, want := range []string{
		srv.Addr(), "HOST KEY CHANGED", cfg.KnownHostsFile + ":1", ssh.FingerprintSHA256(other),
		ssh.FingerprintSHA256(srv.HostKey()), "ssh-keygen -R", "ssh-keyscan -p " + strconv.Itoa(srv.Port),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
}

func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	// The server holds ed25519 and ECDSA keys; x/crypto would pick ECDSA
	// by default and call an ed25519-only entry a changed key
	// (golang/go#49631). Either single entry must work.
	srv := sshtest.Start(t)
	for i, k := range srv.HostKeys() {
		cfg := keyConfig(t, srv)
		cfg.KnownHostsFile = writeKnownHosts(t, srv.Addr(), k)
		c := dial(t, cfg)
		if res := run(t, c, sshconn.Command{Cmd: "echo " + k.Type()}); res.Stdout != k.Type()+"\n" {
			t.Errorf("key %d (%s): %q", i, k.Type(), res.Stdout)
		}
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	srv := sshtest.Start(t)
	pw := "P@ss w0rd'\"$(id);`x`\n" + token(t)
	srv.SetPassword(pw)
	base := keyConfig(t, srv)
	base.KeyFile = ""
	base.Password = pw

	// A connection that works, for the Run/DialTCP error cases.
	c := dial(t, base)

	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts but never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()

	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want an error", what)
			return
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v %#v", err, err)} {
			if strings.Contains(s, pw) || strings.Contains(s, "P@ss") {
				t.Errorf("%s: error reveals the password: %s", what, s)
			}
		}
		if !strings.Contains(err.Error(), sshtest.User+"@") {
			t.Errorf("%s: error does not name the user: %v", what, err)
		}
	}
	ctx := context.Background()

	wrong := base
	wrong.Password = pw + "x"
	_, err = sshconn.Dial(ctx, wrong)
	check("wrong password", err)
	if err != nil && !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("want an authentication error, got %v", err)
	}

	unknown := base
	unknown.KnownHostsFile = writeKnownHosts(t, "127.0.0.1:1")
	_, err = sshconn.Dial(ctx, unknown)
	check("unknown host", err)

	refused := base
	refused.Port = freePort(t)
	_, err = sshconn.Dial(ctx, refused)
	check("connection refused", err)

	hung := base
	hung.Port = silent.Addr().(*net.TCPAddr).Port
	hung.KnownHostsFile = writeKnownHosts(t, silent.Addr().String(), srv.HostKey())
	hung.ConnectTimeout = 100 * time.Millisecond
	_, err = sshconn.Dial(ctx, hung)
	check("handshake timeout", err)

	invalid := base
	invalid.User = ""
	_, err = sshconn.Dial(ctx, invalid)
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("invalid config: %v", err)
	}

	_, err = c.DialTCP(ctx, "127.0.0.1:"+strconv.Itoa(freePort(t)))
	check("forward refused", err)

	for _, s := range []string{fmt.Sprint(base), fmt.Sprintf("%v %+v %#v %s", base, base, base, base), fmt.Sprintf("%+v", &base)} {
		if strings.Contains(s, "P@ss") {
			t.Errorf("formatting a Config reveals the password: %s", s)
		}
	}
}

// syscallGetpgid returns the process group of a local pid.
func syscallGetpgid(pid int) (int, error) { return syscall.Getpgid(pid) }

// freePort returns a loopback port with nothing listening on it.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestDialBoundedByContextAndTimeout(t *testing.T) {
	srv := sshtest.Start(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	cfg := keyConfig(t, srv)
	cfg.Port = silent.Addr().(*net.TCPAddr).Port
	cfg.KnownHostsFile = writeKnownHosts(t, silent.Addr().String(), srv.HostKey())

	// The context's deadline stops a handshake that never progresses.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := sshconn.Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: want DeadlineExceeded, got %v", err)
	}
	// So does cancelling it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := sshconn.Dial(ctx2, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("ctx cancel: want Canceled, got %v", err)
	}
	// And ConnectTimeout without any context deadline.
	cfg.ConnectTimeout = 100 * time.Millisecond
	_, err = sshconn.Dial(context.Background(), cfg)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ConnectTimeout") ||
		!strings.Contains(err.Error(), "handshake") {
		t.Errorf("ConnectTimeout: want a handshake timeout, got %v", err)
	}
}

func TestKeyFileChecks(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	if err := os.Chmod(cfg.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sshconn.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key must be refused with a hint, got %v", err)
	}
	if err := os.WriteFile(cfg.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sshconn.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), cfg.KeyFile) {
		t.Errorf("a bad key must be refused naming the file, got %v", err)
	}
}

// echoServer listens on 127.0.0.1 and echoes each connection.
func echoServer(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return ln
}

func TestDialTCPThroughForward(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	ln := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := c.DialTCP(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != ln.Addr().String() {
		t.Errorf("RemoteAddr %s, want %s", conn.RemoteAddr(), ln.Addr())
	}
	msg := strings.Repeat("through the tunnel ", 20000)
	go func() { _, _ = io.WriteString(conn, msg) }()
	buf := make([]byte, len(msg))
	if err := conn.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %v", err)
	}
	// Deadlines work: nothing more arrives, so a short read deadline
	// expires with a timeout error.
	if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := conn.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("want a timeout, got %v", err)
	}
	// The connection survives a timeout.
	if err := conn.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, buf[:5]); err != nil || string(buf[:5]) != "again" {
		t.Errorf("after timeout: %q %v", buf[:5], err)
	}
	// Closing the client ends the forwarded connection.
	_ = c.Close()
	if _, err := io.ReadFull(conn, buf[:1]); err == nil {
		t.Error("read after Client.Close succeeded")
	}
}

func TestDialTCPRefused(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, err := c.DialTCP(context.Background(), addr)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("want an error naming both ends, got %v", err)
	}
}

func TestPoolReusesAndRedials(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	var pool sshconn.Pool
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var wg sync.WaitGroup
	clients := make([]*sshconn.Client, 10)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pool.Get(ctx, cfg)
			if err != nil {
				t.Error(err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != clients[0] {
			t.Fatal("concurrent Gets returned different clients")
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("%d connections for one key, want 1", n)
	}

	// Another user is another key.
	other := cfg
	other.User = "nobody-" + hex.EncodeToString([]byte{1})
	if _, err := pool.Get(ctx, other); err == nil {
		t.Error("unknown user logged in")
	}

	// A dead connection is replaced.
	srv.CloseConnections()
	waitFor(t, "the client to notice the dropped connection", func() bool { return clients[0].Err() != nil })
	c2, err := pool.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c2 == clients[0] || srv.Connections() != 2 {
		t.Errorf("want a new connection, have %d", srv.Connections())
	}
	if res := run(t, c2, sshconn.Command{Cmd: "echo again"}); res.Stdout != "again\n" {
		t.Errorf("got %q", res.Stdout)
	}

	if err := pool.Close(); err != nil {
		t.Error(err)
	}
	if c2.Err() == nil {
		t.Error("Pool.Close left a client open")
	}
	if _, err := pool.Get(ctx, cfg); err == nil {
		t.Error("Get after Close succeeded")
	}
}

// TestPoolReplace: Replace closes the client it is given and dials a new
// one; given one the pool has replaced already, it returns the current
// client without dialling again.
func TestPoolReplace(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	var pool sshconn.Pool
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c1, err := pool.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := pool.Replace(ctx, cfg, c1)
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c1 || c1.Err() == nil || srv.Connections() != 2 {
		t.Fatalf("Replace: same client %v, old one still open %v, %d connections (want a new client, the old closed, 2)", c2 == c1, c1.Err() == nil, srv.Connections())
	}
	c3, err := pool.Replace(ctx, cfg, c1) // a second caller that also saw c1 fail
	if err != nil {
		t.Fatal(err)
	}
	if c3 != c2 || c2.Err() != nil || srv.Connections() != 2 {
		t.Errorf("Replace of a client replaced already: got another client %v, closed %v, %d connections (want c2, open, 2)", c3 != c2, c2.Err() != nil, srv.Connections())
	}
	if res := run(t, c3, sshconn.Command{Cmd: "echo ok"}); res.Stdout != "ok\n" {
		t.Errorf("got %q", res.Stdout)
	}
}

// TestNotStartedOnADeadConnection: a command on a connection the server
// has closed fails marked ErrNotStarted (it was never sent); a command that
// ran and failed is not marked.
func TestNotStartedOnADeadConnection(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.Run(ctx, sshconn.Command{Cmd: "kill -TERM $$"}); err == nil || errors.Is(err, sshconn.ErrNotStarted) {
		t.Errorf("a command killed on the host: want an error not marked ErrNotStarted, got %v", err)
	}
	srv.CloseConnections()
	waitFor(t, "the client to notice the dropped connection", func() bool { return c.Err() != nil })
	_, err := c.Run(ctx, sshconn.Command{Cmd: "echo never"})
	if !errors.Is(err, sshconn.ErrNotStarted) {
		t.Fatalf("want ErrNotStarted, got %v", err)
	}
	if _, err := c.Start(ctx, sshconn.Command{Cmd: "echo never"}); !errors.Is(err, sshconn.ErrNotStarted) {
		t.Fatalf("Start: want ErrNotStarted, got %v", err)
	}
}

func TestRefusingHost(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	srv.SetRefuse(true)
	_, err := sshconn.Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("want connection refused naming the host, got %v", err)
	}
	srv.SetRefuse(false)
	c := dial(t, cfg)
	if res := run(t, c, sshconn.Command{Cmd: "echo back"}); res.Stdout != "back\n" {
		t.Errorf("got %q", res.Stdout)
	}
}

func TestKeepalive(t *testing.T) {
	srv := sshtest.Start(t)
	cfg := keyConfig(t, srv)
	cfg.KeepaliveInterval = 10 * time.Millisecond
	c := dial(t, cfg)
	waitFor(t, "three keepalives", func() bool { return srv.Keepalives() >= 3 })
	if c.Err() != nil {
		t.Errorf("keepalives answered with failure must not close the client: %v", c.Err())
	}

	// Through a proxy that stops forwarding, keepalives go unanswered and
	// the client closes itself.
	proxy := newFreezingProxy(t, srv.Addr())
	cfg.Port = proxy.port
	cfg.KnownHostsFile = writeKnownHosts(t, "127.0.0.1:"+strconv.Itoa(proxy.port), srv.HostKey())
	c2 := dial(t, cfg)
	run(t, c2, sshconn.Command{Cmd: "true"})
	proxy.freeze()
	waitFor(t, "the client to give up on a silent peer", func() bool { return c2.Err() != nil })
	if !strings.Contains(c2.Err().Error(), "keepalive") {
		t.Errorf("want a keepalive error, got %v", c2.Err())
	}
}

// freezingProxy forwards TCP connections until freeze is called, after which
// it silently drops all bytes, as a dead network path would.
type freezingProxy struct {
	port   int
	mu     sync.Mutex
	frozen bool
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &freezingProxy{port: ln.Addr().(*net.TCPAddr).Port}
	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		connsMu.Lock()
		defer connsMu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 32*1024)
		for {
			n, err := src.Read(buf)
			if err != nil {
				dst.Close()
				return
			}
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if !frozen {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
	}
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, a, b)
			connsMu.Unlock()
			go pump(a, b)
			go pump(b, a)
		}
	}()
	return p
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

func TestCancelManyWithoutSignals(t *testing.T) {
	// All kills go through batched kill(1) sessions.
	srv := sshtest.Start(t)
	srv.SetIgnoreSignals(true)
	c := dial(t, keyConfig(t, srv))
	tok := token(t)
	pattern := "sleep 905" + tok
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 { // more than the 8 command slots: 4 wait for a slot
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

func TestSignalEndedProcess(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	p, err := c.Start(context.Background(), sshconn.Command{Cmd: "exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	err = p.Signal(ssh.SIGTERM)
	if err == nil || !strings.Contains(err.Error(), "kill -s TERM -- -"+strconv.Itoa(p.Pid)) {
		t.Errorf("signalling an ended process: want a kill error, got %v", err)
	}
	if err := p.Signal("TERM; rm -rf /"); err == nil || !strings.Contains(err.Error(), "invalid signal name") {
		t.Errorf("want an invalid signal name error, got %v", err)
	}
}

func TestSessionRefusalsAreRetried(t *testing.T) {
	// The server allows two sessions at once; the client's own cap is
	// higher, so it must wait out the refusals.
	srv := sshtest.Start(t)
	srv.SetMaxSessions(2)
	c := dial(t, keyConfig(t, srv))
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			res, err := c.Run(ctx, sshconn.Command{Cmd: "sleep 0.05; echo " + strconv.Itoa(i)})
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
