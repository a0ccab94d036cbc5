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

// Command is a command line for the remote login shell.
type Command struct {
	// Cmd is run by the remote user's login shell (sh -c style). Quote
	// interpolated values with ShellQuote. Its first words appear in error
	// messages, so it must not contain secrets.
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
	// signal it is 128 plus the signal number, as in a shell.
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

// Process is a remote command started by Start.
type Process struct {
	// Pid is the remote process id of the shell running the command. It
	// leads the command's process group, so `kill -- -PID` on the host
	// reaches all of it.
	Pid int

	c      *Client
	label  string
	sess   *ssh.Session
	stdout lockedBuffer
	stderr lockedBuffer

	waitDone chan struct{} // closed after sess.Wait returned and res/err are set
	res      Result
	err      error
	// killedFirst is set by finish when the command had been killed
	// because its context ended.
	killedFirst bool

	killOnce sync.Once
	killed   chan struct{} // closed when the context ended and we killed the command
	ctxErr   error
}

// Run runs cmd and waits for it. A non-zero exit status is reported in
// Result.ExitCode with a nil error; a command that could not be run, was
// killed by a signal, or reported no status is an error. When ctx ends first,
// the remote command's process group is sent SIGKILL, the session is closed,
// and the error wraps ctx.Err().
func (c *Client) Run(ctx context.Context, cmd Command) (Result, error) {
	p, err := c.start(ctx, cmd, cmd.Cmd, false)
	if err != nil {
		return Result{}, err
	}
	return p.Wait()
}

// Start starts cmd and returns once its remote pid is known. The command
// runs in `/bin/sh -c` under the login shell, which first prints its pid and
// then execs it, so Process.Pid is the process running the command. ctx
// governs the command's whole life, as with Run: when it ends, the remote
// command is killed.
func (c *Client) Start(ctx context.Context, cmd Command) (*Process, error) {
	wrapped := "echo $$; exec /bin/sh -c " + ShellQuote(cmd.Cmd)
	return c.start(ctx, cmd, wrapped, true)
}

// start opens a session and starts line on it. With wantPid, the first
// stdout line is parsed as the pid and not kept in Stdout.
func (c *Client) start(ctx context.Context, cmd Command, line string, wantPid bool) (*Process, error) {
	p := &Process{
		c:        c,
		label:    firstWords(cmd.Cmd),
		waitDone: make(chan struct{}),
		killed:   make(chan struct{}),
	}
	if strings.TrimSpace(cmd.Cmd) == "" {
		return nil, fmt.Errorf("ssh %s: run: empty command", c.name)
	}
	if err := ctx.Err(); err != nil {
		return nil, p.errorf("%w", err)
	}
	if err := c.acquire(ctx); err != nil {
		return nil, p.errorf("waiting for a free session: %w", err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		c.release()
		return nil, p.errorf("open session: %w", err)
	}
	p.sess = sess
	var pidc chan string
	if wantPid {
		pidc = make(chan string, 1)
		sess.Stdout = &pidSniffer{out: &p.stdout, pid: pidc}
	} else {
		sess.Stdout = &p.stdout
	}
	sess.Stderr = &p.stderr
	if cmd.Stdin != nil {
		sess.Stdin = bytes.NewReader(cmd.Stdin)
	}
	if err := sess.Start(line); err != nil {
		_ = sess.Close()
		c.release()
		return nil, p.errorf("start: %w", err)
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
	if !wantPid {
		return p, nil
	}
	gotPid := func(s string) (*Process, error) {
		pid, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || pid <= 0 {
			p.kill(errors.New("the remote shell did not print its pid"))
			return nil, p.errorf("the remote shell printed %q instead of its pid (is the login shell a POSIX shell?)", firstWords(s))
		}
		p.Pid = pid
		return p, nil
	}
	select {
	case s := <-pidc:
		return gotPid(s)
	case <-p.waitDone:
		// The stdout copy has finished before Wait returned, so a pid
		// that was printed is in pidc by now.
		select {
		case s := <-pidc:
			return gotPid(s)
		default:
		}
		if p.err != nil {
			return nil, p.err
		}
		return nil, p.errorf("the command ended (exit status %d) before printing its pid; stderr: %s",
			p.res.ExitCode, firstLine(p.res.Stderr))
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

// Signal sends sig to the remote command's process group (OpenSSH delivers
// session signals with killpg). The command's end is reported by Wait.
func (p *Process) Signal(sig ssh.Signal) error {
	if err := p.sess.Signal(sig); err != nil {
		return p.errorf("signal %s: %w", sig, err)
	}
	return nil
}

// kill sends SIGKILL to the remote command and closes its session.
func (p *Process) kill(reason error) {
	p.killOnce.Do(func() {
		p.ctxErr = reason
		_ = p.sess.Signal(ssh.SIGKILL)
		_ = p.sess.Close()
		close(p.killed)
	})
}

// finish records the outcome of sess.Wait.
func (p *Process) finish(err error) {
	defer p.c.release()
	defer close(p.waitDone)
	select {
	case <-p.killed:
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

// errorf formats an error naming the connection and the command's first
// words (never its stdin).
func (p *Process) errorf(format string, args ...any) error {
	return fmt.Errorf("ssh %s: run %q: "+format, append([]any{p.c.name, p.label}, args...)...)
}

// connErr prefers the reason the connection ended, when it did.
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

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pidSniffer passes the first line written to it to pid and the rest to
// out.
type pidSniffer struct {
	out  *lockedBuffer
	pid  chan string
	line []byte
	done bool
}

func (s *pidSniffer) Write(b []byte) (int, error) {
	n := len(b)
	if !s.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(s.line)+len(b) > 64 { // not a pid: give up, keep the text
				s.done = true
				s.pid <- string(append(s.line, b...))
				_, err := s.out.Write(append(s.line, b...))
				return n, err
			}
			s.line = append(s.line, b...)
			return n, nil
		}
		s.line = append(s.line, b[:i]...)
		s.done = true
		s.pid <- string(s.line)
		b = b[i+1:]
	}
	if len(b) == 0 {
		return n, nil
	}
	_, err := s.out.Write(b)
	return n, err
}
