package progress

import (
	"context"
	"testing"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
)

// writeRun writes a journal of a run of playbook pb in mode that finished
// two steps taking aMs and bMs, ending with status ("" for none: the
// process died).
func writeRun(t *testing.T, dir, id, pb, mode, status string, aMs, bMs int64, resumed bool) {
	t.Helper()
	at, err := time.Parse("20060102T150405Z", id[:16])
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Create(dir, id, journal.Header{Playbook: "/pb/" + pb + ".yaml", PlaybookName: pb, Mode: mode,
		Operator: "dba", Host: "test", Started: at, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(event string, f map[string]any) {
		t.Helper()
		if err := j.Record(event, f, false); err != nil {
			t.Fatal(err)
		}
	}
	step := func(key string, ms int64) map[string]any {
		return map[string]any{"key": key, "name": key, "type": "sql", "duration_ms": ms, "pb_file": pb + ".yaml", "id": int64(1)}
	}
	rec("run_started", map[string]any{"run_id": id, "playbook": pb, "mode": mode})
	if resumed {
		rec(event.RunResumed, map[string]any{"host": "test"})
	}
	rec("step_started", step(kA, 0))
	rec("step_finished", step(kA, aMs))
	rec("step_started", step(kF, 0))
	rec("step_finished", step(kF, bMs))
	if status != "" {
		rec(event.RunFinished, map[string]any{"run_id": id, "status": status})
		rec(event.RunExit, map[string]any{"run_id": id, "status": status, "exit_code": 0})
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadHistoryKeepsSuccessfulRunsOfThePlaybook writes journals of runs
// that must and must not count, and checks the estimate they give.
func TestLoadHistoryKeepsSuccessfulRunsOfThePlaybook(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, "20261101T100000Z-0001", "pb", "run", "success", 1000, 10000, false)
	writeRun(t, dir, "20261102T100000Z-0001", "pb", "run", "success", 3000, 30000, false)
	writeRun(t, dir, "20261103T100000Z-0001", "pb", "run", "success", 2000, 20000, false)
	// none of these count
	writeRun(t, dir, "20261104T100000Z-0001", "pb", "run", "failed", 900000, 900000, false)
	writeRun(t, dir, "20261104T110000Z-0001", "pb", "dry-run", "success", 900000, 900000, false)
	writeRun(t, dir, "20261104T120000Z-0001", "other", "run", "success", 900000, 900000, false)
	writeRun(t, dir, "20261104T130000Z-0001", "pb", "run", "", 900000, 900000, false)
	writeRun(t, dir, "20261104T140000Z-0001", "pb", "run", "success", 900000, 900000, true)
	writeRun(t, dir, "20261105T100000Z-0001", "pb", "run", "success", 900000, 900000, false) // the current run

	h, err := LoadHistory(context.Background(), dir, "pb", "20261105T100000Z-0001")
	if err != nil {
		t.Fatal(err)
	}
	if h.Runs() != 3 {
		t.Fatalf("history of %d runs, want the 3 successful single-attempt runs of pb", h.Runs())
	}
	if e := h.Remaining(State{}); e.Remaining != 22*time.Second {
		t.Fatalf("remaining %v, want 22s (medians 2s + 20s)", e.Remaining)
	}

	empty, err := LoadHistory(context.Background(), t.TempDir(), "pb", "")
	if err != nil || empty.Runs() != 0 {
		t.Fatalf("an empty state dir gave %d runs, %v", empty.Runs(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadHistory(ctx, dir, "pb", ""); err == nil {
		t.Fatal("a cancelled load read on")
	}
}
