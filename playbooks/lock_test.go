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
	"github.com/flowdba/flow/lab/drlab"
)

// The run lock on the clusters (the server-side lock start and stop take
// on the standby master) is proved inside TestFlashbackEndToEnd: while its
// start holds the lock, a second run from another control directory is
// refused with exit 2 naming the holder; start goes on undisturbed, and
// once it ended the lock is free and stop restores the standby (this was
// TestSecondRunRefusedByServerLock, a start and stop cycle of its own).

// requireSecondRunRefused runs, while a flashback-start (started is where
// its result arrives) holds the server-side lock on the standby master, a
// flashback-stop from another control directory (so no shared file lock):
// it must fail at once with exit 2 naming the holder. It waits (bounded)
// until start holds the lock; it returns start's result when start ended
// before it was seen holding it (the caller fails), nil otherwise.
func requireSecondRunRefused(t *testing.T, lab *drlab.Lab, started <-chan *enginetest.Result) *enginetest.Result {
	t.Helper()
	mdb, err := lab.OpenNode(lab.Master("standby", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
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
			t.Errorf("start ended before it was seen holding the lock: %v\n%s", s.Err, tail(s.Log))
			return s
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("start did not take the lock flow-flashback within 2 minutes")
		}
	}
	second := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, filepath.Join(t.TempDir(), "other-redo.json"), nil)
	if code := engine.ExitCode(second.Err); code != engine.ExitInvalid {
		// who held the lock then, and what the second run's lock step said
		var holder sql.NullInt64
		_ = mdb.QueryRow("SELECT IS_USED_LOCK('flow-flashback')").Scan(&holder)
		t.Errorf("a second run while start holds the lock: exit %d, want 2: %v\nIS_USED_LOCK now: %v\nits log:\n%s", code, second.Err, holder, tail(second.Log))
	}
	if second.Err != nil {
		msg := second.Err.Error()
		for _, want := range []string{"lock `flow-flashback`", "held by run", "pid", "since"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the refusal lacks %q: %s", want, msg)
			}
		}
	}
	return nil
}

// requireLockFree fails the test when the server-side lock is still held.
func requireLockFree(t *testing.T, lab *drlab.Lab) {
	t.Helper()
	mdb, err := lab.OpenNode(lab.Master("standby", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	var holder sql.NullInt64
	if err := mdb.QueryRowContext(context.Background(), "SELECT IS_USED_LOCK('flow-flashback')").Scan(&holder); err != nil || holder.Valid {
		t.Errorf("the lock is still held after start ended: %v, %v", holder, err)
	}
}
