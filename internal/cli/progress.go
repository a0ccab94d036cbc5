package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/internal/progress"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// progressFlag is run's --progress (auto, on, off) and the command's flags,
// to tell whether --log-format was given.
type progressFlag struct {
	mode  string
	flags *pflag.FlagSet
}

// String implements pflag.Value.
func (p *progressFlag) String() string {
	if p.mode == "" {
		return "auto"
	}
	return p.mode
}

// Set implements pflag.Value: auto, on or off.
func (p *progressFlag) Set(s string) error {
	switch s {
	case "auto", "on", "off":
		p.mode = s
		return nil
	}
	return fmt.Errorf("use auto, on or off")
}

// Type implements pflag.Value.
func (p *progressFlag) Type() string { return "auto|on|off" }

// addProgressFlag adds --progress to run.
func addProgressFlag(c *cobra.Command, p *progressFlag) {
	p.flags = c.Flags()
	c.Flags().Var(p, "progress", "live progress view: auto (on when stdout is a terminal and --log-format is not given), on, off (plain log lines)")
}

// progressView is the live view of a run, or nothing (a nil view).
type progressView struct {
	v *progress.View
}

// Close prints the run's final state and stops the view.
func (p *progressView) Close() error {
	if p == nil || p.v == nil {
		return nil
	}
	return p.v.Close()
}

// startProgress shows the live progress view instead of the plain log
// lines when it is due: a run (not a dry run or plan) whose stdout is a
// terminal, --progress auto and no --log-format given; or --progress on.
// The view observes the run's events (chained to opts.Observer); the log
// goes through it: warnings and errors print above the live block, the
// other lines stay in the journal. The estimate of the time left comes
// from earlier runs of the playbook in the state directory, read in the
// background. The result's Close (safe on nil) prints the final state.
func startProgress(st *streams, f *runFlags, mode engine.Mode, opts *engine.Options, pb *engine.Playbook) *progressView {
	if !progressWanted(st.out, f, mode) {
		return nil
	}
	size := func() (int, int) { return 0, 0 }
	if fd, ok := terminalFD(st.out); ok {
		size = func() (int, int) {
			w, h, err := term.GetSize(fd)
			if err != nil {
				return 0, 0
			}
			return w, h
		}
	}
	v := progress.New(st.out, progress.Options{Color: os.Getenv("NO_COLOR") == "", Size: size})
	opts.Observer = engine.ChainObservers(opts.Observer, v.Observe)
	if opts.Log != nil {
		opts.Log.SetOutput(io.Discard)
		opts.Log.AddHook(viewHook{v})
	}
	stateDir, runID, name := f.stateDir, opts.RunID, pb.Name
	if stateDir == "" {
		stateDir = stateDirDefault()
	}
	v.LoadHistory(func(ctx context.Context) (*progress.History, error) {
		return progress.LoadHistory(ctx, stateDir, name, runID)
	})
	return &progressView{v: v}
}

// progressWanted decides --progress auto.
func progressWanted(out io.Writer, f *runFlags, mode engine.Mode) bool {
	if mode != engine.ModeRun {
		return false
	}
	switch f.progress.mode {
	case "on":
		return true
	case "off":
		return false
	}
	if f.progress.flags != nil && f.progress.flags.Changed("log-format") {
		return false
	}
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	fd, ok := terminalFD(out)
	return ok && term.IsTerminal(fd)
}

// terminalFD is the file descriptor of w when it is a file.
func terminalFD(w io.Writer) (int, bool) {
	if h, ok := w.(hangupWriter); ok {
		w = h.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	return int(f.Fd()), true
}

// viewHook sends the log's warnings and errors to the view, formatted by
// the logger's own (masking) formatter.
type viewHook struct{ v *progress.View }

// Levels implements logrus.Hook.
func (viewHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

// Fire implements logrus.Hook.
func (h viewHook) Fire(e *logrus.Entry) error {
	b, err := e.Logger.Formatter.Format(e)
	if err != nil {
		return err
	}
	_, err = h.v.Write(b)
	return err
}
