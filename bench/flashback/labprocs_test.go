package main

import (
	"os/exec"
	"testing"
	"time"
)

// TestLabSampler follows a pretend lab: a daemon whose command line names
// the lab folder, the command it runs (counted through its parent), and a
// flow command naming the folder too (not the lab, nor its child); the
// daemon's CPU and memory are seen.
func TestLabSampler(t *testing.T) {
	dir := t.TempDir()
	start := func(args ...string) {
		t.Helper()
		cmd := &exec.Cmd{Path: "/bin/sh", Args: args}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	// the daemon: busy for a moment, then a child that sleeps
	start("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 60; true`, dir)
	// flow's own command naming the lab folder, with a child
	start("flow", "-c", `sleep 60; true`, dir)

	s := newLabSampler(dir, 50*time.Millisecond)
	defer s.Stop()
	deadline := time.Now().Add(30 * time.Second)
	var r labReading
	for {
		r = s.Now()
		if r.Procs == 2 && r.CPU > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30 s the sampler did not see the daemon and its sleeping child with some CPU: %+v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.PSS == 0 || r.RSS < r.PSS || r.PeakPSS < r.PSS {
		t.Errorf("memory: %+v, want PSS > 0, RSS >= PSS, peak >= PSS", r)
	}
	if r.Busy <= 0 {
		t.Errorf("the machine's busy time is %s", r.Busy)
	}
	if !isLabCommand([]byte("/x/flow\x00lab\x00serve-dbscale\x00--dir\x00"+dir+"/routers/primary\x00"), dir) {
		t.Error("a router (flow lab serve-dbscale) is one of the lab's processes")
	}
	if isLabCommand([]byte("/x/flow\x00run\x00p.yaml\x00-c\x00"+dir+"/flashback.ini\x00"), dir) {
		t.Error("flow run is not one of the lab's processes")
	}
}
