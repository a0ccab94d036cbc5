package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
)

// Event is one line of `flow run --log-format json`: a log line
// ("event":"log") or an engine event (run_started, step_started,
// statement, step_finished, step_failed, step_skipped, step_refused,
// run_finished).
type Event struct {
	Time       time.Time `json:"-"`
	RawTime    string    `json:"time"`
	Event      string    `json:"event"`
	File       string    `json:"file"`
	Line       int       `json:"line"`
	Worker     int       `json:"id"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Text       string    `json:"text"`
	Msg        string    `json:"msg"`
	Level      string    `json:"level"`
	DurationMS int64     `json:"duration_ms"`
	Status     string    `json:"status"`
}

// Span is one execution of a step: from its step_started event to its
// step_finished or step_failed event.
type Span struct {
	File   string
	Line   int
	Name   string
	Type   string
	Worker int
	Start  time.Time
	End    time.Time
	// Statement is when the step sent its first statement or command (the
	// engine's "statement" event); zero for steps that send none (clone,
	// wait-gtid, redo, set, assert, log, groups).
	Statement time.Time
	// Text is the first statement or command the step sent.
	Text string
	// Polls counts the "waiting (attempt N …)" lines: the step re-ran
	// until its condition held.
	Polls  int
	Failed bool
	Depth  int
	Parent *Span
	// Class is the step's time class (see classify).
	Class string
}

// Key identifies a step of a playbook (all its executions share it).
func (s *Span) Key() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Leaf reports whether the step does work itself (not a group or include).
func (s *Span) Leaf() bool { return s.Type != "group" && s.Type != "include" }

// Run is one playbook run reconstructed from its events.
type Run struct {
	Playbook string
	// RunStart and RunEnd are the run_started and run_finished events.
	RunStart, RunEnd time.Time
	Status           string
	// Spans are in the order the steps started.
	Spans   []*Span
	Skipped int
	// Unclosed counts steps that started but never finished (a killed run).
	Unclosed int
}

// Time classes. A class starting with "mysql" is time spent waiting on
// MySQL itself.
const (
	ClassClone     = "mysql: clone"
	ClassGTID      = "mysql: GTID wait"
	ClassInit      = "mysql: initialise instance"
	ClassInstance  = "mysql: instance start/stop wait"
	ClassSQL       = "sql"
	ClassSSH       = "ssh"
	ClassRedo      = "redo"
	ClassOther     = "other"
	ClassPrep      = "engine: step preparation"
	ClassEngine    = "engine: set/assert/log"
	ClassGap       = "engine: between steps"
	ClassContainer = "-"
)

// classOrder is the priority of the classes when several run at once (on
// parallel workers): an instant counts once, for the first class active.
var classOrder = []string{ClassClone, ClassGTID, ClassInit, ClassInstance, ClassSQL, ClassSSH, ClassRedo, ClassOther, ClassPrep, ClassEngine}

var (
	reInitialize = regexp.MustCompile(`\bmysqld\b.*--initialize`)
	rePing       = regexp.MustCompile(`\bmysqladmin\b.*\bping\b`)
	reShutdown   = regexp.MustCompile(`(?i)^\s*shutdown\s*$`)
)

// classify says what a step's time is spent on.
//
//   - clone and wait-gtid steps wait on MySQL (the clone, the appliers);
//   - an ssh step running `mysqld --initialize…` waits on MySQL
//     initialising a data directory;
//   - a SHUTDOWN statement, a `mysqladmin … ping`, and any step that had
//     to poll (re-run until its condition held: an instance to come up
//     after a restart or a clone, a mysqld to exit) wait on an instance
//     starting or stopping;
//   - other sql, ssh and redo steps are the drill's own work (statements
//     through the routers and to the nodes, remote commands, the redo file);
//   - set, assert and log steps are the engine's own computation.
func classify(s *Span) string {
	switch s.Type {
	case "group", "include":
		return ClassContainer
	case "clone":
		return ClassClone
	case "wait-gtid":
		return ClassGTID
	case "set", "assert", "log":
		return ClassEngine
	}
	switch {
	case reInitialize.MatchString(s.Text):
		return ClassInit
	case s.Polls > 0 || reShutdown.MatchString(s.Text) || rePing.MatchString(s.Text):
		return ClassInstance
	}
	switch s.Type {
	case "sql":
		return ClassSQL
	case "ssh":
		return ClassSSH
	case "redo":
		return ClassRedo
	}
	return ClassOther
}

// ParseRun reads one run's JSON log and rebuilds its step spans. Lines that
// are not JSON objects are ignored.
func ParseRun(r io.Reader) (*Run, error) {
	run := &Run{}
	stacks := map[int][]*Span{}
	base := map[int]*Span{} // a parallel item's parent group
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		t, err := time.Parse(time.RFC3339Nano, e.RawTime)
		if err != nil {
			return nil, fmt.Errorf("line %d: time %q: %w", n, e.RawTime, err)
		}
		e.Time = t
		top := func() *Span {
			if st := stacks[e.Worker]; len(st) > 0 {
				return st[len(st)-1]
			}
			return nil
		}
		switch e.Event {
		case event.RunStarted:
			run.RunStart = e.Time
			run.Playbook = strings.TrimSuffix(e.File, ".yaml")
		case event.RunFinished:
			run.RunEnd = e.Time
			run.Status = e.Status
		case event.StepSkipped:
			run.Skipped++
		case event.StepStarted:
			s := &Span{File: e.File, Line: e.Line, Name: e.Name, Type: e.Type, Worker: e.Worker, Start: e.Time}
			s.Parent = top()
			if s.Parent == nil && e.Worker != 1 {
				p, ok := base[e.Worker]
				if !ok {
					p = spawner(stacks, s)
					base[e.Worker] = p
				}
				s.Parent = p
			}
			if s.Parent != nil {
				s.Depth = s.Parent.Depth + 1
			}
			stacks[e.Worker] = append(stacks[e.Worker], s)
			run.Spans = append(run.Spans, s)
		case event.StepFinished, event.StepFailed:
			st := stacks[e.Worker]
			for i := len(st) - 1; i >= 0; i-- {
				if st[i].File == e.File && st[i].Line == e.Line {
					st[i].End = e.Time
					st[i].Failed = e.Event == event.StepFailed
					stacks[e.Worker] = st[:i]
					break
				}
			}
		case event.Statement:
			if s := top(); s != nil && s.Statement.IsZero() {
				s.Statement = e.Time
				s.Text = e.Text
			}
		case event.Log:
			if strings.Contains(e.Msg, ": waiting (attempt ") {
				if s := top(); s != nil {
					s.Polls++
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if run.RunStart.IsZero() {
		return nil, fmt.Errorf("no run_started event: not a `flow run --log-format json` log")
	}
	for _, s := range run.Spans {
		if s.End.IsZero() {
			run.Unclosed++
			s.End = run.RunEnd
			if s.End.IsZero() {
				s.End = s.Start
			}
		}
		s.Class = classify(s)
	}
	return run, nil
}

// spawner finds the group that started a parallel item's worker: the
// latest-started group, open on another worker, of the same file and
// above the item's first step.
func spawner(stacks map[int][]*Span, child *Span) *Span {
	var best *Span
	for w, st := range stacks {
		if w == child.Worker {
			continue
		}
		for _, s := range st {
			if s.Type == "group" && s.File == child.File && s.Line < child.Line && (best == nil || s.Start.After(best.Start)) {
				best = s
			}
		}
	}
	return best
}

// Shares is how a phase's wall time divides: every instant is counted once,
// for the highest-priority class active at that instant (classOrder), or
// as the engine's own time between steps when no step was active.
type Shares struct {
	// Wall is the measured wall time: the flow process from exec to exit
	// when known, else run_started to run_finished.
	Wall time.Duration
	// Startup is exec → run_started (process start, loading, validating
	// and compiling the playbooks, reading the config); Exit is
	// run_finished → exit. Both are part of ClassGap.
	Startup, Exit time.Duration
	// ByClass partitions Wall.
	ByClass map[string]time.Duration
	// NaiveEngine is run wall minus the sum of the top-level steps'
	// duration_ms (what "total minus step durations" would claim).
	NaiveEngine time.Duration
}

// MySQL is the time spent waiting on MySQL itself.
func (s Shares) MySQL() time.Duration {
	return s.sum(func(c string) bool { return strings.HasPrefix(c, "mysql") })
}

// Work is the drill's other work: sql, ssh, redo and other steps.
func (s Shares) Work() time.Duration {
	return s.ByClass[ClassSQL] + s.ByClass[ClassSSH] + s.ByClass[ClassRedo] + s.ByClass[ClassOther]
}

// Engine is the engine's own time outside any step that talks to a system:
// start-up and exit, gaps between steps (guards, when, skips, logging,
// scheduling) and set/assert/log steps.
func (s Shares) Engine() time.Duration { return s.ByClass[ClassGap] + s.ByClass[ClassEngine] }

// EngineUpper adds the steps' preparation (step_started → first
// statement: rendering templates, the run journal, opening connections).
func (s Shares) EngineUpper() time.Duration { return s.Engine() + s.ByClass[ClassPrep] }

func (s Shares) sum(keep func(string) bool) time.Duration {
	var d time.Duration
	for c, v := range s.ByClass {
		if keep(c) {
			d += v
		}
	}
	return d
}

// Pct is d as a percentage of the wall time.
func (s Shares) Pct(d time.Duration) float64 {
	if s.Wall <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(s.Wall)
}

// interval is a classified stretch of time.
type interval struct {
	from, to time.Time
	class    string
}

// ComputeShares partitions [start, end] (the process's wall time; zero
// values mean run_started and run_finished) into classes.
func ComputeShares(run *Run, start, end time.Time) Shares {
	if start.IsZero() {
		start = run.RunStart
	}
	if end.IsZero() {
		end = run.RunEnd
	}
	sh := Shares{Wall: end.Sub(start), ByClass: map[string]time.Duration{}}
	if !run.RunStart.IsZero() && run.RunStart.After(start) {
		sh.Startup = run.RunStart.Sub(start)
	}
	if !run.RunEnd.IsZero() && end.After(run.RunEnd) {
		sh.Exit = end.Sub(run.RunEnd)
	}
	var top time.Duration
	var ivs []interval
	for _, s := range run.Spans {
		if s.Depth == 0 {
			top += s.End.Sub(s.Start)
		}
		if !s.Leaf() {
			continue
		}
		// A step's time before its first statement is the engine preparing
		// it (rendering, the journal, opening a connection) — except in a
		// wait on MySQL, where it is mostly connection attempts to an
		// instance that is still starting.
		if !s.Statement.IsZero() && s.Class != ClassEngine && !strings.HasPrefix(s.Class, "mysql") {
			ivs = append(ivs, interval{s.Start, s.Statement, ClassPrep}, interval{s.Statement, s.End, s.Class})
		} else {
			ivs = append(ivs, interval{s.Start, s.End, s.Class})
		}
	}
	if !run.RunStart.IsZero() && !run.RunEnd.IsZero() {
		sh.NaiveEngine = run.RunEnd.Sub(run.RunStart) - top
	}
	// sweep the elementary segments between all boundaries
	bounds := []time.Time{start, end}
	for _, iv := range ivs {
		bounds = append(bounds, clip(iv.from, start, end), clip(iv.to, start, end))
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i].Before(bounds[j]) })
	rank := map[string]int{}
	for i, c := range classOrder {
		rank[c] = i
	}
	for i := 0; i+1 < len(bounds); i++ {
		a, b := bounds[i], bounds[i+1]
		if !b.After(a) {
			continue
		}
		best := ClassGap
		for _, iv := range ivs {
			if !iv.from.After(a) && !iv.to.Before(b) && (best == ClassGap || rank[iv.class] < rank[best]) {
				best = iv.class
			}
		}
		sh.ByClass[best] += b.Sub(a)
	}
	return sh
}

func clip(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

// StepRow is one step of a playbook with all its executions.
type StepRow struct {
	Key   string
	Name  string
	Type  string
	Class string
	Depth int
	Count int
	// Wall is the union of its executions' spans; Sum adds them up
	// (parallel items overlap).
	Wall, Sum time.Duration
}

// StepRows aggregates the spans by step, in the order steps first started.
func StepRows(run *Run) []StepRow {
	idx := map[string]int{}
	var rows []StepRow
	spans := map[string][]*Span{}
	for _, s := range run.Spans {
		k := s.Key()
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			rows = append(rows, StepRow{Key: k, Name: label(s), Type: s.Type, Class: s.Class, Depth: s.Depth})
		}
		r := &rows[i]
		r.Count++
		r.Sum += s.End.Sub(s.Start)
		if name := label(s); r.Name != name {
			r.Name = commonName(r.Name, name)
		}
		if r.Class != s.Class && s.Class != ClassContainer {
			// e.g. a wait that polled in one execution only
			if rankOf(s.Class) < rankOf(r.Class) {
				r.Class = s.Class
			}
		}
		spans[k] = append(spans[k], s)
	}
	for i := range rows {
		rows[i].Wall = unionLen(spans[rows[i].Key])
	}
	return rows
}

// label names a step in the tables: its name, or for a step without one
// (named after its type) the statement or command it ran.
func label(s *Span) string {
	if s.Name == s.Type && s.Text != "" {
		return s.Type + ": " + strings.Join(strings.Fields(s.Text), " ")
	}
	return s.Name
}

func rankOf(c string) int {
	for i, x := range classOrder {
		if x == c {
			return i
		}
	}
	return len(classOrder)
}

// commonName keeps the words two renderings of a step name share, so that
// "clone … into 127.0.2.2" and "clone … into 127.0.2.3" read as one step.
func commonName(a, b string) string {
	aw, bw := strings.Fields(a), strings.Fields(b)
	var out []string
	for i := 0; i < len(aw) && i < len(bw); i++ {
		if aw[i] == bw[i] {
			out = append(out, aw[i])
		} else if len(out) == 0 || out[len(out)-1] != "…" {
			out = append(out, "…")
		}
	}
	if len(aw) != len(bw) && (len(out) == 0 || out[len(out)-1] != "…") {
		out = append(out, "…")
	}
	return strings.Join(out, " ")
}

// unionLen is the length of the union of the spans' intervals.
func unionLen(spans []*Span) time.Duration {
	ss := append([]*Span(nil), spans...)
	sort.Slice(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	var total time.Duration
	var curFrom, curTo time.Time
	for i, s := range ss {
		if i == 0 || s.Start.After(curTo) {
			if i > 0 {
				total += curTo.Sub(curFrom)
			}
			curFrom, curTo = s.Start, s.End
			continue
		}
		if s.End.After(curTo) {
			curTo = s.End
		}
	}
	if len(ss) > 0 {
		total += curTo.Sub(curFrom)
	}
	return total
}
