// Package cli is flow's command line: run, plan, validate, eval, graph,
// schema, steps, runs, status, audit, report (the journal's readers),
// resume, rollback, lab (up, status, write, check, down, serve-dbscale:
// the local DR lab), version and completion. Main returns the process
// exit code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/flowdba/flow/conn/sshdial"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	_ "github.com/flowdba/flow/engine/funcs" // expression functions
	"github.com/flowdba/flow/engine/logfmt"
	_ "github.com/flowdba/flow/steps" // step types register themselves
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Version is stamped at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

// streams are the process's standard streams.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Main runs the CLI with args (without the program name) and returns the
// exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	st := &streams{in: stdin, out: stdout, err: stderr}
	root := newRoot(st)
	root.SetArgs(compatArgs(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return engine.ExitOK
	}
	code := engine.ExitCode(err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		code = engine.ExitInvalid
	}
	msg := err.Error()
	if code == engine.ExitInterrupted {
		msg = "interrupted: " + msg
	}
	fmt.Fprintf(stderr, "flow: %s\n", msg)
	return code
}

type usageError struct{ error }

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// compatArgs accepts the old tool's single-dash -config.
func compatArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case a == "-config":
			out[i] = "--config"
		case strings.HasPrefix(a, "-config="):
			out[i] = "--config=" + strings.TrimPrefix(a, "-config=")
		default:
			out[i] = a
		}
	}
	return out
}

func newRoot(st *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "flow",
		Short: "Run declarative playbooks of typed steps against MySQL clusters",
		Long: `flow runs YAML playbooks of typed steps (sql, ssh, wait-gtid, clone, redo, assert, …)
against MySQL clusters behind the DBScale router. Preview every change with
'flow run --dry-run' or 'flow plan' before touching production.

Exit codes: 0 success; 1 a step failed; 2 invalid input (nothing executed);
3 refused or declined, nothing changed; 4 aborted after a change (the rescues that apply ran;
none past a point of no return: resume it);
130 interrupted (SIGINT, SIGTERM, SIGHUP).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.AddCommand(newRunCmd(st), newValidateCmd(st), newPlanCmd(st), newEvalCmd(st), newGraphCmd(st), newVersionCmd(st))
	for _, c := range extraCommands {
		root.AddCommand(c(st))
	}
	return root
}

// extraCommands are added by other files (lab).
var extraCommands []func(*streams) *cobra.Command

// runFlags are the flags shared by run and plan.
type runFlags struct {
	config    string
	vars      []string
	dryRun    bool
	logFormat string
	logLevel  string
	yes       bool
	stateDir  string
	short     bool         // dry run and plan: only changes, confirmations, refusals, rescues
	plan      *planFlags   // flow plan --out, flow run --plan (plan.go)
	progress  progressFlag // flow run --progress (progress.go)
}

func (f *runFlags) add(c *cobra.Command, withRun bool) {
	c.Flags().StringVarP(&f.config, "config", "c", "", "INI config file (the old tool's flashback.ini); -config also works")
	c.Flags().StringArrayVar(&f.vars, "var", nil, "set a parameter: --var KEY=VALUE (repeatable; wins over the environment and the config; never for a secret: ps shows it — use FLOW_VAR_NAME or the config file)")
	c.Flags().BoolVar(&f.short, "short", false, "dry run and plan: list only the changes, confirmation points, refusals and rescue sections")
	if withRun {
		c.Flags().BoolVar(&f.dryRun, "dry-run", false, "run read-only steps for real, print what state-changing steps would execute, change nothing")
		c.Flags().StringVar(&f.logFormat, "log-format", "text", "log format: text (the old tool's lines) or json (one event per line)")
		c.Flags().StringVar(&f.logLevel, "log-level", "debug", "log level: debug (every statement), info, warn, error")
		c.Flags().BoolVar(&f.yes, "yes", false, "answer confirmations (for automation)")
		stateDirFlag(c, &f.stateDir)
		addProgressFlag(c, &f.progress)
	}
}

func parseVars(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, engine.Invalid(fmt.Errorf("--var %q: use --var KEY=VALUE", kv))
		}
		out[k] = v
	}
	return out, nil
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Empty(), nil
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, engine.Invalid(err)
	}
	return c, nil
}

// loadPlaybook loads and validates, printing warnings.
func loadPlaybook(st *streams, path string) (*engine.Playbook, error) {
	pb, diags := engine.Load(path)
	if pb == nil {
		return nil, diags.Formatted()
	}
	for _, w := range diags.Warnings() {
		fmt.Fprintln(st.err, w.Format())
	}
	return pb, nil
}

func newLogger(w io.Writer, format, level string) (*logrus.Logger, bool, error) {
	log := logrus.New()
	log.SetOutput(w)
	json := false
	switch format {
	case "text", "":
		log.SetFormatter(logfmt.Text{})
	case "json":
		log.SetFormatter(logfmt.JSON{})
		json = true
	default:
		return nil, false, engine.Invalid(fmt.Errorf("--log-format %q: use text or json", format))
	}
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, false, engine.Invalid(fmt.Errorf("--log-level %q: use debug, info, warn or error", level))
	}
	log.SetLevel(lv)
	return log, json, nil
}

func operator() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func isTerminal(r io.Reader) bool {
	if f, ok := r.(*os.File); ok {
		return term.IsTerminal(int(f.Fd()))
	}
	return false
}

func newRunCmd(st *streams) *cobra.Command {
	f := &runFlags{}
	c := &cobra.Command{
		Use:   "run PLAYBOOK",
		Short: "Run a playbook (or preview it with --dry-run)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := engine.ModeRun
			if f.dryRun {
				mode = engine.ModeDryRun
			}
			return execute(cmd.Context(), st, args[0], f, mode)
		},
	}
	f.add(c, true)
	addRunPlanFlags(c, f)
	return c
}

func newPlanCmd(st *streams) *cobra.Command {
	f := &runFlags{logFormat: "text", logLevel: "warn"}
	c := &cobra.Command{
		Use:   "plan PLAYBOOK",
		Short: "List every step with its rendered statements and targets; touches nothing (--out: save a dry run's plan for run --plan)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.logFormat, f.logLevel = "text", "warn"
			return execute(cmd.Context(), st, args[0], f, planMode(f))
		},
	}
	f.add(c, false)
	addPlanOutFlags(c, f)
	return c
}

func execute(ctx context.Context, st *streams, path string, f *runFlags, mode engine.Mode) error {
	vars, err := parseVars(f.vars)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	pb, err := loadPlaybook(st, path)
	if err != nil {
		return err
	}
	warnSecretVars(st, pb, vars)
	sig := watchSignals(ctx, st.err)
	defer sig.Stop()
	ctx = sig.ctx
	st = guardTerminals(st, sig)
	log, json, err := newLogger(st.out, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	out := st.out
	if mode == engine.ModeRun {
		out = io.Discard
	}
	opts := engine.Options{Mode: mode, Config: cfg, Vars: vars, Yes: f.yes,
		Interactive: isTerminal(st.in), Stdin: st.in, Out: out, Prompt: st.err, Log: log, JSON: json,
		SSHDial: sshdial.Dial, Operator: operator(), Host: hostname(),
		TerminalGone: sig.TerminalGone, Abandon: sig.abandon, Short: f.short}
	if f.stateDir != "" { // a plan, which keeps no journal, names the files a run would keep there
		opts.StateDir = absDir(f.stateDir)
	}
	if err := preparePlan(st, path, f, pb, cfg, vars, &opts); err != nil {
		return err
	}
	var run *runRecord // the journal and the lock: run and dry run, not plan
	if mode != engine.ModePlan {
		if run, err = startRun(ctx, f.stateDir, path, pb, f.config, vars, cfg, mode); err != nil {
			return err
		}
		opts.RunID, opts.Journal, opts.StateDir = run.id, run, absDir(run.stateDir)
		if h := legacyStateHint(run.stateDir); h != "" {
			fmt.Fprintln(st.err, "flow: note: "+h)
		}
	}
	view := startProgress(st, f, mode, &opts, pb) // the live view on a terminal (progress.go)
	defer view.Close()
	if view != nil {
		opts.Prompt = view.v // prompts print above the live block
	}
	r := engine.NewRunner(opts)
	log.SetFormatter(logfmt.Masked{Inner: log.Formatter, Mask: r.Masker().Apply})
	if run != nil {
		sig.attach(r, run, run.id)
	}
	planStarted(f, r)
	if mode == engine.ModeDryRun {
		fmt.Fprintf(st.out, "Dry run of %s: read-only steps run for real; state-changing steps are listed, not executed.\n\n", path)
	}
	if mode == engine.ModePlan {
		fmt.Fprintf(st.out, "Plan of %s (offline: nothing is contacted; {{ … }} marks values only a run knows)\n\n", path)
	}
	err = r.Run(ctx, pb)
	if err != nil && ctx.Err() != nil {
		err = sig.interrupted("the current step", err)
	}
	err = planFinished(st, path, f, vars, r, err)
	if run != nil {
		err = run.finish(err, r)
	}
	return err
}

func newValidateCmd(st *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "validate PLAYBOOK...",
		Short: "Check playbooks (syntax, types, names, expressions, lint); prints every problem as FILE:LINE:COL: message",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var all engine.Diags
			for _, p := range args {
				pb, diags := engine.Load(p)
				for _, d := range diags {
					fmt.Fprintln(st.out, d.Format())
				}
				if pb == nil {
					all = append(all, diags.Errors()...)
				}
			}
			if len(all) > 0 {
				return engine.Invalid(fmt.Errorf("%d error(s) in %d playbook(s)", len(all), len(args)))
			}
			fmt.Fprintf(st.out, "%d playbook(s) valid\n", len(args))
			return nil
		},
	}
}

func newVersionCmd(st *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print flow's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(st.out, "flow %s\n", Version)
		},
	}
}
