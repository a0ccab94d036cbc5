package steps

import (
	"context"

	"github.com/flowdba/flow/engine"
)

// AssertStep is an expression that must hold; when it does not, the run
// stops with the message and the values the expression read. Before any
// state-changing step has run, that is exit code 3 (refused).
type AssertStep struct {
	// That is the condition.
	That *engine.Expr `yaml:"that" flow:"bool"`
	// Message says what is wrong and what to do.
	Message *engine.Text `yaml:"message"`
}

func init() {
	engine.Register(engine.StepType{
		Name:       "assert",
		Summary:    "an expression that must hold, with a message saying what to do when it does not",
		New:        func() engine.StepSpec { return &AssertStep{} },
		Idempotent: true,
	})
}

// Mutates is false: an assertion only reads.
func (s *AssertStep) Mutates() bool { return false }

// Check requires the condition.
func (s *AssertStep) Check(c *engine.Check) {
	if s.That == nil {
		c.Errorf(c.StepPos(), "assert step %q needs `that:`", c.StepName())
	}
}

// Render shows the condition.
func (s *AssertStep) Render(r *engine.Render) ([]engine.Action, error) {
	return []engine.Action{{Target: "flow", Text: "assert " + s.That.Src + " → " + r.Expr(s.That)}}, nil
}

// Run evaluates the condition.
func (s *AssertStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	v, err := x.Eval(s.That)
	if err != nil {
		return nil, err
	}
	if ok, _ := v.(bool); ok {
		return map[string]any{}, nil
	}
	msg, err := x.Text(s.Message)
	if err != nil {
		msg = s.Message.Raw
	}
	return nil, x.Refuse(s.That, msg)
}

// Recompute is true: a resumed run runs the step again instead of
// restoring its output, since it only evaluates an expression (engine.Recomputed).
func (s *AssertStep) Recompute() bool { return true }
