package planfile

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/internal/planfile/drift"
)

// maxShown bounds the differences one refusal lists.
const maxShown = 8

// runIDMark replaces a run's id in what is compared: the plan's dry run
// and the bound run have different ids, and statements carry them.
const runIDMark = "{{ run.id }}"

// Binder binds a run to a plan: it implements engine.Binder, and its
// Observe is an observer for the same run (engine.ChainObservers).
type Binder struct {
	plan *Plan
	path string
	// Mask masks the run's secrets in live values before they are
	// compared with the plan's (set it to the runner's Masker().Apply).
	Mask func(string) string

	mu        sync.Mutex
	liveRunID string
	changed   bool     // the run made its first change
	pending   []string // drift seen by Observe, reported at the next step
	verdicts  map[string][]*Step
	stats     Stats
}

// Stats count what a bound run compared.
type Stats struct {
	// Observations compared with the plan's and found as planned.
	Observations int
	// Changes whose statements were as planned.
	Changes int
	// Unbound are steps that ran without being bound: UNKNOWN in the plan,
	// or in a rescue section.
	Unbound int
	// AfterChange are read-only steps run after the first change, not
	// compared.
	AfterChange int
	// Skipped lists steps the plan saw run that this run skipped after
	// its last change (no later step could refuse on them).
	Skipped []string
}

// NewBinder binds a run to p, read from path (named in messages).
func NewBinder(p *Plan, path string) *Binder {
	b := &Binder{plan: p, path: path, verdicts: map[string][]*Step{}}
	for i := range p.Steps {
		s := &p.Steps[i]
		b.verdicts[s.Key] = append(b.verdicts[s.Key], s)
	}
	return b
}

// Unbound lists the steps the plan left UNKNOWN: a run executes them
// without binding (they depend on values only a run knows).
func (b *Binder) Unbound() []Step {
	var out []Step
	for _, s := range b.plan.Steps {
		if s.Verdict == Unknown {
			out = append(out, s)
		}
	}
	return out
}

// Stats returns what the run compared so far; Skipped holds the drift
// Observe saw that no later step reported.
func (b *Binder) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Skipped = append([]string(nil), b.pending...)
	return s
}

// Observe receives the run's events: its id, and the steps it skips (a
// step the plan saw run, skipped now, is drift, reported before the next
// step runs).
func (b *Binder) Observe(ev string, f map[string]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev {
	case event.RunStarted:
		if id, ok := f["run_id"].(string); ok {
			b.liveRunID = id
		}
	case event.StepSkipped:
		key, _ := f["key"].(string)
		if key == "" || inRescue(key) {
			return
		}
		name, _ := f["name"].(string)
		reason, _ := f["reason"].(string)
		if o, ran := b.plan.Observations[key]; ran && !o.AfterChange && !b.changed {
			b.pending = append(b.pending, fmt.Sprintf("read-only step %s %q was skipped by this run (%s), but the plan saw it run", posOf(key), name, reason))
			return
		}
		for _, v := range b.verdicts[key] {
			if v.Verdict == WillRun && v.Mutates {
				b.pending = append(b.pending, fmt.Sprintf("step %s %q was skipped by this run (%s), but the plan said it WILL RUN", v.Pos, name, reason))
				return
			}
		}
	}
}

// Observed implements engine.Binder: a read-only step's output must match
// what the plan saw (until the run's first change).
func (b *Binder) Observed(key string, s *engine.Step, output map[string]any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.pendingErr(); err != nil {
		return err
	}
	if inRescue(key) {
		b.stats.Unbound++
		return nil
	}
	if b.changed {
		b.stats.AfterChange++
		return nil
	}
	if dryRunDiffers(s) {
		b.stats.Unbound++
		return nil
	}
	o, ok := b.plan.Observations[key]
	if !ok {
		if b.unknown(key) {
			b.stats.Unbound++
			return nil
		}
		return b.refuse(b.unseen(key, "this read-only step ran"), nil)
	}
	if o.AfterChange {
		b.stats.AfterChange++
		return nil
	}
	if output == nil {
		output = map[string]any{}
	}
	live := mapStrings(drift.Normalize(output), b.liveStrings)
	planned := mapStrings(o.Output, b.plannedStrings)
	if diffs := drift.Compare(planned, live); len(diffs) > 0 {
		return b.refuse("what this step reads differs from what the plan saw:", diffs)
	}
	b.stats.Observations++
	return nil
}

// Change implements engine.Binder: a state-changing step must be one the
// plan said WILL RUN, with the same statements (or one it left UNKNOWN).
func (b *Binder) Change(key string, s *engine.Step, actions []engine.Action) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.pendingErr(); err != nil {
		return err
	}
	if inRescue(key) {
		b.stats.Unbound++
		b.changed = true
		return nil
	}
	vs := b.verdicts[key]
	if len(vs) == 0 {
		if b.unknown(key) {
			b.stats.Unbound++
			b.changed = true
			return nil
		}
		return b.refuse(b.unseen(key, "this step is about to change state"), nil)
	}
	v := vs[0]
	for _, x := range vs {
		if x.Verdict == Unknown {
			v = x
		}
	}
	switch v.Verdict {
	case Unknown:
		b.stats.Unbound++
		b.changed = true
		return nil
	case WillRun:
	case WillSkip:
		return b.refuse(fmt.Sprintf("this step is about to change state, but the plan said it WILL SKIP (%s)", v.Reason), nil)
	default:
		return b.refuse(fmt.Sprintf("this step is about to change state, but the plan's verdict on it is %s", v.Verdict), nil)
	}
	if len(actions) != len(v.Actions) {
		return b.refuse(fmt.Sprintf("this step is about to execute %d statement(s), the plan showed %d:", len(actions), len(v.Actions)),
			[]drift.Difference{{Path: "statements", Planned: showActions(v.Actions), Live: b.showLive(actions), Why: "a different number of statements"}})
	}
	for i, a := range actions {
		pa := v.Actions[i]
		target := b.liveStrings(b.mask(a.Target))
		text := b.liveStrings(b.mask(a.Text))
		if pt := b.plannedStrings(pa.Target); pt != target {
			return b.refuse("this step is about to run somewhere else than planned:",
				[]drift.Difference{{Path: fmt.Sprintf("statement %d: target", i+1), Planned: drift.Show(pt), Live: drift.Show(target), Why: "the target differs"}})
		}
		if d := drift.CompareText(b.plannedStrings(pa.Text), text); d != nil {
			d.Path = fmt.Sprintf("statement %d on %s: %s", i+1, target, d.Path)
			return b.refuse("this step is about to execute something else than the plan showed:", []drift.Difference{*d})
		}
	}
	b.stats.Changes++
	b.changed = true
	return nil
}

// pendingErr reports drift Observe saw (a step skipped).
func (b *Binder) pendingErr() error {
	if len(b.pending) == 0 {
		return nil
	}
	msg := strings.Join(b.pending, "; ")
	b.pending = nil
	return b.refuse("an earlier "+msg+":", nil)
}

// refuse is the error for drift: what differs, and what to do.
func (b *Binder) refuse(what string, diffs []drift.Difference) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "drift from the plan %s (made %s): %s", b.path, b.plan.Created.Local().Format("2006-01-02 15:04:05"), what)
	for i, d := range diffs {
		if i == maxShown {
			fmt.Fprintf(&sb, "\n    … and %d more", len(diffs)-maxShown)
			break
		}
		sb.WriteString("\n    " + d.String())
	}
	fmt.Fprintf(&sb, "\n  The live state no longer matches what the plan saw, so the plan is not run. Make a new plan (%s), review it, and run that.", b.plan.Remake(b.path))
	return fmt.Errorf("%s", sb.String())
}

// unseen says why a step the plan has no record of cannot run.
func (b *Binder) unseen(key, doing string) string {
	for _, c := range ancestors(key) {
		for _, v := range b.verdicts[c] {
			if v.Verdict == WillSkip {
				return fmt.Sprintf("%s, but the plan skipped it: %s %q WILL SKIP (%s)", doing, v.Pos, v.Step, v.Reason)
			}
			if v.Verdict == "REFUSED" {
				return fmt.Sprintf("%s, but the plan was refused at %s %q", doing, v.Pos, v.Step)
			}
		}
	}
	return doing + ", but the plan never saw it (it was not reached, or a for_each list has more items now)"
}

// unknown reports whether the plan left the step, or a step around it,
// UNKNOWN.
func (b *Binder) unknown(key string) bool {
	for _, c := range ancestors(key) {
		for _, v := range b.verdicts[c] {
			if v.Verdict == Unknown {
				return true
			}
		}
	}
	return false
}

var itemNo = regexp.MustCompile(`#[0-9]+`)

// ancestors lists key, the keys of the steps around it, and the same
// without for_each item numbers (a for_each the plan could not expand
// lists its steps once, without them).
func ancestors(key string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range []string{key, itemNo.ReplaceAllString(key, "")} {
		segs := strings.Split(k, " > ")
		for i := len(segs); i > 0; i-- {
			c := strings.Join(segs[:i], " > ")
			for _, x := range []string{c, strings.TrimSuffix(c, " always")} {
				if !seen[x] {
					seen[x] = true
					out = append(out, x)
				}
			}
		}
	}
	return out
}

// DryRunDiffers is implemented by step specs that do something else in a
// dry run than in a run (the lock step only looks at its lock in a dry
// run, and takes it in a run): a bound run does not compare their output
// with the plan's.
type DryRunDiffers interface {
	DryRunDiffers() bool
}

func dryRunDiffers(s *engine.Step) bool {
	if s == nil {
		return false
	}
	d, ok := s.Spec.(DryRunDiffers)
	return ok && d.DryRunDiffers()
}

// inRescue reports whether the key is inside a rescue section.
func inRescue(key string) bool { return strings.Contains(key, " rescue") }

// posOf is "file.yaml:LINE" of a key's innermost step.
func posOf(key string) string {
	segs := strings.Split(key, " > ")
	last := itemNo.ReplaceAllString(segs[len(segs)-1], "")
	if i := strings.LastIndexByte(last, ':'); i > 0 {
		return last[:i]
	}
	return last
}

func (b *Binder) mask(s string) string {
	if b.Mask == nil {
		return s
	}
	return b.Mask(s)
}

// liveStrings masks a live string and writes the run's id as the plan's.
func (b *Binder) liveStrings(s string) string {
	s = b.mask(s)
	if b.liveRunID != "" {
		s = strings.ReplaceAll(s, b.liveRunID, runIDMark)
	}
	return s
}

func (b *Binder) plannedStrings(s string) string {
	if b.plan.RunID != "" {
		s = strings.ReplaceAll(s, b.plan.RunID, runIDMark)
	}
	return s
}

func showActions(as []Action) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, a.Text)
	}
	return drift.Show(strings.Join(parts, "; "))
}

func (b *Binder) showLive(as []engine.Action) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, b.mask(a.Text))
	}
	return drift.Show(strings.Join(parts, "; "))
}
