package runlock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAcquireHeldRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by Acquire
	since := time.Date(2026, 11, 23, 20, 45, 1, 0, time.UTC)
	first, err := Acquire(dir, Holder{RunID: "20261123T204501Z-aaaa", Playbook: "flashback-start.yaml", Host: "ctl1", PID: 4242, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	// flock(2) locks belong to an open file: a second open in this very
	// process conflicts like another process would
	_, err = Acquire(dir, Holder{RunID: "20261123T204502Z-bbbb", Host: "ctl1"})
	var held *HeldError
	if !errors.As(err, &held) || held.Holder == nil {
		t.Fatalf("second Acquire: %v, want a HeldError naming the holder", err)
	}
	for _, want := range []string{"20261123T204501Z-aaaa", "host ctl1", "pid 4242", "since 2026-11-23T20:45:01Z", "flashback-start.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("HeldError %q lacks %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, HolderFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Release left the sidecar: %v", err)
	}
	if err := first.Release(); err != nil {
		t.Errorf("a second Release: %v", err)
	}
	second, err := Acquire(dir, Holder{RunID: "20261123T204502Z-bbbb", Host: "ctl1"})
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	h, err := ReadHolder(dir)
	if err != nil || h.RunID != "20261123T204502Z-bbbb" || h.PID != os.Getpid() || h.Since.IsZero() {
		t.Errorf("ReadHolder = %+v, %v; want the second run with this pid and a time", h, err)
	}
	second.Release()
}

// TestStaleSidecar: a run killed with SIGKILL leaves its sidecar, but the
// kernel released its lock: the next run takes the lock and replaces it.
func TestStaleSidecar(t *testing.T) {
	dir := t.TempDir()
	stale := `{"run_id":"dead-run","host":"ctl1","pid":1,"since":"2026-01-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, HolderFile), []byte(stale), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir, Holder{RunID: "new-run", Host: "ctl1"})
	if err != nil {
		t.Fatalf("Acquire over a stale sidecar: %v", err)
	}
	defer l.Release()
	if h, err := ReadHolder(dir); err != nil || h.RunID != "new-run" {
		t.Errorf("sidecar after Acquire = %+v, %v", h, err)
	}
}

// TestHeldWithoutSidecar: the lock is held but its holder has not written
// the sidecar: the error says so instead of naming a stale holder.
func TestHeldWithoutSidecar(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, Holder{RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	os.Remove(filepath.Join(dir, HolderFile))
	_, err = Acquire(dir, Holder{RunID: "r2"})
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != nil || !strings.Contains(err.Error(), "not known") {
		t.Errorf("Acquire: %v, want a HeldError with an unknown holder", err)
	}
}
