package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/event"
)

// operatorSignals carries out the operator contract for signals during a
// run: the first SIGINT, SIGTERM or SIGHUP cancels the current step (the
// run's context) so the rescue sections that apply run and the journal
// closes as interrupted; a second one while a rescue runs says what still
// runs and how to continue; a third abandons the rescue (Abandon). After a
// SIGHUP the terminal is gone: prompts are refused and nothing more is
// written to it, and further SIGHUPs (one hang-up sends several) do not
// count towards abandoning the rescue.
type operatorSignals struct {
	ctx     context.Context
	cancel  context.CancelFunc
	abandon context.Context
	give    context.CancelFunc
	hungup  atomic.Bool
	count   atomic.Int32 // the signals that count: SIGINT, SIGTERM, the first SIGHUP
	// received counts every signal (the journal's count)
	received atomic.Int32
	first    atomic.Value // the first signal's name
	ch       chan os.Signal
	done     chan struct{}

	mu      sync.Mutex
	runner  *engine.Runner
	journal engine.Journal
	runID   string
	command string // what continues the run: flow resume RUN
	warn    io.Writer
}

// watchSignals starts handling SIGINT, SIGTERM and SIGHUP for a run;
// Stop ends it. warn is where the messages for further signals go (the
// operator's terminal, dropped after a hang-up).
func watchSignals(parent context.Context, warn io.Writer) *operatorSignals {
	if parent == nil {
		parent = context.Background()
	}
	s := &operatorSignals{ch: make(chan os.Signal, 4), done: make(chan struct{}), warn: warn}
	s.ctx, s.cancel = context.WithCancel(parent)
	s.abandon, s.give = context.WithCancel(context.Background())
	signal.Notify(s.ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go s.loop()
	return s
}

// attach names the runner and journal the messages and records are about.
func (s *operatorSignals) attach(r *engine.Runner, j engine.Journal, runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runner, s.journal, s.runID = r, j, runID
	if runID != "" {
		s.command = "flow resume " + runID
	}
}

// Stop stops handling signals (the process's default comes back).
func (s *operatorSignals) Stop() {
	signal.Stop(s.ch)
	close(s.done)
	s.cancel()
}

// TerminalGone reports whether the terminal hung up (SIGHUP).
func (s *operatorSignals) TerminalGone() bool { return s.hungup.Load() }

// Signal is the first signal's name ("" when none came).
func (s *operatorSignals) Signal() string {
	v, _ := s.first.Load().(string)
	return v
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

func (s *operatorSignals) loop() {
	for {
		select {
		case <-s.done:
			return
		case sig := <-s.ch:
			s.handle(sig)
		}
	}
}

func (s *operatorSignals) handle(sig os.Signal) {
	name := signalName(sig)
	received := s.received.Add(1)
	s.mu.Lock()
	r, j, command := s.runner, s.journal, s.command
	s.mu.Unlock()
	var rescuing []string
	if r != nil {
		rescuing = r.Rescuing()
	}
	record := func(action string) {
		if j != nil {
			_ = j.Record(event.Signal, map[string]any{"signal": name, "count": int(received), "action": action,
				"rescuing": strings.Join(rescuing, "; "), "terminal_gone": s.hungup.Load()}, true)
		}
	}
	if sig == syscall.SIGHUP && s.hungup.Swap(true) {
		// one hang-up sends SIGHUP more than once (the kernel to the
		// terminal's foreground group, the shell to its jobs, tmux or
		// sshd to the session): only the first counts, or a dropped SSH
		// session alone would abandon the rescue
		record("none: the terminal had hung up already (one hang-up sends SIGHUP more than once); the clean-up goes on")
		return
	}
	n := s.count.Add(1)
	action := ""
	switch {
	case n == 1:
		s.first.Store(name)
		action = "cancel the current step; rescue sections that apply run, then the run ends interrupted"
		s.cancel()
	case n == 2:
		action = "none: the clean-up goes on"
		what := "the current step is being cancelled and the run's clean-up runs"
		if len(rescuing) > 0 {
			what = "the rescue puts the cluster back in a known state and is still running: " + strings.Join(rescuing, "; ")
		}
		s.say("flow: %s received again: %s. It finishes on its own; one more signal abandons it (the cluster may then be half-way: %s runs the rescue again).\n",
			name, what, orText(command, "flow resume RUN"))
	default:
		action = "abandon the rescue"
		s.say("flow: %s received a third time: abandoning the clean-up%s. The cluster may be half-way: run %s to finish the rescue.\n",
			name, map[bool]string{true: " (" + strings.Join(rescuing, "; ") + ")", false: ""}[len(rescuing) > 0], orText(command, "flow resume RUN"))
		s.give()
	}
	record(action)
}

// interrupted is the error of a run (or rollback) a signal cut short:
// exit 130, naming the signal and what was cancelled.
func (s *operatorSignals) interrupted(what string, err error) error {
	return &engine.ExitError{Code: engine.ExitInterrupted, Err: fmt.Errorf("%s received: %s was cancelled: %v", orText(s.Signal(), "a signal"), what, err)}
}

// say writes to the operator's terminal unless it hung up.
func (s *operatorSignals) say(format string, args ...any) {
	if s.hungup.Load() || s.warn == nil {
		return
	}
	fmt.Fprintf(s.warn, format, args...)
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// hangupWriter drops what is written to a terminal after it hung up (the
// operator's SSH session dropped): writing to it would fail or block, and
// the journal keeps every line anyway.
type hangupWriter struct {
	w    io.Writer
	gone func() bool
}

func (h hangupWriter) Write(p []byte) (int, error) {
	if h.gone() {
		return len(p), nil
	}
	return h.w.Write(p)
}

// guardTerminals wraps the streams that are terminals so nothing is written
// to them after a hang-up; files and pipes keep what they are given.
func guardTerminals(st *streams, sig *operatorSignals) *streams {
	wrap := func(w io.Writer) io.Writer {
		if f, ok := w.(*os.File); ok && isTerminal(io.Reader(f)) {
			return hangupWriter{w: w, gone: sig.TerminalGone}
		}
		return w
	}
	return &streams{in: st.in, out: wrap(st.out), err: wrap(st.err)}
}

// warnSecretVars warns about a secret given with --var: every user of the
// control host sees the command line (ps) for the whole run. The
// environment (FLOW_VAR_NAME) and the config file are not shown.
func warnSecretVars(st *streams, pb *engine.Playbook, vars map[string]string) {
	for _, p := range pb.Params {
		if _, given := vars[p.Name]; !given {
			continue
		}
		if p.Secret || secret.LooksSecret(p.Name) {
			fmt.Fprintf(st.err, "flow: warning: --var %s passes a secret on the command line, where `ps` shows it to every user of this host for the whole run: "+
				"set FLOW_VAR_%s in the environment, or put it in the config file (-c, mode 0600), instead\n", p.Name, strings.ToUpper(p.Name))
		}
	}
}
