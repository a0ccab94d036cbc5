package engine

// The runner: options, the Runner, a run from start to its status and exit code.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
	"github.com/sirupsen/logrus"
)

// Mode selects what a Runner does.
type Mode int

// Modes.
const (
	// ModeRun executes every step.
	ModeRun Mode = iota
	// ModeDryRun executes read-only steps against the live systems and
	// prints what state-changing steps would execute.
	ModeDryRun
	// ModePlan touches nothing: it lists every step with its rendered
	// statements, values not yet known shown symbolically.
	ModePlan
)

// Options configure a Runner.
type Options struct {
	Mode   Mode
	Config *config.Config
	// Vars are --var KEY=VALUE settings, highest precedence.
	Vars map[string]string
	// Yes answers every confirmation (automation).
	Yes bool
	// Interactive says Stdin is a terminal a human can answer on.
	Interactive bool
	Stdin       io.Reader
	// Out receives plan and dry-run listings.
	Out io.Writer
	// Prompt receives confirmation prompts (default: Out). A run sends its
	// listing nowhere, so the CLI points this at the terminal.
	Prompt io.Writer
	// Log receives log lines and events; JSON selects the event stream.
	Log     *logrus.Logger
	JSON    bool
	SSHDial SSHDialer
	RunID   string
	// StateDir is the run's state directory (journals, run lock): a step
	// that keeps a local file by default keeps it there (the redo record
	// with an empty path), so it does not depend on the working directory.
	StateDir string
	// Operator and Host identify who runs flow where.
	Operator, Host string
	// Journal, when set, receives every event of the run (the durable
	// record: run, steps, statements as sent, outcomes).
	Journal Journal
	// Resume, when set, makes this run continue earlier attempts of the
	// same run (flow resume): steps they finished are not run again.
	Resume *ResumeState
	// Observer, when set, receives every event with its fields (secrets
	// masked) as it happens: progress views, plan recording. It must not
	// block.
	Observer func(event string, fields map[string]any)
	// Binder, when set, binds the run to a saved plan (flow run --plan).
	Binder Binder
	// TerminalGone, when set, reports that the operator's terminal hung
	// up: prompts are refused from then on, not waited for.
	TerminalGone func() bool
	// Abandon, when set, ends a rescue that runs after an interruption
	// (the operator insisted with further signals); without it such a
	// rescue runs to its end.
	Abandon context.Context
	// Short makes a dry run or plan list only changes, confirmation
	// points, refusals and rescue sections.
	Short bool
}

// Binder binds a run to a saved plan: it sees what each step observed and
// what each state-changing step is about to execute, and refuses (an
// error) when that is not what the plan saw.
type Binder interface {
	// Observed is called after a read-only step ran, with its output.
	Observed(key string, s *Step, output map[string]any) error
	// Change is called before a state-changing step runs, with what it
	// will execute (rendered, secrets masked).
	Change(key string, s *Step, actions []Action) error
}

// Journal records a run's events. Durable events (a state-changing step
// starting or ending, the run starting or ending) must be on disk before
// Record returns; an error stops the run before the next change.
type Journal interface {
	Record(event string, fields map[string]any, durable bool) error
}

// Runner executes one playbook run.
type Runner struct {
	opts    Options
	masker  *secret.Masker
	pool    *connPool
	mutated atomic.Bool // a state-changing step has started (or, dry run, would have)
	// dispatched counts the state-changing steps that sent (or may have
	// sent) their change: the run "changed something" from the first.
	dispatched atomic.Int64
	// noReturns counts the steps marked point_of_no_return whose change
	// was sent (or was found done by a resumed run); noReturnMsg is the
	// message of the latest. A rescue section around such a step does not
	// run (pastNoReturn).
	noReturns   atomic.Int64
	noReturnMsg atomic.Pointer[string]
	input       lineReader
	// rescuing names the rescue sections running; current is the step
	// that started last (what a second signal reports).
	rescueMu sync.Mutex
	rescuing []string
	rescued  []RescueOutcome
	current  atomic.Pointer[string]
	// what a preview's summary lists: confirmation points, points of no
	// return, rescue sections
	gateNotes, noReturnNotes, rescueNotes []previewNote
	ids                                   atomic.Int64
	outMu                                 sync.Mutex
	changes                               atomic.Int64
	unknown                               atomic.Int64
	// Verdicts are the dry-run/plan verdicts, in order.
	verdicts []Verdict
	started  time.Time
	// journalErr is the first error writing the journal: the run stops
	// before the next step.
	journalErr atomic.Pointer[error]
	// held are resources kept for the whole run (server-side locks),
	// released when it ends.
	heldMu sync.Mutex
	held   []io.Closer
}

// NewRunner prepares a run.
func NewRunner(opts Options) *Runner {
	if opts.Log == nil {
		opts.Log = logrus.New()
		opts.Log.SetOutput(io.Discard)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Config == nil {
		opts.Config = config.Empty()
	}
	if opts.RunID == "" {
		// unique like a journaled run's id: two runs of one process (a
		// library user, the tests) must not take each other for the same
		// run (a lock step treats a holder with this run's id and pid as
		// an earlier lock step of its own)
		opts.RunID = journal.NewRunID(time.Now())
	}
	r := &Runner{opts: opts, masker: &secret.Masker{}, pool: newConnPool(opts.SSHDial)}
	r.masker.Add(opts.Config.Secrets()...)
	r.ids.Store(1)
	if opts.Journal != nil {
		opts.Log.AddHook(journalHook{r})
	}
	return r
}

// Masker returns the run's secret masker (for wrapping log output).
func (r *Runner) Masker() *secret.Masker { return r.masker }

// Verdicts returns the dry-run or plan verdicts.
func (r *Runner) Verdicts() []Verdict { return r.verdicts }

// Changes is the number of state-changing steps that would run (dry run and plan).
func (r *Runner) Changes() int { return int(r.changes.Load()) }

type speculativeKey struct{}

// speculative reports whether ctx is inside a part of a plan or dry run
// that only a real run can decide: its steps are listed, never executed.
func speculative(ctx context.Context) bool { return ctx.Value(speculativeKey{}) != nil }

// worker carries the log context of one sequential flow of steps.
type worker struct {
	id int64
}

// Run executes the playbook.
func (r *Runner) Run(ctx context.Context, pb *Playbook) error {
	defer r.pool.close()
	defer r.release()
	r.started = time.Now()
	root := newScope(nil)
	if err := r.bindParams(pb, root, nil); err != nil {
		return Invalid(err)
	}
	w := &worker{id: 1}
	log := r.entry(w, pb, Pos{File: pb.File, Line: 1})
	startFields := logrus.Fields{"run_id": r.opts.RunID, "playbook": pb.Name, "hash": pb.Hash, "mode": r.modeName()}
	if r.opts.Resume != nil {
		startFields["resumed"] = true
	}
	r.event(log, event.RunStarted, startFields)
	log.Infof("%s ready", pb.Name)
	log.Infof("%s whole process consists of %d steps", pb.Name, len(pb.Steps))
	err := r.refuseUnaskable(pb)
	if err == nil {
		err = r.steps(ctx, w, root, pb.Steps)
	}
	status := r.statusOf(ctx, err)
	fields := logrus.Fields{"run_id": r.opts.RunID, "status": status, "duration_ms": time.Since(r.started).Milliseconds()}
	if err != nil {
		fields["error"] = r.masker.Apply(err.Error())
	}
	r.event(log, event.RunFinished, fields)
	if err == nil {
		log.Infof("%s %s", pb.Name, map[Mode]string{ModeRun: "success", ModeDryRun: "dry run over", ModePlan: "plan over"}[r.opts.Mode])
	}
	if r.opts.Mode != ModeRun {
		r.printf("\nSummary: %d change(s) that `run` would make", r.Changes())
		if n := r.unknown.Load(); n > 0 {
			r.printf(", %d step(s) UNKNOWN until a real run", n)
		}
		r.printf(".\n")
		r.printGates()
	}
	return r.classify(ctx, err)
}

func (r *Runner) modeName() string {
	return map[Mode]string{ModeRun: "run", ModeDryRun: "dry-run", ModePlan: "plan"}[r.opts.Mode]
}

// statusOf is the run status an error gives: success, interrupted,
// refused (nothing changed), aborted (refused or declined after a change)
// or failed.
func (r *Runner) statusOf(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case ctx.Err() != nil:
		return "interrupted"
	case rescueFailed(err):
		return "failed"
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == ExitInvalid {
		return "invalid"
	}
	if isRefusal(err) {
		if r.changed() {
			return "aborted"
		}
		return "refused"
	}
	return "failed"
}

// changed reports whether the run changed something (a dry run or plan:
// would have).
func (r *Runner) changed() bool { return r.changedNow() || r.earlierChanged() }

// changedNow reports whether this attempt sent a change (a dry run: listed one).
func (r *Runner) changedNow() bool {
	return r.Changed() || (r.opts.Mode != ModeRun && r.mutated.Load())
}

// earlierChanged reports whether an earlier attempt of a resumed run sent a
// change, even one its rescue put back: a refusal or decline now is then
// exit 4, not 3 ("nothing changed" would not be true of the run).
func (r *Runner) earlierChanged() bool {
	return r.opts.Resume != nil && !r.opts.Resume.changedNothing()
}

// classify turns an error into one with the right exit code.
func (r *Runner) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return &ExitError{Code: ExitInterrupted, Err: err}
	}
	if rescueFailed(err) {
		return &ExitError{Code: ExitStepFailed, Err: err}
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		changed := r.changed()
		if errors.As(err, new(*resumeUnsure)) {
			// a resume that cannot judge a step asks, it refuses nothing:
			// exit 3 as long as this attempt changed nothing
			changed = r.changedNow()
		}
		if ee.Code == ExitRefused && changed {
			return &ExitError{Code: ExitAborted, Err: ee.Err}
		}
		return err
	}
	if isRefusal(err) {
		if r.changed() {
			return &ExitError{Code: ExitAborted, Err: err}
		}
		return &ExitError{Code: ExitRefused, Err: err}
	}
	return &ExitError{Code: ExitStepFailed, Err: err}
}

// prompt writes a confirmation prompt (secrets masked) where the operator
// sees it.
func (r *Runner) prompt(format string, args ...any) {
	w := r.opts.Prompt
	if w == nil {
		w = r.opts.Out
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprint(w, r.masker.Apply(fmt.Sprintf(format, args...)))
}

func (r *Runner) printf(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprint(r.opts.Out, r.masker.Apply(fmt.Sprintf(format, args...)))
}

// release closes what the run held (server-side locks).
func (r *Runner) release() {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	for i := len(r.held) - 1; i >= 0; i-- {
		_ = r.held[i].Close()
	}
	r.held = nil
}

// heldErr is the first error of a held resource (a lock lost to another
// run): the run stops before the next step.
func (r *Runner) heldErr() error {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	for _, h := range r.held {
		if e, ok := h.(interface{ Err() error }); ok {
			if err := e.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}
