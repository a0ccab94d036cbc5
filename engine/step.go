package engine

// One step's lifecycle: resume record, when, preconditions, confirmation, run, rescue and always, its events.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowdba/flow/engine/secret"
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
	for i, p := range e.parts {
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
		if i < len(e.psecret) && e.psecret[i] {
			val = secret.Mask
		}
		parts = append(parts, name+"="+val)
	}
	return r.masker.Apply(strings.Join(parts, ", "))
}

// step runs one step with its guards, retries, rescue and always sections.
func (r *Runner) step(ctx context.Context, w *worker, sc *scope, s *Step) (err error) {
	key := stepKey(ctx, s)
	ctx = withKey(ctx, key)
	env := sc.env()
	name := r.stepName(s, env)
	log := r.entry(w, s.Playbook, s.Pos)
	start := time.Now()
	base := logrus.Fields{"step": s.ID, "name": name, "line": s.Pos.Line, "type": s.Type, "mutates": s.Mutates(), "key": key}
	if jerr := r.journalErr.Load(); jerr != nil {
		return fmt.Errorf("the run journal cannot be written, so no further step runs: %w", *jerr)
	}
	if herr := r.heldErr(); herr != nil {
		return fmt.Errorf("%s: no further step runs: %w", s.Pos.Short(), herr)
	}
	leafStep := s.Type != "group" && s.Type != "include"
	if rec := r.resumeRecord(key); rec != nil {
		// a step an earlier attempt finished is not run again: its output
		// comes back from the journal
		if leafStep && rec.Status == StepFinished && !recomputed(s) && !r.opts.Resume.Rerun[key] {
			r.setResult(sc, s, rec.Output)
			log.Infof("%s done in an earlier attempt (%s), not repeated", name, rec.Ended.UTC().Format(time.RFC3339))
			r.event(log, "step_restored", merge(base, logrus.Fields{"finished": rec.Ended.UTC().Format(time.RFC3339Nano)}))
			return nil
		}
		if rec.RescueStarted && !rec.RescueFinished && len(s.Rescue) > 0 {
			log.Warnf("%s: its rescue section did not finish in an earlier attempt: running it again before the step starts over", name)
			r.opts.Resume.drop(key + " rescue") // the rescue runs from its start: its earlier steps are not judged
			if rerr := r.rescue(ctx, w, sc, s, key, name, log, rec.Error); rerr != nil {
				return &StepError{Pos: s.Pos, Step: name, Err: fmt.Errorf("the rescue section of an earlier attempt, run again, failed: %w", rerr)}
			}
		}
	}

	// when
	if s.When != nil {
		if env.unknown(s.When) {
			if r.opts.Mode == ModeRun {
				return fmt.Errorf("%s: `when` reads unknown values %v", s.When.Pos, env.unknownRefs(s.When))
			}
			r.verdict(ctx, s, name, "UNKNOWN", fmt.Sprintf("`when: %s` depends on %s", oneLine(s.When.Src), strings.Join(env.unknownRefs(s.When), ", ")), nil)
			if s.Type == "group" || s.Type == "include" {
				// list what the group would do, executing nothing in it
				sctx := context.WithValue(ctx, speculativeKey{}, true)
				if s.Type == "group" {
					_ = r.group(sctx, w, sc, s, name)
				} else {
					_ = r.include(sctx, w, sc, s, name)
				}
			}
			r.markUnknownCounted(ctx, sc, s)
			return nil
		}
		ok, err := evalBool(s.When, env)
		if err != nil {
			return &StepError{Pos: s.When.Pos, Step: name, Err: err}
		}
		if !ok {
			why := fmt.Sprintf("`when: %s` is false (%s)", oneLine(s.When.Src), r.seen(s.When, env))
			log.Infof("%s skipped: %s", name, why)
			r.event(log, "step_skipped", merge(base, logrus.Fields{"reason": why}))
			if r.opts.Mode != ModeRun {
				r.verdict(ctx, s, name, "WILL SKIP", why, nil)
			}
			if s.ID != "" {
				sc.setStep(s.ID, map[string]any{"ok": false, "skipped": true, "error": "", "output": map[string]any{}}, false)
			}
			return nil
		}
	}
	// preconditions
	for _, g := range s.Pre {
		if refused, unknown, err := r.checkGuard(g, s, name, env, "pre"); err != nil {
			return err
		} else if unknown != "" {
			if r.opts.Mode == ModeRun {
				return fmt.Errorf("%s: guard reads unknown values %s", g.That.Pos, unknown)
			}
			r.verdict(ctx, s, name, "UNKNOWN", "precondition `"+oneLine(g.That.Src)+"` depends on "+unknown, nil)
			r.markUnknownCounted(ctx, sc, s)
			return nil
		} else if refused != nil {
			if r.opts.Mode == ModeRun {
				log.Errorf("%s refused: %s", name, r.masker.Apply(refused.Error()))
			}
			r.event(log, "step_refused", merge(base, logrus.Fields{"error": r.masker.Apply(refused.Error())}))
			if r.opts.Mode != ModeRun {
				r.verdict(ctx, s, name, "REFUSED", refused.Error(), nil)
			}
			return refused
		}
	}
	if leafStep && s.Spec != nil && s.Spec.Mutates() {
		// an interrupted change is judged before it is recorded as started
		// again: a resume that stops here leaves its record as it was
		if rec := r.resumeRecord(key); rec != nil && (rec.Status == StepStarted || rec.Status == StepFailed) {
			v, err := r.judge(ctx, w, sc, s, key, name, log, rec)
			if err != nil {
				return err
			}
			ctx = context.WithValue(ctx, resumeVerdictKey{}, v)
		}
	}
	if r.opts.Mode != ModeRun {
		r.previewGates(ctx, s, name, env)
	}
	if !leafStep && s.Confirm != nil && r.opts.Mode == ModeRun && !speculative(ctx) {
		// a group's or include's confirmation point: asked before its first step
		if cerr := r.confirm(ctx, s, key, name, env, log); cerr != nil {
			r.event(log, event.StepRefused, merge(base, logrus.Fields{"error": r.masker.Apply(cerr.Error())}))
			return cerr
		}
	}
	log.Debugf("%s start", name)
	r.event(log, event.StepStarted, base)
	cur := fmt.Sprintf("%s %s", s.Pos.Short(), name)
	r.current.Store(&cur)
	changesBefore := r.dispatched.Load()
	defer func() {
		if err != nil && len(s.Rescue) > 0 && r.opts.Mode == ModeRun {
			err = r.rescueAfter(ctx, w, sc, s, key, name, log, err, r.dispatched.Load() > changesBefore)
		}
		if len(s.Rescue) > 0 && r.opts.Mode != ModeRun {
			r.listRescue(ctx, w, sc, s, name)
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
			if aerr := r.steps(withKey(actx, key+" always"), w, as, s.Always); aerr != nil && err == nil {
				err = aerr
			}
		}
	}()
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
		var re *RefusedError
		if errors.As(err, &re) {
			r.event(log, "step_refused", merge(base, logrus.Fields{"duration_ms": dur.Milliseconds(), "error": r.masker.Apply(err.Error())}))
			return err
		}
		if s.Hint != nil && ctx.Err() == nil {
			if hint, _, herr := s.Hint.render(kindText, env, renderDisplay); herr == nil && hint != "" {
				err = &hintError{err: err, hint: hint}
			}
		}
		if leafStep || !errors.As(err, new(*StepError)) {
			log.Errorf("%s failed: %s", name, r.masker.Apply(err.Error()))
		} else {
			log.Infof("%s stopped by the failure above", name)
		}
		r.event(log, "step_failed", merge(base, logrus.Fields{"duration_ms": dur.Milliseconds(), "error": r.masker.Apply(err.Error())}))
		if s.ID != "" {
			sc.setStep(s.ID, map[string]any{"ok": false, "skipped": false, "error": r.masker.Apply(err.Error()), "output": map[string]any{}}, false)
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
	if r.opts.Mode == ModeRun || (leafStep && out != nil) {
		log.Infof("%s success", name)
	}
	fin := logrus.Fields{"duration_ms": dur.Milliseconds()}
	// a dry run records the output of the read-only steps it executed (a
	// saved plan keeps them); steps it only listed have none
	if leafStep && (r.opts.Mode == ModeRun || (r.opts.Mode == ModeDryRun && out != nil)) {
		if out == nil {
			out = map[string]any{}
		}
		fin["output"] = out
	}
	r.event(log, "step_finished", merge(base, fin))
	if s.ID != "" && (s.Type == "group" || s.Type == "include") {
		sc.setStep(s.ID, map[string]any{"ok": true, "skipped": false, "error": "", "output": map[string]any{}}, false)
	}
	return nil
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

// checkGuard evaluates a guard: refused is non-nil when it does not hold;
// unknown names the unknown values it depends on.
func (r *Runner) checkGuard(g *Guard, s *Step, name string, env *evalEnv, kind string) (*RefusedError, string, error) {
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
