package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/event"
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
	input      lineReader
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
		opts.RunID = time.Now().UTC().Format("20060102T150405Z")
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
	r.event(log, "run_started", startFields)
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
	r.event(log, "run_finished", fields)
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
func (r *Runner) changed() bool {
	return r.Changed() || (r.opts.Mode != ModeRun && r.mutated.Load())
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
		if ee.Code == ExitRefused && r.changed() {
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

// bindParams resolves a playbook's parameters: --var, then FLOW_VAR_NAME,
// then the config key (whose FLOW_SECTION_KEY variable wins over the file),
// then the default. with holds values an include passes.
func (r *Runner) bindParams(pb *Playbook, sc *scope, with map[string]any) error {
	var errs []string
	for _, p := range pb.Params {
		var (
			raw  any
			from string
			ok   bool
		)
		if v, has := with[p.Name]; has {
			raw, from, ok = v, "include", true
		} else if v, has := r.opts.Vars[p.Name]; has {
			raw, from, ok = v, "--var", true
		} else if v, has := os.LookupEnv("FLOW_VAR_" + strings.ToUpper(p.Name)); has {
			raw, from, ok = v, "environment FLOW_VAR_"+strings.ToUpper(p.Name), true
		} else if p.Config != "" {
			if v, src, has := r.opts.Config.Lookup(p.Config); has {
				raw, from, ok = v, src, true
			}
		}
		if !ok {
			if p.Default != nil {
				if s, isStr := p.Default.(string); isStr && p.Secret {
					r.masker.Add(s)
				}
				sc.set(p.Name, p.Default, false)
				continue
			}
			if p.Required {
				hint := fmt.Sprintf("--var %s=…", p.Name)
				if p.Secret {
					// a secret never goes on the command line: ps shows it
					hint = "the environment variable FLOW_VAR_" + strings.ToUpper(p.Name)
				}
				if p.Config != "" {
					sec, key, _ := strings.Cut(p.Config, ".")
					hint += fmt.Sprintf(", `%s` under [%s] in the config file (-c, mode 0600), or %s", key, sec, config.EnvName(p.Config))
				}
				errs = append(errs, fmt.Sprintf("%s: parameter %q is required (%s): set it with %s", p.Pos, p.Name, p.Help, hint))
				continue
			}
			sc.set(p.Name, zeroOf(p.Type), false)
			continue
		}
		v, err := convertParam(p.Type, raw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: parameter %q from %s: %v", p.Pos, p.Name, from, err))
			continue
		}
		if p.Secret {
			if s, ok := v.(string); ok {
				r.masker.Add(s)
			}
		}
		sc.set(p.Name, v, false)
	}
	for name := range r.opts.Vars {
		if with == nil && !hasParam(pb, name) {
			errs = append(errs, fmt.Sprintf("--var %s: %s has no parameter %q%s", name, pb.File, name, suggest(name, paramNames(pb))))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	sc.set("run", map[string]any{"id": r.opts.RunID, "playbook": pb.Name, "operator": r.opts.Operator,
		"host": r.opts.Host, "dry_run": r.opts.Mode == ModeDryRun, "plan": r.opts.Mode == ModePlan,
		"started": r.started.Format(time.RFC3339), "file": pb.File}, false)
	for _, v := range pb.Vars {
		env := sc.env()
		x, unk, err := v.Value.value(env)
		if err != nil {
			return fmt.Errorf("%s: variable %q: %v", v.Pos, v.Name, err)
		}
		if v.Value.secret {
			if s, ok := x.(string); ok {
				r.masker.Add(s)
			}
		}
		sc.set(v.Name, x, unk)
	}
	return nil
}

func hasParam(pb *Playbook, name string) bool {
	for _, p := range pb.Params {
		if p.Name == name {
			return true
		}
	}
	return false
}

func zeroOf(t string) any {
	switch t {
	case "int":
		return 0
	case "bool":
		return false
	case "float":
		return 0.0
	case "list":
		return []any{}
	case "map":
		return map[string]any{}
	case "duration":
		return time.Duration(0)
	}
	return ""
}

// entry is a log entry located at a playbook position for a worker.
func (r *Runner) entry(w *worker, pb *Playbook, p Pos) *logrus.Entry {
	return r.opts.Log.WithFields(logrus.Fields{logfmt.FieldFile: baseName(pb.File), logfmt.FieldLine: p.Line, logfmt.FieldID: w.id})
}

// event emits a structured event (JSON log format only).
func (r *Runner) event(e *logrus.Entry, name string, f logrus.Fields) {
	if r.opts.Observer != nil {
		rec := make(map[string]any, len(f)+4)
		for k, v := range f {
			rec[k] = r.maskValue(v)
		}
		for _, k := range []string{logfmt.FieldFile, logfmt.FieldLine, logfmt.FieldID} {
			if v, ok := e.Data[k]; ok {
				rec[k] = v
			}
		}
		rec["time"] = time.Now()
		r.opts.Observer(name, rec)
	}
	if r.opts.Journal != nil && !event.Transient[name] {
		rec := make(map[string]any, len(f)+3)
		for k, v := range f {
			rec[k] = r.maskValue(v)
		}
		for _, k := range []string{logfmt.FieldFile, logfmt.FieldLine, logfmt.FieldID} {
			if v, ok := e.Data[k]; ok {
				rec[k] = v
			}
		}
		durable, _ := f["mutates"].(bool)
		durable = durable || event.Durable[name]
		if err := r.opts.Journal.Record(name, rec, durable); err != nil {
			r.journalErr.CompareAndSwap(nil, &err)
		}
	}
	if !r.opts.JSON {
		return
	}
	if name == "step_finished" {
		// the output goes to the journal; the event stream stays small
		g := logrus.Fields{}
		for k, v := range f {
			if k != "output" {
				g[k] = v
			}
		}
		f = g
	}
	e.WithFields(f).WithField("event", name).Info(name)
}

// maskValue masks secrets in every string inside v (maps and lists too).
func (r *Runner) maskValue(v any) any {
	switch x := v.(type) {
	case string:
		return r.masker.Apply(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = r.maskValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.maskValue(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.maskValue(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.masker.Apply(e)
		}
		return out
	}
	return v
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
	if s.SkippedBy != nil {
		return r.skippedBySite(ctx, w, sc, s, key)
	}
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
			r.skipped(ctx, sc, s, name, log, base, why)
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

// rescue runs a step's rescue section (they see `error`), journaling its
// start and its successful end: a resumed run restarts a rescued step from
// its beginning, and runs a rescue that did not finish again first.
func (r *Runner) rescue(ctx context.Context, w *worker, sc *scope, s *Step, key, name string, log *logrus.Entry, errText string) error {
	base := logrus.Fields{"step": s.ID, "name": name, "line": s.Pos.Line, "key": key}
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

// rescueAfter runs a step's rescue section after its error err, when it
// applies: the step failed, or it was refused or interrupted after
// something changed inside it (a refusal or an interruption before any
// change leaves nothing to rescue: the run ends refused, exit 3). After
// an interruption the rescue runs in a context of its own (rescueContext),
// so the cluster ends in the state the rescue leaves.
func (r *Runner) rescueAfter(ctx context.Context, w *worker, sc *scope, s *Step, key, name string, log *logrus.Entry, err error, changedInside bool) error {
	if !changedInside && (ctx.Err() != nil || isRefusal(err)) {
		log.Infof("%s stopped before it changed anything: its rescue section is not needed", name)
		r.event(log, event.RescueSkipped, logrus.Fields{"step": s.ID, "name": name, "line": s.Pos.Line, "key": key,
			"why": "nothing changed inside the step"})
		return err
	}
	why := "failed"
	switch {
	case ctx.Err() != nil:
		why = "was interrupted"
	case isRefusal(err):
		why = "was refused"
	}
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

func merge(a, b logrus.Fields) logrus.Fields {
	out := logrus.Fields{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
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

// leaf runs a typed step: dry-run/plan handling, confirmation, retries.
func (r *Runner) leaf(ctx context.Context, w *worker, sc *scope, s *Step, name string, log *logrus.Entry) (map[string]any, error) {
	env := sc.env()
	key := parentKey(ctx)
	x := &Exec{r: r, step: s, sc: sc, env: env, log: log, w: w, name: name, key: key}
	mut := s.Spec.Mutates()
	if r.opts.Mode == ModePlan || (r.opts.Mode == ModeDryRun && mut) || (r.opts.Mode != ModeRun && speculative(ctx)) {
		rd := &Render{r: r, env: env, step: s}
		actions, err := s.Spec.Render(rd)
		if err != nil {
			return nil, &StepError{Pos: s.Pos, Step: name, Err: err}
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
					return nil, nil
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
				return nil, &StepError{Pos: e.Pos, Step: name, Err: err}
			}
			sc.set(n, v, false)
		}
		return nil, nil
	}
	resumed := false
	var out map[string]any
	if v, ok := ctx.Value(resumeVerdictKey{}).(*resumeVerdict); ok && v.key == key && v.done {
		resumed, out = true, v.out
	}
	if mut && r.opts.Mode == ModeRun && r.opts.Binder != nil && !resumed {
		rd := &Render{r: r, env: env, step: s}
		actions, err := s.Spec.Render(rd)
		if err != nil {
			return nil, &StepError{Pos: s.Pos, Step: name, Err: err}
		}
		if err := r.opts.Binder.Change(key, s, actions); err != nil {
			return nil, &ExitError{Code: ExitRefused, Err: &StepError{Pos: s.Pos, Step: name, Err: err}}
		}
	}
	if mut && s.Confirm != nil && !resumed {
		if err := r.confirm(ctx, s, key, name, env, log); err != nil {
			return nil, err
		}
	}
	if mut {
		r.mutated.Store(true)
		if !resumed && r.opts.Mode == ModeRun {
			// from here the change may happen: a point of no return counts
			r.dispatched.Add(1)
			r.event(log, event.StepDispatched, logrus.Fields{"key": key, "step": s.ID, "name": name, "line": s.Pos.Line})
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
	if len(s.Post) > 0 {
		penv := sc.env()
		penv.vars["result"] = out
		for _, g := range s.Post {
			refused, _, err := r.checkGuard(g, s, name, penv, "post")
			if err != nil {
				return nil, err
			}
			if refused != nil {
				refused.Guard = "post: " + refused.Guard
				return nil, refused
			}
		}
	}
	return out, nil
}

// attempts runs a step with its retries/until/interval/timeout: a bounded
// poll, never a fixed sleep.
func (r *Runner) attempts(ctx context.Context, x *Exec, s *Step, name string, log *logrus.Entry) (map[string]any, error) {
	polling := s.Until != nil || s.Retries > 0
	interval := s.Interval
	if interval == 0 {
		interval = 500 * time.Millisecond
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
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
				if s.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, fmt.Errorf("timed out after %s (timeout: %s): %w", time.Since(start).Round(time.Millisecond), s.Timeout, err)
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
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && s.Timeout > 0 {
		return nil, fmt.Errorf("timed out after %s (timeout: %s) waiting for %s", elapsed, s.Timeout, r.masker.Apply(lastWhy))
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

// group runs a block, or a block for each item of a list with a bounded
// degree of parallelism. After a failure no new item starts; running items
// finish (a half-done clone is worse than a finished one).
func (r *Runner) group(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	restart := s.Resume != nil && s.Resume.Mode == "restart" && r.opts.Resume != nil && r.opts.Mode == ModeRun
	if s.ForEach == nil && restart && r.opts.Resume.restart(parentKey(ctx)) {
		r.entry(w, s.Playbook, s.Pos).Warnf("%s was interrupted inside in an earlier attempt: it starts over from its first step (resume: restart)", name)
	}
	if s.ForEach == nil {
		inner := sc
		err := r.steps(ctx, w, inner, s.Steps)
		if err == nil && s.Register != "" {
			sc.set(s.Register, []any{}, false)
		}
		return err
	}
	env := sc.env()
	if env.unknown(s.ForEach) {
		if r.opts.Mode == ModeRun {
			return fmt.Errorf("%s: for_each reads unknown values", s.ForEach.Pos)
		}
		return r.unknownItems(ctx, w, sc, s, name)
	}
	v, err := runExpr(s.ForEach, env.vars)
	if err != nil {
		return err
	}
	if _, unk := v.(Unknown); unk && r.opts.Mode != ModeRun {
		return r.unknownItems(ctx, w, sc, s, name)
	}
	items, ok := toList(v)
	if !ok {
		return fmt.Errorf("%s: for_each `%s` gave %T, not a list", s.ForEach.Pos, oneLine(s.ForEach.Src), v)
	}
	as := s.As
	if as == "" {
		as = "item"
	}
	par := s.Parallel
	if par <= 0 {
		par = 1
	}
	if restart {
		for i := range items {
			if r.opts.Resume.restart(fmt.Sprintf("%s#%d", parentKey(ctx), i)) {
				r.entry(w, s.Playbook, s.Pos).Warnf("%s: item %d (%s) was interrupted in an earlier attempt: it starts over from its first step (resume: restart)", name, i, itemLabel(items[i]))
			}
		}
	}
	scopes := make([]*scope, len(items))
	errs := make([]error, len(items))
	var failed atomic.Bool
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, item := range items {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		if failed.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		is := newScope(sc)
		is.set(as, item, false)
		is.set("index", i, false)
		scopes[i] = is
		iw := w
		if par > 1 {
			iw = &worker{id: r.ids.Add(1) + 54}
		}
		wg.Add(1)
		go func(i int, is *scope, iw *worker) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.steps(withKey(ctx, fmt.Sprintf("%s#%d", parentKey(ctx), i)), iw, is, s.Steps); err != nil {
				errs[i] = err
				failed.Store(true)
			}
		}(i, is, iw)
	}
	wg.Wait()
	var msgs []string
	var first error
	for i, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			msgs = append(msgs, fmt.Sprintf("item %d (%s): %v", i, itemLabel(items[i]), e))
		}
	}
	if s.Register != "" {
		res := make([]any, 0, len(items))
		for i, is := range scopes {
			if is == nil {
				continue
			}
			m := is.local()
			m["ok"] = errs[i] == nil
			res = append(res, m)
		}
		sc.set(s.Register, res, false)
	}
	if len(msgs) == 1 {
		return first
	}
	if len(msgs) > 1 {
		var re *RefusedError
		if errors.As(first, &re) {
			return first
		}
		return fmt.Errorf("%d items failed:\n  %s", len(msgs), strings.Join(msgs, "\n  "))
	}
	return ctx.Err()
}

// unknownItems lists, in a dry run or plan, what each item of a for_each
// whose list only a real run knows would run.
func (r *Runner) unknownItems(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	r.verdict(ctx, s, name, "UNKNOWN", fmt.Sprintf("for each item of `%s` (known only in a real run); each item would run:", oneLine(s.ForEach.Src)), nil)
	as := s.As
	if as == "" {
		as = "item"
	}
	is := newScope(sc)
	is.set(as, Unknown{Why: s.ForEach.Src}, true)
	is.set("index", Unknown{Why: "index"}, true)
	r.countUnknown(ctx)
	err := r.steps(ctx, w, is, s.Steps)
	if s.Register != "" {
		sc.set(s.Register, Unknown{Why: name}, true)
	}
	return err
}

// itemLabel names a for_each item briefly in messages.
func itemLabel(item any) string {
	if m, ok := item.(map[string]any); ok {
		for _, k := range []string{"servername", "name", "host", "ds", "id"} {
			if v, ok := m[k]; ok {
				return quote.Text(v)
			}
		}
		if n, ok := m["node"].(map[string]any); ok {
			return itemLabel(n)
		}
	}
	s := quote.Text(item)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func toList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	case nil:
		return nil, true
	}
	return nil, false
}

// include runs another playbook's steps in a scope of its own.
func (r *Runner) include(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	inc := s.Include
	env := sc.env()
	with := map[string]any{}
	for _, k := range inc.withKeys {
		v, _, err := inc.With[k].value(env)
		if err != nil {
			return err
		}
		with[k] = v
	}
	root := newScope(nil)
	if err := r.bindParams(inc.Playbook, root, with); err != nil {
		return Invalid(err)
	}
	for k, v := range with {
		if _, unk := v.(Unknown); unk {
			root.set(k, v, true)
		}
	}
	log := r.entry(w, inc.Playbook, Pos{File: inc.Playbook.File, Line: 1})
	log.Infof("%s ready", inc.Playbook.Name)
	log.Infof("%s whole process consists of %d steps", inc.Playbook.Name, len(inc.Playbook.Steps))
	if err := r.steps(ctx, w, root, inc.Playbook.Steps); err != nil {
		return err
	}
	log.Infof("%s over", inc.Playbook.Name)
	if s.Register != "" {
		sc.set(s.Register, root.local(), false)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
