// Package testutil holds the small helpers the tests of several packages
// share, so each is written once: a test that watches a run's output while
// the run's goroutines write it needs a buffer both may use at once.
package testutil

import (
	"bytes"
	"sync"
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
