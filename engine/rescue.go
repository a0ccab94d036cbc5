package engine

// Rescue sections: when a failed, refused or interrupted step's rescue runs, and its events.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// rescue runs a step's rescue section (they see `error`), journaling its
// start and its successful end: a resumed run restarts a rescued step from
// its beginning, and runs a rescue that did not finish again first.
func (r *Runner) rescue(ctx context.Context, w *worker, sc *scope, s *Step, key, name string, log *logrus.Entry, errText string) error {
	base := stepFields(s, name, key)
	r.event(log, event.RescueStarted, merge(base, logrus.Fields{"error": r.masker.Apply(errText), "steps": len(s.Rescue)}))
	rs := newScope(sc)
	rs.set("error", r.masker.Apply(errText), false)
	started := time.Now()
	before := r.dispatched.Load()
	if err := r.steps(withKey(ctx, key+" rescue"), w, rs, s.Rescue); err != nil {
		r.event(log, event.RescueFailed, merge(base, logrus.Fields{"error": r.masker.Apply(err.Error()), "outcome": "failed",
			"changes": r.dispatched.Load() - before, "duration_ms": time.Since(started).Milliseconds()}))
		r.noteRescue(s, name, "failed", r.dispatched.Load()-before)
		return err
	}
	r.event(log, event.RescueFinished, merge(base, logrus.Fields{"outcome": "done", "changes": r.dispatched.Load() - before,
		"duration_ms": time.Since(started).Milliseconds()}))
	r.noteRescue(s, name, "done", r.dispatched.Load()-before)
	return nil
}

// passNoReturn records that the change of s, a step marked
// point_of_no_return, was sent (or found done by a resumed run).
func (r *Runner) passNoReturn(s *Step, env *evalEnv) {
	if s.NoReturn == nil {
		return
	}
	msg := r.masker.Apply(strings.Join(strings.Fields(noReturnText(s, env)), " "))
	r.noReturnMsg.Store(&msg)
	r.noReturns.Add(1)
}

// noReturnText is the message of s's point_of_no_return, rendered (its
// source text when it cannot be).
func noReturnText(s *Step, env *evalEnv) string {
	msg, _, err := s.NoReturn.render(kindText, env, renderDisplay)
	if err != nil || msg == "" {
		return s.NoReturn.Raw
	}
	return msg
}

// endedHow says how a step that returned err ended: failed, was
// interrupted (its context ended) or was refused.
func endedHow(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return "was interrupted"
	case isRefusal(err):
		return "was refused"
	}
	return "failed"
}

// pastNoReturn ends a step whose rescue section does not run because a
// point of no return inside it was passed: what the rescue would undo
// cannot be undone any more (a drill's writes on an opened standby). The
// run ends failed or interrupted as it is, and the error says what the
// point of no return says to do.
func (r *Runner) pastNoReturn(ctx context.Context, st *stepRun, err error) error {
	msg := ""
	if m := r.noReturnMsg.Load(); m != nil {
		msg = *m
	}
	st.log.Errorf("%s %s past its point of no return: its rescue section does not run (%s)", st.name, endedHow(ctx, err), msg)
	r.event(st.log, event.RescueSkipped, merge(stepFields(st.s, st.name, st.key), logrus.Fields{"why": "past the point of no return"}))
	return &noReturnError{err: err, msg: msg}
}

// noReturnError is the error of a step that ended past its point of no
// return, with that point's message.
type noReturnError struct {
	err error
	msg string
}

func (e *noReturnError) Error() string {
	return e.err.Error() + "; past the point of no return the rescue does not run: " + e.msg
}
func (e *noReturnError) Unwrap() error { return e.err }

// rescueAfter runs a step's rescue section after its error err, when it
// applies: the step failed, or it was refused or interrupted after
// something changed inside it (a refusal or an interruption before any
// change leaves nothing to rescue: the run ends refused, exit 3). After
// an interruption the rescue runs in a context of its own (rescueContext),
// so the cluster ends in the state the rescue leaves.
func (r *Runner) rescueAfter(ctx context.Context, w *worker, sc *scope, s *Step, key, name string, log *logrus.Entry, err error, changedInside bool) error {
	if !changedInside && (ctx.Err() != nil || isRefusal(err)) {
		log.Infof("%s stopped before it changed anything: its rescue section is not needed", name)
		r.event(log, event.RescueSkipped, merge(stepFields(s, name, key), logrus.Fields{"why": "nothing changed inside the step"}))
		return err
	}
	why := endedHow(ctx, err)
	rctx, cancel := r.rescueContext(ctx)
	defer cancel()
	r.rescueMu.Lock()
	r.rescuing = append(r.rescuing, fmt.Sprintf("%s %s", s.Pos.Short(), name))
	r.rescueMu.Unlock()
	defer func() {
		r.rescueMu.Lock()
		r.rescuing = r.rescuing[:len(r.rescuing)-1]
		r.rescueMu.Unlock()
	}()
	log.Warnf("%s %s after it changed something: running its rescue section (%d step(s)): %s", name, why, len(s.Rescue), r.masker.Apply(err.Error()))
	if rerr := r.rescue(rctx, w, sc, s, key, name, log, err.Error()); rerr != nil {
		log.Errorf("%s: rescue section failed too: %s", name, r.masker.Apply(rerr.Error()))
		return &rescueError{err: err, rescue: rerr}
	}
	log.Warnf("%s: rescue section done (the step's changes were undone as the playbook says); the run still ends %s", name, map[bool]string{true: "interrupted", false: "unsuccessful"}[ctx.Err() != nil])
	return &rescuedError{err: err}
}
