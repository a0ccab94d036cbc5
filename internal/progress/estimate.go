package progress

import (
	"sort"
	"strings"
	"time"
)

// PastRun is an earlier run of a playbook as the estimate uses it: how long
// each step instance that finished took, by step key.
type PastRun struct {
	ID    string
	Steps map[string]time.Duration
}

// State is what the current run has done so far, by step key.
type State struct {
	// Done holds the steps that ended (finished, failed, skipped, refused,
	// or done in an earlier attempt).
	Done map[string]bool
	// Running holds the steps that started and have not ended, with how
	// long they have been running.
	Running map[string]time.Duration
}

// Estimate is how long the rest of a run should take.
type Estimate struct {
	Remaining time.Duration
	// Runs is the number of earlier runs it comes from (0: no estimate).
	Runs int
}

// History is the step durations of earlier runs of a playbook, ready to
// estimate a run's remaining time.
type History struct {
	runs     int
	median   map[string]time.Duration // step key → median duration over the runs
	children map[string][]string      // step key ("" for the top) → its sub-steps' keys
}

// NewHistory summarises earlier runs: for every step key, the median of its
// duration over all the runs, a run in which the step did not finish
// (skipped by `when:`, or absent) counting as 0 — so a step that rarely
// runs weighs nothing and one that nearly always runs weighs its usual
// duration. The steps of for_each items (keys with "#N") are left out: a
// for_each group is estimated as a whole, its duration already saying how
// its items ran (one after the other or in parallel).
func NewHistory(past []PastRun) *History {
	h := &History{runs: len(past), median: map[string]time.Duration{}, children: map[string][]string{}}
	samples := map[string][]time.Duration{}
	for _, r := range past {
		for k, d := range r.Steps {
			if strings.Contains(k, "#") {
				continue
			}
			samples[k] = append(samples[k], d)
		}
	}
	keys := make([]string, 0, len(samples))
	for k, s := range samples {
		for len(s) < len(past) {
			s = append(s, 0)
		}
		h.median[k] = median(s)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := parentKey(k)
		h.children[p] = append(h.children[p], k)
	}
	return h
}

// Runs is the number of earlier runs the history holds.
func (h *History) Runs() int {
	if h == nil {
		return 0
	}
	return h.runs
}

// Remaining estimates the time the current run still needs: the sum, over
// the steps of the earlier runs that have not ended in this one, of their
// median duration; a running step counts what its median leaves after the
// time it has already run (never below zero), and a running group with
// sub-steps counts its sub-steps in the same way. Steps of this run that no
// earlier run had count nothing.
func (h *History) Remaining(st State) Estimate {
	if h == nil || h.runs == 0 {
		return Estimate{}
	}
	return Estimate{Remaining: h.remaining("", st), Runs: h.runs}
}

func (h *History) remaining(scope string, st State) time.Duration {
	var sum time.Duration
	for _, k := range h.children[scope] {
		if st.Done[k] {
			continue
		}
		elapsed, running := st.Running[k]
		switch {
		case !running:
			sum += h.median[k]
		case len(h.children[k]) > 0:
			sum += h.remaining(k, st)
		case h.median[k] > elapsed:
			sum += h.median[k] - elapsed
		}
	}
	return sum
}

// median of durations (the mean of the middle two for an even count).
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// parentKey is the key of the step a step key runs inside ("" at the top).
func parentKey(key string) string {
	if i := strings.LastIndex(key, " > "); i >= 0 {
		return key[:i]
	}
	return ""
}
