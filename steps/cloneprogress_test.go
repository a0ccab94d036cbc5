package steps

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
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

// TestCloneRecipientBusy checks which errors the polls after a clone wait
// on instead of failing the step: a restarted recipient that refuses new
// connections for now (1040, 1203) or goes away is waited on; a real SQL
// error is not.
func TestCloneRecipientBusy(t *testing.T) {
	for _, c := range []struct {
		err        error
		busy, lost bool
	}{
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true, false},
		{fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: 1203, Message: "User has more than 'max_user_connections'"}), true, false},
		{&mysql.MySQLError{Number: 2013, Message: "Lost connection"}, false, true},
		{&mysql.MySQLError{Number: 1064, Message: "syntax"}, false, false},
		{&mysql.MySQLError{Number: 1142, Message: "SELECT command denied"}, false, false},
	} {
		if got := busyServer(c.err); got != c.busy {
			t.Errorf("busyServer(%v) = %v, want %v", c.err, got, c.busy)
		}
		if got := lostConnection(c.err); got != c.lost {
			t.Errorf("lostConnection(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
}
