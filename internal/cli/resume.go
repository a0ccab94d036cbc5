package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/conn/sshdial"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/journal/runlock"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newResumeCmd, newRollbackCmd)
}

// continueFlags are the flags of resume and rollback.
type continueFlags struct {
	runFlags
	force       bool
	done, rerun []string
}

func newResumeCmd(st *streams) *cobra.Command {
	f := &continueFlags{}
	c := &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue an interrupted or failed run from the first step that did not finish",
		Long: `Continue an interrupted or failed run in the same journal, with the same run id.

Steps the run finished are not run again: their outputs come back from the
journal. Set, assert and log steps are computed again. A step that started and
did not finish is judged before anything runs: work it left running (a clone, a
remote command) is joined; then the step's own check says whether it took
effect (resume: in the playbook, or its type's check: clone_status, a sql
check: query, an idempotent statement). When flow cannot tell, resume stops
and says what to check; answer with --done KEY or --rerun KEY.

Secret parameters given with --var are not in the journal: give them again.
A playbook file changed since the run is refused (the change is shown) unless
--force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return resume(cmd.Context(), st, args[0], f)
		},
	}
	addContinueFlags(c, f)
	c.Flags().StringArrayVar(&f.done, "done", nil, "KEY of an interrupted step that did take effect: do not run it again (repeatable)")
	c.Flags().StringArrayVar(&f.rerun, "rerun", nil, "KEY of an interrupted step that did not take effect: run it again (repeatable)")
	return c
}

func addContinueFlags(c *cobra.Command, f *continueFlags) {
	c.Flags().StringVarP(&f.config, "config", "c", "", "INI config file (default: the one the run used)")
	c.Flags().StringArrayVar(&f.vars, "var", nil, "set a parameter again: --var KEY=VALUE (secret ones are not in the journal)")
	c.Flags().StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	c.Flags().StringVar(&f.logLevel, "log-level", "debug", "log level: debug, info, warn, error")
	c.Flags().BoolVar(&f.yes, "yes", false, "answer confirmations (for automation)")
	c.Flags().BoolVar(&f.force, "force", false, "go on although a playbook file changed since the run (steps are matched by file:line:col)")
	stateDirFlag(c, &f.stateDir)
	addProgressFlag(c, &f.progress)
}

// continued is an earlier run that resume or rollback takes up again.
type continued struct {
	id       string
	stateDir string
	run      *journal.Run
	pb       *engine.Playbook
	cfg      *config.Config
	vars     map[string]string
	rs       *engine.ResumeState
	rec      *runRecord
	lock     *runlock.Lock // held without a journal (rollback --dry-run)
	log      *logrus.Logger
	json     bool
	signals  *operatorSignals // SIGINT/SIGTERM/SIGHUP handling (signals.go)
}

// takeUp opens an earlier run for a further attempt: it must be a real run
// that is not running, its playbook unchanged (or forced), its secrets
// given again; the run lock is taken and the journal reopened with a
// run_resumed record.
func takeUp(ctx context.Context, st *streams, ref string, f *continueFlags, command string) (*continued, error) {
	stateDir := f.stateDir
	if stateDir == "" {
		stateDir = stateDirDefault()
	}
	id, err := resolveRun(stateDir, ref)
	if err != nil {
		return nil, engine.Invalid(err)
	}
	run, err := journal.Load(stateDir, id)
	if err != nil {
		return nil, engine.Invalid(err)
	}
	h := run.Header
	switch {
	case run.Mode != "run":
		return nil, engine.Invalid(fmt.Errorf("run %s was a %s: it changed nothing, so there is nothing to %s; start a new run", id, run.Mode, command))
	case run.Status == journal.StatusRunning:
		return nil, engine.Invalid(fmt.Errorf("run %s is still running (pid %d on %s since %s): wait for it, or stop it (Ctrl-C / kill %d) first",
			id, h.PID, h.Host, h.Started.UTC().Format(time.RFC3339), h.PID))
	case run.Status == journal.StatusUnknown:
		return nil, engine.Invalid(fmt.Errorf("run %s ran on host %s: flow cannot tell from here whether it still runs; %s it on %s", id, h.Host, command, h.Host))
	case run.Status == journal.StatusSuccess && command == "resume":
		return nil, engine.Invalid(fmt.Errorf("run %s succeeded: there is nothing to resume", id))
	}
	changes, err := changedSources(journal.RunDir(stateDir, id))
	if err != nil {
		return nil, engine.Invalid(err)
	}
	if len(changes) > 0 && !f.force {
		return nil, engine.Invalid(fmt.Errorf("%s refused: the playbook changed since run %s:\n  %s\nrestore the file, or pass --force to %s with the changed playbook (steps are matched by file:line:col)",
			command, id, strings.Join(changes, "\n  "), command))
	}
	lock, err := runlock.Acquire(stateDir, runlock.Holder{RunID: id, Playbook: run.Playbook, Host: hostname(), Since: time.Now()})
	if err != nil {
		return nil, engine.Invalid(err)
	}
	c := &continued{id: id, stateDir: stateDir, run: run}
	fail := func(err error) (*continued, error) {
		lock.Release()
		return nil, err
	}
	if c.pb, err = loadPlaybook(st, h.Playbook); err != nil {
		return fail(err)
	}
	cfgPath := f.config
	if cfgPath == "" {
		cfgPath = h.Config
	}
	if c.cfg, err = loadConfig(cfgPath); err != nil {
		return fail(err)
	}
	given, err := parseVars(f.vars)
	if err != nil {
		return fail(err)
	}
	if c.vars, err = resumeVars(c.pb, h.Params, given, c.cfg); err != nil {
		return fail(err)
	}
	recs, err := journal.Records(stateDir, id)
	if err != nil {
		return fail(engine.Invalid(fmt.Errorf("run %s: %v", id, err)))
	}
	events := make([]engine.ResumeEvent, 0, len(recs))
	for _, r := range recs {
		t, _ := time.Parse(time.RFC3339Nano, r.Time)
		events = append(events, engine.ResumeEvent{Seq: r.Seq, Time: t, Event: r.Event, Fields: r.Fields})
	}
	c.rs = engine.BuildResumeState(events)
	if c.rs.RolledBack {
		return fail(engine.Invalid(fmt.Errorf("run %s was rolled back: there is nothing to %s; start a new run", id, command)))
	}
	for _, k := range append(append([]string{}, f.done...), f.rerun...) {
		if rec := c.rs.Steps[k]; rec == nil || (rec.Status != engine.StepStarted && rec.Status != engine.StepFailed) {
			return fail(engine.Invalid(fmt.Errorf("--done/--rerun %q: no interrupted step of run %s has that key; interrupted: %s", k, id, interruptedList(c.rs))))
		}
	}
	for _, k := range f.done {
		c.rs.Done[k] = true
	}
	for _, k := range f.rerun {
		c.rs.Rerun[k] = true
	}
	if c.log, c.json, err = newLogger(st.out, f.logFormat, f.logLevel); err != nil {
		return fail(err)
	}
	if f.dryRun {
		c.lock = lock
		return c, nil
	}
	j, torn, err := journal.Reopen(stateDir, id)
	if err != nil {
		return fail(engine.Invalid(err))
	}
	fields := journal.AttemptFields(operator(), hostname(), Version)
	fields["command"] = command
	fields["attempt"] = run.Attempts + 2
	fields["forced"] = f.force && len(changes) > 0
	if len(changes) > 0 {
		fields["changes"] = changes
	}
	if torn > 0 {
		fields["torn_bytes_dropped"] = torn
	}
	if len(f.done) > 0 {
		fields["done"] = f.done
	}
	if len(f.rerun) > 0 {
		fields["rerun"] = f.rerun
	}
	fields["started"] = time.Now().UTC().Format(time.RFC3339Nano)
	if err := j.Record(event.RunResumed, fields, true); err != nil {
		j.Close()
		return fail(engine.Invalid(err))
	}
	c.rec = &runRecord{ctx: ctx, id: id, stateDir: stateDir, j: j, lock: lock}
	return c, nil
}

// resumeVars are the parameters of a resumed run: those the run was given
// (from its journal), and the secret ones again (masked in the journal:
// they must come again from --var, the environment or the config). A value
// given now that differs from the journal's is refused: the steps the run
// finished used the old one (a redo record, a drill marker), so the run
// would go on with two values at once.
func resumeVars(pb *engine.Playbook, recorded, given map[string]string, cfg *config.Config) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	names := make([]string, 0, len(recorded))
	for k := range recorded {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := recorded[k]
		if g, ok := given[k]; ok {
			if v != secret.Mask && g != v {
				return nil, engine.Invalid(fmt.Errorf("the run was given %s=%s and its finished steps used that value: a resume cannot change it to %q. Resume without --var %s, or end this run (its playbook's way back: rollback, flashback-stop) and start a new one",
					k, v, g, k))
			}
			out[k] = g
			continue
		}
		if v == secret.Mask {
			if _, ok := os.LookupEnv("FLOW_VAR_" + strings.ToUpper(k)); ok {
				continue
			}
			if p := param(pb, k); p != nil && p.Config != "" {
				if _, _, ok := cfg.Lookup(p.Config); ok {
					continue
				}
			}
			missing = append(missing, k)
			continue
		}
		out[k] = v
	}
	for k, v := range given {
		out[k] = v
	}
	if len(missing) > 0 {
		return nil, engine.Invalid(fmt.Errorf("the run was given %s with --var and the journal keeps no secret: give %s again (--var %s=…)",
			strings.Join(missing, ", "), plural(len(missing), "it", "them"), missing[0]))
	}
	return out, nil
}

func param(pb *engine.Playbook, name string) *engine.Param {
	for _, p := range pb.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// interruptedList names the interrupted steps of a run by key.
func interruptedList(rs *engine.ResumeState) string {
	var out []string
	for _, rec := range rs.Steps {
		if rec.Status == engine.StepStarted || rec.Status == engine.StepFailed {
			out = append(out, fmt.Sprintf("%q (%s, %s)", rec.Key, rec.Name, rec.Status))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// runner makes the engine runner of a continued run.
// The live progress view (a resume on a terminal) is returned too; its
// Close is safe on nil.
func (c *continued) runner(st *streams, f *continueFlags, mode engine.Mode, out io.Writer, withView bool) (*engine.Runner, *progressView) {
	opts := engine.Options{Mode: mode, Config: c.cfg, Vars: c.vars, Yes: f.yes,
		Interactive: isTerminal(st.in), Stdin: st.in, Out: out, Prompt: st.err, Log: c.log, JSON: c.json,
		SSHDial: sshdial.Dial, Operator: operator(), Host: hostname(), RunID: c.id, Resume: c.rs, StateDir: absDir(c.stateDir)}
	if c.rec != nil {
		opts.Journal = c.rec
	}
	var view *progressView
	f.runFlags.stateDir = c.stateDir
	if c.rec != nil && withView {
		view = startProgress(st, &f.runFlags, mode, &opts, c.pb)
		if view != nil {
			opts.Prompt = view.v
		}
	}
	if c.signals != nil {
		opts.TerminalGone, opts.Abandon = c.signals.TerminalGone, c.signals.abandon
	}
	r := engine.NewRunner(opts)
	c.log.SetFormatter(logfmt.Masked{Inner: c.log.Formatter, Mask: r.Masker().Apply})
	if c.signals != nil && c.rec != nil {
		c.signals.attach(r, c.rec, c.id)
	}
	return r, view
}

func resume(ctx context.Context, st *streams, ref string, f *continueFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sig := watchSignals(ctx, st.err)
	defer sig.Stop()
	ctx = sig.ctx
	st = guardTerminals(st, sig)
	c, err := takeUp(ctx, st, ref, f, "resume")
	if err != nil {
		return err
	}
	c.signals = sig
	done := 0
	for _, rec := range c.rs.Steps {
		if rec.Status == engine.StepFinished {
			done++
		}
	}
	fmt.Fprintf(st.err, "flow: resuming run %s of %s (attempt %d): %d step(s) finished earlier are not run again; interrupted: %s\n",
		c.id, c.run.Playbook, c.run.Attempts+2, done, interruptedList(c.rs))
	r, view := c.runner(st, f, engine.ModeRun, io.Discard, true)
	err = r.Run(ctx, c.pb)
	view.Close()
	if err != nil && ctx.Err() != nil {
		err = c.signals.interrupted("the current step", err)
	}
	return c.rec.finish(err, r)
}

func newRollbackCmd(st *streams) *cobra.Command {
	f := &continueFlags{}
	c := &cobra.Command{
		Use:   "rollback RUN",
		Short: "Undo a run's finished changes with the steps' declared undo:, newest first (--dry-run previews)",
		Long: `Undo a run: flow replays the run from its journal, lists the state-changing
steps that finished and declare undo: steps, and runs those undo steps in
reverse order (newest change first). Interrupted steps and steps without undo:
are listed, not touched. A run that started a step marked point_of_no_return
cannot be rolled back: the refusal says what restores instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rollback(cmd.Context(), st, args[0], f)
		},
	}
	addContinueFlags(c, f)
	c.Flags().BoolVar(&f.dryRun, "dry-run", false, "show the rollback: read-only undo steps run, changes are listed, nothing is changed or journaled")
	return c
}

func rollback(ctx context.Context, st *streams, ref string, f *continueFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sig := watchSignals(ctx, st.err)
	defer sig.Stop()
	ctx = sig.ctx
	st = guardTerminals(st, sig)
	command := "rollback"
	if f.dryRun {
		command = "rollback --dry-run"
	}
	c, err := takeUp(ctx, st, ref, f, command)
	if err != nil {
		return err
	}
	c.signals = sig
	mode := engine.ModeRun
	if f.dryRun {
		mode = engine.ModeDryRun
	}
	r, _ := c.runner(st, f, mode, st.out, false)
	err = r.Rollback(ctx, c.pb)
	if err != nil && ctx.Err() != nil {
		err = sig.interrupted("the rollback", err)
	}
	if c.rec == nil {
		c.lock.Release()
		return err
	}
	if err == nil {
		c.rec.status = journal.StatusRolledBack
	}
	return c.rec.finish(err, r)
}
