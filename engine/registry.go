package engine

import (
	"sort"
	"sync"

	"github.com/expr-lang/expr/types"
)

// StepType describes a registered step type.
type StepType struct {
	// Name is the key that selects the type in a step (`sql:`, `ssh:` …).
	Name string
	// Summary is a one-line description for help and the schema.
	Summary string
	// New returns a fresh spec to decode into.
	New func() StepSpec
	// Output is the type of the step's registered output, for the typed
	// expression environment. Nil means "any map".
	Output types.Map
	// Idempotent says re-running the step after an interruption is safe.
	Idempotent bool
	// Changes says when the step changes state, for the reference `flow
	// steps` prints, where its fields decide (e.g. "exec: yes; query: no").
	// Empty: the type always or never does, as Mutates of a fresh spec says.
	Changes string
}

var (
	regMu    sync.RWMutex
	registry = map[string]StepType{}
)

// reserved are keys that cannot be step type names.
var reserved = map[string]bool{"group": true, "include": true, "steps": true}

// Register adds a step type; step files call it from init.
func Register(t StepType) {
	regMu.Lock()
	defer regMu.Unlock()
	if t.Name == "" || t.New == nil {
		panic("engine: step type needs a name and New")
	}
	if _, dup := registry[t.Name]; dup || reserved[t.Name] || commonKeys[t.Name] {
		panic("engine: step type name taken: " + t.Name)
	}
	registry[t.Name] = t
}

// LookupType returns a registered step type.
func LookupType(name string) (StepType, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	t, ok := registry[name]
	return t, ok
}

// Types lists the registered step types, sorted by name.
func Types() []StepType {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]StepType, 0, len(registry))
	for _, t := range registry {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func typeNames() []string {
	var out []string
	for _, t := range Types() {
		out = append(out, t.Name)
	}
	return out
}
