package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// Step record states, as a resumed run reads them back from the journal.
const (
	StepStarted  = "started"
	StepFinished = "finished"
	StepFailed   = "failed"
	StepRefused  = "refused"
	StepSkipped  = "skipped"
)

// StepRecord is what the journal of earlier attempts says about one step
// instance (a step of a for_each item is its own instance).
type StepRecord struct {
	// Key identifies the instance: the playbook positions from the top
	// step down, with "#N" for the Nth for_each item.
	Key    string
	Name   string
	Status string
	// Output is the step's registered output (secrets masked).
	Output  map[string]any
	Error   string
	Started time.Time
	Ended   time.Time
	// Sent are the statements and commands the step sent ("target: text").
	Sent []string
	// Notes are durable facts the step type recorded while it ran (the pid
	// of a remote command, the clone's recipient…), latest value per key.
	Notes map[string]any
	// Seq is the journal sequence number of the record that finished it.
	Seq int64
	// RescueStarted and RescueFinished say a group's rescue section ran.
	RescueStarted, RescueFinished bool
	// Undone says a rollback already ran this step's undo.
	Undone bool
	// Dispatched says the step's change was sent (or may have been): its
	// point of no return, if it has one, was passed.
	Dispatched bool
}

// ResumeEvent is one journal record as the engine reads it back.
type ResumeEvent struct {
	Seq    int64
	Time   time.Time
	Event  string
	Fields map[string]any
}

// ResumeState is what a resumed run knows about its earlier attempts.
type ResumeState struct {
	Steps map[string]*StepRecord
	// Done and Rerun are the operator's answers for interrupted steps
	// flow cannot judge (flow resume --done KEY / --rerun KEY).
	Done, Rerun map[string]bool
	// RolledBack says a rollback of the run finished.
	RolledBack bool
	// Confirmations are the confirmation points earlier attempts passed,
	// by step key: a resumed run does not ask again (unless a rescue of
	// that step ran to its end since).
	Confirmations map[string]*ConfirmRecord
	// sentChange says an earlier attempt dispatched a change, even one a
	// rescue undid (whose records a restarted group forgets).
	sentChange bool

	mu sync.RWMutex // Steps is read by parallel items while a restarted group forgets its records
}

// changedNothing reports whether no earlier attempt sent a change (no step
// was dispatched).
func (rs *ResumeState) changedNothing() bool {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	if rs.sentChange {
		return false
	}
	for _, rec := range rs.Steps {
		if rec.Dispatched {
			return false
		}
	}
	return true
}

// ConfirmRecord is a confirmation an earlier attempt recorded.
type ConfirmRecord struct {
	Word, How, Operator string
	Time                time.Time
}

// confirmedAt reports whether an earlier attempt passed the confirmation
// point of the step at p.
func (rs *ResumeState) confirmedAt(p Pos) bool {
	seg := fmt.Sprintf("%s:%d:%d", baseName(p.File), p.Line, p.Col)
	for k := range rs.Confirmations {
		if k == seg || strings.HasSuffix(k, " > "+seg) {
			return true
		}
	}
	return false
}

// get returns the record of the step instance key.
func (rs *ResumeState) get(key string) *StepRecord {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	return rs.Steps[key]
}

// drop forgets the records inside prefix (a rescue section run again
// from its start).
func (rs *ResumeState) drop(prefix string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for k := range rs.Steps {
		if strings.HasPrefix(k, prefix+" > ") {
			delete(rs.Steps, k)
		}
	}
}

// restart forgets the records inside the group instance prefix when one of
// them did not finish, so it starts over from its first step; it reports
// whether it did.
func (rs *ResumeState) restart(prefix string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	open := false
	for k, rec := range rs.Steps {
		if strings.HasPrefix(k, prefix+" > ") && (rec.Status == StepStarted || rec.Status == StepFailed) {
			open = true
			break
		}
	}
	if !open {
		return false
	}
	for k := range rs.Steps {
		if strings.HasPrefix(k, prefix+" > ") {
			delete(rs.Steps, k)
		}
	}
	return true
}

// BuildResumeState folds a run's journal records into the state of each
// step instance. A group whose rescue section ran starts again from its
// first step: its inner records are dropped.
func BuildResumeState(events []ResumeEvent) *ResumeState {
	rs := &ResumeState{Steps: map[string]*StepRecord{}, Done: map[string]bool{}, Rerun: map[string]bool{}, Confirmations: map[string]*ConfirmRecord{}}
	get := func(f map[string]any) *StepRecord {
		key, _ := f["key"].(string)
		if key == "" {
			return nil
		}
		rec := rs.Steps[key]
		if rec == nil {
			rec = &StepRecord{Key: key, Notes: map[string]any{}}
			rs.Steps[key] = rec
		}
		if n, ok := f["name"].(string); ok && n != "" {
			rec.Name = n
		}
		return rec
	}
	for _, ev := range events {
		f, _ := wholeNumbers(ev.Fields).(map[string]any)
		switch ev.Event {
		case event.StepStarted:
			// what an earlier attempt sent and its error stay: a step
			// started again and cut short again may have applied either
			if rec := get(f); rec != nil {
				rec.Status, rec.Started = StepStarted, ev.Time
			}
		case event.Statement:
			if rec := get(f); rec != nil {
				t, _ := f["target"].(string)
				x, _ := f["text"].(string)
				rec.Sent = append(rec.Sent, t+": "+x)
			}
		case event.StepNote:
			if rec := get(f); rec != nil {
				for k, v := range f {
					switch k {
					case "key", "name", "step", "line", "file", "id":
					default:
						rec.Notes[k] = v
					}
				}
			}
		case event.StepFinished:
			if rec := get(f); rec != nil {
				rec.Status, rec.Ended, rec.Seq = StepFinished, ev.Time, ev.Seq
				if o, ok := f["output"].(map[string]any); ok {
					rec.Output = o
				}
			}
		case event.StepFailed:
			if rec := get(f); rec != nil {
				rec.Status, rec.Ended = StepFailed, ev.Time
				rec.Error, _ = f["error"].(string)
			}
		case event.StepRefused:
			if rec := get(f); rec != nil {
				rec.Status, rec.Ended = StepRefused, ev.Time
				rec.Error, _ = f["error"].(string)
			}
		case event.StepSkipped:
			if rec := get(f); rec != nil {
				rec.Status, rec.Ended = StepSkipped, ev.Time
			}
		case event.RescueStarted:
			if rec := get(f); rec != nil {
				rs.forget(rec.Key)
				rec.RescueStarted, rec.RescueFinished = true, false
			}
		case event.RescueFinished:
			if rec := get(f); rec != nil {
				rs.forget(rec.Key)
				rs.forgetConfirmations(rec.Key)
				rec.RescueFinished = true
			}
		case event.StepDispatched:
			rs.sentChange = true
			if rec := get(f); rec != nil {
				rec.Dispatched = true
			}
		case event.Confirmation:
			if o, _ := f["outcome"].(string); o == "confirmed" {
				if key, _ := f["key"].(string); key != "" {
					c := &ConfirmRecord{Time: ev.Time}
					c.Word, _ = f["word"].(string)
					c.How, _ = f["how"].(string)
					c.Operator, _ = f["operator"].(string)
					rs.Confirmations[key] = c
				}
			}
		case event.UndoFinished:
			if rec := get(f); rec != nil {
				rec.Undone = true
			}
		case event.RollbackFinished:
			if s, _ := f["status"].(string); s == "success" {
				rs.RolledBack = true
			}
		}
	}
	return rs
}

// wholeNumbers turns the numbers a JSON journal gives back (json.Number,
// or float64) into int where they are whole, as the step produced them (a
// port, a count), and float64 otherwise, so a restored output renders,
// compares and computes as it did.
func wholeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		if f, err := x.Float64(); err == nil {
			return wholeNumbers(f)
		}
		return x.String()
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x)
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = wholeNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = wholeNumbers(e)
		}
		return out
	}
	return v
}

// forget drops the records of everything inside the step with key.
func (rs *ResumeState) forget(key string) {
	for k := range rs.Steps {
		if inside(k, key) {
			delete(rs.Steps, k)
		}
	}
}

// forgetConfirmations drops the confirmations given at the step with key
// and inside it: its rescue ran to the end and put back what it changed,
// so the operator's yes was for a change that no longer stands. A resumed
// run asks again (after a Ctrl-C, the operator decides anew whether to
// freeze the primary a second time); one cut short by a crash, whose
// rescue did not finish, does not.
func (rs *ResumeState) forgetConfirmations(key string) {
	for k := range rs.Confirmations {
		if k == key || inside(k, key) {
			delete(rs.Confirmations, k)
		}
	}
}

// inside reports whether the step instance k is within the step with key
// (its steps, its for_each items, its rescue section).
func inside(k, key string) bool {
	return strings.HasPrefix(k, key+" > ") || strings.HasPrefix(k, key+"#") || strings.HasPrefix(k, key+" rescue")
}

// Interrupted lists the step instances that started and did not finish,
// in key order.
func (rs *ResumeState) Interrupted() []*StepRecord {
	var out []*StepRecord
	for _, rec := range rs.Steps {
		if rec.Status == StepStarted {
			out = append(out, rec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ResumeSpec is a step's `resume:` declaration: how a resumed run tells
// whether an interrupted run of it took effect.
type ResumeSpec struct {
	// Mode is "rerun" (idempotent: run it again), "ask" (always ask the
	// operator) or "probe" (the mapping {check, done}); on a group,
	// "restart": a group (each for_each item on its own) interrupted inside
	// starts over from its first step.
	Mode string
	// Probe is the read-only step written under `check:`, whose output
	// `done:` judges. (In the engine's Go, "check" is only a step type's
	// compile-time validation: Checker, Check.)
	Probe *Step
	// Done is true when the interrupted step took effect (it sees `result`,
	// the probe's output).
	Done *Expr
	Pos  Pos
}

type keyCtx struct{}

// ChainObservers returns an observer that calls each non-nil one in turn.
func ChainObservers(obs ...func(event string, fields map[string]any)) func(event string, fields map[string]any) {
	var list []func(string, map[string]any)
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	if len(list) == 0 {
		return nil
	}
	return func(event string, fields map[string]any) {
		for _, o := range list {
			o(event, fields)
		}
	}
}

// parentKey is the key of the step instance ctx runs inside ("" at the top).
func parentKey(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}

func withKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// stepKey is the key of step s run inside ctx: "file.yaml:LINE:COL", after
// its parent's key and " > ".
func stepKey(ctx context.Context, s *Step) string {
	k := fmt.Sprintf("%s:%d:%d", baseName(s.Pos.File), s.Pos.Line, s.Pos.Col)
	if p := parentKey(ctx); p != "" {
		return p + " > " + k
	}
	return k
}

// resumeRecord is the journal's record of the step instance key in a
// resumed run (nil when this is not one, or the instance never started).
func (r *Runner) resumeRecord(key string) *StepRecord {
	if r.opts.Resume == nil || r.opts.Mode != ModeRun {
		return nil
	}
	return r.opts.Resume.get(key)
}

// recomputed reports whether a resumed run computes step s again rather
// than restoring it.
func recomputed(s *Step) bool {
	rc, ok := s.Spec.(Recomputed)
	return ok && rc.Recompute()
}

// setResult stores a finished step's output: in its `register:` variable
// and as steps.<id> with its status. A resumed run uses it to give a step
// that finished in an earlier attempt its output back without running it.
func (r *Runner) setResult(sc *scope, s *Step, out map[string]any) {
	if out == nil {
		out = map[string]any{}
	}
	if s.Register != "" {
		sc.set(s.Register, out, false)
	}
	if s.ID != "" {
		res := map[string]any{"ok": true, "skipped": false, "error": "", "output": out}
		for k, v := range out {
			if _, taken := res[k]; !taken {
				res[k] = v
			}
		}
		sc.setStep(s.ID, res, false)
	}
}

// resumeVerdictKey carries a judged step's verdict from step to leaf.
type resumeVerdictKey struct{}

// resumeVerdict is what a resumed run decided about an interrupted step.
type resumeVerdict struct {
	key  string
	done bool
	out  map[string]any
}

// judge decides about an interrupted state-changing step before it starts
// again, journaling the decision: done (its output), rerun, or the
// operator's call (the error that stops the resume).
func (r *Runner) judge(ctx context.Context, w *worker, sc *scope, s *Step, key, name string, log *logrus.Entry, rec *StepRecord) (*resumeVerdict, error) {
	x := &Exec{r: r, step: s, sc: sc, env: sc.env(), log: log, w: w, name: name, key: key}
	d, out, why, err := r.judgeInterrupted(ctx, x, s, key, rec)
	f := logrus.Fields{"key": key, "name": name, "line": s.Pos.Line, "why": r.masker.Apply(why)}
	if err != nil {
		f["decision"], f["error"] = "error", r.masker.Apply(err.Error())
		r.event(log, event.StepResumeDecision, f)
		var se *StepError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, &StepError{Pos: s.Pos, Step: name, Err: err}
	}
	switch d {
	case ResumeDone:
		log.Warnf("%s was interrupted in an earlier attempt and took effect: not run again (%s)", name, r.masker.Apply(why))
		f["decision"] = "done"
		r.event(log, event.StepResumeDecision, f)
		if out == nil {
			out = map[string]any{}
		}
		return &resumeVerdict{key: key, done: true, out: out}, nil
	case ResumeRerun:
		log.Warnf("%s was interrupted in an earlier attempt: running it again (%s)", name, r.masker.Apply(why))
		f["decision"] = "rerun"
		r.event(log, event.StepResumeDecision, f)
		return &resumeVerdict{key: key}, nil
	}
	f["decision"] = "ask"
	r.event(log, event.StepResumeDecision, f)
	return nil, r.unsureError(s, name, key, rec, why)
}

// judgeInterrupted decides what a resumed run does with a state-changing
// step that an earlier attempt started and did not finish (or that
// failed).
func (r *Runner) judgeInterrupted(ctx context.Context, x *Exec, s *Step, key string, rec *StepRecord) (ResumeDecision, map[string]any, string, error) {
	rs := r.opts.Resume
	if rs.Rerun[key] {
		return ResumeRerun, nil, "the operator said so (--rerun)", nil
	}
	if rs.Done[key] {
		return ResumeDone, rec.Output, "the operator said so (--done)", nil
	}
	if j, ok := s.Spec.(Joiner); ok {
		jctx := ctx
		if timeout, err := x.timeout(); err == nil && timeout > 0 {
			var cancel context.CancelFunc
			jctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		joined, why, err := j.Join(jctx, x, rec)
		if err != nil {
			return ResumeUnsure, nil, "", fmt.Errorf("%s: joining the work an earlier attempt left running: %w", s.Pos.Short(), err)
		}
		if joined {
			x.Infof("%s: joined work an earlier attempt left running: %s", x.name, why)
			r.event(x.log, event.StepJoined, map[string]any{"key": key, "name": x.name, "why": why})
		}
	}
	if s.Resume != nil {
		switch s.Resume.Mode {
		case "rerun":
			return ResumeRerun, nil, "the step is declared idempotent (resume: rerun)", nil
		case "probe":
			out, err := r.runProbe(ctx, x, s)
			if err != nil {
				return ResumeUnsure, nil, "", fmt.Errorf("%s: the resume check failed: %w", s.Resume.Pos, err)
			}
			env := x.sc.env()
			env.vars["result"] = out
			done, err := evalBool(s.Resume.Done, env)
			if err != nil {
				return ResumeUnsure, nil, "", &StepError{Pos: s.Resume.Done.Pos, Step: x.name, Err: err}
			}
			why := fmt.Sprintf("its check says `%s` is %v (%s)", oneLine(s.Resume.Done.Src), done, r.seen(s.Resume.Done, env))
			if done {
				return ResumeDone, map[string]any{"resumed": true, "check": out}, why, nil
			}
			return ResumeRerun, nil, why, nil
		}
		// ask: fall through to the operator
	} else if rv, ok := s.Spec.(Resumer); ok {
		d, out, why, err := rv.Resume(ctx, x, rec)
		if err != nil || d != ResumeUnsure {
			return d, out, why, err
		}
		return ResumeUnsure, nil, why, nil
	}
	return ResumeUnsure, nil, "", nil
}

// runProbe runs a step's resume probe (the read-only step under `check:`) and returns its
// output.
func (r *Runner) runProbe(ctx context.Context, x *Exec, s *Step) (map[string]any, error) {
	c := s.Resume.Probe
	cx := &Exec{r: r, step: c, sc: x.sc, env: x.sc.env(), log: x.log, w: x.w, name: x.name + " (resume check)", key: x.key}
	return c.Spec.Run(ctx, cx)
}

// unsureError is the refusal of a resume that cannot tell whether an
// interrupted step took effect: it says what the operator must check.
func (r *Runner) unsureError(s *Step, name, key string, rec *StepRecord, why string) error {
	var b strings.Builder
	what := "was started"
	if rec.Status == StepFailed {
		what = "failed (" + firstLine(rec.Error) + ")"
	}
	fmt.Fprintf(&b, "%s: resume stops at step %q: in an earlier attempt it %s at %s and flow cannot tell whether it took effect",
		s.Pos, name, what, rec.Started.UTC().Format(time.RFC3339))
	if why != "" {
		fmt.Fprintf(&b, " (%s)", why)
	}
	if len(rec.Sent) > 0 {
		b.WriteString(".\n  It had sent:")
		for _, t := range rec.Sent {
			fmt.Fprintf(&b, "\n    %s", t)
		}
	} else {
		b.WriteString(".\n  The journal holds no statement or command it sent")
	}
	fmt.Fprintf(&b, "\n  Check whether it took effect, then resume with\n    --done '%s'   if it did, or\n    --rerun '%s'  if it did not.", key, key)
	b.WriteString("\n  (A playbook can say how to tell: `resume: rerun` for an idempotent step, or `resume: {check: <read-only step>, done: <expression>}`.)")
	return &ExitError{Code: ExitRefused, Err: &resumeUnsure{msg: r.masker.Apply(b.String())}}
}

// resumeUnsure is a resume's stop at a step it cannot judge (its exit
// code does not count an earlier attempt's changes: see classify).
type resumeUnsure struct{ msg string }

func (e *resumeUnsure) Error() string { return e.msg }
