// Package drlabtest shares one DR lab (lab/drlab) among the tests of a
// package. The lab's addresses are fixed, so only one lab can run on a
// machine: a file lock under the temporary folder, held for the whole
// package run, keeps test binaries of different packages from starting
// labs at the same time.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { drlabtest.Main(m) }
//
// and in a test:
//
//	lab := drlabtest.Lab(t, 1) // a running lab with one shard
//
// A test that needs a lab fails, never skips, when it cannot be had (it
// skips only under -short, which asks for the fast tests alone).
package drlabtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/drlab"
	"github.com/gofrs/flock"
)

// Bounds of the helpers' waits.
const (
	// lockTimeout bounds the wait for another package's lab tests.
	lockTimeout = 25 * time.Minute
	// upTimeout bounds starting a lab (an install of MySQL included).
	upTimeout = 10 * time.Minute
	// downTimeout bounds stopping one.
	downTimeout = 3 * time.Minute
)

// LockPath is the machine-wide lab lock; LockPath+".dir" records the lab
// folder of the holder, so that the next holder can stop a lab a crashed
// test process left behind.
var LockPath = filepath.Join(os.TempDir(), "flow-drlab.lock")

var (
	mu       sync.Mutex
	inMain   bool
	lock     *flock.Flock
	current  *drlab.Lab
	curSite  Site // the site-like options current was built with
	report   *drlab.UpReport
	setupErr error
)

// Main runs the package's tests (m.Run) and then stops the shared lab,
// removing its folder unless a test failed, releases the lock and exits
// with m.Run's code.
func Main(m *testing.M) {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		ctx, cancel := context.WithTimeout(context.Background(), downTimeout)
		err := current.Down(ctx, code == 0)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "drlabtest: stopping the lab: %v\n", err)
			if code == 0 {
				code = 1
			}
		} else if code != 0 {
			fmt.Fprintf(os.Stderr, "drlabtest: a test failed: the stopped lab is kept in %s\n", current.Dir)
		}
		current = nil
	}
	if lock != nil {
		_ = os.Remove(LockPath + ".dir")
		_ = lock.Unlock()
		lock = nil
	}
	os.Exit(code)
}

// Lock takes the machine-wide lab lock, waiting up to 25 minutes for
// another test binary holding it, and stops and removes a lab a crashed
// holder left behind. Under Main the lock is held for the rest of the
// package run (Main releases it); otherwise until the test ends. Tests that
// start their own lab (with drlab.Up or the CLI) call it first; Lab calls
// it itself.
func Lock(tb testing.TB) {
	tb.Helper()
	skipShort(tb)
	mu.Lock()
	defer mu.Unlock()
	if lock != nil {
		return
	}
	fl, err := acquire()
	if err != nil {
		tb.Fatalf("drlabtest: %v", err)
	}
	lock = fl
	if !inMain {
		tb.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			_ = os.Remove(LockPath + ".dir")
			_ = lock.Unlock()
			lock = nil
		})
	}
}

// RecordDir notes the lab folder of the lock's holder, so that the next
// holder can stop that lab if this process dies without stopping it.
func RecordDir(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.WriteFile(LockPath+".dir", []byte(dir), 0o600); err != nil {
		tb.Fatalf("drlabtest: %v", err)
	}
}

// acquire takes the lock file and cleans up after a crashed holder.
func acquire() (*flock.Flock, error) {
	fl := flock.New(LockPath)
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if ok, _ := fl.TryLock(); !ok {
		fmt.Fprintf(os.Stderr, "drlabtest: waiting for the lab lock %s (another package's lab tests run)\n", LockPath)
		ok, err := fl.TryLockContext(ctx, 200*time.Millisecond)
		if err != nil || !ok {
			return nil, fmt.Errorf("the lab lock %s was not free within %s: %v", LockPath, lockTimeout, err)
		}
	}
	// A lab left by a holder that died without stopping it.
	if b, err := os.ReadFile(LockPath + ".dir"); err == nil && len(b) > 0 {
		if old, err := drlab.Load(string(b)); err == nil {
			fmt.Fprintf(os.Stderr, "drlabtest: stopping the lab a crashed test left in %s\n", old.Dir)
			dctx, dcancel := context.WithTimeout(context.Background(), downTimeout)
			err := old.Down(dctx, true)
			dcancel()
			if err != nil {
				_ = fl.Unlock()
				return nil, fmt.Errorf("stop the lab a crashed test left in %s: %v", old.Dir, err)
			}
		}
		_ = os.Remove(LockPath + ".dir")
	}
	return fl, nil
}

// Lab returns the package's running lab with the given number of shards.
// The first call takes the lock and starts it in a new temporary folder
// (about 30 s for one shard); later calls run drlab.Up on it again, which
// restarts whatever a test stopped. A call with another shard count stops
// and removes the current lab and starts a new one.
func Lab(tb testing.TB, shards int) *drlab.Lab {
	tb.Helper()
	return LabWith(tb, shards, Site{})
}

// Site are the site-like options of `flow lab up` a test may ask for.
type Site struct {
	// SSHPassword: the sshd takes a generated password too.
	SSHPassword bool
	// SharedAccount: one admin account on routers and nodes.
	SharedAccount bool
}

// LabWith is Lab with site-like options: a lab built with other options
// (or another shard count) is stopped and removed first.
func LabWith(tb testing.TB, shards int, site Site) *drlab.Lab {
	tb.Helper()
	skipShort(tb)
	mu.Lock()
	defer mu.Unlock()
	if setupErr != nil {
		tb.Fatalf("drlabtest: an earlier lab start failed: %v", setupErr)
	}
	if !inMain {
		tb.Fatalf("drlabtest: the package's TestMain must call drlabtest.Main(m), which stops the shared lab after the tests")
	}
	if lock == nil {
		fl, err := acquire()
		if err != nil {
			tb.Fatalf("drlabtest: %v", err)
		}
		lock = fl
	}
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	if current != nil && (current.Shards != shards || curSite != site) {
		if err := current.Down(ctx, true); err != nil {
			setupErr = err
			tb.Fatalf("drlabtest: stop the %d-shard lab: %v", current.Shards, err)
		}
		current = nil
	}
	var dir string
	if current != nil {
		dir = current.Dir
	} else {
		d, err := os.MkdirTemp("", "flowlab-")
		if err != nil {
			tb.Fatalf("drlabtest: %v", err)
		}
		dir = d
		if err := os.WriteFile(LockPath+".dir", []byte(dir), 0o600); err != nil {
			tb.Fatalf("drlabtest: %v", err)
		}
	}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	l, rep, err := drlab.Up(ctx, drlab.Options{Dir: dir, Shards: shards, Log: logw,
		SSHPassword: site.SSHPassword, SharedAccount: site.SharedAccount})
	if err != nil {
		if l != nil {
			current = l
		}
		setupErr = err
		tb.Fatalf("drlabtest: lab up in %s: %v", dir, err)
	}
	if current == nil {
		report = rep
	}
	current, curSite = l, site
	return l
}

// skipShort skips a lab test under -short (`make unit`: no MySQL, no
// sshd).
func skipShort(tb testing.TB) {
	if testing.Short() {
		tb.Skip("-short: this test needs the DR lab (real MySQL and sshd)")
	}
}

// CreateReport returns the report of the Up call that created the current
// lab (nil before Lab was called).
func CreateReport() *drlab.UpReport {
	mu.Lock()
	defer mu.Unlock()
	return report
}
