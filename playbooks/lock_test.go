package playbooks_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// TestSecondRunRefusedByServerLock: while flashback-start holds the
// server-side lock on the standby master, a flashback-stop from another
// control directory (so no shared file lock) fails at once with exit 2
// naming the holder; the first run goes on undisturbed, and once it ended
// the lock is free and stop restores the standby.
func TestSecondRunRefusedByServerLock(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the lab")
	}
	lab := drlabtest.Lab(t, 1)
	redo := filepath.Join(t.TempDir(), "redo.json")
	mdb, err := lab.OpenNode(lab.Master("standby", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()

	started := make(chan *enginetest.Result, 1)
	go func() { started <- drill(t, lab, "flashback-start.yaml", engine.ModeRun, redo, nil) }()
	// wait (bounded) until start holds the lock
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var holder sql.NullInt64
		if err := mdb.QueryRow("SELECT IS_USED_LOCK('flow-flashback')").Scan(&holder); err != nil {
			t.Fatal(err)
		}
		if holder.Valid {
			break
		}
		select {
		case s := <-started:
			t.Fatalf("start ended before it was seen holding the lock: %v\n%s", s.Err, tail(s.Log))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("start did not take the lock flow-flashback within 2 minutes")
		}
	}
	second := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, filepath.Join(t.TempDir(), "other-redo.json"), nil)
	if code := engine.ExitCode(second.Err); code != engine.ExitInvalid {
		t.Errorf("a second run while start holds the lock: exit %d, want 2: %v", code, second.Err)
	}
	if second.Err != nil {
		msg := second.Err.Error()
		for _, want := range []string{"lock `flow-flashback`", "held by run", "pid", "since"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the refusal lacks %q: %s", want, msg)
			}
		}
	}
	s := <-started
	if s.Err != nil {
		t.Fatalf("start, with a second run refused meanwhile: %v\n%s", s.Err, tail(s.Log))
	}
	var holder sql.NullInt64
	if err := mdb.QueryRowContext(context.Background(), "SELECT IS_USED_LOCK('flow-flashback')").Scan(&holder); err != nil || holder.Valid {
		t.Errorf("the lock is still held after start ended: %v, %v", holder, err)
	}
	st := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redo, nil)
	if st.Err != nil {
		t.Fatalf("stop: %v\n%s", st.Err, tail(st.Log))
	}
}
