// Command flashback benchmarks the shipped flashback playbooks on a DR lab
// (lab/drlab): it starts a fresh lab, then for each cycle writes some rows
// on the primary, runs `flow run playbooks/flashback-start.yaml --yes
// --log-format json`, writes drill rows on the standby, runs
// flashback-stop.yaml the same way and checks the lab (`flow lab check`).
// It times each flow process from exec to exit and reads its JSON events
// (step_started, statement, step_finished with their timestamps) to print:
//
//   - per-step wall times (every top-level step, and nested steps above a
//     threshold; parallel executions shown as their union and their sum);
//   - the totals of start and stop;
//   - how each total divides: waiting on MySQL itself (initialising the
//     clone instances, the clone, instances starting and stopping, GTID
//     waits), the drill's other work (statements, SSH commands, the redo
//     record), and the engine's own time — process start-up and loading,
//     the gaps between steps where no step runs (guards, skips, logging,
//     scheduling) and set/assert/log steps. Every instant is counted once,
//     for the highest-priority activity under way on any worker, so the
//     shares add up to 100 % of the wall time. An upper bound also counts
//     as the engine's each step's preparation before its first statement
//     (rendering, the run journal, opening a connection).
//
// After the cycles and the floor it runs -switchovers planned switchovers
// there and back with a writer following the primary (switchover.go).
//
// With -shards 1,2,4,8 it does all of that on a fresh lab of each size in
// turn and adds a table per shard count: the lab's start-up time and memory
// (PSS after up and the peak during the cycles, clone instances included),
// start and stop, and the CPU the lab's own processes used meanwhile
// (labprocs.go), beside the whole machine's.
//
// Usage:
//
//	go run ./bench/flashback [-runs 3] [-shards 1] [-md FILE] [-keep] [-min 50ms]
//	go run ./bench/flashback -from start.jsonl,stop.jsonl   # analyse saved logs only
//
// The lab's addresses are fixed, so the benchmark takes the machine-wide lab
// lock the lab tests take (gofrs/flock on $TMPDIR/flow-drlab.lock), waiting
// for them if need be. Logs go to -logs (default .flow-lab/bench-logs).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// Bounds of the benchmark's waits.
const (
	buildTimeout    = 5 * time.Minute
	upTimeout       = 10 * time.Minute
	playbookTimeout = 20 * time.Minute
	checkTimeout    = 3 * time.Minute
	downTimeout     = 3 * time.Minute
)

// options are the command-line flags.
type options struct {
	dir, logs, flow, from, md string
	runs, rate, switchovers   int
	shards                    []int // one lab, one set of cycles, per count
	keep                      bool
	lockWait, min, drill      time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", ".flow-lab/bench", "the lab folder (a fresh lab is created there)")
	flag.StringVar(&o.logs, "logs", ".flow-lab/bench-logs", "where the runs' JSON logs are kept")
	flag.StringVar(&o.flow, "flow", "", "the flow binary (default: built from ./cmd/flow into -logs)")
	flag.StringVar(&o.from, "from", "", "START.jsonl,STOP.jsonl: analyse saved logs, run nothing")
	flag.StringVar(&o.md, "md", "", "also write the figures as Markdown to this file")
	flag.IntVar(&o.runs, "runs", 1, "start/stop cycles on the lab")
	shardList := flag.String("shards", "1", "replication datasources of the lab; a list (1,2,4,8) benchmarks a fresh lab of each size in turn")
	flag.BoolVar(&o.keep, "keep", false, "leave the lab running at the end")
	flag.DurationVar(&o.lockWait, "lock-wait", 30*time.Minute, "how long to wait for the lab lock")
	flag.DurationVar(&o.min, "min", 50*time.Millisecond, "hide nested steps shorter than this in the step tables")
	flag.DurationVar(&o.drill, "drill", 2*time.Second, "how long the drill writes on the standby between start and stop")
	flag.IntVar(&o.switchovers, "switchovers", 1, "after the cycles, planned switchovers there and back (dr-switchover.yaml) with a writer following the primary (0: none)")
	flag.IntVar(&o.rate, "primary-rate", 50, "rows per second written on the primary during start, the drill and stop (0: none)")
	flag.Parse()
	for _, f := range strings.Split(*shardList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "flashback: -shards %q: want shard counts of 1 or more, separated by commas (1,2,4,8)\n", *shardList)
			os.Exit(2)
		}
		o.shards = append(o.shards, n)
	}
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "flashback: -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.from != "" {
		err = analyseSaved(o)
	} else {
		err = bench(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashback: %v\n", err)
		os.Exit(1)
	}
}

// progress prints a line on standard error.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// analyseSaved reads a start and a stop log written earlier.
func analyseSaved(o options) error {
	files := strings.Split(o.from, ",")
	c := &Cycle{N: 1}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		run, err := ParseRun(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		p := newPhase(run.Playbook, run, time.Time{}, time.Time{}, 0, 0)
		if i == 0 {
			c.Start = p
		} else {
			c.Stop = p
		}
	}
	return report(o, []*Scale{{Cycles: []*Cycle{c}, Env: "saved logs " + o.from}})
}

// report prints the tables and writes the Markdown file: the step tables
// and shares of the last cycle of the last shard count, every cycle, and,
// for more than one shard count, the scaling table.
func report(o options, scales []*Scale) error {
	last := scales[len(scales)-1]
	var detail *Cycle
	if len(last.Cycles) > 0 {
		detail = last.Cycles[len(last.Cycles)-1]
	}
	if detail != nil {
		for _, p := range []*Phase{detail.Start, detail.Stop} {
			if p != nil {
				writeSteps(os.Stdout, p, o.min)
			}
		}
		for _, p := range []*Phase{detail.Start, detail.Stop} {
			if p != nil {
				writeShares(os.Stdout, p)
			}
		}
	}
	for _, sc := range scales {
		if len(scales) > 1 {
			fmt.Printf("\n%d shard(s):", sc.Shards)
		}
		writeCycles(os.Stdout, sc.Cycles)
	}
	writeScaling(os.Stdout, scales)
	writeFloor(os.Stdout, scales, false)
	for _, sc := range scales {
		writeSwitchovers(os.Stdout, sc.Switches)
	}
	if o.md == "" {
		return nil
	}
	var b bytes.Buffer
	writeMarkdown(&b, scales, detail, o.min)
	for _, sc := range scales {
		writeSwitchovers(&b, sc.Switches)
	}
	return os.WriteFile(o.md, b.Bytes(), 0o644)
}

// labLock takes the machine-wide lab lock and stops a lab a crashed holder
// recorded; release removes the record (unless the lab is kept) and unlocks.
func labLock(ctx context.Context, o options, flow string) (release func(keepRecord bool), err error) {
	path := filepath.Join(os.TempDir(), "flow-drlab.lock")
	fl := flock.New(path)
	if ok, _ := fl.TryLock(); !ok {
		progress("waiting up to %s for the lab lock %s (lab tests are running)", o.lockWait, path)
		lctx, cancel := context.WithTimeout(ctx, o.lockWait)
		defer cancel()
		ok, err := fl.TryLockContext(lctx, 500*time.Millisecond)
		if err != nil || !ok {
			return nil, fmt.Errorf("the lab lock %s was not free within %s: %v", path, o.lockWait, err)
		}
	}
	release = func(keepRecord bool) {
		if !keepRecord {
			_ = os.Remove(path + ".dir")
		}
		_ = fl.Unlock()
	}
	if b, err := os.ReadFile(path + ".dir"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		old := strings.TrimSpace(string(b))
		if _, err := os.Stat(filepath.Join(old, "lab.json")); err == nil {
			progress("stopping the lab a previous holder of the lock left in %s", old)
			if _, err := runFlow(ctx, downTimeout, flow, nil, "lab", "down", "--dir", old); err != nil {
				release(false)
				return nil, fmt.Errorf("stop the lab left in %s: %w", old, err)
			}
		}
	}
	abs, err := filepath.Abs(o.dir)
	if err == nil {
		err = os.WriteFile(path+".dir", []byte(abs), 0o600)
	}
	if err != nil {
		release(false)
		return nil, err
	}
	return release, nil
}

// runFlow runs flow with args, its standard error passed through (or to
// errw), and returns its standard output.
func runFlow(ctx context.Context, timeout time.Duration, flow string, errw io.Writer, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, flow, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if errw != nil {
		cmd.Stderr = errw
	}
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return out.Bytes(), fmt.Errorf("flow %s: no answer within %s", strings.Join(args, " "), timeout)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("flow %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 20))
	}
	return out.Bytes(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var reRows = regexp.MustCompile(`"rows":\s*(\d+)`)

// write runs `flow lab write` and returns the rows written.
func write(ctx context.Context, o options, flow, cluster string, d time.Duration) (int, error) {
	secs := int(d.Round(time.Second).Seconds())
	if secs < 1 {
		secs = 1
	}
	out, err := runFlow(ctx, d+time.Minute, flow, nil, "lab", "write", "--dir", o.dir, "--cluster", cluster,
		"--seconds", strconv.Itoa(secs), "--max-rows", "100000", "--json")
	if err != nil {
		return 0, err
	}
	m := reRows.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("flow lab write printed no row count: %s", out)
	}
	return strconv.Atoi(string(m[1]))
}

// primaryLoad writes on the primary, in back-to-back bounded one-second
// batches of rate rows, until stop is called; stop returns the rows written
// and the first error (calling it again returns the same).
func primaryLoad(ctx context.Context, o options, flow string) (stop func() (int, error)) {
	if o.rate <= 0 {
		return func() (int, error) { return 0, nil }
	}
	var quit atomic.Bool
	type result struct {
		rows int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for !quit.Load() && ctx.Err() == nil {
			out, err := runFlow(ctx, time.Minute, flow, nil, "lab", "write", "--dir", o.dir, "--cluster", "primary",
				"--seconds", "1", "--rate", strconv.Itoa(o.rate), "--max-rows", strconv.Itoa(o.rate), "--json")
			if m := reRows.FindSubmatch(out); m != nil {
				n, _ := strconv.Atoi(string(m[1]))
				res.rows += n
			}
			if err != nil {
				res.err = err
				break
			}
		}
		done <- res
	}()
	var once sync.Once
	var r result
	return func() (int, error) {
		once.Do(func() {
			quit.Store(true)
			r = <-done
		})
		return r.rows, r.err
	}
}

// playbook runs one playbook with JSON logs into logPath and measures the
// process.
func playbook(ctx context.Context, o options, flow, name, logPath string) (*Phase, error) {
	ctx, cancel := context.WithTimeout(ctx, playbookTimeout)
	defer cancel()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var stderr bytes.Buffer
	abs, _ := filepath.Abs(o.dir)
	cmd := exec.CommandContext(ctx, flow, "run", filepath.Join("playbooks", "flashback-"+name+".yaml"),
		"-c", filepath.Join(o.dir, "flashback.ini"), "--state-dir", filepath.Join(o.dir, "state"),
		"--var", "redo_path="+filepath.Join(abs, "redo.json"), "--yes", "--log-format", "json")
	cmd.Stdout = f
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	werr := cmd.Wait()
	t1 := time.Now()
	if werr != nil {
		return nil, fmt.Errorf("flashback-%s: %v (log %s)\n%s", name, werr, logPath, tail(stderr.String(), 20))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	run, err := ParseRun(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", logPath, err)
	}
	st := cmd.ProcessState
	return newPhase(name, run, t0, t1, st.UserTime(), st.SystemTime()), nil
}

// buildFlow builds ./cmd/flow into the log folder.
func buildFlow(ctx context.Context, o options) (string, error) {
	out := filepath.Join(o.logs, "flow")
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/flow")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/flow: %w", err)
	}
	return filepath.Abs(out)
}

// bench builds flow, takes the lab lock and measures each shard count on a
// fresh lab of its own.
func bench(ctx context.Context, o options) (err error) {
	if _, err := os.Stat(filepath.Join("playbooks", "flashback-start.yaml")); err != nil {
		return errors.New("run from the repository's top folder (playbooks/flashback-start.yaml not found)")
	}
	if err := os.MkdirAll(o.logs, 0o755); err != nil {
		return err
	}
	flow := o.flow
	if flow == "" {
		progress("building ./cmd/flow")
		if flow, err = buildFlow(ctx, o); err != nil {
			return err
		}
	}
	release, err := labLock(ctx, o, flow)
	if err != nil {
		return err
	}
	kept := false
	defer func() { release(kept) }()
	var scales []*Scale
	for i, n := range o.shards {
		keep := o.keep && i == len(o.shards)-1
		sc, err := benchShards(ctx, o, flow, n, keep)
		if sc != nil {
			scales = append(scales, sc)
		}
		kept = keep && sc != nil && sc.Up > 0
		if err != nil {
			if len(scales) > 0 {
				_ = report(o, scales)
			}
			return err
		}
	}
	return report(o, scales)
}

// Scale is what one shard count measured: the lab's start-up, its memory
// and the cycles on it.
type Scale struct {
	Shards int
	// Up is how long `flow lab up` took; Verify the flashback-verify run
	// on the fresh lab (its checks only, no change).
	Up, Verify time.Duration
	// AfterUp is the lab's processes once up; PeakPSS and PeakRSS the
	// largest memory seen during the cycles (clone instances included).
	AfterUp          labReading
	PeakPSS, PeakRSS uint64
	Cycles           []*Cycle
	// Floor is one clone and one restart timed alone after the cycles.
	Floor *Floor
	// Switches are the planned switchovers after the floor.
	Switches []Switch
	// Env describes the machine and the run for the report.
	Env string
}

// benchShards measures one shard count on a fresh lab; the lab goes down at
// the end (removed when all went well) unless keep.
func benchShards(ctx context.Context, o options, flow string, shards int, keep bool) (sc *Scale, err error) {
	if _, err := os.Stat(filepath.Join(o.dir, "lab.json")); err == nil {
		progress("removing the previous lab in %s", o.dir)
		if _, err := runFlow(ctx, downTimeout, flow, nil, "lab", "down", "--dir", o.dir, "--remove"); err != nil {
			return nil, err
		}
	}
	sc = &Scale{Shards: shards}
	progress("flow lab up --dir %s --shards %d", o.dir, shards)
	t0 := time.Now()
	defer func() {
		if keep {
			progress("-keep: the lab keeps running in %s (flow lab down --dir %s --remove stops it)", o.dir, o.dir)
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), downTimeout)
		defer cancel()
		args := []string{"lab", "down", "--dir", o.dir}
		if err == nil {
			args = append(args, "--remove")
		}
		progress("flow %s", strings.Join(args, " "))
		if _, derr := runFlow(dctx, downTimeout, flow, nil, args...); derr != nil && err == nil {
			err = derr
		}
	}()
	if _, err := runFlow(ctx, upTimeout, flow, io.Discard, "lab", "up", "--dir", o.dir, "--shards", strconv.Itoa(shards)); err != nil {
		return nil, err
	}
	sc.Up = time.Since(t0)
	sampler := newLabSampler(o.dir, 500*time.Millisecond)
	defer sampler.Stop()
	sc.AfterUp = sampler.Now()
	sampler.ResetPeak()
	progress("lab of %d shard(s) up in %s: %d processes, %s PSS (%s RSS summed)", shards, sc.Up.Round(time.Millisecond),
		sc.AfterUp.Procs, gb(sc.AfterUp.PSS), gb(sc.AfterUp.RSS))
	defer func() {
		r := sampler.Now()
		sc.PeakPSS, sc.PeakRSS = r.PeakPSS, r.PeakRSS
		sc.Env = environment(sc, o)
	}()

	progress("%d shard(s): flashback-verify", shards)
	vp, err := playbook(ctx, o, flow, "verify", filepath.Join(o.logs, fmt.Sprintf("shards%d-verify.jsonl", shards)))
	if err != nil {
		return sc, err
	}
	sc.Verify = vp.ProcEnd.Sub(vp.ProcStart)
	progress("%d shard(s): verify took %s", shards, sc.Verify.Round(time.Millisecond))
	measure := func(c *Cycle, name string) (*Phase, error) {
		r0 := sampler.Now()
		p, err := playbook(ctx, o, flow, name, filepath.Join(o.logs, fmt.Sprintf("shards%d-cycle%d-%s.jsonl", shards, c.N, name)))
		if err != nil {
			return nil, err
		}
		r1 := sampler.Now()
		p.LabCPU, p.Busy = r1.CPU-r0.CPU, r1.Busy-r0.Busy
		return p, nil
	}
	for i := 1; i <= o.runs; i++ {
		c := &Cycle{N: i}
		rows, err := write(ctx, o, flow, "primary", 2*time.Second)
		if err != nil {
			return sc, err
		}
		progress("%d shard(s), cycle %d: %d rows written on the primary; flashback-start (the primary takes %d rows/s meanwhile)", shards, i, rows, o.rate)
		stopLoad := primaryLoad(ctx, o, flow)
		defer stopLoad() // on an early return, the load stops before the lab goes down
		if c.Start, err = measure(c, "start"); err != nil {
			return sc, err
		}
		progress("%d shard(s), cycle %d: start took %s; drill writes on the standby", shards, i, c.Start.Shares.Wall.Round(time.Millisecond))
		drill, err := write(ctx, o, flow, "standby", o.drill)
		if err != nil {
			return sc, err
		}
		progress("%d shard(s), cycle %d: %d drill rows; flashback-stop", shards, i, drill)
		c.Stop, err = measure(c, "stop")
		loadRows, loadErr := stopLoad()
		if err != nil {
			return sc, err
		}
		if loadErr != nil {
			return sc, fmt.Errorf("cycle %d: writes on the primary failed during the drill: %w", i, loadErr)
		}
		progress("%d shard(s), cycle %d: stop took %s (%d rows written on the primary meanwhile); flow lab check", shards, i, c.Stop.Shares.Wall.Round(time.Millisecond), loadRows)
		sc.Cycles = append(sc.Cycles, c)
		if _, cerr := runFlow(ctx, checkTimeout, flow, nil, "lab", "check", "--dir", o.dir, "--wait", "2m"); cerr != nil {
			c.Check = "FAILED"
			progress("cycle %d: the lab does not check out after stop: %v", i, cerr)
			return sc, fmt.Errorf("%d shard(s), cycle %d: lab check after stop failed; the figures above are of a run that did not end clean", shards, i)
		}
		c.Check = "ok"
	}
	progress("%d shard(s): the floor: one clone and one restart of a standby slave, timed alone", shards)
	if sc.Floor, err = measureFloor(ctx, o.dir); err != nil {
		return sc, err
	}
	progress("%d shard(s): one clone %s (%d MiB), one restart %s (shutdown %s, start %s)", shards, sc.Floor.Clone.Round(time.Millisecond),
		sc.Floor.Bytes>>20, (sc.Floor.Shutdown + sc.Floor.Start).Round(time.Millisecond), sc.Floor.Shutdown.Round(time.Millisecond), sc.Floor.Start.Round(time.Millisecond))
	if o.switchovers > 0 {
		progress("%d shard(s): %d planned switchover(s) there and back with a writer following the primary", shards, o.switchovers)
		sc.Switches, err = measureSwitchovers(ctx, o, flow, o.switchovers)
	}
	return sc, err
}

// gb formats bytes as gigabytes (10^9, as `flow lab up` prints them).
func gb(b uint64) string { return fmt.Sprintf("%.2f GB", float64(b)/1e9) }

// environment describes the machine and one shard count's run for the report.
func environment(sc *Scale, o options) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("Measured %s on %s: %d CPU cores (GOMAXPROCS %d), %s; lab of %d shard(s) up in %.1f s; %d cycle(s); "+
		"drill writes on the standby for %s; the primary takes %d rows/s during start, the drill and stop.",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runtime.GOMAXPROCS(0), memTotal(), sc.Shards, sc.Up.Seconds(), o.runs, o.drill, o.rate)
}

// memTotal reads MemTotal from /proc/meminfo.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%.0f GB RAM", float64(kb)/1024/1024)
		}
	}
	return "memory unknown"
}
