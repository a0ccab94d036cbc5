package progress

import (
	"testing"
	"time"
)

const (
	kA     = "pb.yaml:10:5"
	kG     = "pb.yaml:20:5"
	kG1    = "pb.yaml:20:5 > pb.yaml:23:9"
	kG2    = "pb.yaml:20:5 > pb.yaml:26:9"
	kF     = "pb.yaml:30:5"
	kFItem = "pb.yaml:30:5#0 > pb.yaml:33:9"
	kRare  = "pb.yaml:40:5"
)

func s(n int) time.Duration { return time.Duration(n) * time.Second }

// pastRuns: a plain step, a group of two sub-steps, a for_each group, and a
// step that ran in one run of three.
func pastRuns() []PastRun {
	return []PastRun{
		{ID: "r1", Steps: map[string]time.Duration{kA: s(10), kG: s(30), kG1: s(10), kG2: s(20), kF: s(60), kFItem: s(55), kRare: s(100)}},
		{ID: "r2", Steps: map[string]time.Duration{kA: s(20), kG: s(50), kG1: s(20), kG2: s(30), kF: s(40), kFItem: s(35)}},
		{ID: "r3", Steps: map[string]time.Duration{kA: s(30), kG: s(40), kG1: s(15), kG2: s(25), kF: s(50), kFItem: s(45)}},
	}
}

func TestRemainingFromMedians(t *testing.T) {
	h := NewHistory(pastRuns())
	if h.Runs() != 3 {
		t.Fatalf("Runs() = %d, want 3", h.Runs())
	}
	cases := []struct {
		name string
		st   State
		want time.Duration
	}{
		// medians: A 20, G 40 (G1 15 + G2 25), F 50, rare 0 (ran once in three runs)
		{"nothing started", State{}, s(20 + 15 + 25 + 50)},
		{"first step running for 5s", State{Running: map[string]time.Duration{kA: s(5)}}, s(15 + 15 + 25 + 50)},
		{"first step overdue counts nothing", State{Running: map[string]time.Duration{kA: s(99)}}, s(15 + 25 + 50)},
		{"inside the group: its sub-steps count",
			State{Done: map[string]bool{kA: true, kG1: true}, Running: map[string]time.Duration{kG: s(12), kG2: s(5)}}, s(20 + 50)},
		{"a running for_each group counts as a whole",
			State{Done: map[string]bool{kA: true, kG: true, kG1: true, kG2: true}, Running: map[string]time.Duration{kF: s(10), kFItem: s(10)}}, s(40)},
		{"all done", State{Done: map[string]bool{kA: true, kG: true, kF: true, kRare: true}}, 0},
		{"a step no earlier run had counts nothing",
			State{Done: map[string]bool{kA: true, kG: true}, Running: map[string]time.Duration{"pb.yaml:99:5": s(1)}}, s(50)},
	}
	for _, c := range cases {
		got := h.Remaining(c.st)
		if got.Remaining != c.want || got.Runs != 3 {
			t.Errorf("%s: Remaining = %v from %d runs, want %v from 3", c.name, got.Remaining, got.Runs, c.want)
		}
	}
}

func TestRemainingWithoutHistory(t *testing.T) {
	for _, h := range []*History{nil, NewHistory(nil)} {
		if e := h.Remaining(State{}); e.Runs != 0 || e.Remaining != 0 {
			t.Errorf("no history gave %+v", e)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{s(7)}, s(7)},
		{[]time.Duration{s(9), s(1), s(5)}, s(5)},
		{[]time.Duration{s(4), s(1), s(2), s(100)}, s(3)},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
