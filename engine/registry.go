package engine

import (
	"sort"
	"sync"
)

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
