package steps

import (
	"context"
	"sort"

	"github.com/flowdba/flow/engine"
)

// SetStep computes variables from expressions, in key order of the YAML
// mapping as sorted by name (an expression may read variables set by
// earlier steps, not by its siblings).
type SetStep map[string]*engine.Expr

func init() {
	engine.Register(engine.StepType{
		Name:       "set",
		Summary:    "compute variables: each key is a variable, each value an expression",
		New:        func() engine.StepSpec { return &SetStep{} },
		Idempotent: true,
	})
}

// Mutates is false: it only changes flow's own variables.
func (s *SetStep) Mutates() bool { return false }

// SetsVars lists the variables the step defines.
func (s *SetStep) SetsVars() []string {
	names := make([]string, 0, len(*s))
	for k := range *s {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// SecretVars lists the variables whose expressions read a secret (or
// generate one); they are masked wherever they appear.
func (s *SetStep) SecretVars() []string {
	var out []string
	for k, e := range *s {
		if e.Secret() {
			out = append(out, k)
		}
	}
	return out
}

// Render shows each assignment.
func (s *SetStep) Render(r *engine.Render) ([]engine.Action, error) {
	var text string
	for i, k := range s.SetsVars() {
		if i > 0 {
			text += "\n"
		}
		text += k + " = " + r.Expr((*s)[k])
	}
	return []engine.Action{{Target: "flow", Text: text}}, nil
}

// Run evaluates and sets each variable.
func (s *SetStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	out := map[string]any{}
	for _, k := range s.SetsVars() {
		e := (*s)[k]
		v, err := x.Eval(e)
		if err != nil {
			return nil, err
		}
		x.Set(k, v, e.Secret())
		out[k] = v
	}
	return out, nil
}
