package engine

// What a dry run and a plan show besides each step's verdict: the
// confirmation points, the point of no return and what each rescue section
// would do, and values printed as a DBA reads them.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// gateVerdicts are the verdicts a short preview (--short) keeps besides
// the changes.
var gateVerdicts = map[string]bool{"CONFIRM": true, "NO RETURN": true, "REFUSED": true, "RESCUE": true, "ON RESCUE": true}

type rescueListKey struct{}

// listingRescue reports whether ctx lists a rescue section in a preview:
// its steps are shown, never executed or counted as the run's changes.
func listingRescue(ctx context.Context) bool { return ctx.Value(rescueListKey{}) != nil }

// countUnknown counts an UNKNOWN verdict of the run's own path.
func (r *Runner) countUnknown(ctx context.Context) {
	if !listingRescue(ctx) {
		r.unknown.Add(1)
	}
}

// markUnknownCounted is markUnknown outside a rescue listing, and only the
// variables inside one.
func (r *Runner) markUnknownCounted(ctx context.Context, sc *scope, s *Step) {
	if listingRescue(ctx) {
		r.markUnknownVars(sc, s)
		return
	}
	r.markUnknown(sc, s)
}

// previewNote is one line of a preview's closing summary, once per
// playbook position.
type previewNote struct {
	pos  Pos
	text string
}

// note adds a summary line unless the position has one.
func (r *Runner) note(list *[]previewNote, p Pos, text string) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	for _, n := range *list {
		if n.pos == p {
			return
		}
	}
	*list = append(*list, previewNote{pos: p, text: text})
}

// renderPreview renders a text for a preview: a value a real run would
// know is shown as its template.
func renderPreview(t *Text, env *evalEnv) string {
	// known values are shown, unknown ones as {{ expr }} (render's display mode)
	out, _, err := t.render(kindText, env, renderDisplay)
	if err != nil {
		return strings.TrimSpace(t.Raw)
	}
	return strings.TrimSpace(out)
}

// previewGates lists a step's confirmation point and point of no return in
// a dry run or plan.
func (r *Runner) previewGates(ctx context.Context, s *Step, name string, env *evalEnv) {
	if listingRescue(ctx) {
		return
	}
	if s.Confirm != nil {
		word := renderPreview(s.Confirm, env)
		when := "before this step"
		if s.Type == "group" || s.Type == "include" {
			when = "before the first step of this block"
		}
		reason := fmt.Sprintf("a run asks the operator to type %q %s (--yes answers it; with neither a terminal nor --yes the run is refused before its first change)", word, when)
		r.verdict(ctx, s, name, "CONFIRM", reason, nil)
		if s.ConfirmMessage != nil {
			var b strings.Builder
			for _, line := range strings.Split(renderPreview(s.ConfirmMessage, env), "\n") {
				fmt.Fprintf(&b, "              | %s\n", line)
			}
			r.printf("%s", b.String())
		}
		r.note(&r.gateNotes, s.Pos, fmt.Sprintf("%s %s — type %q", s.Pos.Short(), name, word))
	}
	if s.NoReturn != nil {
		msg := strings.Join(strings.Fields(renderPreview(s.NoReturn, env)), " ")
		r.verdict(ctx, s, name, "NO RETURN", "once this step's change is sent, `flow rollback` refuses: "+msg, nil)
		r.note(&r.noReturnNotes, s.Pos, fmt.Sprintf("%s %s — %s", s.Pos.Short(), name, msg))
	}
}

// listRescue shows, in a dry run or plan, what a step's rescue section
// would do if a step inside changed something and then failed, was
// refused or interrupted.
func (r *Runner) listRescue(ctx context.Context, w *worker, sc *scope, s *Step, name string) {
	if listingRescue(ctx) {
		return
	}
	until := ""
	if p := noReturnFrom(s); p != nil {
		until = fmt.Sprintf(" (until the point of no return %s %s: past it the rescue does not run)", p.Pos.Short(), r.stepName(p, sc.env()))
	}
	r.verdict(ctx, s, name, "RESCUE", fmt.Sprintf("if a step inside changes something and then fails, is refused or interrupted%s, these %d step(s) run:", until, len(s.Rescue)), nil)
	r.note(&r.rescueNotes, s.Pos, fmt.Sprintf("%s %s — %d step(s), listed as ON RESCUE above%s", s.Pos.Short(), name, len(s.Rescue), until))
	lctx := context.WithValue(context.WithValue(ctx, rescueListKey{}, true), speculativeKey{}, true)
	rs := newScope(sc)
	rs.set("error", Unknown{Why: "the error that started the rescue"}, true)
	_ = r.steps(withKey(lctx, parentKey(ctx)+" rescue"), w, rs, s.Rescue)
}

// printGates ends a preview's summary with its confirmation points, points
// of no return and rescue sections.
func (r *Runner) printGates() {
	if len(r.gateNotes) == 0 {
		r.printf("Confirmation points: none.\n")
	} else {
		r.printf("Confirmation points (a run with neither a terminal nor --yes is refused before its first change):\n")
		for _, n := range r.gateNotes {
			r.printf("  %s\n", n.text)
		}
	}
	for _, n := range r.noReturnNotes {
		r.printf("Point of no return: %s\n", n.text)
	}
	for _, n := range r.rescueNotes {
		r.printf("Rescue: %s\n", n.text)
	}
}

// displayValue renders a value as a DBA reads it: text quoted, numbers
// plain, lists and maps as JSON, cut to max characters.
func displayValue(v any, max int) string {
	var s string
	switch x := v.(type) {
	case nil:
		s = "null"
	case string:
		s = strconv.Quote(x)
	case Unknown:
		s = "<unknown>"
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case time.Duration:
		s = x.String()
	case int, int64, bool:
		s = fmt.Sprint(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			s = fmt.Sprint(x)
		} else {
			s = string(b)
		}
	}
	if max > 3 && len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}

// Verdict is what a dry run or plan says about one step.
type Verdict struct {
	// Key identifies the step instance (see StepRecord.Key).
	Key     string
	Pos     Pos
	Step    string
	Verdict string // WILL RUN, WILL SKIP, UNKNOWN, RUNS (read-only, executed)
	Reason  string
	Actions []Action
	Mutates bool
}

func (r *Runner) verdict(ctx context.Context, s *Step, name, verdict, reason string, actions []Action) {
	v := Verdict{Key: parentKey(ctx), Pos: s.Pos, Step: name, Verdict: verdict, Reason: r.masker.Apply(reason), Actions: actions, Mutates: s.Mutates()}
	indent := ""
	if listingRescue(ctx) {
		indent = "    "
	} else {
		r.outMu.Lock()
		r.verdicts = append(r.verdicts, v)
		r.outMu.Unlock()
	}
	if r.opts.Short && !v.Mutates && !gateVerdicts[verdict] {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%-9s] %s %s", indent, verdict, s.Pos.Short(), name)
	if reason != "" {
		fmt.Fprintf(&b, " — %s", reason)
	}
	b.WriteByte('\n')
	for _, a := range actions {
		fmt.Fprintf(&b, "%s              on %s:\n", indent, a.Target)
		for _, line := range strings.Split(a.Text, "\n") {
			fmt.Fprintf(&b, "%s                %s\n", indent, line)
		}
	}
	r.printf("%s", b.String())
}
