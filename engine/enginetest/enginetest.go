// Package enginetest runs playbooks in tests: it writes the YAML to a temp
// file, loads it, runs it in the chosen mode and returns the log, the
// dry-run/plan listing and the error.
package enginetest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	_ "github.com/flowdba/flow/engine/funcs" // expression functions
	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/sirupsen/logrus"
)

// Result is what a test run produced.
type Result struct {
	Log     string // log lines (text or JSON)
	Out     string // plan / dry-run listing
	Err     error
	Runner  *engine.Runner
	File    string
	Elapsed time.Duration
}

// Options tune a test run.
type Options struct {
	Mode    engine.Mode
	Vars    map[string]string
	JSON    bool
	Config  *config.Config
	SSHDial engine.SSHDialer
	Timeout time.Duration
	Yes     bool
	// Files are extra files written next to the playbook (name → content).
	Files map[string]string
	// Journal receives the run's events; Resume continues earlier attempts.
	Journal engine.Journal
	Resume  *engine.ResumeState
	// Context, when set, is the run's context (cancel it to interrupt
	// the run as a signal does); Stdin with Interactive is a terminal.
	Context     context.Context
	Stdin       io.Reader
	Interactive bool
	// TerminalGone, when set, says the terminal hung up (SIGHUP).
	TerminalGone func() bool
}

// Journal keeps a run's events in memory, as the engine records them.
type Journal struct {
	mu     sync.Mutex
	events []engine.ResumeEvent
}

// Record implements engine.Journal.
func (j *Journal) Record(event string, fields map[string]any, durable bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, engine.ResumeEvent{Seq: int64(len(j.events) + 1), Time: time.Now(), Event: event, Fields: fields})
	return nil
}

// Events returns the events recorded so far.
func (j *Journal) Events() []engine.ResumeEvent {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]engine.ResumeEvent(nil), j.events...)
}

// Write writes a playbook (and extra files) into a temp dir and returns its path.
func Write(t testing.TB, yaml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "test.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Load loads a playbook and fails the test on any error.
func Load(t testing.TB, path string) *engine.Playbook {
	t.Helper()
	pb, diags := engine.Load(path)
	if pb == nil {
		t.Fatalf("load %s:\n%v", path, diags)
	}
	return pb
}

// Run loads and runs a playbook given as YAML text.
func Run(t testing.TB, yaml string, o Options) *Result {
	t.Helper()
	path := Write(t, yaml, o.Files)
	pb := Load(t, path)
	return RunPlaybook(t, pb, o)
}

// RunPlaybook runs a loaded playbook.
func RunPlaybook(t testing.TB, pb *engine.Playbook, o Options) *Result {
	t.Helper()
	logBuf, outBuf := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	log := logrus.New()
	log.SetOutput(logBuf)
	log.SetLevel(logrus.DebugLevel)
	if o.JSON {
		log.SetFormatter(logfmt.JSON{})
	} else {
		log.SetFormatter(logfmt.Text{})
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	parent := o.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	opts := engine.Options{Mode: o.Mode, Vars: o.Vars, JSON: o.JSON, Config: o.Config, Log: log,
		Out: outBuf, SSHDial: o.SSHDial, Yes: o.Yes, Operator: "test", Host: "test", Resume: o.Resume,
		Stdin: o.Stdin, Interactive: o.Interactive, Prompt: outBuf, TerminalGone: o.TerminalGone}
	if o.Journal != nil {
		opts.Journal = o.Journal
	}
	r := engine.NewRunner(opts)
	log.SetFormatter(logfmt.Masked{Inner: log.Formatter, Mask: r.Masker().Apply})
	start := time.Now()
	err := r.Run(ctx, pb)
	return &Result{Log: logBuf.String(), Out: outBuf.String(), Err: err, Runner: r, File: pb.File, Elapsed: time.Since(start)}
}
