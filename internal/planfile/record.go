package planfile

import (
	"sync"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/internal/planfile/drift"
)

// Recorder collects what a dry run observes, for a plan: pass Observe as
// the run's engine.Options.Observer (with engine.ChainObservers beside
// another observer), then call Plan when the run succeeded.
type Recorder struct {
	mu      sync.Mutex
	runID   string
	changed bool
	obs     map[string]Observation
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{obs: map[string]Observation{}} }

// Observe receives the dry run's events: the run's id, the state-changing
// steps it lists (what follows them is marked AfterChange) and the output
// of every read-only step it executed.
func (r *Recorder) Observe(ev string, f map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev {
	case event.RunStarted:
		if id, ok := f["run_id"].(string); ok && r.runID == "" {
			r.runID = id
		}
	case event.StepStarted:
		if mut, _ := f["mutates"].(bool); mut && leafType(f) {
			r.changed = true
		}
	case event.StepFinished:
		out, ok := f["output"]
		key, _ := f["key"].(string)
		if !ok || key == "" {
			return
		}
		if mut, _ := f["mutates"].(bool); mut {
			return
		}
		name, _ := f["name"].(string)
		typ, _ := f["type"].(string)
		r.obs[key] = Observation{Step: name, Type: typ, AfterChange: r.changed, Output: drift.Normalize(out)}
	}
}

func leafType(f map[string]any) bool {
	t, _ := f["type"].(string)
	return t != "group" && t != "include"
}

// Plan builds the plan of a dry run that succeeded: the subject it was
// made for, when it started, the version of flow, its verdicts, and the
// observations recorded. mask (the run's masker) is applied to every
// string once more, so that a secret the run learnt late is masked too.
func (r *Recorder) Plan(sub Subject, version string, created time.Time, verdicts []engine.Verdict, mask func(string) string) *Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mask == nil {
		mask = func(s string) string { return s }
	}
	p := &Plan{Format: Format, FlowVersion: version, Created: created.UTC(), RunID: r.runID, Subject: sub,
		Observations: make(map[string]Observation, len(r.obs))}
	for k, o := range r.obs {
		o.Output = mapStrings(o.Output, mask)
		o.Step = mask(o.Step)
		p.Observations[k] = o
	}
	for _, v := range verdicts {
		s := Step{Key: v.Key, Pos: v.Pos.Short(), Step: mask(v.Step), Verdict: v.Verdict, Reason: mask(v.Reason), Mutates: v.Mutates}
		for _, a := range v.Actions {
			s.Actions = append(s.Actions, Action{Target: mask(a.Target), Text: mask(a.Text)})
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

// mapStrings applies f to every string inside a JSON-form value.
func mapStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[f(k)] = mapStrings(e, f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mapStrings(e, f)
		}
		return out
	}
	return v
}
