// Package testutil holds the small helpers the tests of several packages
// share, so each is written once: a test that watches a run's output while
// the run's goroutines write it needs a buffer both may use at once, and
// a test that runs flow as a process needs it built.
package testutil

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that concurrent writers and readers may
// use at once (a run's goroutines write, the test reads).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BuildFlow builds the flow command into a temporary directory of t and
// returns its path: for tests that run flow as a process (signals, a
// pseudo-terminal, exit codes as a shell sees them).
func BuildFlow(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command to build flow with")
	}
	bin := filepath.Join(t.TempDir(), "flow")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/flowdba/flow/cmd/flow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
