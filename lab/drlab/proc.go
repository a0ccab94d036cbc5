package drlab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pollEvery is the interval of every bounded poll in this package.
const pollEvery = 50 * time.Millisecond

// procAlive reports whether pid is a live (not zombie) process whose command
// line contains every one of want (NUL-separated arguments joined by
// spaces), so that a reused pid is never mistaken for the lab's.
func procAlive(pid int, want ...string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if k := bytes.LastIndexByte(stat, ')'); k < 0 || k+2 >= len(stat) || stat[k+2] == 'Z' {
		return false
	}
	cmd := procCmdline(pid)
	for _, w := range want {
		if !strings.Contains(cmd, w) {
			return false
		}
	}
	return true
}

// procExists reports whether /proc has an entry for pid at all (a zombie
// included).
func procExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// procCmdline returns a process's arguments joined by spaces ("" when it is
// gone).
func procCmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// procRSS returns a process's resident set size in bytes (0 when unknown).
func procRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// procPSS returns a process's proportional set size in bytes: its resident
// memory with each shared page divided among the processes that map it, so
// that the sum over the lab's 50-odd mysqld counts their binary and
// libraries once (0 when unknown).
func procPSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			if f := strings.Fields(rest); len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// procsMatching lists live processes other than this one whose command line
// contains every one of want.
func procsMatching(want ...string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if procAlive(pid, want...) {
			out = append(out, pid)
		}
	}
	return out
}

// waitGone polls until none of pids is alive as matched by alive, bounded
// by ctx. It returns the pids still alive.
func waitGone(ctx context.Context, pids []int, alive func(int) bool) []int {
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return left
		case <-time.After(pollEvery):
		}
	}
}

// stopProcs sends SIGTERM to each pid that alive confirms is ours, waits
// up to grace, then SIGKILLs what is left and waits up to grace again. It
// returns an error naming what did not go away.
func stopProcs(ctx context.Context, what string, pids []int, alive func(int) bool, grace time.Duration) error {
	var live []int
	for _, p := range pids {
		if alive(p) {
			live = append(live, p)
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
	}
	if len(live) == 0 {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, grace)
	left := waitGone(tctx, live, alive)
	cancel()
	if len(left) == 0 {
		return nil
	}
	for _, p := range left {
		if alive(p) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	kctx, kcancel := context.WithTimeout(context.Background(), grace)
	defer kcancel()
	if left = waitGone(kctx, left, alive); len(left) > 0 {
		return fmt.Errorf("%s: pids %v still running after SIGTERM and SIGKILL", what, left)
	}
	return nil
}

// children are the processes this process started (routers), reaped by a
// goroutine each so that a stopped one leaves no zombie behind.
var children sync.Map // pid → chan struct{} closed once reaped

// startChild starts cmd and reaps it in the background.
func startChild(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	pid := cmd.Process.Pid
	children.Store(pid, done)
	go func() {
		_ = cmd.Wait()
		close(done)
		children.Delete(pid)
	}()
	return nil
}

// childExited reports whether pid is a child of ours that has exited.
func childExited(pid int) (ours, exited bool) {
	v, ok := children.Load(pid)
	if !ok {
		return false, false
	}
	select {
	case <-v.(chan struct{}):
		return true, true
	default:
		return true, false
	}
}
