package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/journal/runlock"
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newRunsCmd, newStatusCmd, newAuditCmd)
}

// stateDirDefault is where runs keep their journals, lock and (unless a
// playbook names another file) the redo record when --state-dir says
// nothing: $FLOW_STATE_DIR when set, else the DBA's own state folder
// ($XDG_STATE_HOME/flow, by default ~/.local/state/flow), so that `flow
// runs`, `status` and `resume` see the same runs from every folder; .flow
// in the working directory only when there is no home directory.
func stateDirDefault() string {
	if d := os.Getenv(stateDirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "flow")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "flow")
	}
	return legacyStateDir
}

// stateDirEnv names the environment variable that moves the default state
// directory.
const stateDirEnv = "FLOW_STATE_DIR"

// legacyStateDir is the state directory flow used by default before 0.6:
// .flow in the working directory.
const legacyStateDir = ".flow"

// legacyStateHint says, when the working directory's .flow holds runs and
// dir is another folder, how to reach them ("" otherwise): flow once kept
// its runs there by default.
func legacyStateHint(dir string) string {
	if runs, _ := filepath.Glob(filepath.Join(legacyStateDir, "runs", "*", "journal.jsonl")); len(runs) == 0 {
		return ""
	}
	a, _ := filepath.Abs(legacyStateDir)
	b, _ := filepath.Abs(dir)
	if a == b {
		return ""
	}
	return fmt.Sprintf("./%s holds runs kept there by an earlier flow (its default state directory); these commands use %s: pass --state-dir %s to reach those runs, or move them", legacyStateDir, dir, legacyStateDir)
}

// runRecord is one run's journal and lock, as execute uses them: it passes
// the engine's events to the journal, recording an interrupted run as such.
type runRecord struct {
	ctx      context.Context // cancelled by SIGINT/SIGTERM
	id       string
	stateDir string
	j        *journal.Journal
	lock     *runlock.Lock
	dryRun   bool
	// status replaces "success" as the recorded end of a successful
	// attempt (rolled-back).
	status string
}

// startRun takes the state directory's lock and opens a new run's journal
// (flow run and flow run --dry-run). The lock held by another run is exit 2,
// naming the holder.
func startRun(ctx context.Context, stateDir, path string, pb *engine.Playbook, configPath string, vars map[string]string, cfg *config.Config, mode engine.Mode) (*runRecord, error) {
	if stateDir == "" {
		stateDir = stateDirDefault()
	}
	now := time.Now()
	id := journal.NewRunID(now)
	lock, err := runlock.Acquire(stateDir, runlock.Holder{RunID: id, Playbook: path, Host: hostname(), Since: now})
	if err != nil {
		return nil, engine.Invalid(err)
	}
	modeName := "run"
	if mode == engine.ModeDryRun {
		modeName = "dry-run"
	}
	h := journal.Header{Playbook: pb.Abs, PlaybookFile: path, PlaybookName: pb.Name, PlaybookSHA256: pb.Hash,
		Mode: modeName, Params: maskedParams(pb, vars, cfg), Config: configPath, Operator: operator(),
		Host: hostname(), Started: now, Version: Version}
	var j *journal.Journal
	for try := 0; ; try++ {
		j, err = journal.Create(stateDir, id, h)
		if err == nil || !errors.Is(err, os.ErrExist) || try == 3 {
			break
		}
		id = journal.NewRunID(time.Now()) // the same second and the same random digits: draw again
	}
	if err != nil {
		lock.Release()
		return nil, engine.Invalid(err)
	}
	if err := saveSources(j.Dir(), pb); err != nil {
		j.Close()
		lock.Release()
		return nil, engine.Invalid(fmt.Errorf("keeping a copy of the playbook in %s: %v", j.Dir(), err))
	}
	return &runRecord{ctx: ctx, id: id, stateDir: stateDir, j: j, lock: lock, dryRun: mode == engine.ModeDryRun}, nil
}

// maskedParams are the --var settings for the journal's header: a value of
// a secret parameter, of a key that names a secret or no parameter, or
// holding a configured secret is masked.
func maskedParams(pb *engine.Playbook, vars map[string]string, cfg *config.Config) map[string]string {
	m := &secret.Masker{}
	m.Add(cfg.Secrets()...)
	secretParam := map[string]bool{}
	for _, p := range pb.Params {
		secretParam[p.Name] = p.Secret
	}
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		_, known := secretParam[k]
		// a misspelt name may be a secret parameter's: the run refuses it,
		// and its value stays out of the journal
		if secretParam[k] || !known || secret.LooksSecret(k) {
			out[k] = secret.Mask
			continue
		}
		out[k] = m.Apply(v)
	}
	return out
}

// Record implements engine.Journal: the run_finished of a run cut short by
// SIGINT/SIGTERM is recorded with status interrupted.
func (r *runRecord) Record(name string, fields map[string]any, durable bool) error {
	if name == event.RunFinished && r.ctx.Err() != nil {
		if s, _ := fields["status"].(string); s != journal.StatusSuccess {
			f := make(map[string]any, len(fields))
			for k, v := range fields {
				f[k] = v
			}
			f["status"] = journal.StatusInterrupted
			fields = f
		}
	}
	return r.j.Record(name, fields, durable)
}

// finish records how the run ended (status and exit code), closes the
// journal, releases the lock and returns the error to report, with the run
// id and what to do next when the run did not succeed.
func (r *runRecord) finish(runErr error, runner *engine.Runner) error {
	mask := runner.Masker().Apply
	code := engine.ExitCode(runErr)
	status := map[int]string{engine.ExitOK: journal.StatusSuccess, engine.ExitInvalid: journal.StatusInvalid,
		engine.ExitRefused: journal.StatusRefused, engine.ExitInterrupted: journal.StatusInterrupted,
		engine.ExitAborted: journal.StatusAborted}[code]
	if status == "" {
		status = journal.StatusFailed
	}
	if code == engine.ExitOK && r.status != "" {
		status = r.status
	}
	outcome := runner.Outcome()
	fields := map[string]any{"run_id": r.id, "status": status, "exit_code": code, "changes": outcome.Changes}
	if runErr != nil {
		fields["error"] = mask(runErr.Error())
	}
	if len(outcome.Rescues) > 0 {
		var rs []any
		for _, x := range outcome.Rescues {
			rs = append(rs, map[string]any{"step": x.Step, "outcome": x.Outcome, "changes": x.Changes})
		}
		fields["rescues"] = rs
	}
	jerr := r.j.Record(event.RunExit, fields, true)
	if cerr := r.j.Close(); jerr == nil {
		jerr = cerr
	}
	if lerr := r.lock.Release(); jerr == nil && lerr != nil {
		jerr = fmt.Errorf("releasing the run lock: %v", lerr)
	}
	where := ""
	if r.stateDir != stateDirDefault() {
		where = " --state-dir " + r.stateDir
	}
	hint := changedText(outcome, r.dryRun)
	switch code {
	case engine.ExitOK:
		if jerr != nil {
			return &engine.ExitError{Code: engine.ExitStepFailed, Err: fmt.Errorf("the run succeeded but its journal could not be completed: %v", jerr)}
		}
		return nil
	case engine.ExitInterrupted, engine.ExitStepFailed:
		if r.dryRun {
			hint = fmt.Sprintf("dry run %s changed nothing: `flow status %s%s` shows what ran", r.id, r.id, where)
			break
		}
		if code == engine.ExitStepFailed && outcome.NoReturn != "" {
			hint += pastNoReturnHint(r.id, where)
			break
		}
		if code == engine.ExitStepFailed {
			hint += fmt.Sprintf("run %s: `flow status %s%s` shows what ran; once the cause is fixed, `flow resume %s%s` continues it (or `flow rollback %s%s` undoes it)", r.id, r.id, where, r.id, where, r.id, where)
			break
		}
		hint += interruptedHint(outcome, r.id, where)
	case engine.ExitInvalid:
		hint = fmt.Sprintf("run %s: nothing ran", r.id)
	case engine.ExitRefused:
		hint = fmt.Sprintf("run %s was refused before it changed anything: `flow status %s%s` shows what it checked", r.id, r.id, where)
	case engine.ExitAborted:
		if outcome.NoReturn != "" {
			hint += pastNoReturnHint(r.id, where)
			break
		}
		hint += fmt.Sprintf("run %s stopped after it had changed something: `flow status %s%s` shows what ran; `flow report %s%s` sums it up", r.id, r.id, where, r.id, where)
	default:
		hint = fmt.Sprintf("run %s: `flow status %s%s` shows what ran", r.id, r.id, where)
	}
	if jerr != nil {
		hint += fmt.Sprintf("\nflow: the journal could not be completed: %v", jerr)
	}
	return &engine.ExitError{Code: code, Err: fmt.Errorf("%w\nflow: %s", runErr, hint)}
}

// interruptedHint is the way on for an interrupted run. When every rescue
// that ran put back what the run had changed, resume means "try again from
// the rescued step", not "finish": the hint says so.
func interruptedHint(o engine.Outcome, id, where string) string {
	if o.Changes == 0 && len(o.Rescues) == 0 {
		return fmt.Sprintf("run %s stopped before it changed anything; see what ran with `flow status %s%s`, and continue it with:\n  flow resume %s%s", id, id, where, id, where)
	}
	rescued := len(o.Rescues) > 0
	for _, x := range o.Rescues {
		rescued = rescued && x.Outcome == "done"
	}
	if rescued && o.NoReturn == "" {
		return fmt.Sprintf("run %s stopped and its rescue put back what it had changed; see what ran with `flow status %s%s`. To try again from the rescued step (its confirmations are asked again):\n  flow resume %s%s", id, id, where, id, where)
	}
	return fmt.Sprintf("run %s stopped; see what ran with `flow status %s%s`, and continue it with:\n  flow resume %s%s", id, id, where, id, where)
}

// pastNoReturnHint is the way on for a run that ended failed or refused
// after its point of no return: resume, not rollback (which refuses).
func pastNoReturnHint(id, where string) string {
	return fmt.Sprintf("run %s passed its point of no return (a rollback is refused): `flow status %s%s` shows what ran; once the cause is fixed, `flow resume %s%s` continues it", id, id, where, id, where)
}

// changedText says what a run that did not succeed changed and what its
// rescue sections did ("" when nothing changed and no rescue ran).
func changedText(o engine.Outcome, dryRun bool) string {
	if dryRun || (o.Changes == 0 && len(o.Rescues) == 0) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "it sent %d state-changing step(s)", o.Changes)
	for _, x := range o.Rescues {
		if x.Outcome == "done" {
			fmt.Fprintf(&b, "; the rescue of %s ran to its end (%d change(s))", x.Step, x.Changes)
		} else {
			fmt.Fprintf(&b, "; the rescue of %s FAILED (%d change(s) sent): the cluster is not in a known state, check it by hand", x.Step, x.Changes)
		}
	}
	b.WriteString("\nflow: ")
	return b.String()
}

// stateDirFlag adds --state-dir to a command.
func stateDirFlag(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "state-dir", stateDirDefault(), "folder of the run journals, the run lock and the default redo record (default: $"+stateDirEnv+", else $XDG_STATE_HOME/flow, else ~/.local/state/flow)")
}

func newRunsCmd(st *streams) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "runs",
		Short: "List the runs recorded in the state directory, with their status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			runs, err := journal.List(dir)
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				fmt.Fprintf(st.out, "no runs in %s (runs are kept in --state-dir, by default $%s, else $XDG_STATE_HOME/flow, else ~/.local/state/flow)\n", dir, stateDirEnv)
				if h := legacyStateHint(dir); h != "" {
					fmt.Fprintln(st.out, h)
				}
				return nil
			}
			tw := tabwriter.NewWriter(st.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN ID\tPLAYBOOK\tMODE\tSTATUS\tSTARTED\tDURATION")
			for _, r := range runs {
				started := "-"
				if !r.Started.IsZero() {
					started = r.Started.UTC().Format("2006-01-02 15:04:05Z")
				}
				dur := fmtDuration(r.Duration())
				if r.Status == journal.StatusRunning {
					dur = fmtDuration(time.Since(r.Started)) + " so far"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.RunID, orDash(r.Playbook), orDash(r.Mode), r.Status, started, dur)
			}
			return tw.Flush()
		},
	}
	stateDirFlag(c, &dir)
	return c
}

func newStatusCmd(st *streams) *cobra.Command {
	var dir string
	var showLog bool
	c := &cobra.Command{
		Use:   "status RUN",
		Short: "Show one run: steps done, current and failed, with times and the statements sent",
		Long: `Show one run from its journal: who ran which playbook where, its status, and every
step in the order it started (done, failed, refused, skipped, or started and not
finished), with its times and the statements and commands it sent (secrets masked).
RUN is a run id as 'flow runs' lists it, a unique prefix of one, or "last".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := loadRun(dir, args[0])
			if err != nil {
				return err
			}
			printRun(st.out, run)
			if showLog {
				printLog(st.out, run)
			} else if len(run.Logs) > 0 {
				fmt.Fprintf(st.out, "\n%d log line(s) in the journal: `flow status %s --log` prints them\n", len(run.Logs), run.RunID)
			}
			return nil
		},
	}
	stateDirFlag(c, &dir)
	c.Flags().BoolVar(&showLog, "log", false, "also print every log line the run wrote (from the journal, secrets masked)")
	return c
}

// printLog writes a run's log lines as the journal kept them.
func printLog(w io.Writer, run *journal.Run) {
	fmt.Fprintf(w, "\nlog (%d line(s)):\n", len(run.Logs))
	attempt := 1
	for _, l := range run.Logs {
		if l.Attempt > attempt {
			attempt = l.Attempt
			fmt.Fprintf(w, "  -- attempt %d --\n", attempt)
		}
		fmt.Fprintf(w, "  %s [%s:%d] [%s] %s\n", l.Time.UTC().Format("15:04:05.000"), l.File, l.Line, strings.ToUpper(l.Level), indent(l.Msg, "    "))
	}
}

func newAuditCmd(st *streams) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "audit RUN",
		Short: "Prove a run's journal was not edited (verify its hash chain)",
		Long: `Verify a run's journal: every record must be chained to the one before it by its
SHA-256 hash, numbered in order and in the form flow writes, and a closed journal
must end where its seal says. Exit 0 prints "journal intact: N records" and the last
hash (keep it elsewhere: the chain proves the file is consistent with itself, the
kept hash proves it is the same file); exit 1 names the first line that fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := resolveRun(dir, args[0])
			if err != nil {
				return engine.Invalid(err)
			}
			ch, err := journal.Verify(dir, id)
			if err != nil {
				return &engine.ExitError{Code: engine.ExitStepFailed, Err: fmt.Errorf("journal of run %s fails verification: %w", id, err)}
			}
			if run, lerr := journal.Load(dir, id); lerr == nil {
				h := run.Header
				fmt.Fprintf(st.out, "run %s: %s (sha256 %s), %s by %s on %s, %s\n", id, h.Playbook, h.PlaybookSHA256,
					h.Mode, h.Operator, h.Host, run.Status)
			}
			state := "closed"
			if !ch.Sealed {
				state = "not closed (still running, or flow was stopped before closing it)"
			}
			fmt.Fprintf(st.out, "journal intact: %d records, last hash %s, %s\n", ch.Records, ch.Head, state)
			return nil
		},
	}
	stateDirFlag(c, &dir)
	return c
}

// printRun writes flow status's view of a run.
func printRun(w io.Writer, run *journal.Run) {
	h := run.Header
	fmt.Fprintf(w, "run       %s\n", run.RunID)
	fmt.Fprintf(w, "playbook  %s (%s)\n", orDash(h.PlaybookName), h.Playbook)
	fmt.Fprintf(w, "sha256    %s\n", h.PlaybookSHA256)
	fmt.Fprintf(w, "mode      %s\n", h.Mode)
	status := run.Status
	if run.ExitCode >= 0 {
		status += fmt.Sprintf(" (exit %d)", run.ExitCode)
	}
	fmt.Fprintf(w, "status    %s\n", status)
	fmt.Fprintf(w, "started   %s\n", h.Started.UTC().Format(time.RFC3339))
	if run.Status == journal.StatusRunning {
		fmt.Fprintf(w, "running   %s so far\n", fmtDuration(time.Since(h.Started)))
	} else {
		fmt.Fprintf(w, "duration  %s\n", fmtDuration(run.Duration()))
	}
	fmt.Fprintf(w, "operator  %s on %s, pid %d, flow %s\n", h.Operator, h.Host, h.PID, h.Version)
	if h.Config != "" {
		fmt.Fprintf(w, "config    %s\n", h.Config)
	}
	if len(h.Params) > 0 {
		keys := make([]string, 0, len(h.Params))
		for k := range h.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + h.Params[k]
		}
		fmt.Fprintf(w, "params    %s\n", strings.Join(parts, " "))
	}
	if run.Error != "" {
		fmt.Fprintf(w, "error     %s\n", indent(run.Error, "          "))
	}
	if h.Mode == "run" {
		fmt.Fprintf(w, "changes   %d state-changing step(s) sent their change\n", run.Changes)
	}
	if len(run.Audit) > 0 {
		fmt.Fprintf(w, "\ndecisions and safety nets:\n")
		for _, a := range run.Audit {
			at := ""
			if a.Attempt > 1 {
				at = fmt.Sprintf(" (attempt %d)", a.Attempt)
			}
			fmt.Fprintf(w, "  %s %s%s\n", a.Time.UTC().Format("15:04:05.000"), indent(a.Text, "    "), at)
		}
	}
	open := "current"
	if run.Status != journal.StatusRunning {
		open = "started, not finished"
	}
	counts := map[string]int{}
	for _, s := range run.Steps {
		counts[s.State]++
	}
	fmt.Fprintf(w, "\nsteps: %d done, %d failed, %d refused, %d skipped, %d %s", counts[journal.StepDone],
		counts[journal.StepFailed], counts[journal.StepRefused], counts[journal.StepSkipped], counts[journal.StepOpen], open)
	if n := counts[journal.StepRestored]; n > 0 {
		fmt.Fprintf(w, ", %d restored", n)
	}
	if run.Attempts > 0 {
		fmt.Fprintf(w, "; %d attempt(s), %d step(s) restored from the journal by resume", run.Attempts+1, run.Restored)
	}
	fmt.Fprintln(w)
	attempt := 1
	for _, s := range run.Steps {
		if s.Attempt > attempt {
			attempt = s.Attempt
			fmt.Fprintf(w, "  -- attempt %d (flow resume / rollback) --\n", attempt)
		}
		state := s.State
		switch {
		case state == journal.StepOpen:
			state = open
		case s.Interrupted:
			state = "interrupted"
		}
		dur := ""
		switch {
		case s.State == journal.StepOpen && run.Status == journal.StatusRunning:
			dur = fmtDuration(time.Since(s.Started)) + " so far"
		case s.State == journal.StepOpen:
			dur = "-"
		case s.Duration > 0 || s.State == journal.StepDone || s.State == journal.StepFailed:
			dur = fmtDuration(s.Duration)
		}
		kind := s.Type
		if s.Mutates {
			kind += ", changes state"
		}
		worker := ""
		if s.Worker > 1 {
			worker = fmt.Sprintf(" [ID:%d]", s.Worker)
		}
		fmt.Fprintf(w, "  %-8s %s  %-8s %s:%d%s %s [%s]\n", state, s.Started.UTC().Format("15:04:05.000"), dur,
			s.File, s.Line, worker, s.Name, kind)
		if s.Reason != "" {
			fmt.Fprintf(w, "           why: %s\n", indent(s.Reason, "                "))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "           error: %s\n", indent(s.Error, "                  "))
		}
		for _, stm := range s.Statements {
			fmt.Fprintf(w, "           %s on %s:\n", stm.Time.UTC().Format("15:04:05.000"), stm.Target)
			fmt.Fprintf(w, "             %s\n", indent(stm.Text, "             "))
		}
		if s.State == journal.StepOpen && run.Status != journal.StatusRunning && s.Key != "" && s.Mutates {
			fmt.Fprintf(w, "           key: %s\n", s.Key)
		}
	}
	if h.Mode == "run" && (run.Status == journal.StatusFailed || run.Status == journal.StatusInterrupted || run.Status == journal.StatusAborted) {
		fmt.Fprintf(w, "\ncontinue with `flow resume %s`, or undo with `flow rollback %s --dry-run` first\n", run.RunID, run.RunID)
	}
}

func indent(s, pad string) string { return strings.ReplaceAll(s, "\n", "\n"+pad) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDuration rounds for reading: milliseconds under a second, tenths of a
// second under a minute, seconds above.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// absDir is dir made absolute (dir itself when that fails).
func absDir(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// resolveRun is journal.Resolve, its error naming the working directory's
// .flow when that holds runs of an earlier flow's default.
func resolveRun(dir, ref string) (string, error) {
	id, err := journal.Resolve(dir, ref)
	if err != nil {
		if h := legacyStateHint(dir); h != "" {
			err = fmt.Errorf("%w; %s", err, h)
		}
	}
	return id, err
}

// loadRun loads the run a RUN argument names (a run id, a unique prefix of
// one, or "last"); naming no run is a usage error (exit 2).
func loadRun(dir, ref string) (*journal.Run, error) {
	id, err := resolveRun(dir, ref)
	if err != nil {
		return nil, engine.Invalid(err)
	}
	return journal.Load(dir, id)
}
