// Package playbooks_test proves the shipped flashback playbooks end to end
// on a DR lab: real MySQL nodes, DBScale emulators and OpenSSH.
package playbooks_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/conn/sshdial"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
	_ "github.com/flowdba/flow/steps" // step types register themselves
)

func TestMain(m *testing.M) { drlabtest.Main(m) }

// drill runs one playbook on the lab.
func drill(t *testing.T, lab *drlab.Lab, playbook string, mode engine.Mode, redo string, extra map[string]string) *enginetest.Result {
	t.Helper()
	cfg, err := config.Load(lab.IniPath())
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	if redo != "" {
		vars["redo_path"] = redo
	}
	for k, v := range extra {
		vars[k] = v
	}
	pb := enginetest.Load(t, playbook)
	if playbook == "flashback-verify.yaml" {
		delete(vars, "redo_path")
	}
	return enginetest.RunPlaybook(t, pb, enginetest.Options{Mode: mode, Config: cfg, Vars: vars, SSHDial: sshdial.Dial,
		Yes: true, JSON: true, Timeout: 15 * time.Minute})
}

func queryInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestFlashbackEndToEnd: verify passes; start succeeds; drill writes go to
// the standby while the primary keeps taking writes; stop succeeds; then,
// checked independently of the playbooks, the drill's writes are gone, every
// primary write is on every standby node, replication runs again, the donor
// is enabled, the redo record is cleared and no secret was logged. While
// start holds the run lock, a second run is refused (exit 2, naming the
// holder), and the lock is free once start ended.
func TestFlashbackEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the lab")
	}
	lab := drlabtest.Lab(t, 1)
	ctx := context.Background()
	redo := filepath.Join(t.TempDir(), "redo.json")
	secrets := labSecrets(t, lab)

	pre, err := lab.Write(ctx, drlab.WriteOptions{Cluster: "primary", Duration: 2 * time.Second, MaxRows: 200})
	if err != nil {
		t.Fatalf("primary writes before the drill: %v", err)
	}
	start := time.Now()
	v := drill(t, lab, "flashback-verify.yaml", engine.ModeRun, redo, nil)
	if v.Err != nil {
		t.Fatalf("verify: %v\n%s", v.Err, tail(v.Log))
	}
	t.Logf("verify took %s", time.Since(start).Round(time.Millisecond))

	// primary writes keep going during start, the drill and stop
	wctx, stopWrites := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var primaryRows int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			res, err := lab.Write(wctx, drlab.WriteOptions{Cluster: "primary", Duration: time.Second, MaxRows: 50, Rate: 50})
			if res != nil {
				primaryRows += res.Rows
			}
			if err != nil && wctx.Err() == nil {
				t.Errorf("primary writes during the drill: %v", err)
				return
			}
		}
	}()

	start = time.Now()
	started := make(chan *enginetest.Result, 1)
	go func() { started <- drill(t, lab, "flashback-start.yaml", engine.ModeRun, redo, nil) }()
	// while start holds the run lock, a second run is refused (lock_test.go)
	s := requireSecondRunRefused(t, lab, started)
	if s == nil {
		s = <-started
	}
	requireLockFree(t, lab)
	if s.Err != nil {
		stopWrites()
		wg.Wait()
		t.Fatalf("start: %v\n%s", s.Err, tail(s.Log))
	}
	t.Logf("start took %s", time.Since(start).Round(time.Millisecond))

	drillRes, err := lab.Write(ctx, drlab.WriteOptions{Cluster: "standby", Duration: 2 * time.Second, MaxRows: 100})
	if err != nil || drillRes.Rows == 0 {
		t.Fatalf("drill writes on the standby: %v (%v)", err, drillRes)
	}

	start = time.Now()
	st := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redo, nil)
	stopWrites()
	wg.Wait()
	if st.Err != nil {
		t.Fatalf("stop: %v\n%s", st.Err, tail(st.Log))
	}
	t.Logf("stop took %s; primary rows written during the drill: %d; drill rows: %d", time.Since(start).Round(time.Millisecond), primaryRows, drillRes.Rows)

	// independent checks
	for _, p := range restoredProblems(ctx, lab, redo, pre.Rows+primaryRows, checkWait) {
		t.Error(p)
	}
	for _, out := range []*enginetest.Result{v, s, st} {
		for _, sec := range secrets {
			if strings.Contains(out.Log, sec) || strings.Contains(out.Out, sec) {
				t.Errorf("a secret reached the log of %s", out.File)
			}
		}
	}
	// stop run twice is harmless
	again := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redo, nil)
	if again.Err != nil || !strings.Contains(again.Log, "nothing to do") {
		t.Errorf("a second stop: %v\n%s", again.Err, tail(again.Log))
	}
	requireCleanup(t, lab)
}

// requireCleanup: after a stop every recipient keeps the drill's data in
// dbdata_bak; flashback-cleanup's dry run lists each and removes none, its
// run removes them all, and a second run finds nothing.
func requireCleanup(t *testing.T, lab *drlab.Lab) {
	t.Helper()
	var kept []string
	for _, n := range lab.Nodes {
		if _, err := os.Stat(filepath.Join(n.InstanceDir, "dbdata_bak")); err == nil {
			kept = append(kept, n.Host)
		}
	}
	if len(kept) == 0 {
		t.Fatal("no node keeps the drill's data in dbdata_bak after stop")
	}
	dry := drill(t, lab, "flashback-cleanup.yaml", engine.ModeDryRun, "", nil)
	if dry.Err != nil {
		t.Fatalf("cleanup dry run: %v\n%s", dry.Err, tail(dry.Log))
	}
	for _, h := range kept {
		if !strings.Contains(dry.Log, h+":") || !strings.Contains(dry.Out, "rm -rf") {
			t.Errorf("the cleanup dry run does not list the drill data on %s:\n%s", h, dry.Out)
		}
	}
	run := drill(t, lab, "flashback-cleanup.yaml", engine.ModeRun, "", nil)
	if run.Err != nil {
		t.Fatalf("cleanup: %v\n%s", run.Err, tail(run.Log))
	}
	for _, n := range lab.Nodes {
		if _, err := os.Stat(filepath.Join(n.InstanceDir, "dbdata_bak")); err == nil {
			t.Errorf("%s still has dbdata_bak after flashback-cleanup", n)
		}
	}
	if again := drill(t, lab, "flashback-cleanup.yaml", engine.ModeRun, "", nil); again.Err != nil || !strings.Contains(again.Log, "nothing to remove") {
		t.Errorf("a second cleanup: %v\n%s", again.Err, tail(again.Log))
	}
}

func labSecrets(t *testing.T, lab *drlab.Lab) []string {
	cfg, err := config.Load(lab.IniPath())
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.Secrets()
	if len(out) == 0 {
		t.Fatal("the lab's config holds no secret")
	}
	return out
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return fmt.Sprint(strings.Join(lines, "\n"))
}
