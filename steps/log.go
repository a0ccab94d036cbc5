package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
)

// LogStep writes a message to the run's log; with summary: true the
// message is also a fact of the run's summary (flow status, flow report):
// what changed where, the detach point, when the standby opened.
type LogStep struct {
	Msg     *engine.Text `yaml:"msg"`
	Level   string       `yaml:"level"`
	Summary bool         `yaml:"summary"`
}

func init() {
	engine.Register(engine.StepType{
		Name:       "log",
		Summary:    "write a message to the log (level: debug, info, warn, error); summary: true also puts it in the run's summary (flow status, flow report)",
		New:        func() engine.StepSpec { return &LogStep{} },
		Idempotent: true,
	})
}

// Mutates is false.
func (s *LogStep) Mutates() bool { return false }

// Check validates the level.
func (s *LogStep) Check(c *engine.Check) {
	if s.Msg == nil {
		c.Errorf(c.StepPos(), "log step %q needs `msg:`", c.StepName())
	}
	switch strings.ToLower(s.Level) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		c.Errorf(c.StepPos(), "log level %q: use debug, info, warn or error", s.Level)
	}
}

// Render shows the message.
func (s *LogStep) Render(r *engine.Render) ([]engine.Action, error) {
	return []engine.Action{{Target: "log", Text: r.Text(s.Msg)}}, nil
}

// Run logs the message.
func (s *LogStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	msg, err := x.Text(s.Msg)
	if err != nil {
		return nil, err
	}
	// a dry run reaches the lines that report what the changes made
	// ("the standby is open") without making them
	if n := x.ListedChanges(); n > 0 {
		msg = fmt.Sprintf("(dry run: the %d change(s) listed so far were not made) %s", n, msg)
	}
	switch strings.ToLower(s.Level) {
	case "debug":
		x.Debugf("%s", msg)
	case "warn", "warning":
		x.Warnf("%s", msg)
	case "error":
		x.Log().Error(x.Mask(msg))
	default:
		x.Infof("%s", msg)
	}
	if s.Summary && !x.DryRun() {
		x.Event(event.Summary, map[string]any{"msg": msg})
	}
	return map[string]any{"msg": fmt.Sprint(msg)}, nil
}

// Recompute is true: a resumed run runs the step again instead of
// restoring its output, since it only writes a log line (engine.Recomputed).
func (s *LogStep) Recompute() bool { return true }
