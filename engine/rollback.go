package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// UndoEntry is one finished step whose `undo:` a rollback runs.
type UndoEntry struct {
	Key      string
	Name     string
	Pos      Pos
	Finished time.Time
	seq      int64
	step     *Step
	sc       *scope
	out      map[string]any
}

// RollbackPlan is what `flow rollback` would do with a run: the undo steps
// of the state-changing steps that finished, newest first.
type RollbackPlan struct {
	Entries []*UndoEntry
	// NoReturn is set when the run started a step marked
	// point_of_no_return: a rollback is refused.
	NoReturn string
	// NotUndone are state-changing steps a rollback leaves as they are:
	// interrupted ones (not known to have taken effect) and finished ones
	// that declare no undo.
	NotUndone []string
	// Warnings are parts of the playbook the rollback could not replay.
	Warnings []string
}

// Rollback undoes a run (Options.Resume holds its journal): it replays the
// playbook without executing anything to rebuild each finished step's
// scope, refuses if the run passed a point of no return, prints the plan,
// and (ModeRun) runs the undo steps newest change first; ModeDryRun
// previews them (read-only steps run, changes are listed).
func (r *Runner) Rollback(ctx context.Context, pb *Playbook) error {
	defer r.pool.close()
	defer r.release()
	r.started = time.Now()
	if r.opts.Resume == nil {
		return Invalid(errors.New("rollback needs the run's journal"))
	}
	root := newScope(nil)
	if err := r.bindParams(pb, root, nil); err != nil {
		return Invalid(err)
	}
	plan := &RollbackPlan{}
	w := &worker{id: 1}
	r.walk(ctx, w, root, pb.Steps, plan)
	sort.SliceStable(plan.Entries, func(i, j int) bool { return plan.Entries[i].seq > plan.Entries[j].seq })
	r.printPlan(plan)
	if plan.NoReturn != "" {
		return &ExitError{Code: ExitRefused, Err: errors.New(plan.NoReturn)}
	}
	if len(plan.Entries) == 0 {
		r.printf("Nothing to undo.\n")
		return nil
	}
	if r.opts.Mode == ModeRun && !r.opts.Yes {
		if !r.opts.Interactive || r.opts.Stdin == nil {
			return &ExitError{Code: ExitRefused, Err: errors.New("rollback changes state and needs confirmation: run it from a terminal or pass --yes")}
		}
		r.prompt("Type %q to run the rollback above:\n", "rollback")
		line, _ := bufio.NewReader(r.opts.Stdin).ReadString('\n')
		if strings.TrimSpace(line) != "rollback" {
			return &ExitError{Code: ExitRefused, Err: fmt.Errorf("the operator typed %q, not %q: nothing was undone", strings.TrimSpace(line), "rollback")}
		}
	}
	log := r.entry(w, pb, Pos{File: pb.File, Line: 1})
	r.event(log, event.RollbackStarted, logrus.Fields{"run_id": r.opts.RunID, "undo": len(plan.Entries), "mode": r.modeName()})
	for i, e := range plan.Entries {
		elog := r.entry(w, e.step.Playbook, e.Pos)
		elog.Infof("undo %d/%d: %s (finished %s)", i+1, len(plan.Entries), e.Name, e.Finished.UTC().Format(time.RFC3339))
		base := logrus.Fields{"key": e.Key, "name": e.Name, "line": e.Pos.Line}
		r.event(elog, event.UndoStarted, base)
		us := newScope(e.sc)
		us.set("result", e.out, false)
		if err := r.steps(withKey(ctx, e.Key+" undo"), w, us, e.step.Undo); err != nil {
			var left []string
			for _, l := range plan.Entries[i+1:] {
				left = append(left, fmt.Sprintf("%s %q", l.Pos.Short(), l.Name))
			}
			r.event(log, event.RollbackFinished, logrus.Fields{"status": "failed", "error": r.masker.Apply(err.Error())})
			msg := fmt.Sprintf("undoing %s %q failed: %v", e.Pos.Short(), e.Name, err)
			if len(left) > 0 {
				msg += "\n  not undone yet (newest first): " + strings.Join(left, ", ")
			}
			msg += "\n  fix the cause and run `flow rollback` again: undos that finished are not repeated"
			return r.classify(ctx, errors.New(r.masker.Apply(msg)))
		}
		r.event(elog, event.UndoFinished, base)
	}
	if r.opts.Mode == ModeRun {
		r.event(log, event.RollbackFinished, logrus.Fields{"status": "success", "undone": len(plan.Entries)})
		log.Infof("%s rolled back: %d change(s) undone", pb.Name, len(plan.Entries))
	} else {
		r.printf("\nSummary: a rollback would undo %d change(s).\n", len(plan.Entries))
	}
	return nil
}

// printPlan lists what a rollback does.
func (r *Runner) printPlan(p *RollbackPlan) {
	r.printf("Rollback of run %s: %d change(s) to undo, newest first:\n", r.opts.RunID, len(p.Entries))
	for i, e := range p.Entries {
		r.printf("  %d. %s %s (finished %s): %d undo step(s)\n", i+1, e.Pos.Short(), e.Name, e.Finished.UTC().Format(time.RFC3339), len(e.step.Undo))
	}
	for _, n := range p.NotUndone {
		r.printf("  not undone: %s\n", n)
	}
	for _, wmsg := range p.Warnings {
		r.printf("  warning: %s\n", wmsg)
	}
	if p.NoReturn != "" {
		r.printf("\n%s\n", p.NoReturn)
	}
}

// walk replays steps for a rollback: finished steps get their outputs back
// from the journal, set steps compute again, nothing else runs.
func (r *Runner) walk(ctx context.Context, w *worker, sc *scope, steps []*Step, plan *RollbackPlan) {
	for _, s := range steps {
		key := stepKey(ctx, s)
		kctx := withKey(ctx, key)
		rec := r.opts.Resume.get(key)
		if rec == nil {
			continue // never started (or skipped with no record)
		}
		name := rec.Name
		if name == "" {
			name = s.Name
		}
		// a point of no return counts once its change was sent: a step
		// refused, declined or interrupted before that changed nothing (a
		// read-only step has no change: it counts once it started)
		passed := !s.Mutates() || rec.Dispatched || len(rec.Sent) > 0 || rec.Status == StepFinished
		if s.NoReturn != nil && passed && plan.NoReturn == "" {
			msg := noReturnText(s, sc.env())
			plan.NoReturn = r.masker.Apply(fmt.Sprintf("rollback refused: run %s passed the point of no return at %s %q (its change was sent %s): %s",
				r.opts.RunID, s.Pos.Short(), name, rec.Started.UTC().Format(time.RFC3339), msg))
		}
		if rec.Status == StepSkipped {
			continue
		}
		switch s.Type {
		case "group":
			if s.ForEach == nil {
				r.walk(kctx, w, sc, s.Steps, plan)
				continue
			}
			v, err := runExpr(s.ForEach, sc.env().vars)
			items, ok := toList(v)
			if err != nil || !ok {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s %q: for_each could not be replayed (%v): its items are not undone", s.Pos.Short(), name, err))
				continue
			}
			as := s.As
			if as == "" {
				as = "item"
			}
			var locals []any
			for i, item := range items {
				is := newScope(sc)
				is.set(as, item, false)
				is.set("index", i, false)
				r.walk(withKey(kctx, fmt.Sprintf("%s#%d", key, i)), w, is, s.Steps, plan)
				locals = append(locals, is.local())
			}
			if s.Register != "" {
				sc.set(s.Register, locals, false)
			}
		case "include":
			inc := s.Include
			with := map[string]any{}
			failed := false
			for _, k := range inc.withKeys {
				v, _, err := inc.With[k].value(sc.env())
				if err != nil {
					failed = true
					break
				}
				with[k] = v
			}
			root := newScope(nil)
			if failed || r.bindParams(inc.Playbook, root, with) != nil {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s %q: the include could not be replayed: its steps are not undone", s.Pos.Short(), name))
				continue
			}
			r.walk(kctx, w, root, inc.Playbook.Steps, plan)
			if s.Register != "" {
				sc.set(s.Register, root.local(), false)
			}
		default:
			if recomputed(s) {
				if rec.Status == StepFinished {
					x := &Exec{r: r, step: s, sc: sc, env: sc.env(), log: r.entry(w, s.Playbook, s.Pos), w: w, name: name, key: key}
					if _, ok := s.Spec.(Setter); ok {
						if _, err := s.Spec.Run(ctx, x); err != nil {
							plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s %q: could not be computed again (%v)", s.Pos.Short(), name, err))
						}
					}
				}
				continue
			}
			mut := s.Spec.Mutates()
			switch {
			case rec.Status == StepFinished:
				r.setResult(sc, s, rec.Output)
				if !mut {
					continue
				}
				if len(s.Undo) == 0 {
					plan.NotUndone = append(plan.NotUndone, fmt.Sprintf("%s %q finished and declares no undo", s.Pos.Short(), name))
				} else if !rec.Undone {
					plan.Entries = append(plan.Entries, &UndoEntry{Key: key, Name: name, Pos: s.Pos, Finished: rec.Ended, seq: rec.Seq, step: s, sc: sc, out: rec.Output})
				}
			case mut && (rec.Status == StepStarted || rec.Status == StepFailed || rec.Status == StepRefused) && !rec.Dispatched && len(rec.Sent) == 0:
				// refused, declined or interrupted before its change was sent
			case mut && (rec.Status == StepStarted || rec.Status == StepFailed):
				plan.NotUndone = append(plan.NotUndone, fmt.Sprintf("%s %q was %s and did not finish: check it by hand (flow status shows what it sent)", s.Pos.Short(), name, rec.Status))
			}
		}
	}
}
