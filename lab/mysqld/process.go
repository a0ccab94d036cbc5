package mysqld

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Default bounds for waits whose ctx has no deadline.
const (
	// DefaultReadyTimeout bounds WaitReady and WaitRestart.
	DefaultReadyTimeout = 90 * time.Second
	// DefaultStopTimeout bounds the clean shutdown in Stop.
	DefaultStopTimeout = 60 * time.Second
	// killTimeout bounds waiting for processes after SIGKILL.
	killTimeout = 10 * time.Second
	// pollInterval is the pause between two checks of a bounded poll.
	pollInterval = 50 * time.Millisecond
)

// process is a program this Instance started: mysqld_safe, or mysqld when Bare.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit status, valid after done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start launches the instance in the background: `BASEDIR/bin/mysqld_safe
// --defaults-file=my<port>.conf` (or bare mysqld when Bare), in its own
// process group, with standard output and error appended to OutLog(). It
// does not wait for the server: call WaitReady.
func (i *Instance) Start(ctx context.Context) error {
	if err := i.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(i.ConfigPath()); err != nil {
		return fmt.Errorf("%s: no option file %s: call Create first", i, i.ConfigPath())
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc != nil && !i.proc.exited() {
		return fmt.Errorf("%s is already running (pid %d): call Stop first", i, i.proc.cmd.Process.Pid)
	}
	if pid := i.livePIDFromFile(); pid > 0 {
		return fmt.Errorf("%s is already running as pid %d (started elsewhere?): stop it with `kill %d` or Stop", i, pid, pid)
	}
	ln, err := net.Listen("tcp", i.Addr())
	if err != nil {
		return fmt.Errorf("%s: the address is taken by another process (%v): pick another host or port", i, err)
	}
	_ = ln.Close()

	out, err := os.OpenFile(i.OutLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("%s: %w", i, err)
	}
	prog := i.Install.Bin("mysqld_safe")
	if i.Bare {
		prog = i.Install.Bin("mysqld")
	}
	cmd := exec.Command(prog, "--defaults-file="+i.ConfigPath())
	cmd.Dir = i.Dir()
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a terminal's Ctrl-C to the test run does not
	// reach it, as for a daemon on a production node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("%s: start %s: %w", i, prog, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	i.proc = p
	return nil
}

// SupervisorPID returns the pid of the mysqld_safe this Instance started, or
// 0 when none is running (also when Bare).
func (i *Instance) SupervisorPID() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.Bare || i.proc == nil || i.proc.exited() {
		return 0
	}
	return i.proc.cmd.Process.Pid
}

// MysqldPID returns the pid of the running mysqld of this instance, read
// from its pid file and checked against /proc.
func (i *Instance) MysqldPID() (int, error) {
	b, err := os.ReadFile(i.PIDFile())
	if err != nil {
		return 0, fmt.Errorf("%s: no pid file: %w", i, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: bad pid file %s", i, i.PIDFile())
	}
	if !i.ours(pid) {
		return 0, fmt.Errorf("%s: pid %d from %s is not running", i, pid, i.PIDFile())
	}
	return pid, nil
}

func (i *Instance) livePIDFromFile() int {
	pid, err := i.MysqldPID()
	if err != nil {
		return 0
	}
	return pid
}

// ours reports whether pid is a live (not zombie) process started with this
// instance's option file, so that we never signal somebody else's process.
func (i *Instance) ours(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if k := bytes.LastIndexByte(stat, ')'); k < 0 || k+2 >= len(stat) || stat[k+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("--defaults-file="+i.ConfigPath()+"\x00"))
}

// exited reports whether a process we identified earlier has finished
// exiting: gone from /proc, or a zombie. (While a killed process exits, its
// command line is already empty but it is not yet a zombie: judging by
// identity would call it gone too early.)
func exited(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	k := bytes.LastIndexByte(stat, ')')
	return k < 0 || k+2 >= len(stat) || stat[k+2] == 'Z' || stat[k+2] == 'X'
}

// Running reports whether our mysqld_safe or this instance's mysqld is alive.
func (i *Instance) Running() bool {
	i.mu.Lock()
	p := i.proc
	i.mu.Unlock()
	if p != nil && !p.exited() {
		return true
	}
	return i.livePIDFromFile() > 0
}

// startedProcessGone reports whether the process we started has exited, and
// how.
func (i *Instance) startedProcessGone() (bool, error) {
	i.mu.Lock()
	p := i.proc
	i.mu.Unlock()
	if p == nil || !p.exited() {
		return false, nil
	}
	return true, p.err
}

// WaitReady polls until the server accepts a connection (as the admin
// account, or as root over the socket before Bootstrap). It is bounded by
// ctx, or by DefaultReadyTimeout when ctx has no deadline, and fails early
// when the started process exits.
func (i *Instance) WaitReady(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, DefaultReadyTimeout)
	defer cancel()
	start := time.Now()
	var last error
	for {
		if last = i.ping(ctx); last == nil {
			return nil
		}
		if gone, how := i.startedProcessGone(); gone && i.livePIDFromFile() == 0 {
			return fmt.Errorf("%s exited before accepting connections (%v): see %s and %s\n%s", i, how, i.ErrorLog(), i.OutLog(), tailFile(i.ErrorLog(), 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not accept connections within %s (last error: %v): see %s\n%s", i, time.Since(start).Round(time.Millisecond), last, i.ErrorLog(), tailFile(i.ErrorLog(), 15))
		case <-time.After(pollInterval):
		}
	}
}

// WaitRestart waits until a mysqld other than pid old runs for this instance
// and accepts connections: what mysqld_safe does after mysqld exits for a
// restart (as at the end of CLONE INSTANCE) or dies. It is bounded by ctx, or
// by DefaultReadyTimeout when ctx has no deadline.
func (i *Instance) WaitRestart(ctx context.Context, old int) error {
	ctx, cancel := withDefaultTimeout(ctx, DefaultReadyTimeout)
	defer cancel()
	start := time.Now()
	restarted := false
	replaced := func() bool {
		if pid := i.livePIDFromFile(); pid > 0 && pid != old {
			return true
		}
		if !restarted && i.refusedByStaleSocketLock() {
			// start it once more, as an operator would after removing
			// the lock; a second refusal is reported
			_ = os.Remove(i.SocketPath() + ".lock")
			restarted = i.Start(ctx) == nil
		}
		return false
	}
	if !poll(ctx, replaced) {
		return fmt.Errorf("%s: mysqld %d was not replaced by a new mysqld within %s (is it supervised by mysqld_safe?): see %s\n%s", i, old, time.Since(start).Round(time.Millisecond), i.OutLog(), tailFile(i.ErrorLog(), 15))
	}
	return i.WaitReady(ctx)
}

// refusedByStaleSocketLock reports whether the last mysqld start of this
// instance gave up because the socket's lock file (SocketPath()+".lock")
// names a live pid, and nothing of the instance runs any more. A killed
// mysqld leaves its lock file behind with its pid; mysqld_safe removes the
// socket before the restart but not the lock. The restarted mysqld refuses
// when the kernel has handed that pid to another process or thread in the
// meantime ("Another process with pid N is using unix socket file"), and
// mysqld_safe stops trying: with pid_max at 32768 and a busy machine the
// pids wrap within minutes, so the lab sees it now and then.
func (i *Instance) refusedByStaleSocketLock() bool {
	log, err := os.ReadFile(i.ErrorLog())
	if err != nil {
		return false
	}
	k := bytes.LastIndex(log, []byte("starting as process"))
	if k < 0 || !bytes.Contains(log[k:], []byte("is using unix socket file")) {
		return false
	}
	if b, err := os.ReadFile(i.SocketPath() + ".lock"); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && i.ours(pid) {
			return false // a mysqld of this instance holds it: not stale
		}
	}
	return !i.anyProcessOfOurs()
}

// anyProcessOfOurs reports whether any live process (mysqld_safe or mysqld,
// whoever started it) runs with this instance's option file.
func (i *Instance) anyProcessOfOurs() bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell: assume something runs
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && i.ours(pid) {
			return true
		}
	}
	return false
}

// Stop shuts the server down cleanly (SQL SHUTDOWN, or SIGTERM to mysqld when
// no connection works) and waits for mysqld and our mysqld_safe to exit. If
// they are still there when ctx (or DefaultStopTimeout) runs out, it kills
// them with SIGKILL, only these pids, and returns an error. Stopping a
// stopped instance does nothing.
func (i *Instance) Stop(ctx context.Context) error {
	if !i.Running() {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultStopTimeout)
	defer cancel()
	start := time.Now()
	mysqld := i.livePIDFromFile()
	if err := i.shutdownSQL(ctx); err != nil && mysqld > 0 {
		_ = syscall.Kill(mysqld, syscall.SIGTERM)
	}
	gone := func() bool {
		stopped, _ := i.startedProcessGone()
		i.mu.Lock()
		none := i.proc == nil
		i.mu.Unlock()
		return (none || stopped) && (mysqld == 0 || exited(mysqld)) && i.livePIDFromFile() == 0
	}
	if poll(ctx, gone) {
		return nil
	}
	// Kill the supervisor first, so that it does not start mysqld again.
	var killed []string
	if pid := i.SupervisorPID(); pid > 0 {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, "mysqld_safe "+strconv.Itoa(pid))
		}
	}
	for _, pid := range []int{mysqld, i.livePIDFromFile()} {
		if pid > 0 && i.ours(pid) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, "mysqld "+strconv.Itoa(pid))
		}
	}
	if len(killed) == 0 && i.Bare {
		i.mu.Lock()
		if i.proc != nil && !i.proc.exited() {
			_ = i.proc.cmd.Process.Kill()
			killed = append(killed, "mysqld "+strconv.Itoa(i.proc.cmd.Process.Pid))
		}
		i.mu.Unlock()
	}
	kctx, kcancel := context.WithTimeout(context.Background(), killTimeout)
	defer kcancel()
	if !poll(kctx, gone) {
		return fmt.Errorf("%s did not stop within %s and is still running after SIGKILL to %s: check `ps` for %s", i, time.Since(start).Round(time.Millisecond), strings.Join(killed, ", "), i.ConfigPath())
	}
	return fmt.Errorf("%s did not shut down cleanly within %s; killed %s: see %s", i, time.Since(start).Round(time.Millisecond), strings.Join(killed, ", "), i.ErrorLog())
}

// poll calls done every pollInterval until it returns true (result true) or
// ctx ends (result false).
func poll(ctx context.Context, done func() bool) bool {
	for {
		if done() {
			return true
		}
		select {
		case <-ctx.Done():
			return done()
		case <-time.After(pollInterval):
		}
	}
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
