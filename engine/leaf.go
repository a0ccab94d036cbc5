package engine

// A typed step's execution: dry-run and plan listing, plan binding, confirmation, retries (attempts).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// leaf runs a typed step: in a plan or a dry run (changes) it is listed
// (listLeaf); otherwise bound to a saved plan, confirmed, counted as
// dispatched, run with its retries (attempts), and its postconditions
// checked (refusePost).
func (r *Runner) leaf(ctx context.Context, w *worker, sc *scope, s *Step, name string, log *logrus.Entry) (map[string]any, error) {
	env := sc.env()
	key := parentKey(ctx)
	x := &Exec{r: r, step: s, sc: sc, env: env, log: log, w: w, name: name, key: key}
	mut := s.Spec.Mutates()
	if r.opts.Mode == ModePlan || (r.opts.Mode == ModeDryRun && mut) || (r.opts.Mode != ModeRun && speculative(ctx)) {
		return nil, r.listLeaf(ctx, x)
	}
	resumed := false
	var out map[string]any
	if v, ok := ctx.Value(resumeVerdictKey{}).(*resumeVerdict); ok && v.key == key && v.done {
		resumed, out = true, v.out
	}
	if mut && r.opts.Mode == ModeRun && r.opts.Binder != nil && !resumed {
		if err := r.bindChange(x); err != nil {
			return nil, err
		}
	}
	if mut && s.Confirm != nil && !resumed {
		if err := r.confirm(ctx, s, key, name, env, log); err != nil {
			return nil, err
		}
	}
	if mut {
		r.mutated.Store(true)
		if r.opts.Mode == ModeRun {
			r.passNoReturn(s, env)
		}
		if !resumed && r.opts.Mode == ModeRun {
			// from here the change may happen: a point of no return counts
			r.dispatched.Add(1)
			r.event(log, event.StepDispatched, stepFields(s, name, key))
		}
	}
	if r.opts.Mode == ModeDryRun {
		r.verdict(ctx, s, name, "RUNS", "read-only: executed for real", nil)
	}
	if !resumed {
		var err error
		out, err = r.attempts(ctx, x, s, name, log)
		if err != nil {
			return nil, err
		}
	}
	if !mut && r.opts.Mode == ModeRun && r.opts.Binder != nil {
		if err := r.opts.Binder.Observed(key, s, out); err != nil {
			return nil, &ExitError{Code: ExitRefused, Err: &StepError{Pos: s.Pos, Step: name, Err: err}}
		}
	}
	if out == nil {
		out = map[string]any{}
	}
	r.setResult(sc, s, out)
	if err := r.refusePost(x, out); err != nil {
		return nil, err
	}
	return out, nil
}

// listLeaf lists a typed step a plan or dry run does not execute: its
// verdict and rendered actions, and the state it would leave simulated
// (effects known now, outputs unknown; a set step with known inputs
// computes for real even in a plan).
func (r *Runner) listLeaf(ctx context.Context, x *Exec) error {
	s, sc, env, name := x.step, x.sc, x.env, x.name
	mut := s.Spec.Mutates()
	rd := &Render{r: r, env: env, step: s}
	actions, err := s.Spec.Render(rd)
	if err != nil {
		return &StepError{Pos: s.Pos, Step: name, Err: err}
	}
	verdict := "WILL RUN"
	if rd.unknown || speculative(ctx) {
		verdict = "UNKNOWN"
		r.countUnknown(ctx)
	}
	if listingRescue(ctx) {
		verdict = "ON RESCUE"
	}
	reason := ""
	if !mut {
		reason = "read-only"
	}
	if mut && !listingRescue(ctx) {
		r.changes.Add(1)
		r.mutated.Store(true)
	}
	r.verdict(ctx, s, name, verdict, reason, actions)
	// simulated state: effects, and unknown outputs
	if s.Register != "" {
		sc.set(s.Register, Unknown{Why: name}, true)
	}
	if s.ID != "" {
		sc.setStep(s.ID, map[string]any{}, true)
	}
	if st, ok := s.Spec.(Setter); ok && r.opts.Mode == ModePlan {
		for _, n := range st.SetsVars() {
			sc.set(n, Unknown{Why: name}, true)
		}
	}
	if r.opts.Mode == ModePlan && !mut {
		if _, isSetter := s.Spec.(Setter); isSetter && !rd.unknown {
			// a set step with known inputs computes for real even in a plan
			if _, err := s.Spec.Run(ctx, x); err == nil {
				return nil
			}
		}
	}
	for _, n := range sortedKeys(s.Effect) {
		e := s.Effect[n]
		if env.unknown(e) {
			sc.set(n, Unknown{Why: e.Src}, true)
			continue
		}
		v, err := runExpr(e, env.vars)
		if err != nil {
			return &StepError{Pos: e.Pos, Step: name, Err: err}
		}
		sc.set(n, v, false)
	}
	return nil
}

// bindChange shows a saved plan (flow run --plan) what a state-changing
// step is about to execute; a difference refuses the step.
func (r *Runner) bindChange(x *Exec) error {
	s, name := x.step, x.name
	rd := &Render{r: r, env: x.env, step: s}
	actions, err := s.Spec.Render(rd)
	if err != nil {
		return &StepError{Pos: s.Pos, Step: name, Err: err}
	}
	if err := r.opts.Binder.Change(x.key, s, actions); err != nil {
		return &ExitError{Code: ExitRefused, Err: &StepError{Pos: s.Pos, Step: name, Err: err}}
	}
	return nil
}

// refusePost checks a step's postconditions against its output `result`.
func (r *Runner) refusePost(x *Exec, out map[string]any) error {
	s := x.step
	if len(s.Post) == 0 {
		return nil
	}
	penv := x.sc.env()
	penv.vars["result"] = out
	for _, g := range s.Post {
		refused, _, err := r.evalGuard(g, s, x.name, penv, "post")
		if err != nil {
			return err
		}
		if refused != nil {
			refused.Guard = "post: " + refused.Guard
			return refused
		}
	}
	return nil
}

// attempts runs a step with its retries/until/interval/timeout: a bounded
// poll, never a fixed sleep.
func (r *Runner) attempts(ctx context.Context, x *Exec, s *Step, name string, log *logrus.Entry) (map[string]any, error) {
	polling := s.Until != nil || s.Retries > 0
	interval, err := x.interval()
	if err != nil {
		return nil, err
	}
	if interval == 0 {
		interval = 500 * time.Millisecond
	}
	timeout, err := x.timeout()
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	max := 1
	if polling {
		max = s.Retries + 1
		if s.Retries == 0 {
			max = int(^uint(0) >> 1) // bounded by the timeout
		}
	}
	start := time.Now()
	var lastErr error
	var lastWhy string
	for attempt := 1; ; attempt++ {
		out, err := s.Spec.Run(ctx, x)
		if err == nil && s.Until == nil {
			return out, nil
		}
		if err == nil {
			env := x.sc.env()
			env.vars["result"] = out
			if s.Register != "" {
				env.vars[s.Register] = out
			}
			ok, eerr := evalBool(s.Until, env)
			if eerr != nil {
				return nil, eerr
			}
			if ok {
				if attempt > 1 {
					log.Debugf("%s: `%s` holds after %d attempts, %s", name, oneLine(s.Until.Src), attempt, time.Since(start).Round(time.Millisecond))
				}
				return out, nil
			}
			lastErr = nil
			lastWhy = fmt.Sprintf("`until: %s` still false (%s)", oneLine(s.Until.Src), r.seen(s.Until, env))
		} else {
			lastErr = err
			lastWhy = err.Error()
			if !polling {
				if timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, fmt.Errorf("timed out after %s (timeout: %s): %w", time.Since(start).Round(time.Millisecond), timeout, err)
				}
				return nil, err
			}
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				break
			}
		}
		if attempt >= max {
			break
		}
		log.Debugf("%s: waiting (attempt %d%s, %s elapsed): %s", name, attempt, maxText(max), time.Since(start).Round(time.Millisecond), r.masker.Apply(lastWhy))
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			goto done
		case <-t.C:
		}
	}
done:
	elapsed := time.Since(start).Round(time.Millisecond)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
		return nil, fmt.Errorf("timed out after %s (timeout: %s) waiting for %s", elapsed, timeout, r.masker.Apply(lastWhy))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if lastErr != nil {
		return nil, fmt.Errorf("still failing after %d attempts over %s: %w", max, elapsed, lastErr)
	}
	return nil, fmt.Errorf("gave up after %d attempts over %s: %s", max, elapsed, r.masker.Apply(lastWhy))
}

func maxText(max int) string {
	if max == int(^uint(0)>>1) {
		return ""
	}
	return fmt.Sprintf("/%d", max)
}
