package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Command is a command line for /bin/sh on the remote host.
type Command struct {
	// Cmd is run as `/bin/sh -c Cmd` (see Client.Run). Quote interpolated
	// values with ShellQuote. Its first words appear in error messages, so
	// it must not contain secrets.
	Cmd string
	// Stdin is fed to the command, then closed. It may hold secrets: it is
	// never logged nor put into errors.
	Stdin []byte
}

// Result is what a remote command produced.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the command's exit status. A non-zero status is not a Go
	// error: the caller decides what it means. For a command killed by a
	// signal it is 128 plus the signal number, as in a shell; -1 when
	// unknown.
	ExitCode int
}

// KilledError reports a remote command that was ended by a signal.
type KilledError struct {
	// Signal is the SSH signal name, e.g. "KILL" or "TERM".
	Signal string
	// Msg is the server's explanation, often empty.
	Msg string
}

// Error names the signal.
func (e *KilledError) Error() string {
	s := "killed by signal " + e.Signal
	if e.Msg != "" {
		s += " (" + e.Msg + ")"
	}
	return s
}

// Process is a remote command started by Start (Run uses one internally).
type Process struct {
	// Pid is the remote process id of the shell running the command. sshd
	// starts every session in a new session and process group, so Pid
	// leads the command's process group: `kill -- -PID` reaches all of it.
	Pid int

	c      *Client
	label  string
	sess   *ssh.Session
	stdout lockedBuffer
	stderr lockedBuffer

	pidOnce  sync.Once
	pidReady chan struct{} // closed once the pid line was read (Pid set) or never will be
	pidLine  string        // the first line when it was not a pid

	waitDone chan struct{} // closed after sess.Wait returned and res/err are set
	res      Result
	err      error
	// killedFirst is set by finish when the command had been killed
	// because its context ended.
	killedFirst bool

	killOnce sync.Once
	killing  chan struct{} // closed when the context ended and the kill began (ctxErr set)
	killed   chan struct{} // closed when the kill is done
	ctxErr   error
}

// Run runs cmd and waits for it. A non-zero exit status is reported in
// Result.ExitCode with a nil error; a command that could not be run, was
// killed by a signal, or reported no status is an error.
//
// The remote login shell (which must be a POSIX shell) runs `echo $$; exec
// /bin/sh -c CMD`, so the command runs under /bin/sh whatever the login shell
// is, and its pid is known. When ctx ends first, the command's whole process
// group is killed: SIGKILL is sent both as an SSH signal request and by a
// `kill -s KILL -- -PID` in a second session (OpenSSH ignores signal requests
// in sessions of root logins), the session is closed, and the error wraps
// ctx.Err() and names the command's first words.
func (c *Client) Run(ctx context.Context, cmd Command) (Result, error) {
	p, err := c.start(ctx, cmd, false)
	if err != nil {
		return Result{}, err
	}
	return p.Wait()
}

// Start starts cmd as Run does and returns once its remote pid is known (see
// Process.Pid). ctx governs the command's whole life, as with Run: when it
// ends, the remote command is killed.
func (c *Client) Start(ctx context.Context, cmd Command) (*Process, error) {
	return c.start(ctx, cmd, true)
}

// start opens a session and starts the wrapped command. With waitPid it
// returns only once the pid is known.
func (c *Client) start(ctx context.Context, cmd Command, waitPid bool) (*Process, error) {
	p := &Process{
		c:        c,
		label:    firstWords(cmd.Cmd),
		pidReady: make(chan struct{}),
		waitDone: make(chan struct{}),
		killing:  make(chan struct{}),
		killed:   make(chan struct{}),
	}
	if strings.TrimSpace(cmd.Cmd) == "" {
		return nil, fmt.Errorf("ssh %s: run: empty command", c.name)
	}
	if err := ctx.Err(); err != nil {
		return nil, p.errorf("%w", err)
	}
	if err := c.acquire(ctx); err != nil {
		return nil, p.errorf("waiting for a free session: %w: %w", ErrNotStarted, err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		c.release()
		return nil, p.errorf("open session: %w: %w", ErrNotStarted, c.connErr(err))
	}
	p.sess = sess
	sess.Stdout = &pidSniffer{p: p}
	sess.Stderr = &p.stderr
	if cmd.Stdin != nil {
		sess.Stdin = bytes.NewReader(cmd.Stdin)
	}
	if err := sess.Start("echo $$; exec /bin/sh -c " + ShellQuote(cmd.Cmd)); err != nil {
		_ = sess.Close()
		c.release()
		return nil, p.errorf("start: %w", c.connErr(err))
	}
	go func() {
		err := sess.Wait()
		p.finish(err)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.kill(ctx.Err())
		case <-p.waitDone:
		}
	}()
	if !waitPid {
		return p, nil
	}
	select {
	case <-p.pidReady:
		if p.Pid > 0 {
			return p, nil
		}
		if p.pidLine != "" {
			p.kill(errors.New("the remote shell did not print its pid"))
			return nil, p.errorf("the remote shell printed %q instead of its pid (is the login shell a POSIX shell?)", firstWords(p.pidLine))
		}
		res, err := p.Wait() // ended without printing anything
		if err != nil {
			return nil, err
		}
		return nil, p.errorf("the command ended (exit status %d) before printing its pid; stderr: %s", res.ExitCode, firstLine(res.Stderr))
	case <-p.killed:
		_, err := p.Wait()
		return nil, err
	}
}

// Wait waits for the command to end and returns its output and status (see
// Run for which outcomes are errors). It may be called more than once.
func (p *Process) Wait() (Result, error) {
	select {
	case <-p.waitDone:
		if !p.killedFirst {
			return p.res, p.err
		}
	case <-p.killed:
	}
	// Killed because the context ended: give the session a bounded time to
	// wind down so that partial output is complete.
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-p.waitDone:
	case <-t.C:
	}
	return Result{Stdout: p.stdout.String(), Stderr: p.stderr.String(), ExitCode: -1}, p.errorf("%w", p.ctxErr)
}

// Signal sends sig (an SSH signal name such as "TERM") to the command's
// process group by running `kill -s SIG -- -PID` in a second session, which
// works where OpenSSH ignores signal requests (root logins). It waits for
// kill(1) to finish (at most 30 s); the command's end is reported by Wait.
func (p *Process) Signal(sig ssh.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := p.c.killGroup(ctx, p.Pid, sig); err != nil {
		return p.errorf("signal %s: %w", sig, err)
	}
	return nil
}

// kill ends the command after its context ended: SIGKILL as a signal
// request and by kill(1) on its process group, then closes the session.
// Bounded by closeWait.
func (p *Process) kill(reason error) {
	p.killOnce.Do(func() {
		p.ctxErr = reason
		close(p.killing)
		_ = p.sess.Signal(ssh.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		select {
		case <-p.pidReady:
		case <-p.waitDone:
		case <-ctx.Done():
		}
		pid := 0
		select {
		case <-p.pidReady:
			pid = p.Pid
		default:
		}
		select {
		case <-p.waitDone: // ended meanwhile: its pid may be reused
		default:
			if pid > 0 {
				_ = p.c.killGroup(ctx, pid, ssh.SIGKILL)
			}
		}
		_ = p.sess.Close()
		close(p.killed)
	})
}

// finish records the outcome of sess.Wait.
func (p *Process) finish(err error) {
	defer p.c.release()
	defer close(p.waitDone)
	p.pidOnce.Do(func() { close(p.pidReady) }) // no pid line came
	select {
	case <-p.killing:
		p.killedFirst = true
	default:
	}
	p.res = Result{Stdout: p.stdout.String(), Stderr: p.stderr.String()}
	var ee *ssh.ExitError
	var em *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		p.res.ExitCode = ee.ExitStatus()
		if ee.Signal() != "" {
			p.err = p.errorf("%w", &KilledError{Signal: ee.Signal(), Msg: ee.Msg()})
		}
	case errors.As(err, &em):
		p.res.ExitCode = -1
		p.err = p.errorf("the server reported no exit status (connection lost?): %w", p.c.connErr(err))
	default:
		p.res.ExitCode = -1
		p.err = p.errorf("%w", p.c.connErr(err))
	}
}

// ErrNotStarted marks a Run or Start that failed before its command was
// sent: no session could be had (the connection had ended, say), so the
// remote host never saw the command, and sending it again on a new
// connection cannot run it twice. A failure after the session opened (the
// exec request, the command's run) is not marked: the command may have run.
var ErrNotStarted = errors.New("the command was not sent")

// errorf formats an error naming the connection and the command's first
// words (never its stdin).
func (p *Process) errorf(format string, args ...any) error {
	return fmt.Errorf("ssh %s: run %q: "+format, append([]any{p.c.name, p.label}, args...)...)
}

// connErr adds the reason the connection ended, when it did.
func (c *Client) connErr(err error) error {
	if cerr := c.Err(); cerr != nil {
		return fmt.Errorf("%w (connection: %v)", err, cerr)
	}
	return err
}

// firstLine returns the first line of s, shortened.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns a copy of the contents.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// maxPidLine bounds the first line we buffer while looking for the pid.
const maxPidLine = 64

// pidSniffer takes the first stdout line as the process's pid and passes the
// rest to its stdout buffer.
type pidSniffer struct {
	p    *Process
	line []byte
	done bool
}

// Write is called by the session's stdout copy, one chunk at a time.
func (s *pidSniffer) Write(b []byte) (int, error) {
	n := len(b)
	if !s.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 && len(s.line)+len(b) <= maxPidLine {
			s.line = append(s.line, b...)
			return n, nil
		}
		if i < 0 { // far too long for a pid: keep it as output
			i = len(b)
		}
		s.line = append(s.line, b[:i]...)
		s.done = true
		if pid, err := strconv.Atoi(strings.TrimSpace(string(s.line))); err == nil && pid > 0 {
			s.p.Pid = pid
		} else {
			s.p.pidLine = string(s.line)
			_, _ = s.p.stdout.Write(s.line)
		}
		s.p.pidOnce.Do(func() { close(s.p.pidReady) })
		if i < len(b) {
			i++ // the newline
		}
		b = b[i:]
	}
	if len(b) == 0 {
		return n, nil
	}
	_, err := s.p.stdout.Write(b)
	return n, err
}
