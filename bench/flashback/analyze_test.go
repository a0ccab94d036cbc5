package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// ev renders one event line as flow's JSON formatter does.
func ev(t *testing.T, ms int, event string, worker, line int, typ, name string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"time": at(ms).Format("2006-01-02T15:04:05.000000-07:00"), "event": event, "id": worker,
		"line": line, "file": "pb.yaml", "level": "info", "msg": event}
	if typ != "" {
		m["type"] = typ
	}
	if name != "" {
		m["name"] = name
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sampleLog: a group with an initialise step, a parallel group whose two
// items run the same sql step (one polls), a set step and a clone, with
// known gaps between them.
func sampleLog(t *testing.T) string {
	lines := []string{
		"not json: flow's stderr may be mixed in",
		ev(t, 0, "run_started", 1, 1, "", "", nil),
		ev(t, 1, "step_started", 1, 10, "group", "A", nil),
		ev(t, 2, "step_started", 1, 11, "ssh", "init on 127.0.2.2", nil),
		ev(t, 3, "statement", 1, 11, "", "init on 127.0.2.2", map[string]any{"text": "/x/bin/mysqld --defaults-file=/y --initialize-insecure --user=root"}),
		ev(t, 100, "step_finished", 1, 11, "ssh", "init on 127.0.2.2", map[string]any{"duration_ms": 98}),
		ev(t, 101, "step_finished", 1, 10, "group", "A", map[string]any{"duration_ms": 100}),
		ev(t, 110, "step_started", 1, 20, "group", "P", nil),
		ev(t, 111, "step_started", 56, 21, "sql", "probe 127.0.2.2", nil),
		ev(t, 111, "step_started", 57, 21, "sql", "probe 127.0.2.3", nil),
		ev(t, 112, "statement", 56, 21, "", "probe 127.0.2.2", map[string]any{"text": "SELECT 1"}),
		ev(t, 120, "log", 57, 21, "", "", map[string]any{"level": "debug", "msg": "probe 127.0.2.3: waiting (attempt 1, 9ms elapsed): `until: x` still false"}),
		ev(t, 130, "statement", 57, 21, "", "probe 127.0.2.3", map[string]any{"text": "SELECT 1"}),
		ev(t, 150, "step_finished", 56, 21, "sql", "probe 127.0.2.2", map[string]any{"duration_ms": 39}),
		ev(t, 200, "step_finished", 57, 21, "sql", "probe 127.0.2.3", map[string]any{"duration_ms": 89}),
		ev(t, 201, "step_finished", 1, 20, "group", "P", map[string]any{"duration_ms": 91}),
		ev(t, 205, "step_skipped", 1, 25, "sql", "skipped", nil),
		ev(t, 210, "step_started", 1, 30, "set", "set", nil),
		ev(t, 211, "step_finished", 1, 30, "set", "set", map[string]any{"duration_ms": 1}),
		ev(t, 220, "step_started", 1, 31, "clone", "clone", nil),
		ev(t, 300, "step_finished", 1, 31, "clone", "clone", map[string]any{"duration_ms": 80}),
		ev(t, 305, "run_finished", 1, 1, "", "", map[string]any{"status": "success", "duration_ms": 305}),
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestParseRunTree(t *testing.T) {
	run, err := ParseRun(strings.NewReader(sampleLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != "success" || run.Skipped != 1 || run.Unclosed != 0 || len(run.Spans) != 7 {
		t.Fatalf("status %q skipped %d unclosed %d spans %d", run.Status, run.Skipped, run.Unclosed, len(run.Spans))
	}
	want := []struct {
		line, depth int
		class       string
	}{{10, 0, ClassContainer}, {11, 1, ClassInit}, {20, 0, ClassContainer}, {21, 1, ClassSQL}, {21, 1, ClassInstance}, {30, 0, ClassEngine}, {31, 0, ClassClone}}
	for i, w := range want {
		s := run.Spans[i]
		if s.Line != w.line || s.Depth != w.depth || s.Class != w.class {
			t.Errorf("span %d: line %d depth %d class %q, want line %d depth %d class %q", i, s.Line, s.Depth, s.Class, w.line, w.depth, w.class)
		}
	}
	if p := run.Spans[3].Parent; p == nil || p.Line != 20 {
		t.Errorf("a parallel item's step should hang under the group that started it, got %+v", p)
	}
}

func TestComputeShares(t *testing.T) {
	run, err := ParseRun(strings.NewReader(sampleLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	// the process started 5 ms before run_started and exited 5 ms after run_finished
	sh := ComputeShares(run, at(-5), at(310))
	ms := func(d time.Duration) int { return int(d / time.Millisecond) }
	checks := []struct {
		what      string
		got, want int
	}{
		{"wall", ms(sh.Wall), 315},
		{"initialise", ms(sh.ByClass[ClassInit]), 98},
		{"instance wait (the polling item hides the other item's sql)", ms(sh.ByClass[ClassInstance]), 89},
		{"sql", ms(sh.ByClass[ClassSQL]), 0},
		{"clone", ms(sh.ByClass[ClassClone]), 80},
		{"set", ms(sh.ByClass[ClassEngine]), 1},
		{"gaps, start-up and exit", ms(sh.ByClass[ClassGap]), 47},
		{"start-up", ms(sh.Startup), 5},
		{"exit", ms(sh.Exit), 5},
		{"MySQL", ms(sh.MySQL()), 267},
		{"engine", ms(sh.Engine()), 48},
		{"naive", ms(sh.NaiveEngine), 305 - (100 + 91 + 1 + 80)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d ms, want %d", c.what, c.got, c.want)
		}
	}
	var total time.Duration
	for _, d := range sh.ByClass {
		total += d
	}
	if total != sh.Wall {
		t.Errorf("the classes add up to %s, the wall time is %s", total, sh.Wall)
	}

	// without the process times, the run's own events bound the wall time
	sh = ComputeShares(run, time.Time{}, time.Time{})
	if ms(sh.Wall) != 305 || sh.Startup != 0 || ms(sh.ByClass[ClassGap]) != 37 {
		t.Errorf("run-only wall %s, start-up %s, gaps %s", sh.Wall, sh.Startup, sh.ByClass[ClassGap])
	}
}

func TestPreparationIsSplitOff(t *testing.T) {
	log := strings.Join([]string{
		ev(t, 0, "run_started", 1, 1, "", "", nil),
		ev(t, 0, "step_started", 1, 5, "ssh", "rm", nil),
		ev(t, 40, "statement", 1, 5, "", "rm", map[string]any{"text": "rm -rf /x"}),
		ev(t, 50, "step_finished", 1, 5, "ssh", "rm", nil),
		ev(t, 50, "run_finished", 1, 1, "", "", map[string]any{"status": "success"}),
	}, "\n")
	run, err := ParseRun(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	sh := ComputeShares(run, time.Time{}, time.Time{})
	if sh.ByClass[ClassPrep] != 40*time.Millisecond || sh.ByClass[ClassSSH] != 10*time.Millisecond || sh.EngineUpper() != 40*time.Millisecond {
		t.Errorf("prep %s ssh %s upper %s", sh.ByClass[ClassPrep], sh.ByClass[ClassSSH], sh.EngineUpper())
	}
}

func TestStepRows(t *testing.T) {
	run, err := ParseRun(strings.NewReader(sampleLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	rows := StepRows(run)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6", len(rows))
	}
	r := rows[3]
	if r.Key != "pb.yaml:21" || r.Count != 2 || r.Wall != 89*time.Millisecond || r.Sum != 128*time.Millisecond ||
		r.Class != ClassInstance || r.Name != "probe …" {
		t.Errorf("parallel step row %+v", r)
	}
}

func TestParseRunRejectsOtherLogs(t *testing.T) {
	if _, err := ParseRun(strings.NewReader(`{"time":"2026-11-23T21:00:00.000000+00:00","event":"log","msg":"x"}` + "\n")); err == nil {
		t.Error("a log without run_started parsed")
	}
	if _, err := ParseRun(strings.NewReader(`{"time":"yesterday","event":"log"}` + "\n")); err == nil {
		t.Error("a bad timestamp parsed")
	}
}

func TestCommonName(t *testing.T) {
	for _, c := range [][3]string{
		{"clone n0 into 127.0.2.2:18000", "clone n0 into 127.0.2.3:18000", "clone n0 into …"},
		{"rm -rf /a/b", "rm -rf /a/c", "rm -rf …"},
		{"start x", "start x now", "start x …"},
	} {
		if got := commonName(c[0], c[1]); got != c[2] {
			t.Errorf("commonName(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}
