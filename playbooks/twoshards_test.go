package playbooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// TestFlashbackEndToEndTwoShards is TestFlashbackEndToEnd on a lab with two
// shards (two replication datasources, normal_0 and normal_1, per router):
// every datasource is detached, frozen, cloned, restored and re-attached.
// The routers (and so lab.Write) reach the catalog datasource normal_0
// only, so shard 1 is written directly on its masters, as an application
// routed there would: primary writes before, during and after the drill,
// drill writes on the standby master. drlabtest swaps the package's
// 1-shard lab for a 2-shard one here (this file sorts last, so a full
// package run swaps once), built site-like: SSH by password only (the
// config has no key, as at a site that logs in with passwords) and one
// admin account on routers and nodes, so the shipped playbooks are proved
// with that access too. Stop runs as from another control host (a redo
// path with no record): it works from the record start kept on the standby
// masters, after a local record that differs from it was refused; the
// first host's record, stale then, is refused too.
func TestFlashbackEndToEndTwoShards(t *testing.T) {
	lab := drlabtest.LabWith(t, 2, drlabtest.Site{SSHPassword: true, SharedAccount: true})
	sshdLogs := sshdLogSizes(t, lab)
	requireHealthy(t, lab)
	ctx := context.Background()
	redoPath := filepath.Join(t.TempDir(), "redo.json")
	secrets := labSecrets(t, lab)

	// primary writes before the drill, on every shard
	if _, err := lab.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltPrimary, Duration: 2 * time.Second, MaxRows: 200}); err != nil {
		t.Fatalf("primary writes before the drill: %v", err)
	}
	for k := 1; k < lab.Shards; k++ {
		if _, err := writeNode(ctx, lab, lab.Master(drlab.ClusterPrimary, k), drlab.ClusterPrimary, 100, 0); err != nil {
			t.Fatalf("primary writes on shard %d before the drill: %v", k, err)
		}
	}
	start := time.Now()
	v := drill(t, lab, "flashback-verify.yaml", engine.ModeRun, redoPath, nil)
	if v.Err != nil {
		t.Fatalf("verify: %v\n%s", v.Err, tail(v.Log))
	}
	t.Logf("verify took %s", time.Since(start).Round(time.Millisecond))

	// primary writes keep going on every shard during start, the drill and stop
	wctx, stopWrites := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	primaryRows := 0
	for k := 0; k < lab.Shards; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				var n int
				var err error
				if k == 0 {
					var res *drlab.WriteResult
					res, err = lab.Write(wctx, drlab.WriteOptions{Cluster: drlab.BuiltPrimary, Duration: time.Second, MaxRows: 50, Rate: 50})
					if res != nil {
						n = res.Rows
					}
				} else {
					n, err = writeNode(wctx, lab, lab.Master(drlab.ClusterPrimary, k), drlab.ClusterPrimary, 50, 20*time.Millisecond)
				}
				mu.Lock()
				primaryRows += n
				mu.Unlock()
				if err != nil && wctx.Err() == nil {
					t.Errorf("primary writes on shard %d during the drill: %v", k, err)
					return
				}
			}
		}()
	}
	halt := func() {
		stopWrites()
		wg.Wait()
	}
	stopped := false
	t.Cleanup(func() {
		halt()
		if !stopped {
			if res := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redoPath, nil); res.Err != nil {
				t.Errorf("cleanup: stop after a failed test: %v\n%s", res.Err, tail(res.Log))
			}
		}
	})

	start = time.Now()
	s := drill(t, lab, "flashback-start.yaml", engine.ModeRun, redoPath, nil)
	if s.Err != nil {
		t.Fatalf("start: %v\n%s", s.Err, tail(s.Log))
	}
	t.Logf("start took %s", time.Since(start).Round(time.Millisecond))
	for k := 0; k < lab.Shards; k++ {
		if !strings.Contains(s.Log, fmt.Sprintf("Step 12 disable donor node normal_%d_", k)) {
			t.Errorf("start froze no donor of normal_%d", k)
		}
	}

	// drill writes on the standby of every shard
	drillRows := 0
	res, err := lab.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltStandby, Duration: 2 * time.Second, MaxRows: 100})
	if err != nil || res.Rows == 0 {
		t.Fatalf("drill writes on the standby: %v (%v)", err, res)
	}
	drillRows += res.Rows
	for k := 1; k < lab.Shards; k++ {
		n, err := writeNode(ctx, lab, lab.Master(drlab.ClusterStandby, k), drlab.ClusterStandby, 50, 0)
		if err != nil || n == 0 {
			t.Fatalf("drill writes on the standby master of shard %d: %v", k, err)
		}
		drillRows += n
	}

	// a local redo record that differs from the one start kept on the
	// standby masters is refused before any change, showing both
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	tamperRedo(t, redoPath, tampered)
	if res := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, tampered, nil); engine.ExitCode(res.Err) != engine.ExitRefused ||
		!strings.Contains(fmt.Sprint(res.Err), "differs from the one kept on the standby masters") || !strings.Contains(fmt.Sprint(res.Err), `"snapshots": "tampered"`) {
		t.Fatalf("stop with a tampered redo record: exit %d, want 3 naming both records: %v", engine.ExitCode(res.Err), res.Err)
	}

	// stop from another control host: no redo record there, so stop works
	// from the one start kept on the standby masters
	elsewhere := filepath.Join(t.TempDir(), "other-control-host", "redo.json")
	start = time.Now()
	st := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, elsewhere, nil)
	halt()
	if st.Err != nil {
		t.Fatalf("stop: %v\n%s", st.Err, tail(st.Log))
	}
	stopped = true
	if !strings.Contains(st.Log, "stop works from the one start kept on the standby masters") {
		t.Errorf("stop from another control host did not say it used the standby's record:\n%s", tail(st.Log))
	}
	t.Logf("stop took %s; primary rows written during the drill: %d; drill rows: %d", time.Since(start).Round(time.Millisecond), primaryRows, drillRows)
	for _, k := range []int{0, 1} {
		if !strings.Contains(st.Log, fmt.Sprintf("dbscale enable dataserver normal_%d_", k)) {
			t.Errorf("stop enabled no donor of normal_%d", k)
		}
	}

	// every SSH login of the drill was by password: the config has no key
	if pw, key := sshdLogins(t, lab, sshdLogs); pw == 0 || key != 0 {
		t.Errorf("the lab's sshd logs show %d password and %d public key logins since the drill began; want only password logins", pw, key)
	}

	// independent checks, per shard
	rep, err := lab.Check(ctx, drlab.CheckOptions{Wait: 2 * time.Minute})
	if err != nil || !rep.OK {
		t.Fatalf("the clusters differ after stop: %v\n%v", err, rep)
	}
	for k := 0; k < lab.Shards; k++ {
		pm := lab.Master(drlab.ClusterPrimary, k)
		pdb, err := lab.OpenNode(pm)
		if err != nil {
			t.Fatal(err)
		}
		wantPrimary := queryInt(t, pdb, "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'primary'")
		pdb.Close()
		if wantPrimary == 0 {
			t.Errorf("shard %d: the primary master holds no primary rows", k)
		}
		for _, n := range lab.ClusterNodes(drlab.ClusterStandby) {
			if n.Shard != k {
				continue
			}
			db, err := lab.OpenNode(n)
			if err != nil {
				t.Fatal(err)
			}
			if got := queryInt(t, db, "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'standby'"); got != 0 {
				t.Errorf("%s still has %d drill rows", n, got)
			}
			if got := queryInt(t, db, "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'primary'"); got != wantPrimary {
				t.Errorf("%s has %d primary rows, the primary master of shard %d %d", n, got, k, wantPrimary)
			}
			if got := queryInt(t, db, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'flow_drill'"); got != 0 {
				t.Errorf("%s still carries the drill marker", n)
			}
			db.Close()
		}
	}
	// replication of every shard (standby masters from their primary
	// masters), no dataserver disabled, DR link, read-only standby router
	requireHealthy(t, lab)
	if b, err := os.ReadFile(elsewhere); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("the redo record was not cleared: %s", b)
	}
	for _, out := range []*enginetest.Result{v, s, st} {
		for _, sec := range secrets {
			if strings.Contains(out.Log, sec) || strings.Contains(out.Out, sec) {
				t.Errorf("a secret reached the log of %s", out.File)
			}
		}
	}
	// the first control host's record is stale now: a stop there is
	// refused (exit 3, nothing changes) until the DBA removes it
	stale := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redoPath, nil)
	if engine.ExitCode(stale.Err) != engine.ExitRefused {
		t.Errorf("stop with the stale record of the first control host: exit %d, want 3: %v", engine.ExitCode(stale.Err), stale.Err)
	}
	if err := os.Remove(redoPath); err != nil {
		t.Fatal(err)
	}
	again := drill(t, lab, "flashback-stop.yaml", engine.ModeRun, redoPath, nil)
	if again.Err != nil || !strings.Contains(again.Log, "nothing to do") {
		t.Errorf("a second stop: %v\n%s", again.Err, tail(again.Log))
	}
	requireHealthy(t, lab)
}

// tamperRedo copies the redo record at from to to with one value changed.
func tamperRedo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", from, err)
	}
	values, ok := rec["values"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no values: %s", from, b)
	}
	values["snapshots"] = "tampered"
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeNode writes up to rows rows of the workload table directly on a
// node (creating the table there if it is missing), one every pause, and
// returns how many it wrote. It stops early when ctx ends (not an error).
func writeNode(ctx context.Context, lab *drlab.Lab, n drlab.Node, cluster string, rows int, pause time.Duration) (int, error) {
	db, err := lab.OpenNode(n)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + drlab.WorkloadSchema,
		"CREATE TABLE IF NOT EXISTS " + drlab.WorkloadSchema + "." + drlab.WorkloadTable +
			" (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, cluster VARCHAR(16) NOT NULL, written_at DATETIME(6) NOT NULL)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %v", n, err)
		}
	}
	var next int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM flowlab.seq").Scan(&next); err != nil {
		return 0, fmt.Errorf("%s: %v", n, err)
	}
	done := 0
	for done < rows {
		if _, err := db.ExecContext(ctx, "INSERT INTO flowlab.seq (seq, cluster, written_at) VALUES (?, ?, NOW(6))", next, cluster); err != nil {
			if ctx.Err() != nil {
				return done, nil
			}
			return done, fmt.Errorf("%s: insert seq %d: %v", n, next, err)
		}
		done++
		next++
		if pause > 0 {
			select {
			case <-ctx.Done():
				return done, nil
			case <-time.After(pause):
			}
		}
	}
	return done, nil
}

// sshdLogSizes notes how long each of the lab's sshd logs is, so that
// sshdLogins counts only what came after.
func sshdLogSizes(t *testing.T, lab *drlab.Lab) map[string]int64 {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(lab.SSHD.Dir, "sshd*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no sshd log in %s: %v", lab.SSHD.Dir, err)
	}
	out := map[string]int64{}
	for _, l := range logs {
		fi, err := os.Stat(l)
		if err != nil {
			t.Fatal(err)
		}
		out[l] = fi.Size()
	}
	return out
}

// sshdLogins counts OpenSSH's "Accepted password" and "Accepted publickey"
// lines written to the lab's sshd logs after the sizes noted.
func sshdLogins(t *testing.T, lab *drlab.Lab, since map[string]int64) (password, publickey int) {
	t.Helper()
	for l, off := range since {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) < off {
			off = 0
		}
		text := string(b[off:])
		password += strings.Count(text, "Accepted password for ")
		publickey += strings.Count(text, "Accepted publickey for ")
	}
	return password, publickey
}
