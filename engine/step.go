package engine

// One step's lifecycle: resume record, when, preconditions, confirmation, run, rescue and always, its events.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

func (r *Runner) steps(ctx context.Context, w *worker, sc *scope, steps []*Step) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.step(ctx, w, sc, s); err != nil {
			return err
		}
	}
	return nil
}

// stepName renders a step's name.
func (r *Runner) stepName(s *Step, env *evalEnv) string {
	if s.nameT == nil {
		return s.Name
	}
	out, _, err := s.nameT.render(kindText, env, renderDisplay)
	if err != nil {
		return s.Name
	}
	return out
}

// seen renders the values an expression read, for refusals and skips.
func (r *Runner) seen(e *Expr, env *evalEnv) string {
	var parts []string
	for i, p := range e.chainPrograms() {
		if p == nil {
			continue
		}
		name := e.pnames[i]
		root := name
		if j := strings.IndexAny(root, ".["); j >= 0 {
			root = root[:j]
		}
		var val string
		if env.unknowns[root] {
			val = "<unknown>"
		} else if v, err := runExprProg(p, env.vars); err != nil {
			val = "<" + firstLine(err.Error()) + ">"
		} else {
			val = displayValue(v, 200)
		}
		parts = append(parts, name+"="+val)
	}
	return r.masker.Apply(strings.Join(parts, ", "))
}

// stepRun is what one step's lifecycle carries from stage to stage.
type stepRun struct {
	w    *worker
	sc   *scope
	s    *Step
	env  *evalEnv
	key  string
	name string
	log  *logrus.Entry
	// base are the fields every event of the step carries.
	base logrus.Fields
	// leaf says the step is a typed step, not a group or an include.
	leaf bool
	// noReturnsBefore is Runner.noReturns when the step started: more
	// when it ends means a point of no return was passed inside it.
	noReturnsBefore int64
}

// step runs one step with its guards, retries, rescue and always sections.
// Its stages, in order: may the run go on (runnable); what an earlier
// attempt recorded (fromEarlierAttempt); `when` (skipWhen); preconditions
// (refusePre); an interrupted change judged (judgeEarlierChange); a group's
// confirmation point; the step itself (leaf, group or include); its
// outcome (failed or finished); then its rescue and always sections (after).
func (r *Runner) step(ctx context.Context, w *worker, sc *scope, s *Step) (err error) {
	key := stepKey(ctx, s)
	ctx = withKey(ctx, key)
	env := sc.env()
	if s.SkippedBy != nil {
		return r.skippedBySite(ctx, w, sc, s, key)
	}
	name := r.stepName(s, env)
	st := &stepRun{w: w, sc: sc, s: s, env: env, key: key, name: name, log: r.entry(w, s.Playbook, s.Pos),
		base: merge(stepFields(s, name, key), logrus.Fields{"type": s.Type, "mutates": s.Mutates()}),
		leaf: s.Type != "group" && s.Type != "include"}
	log := st.log
	start := time.Now()
	if err := r.runnable(s); err != nil {
		return err
	}
	if done, err := r.fromEarlierAttempt(ctx, st); done || err != nil {
		return err
	}
	if done, err := r.skipWhen(ctx, st); done || err != nil {
		return err
	}
	if done, err := r.refusePre(ctx, st); done || err != nil {
		return err
	}
	if ctx, err = r.judgeEarlierChange(ctx, st); err != nil {
		return err
	}
	if r.opts.Mode != ModeRun {
		r.previewGates(ctx, s, name, env)
	}
	if !st.leaf && s.Confirm != nil && r.opts.Mode == ModeRun && !speculative(ctx) {
		// a group's or include's confirmation point: asked before its first step
		if cerr := r.confirm(ctx, s, key, name, env, log); cerr != nil {
			// a decline is a refusal; a signal at the prompt ended the block
			// as it ends a typed step (failed, the run interrupted)
			ev := event.StepRefused
			var pi *promptInterrupted
			if errors.As(cerr, &pi) {
				ev = event.StepFailed
			}
			r.event(log, ev, merge(st.base, logrus.Fields{"error": r.masker.Apply(cerr.Error())}))
			return cerr
		}
	}
	log.Debugf("%s start", name)
	r.event(log, event.StepStarted, st.base)
	cur := fmt.Sprintf("%s %s", s.Pos.Short(), name)
	r.current.Store(&cur)
	changesBefore := r.dispatched.Load()
	st.noReturnsBefore = r.noReturns.Load()
	defer func() { err = r.after(ctx, st, err, r.dispatched.Load() > changesBefore) }()
	var out map[string]any
	switch s.Type {
	case "group":
		err = r.group(ctx, w, sc, s, name)
	case "include":
		err = r.include(ctx, w, sc, s, name)
	default:
		out, err = r.leaf(ctx, w, sc, s, name, log)
	}
	dur := time.Since(start)
	if err != nil {
		return r.failed(ctx, st, err, dur)
	}
	r.finished(st, out, dur)
	return nil
}

// runnable says whether a further step may start: not after the journal
// failed to record, nor after a held resource (a lock) was lost.
func (r *Runner) runnable(s *Step) error {
	if jerr := r.journalErr.Load(); jerr != nil {
		return fmt.Errorf("the run journal cannot be written, so no further step runs: %w", *jerr)
	}
	if herr := r.heldErr(); herr != nil {
		return fmt.Errorf("%s: no further step runs: %w", s.Pos.Short(), herr)
	}
	return nil
}

// fromEarlierAttempt applies what an earlier attempt of a resumed run
// recorded for the step: a typed step it finished is not run again (done;
// its output comes back from the journal), and a rescue section it did not
// finish runs again before the step starts over.
func (r *Runner) fromEarlierAttempt(ctx context.Context, st *stepRun) (done bool, err error) {
	s, log := st.s, st.log
	rec := r.resumeRecord(st.key)
	if rec == nil {
		return false, nil
	}
	// after earlier attempts that changed nothing, a read-only step runs
	// again: what it read (verify's checks) may be stale by now, and nothing
	// depends on the old answer
	fresh := !s.Mutates() && r.opts.Resume.changedNothing()
	if st.leaf && rec.Status == StepFinished && !recomputed(s) && !r.opts.Resume.Rerun[st.key] && !fresh {
		r.setResult(st.sc, s, rec.Output)
		r.passNoReturn(s, st.env)
		log.Infof("%s done in an earlier attempt (%s), not repeated", st.name, rec.Ended.UTC().Format(time.RFC3339))
		r.event(log, event.StepRestored, merge(st.base, logrus.Fields{"finished": rec.Ended.UTC().Format(time.RFC3339Nano)}))
		return true, nil
	}
	if rec.RescueStarted && !rec.RescueFinished && len(s.Rescue) > 0 {
		log.Warnf("%s: its rescue section did not finish in an earlier attempt: running it again before the step starts over", st.name)
		r.opts.Resume.drop(st.key + " rescue") // the rescue runs from its start: its earlier steps are not judged
		if rerr := r.rescue(ctx, st.w, st.sc, s, st.key, st.name, log, rec.Error); rerr != nil {
			return true, &StepError{Pos: s.Pos, Step: st.name, Err: fmt.Errorf("the rescue section of an earlier attempt, run again, failed: %w", rerr)}
		}
	}
	return false, nil
}

// skipWhen evaluates the step's `when`: done when the step is skipped (or,
// in a dry run or plan, listed UNKNOWN because only a real run knows).
func (r *Runner) skipWhen(ctx context.Context, st *stepRun) (done bool, err error) {
	s, env, name, log := st.s, st.env, st.name, st.log
	if s.When == nil {
		return false, nil
	}
	if env.unknown(s.When) {
		if r.opts.Mode == ModeRun {
			return true, fmt.Errorf("%s: `when` reads unknown values %v", s.When.Pos, env.unknownRefs(s.When))
		}
		r.verdict(ctx, s, name, "UNKNOWN", fmt.Sprintf("`when: %s` depends on %s", oneLine(s.When.Src), strings.Join(env.unknownRefs(s.When), ", ")), nil)
		if s.Type == "group" || s.Type == "include" {
			// list what the group would do, executing nothing in it
			sctx := context.WithValue(ctx, speculativeKey{}, true)
			if s.Type == "group" {
				_ = r.group(sctx, st.w, st.sc, s, name)
			} else {
				_ = r.include(sctx, st.w, st.sc, s, name)
			}
		}
		r.markUnknownCounted(ctx, st.sc, s)
		return true, nil
	}
	ok, err := evalBool(s.When, env)
	if err != nil {
		return true, &StepError{Pos: s.When.Pos, Step: name, Err: err}
	}
	if ok {
		return false, nil
	}
	why := fmt.Sprintf("`when: %s` is false (%s)", oneLine(s.When.Src), r.seen(s.When, env))
	r.skipped(ctx, st.sc, s, name, log, st.base, why)
	return true, nil
}

// refusePre checks the step's preconditions: done when one does not hold
// (the refusal is the error) or, in a dry run or plan, one reads values
// only a real run knows.
func (r *Runner) refusePre(ctx context.Context, st *stepRun) (done bool, err error) {
	s, name, log := st.s, st.name, st.log
	for _, g := range s.Pre {
		if refused, unknown, err := r.evalGuard(g, s, name, st.env, "pre"); err != nil {
			return true, err
		} else if unknown != "" {
			if r.opts.Mode == ModeRun {
				return true, fmt.Errorf("%s: guard reads unknown values %s", g.That.Pos, unknown)
			}
			r.verdict(ctx, s, name, "UNKNOWN", "precondition `"+oneLine(g.That.Src)+"` depends on "+unknown, nil)
			r.markUnknownCounted(ctx, st.sc, s)
			return true, nil
		} else if refused != nil {
			if r.opts.Mode == ModeRun {
				log.Errorf("%s refused: %s", name, r.masker.Apply(refused.Error()))
			}
			r.event(log, event.StepRefused, merge(st.base, logrus.Fields{"error": r.masker.Apply(refused.Error())}))
			if r.opts.Mode != ModeRun {
				r.verdict(ctx, s, name, "REFUSED", refused.Error(), nil)
			}
			return true, refused
		}
	}
	return false, nil
}

// judgeEarlierChange judges a state-changing step an earlier attempt
// started but did not finish, before it is recorded as started again (a
// resume that stops here leaves its record as it was); the verdict rides
// on the returned context to leaf.
func (r *Runner) judgeEarlierChange(ctx context.Context, st *stepRun) (context.Context, error) {
	s := st.s
	if !st.leaf || s.Spec == nil || !s.Spec.Mutates() {
		return ctx, nil
	}
	rec := r.resumeRecord(st.key)
	if rec == nil || (rec.Status != StepStarted && rec.Status != StepFailed) {
		return ctx, nil
	}
	v, err := r.judge(ctx, st.w, st.sc, s, st.key, st.name, st.log, rec)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, resumeVerdictKey{}, v), nil
}

// after runs, once the step ended with err, its rescue section (a real
// run; a dry run or plan lists it) and its always section (which sees
// `error`, and gets a bounded context of its own after an interruption).
// It returns the step's error as they leave it.
func (r *Runner) after(ctx context.Context, st *stepRun, err error, changedInside bool) error {
	s, sc := st.s, st.sc
	if err != nil && len(s.Rescue) > 0 && r.opts.Mode == ModeRun {
		if r.noReturns.Load() > st.noReturnsBefore {
			err = r.pastNoReturn(ctx, st, err)
		} else {
			err = r.rescueAfter(ctx, st.w, sc, s, st.key, st.name, st.log, err, changedInside)
		}
	}
	if len(s.Rescue) > 0 && r.opts.Mode != ModeRun {
		r.listRescue(ctx, st.w, sc, s, st.name)
	}
	if len(s.Always) > 0 {
		as := newScope(sc)
		msg := ""
		if err != nil {
			msg = r.masker.Apply(err.Error())
		}
		as.set("error", msg, false)
		actx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
		}
		if aerr := r.steps(withKey(actx, st.key+" always"), st.w, as, s.Always); aerr != nil && err == nil {
			err = aerr
		}
	}
	return err
}

// failed records a step that ended with err (refused, or failed: its hint
// added, its result set, ignore_errors applied) and returns the error the
// run goes on with.
func (r *Runner) failed(ctx context.Context, st *stepRun, err error, dur time.Duration) error {
	s, name, log := st.s, st.name, st.log
	var re *RefusedError
	if errors.As(err, &re) {
		r.event(log, event.StepRefused, merge(st.base, logrus.Fields{"duration_ms": dur.Milliseconds(), "error": r.masker.Apply(err.Error())}))
		return err
	}
	if s.Hint != nil && ctx.Err() == nil {
		if hint, _, herr := s.Hint.render(kindText, st.env, renderDisplay); herr == nil && hint != "" {
			err = &hintError{err: err, hint: hint}
		}
	}
	if st.leaf || !errors.As(err, new(*StepError)) {
		log.Errorf("%s failed: %s", name, r.masker.Apply(err.Error()))
	} else {
		log.Infof("%s stopped by the failure above", name)
	}
	// interrupted: the run's context ended (Ctrl-C, a signal, a hang-up), not the step's own failure
	r.event(log, event.StepFailed, merge(st.base, logrus.Fields{"duration_ms": dur.Milliseconds(), "error": r.masker.Apply(err.Error()),
		"interrupted": ctx.Err() != nil}))
	if s.ID != "" {
		st.sc.setStep(s.ID, map[string]any{"ok": false, "skipped": false, "error": r.masker.Apply(err.Error()), "output": map[string]any{}}, false)
	}
	var se *StepError
	var ee *ExitError
	if !errors.As(err, &se) && !errors.As(err, &ee) && s.Type != "group" && s.Type != "include" {
		err = &StepError{Pos: s.Pos, Step: name, Err: err}
	}
	if s.IgnoreErrors && ctx.Err() == nil {
		log.Warnf("%s: error ignored (ignore_errors): %s", name, r.masker.Apply(err.Error()))
		return nil
	}
	return err
}

// finished records a step that succeeded, with the output a typed step
// gave (a dry run: the read-only steps it executed).
func (r *Runner) finished(st *stepRun, out map[string]any, dur time.Duration) {
	s := st.s
	if r.opts.Mode == ModeRun || (st.leaf && out != nil) {
		st.log.Infof("%s success", st.name)
	}
	fin := logrus.Fields{"duration_ms": dur.Milliseconds()}
	// a dry run records the output of the read-only steps it executed (a
	// saved plan keeps them); steps it only listed have none
	if st.leaf && (r.opts.Mode == ModeRun || (r.opts.Mode == ModeDryRun && out != nil)) {
		if out == nil {
			out = map[string]any{}
		}
		fin["output"] = out
	}
	r.event(st.log, event.StepFinished, merge(st.base, fin))
	if s.ID != "" && (s.Type == "group" || s.Type == "include") {
		st.sc.setStep(s.ID, map[string]any{"ok": true, "skipped": false, "error": "", "output": map[string]any{}}, false)
	}
}

func (r *Runner) markUnknown(sc *scope, s *Step) {
	r.unknown.Add(1)
	if s.Mutates() {
		r.changes.Add(1)
	}
	r.markUnknownVars(sc, s)
}

// markUnknownVars makes what a step would set unknown (a dry run or plan
// cannot know it).
func (r *Runner) markUnknownVars(sc *scope, s *Step) {
	if s.Register != "" {
		sc.set(s.Register, Unknown{Why: s.Name}, true)
	}
	if s.ID != "" {
		sc.setStep(s.ID, map[string]any{}, true)
	}
	if st, ok := s.Spec.(Setter); ok {
		for _, n := range st.SetsVars() {
			sc.set(n, Unknown{Why: s.Name}, true)
		}
	}
	for n := range s.Effect {
		sc.set(n, Unknown{Why: s.Name}, true)
	}
}

// evalGuard evaluates a guard: refused is non-nil when it does not hold;
// unknown names the unknown values it depends on.
func (r *Runner) evalGuard(g *Guard, s *Step, name string, env *evalEnv, kind string) (*RefusedError, string, error) {
	if env.unknown(g.That) {
		return nil, strings.Join(env.unknownRefs(g.That), ", "), nil
	}
	ok, err := evalBool(g.That, env)
	if err != nil {
		return nil, "", &StepError{Pos: g.That.Pos, Step: name, Err: err}
	}
	if ok {
		return nil, "", nil
	}
	re := &RefusedError{Pos: g.That.Pos, Step: name, Guard: oneLine(g.That.Src), Seen: r.seen(g.That, env)}
	if g.Message != nil {
		msg, _, err := g.Message.render(kindText, env, renderDisplay)
		if err == nil {
			re.Message = r.masker.Apply(msg)
		}
	}
	return re, "", nil
}

func evalBool(e *Expr, env *evalEnv) (bool, error) {
	v, err := runExpr(e, env.vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s: `%s` gave %T, not a boolean", e.Pos, oneLine(e.Src), v)
	}
	return b, nil
}
