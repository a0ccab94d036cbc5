package engine

import (
	"sort"
	"sync"
	"time"
)

var durationZero time.Duration

// scope holds a run's variables; a parallel item gets a child scope so
// items never write each other's values.
type scope struct {
	parent  *scope
	mu      sync.RWMutex
	vars    map[string]any
	steps   map[string]any
	unknown map[string]bool
}

func newScope(parent *scope) *scope {
	return &scope{parent: parent, vars: map[string]any{}, steps: map[string]any{}, unknown: map[string]bool{}}
}

func (s *scope) set(name string, v any, unknown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vars[name] = v
	if unknown {
		s.unknown[name] = true
	} else {
		delete(s.unknown, name)
	}
}

func (s *scope) setStep(id string, v map[string]any, unknown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps[id] = v
	if unknown {
		s.unknown["steps."+id] = true
	} else {
		delete(s.unknown, "steps."+id)
	}
}

// local returns the variables set in this scope itself.
func (s *scope) local() map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]any, len(s.vars))
	for k, v := range s.vars {
		out[k] = v
	}
	return out
}

// evalEnv is a flattened scope chain, ready for expression evaluation.
type evalEnv struct {
	vars     map[string]any
	unknowns map[string]bool
}

func (e *evalEnv) unknown(x *Expr) bool {
	if x == nil {
		return false
	}
	for _, r := range x.refs {
		if e.isUnknown(r) {
			return true
		}
	}
	return false
}

// isUnknown says whether the variable name is unknown (plan, dry run):
// flagged so, or a mapping one of whose values is (an include's registered
// output, whose included playbook read what only a run knows).
func (e *evalEnv) isUnknown(name string) bool {
	if e.unknowns[name] {
		return true
	}
	if m, ok := e.vars[name].(map[string]any); ok {
		for _, v := range m {
			if _, unk := v.(Unknown); unk {
				return true
			}
		}
	}
	return false
}

// unknownRefs lists the names x reads that are unknown.
func (e *evalEnv) unknownRefs(x *Expr) []string {
	var out []string
	for _, r := range x.refs {
		if e.isUnknown(r) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func (s *scope) env() *evalEnv {
	var chain []*scope
	for c := s; c != nil; c = c.parent {
		chain = append(chain, c)
	}
	env := &evalEnv{vars: map[string]any{}, unknowns: map[string]bool{}}
	steps := map[string]any{}
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		c.mu.RLock()
		for k, v := range c.vars {
			env.vars[k] = v
		}
		for k, v := range c.steps {
			steps[k] = v
		}
		for k := range c.unknown {
			env.unknowns[k] = true
		}
		c.mu.RUnlock()
	}
	env.vars["steps"] = steps
	return env
}
