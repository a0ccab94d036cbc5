// Package runlock keeps two flow runs from working from the same state
// directory at once: an exclusive file lock on STATE/lock (flock(2), released
// by the kernel when the process dies) held for the whole run, and a sidecar
// STATE/lock.json naming the holder (run id, host, pid, since) so the second
// run can say who it waits for.
package runlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// File names inside the state directory.
const (
	LockFile   = "lock"
	HolderFile = "lock.json"
)

// Holder identifies the run that holds the lock.
type Holder struct {
	RunID    string    `json:"run_id"`
	Playbook string    `json:"playbook,omitempty"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
}

// String names the holder: run id, host, pid, since, playbook.
func (h Holder) String() string {
	s := fmt.Sprintf("run %s (host %s, pid %d, since %s", h.RunID, h.Host, h.PID, h.Since.UTC().Format(time.RFC3339))
	if h.Playbook != "" {
		s += ", playbook " + h.Playbook
	}
	return s + ")"
}

// HeldError says the lock is held by another run.
type HeldError struct {
	StateDir string
	// Holder is nil when the holder has not written its sidecar yet (or it
	// cannot be read).
	Holder *Holder
	Why    string // why the holder is not known
}

// Error names the holder and what to do.
func (e *HeldError) Error() string {
	if e.Holder != nil {
		return fmt.Sprintf("another flow run holds the lock on %s: %s; wait for it to end (flow runs --state-dir %s)", e.StateDir, e.Holder, e.StateDir)
	}
	return fmt.Sprintf("another flow run holds the lock on %s (its holder is not known: %s)", e.StateDir, e.Why)
}

// Lock is a held run lock.
type Lock struct {
	fl     *flock.Flock
	holder string
}

// Acquire takes the lock of stateDir for h without waiting: when another
// process holds it, it returns a *HeldError naming the holder.
func Acquire(stateDir string, h Holder) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("run lock: %v", err)
	}
	fl := flock.New(filepath.Join(stateDir, LockFile), flock.SetPermissions(0o640))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("run lock %s: %v", fl.Path(), err)
	}
	if !ok {
		held := &HeldError{StateDir: stateDir}
		holder, rerr := ReadHolder(stateDir)
		if rerr != nil {
			held.Why = rerr.Error()
		} else {
			held.Holder = holder
		}
		return nil, held
	}
	if h.PID == 0 {
		h.PID = os.Getpid()
	}
	if h.Since.IsZero() {
		h.Since = time.Now()
	}
	h.Since = h.Since.UTC()
	l := &Lock{fl: fl, holder: filepath.Join(stateDir, HolderFile)}
	if err := writeHolder(l.holder, h); err != nil {
		fl.Unlock()
		fl.Close()
		return nil, fmt.Errorf("run lock: %v", err)
	}
	return l, nil
}

// Release removes the sidecar and releases the lock.
func (l *Lock) Release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	rerr := os.Remove(l.holder)
	if errors.Is(rerr, os.ErrNotExist) {
		rerr = nil
	}
	uerr := l.fl.Unlock()
	l.fl.Close()
	l.fl = nil
	if rerr != nil {
		return rerr
	}
	return uerr
}

// ReadHolder reads the sidecar naming the current (or last) holder.
func ReadHolder(stateDir string) (*Holder, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, HolderFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist yet", filepath.Join(stateDir, HolderFile))
		}
		return nil, err
	}
	var h Holder
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(stateDir, HolderFile), err)
	}
	return &h, nil
}

// writeHolder replaces the sidecar atomically, so a reader never sees half
// of it.
func writeHolder(path string, h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
