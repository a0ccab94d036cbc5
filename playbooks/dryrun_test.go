package playbooks_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// TestFlashbackDryRun: a dry run of verify, start and stop on a live lab
// lists every change the real run would make, executes none (the lab's
// state is the same before and after) and masks every secret. Fidelity:
// each dry run's verdicts are compared with the steps the real run then
// executes on the same lab (start for real after its dry run; stop's dry
// run during that drill, then stop for real); the differences are logged
// and may only be steps the dry run called UNKNOWN.
func TestFlashbackDryRun(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	requireHealthy(t, lab)
	redoPath := filepath.Join(t.TempDir(), "redo.json")
	secrets := labSecrets(t, lab)
	// every password position of the listing is masked
	pwd := regexp.MustCompile(`(?i)(IDENTIFIED BY|server_password=|donor_password:?)\s*'?([^'\s,;]*)`)
	noSecret := func(res *enginetest.Result) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(res.Out, sec) || strings.Contains(res.Log, sec) {
				t.Errorf("a secret of the ini reached the dry run's listing or log of %s", filepath.Base(res.File))
			}
		}
		n := 0
		for _, m := range pwd.FindAllStringSubmatch(res.Out+res.Log, -1) {
			n++
			if m[2] != "******" {
				t.Errorf("the dry run of %s shows a password unmasked: %s…", filepath.Base(res.File), m[0][:len(m[1])+2])
			}
		}
		if n == 0 {
			t.Errorf("the dry run of %s lists no password position at all (IDENTIFIED BY, server_password=)", filepath.Base(res.File))
		}
	}
	fidelityOf := func(what string, dry, real *enginetest.Result) {
		t.Helper()
		unknown, wrong := fidelity(t, dry, real)
		t.Logf("%s: dry run %d verdict(s), %d change(s); differences with the real run: %d UNKNOWN, %d wrong",
			what, len(dry.Runner.Verdicts()), dry.Runner.Changes(), len(unknown), len(wrong))
		for _, d := range unknown {
			t.Logf("  %s: UNKNOWN in the dry run: %s", what, d)
		}
		for _, d := range wrong {
			t.Errorf("  %s: the dry run was wrong: %s", what, d)
		}
	}

	// verify: read-only, so every step RUNS
	before := labState(t, lab, redoPath)
	dv := drill(t, lab, "flashback-verify.yaml", engine.ModeDryRun, redoPath, nil)
	if dv.Err != nil {
		t.Fatalf("dry run of verify: %v\n%s", dv.Err, tail(dv.Log))
	}
	if dv.Runner.Changes() != 0 {
		t.Errorf("the dry run of verify lists %d change(s), want none:\n%s", dv.Runner.Changes(), dv.Out)
	}
	rv := drill(t, lab, "flashback-verify.yaml", engine.ModeRun, redoPath, nil)
	if rv.Err != nil {
		t.Fatalf("verify: %v\n%s", rv.Err, tail(rv.Log))
	}
	fidelityOf("verify", dv, rv)
	requireUnchanged(t, "verify and its dry run", before, labState(t, lab, redoPath))

	// start: the dry run lists the changes and makes none
	ds := drill(t, lab, "flashback-start.yaml", engine.ModeDryRun, redoPath, nil)
	if ds.Err != nil {
		t.Fatalf("dry run of start: %v\n%s\n%s", ds.Err, tail(ds.Out), tail(ds.Log))
	}
	requireUnchanged(t, "the dry run of start", before, labState(t, lab, redoPath))
	noSecret(ds)
	sm := lab.Master(drlab.ClusterStandby, 0)
	for _, want := range []string{
		"dbscale dynamic remove datasource slave_dbscale_source",
		"dbscale dynamic remove dataserver slave_dbscale_server",
		"STOP REPLICA IO_THREAD",
		"dbscale disable dataserver normal_0_",
		"dbscale set global 'enable-read-only' = 0",
		"INSERT INTO flow_drill.active",
		"CLONE INSTANCE FROM ",
		"IDENTIFIED BY '******' DATA DIRECTORY = ",
		"UPDATE flow_drill.active SET record",
		sm.Host,
	} {
		if !strings.Contains(ds.Out, want) {
			t.Errorf("the dry run of start does not list %q", want)
		}
	}
	if ds.Runner.Changes() == 0 || !strings.Contains(ds.Out, "Summary: ") {
		t.Errorf("the dry run of start has no summary of changes:\n%s", tail(ds.Out))
	}
	t.Logf("dry run of start: %d change(s) listed in %s", ds.Runner.Changes(), ds.Elapsed.Round(time.Millisecond))

	// on a live cluster the primary keeps writing during the dry run: the
	// standby slaves then run ahead of the detach point the dry run reads
	// (it stops no replication), which must not make it refuse
	wctx, stopWrites := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			if _, err := lab.Write(wctx, drlab.WriteOptions{Cluster: drlab.BuiltPrimary, Duration: time.Second, MaxRows: 2000}); err != nil && wctx.Err() == nil {
				t.Errorf("primary writes during the dry run: %v", err)
				return
			}
		}
	}()
	dw := drill(t, lab, "flashback-start.yaml", engine.ModeDryRun, redoPath, nil)
	stopWrites()
	wg.Wait()
	if dw.Err != nil {
		t.Errorf("dry run of start during primary writes: %v\n%s", dw.Err, tail(dw.Log))
	}

	// start for real on the same lab
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			res := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redoPath, nil)
			if res.Err != nil {
				t.Errorf("cleanup: stop after a failed test: %v\n%s", res.Err, tail(res.Log))
			}
		}
	})
	rs := drill(t, lab, "flashback-start.yaml", engine.ModeRun, redoPath, nil)
	if rs.Err != nil {
		t.Fatalf("start: %v\n%s", rs.Err, tail(rs.Log))
	}
	fidelityOf("start", ds, rs)

	// stop's dry run during the drill, then stop for real
	during := labState(t, lab, redoPath)
	dst := drill(t, lab, "flashback-stop.yaml", engine.ModeDryRun, redoPath, nil)
	if dst.Err != nil {
		t.Fatalf("dry run of stop: %v\n%s\n%s", dst.Err, tail(dst.Out), tail(dst.Log))
	}
	requireUnchanged(t, "the dry run of stop", during, labState(t, lab, redoPath))
	noSecret(dst)
	for _, want := range []string{
		"dbscale set global 'enable-read-only' = 1",
		"SHUTDOWN",
		"KILL ",
		"dbscale enable dataserver normal_0_",
		"dbscale flashback dataserver normal_0_",
		"dbscale dynamic add dataserver",
		"dbscale dynamic add slave slave_dbscale_source to normal_0",
	} {
		if !strings.Contains(dst.Out, want) {
			t.Errorf("the dry run of stop does not list %q", want)
		}
	}
	rst := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redoPath, nil)
	if rst.Err != nil {
		t.Fatalf("stop: %v\n%s", rst.Err, tail(rst.Log))
	}
	stopped = true
	fidelityOf("stop", dst, rst)
	requireHealthy(t, lab)
}
