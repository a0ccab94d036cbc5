package engine

// The operator contract: confirmation points, what a run does when it
// cannot ask, the answer read without blocking a signal, and the context a
// rescue runs in after an interruption.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// ExitAborted is the exit code of a run that a guard refused, or whose
// confirmation the operator declined, after it had changed something: the
// rescue sections that apply ran (exit 3 means nothing changed).
const ExitAborted = 4

// Gate is a confirmation point of a playbook, found before the run starts.
type Gate struct {
	Pos  Pos
	Step string
	// Word is the confirmation word as written (a template).
	Word string
}

// Gates lists the confirmation points of a playbook's main path (its
// steps, groups and includes; not rescue, always or undo sections), in
// playbook order.
func Gates(pb *Playbook) []Gate {
	var out []Gate
	var walk func(steps []*Step)
	walk = func(steps []*Step) {
		for _, s := range steps {
			if s.Confirm != nil {
				out = append(out, Gate{Pos: s.Pos, Step: s.Name, Word: s.Confirm.Raw})
			}
			walk(s.Steps)
			if s.Include != nil && s.Include.Playbook != nil {
				walk(s.Include.Playbook.Steps)
			}
		}
	}
	walk(pb.Steps)
	return out
}

// posOr is the template's position, or p when it has none.
func (t *Text) posOr(p Pos) Pos {
	if t != nil && t.Pos.Line > 0 {
		return t.Pos
	}
	return p
}

// canAsk reports whether a prompt can be answered now: a terminal that is
// still there, or --yes.
func (r *Runner) canAsk() bool {
	if r.opts.Yes {
		return true
	}
	return r.terminal()
}

// terminal reports whether an operator can answer on the terminal now
// (false after a hang-up).
func (r *Runner) terminal() bool {
	if !r.opts.Interactive || r.opts.Stdin == nil {
		return false
	}
	return r.opts.TerminalGone == nil || !r.opts.TerminalGone()
}

// refuseUnaskable refuses, before anything runs, a run whose playbook has
// confirmation points it cannot ask (no terminal and no --yes); a resumed
// run counts only the points no earlier attempt confirmed.
func (r *Runner) refuseUnaskable(pb *Playbook) error {
	if r.opts.Mode != ModeRun || r.canAsk() {
		return nil
	}
	var open []string
	for _, g := range Gates(pb) {
		if r.opts.Resume != nil && r.opts.Resume.confirmedAt(g.Pos) {
			continue
		}
		open = append(open, fmt.Sprintf("%s %s (type %q)", g.Pos.Short(), g.Step, g.Word))
	}
	if len(open) == 0 {
		return nil
	}
	return &ExitError{Code: ExitRefused, Err: &RefusedError{Pos: Pos{File: pb.File}, Step: pb.Name, Guard: "confirmation",
		Message: fmt.Sprintf("this playbook asks the operator to confirm at %s, but there is no terminal to ask on: nothing was run. "+
			"Run it from a terminal, or pass --yes to confirm in advance (the journal records the confirmation as given by --yes by %s)",
			strings.Join(open, "; "), orUnknown(r.opts.Operator))}}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown operator"
	}
	return s
}

// lineResult is one line the operator typed, or why none came.
type lineResult struct {
	line string
	err  error
}

// lineReader reads the operator's lines on its own goroutine, so a prompt
// waits for a line or a signal, whichever comes first.
type lineReader struct {
	once  sync.Once
	lines chan lineResult
}

func (lr *lineReader) start(in io.Reader) {
	lr.once.Do(func() {
		lr.lines = make(chan lineResult, 16)
		go func() {
			br := bufio.NewReader(in)
			for {
				line, err := br.ReadString('\n')
				if line != "" || err != nil {
					lr.lines <- lineResult{line: line, err: err}
				}
				if err != nil {
					close(lr.lines)
					return
				}
			}
		}()
	})
}

// drain drops lines typed before the prompt: type-ahead never confirms.
func (lr *lineReader) drain() {
	for {
		select {
		case _, ok := <-lr.lines:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// ask prints a prompt and waits for the operator's line, a signal (ctx) or
// the end of input.
func (r *Runner) ask(ctx context.Context, prompt string) (string, error) {
	r.input.start(r.opts.Stdin)
	r.input.drain()
	r.prompt("%s", prompt)
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res, ok := <-r.input.lines:
		if !ok || (res.err != nil && res.line == "") {
			return "", io.EOF
		}
		return strings.TrimSpace(res.line), nil
	}
}

// confirm holds a confirmation point: the operator types the word (or
// --yes answers it, or an earlier attempt of a resumed run was confirmed),
// and the journal records who decided what, and how.
func (r *Runner) confirm(ctx context.Context, s *Step, key, name string, env *evalEnv, log *logrus.Entry) error {
	word, _, err := s.Confirm.render(kindText, env, renderDisplay)
	if err != nil {
		return &StepError{Pos: s.Confirm.posOr(s.Pos), Step: name, Err: err}
	}
	word = r.masker.Apply(word)
	base := merge(stepFields(s, name, key), logrus.Fields{"word": word, "operator": r.opts.Operator})
	record := func(outcome, how string, extra logrus.Fields) {
		r.event(log, event.Confirmation, merge(merge(base, logrus.Fields{"outcome": outcome, "how": how}), extra))
	}
	if r.opts.Resume != nil {
		if c := r.opts.Resume.Confirmations[key]; c != nil {
			log.Infof("%s: confirmed in an earlier attempt (%q %s by %s at %s)", name, c.Word, c.How, orUnknown(c.Operator), c.Time.UTC().Format(time.RFC3339))
			record("confirmed", "earlier attempt", logrus.Fields{"earlier": c.Time.UTC().Format(time.RFC3339Nano)})
			return nil
		}
	}
	if r.opts.Yes {
		log.Infof("%s: confirmation %q given by --yes (operator %s)", name, word, orUnknown(r.opts.Operator))
		record("confirmed", "--yes", nil)
		return nil
	}
	refuse := func(why string) error {
		return &RefusedError{Pos: s.Confirm.posOr(s.Pos), Step: name, Guard: "confirm: " + word, Message: why, Declined: true}
	}
	if !r.terminal() {
		record("refused", "no terminal", nil)
		return refuse(fmt.Sprintf("this step needs confirmation (type %q) but there is no terminal: run it from a terminal or pass --yes", word))
	}
	answer, err := r.ask(ctx, r.promptText(s, name, word, env))
	hungUp := err != nil && r.hangingUp(ctx)
	switch {
	case hungUp:
		record("interrupted", "terminal hung up", nil)
		if ctx.Err() != nil {
			return &promptInterrupted{step: name, why: "a hang-up of the terminal", err: ctx.Err()}
		}
		return refuse("the terminal hung up at the prompt: nothing was confirmed")
	case ctx.Err() != nil:
		record("interrupted", "signal at the prompt", nil)
		return &promptInterrupted{step: name, why: "a signal", err: ctx.Err()}
	case err != nil:
		record("declined", "end of input", nil)
		return refuse("no confirmation was typed (the input ended)")
	case answer != word:
		record("declined", "typed", logrus.Fields{"typed": answer})
		return refuse(fmt.Sprintf("the operator typed %q, not %q", answer, word))
	}
	log.Infof("%s: confirmed: %s typed %q", name, orUnknown(r.opts.Operator), word)
	record("confirmed", "typed", nil)
	return nil
}

// hangupGrace bounds how long a prompt whose input ended waits for the
// SIGHUP that a hang-up sends with it: the end of input and the signal
// race, and a hung-up terminal is no operator's decline.
const hangupGrace = 2 * time.Second

// hangingUp reports whether the input of a prompt ended because the
// terminal hung up or a signal came: it polls, bounded by hangupGrace, for
// the run's cancellation or TerminalGone. An operator who ends the input
// (Ctrl-D) on a terminal that stays declines after that bound.
func (r *Runner) hangingUp(ctx context.Context) bool {
	gone := func() bool { return r.opts.TerminalGone != nil && r.opts.TerminalGone() }
	if ctx.Err() != nil || gone() {
		return gone()
	}
	if !r.opts.Interactive {
		return false
	}
	deadline := time.NewTimer(hangupGrace)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return gone()
		case <-deadline.C:
			return gone()
		case <-tick.C:
			if gone() {
				return true
			}
		}
	}
}

// promptInterrupted is a confirmation prompt a signal or a hang-up ended:
// nothing was confirmed; it wraps the run's cancellation.
type promptInterrupted struct {
	step, why string
	err       error
}

func (e *promptInterrupted) Error() string {
	return fmt.Sprintf("%s ended the confirmation prompt of %q: nothing was confirmed", e.why, e.step)
}
func (e *promptInterrupted) Unwrap() error { return e.err }

// promptText says what the confirmation is for: the step, the playbook's
// message (what will happen, where), the point of no return, and what a
// decline does now.
func (r *Runner) promptText(s *Step, name, word string, env *evalEnv) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n── confirmation: %s %s ──\n", s.Pos.Short(), name)
	if s.ConfirmMessage != nil {
		if msg, _, err := s.ConfirmMessage.render(kindText, env, renderDisplay); err == nil && msg != "" {
			for _, line := range strings.Split(strings.TrimSpace(msg), "\n") {
				fmt.Fprintf(&b, "  %s\n", line)
			}
		}
	}
	if p := noReturnFrom(s); p != nil {
		msg := noReturnText(p, env)
		where := "inside it"
		if p == s {
			where = "this step"
		}
		fmt.Fprintf(&b, "  Point of no return (%s): %s %s — %s\n", where, p.Pos.Short(), r.stepName(p, env), strings.TrimSpace(msg))
	}
	switch {
	case r.dispatched.Load() == 0 && r.earlierChanged():
		b.WriteString("  An earlier attempt of this run made changes (`flow status` lists them, and what a rescue put back); this attempt has made none: declining changes nothing more.\n")
	case r.dispatched.Load() == 0:
		b.WriteString("  Nothing has been changed yet: declining changes nothing.\n")
	default:
		b.WriteString("  This run has already made changes: declining runs the rescue sections that apply.\n")
	}
	fmt.Fprintf(&b, "Type %q to continue (anything else declines; Ctrl-C interrupts):\n", word)
	return r.masker.Apply(b.String())
}

// noReturnFrom is the first step marked point_of_no_return at or inside s.
func noReturnFrom(s *Step) *Step {
	if s.NoReturn != nil {
		return s
	}
	for _, c := range s.Steps {
		if p := noReturnFrom(c); p != nil {
			return p
		}
	}
	if s.Include != nil && s.Include.Playbook != nil {
		for _, c := range s.Include.Playbook.Steps {
			if p := noReturnFrom(c); p != nil {
				return p
			}
		}
	}
	return nil
}

// rescueContext is the context a rescue runs in: after an interruption it
// is not the run's (cancelled) context but one that only the operator's
// insistence (Options.Abandon) or a bound ends.
func (r *Runner) rescueContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	if r.opts.Abandon != nil {
		stop := context.AfterFunc(r.opts.Abandon, cancel)
		return rctx, func() { stop(); cancel() }
	}
	return rctx, cancel
}

// Changed reports whether the run dispatched a change (a state-changing
// step sent, or may have sent, its statement or command).
func (r *Runner) Changed() bool { return r.dispatched.Load() > 0 }

// isRefusal reports whether err is a guard's refusal, a declined
// confirmation or a plan drift (exit 3 before any change).
func isRefusal(err error) bool {
	var re *RefusedError
	if errors.As(err, &re) {
		return true
	}
	var ee *ExitError
	return errors.As(err, &ee) && ee.Code == ExitRefused
}

// rescuedError is a step's error after its rescue section ran and
// finished: the run still ends as the error says (refused, failed,
// interrupted), with the rescue's changes done.
type rescuedError struct{ err error }

func (e *rescuedError) Error() string { return e.err.Error() }
func (e *rescuedError) Unwrap() error { return e.err }

// rescueError is a step's error whose rescue section failed too: the
// cluster is not in the state the rescue leaves, so the run failed
// (exit 1) whatever stopped it.
type rescueError struct{ err, rescue error }

func (e *rescueError) Error() string {
	return fmt.Sprintf("%v; and its rescue failed: %v", e.err, e.rescue)
}
func (e *rescueError) Unwrap() error { return e.err }

// rescueFailed reports whether a rescue section failed on the way of err.
func rescueFailed(err error) bool {
	var re *rescueError
	return errors.As(err, &re)
}

// Rescuing names the rescue sections running now and the step each is
// at, for the operator who signals again during them.
func (r *Runner) Rescuing() []string {
	r.rescueMu.Lock()
	defer r.rescueMu.Unlock()
	out := make([]string, 0, len(r.rescuing))
	for _, n := range r.rescuing {
		out = append(out, n)
	}
	if c := r.current.Load(); c != nil && len(out) > 0 {
		out[len(out)-1] += " (now at: " + *c + ")"
	}
	return out
}

// RescueOutcome is how one rescue section of the run ended.
type RescueOutcome struct {
	// Step is the rescued step ("file:line name").
	Step string
	// Outcome is done or failed.
	Outcome string
	// Changes counts the state-changing steps the rescue sent.
	Changes int64
}

// Outcome is what a run changed: the state-changing steps it sent and
// how its rescue sections ended, for the closing message.
type Outcome struct {
	Changes int64
	Rescues []RescueOutcome
	// NoReturn is the message of the last point of no return the run
	// passed ("" when none): a rollback is refused, resume is the way on.
	NoReturn string
}

// Outcome reports what the run changed so far.
func (r *Runner) Outcome() Outcome {
	r.rescueMu.Lock()
	defer r.rescueMu.Unlock()
	o := Outcome{Changes: r.dispatched.Load(), Rescues: append([]RescueOutcome(nil), r.rescued...)}
	if m := r.noReturnMsg.Load(); m != nil {
		o.NoReturn = *m
	}
	return o
}

// noteRescue keeps a rescue section's outcome.
func (r *Runner) noteRescue(s *Step, name, outcome string, changes int64) {
	r.rescueMu.Lock()
	defer r.rescueMu.Unlock()
	r.rescued = append(r.rescued, RescueOutcome{Step: s.Pos.Short() + " " + name, Outcome: outcome, Changes: changes})
}

// journalHook sends every log line to the journal (event log: level,
// message, playbook file:line, worker), secrets masked: the journal is the
// audit record, whatever the terminal showed. Event lines of the JSON
// stream are events already and are not repeated.
type journalHook struct{ r *Runner }

func (h journalHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h journalHook) Fire(e *logrus.Entry) error {
	if _, isEvent := e.Data["event"]; isEvent {
		return nil
	}
	f := map[string]any{"level": e.Level.String(), "msg": h.r.masker.Apply(e.Message)}
	for k, v := range e.Data {
		switch k {
		case logfmt.FieldFile, logfmt.FieldLine, logfmt.FieldID:
			f[k] = v
		}
	}
	if err := h.r.opts.Journal.Record(event.Log, f, false); err != nil {
		h.r.journalErr.CompareAndSwap(nil, &err)
	}
	return nil
}
