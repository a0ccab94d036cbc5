package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
)

// SSHStep runs a shell command on a host over SSH and captures stdout,
// stderr and the exit code.
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
	stdout, stderr, rc, err := cl.Run(ctx, cmd, stdin)
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
