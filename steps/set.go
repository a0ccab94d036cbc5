package steps

import (
	"context"
	"fmt"
	"regexp"

	"github.com/flowdba/flow/engine"
	"gopkg.in/yaml.v3"
)

// SetStep computes variables from expressions, in the order written; each
// expression may read the variables set above it.
type SetStep struct {
	// Vars are the assignments in playbook order.
	Vars []SetVar
}

// SetVar is one assignment.
type SetVar struct {
	Name string
	Expr *engine.Expr
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// UnmarshalYAML reads the mapping in order.
func (s *SetStep) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: set: expected a mapping of variable: expression", n.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !varName.MatchString(k.Value) {
			return fmt.Errorf("line %d: set: %q is not a valid variable name", k.Line, k.Value)
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: set: %q is set twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		e := &engine.Expr{}
		if err := e.UnmarshalYAML(v); err != nil {
			return fmt.Errorf("line %d: set.%s: expected an expression", v.Line, k.Value)
		}
		s.Vars = append(s.Vars, SetVar{Name: k.Value, Expr: e})
	}
	return nil
}

func init() {
	engine.Register(engine.StepType{
		Name:       "set",
		Summary:    "compute variables: each key is a variable, each value an expression (evaluated in order)",
		New:        func() engine.StepSpec { return &SetStep{} },
		Idempotent: true,
	})
}

// Mutates is false: it only changes flow's own variables.
func (s *SetStep) Mutates() bool { return false }

// SetsVars lists the variables the step defines.
func (s *SetStep) SetsVars() []string {
	names := make([]string, len(s.Vars))
	for i, v := range s.Vars {
		names[i] = v.Name
	}
	return names
}

// SecretVars lists the variables whose expressions read a secret (or
// generate one); they are masked wherever they appear.
func (s *SetStep) SecretVars() []string {
	var out []string
	for _, v := range s.Vars {
		if v.Expr.Secret() {
			out = append(out, v.Name)
		}
	}
	return out
}

// Render shows each assignment.
func (s *SetStep) Render(r *engine.Render) ([]engine.Action, error) {
	var text string
	for i, v := range s.Vars {
		if i > 0 {
			text += "\n"
		}
		text += v.Name + " = " + r.Expr(v.Expr)
	}
	return []engine.Action{{Target: "flow", Text: text}}, nil
}

// Run evaluates and sets each variable in order.
func (s *SetStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	out := map[string]any{}
	for _, v := range s.Vars {
		val, err := x.Eval(v.Expr)
		if err != nil {
			return nil, err
		}
		x.Set(v.Name, val, v.Expr.Secret())
		out[v.Name] = val
	}
	return out, nil
}

// Recompute is true: a resumed run runs the step again instead of
// restoring its output, since it only computes variables from values flow already has (engine.Recomputed).
func (s *SetStep) Recompute() bool { return true }
