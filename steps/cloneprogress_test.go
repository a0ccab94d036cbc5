package steps

import (
	"math"
	"testing"
	"time"
)

// TestCloneMeter checks the clone's progress reports from successive
// clone_progress readings: the stage in progress, bytes copied of the
// estimate, the smoothed rate and the estimate of the time left.
func TestCloneMeter(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	reading := func(drop string, file, fileEst int64, fileState string) []cloneViewStage {
		return []cloneViewStage{
			{stage: "DROP DATA", state: drop},
			{stage: "FILE COPY", state: fileState, data: file, estimate: fileEst},
			{stage: "PAGE COPY", state: "Not Started", estimate: 4 * mb},
		}
	}
	var m cloneMeter
	f := m.update(t0, reading("In Progress", 0, 0, "Not Started"))
	if f["stage"] != "drop data" || f["rate"] != 0.0 || f["eta_s"] != nil || f["bytes_total"] != int64(4*mb) {
		t.Fatalf("first reading: %v", f)
	}
	f = m.update(t0.Add(time.Second), reading("Completed", 100*mb, 1000*mb, "In Progress"))
	if f["stage"] != "file copy" || f["bytes_done"] != int64(100*mb) || f["bytes_total"] != int64(1004*mb) || f["rate"] != float64(100*mb) {
		t.Fatalf("second reading: %v", f)
	}
	if eta := f["eta_s"].(float64); math.Abs(eta-9.04) > 1e-9 {
		t.Fatalf("estimate %v s, want 9.04 s (904 MiB left at 100 MiB/s)", eta)
	}
	f = m.update(t0.Add(3*time.Second), reading("Completed", 300*mb, 1000*mb, "In Progress"))
	if want := 0.3*100*mb + 0.7*100*mb; math.Abs(f["rate"].(float64)-want) > 1e-6 {
		t.Fatalf("rate %v, want %v", f["rate"], want)
	}
	f = m.update(t0.Add(4*time.Second), reading("Completed", 1000*mb, 1000*mb, "Completed"))
	if f["stage"] != "between stages" {
		t.Fatalf("no stage in progress: %v", f)
	}
}
