package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
)

// SSHStep runs a shell command on a host over SSH and captures stdout,
// stderr and the exit code.
//
// For a state-changing command (not `changes: false`) on a client that can
// tell the remote pid (engine.SSHStarter), the step records in the journal, as
// soon as the command started, the remote pid, the host and the process's
// start time (/proc/PID/stat field 22, with the host's boot id), so that a
// resumed run can tell whether that very process still runs (Join). A
// resumed run cannot tell what a shell command did, so it asks the operator
// unless the playbook says `resume:`.
type SSHStep struct {
	engine.SSHTarget `yaml:",inline"`
	// Command is the shell command; interpolated values are shell-quoted.
	Command *engine.Shell `yaml:"command"`
	// Stdin is fed to the command; it is the place for secrets (never on a
	// command line, never logged).
	Stdin *engine.Text `yaml:"stdin" flow:"secret"`
	// StdinSQL is SQL fed to the command (a mysql client): interpolated
	// values are quoted as SQL literals, secrets allowed, never logged.
	StdinSQL *engine.SQL `yaml:"stdin_sql"`
	// Changes says whether the command changes state (default true); a
	// read-only command runs during a dry run.
	Changes *bool `yaml:"changes"`
	// OKCodes are the exit codes that count as success (default [0]).
	OKCodes []int `yaml:"ok_codes"`
}

var sshOutput = types.Map{
	"stdout": types.String, "stderr": types.String, "rc": types.Int,
	"lines": types.Array(types.String), "target": types.String,
}

func init() {
	engine.Register(engine.StepType{
		Name:    "ssh",
		Summary: "run a shell command on a host over SSH (stdout, stderr, rc into the output)",
		Changes: "yes, unless `changes: false`",
		New:     func() engine.StepSpec { return &SSHStep{} },
		Output:  sshOutput,
	})
}

// Mutates is true unless the step says `changes: false`.
func (s *SSHStep) Mutates() bool { return s.Changes == nil || *s.Changes }

// Check requires a command.
func (s *SSHStep) Check(c *engine.Check) {
	if s.Command == nil {
		c.Errorf(c.StepPos(), "ssh step %q needs `command:`", c.StepName())
	}
	if s.Stdin != nil && s.StdinSQL != nil {
		c.Errorf(c.StepPos(), "ssh step %q: use `stdin:` or `stdin_sql:`, not both", c.StepName())
	}
}

// Render shows the command and its host.
func (s *SSHStep) Render(r *engine.Render) ([]engine.Action, error) {
	text := r.Shell(s.Command)
	if s.Stdin != nil || s.StdinSQL != nil {
		text += "   (with stdin: ******)"
	}
	return []engine.Action{{Target: r.SSHTarget(&s.SSHTarget), Text: text}}, nil
}

// Run runs the command.
func (s *SSHStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	cl, target, err := x.SSH(ctx, &s.SSHTarget)
	if err != nil {
		return nil, err
	}
	cmd, err := x.Shell(s.Command)
	if err != nil {
		return nil, err
	}
	var stdin []byte
	if s.Stdin != nil {
		in, err := x.Text(s.Stdin)
		if err != nil {
			return nil, err
		}
		stdin = []byte(in)
		x.AddSecret(strings.Fields(in)...)
	}
	if s.StdinSQL != nil {
		in, _, err := x.SQL(s.StdinSQL)
		if err != nil {
			return nil, err
		}
		stdin = []byte(in)
	}
	x.Sent(target, cmd)
	var stdout, stderr string
	var rc int
	if st, ok := cl.(engine.SSHStarter); ok && s.Mutates() {
		var p engine.SSHProcess
		if p, err = st.Start(ctx, cmd, stdin); err == nil {
			// the start time is read while the command runs; the step
			// ends only once the note is in the journal
			noted := make(chan struct{})
			go func() {
				defer close(noted)
				noteRemote(ctx, x, cl, target, p.Pid())
			}()
			stdout, stderr, rc, err = p.Wait()
			<-noted
		}
	} else {
		stdout, stderr, rc, err = cl.Run(ctx, cmd, stdin)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: `%s`: %v", target, x.Mask(firstWords(cmd)), err)
	}
	ok := rc == 0
	if len(s.OKCodes) > 0 {
		ok = false
		for _, c := range s.OKCodes {
			ok = ok || c == rc
		}
	}
	lines := []any{}
	for _, l := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	out := map[string]any{"stdout": stdout, "stderr": stderr, "rc": rc, "lines": lines, "target": target}
	if !ok {
		msg := strings.TrimSpace(stderr)
		if msg == "" {
			msg = strings.TrimSpace(stdout)
		}
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return out, fmt.Errorf("%s: `%s` exited with %d: %s", target, x.Mask(oneLine(cmd)), rc, x.Mask(msg))
	}
	return out, nil
}

// Resuming ssh steps.
const (
	// sshJoinTimeout bounds the wait for a command an earlier attempt
	// left running (or the run's deadline, when sooner).
	sshJoinTimeout = time.Hour
	// sshJoinPoll is how often the remote process is looked at (the
	// step's `interval:` overrides it).
	sshJoinPoll = time.Second
	// sshJoinLog is how often the wait is logged.
	sshJoinLog = 30 * time.Second
	// sshProcRead bounds one read of the remote /proc.
	sshProcRead = 30 * time.Second
)

// remoteProc is what the remote /proc says about a pid.
type remoteProc struct {
	boot  string // the host's boot id
	alive bool   // /proc/PID/stat exists and the process is not a zombie
	start string // field 22: start time in clock ticks since boot
}

// readRemoteProc reads the host's boot id and /proc/PID/stat over cl.
func readRemoteProc(ctx context.Context, cl engine.SSHClient, pid int) (remoteProc, error) {
	ctx, cancel := context.WithTimeout(ctx, sshProcRead)
	defer cancel()
	cmd := fmt.Sprintf("cat /proc/sys/kernel/random/boot_id && { cat /proc/%d/stat 2>/dev/null || true; }", pid)
	stdout, stderr, rc, err := cl.Run(ctx, cmd, nil)
	if err != nil {
		return remoteProc{}, err
	}
	if rc != 0 {
		return remoteProc{}, fmt.Errorf("`%s` exited with %d: %s (is the host a Linux one?)", cmd, rc, firstLine(stderr))
	}
	boot, stat, _ := strings.Cut(strings.TrimSpace(stdout), "\n")
	pr := remoteProc{boot: strings.TrimSpace(boot)}
	if pr.boot == "" {
		return remoteProc{}, fmt.Errorf("`%s` printed no boot id", cmd)
	}
	stat = strings.TrimSpace(stat)
	if stat == "" {
		return pr, nil // no such process
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:])
	if i < 0 || len(f) < 20 {
		return remoteProc{}, fmt.Errorf("cannot read /proc/%d/stat: %q", pid, firstLine(stat))
	}
	pr.start = f[19]
	pr.alive = f[0] != "Z" && f[0] != "X"
	return pr, nil
}

// noteRemote records the remote command's pid, host and start time in the
// journal. A failure to read the start time is logged, not fatal: the
// command runs on, and a resumed run will not wait for a process it cannot
// identify.
func noteRemote(ctx context.Context, x *engine.Exec, cl engine.SSHClient, target string, pid int) {
	note := map[string]any{"remote_pid": pid, "remote_host": target, "remote_start": "", "remote_boot": ""}
	pr, err := readRemoteProc(ctx, cl, pid)
	switch {
	case err != nil:
		x.Warnf("%s: cannot read the start time of the command's process (pid %d), so a resumed run could not wait for it: %s", target, pid, x.Mask(err.Error()))
	case !pr.alive:
		x.Debugf("%s: the command (pid %d) ended before its start time was read", target, pid)
		note["remote_boot"] = pr.boot
	default:
		note["remote_start"], note["remote_boot"] = pr.start, pr.boot
	}
	x.Note(note)
}

// remoteNote is what an earlier attempt recorded about its remote command.
type remoteNote struct {
	pid               int
	host, start, boot string
}

func remoteNoteOf(rec *engine.StepRecord) remoteNote {
	n := remoteNote{pid: intNote(rec.Notes["remote_pid"])}
	n.host, _ = rec.Notes["remote_host"].(string)
	n.start, _ = rec.Notes["remote_start"].(string)
	n.boot, _ = rec.Notes["remote_boot"].(string)
	return n
}

// intNote reads a number from a note, as the step wrote it or as the
// journal's JSON gives it back.
func intNote(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// Join waits, bounded, for the command an earlier attempt started to end
// when that process (same host, same boot, same pid, same start time: a
// reused pid is another process) still runs. The bound is one hour, or
// the run's deadline when sooner; the wait is logged every 30 s. Only the
// process flow started (the shell leading the command's process group) is
// waited for, not what it left running in the background.
func (s *SSHStep) Join(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (bool, string, error) {
	n := remoteNoteOf(rec)
	if n.pid <= 0 {
		return false, "", nil
	}
	if n.start == "" {
		x.Infof("%s: the journal holds no start time for the command an earlier attempt started (pid %d on %s): flow cannot tell whether it still runs, and does not wait for it", x.StepName(), n.pid, n.host)
		return false, "", nil
	}
	cl, target, err := x.SSH(ctx, &s.SSHTarget)
	if err != nil {
		return false, "", fmt.Errorf("cannot look for the command an earlier attempt started (pid %d on %s): %w", n.pid, n.host, err)
	}
	if n.host != "" && n.host != target {
		x.Warnf("%s: the command an earlier attempt started ran on %s, but the step now runs on %s: flow cannot wait for it", x.StepName(), n.host, target)
		return false, "", nil
	}
	limit := sshJoinTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	jctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	interval := x.Interval(sshJoinPoll)
	began := time.Now()
	lastLog := began
	waited := false
	for {
		pr, err := readRemoteProc(jctx, cl, n.pid)
		if err != nil {
			if jctx.Err() == nil {
				return false, "", fmt.Errorf("%s: cannot tell whether the command an earlier attempt started (pid %d) still runs: %s", target, n.pid, x.Mask(err.Error()))
			}
		} else if !pr.alive || pr.start != n.start || (n.boot != "" && pr.boot != n.boot) {
			if !waited {
				x.Debugf("%s: the command an earlier attempt started (pid %d) is no longer running", target, n.pid)
				return false, "", nil
			}
			return true, fmt.Sprintf("the command it started on %s (pid %d) was still running; it ended after %s of waiting", target, n.pid, roundDuration(time.Since(began))), nil
		} else if !waited {
			waited = true
			x.Infof("%s: the command an earlier attempt started (pid %d) is still running: waiting up to %s for it to end", target, n.pid, shortDuration(limit))
		} else if time.Since(lastLog) >= sshJoinLog {
			lastLog = time.Now()
			x.Infof("%s: still waiting for the command an earlier attempt started (pid %d) to end (%s so far, up to %s)", target, n.pid, roundDuration(time.Since(began)), shortDuration(limit))
		}
		t := time.NewTimer(interval)
		select {
		case <-jctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.Canceled) {
				return false, "", fmt.Errorf("%s: interrupted while waiting for the command an earlier attempt started (pid %d) to end: %v", target, n.pid, ctx.Err())
			}
			return false, "", fmt.Errorf("%s: the command an earlier attempt started (pid %d) was still running after %s: it is left running; wait for it to end, or stop it (kill -- -%d), then resume", target, n.pid, shortDuration(limit), n.pid)
		case <-t.C:
		}
	}
}

// Resume: flow cannot know what a shell command did, so a state-changing
// command an earlier attempt started (and that Join saw end) is left to
// the operator, unless the playbook says `resume:` (which the engine
// applies before asking the step).
func (s *SSHStep) Resume(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (engine.ResumeDecision, map[string]any, string, error) {
	why := "it is a shell command, whose effect flow cannot see"
	if n := remoteNoteOf(rec); n.pid > 0 {
		why += fmt.Sprintf("; it ran as pid %d on %s", n.pid, n.host)
	}
	return engine.ResumeUnsure, nil, why, nil
}

// firstLine returns the first line of s, trimmed.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
