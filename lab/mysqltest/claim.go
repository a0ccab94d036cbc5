package mysqltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// lockDir holds one lock file per claimed loopback address. A lock file
// holds the instance root folder of its claim so that a later test process
// can clean up after one that died without its Cleanup.
func lockDir() string { return filepath.Join(os.TempDir(), "flow-mysqltest") }

// claim is a loopback address, a free port on it and a fresh folder, owned by
// this process while its lock is held.
type claim struct {
	host string
	port int
	dir  string
	lock *flock.Flock
}

// Reservation is a loopback address and port nobody else uses, and an empty
// folder, for a test that drives mysqld.Instance itself.
type Reservation struct {
	// Host is a loopback address 127.a.b.c (a >= 1) claimed for the test.
	Host string
	// Port is a port that was free on Host.
	Port int
	// Dir is an empty folder with a short path (unix sockets need one).
	Dir string
}

// Reserve claims an address, a port and a folder for the test; they are
// released, and the folder removed unless the test failed, in t.Cleanup.
// Stop any server using them before that (register its Cleanup after
// calling Reserve).
func Reserve(t testing.TB) Reservation {
	t.Helper()
	reapOrphans()
	cl, err := claimAddress()
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	if err := cl.record(cl.dir); err != nil {
		cl.release(true)
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mysqltest: kept %s", cl.dir)
		}
		cl.release(!t.Failed())
	})
	return Reservation{Host: cl.host, Port: cl.port, Dir: cl.dir}
}

// claimAddress picks a random 127.a.b.c, takes its lock file, finds a free
// port on it and makes a temporary folder.
func claimAddress() (*claim, error) {
	if err := os.MkdirAll(lockDir(), 0o755); err != nil {
		return nil, fmt.Errorf("claim a loopback address: %w", err)
	}
	var last error
	for range 50 {
		host := fmt.Sprintf("127.%d.%d.%d", 1+randInt(254), 1+randInt(254), 1+randInt(254))
		path := filepath.Join(lockDir(), host+".lock")
		fl := flock.New(path)
		ok, err := fl.TryLock()
		if err != nil {
			last = err
			continue
		}
		if !ok {
			continue
		}
		if !sameFile(fl, path) { // removed and recreated by a releasing owner
			_ = fl.Unlock()
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			last = err
			_ = os.Remove(path)
			_ = fl.Unlock()
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		dir, err := os.MkdirTemp("", "flowmy-")
		if err != nil {
			_ = os.Remove(path)
			_ = fl.Unlock()
			return nil, fmt.Errorf("claim a loopback address: %w", err)
		}
		return &claim{host: host, port: port, dir: dir, lock: fl}, nil
	}
	return nil, fmt.Errorf("claim a loopback address: no free 127.a.b.c after 50 tries (last error: %v); check %s", last, lockDir())
}

// record writes the folder to clean up after a crash into the lock file.
func (c *claim) record(dir string) error {
	if err := os.WriteFile(c.lock.Path(), []byte(dir+"\n"), 0o644); err != nil {
		return fmt.Errorf("claim %s: %w", c.host, err)
	}
	return nil
}

// release removes the folder (when remove is set) and the lock file, then
// unlocks it.
func (c *claim) release(remove bool) {
	if remove {
		_ = os.RemoveAll(c.dir)
	}
	_ = os.Remove(c.lock.Path())
	_ = c.lock.Unlock()
}

func sameFile(fl *flock.Flock, path string) bool {
	a, err := fl.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func randInt(n int64) int {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return int(v.Int64())
}

var reapOnce sync.Once

// reapOrphans cleans up, once per process, after test processes that died
// without running their Cleanup (a panic, a timeout, SIGKILL): an unlocked
// lock file names a folder whose mysqld and mysqld_safe are killed (they are
// found by the option file path on their command line) and which is removed.
func reapOrphans() { reapOnce.Do(reap) }

func reap() {
	locks, _ := filepath.Glob(filepath.Join(lockDir(), "*.lock"))
	for _, path := range locks {
		fl := flock.New(path)
		ok, err := fl.TryLock()
		if err != nil || !ok {
			continue
		}
		if sameFile(fl, path) {
			if b, err := os.ReadFile(path); err == nil {
				killUnder(strings.TrimSpace(string(b)))
			}
			_ = os.Remove(path)
		}
		_ = fl.Unlock()
	}
}

// killUnder kills processes started with an option file inside dir (an
// orphaned instance root made by claimAddress) and removes dir.
func killUnder(dir string) {
	if !strings.HasPrefix(filepath.Base(dir), "flowmy-") || !filepath.IsAbs(dir) {
		return // not ours
	}
	needle := []byte("--defaults-file=" + dir + "/")
	var safe, other []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		switch {
		case err != nil || !bytes.Contains(cmdline, needle):
		case bytes.Contains(cmdline, []byte("mysqld_safe")):
			safe = append(safe, pid)
		default:
			other = append(other, pid)
		}
	}
	// Supervisors first, so that none starts mysqld again.
	pids := append(safe, other...)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Bounded wait for them to go before removing their files.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && isLive(pid) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	_ = os.RemoveAll(dir)
}

// isLive reports whether pid exists and is not a zombie.
func isLive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	k := bytes.LastIndexByte(stat, ')')
	return k >= 0 && k+2 < len(stat) && stat[k+2] != 'Z'
}
