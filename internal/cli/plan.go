package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/internal/planfile"
	"github.com/spf13/cobra"
)

// planFlags bind a plan to its run: `flow plan --out FILE` saves a plan
// made by a dry run, `flow run --plan FILE` executes exactly that plan
// (package planfile).
type planFlags struct {
	out    string        // flow plan --out
	plan   string        // flow run --plan
	maxAge time.Duration // flow run --plan-max-age

	// set while the command runs
	subject planfile.Subject
	started time.Time
	rec     *planfile.Recorder
	binder  *planfile.Binder
}

// addPlanOutFlags adds flow plan's --out (and --state-dir, for the journal
// of the dry run that makes the plan).
func addPlanOutFlags(c *cobra.Command, f *runFlags) {
	f.plan = &planFlags{}
	c.Flags().StringVar(&f.plan.out, "out", "", "make the plan by a dry run (read-only steps run against the live systems; nothing changes) and save it, with what it saw, to this file for `flow run --plan`")
	stateDirFlag(c, &f.stateDir)
}

// addRunPlanFlags adds flow run's --plan and --plan-max-age.
func addRunPlanFlags(c *cobra.Command, f *runFlags) {
	f.plan = &planFlags{}
	c.Flags().StringVar(&f.plan.plan, "plan", "", "run exactly the plan saved by `flow plan --out`: refuse (exit 3) when the live state no longer matches what it saw")
	c.Flags().DurationVar(&f.plan.maxAge, "plan-max-age", time.Hour, "refuse a --plan older than this (0: any age)")
}

// planMode is flow plan's mode: offline, or a dry run with --out.
func planMode(f *runFlags) engine.Mode {
	if f.plan != nil && f.plan.out != "" {
		return engine.ModeDryRun
	}
	return engine.ModePlan
}

// preparePlan runs before anything else of a run: with --out it records
// the dry run; with --plan it checks the plan fits this run (exit 2 when it
// does not) and binds the run to it.
func preparePlan(st *streams, path string, f *runFlags, pb *engine.Playbook, cfg *config.Config, vars map[string]string, opts *engine.Options) error {
	pf := f.plan
	if pf == nil || pf.out == "" && pf.plan == "" {
		return nil
	}
	pf.started = time.Now()
	pf.subject = planfile.Describe(path, pb, f.config, cfg, vars)
	if pf.out != "" {
		pf.rec = planfile.NewRecorder()
		opts.Observer = engine.ChainObservers(opts.Observer, pf.rec.Observe)
		fmt.Fprintf(st.out, "Making the plan %s: ", pf.out)
		return nil
	}
	if f.dryRun {
		return usageError{fmt.Errorf("--plan runs a saved plan; it cannot be combined with --dry-run (make a plan with `flow plan %s --out FILE`)", path)}
	}
	p, err := planfile.Read(pf.plan)
	if err != nil {
		return engine.Invalid(err)
	}
	if err := p.Fits(pf.plan, pf.subject, Version, pf.maxAge, pf.started); err != nil {
		return engine.Invalid(err)
	}
	pf.binder = planfile.NewBinder(p, pf.plan)
	opts.Binder = pf.binder
	opts.Observer = engine.ChainObservers(opts.Observer, pf.binder.Observe)
	w := noteWriter(st, f)
	observed, changes, _ := p.Counts()
	fmt.Fprintf(w, "Bound to the plan %s (made %s, %s ago, by dry run %s): %d observation(s) and %d change(s) are checked against the live state as the run goes.\n",
		pf.plan, p.Created.Local().Format("2006-01-02 15:04:05"), pf.started.Sub(p.Created).Round(time.Second), p.RunID, observed, changes)
	if un := pf.binder.Unbound(); len(un) > 0 {
		fmt.Fprintf(w, "%d step(s) not bound by the plan (UNKNOWN in it: they depend on values only a run knows), run as the run decides:\n", len(un))
		for i, s := range un {
			if i == 20 {
				fmt.Fprintf(w, "  … and %d more\n", len(un)-20)
				break
			}
			fmt.Fprintf(w, "  %s %s\n", s.Pos, s.Step)
		}
	}
	return nil
}

// planStarted gives the binder the run's secret masker.
func planStarted(f *runFlags, r *engine.Runner) {
	if f.plan != nil && f.plan.binder != nil {
		f.plan.binder.Mask = r.Masker().Apply
	}
}

// planFinished saves the plan a successful dry run made (--out), or sums
// up what a bound run compared (--plan). It returns the run's error.
func planFinished(st *streams, path string, f *runFlags, vars map[string]string, r *engine.Runner, runErr error) error {
	pf := f.plan
	if pf == nil {
		return runErr
	}
	if pf.rec != nil {
		if runErr != nil {
			fmt.Fprintf(st.err, "flow: no plan written to %s: its dry run did not succeed\n", pf.out)
			return runErr
		}
		p := pf.rec.Plan(pf.subject, Version, pf.started, r.Verdicts(), r.Masker().Apply)
		if err := p.Write(pf.out); err != nil {
			return err
		}
		observed, changes, unknown := p.Counts()
		fmt.Fprintf(st.out, "\nPlan written to %s: %d observation(s) of the live state, %d change(s) with their statements, %d step(s) UNKNOWN until a real run.\n", pf.out, observed, changes, unknown)
		fmt.Fprintf(st.out, "Run exactly this plan (it refuses if the live state drifts from what the plan saw; the plan is good for --plan-max-age, 1h by default):\n  %s\n", runLine(path, f, vars, r.Masker().Apply))
		return nil
	}
	if pf.binder != nil && runErr == nil {
		s := pf.binder.Stats()
		w := noteWriter(st, f)
		fmt.Fprintf(w, "Plan %s applied: %d observation(s) as planned, %d change(s) as planned, %d step(s) not bound, %d read after the first change (not compared).\n",
			pf.plan, s.Observations, s.Changes, s.Unbound, s.AfterChange)
		for _, sk := range s.Skipped {
			fmt.Fprintf(w, "warning: %s (no change followed it)\n", sk)
		}
	}
	return runErr
}

// noteWriter is where plan notes go: stdout, or stderr when stdout is the
// JSON event stream.
func noteWriter(st *streams, f *runFlags) io.Writer {
	if f.logFormat == "json" {
		return st.err
	}
	return st.out
}

// runLine is the flow run command line that applies the plan: the same
// config and --var settings (secret values elided).
func runLine(path string, f *runFlags, vars map[string]string, mask func(string) string) string {
	parts := []string{"flow", "run", quote.ShellWord(path)}
	if f.config != "" {
		parts = append(parts, "-c", quote.ShellWord(f.config))
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := mask(vars[k])
		if secret.LooksSecret(k) || v != vars[k] {
			v = "…"
		}
		parts = append(parts, "--var", quote.ShellWord(k+"="+v))
	}
	parts = append(parts, "--plan", quote.ShellWord(f.plan.out))
	return strings.Join(parts, " ")
}
