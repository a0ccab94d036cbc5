package drlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Bounds of Down's waits.
const (
	// nodeStopTimeout bounds one node's clean shutdown.
	nodeStopTimeout = 60 * time.Second
	// safeExitTimeout bounds the wait for mysqld_safe to exit by itself
	// once its mysqld shut down cleanly.
	safeExitTimeout = 10 * time.Second
	// killGrace bounds the wait after SIGTERM and again after SIGKILL.
	killGrace = 5 * time.Second
)

// Down stops the lab's own processes and waits for them: the routers
// (SIGTERM to the recorded pids), every node (SQL SHUTDOWN as the admin,
// else SIGTERM to the pid from its pid file; then its mysqld_safe, which
// exits by itself after a clean shutdown), any mysqld a playbook left in a
// node's host folder, and the sshd. Each wait is bounded and escalates to
// SIGKILL, only for pids whose command line is the lab's. With remove it
// then deletes the lab folder. It returns an error naming anything still
// running.
//
// Down first re-reads DIR/lab.json into l when it can, since another Up
// (another process, or another handle) may have restarted processes since
// l was loaded.
func (l *Lab) Down(ctx context.Context, remove bool) error {
	if fresh, err := Load(l.Dir); err == nil {
		*l = *fresh
	}
	var errs []error
	for _, r := range l.Routers {
		if err := stopRouter(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(6)
	for _, n := range l.Nodes {
		g.Go(func() error {
			if err := l.stopNode(ctx, n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := l.stopOthers(ctx); err != nil {
		errs = append(errs, err)
	}
	sshdAlive := func(pid int) bool { return procAlive(pid, l.sshdConfig()) }
	if err := stopProcs(ctx, "sshd", l.sshdPIDs(), sshdAlive, killGrace); err != nil {
		errs = append(errs, err)
	}
	if left := l.Processes(); len(left) > 0 {
		var names []string
		for _, p := range left {
			names = append(names, fmt.Sprintf("%s (pid %d)", p.What, p.PID))
		}
		errs = append(errs, fmt.Errorf("still running: %s", strings.Join(names, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab down %s: %w", l.Dir, err)
	}
	if remove {
		if _, err := os.Stat(l.Path(labFile)); err != nil {
			return fmt.Errorf("lab down: %s has no %s: not removing it", l.Dir, labFile)
		}
		if err := os.RemoveAll(l.Dir); err != nil {
			return fmt.Errorf("lab down: remove %s: %w", l.Dir, err)
		}
	}
	return nil
}

// stopNode shuts a node down and waits for its mysqld and mysqld_safe.
func (l *Lab) stopNode(ctx context.Context, n Node) error {
	conf := "--defaults-file=" + n.ConfigPath()
	var errs []error
	if inst, err := l.Instance(n, nil); err == nil {
		sctx, cancel := context.WithTimeout(ctx, nodeStopTimeout)
		if err := inst.Stop(sctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	} else {
		errs = append(errs, fmt.Errorf("%s: %v; stopping it by its pid", n, err))
	}
	safeAlive := func(pid int) bool { return procAlive(pid, "mysqld_safe", conf) }
	safes := procsMatching("mysqld_safe", conf)
	if safeAlive(n.SafePID) {
		safes = append(safes, n.SafePID)
	}
	wctx, cancel := context.WithTimeout(ctx, safeExitTimeout)
	left := waitGone(wctx, safes, safeAlive)
	cancel()
	// mysqld_safe ignores SIGTERM: a supervisor still there after its
	// mysqld stopped gets SIGKILL, so that it cannot start mysqld again.
	for _, p := range left {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	kctx, kcancel := context.WithTimeout(context.Background(), killGrace)
	if left = waitGone(kctx, left, safeAlive); len(left) > 0 {
		errs = append(errs, fmt.Errorf("%s: mysqld_safe %v still running after SIGKILL", n, left))
	}
	kcancel()
	mysqldAlive := func(pid int) bool { return procAlive(pid, conf) && !strings.Contains(procCmdline(pid), "mysqld_safe") }
	if err := stopProcs(ctx, n.String()+" mysqld", procsMatching(conf), mysqldAlive, killGrace); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stopOthers stops mysqld processes a playbook started in a node's host
// folder (side instances): their mysqld_safe first (SIGKILL: it ignores
// SIGTERM), then mysqld (SIGTERM, a clean shutdown; SIGKILL after a grace).
func (l *Lab) stopOthers(ctx context.Context) error {
	hosts := filepath.Join(l.Dir, "hosts") + "/"
	isSafe := func(pid int) bool { return procAlive(pid, "mysqld_safe", hosts) }
	var safes []int
	for _, p := range procsMatching("mysqld_safe", hosts) {
		safes = append(safes, p)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	kctx, cancel := context.WithTimeout(ctx, killGrace)
	left := waitGone(kctx, safes, isSafe)
	cancel()
	var errs []error
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("side mysqld_safe %v still running after SIGKILL", left))
	}
	isMysqld := func(pid int) bool {
		return procAlive(pid, "mysqld", hosts) && !strings.Contains(procCmdline(pid), "mysqld_safe")
	}
	var ms []int
	for _, p := range procsMatching("mysqld", hosts) {
		if isMysqld(p) {
			ms = append(ms, p)
		}
	}
	if err := stopProcs(ctx, "side mysqld", ms, isMysqld, 3*nodeStopTimeout/4); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
