package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/flowdba/flow/lab/drlab"
)

// The planned switchover (issue #15) measured on the same lab: with `flow
// lab write --follow` writing through whichever router takes writes,
// playbooks/dr-switchover.yaml switches to [target] and back -switchovers
// times. For each switch it reports flow's wall time, the write freeze as
// the playbook sees it (from the freeze step's start to the end of the
// step that opens the new primary) and the write outage as the writer saw
// it (the gap between its last acknowledged write through the old primary
// and its first through the new one); then `flow lab check --acked` must
// find every acknowledged row on every node.

// Switch is one measured switchover.
type Switch struct {
	To string
	// Wall is flow's process time from exec to exit; Freeze the playbook's
	// freeze-to-open span; Outage the writer's gap across the switch.
	Wall, Freeze, Outage time.Duration
}

// Names of the switchover's steps that bound the freeze.
const (
	freezeStep = "Step 04 freeze the primary router"
	openStep   = "Step 10 the new primary takes writes"
)

// measureSwitchovers runs n switchovers there and back with the writer
// running and checks the lab afterwards.
func measureSwitchovers(ctx context.Context, o options, flow string, n int) ([]Switch, error) {
	writerOut := filepath.Join(o.logs, "switchover-writer.json")
	wf, err := os.Create(writerOut)
	if err != nil {
		return nil, err
	}
	defer wf.Close()
	writer := exec.CommandContext(ctx, flow, "lab", "write", "--dir", o.dir, "--follow", "--seconds", "3600",
		"--rate", strconv.Itoa(max(o.rate, 1)*4), "--json")
	writer.Stdout, writer.Stderr = wf, io.Discard
	if err := writer.Start(); err != nil {
		return nil, err
	}
	stopWriter := func() error {
		_ = writer.Process.Signal(syscall.SIGINT)
		return writer.Wait()
	}
	var out []Switch
	for i := 1; i <= n; i++ {
		for _, to := range []string{"target", "source"} {
			sw, err := switchover(ctx, o, flow, to, filepath.Join(o.logs, fmt.Sprintf("switchover%d-%s.jsonl", i, to)))
			if err != nil {
				_ = stopWriter()
				return out, err
			}
			progress("switchover %d to %s: %s (freeze to open %s)", i, to, sw.Wall.Round(time.Millisecond), sw.Freeze.Round(time.Millisecond))
			out = append(out, sw)
		}
	}
	// the way back's outage ends with the writer's first row through the
	// primary again: wait for it before stopping the writer
	if err := waitWriterRow(ctx, o.dir); err != nil {
		_ = stopWriter()
		return out, err
	}
	if err := stopWriter(); err != nil {
		return out, fmt.Errorf("the writer: %w", err)
	}
	b, err := os.ReadFile(writerOut)
	if err != nil {
		return out, err
	}
	var fr drlab.FollowResult
	if err := json.Unmarshal(b, &fr); err != nil {
		return out, fmt.Errorf("the writer's result %s: %w", writerOut, err)
	}
	// the gaps where the acknowledged writes moved to the other router,
	// in order: one per switchover
	k := 0
	for j := 1; j < len(fr.Segments) && k < len(out); j++ {
		if fr.Segments[j].Cluster != fr.Segments[j-1].Cluster {
			out[k].Outage = fr.Segments[j].FirstAt.Sub(fr.Segments[j-1].LastAt)
			k++
		}
	}
	progress("writer: %d rows acknowledged, %d failed writes; flow lab check --acked", fr.Rows, fr.Errors)
	if _, err := runFlow(ctx, checkTimeout, flow, nil, "lab", "check", "--dir", o.dir, "--wait", "2m", "--acked", writerOut); err != nil {
		return out, fmt.Errorf("after the switchovers a node lacks an acknowledged row or differs: %w", err)
	}
	return out, nil
}

// waitWriterRow polls (bounded) the built primary's master until the
// writer has stored a row more through that cluster's router.
func waitWriterRow(ctx context.Context, dir string) error {
	lab, err := drlab.Load(dir)
	if err != nil {
		return err
	}
	db, err := lab.OpenNode(lab.Master(drlab.ClusterPrimary, 0))
	if err != nil {
		return err
	}
	defer db.Close()
	q := "SELECT COUNT(*) FROM " + drlab.WorkloadSchema + "." + drlab.WorkloadTable + " WHERE cluster = ?"
	count := func() (n int) {
		_ = db.QueryRowContext(ctx, q, drlab.ClusterPrimary).Scan(&n)
		return n
	}
	first := count()
	deadline := time.Now().Add(30 * time.Second)
	for count() <= first {
		if time.Now().After(deadline) {
			return fmt.Errorf("the writer stored no row through the primary's router within 30s of the way back")
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	return nil
}

// switchover runs dr-switchover.yaml to `to` and times it.
func switchover(ctx context.Context, o options, flow, to, logPath string) (Switch, error) {
	sw := Switch{To: to}
	ctx, cancel := context.WithTimeout(ctx, playbookTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, flow, "run", filepath.Join("playbooks", "dr-switchover.yaml"),
		"-c", filepath.Join(o.dir, "flashback.ini"), "--state-dir", filepath.Join(o.dir, "state"),
		"--var", "to="+to, "--yes", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	sw.Wall = time.Since(t0)
	_ = os.WriteFile(logPath, stdout.Bytes(), 0o644)
	if err != nil {
		return sw, fmt.Errorf("dr-switchover to=%s: %v (log %s)\n%s", to, err, logPath, tail(stderr.String(), 20))
	}
	var frozen, opened time.Time
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev struct {
			Event string    `json:"event"`
			Name  string    `json:"name"`
			Time  time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Event == "step_started" && ev.Name == freezeStep:
			frozen = ev.Time
		case ev.Event == "step_finished" && ev.Name == openStep:
			opened = ev.Time
		}
	}
	if frozen.IsZero() || opened.IsZero() {
		return sw, fmt.Errorf("dr-switchover to=%s: no %q or %q in its events (log %s)", to, freezeStep, openStep, logPath)
	}
	sw.Freeze = opened.Sub(frozen)
	return sw, nil
}

// writeSwitchovers prints the switchovers' table.
func writeSwitchovers(w io.Writer, sws []Switch) {
	if len(sws) == 0 {
		return
	}
	fmt.Fprintln(w, "\nplanned switchover (dr-switchover.yaml) with `flow lab write --follow` running; target: outage at most 2 s")
	fmt.Fprintln(w, "| # | to | flow run s | freeze to open s | writer outage s |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for i, s := range sws {
		fmt.Fprintf(w, "| %d | %s | %.2f | %.3f | %.3f |\n", i+1, s.To, s.Wall.Seconds(), s.Freeze.Seconds(), s.Outage.Seconds())
	}
}
