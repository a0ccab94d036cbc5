package playbooks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/journal"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
	"github.com/go-sql-driver/mysql"
)

// The crash sweep (issue #6): for every step boundary of flashback-start
// and flashback-stop, the real flow binary is started, SIGKILLed right
// after the JSON event stream says that step started, and the run is taken
// up again with `flow resume`; then the drill cycle is completed and the
// same independent checks as the end-to-end test must hold.
//
// `go test ./playbooks/` runs a fixed sample of kill points (chosen by step
// name), a start point and a stop point per trial (trialChains);
// FLOW_CRASH_SWEEP=full runs every one, one per trial (`make crash-test`);
// FLOW_CRASH_MATCH=REGEXP keeps the kill points whose "start|stop NAME KEY"
// matches, FLOW_CRASH_SKIP=REGEXP drops those whose string matches (a
// later run can take the points an earlier one did not); FLOW_CRASH_SUMMARY=PATH writes a Markdown summary there;
// FLOW_CRASH_KEEP=DIR keeps every flow process's output (events and
// errors) in DIR.

// Bounds of the harness's waits.
const (
	// flowTimeout bounds one flow process (a whole start or stop takes
	// about a minute on the lab).
	flowTimeout = 10 * time.Minute
	// buildTimeout bounds `go build` of the flow binary.
	buildTimeout = 5 * time.Minute
	// healthyWait bounds the wait for the lab to settle before a trial.
	healthyWait = 20 * time.Second
	// resetTimeout bounds stopping and removing a lab that a failed trial
	// left in an unknown state.
	resetTimeout = 5 * time.Minute
)

// flowEvent is one line of flow's JSON event stream (the fields the
// harness reads).
type flowEvent struct {
	Event    string `json:"event"`
	Key      string `json:"key"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	Mutates  bool   `json:"mutates"`
	RunID    string `json:"run_id"`
	Text     string `json:"text"`
	Error    string `json:"error"`
	Decision string `json:"decision"`
	Why      string `json:"why"`
	Donor    string `json:"donor"`
	Msg      string `json:"msg"`
}

// flowResult is one flow process as the harness saw it.
type flowResult struct {
	Args []string
	// Code is the exit code: -1 when a signal ended the process, -2 when
	// it could not be started.
	Code int
	// Killed says the harness sent SIGKILL; At is the event it reacted to.
	Killed bool
	At     flowEvent
	RunID  string
	Events []flowEvent
	Stdout string
	Stderr string
	Took   time.Duration
}

// errorText is flow's final error from its standard error, without the
// "resuming run" preamble and the closing "flow status / flow resume"
// hint (at most 12 lines).
func (r *flowResult) errorText() string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "flow: resuming run ") || (strings.HasPrefix(l, "flow: run ") && strings.Contains(l, "flow status")) {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > 12 {
		keep = keep[:12]
	}
	return strings.Join(keep, "\n")
}

// harness drives the flow binary against the shared lab.
type harness struct {
	bin   string // the flow binary built for this test
	pbDir string // copies of the playbooks, taken when the test started
	lab   *drlab.Lab
	// leaks names the flow commands whose output held a secret of the
	// lab's config.
	leaks []string
	seq   int // flow processes run (FLOW_CRASH_KEEP names their logs)
}

// newHarness builds flow, copies the playbooks (so that an edit in the
// work tree during a long sweep cannot make `flow resume` refuse a changed
// playbook) and takes the package's lab.
func newHarness(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the crash and fault tests need the DR lab")
	}
	h := &harness{bin: buildFlow(t), pbDir: copyPlaybooks(t)}
	h.lab = drlabtest.Lab(t, 1)
	return h
}

// buildFlow builds cmd/flow into a temporary folder.
func buildFlow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flow")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/flow")
	cmd.Dir = ".." // go test runs in the package folder; the module root is above
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/flow: %v\n%s", err, out)
	}
	return bin
}

// copyPlaybooks copies the playbooks of this folder, and the headers they
// use (lib/), into a temporary one.
func copyPlaybooks(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "playbooks")
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no playbook in %s: %v", mustGetwd(t), err)
	}
	headers, err := filepath.Glob("lib/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, headers...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// flow runs the flow binary with args. watch, when not nil, sees every
// event as it arrives, with flow's pid; when it returns true the harness
// SIGKILLs flow (once). The process is bounded by flowTimeout.
func (h *harness) flow(ctx context.Context, args []string, watch func(ev flowEvent, pid int) bool) *flowResult {
	ctx, cancel := context.WithTimeout(ctx, flowTimeout)
	defer cancel()
	res := &flowResult{Args: args}
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Dir = filepath.Dir(h.pbDir)
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		res.Code, res.Stderr = -2, err.Error()
		return res
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Code, res.Stderr = -2, err.Error()
		return res
	}
	var stdout strings.Builder
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		stdout.WriteString(line)
		stdout.WriteByte('\n')
		var ev flowEvent
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		res.Events = append(res.Events, ev)
		if ev.Event == "run_started" && res.RunID == "" {
			res.RunID = ev.RunID
		}
		if watch != nil && !res.Killed && watch(ev, cmd.Process.Pid) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			res.Killed, res.At = true, ev
		}
	}
	_ = cmd.Wait()
	res.Took = time.Since(start)
	res.Code = cmd.ProcessState.ExitCode()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if dir := os.Getenv("FLOW_CRASH_KEEP"); dir != "" {
		h.seq++
		name := fmt.Sprintf("%04d-%s-%s.log", h.seq, args[0], res.RunID)
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, name), []byte("flow "+strings.Join(args, " ")+"\n"+res.Stdout+"\n--- stderr\n"+res.Stderr), 0o644)
	}
	if cfg, err := config.Load(h.lab.IniPath()); err == nil {
		for _, sec := range cfg.Secrets() {
			if strings.Contains(res.Stdout, sec) || strings.Contains(res.Stderr, sec) {
				h.leaks = append(h.leaks, "flow "+strings.Join(args[:2], " "))
				break
			}
		}
	}
	if res.RunID == "" {
		// flow prints `flow resume ID` hints and the id in its errors
		if m := regexp.MustCompile(`\b\d{8}T\d{6}Z-[0-9a-f]+\b`).FindString(res.Stderr); m != "" {
			res.RunID = m
		}
	}
	return res
}

// runArgs is `flow run PLAYBOOK` on the lab with the harness's settings.
func (h *harness) runArgs(playbook, state, redo string) []string {
	return []string{"run", filepath.Join(h.pbDir, playbook), "-c", h.lab.IniPath(), "--var", "redo_path=" + redo,
		"--state-dir", state, "--log-format", "json", "--yes"}
}

// resumeArgs is `flow resume RUN`.
func resumeArgs(runID, state string) []string {
	return []string{"resume", runID, "--state-dir", state, "--log-format", "json", "--yes"}
}

// cycleDirs are one drill cycle's state folder (journals) and redo record.
type cycleDirs struct{ state, redo string }

func newCycleDirs(t *testing.T) cycleDirs {
	d := t.TempDir()
	return cycleDirs{state: filepath.Join(d, "state"), redo: filepath.Join(d, "redo.json")}
}

// primaryWriter keeps writing through the primary router, as the
// end-to-end test does, until stopped.
type primaryWriter struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	rows   int
	err    error
}

func startPrimaryWrites(lab *drlab.Lab) *primaryWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &primaryWriter{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			res, err := lab.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltPrimary, Duration: time.Second, MaxRows: 50, Rate: 50})
			w.mu.Lock()
			if res != nil {
				w.rows += res.Rows
			}
			if err != nil && ctx.Err() == nil && w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				return
			}
		}
	}()
	return w
}

// stop ends the writes and returns the rows acknowledged and the first
// error.
func (w *primaryWriter) stop() (int, error) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rows, w.err
}

// primaryRows counts the primary rows on the primary master of shard 0.
func primaryRows(ctx context.Context, lab *drlab.Lab) (int, error) {
	db, err := lab.OpenNode(lab.Master(drlab.ClusterPrimary, 0))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = db.QueryRowContext(qctx, "SELECT COUNT(*) FROM flowlab.seq WHERE cluster = 'primary'").Scan(&n)
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1049 || me.Number == 1146) {
		return 0, nil // no write yet on a fresh lab: no schema or table
	}
	return n, err
}

// waitHealthy polls the lab until it is in its normal state (see
// healthProblems), bounded by healthyWait; it returns what is still wrong.
func waitHealthy(lab *drlab.Lab) []string { return waitHealthyAs(lab, drlab.ClusterPrimary) }

// ensureHealthy makes sure the lab is in its normal state before a trial:
// when it is not, the lab is stopped and removed and a fresh one built.
func (h *harness) ensureHealthy(t *testing.T) {
	t.Helper()
	h.lab = drlabtest.Lab(t, 1) // starts whatever a fault stopped
	if problems := waitHealthy(h.lab); len(problems) > 0 {
		h.reset(t, strings.Join(problems, "; "))
		if problems := waitHealthy(h.lab); len(problems) > 0 {
			t.Fatalf("a fresh lab is not healthy:\n%s", strings.Join(problems, "\n"))
		}
	}
}

// reset stops and removes the lab and builds a fresh one in its folder.
func (h *harness) reset(t *testing.T, why string) {
	t.Helper()
	t.Logf("resetting the lab: %s", firstLine(why))
	ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
	defer cancel()
	if err := h.lab.Down(ctx, true); err != nil {
		t.Fatalf("resetting the lab: %v", err)
	}
	h.lab = drlabtest.Lab(t, 1)
}

// killPoint is a step instance at whose start flow is killed.
type killPoint struct {
	Playbook string // "start" or "stop"
	Index    int    // position among the playbook's kill points (1-based)
	Key      string
	Name     string
	Type     string
	Mutates  bool
	// Statements are what the step sent in the reference run.
	Statements []string
}

func (k killPoint) String() string {
	return fmt.Sprintf("%s #%d %q (%s, key %s)", k.Playbook, k.Index, k.label(), k.Type, k.Key)
}

// label is the step's name; an unnamed step (named after its type) gets
// the start of its first statement too.
func (k killPoint) label() string {
	if k.Name == k.Type && len(k.Statements) > 0 {
		st := strings.Join(strings.Fields(k.Statements[0]), " ")
		if len(st) > 60 {
			st = st[:60] + "…"
		}
		return k.Name + ": " + st
	}
	return k.Name
}

// reference is a normal drill cycle: the kill points and group keys it saw.
type reference struct {
	start, stop []killPoint
	groups      map[string]string // group name → key (stop and start)
	took        time.Duration
}

// killPoints lists the typed steps (not group or include) a run started,
// in order, once per key, with the statements each sent.
func killPoints(playbook string, r *flowResult, groups map[string]string) []killPoint {
	var out []killPoint
	idx := map[string]int{}
	for _, ev := range r.Events {
		switch {
		case ev.Event == "step_started" && (ev.Type == "group" || ev.Type == "include"):
			if _, ok := groups[ev.Name]; !ok {
				groups[ev.Name] = ev.Key
			}
		case ev.Event == "step_started" && ev.Key != "":
			if _, seen := idx[ev.Key]; seen {
				continue
			}
			idx[ev.Key] = len(out)
			out = append(out, killPoint{Playbook: playbook, Index: len(out) + 1, Key: ev.Key, Name: ev.Name, Type: ev.Type, Mutates: ev.Mutates})
		case ev.Event == "statement":
			if i, ok := idx[ev.Key]; ok {
				out[i].Statements = append(out[i].Statements, ev.Text)
			}
		}
	}
	return out
}

// referenceCycle runs start, drill writes and stop normally on a healthy
// lab and checks the result: the kill points come from it.
func (h *harness) referenceCycle(t *testing.T) *reference {
	t.Helper()
	h.ensureHealthy(t)
	ctx := context.Background()
	began := time.Now()
	d := newCycleDirs(t)
	base, err := primaryRows(ctx, h.lab)
	if err != nil {
		t.Fatalf("primary rows: %v", err)
	}
	w := startPrimaryWrites(h.lab)
	s := h.flow(ctx, h.runArgs("flashback-start.yaml", d.state, d.redo), nil)
	if s.Code != 0 {
		w.stop()
		t.Fatalf("reference start: exit %d\n%s", s.Code, s.errorText())
	}
	if err := drillWrites(ctx, h.lab); err != nil {
		w.stop()
		t.Fatalf("reference cycle: %v", err)
	}
	// the checks can fail: during the drill they must see it
	during := strings.Join(restoredProblems(ctx, h.lab, d.redo, 0, 0), "\n")
	for _, want := range []string{"drill rows", "drill marker", "standby master", "disabled", "redo record"} {
		if !strings.Contains(during, want) {
			t.Errorf("during the drill the independent checks do not report %q:\n%s", want, during)
		}
	}
	st := h.flow(ctx, h.runArgs("flashback-stop.yaml", d.state, d.redo), nil)
	rows, werr := w.stop()
	if st.Code != 0 {
		t.Fatalf("reference stop: exit %d\n%s", st.Code, st.errorText())
	}
	if werr != nil {
		t.Fatalf("primary writes during the reference cycle: %v", werr)
	}
	if problems := restoredProblems(ctx, h.lab, d.redo, base+rows, checkWait); len(problems) > 0 {
		t.Fatalf("the reference cycle does not pass the checks:\n%s", strings.Join(problems, "\n"))
	}
	ref := &reference{groups: map[string]string{}, took: time.Since(began)}
	ref.start = killPoints("start", s, ref.groups)
	ref.stop = killPoints("stop", st, ref.groups)
	t.Logf("reference cycle in %s (start %s, stop %s): %d kill points in start, %d in stop",
		ref.took.Round(time.Second), s.Took.Round(time.Second), st.Took.Round(time.Second), len(ref.start), len(ref.stop))
	return ref
}

// drillWrites writes the drill's rows through the standby router: they
// must be accepted (start opened the standby for writes).
func drillWrites(ctx context.Context, lab *drlab.Lab) error {
	res, err := lab.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltStandby, Duration: 2 * time.Second, MaxRows: 100})
	if err != nil {
		return fmt.Errorf("drill writes on the standby: %v", err)
	}
	if res.Rows == 0 {
		return fmt.Errorf("drill writes on the standby: no row written")
	}
	return nil
}

// samplePoints picks the kill points `go test` runs, by step name: in
// start the detach, the point of no return, the first clone and the redo
// record of the snapshots; in stop the first shutdown of a standby node,
// the first snapshot swap and the re-attach's `dynamic add dataserver`. It
// returns the names it could not find too.
// pickPoint appends to out the first point of list that ok accepts, or
// what to missing when none does.
func pickPoint(out *[]killPoint, missing *[]string, what string, list []killPoint, ok func(killPoint) bool) {
	for _, k := range list {
		if ok(k) {
			*out = append(*out, k)
			return
		}
	}
	*missing = append(*missing, what)
}

func samplePoints(ref *reference) (out []killPoint, missing []string) {
	pick := func(what string, list []killPoint, ok func(killPoint) bool) {
		pickPoint(&out, &missing, what, list, ok)
	}
	shutdown := regexp.MustCompile(`^shutdown instance \S+$`)
	pick(`start "Step 08 remove standby cluster"`, ref.start, func(k killPoint) bool { return k.Name == "Step 08 remove standby cluster" })
	pick(`start "Step 12 set read write"`, ref.start, func(k killPoint) bool { return k.Name == "Step 12 set read write" })
	pick(`start "Step 16 clone …"`, ref.start, func(k killPoint) bool { return strings.HasPrefix(k.Name, "Step 16 clone ") })
	pick(`start "Step 16 record the snapshots…"`, ref.start, func(k killPoint) bool { return strings.HasPrefix(k.Name, "Step 16 record the snapshots") })
	pick(`stop "shutdown instance …"`, ref.stop, func(k killPoint) bool { return shutdown.MatchString(k.Name) })
	pick(`stop "swap the snapshot …"`, ref.stop, func(k killPoint) bool { return strings.HasPrefix(k.Name, "swap the snapshot ") })
	reattach, ok := ref.groups["re-attach the standby cluster"]
	pick(`stop "re-attach the standby cluster" > dynamic add dataserver`, ref.stop, func(k killPoint) bool {
		if !ok || !strings.HasPrefix(k.Key, reattach+" > ") {
			return false
		}
		for _, s := range k.Statements {
			if strings.Contains(s, "dynamic add dataserver") {
				return true
			}
		}
		return false
	})
	return out, missing
}

// trialResult is the outcome of one kill point.
type trialResult struct {
	Point  killPoint
	Passed bool
	// Failure says what failed (empty when it passed).
	Failure string
	// Notes say what happened: the state at the kill, resume's decision.
	Notes []string
	Took  time.Duration
}

// TestCrashSweep: the SIGKILL sweep (see the comment at the top of this
// file). Each kill point is a subtest; a failed one is reported with what
// failed and the lab is rebuilt, and the sweep goes on.
func TestCrashSweep(t *testing.T) {
	h := newHarness(t)
	began := time.Now()
	ref := h.referenceCycle(t)
	var points []killPoint
	mode := os.Getenv("FLOW_CRASH_SWEEP")
	if mode == "full" {
		points = append(append(points, ref.start...), ref.stop...)
	} else {
		var missing []string
		points, missing = samplePoints(ref)
		for _, m := range missing {
			t.Errorf("sample kill point %s: no step of that name in the reference run", m)
		}
		mode = "sample"
	}
	points = selectPoints(t, points, "FLOW_CRASH_MATCH", true)
	points = selectPoints(t, points, "FLOW_CRASH_SKIP", false)
	var results []trialResult
	n := 0
	for _, chain := range trialChains(points, mode == "sample") {
		var names []string
		for _, k := range chain {
			names = append(names, fmt.Sprintf("%s/%03d_%s", k.Playbook, k.Index, strings.ReplaceAll(k.label(), "/", "_")))
		}
		t.Run(strings.Join(names, "+"), func(t *testing.T) {
			var rs []trialResult
			defer func() {
				if rs == nil { // the trial stopped early (t.Fatal)
					for _, k := range chain {
						rs = append(rs, trialResult{Point: k, Failure: "the trial stopped early: see the test log"})
					}
				}
				results = append(results, rs...)
			}()
			rs = h.trial(t, chain)
			failed := false
			for _, res := range rs {
				n++
				status := "PASS"
				if !res.Passed {
					status, failed = "FAIL", true
				}
				t.Logf("[%d/%d] %s %s in %s; %s", n, len(points), status, res.Point, res.Took.Round(time.Second), strings.Join(res.Notes, "; "))
				if !res.Passed {
					t.Errorf("kill point %s: %s", res.Point, res.Failure)
				}
			}
			if failed {
				h.reset(t, "after the failed kill point(s) "+strings.Join(names, ", "))
			}
		})
	}
	passed := 0
	for _, r := range results {
		if r.Passed {
			passed++
		}
	}
	t.Logf("crash sweep (%s): %d kill points in start, %d in stop; %d run, %d passed, %d failed; %s in all",
		mode, len(ref.start), len(ref.stop), len(results), passed, len(results)-passed, time.Since(began).Round(time.Second))
	if path := os.Getenv("FLOW_CRASH_SUMMARY"); path != "" {
		if err := writeSummary(path, mode, ref, results, time.Since(began)); err != nil {
			t.Errorf("writing the summary: %v", err)
		}
	}
}

// installPluginStep is the name prefix of flashback-start's conditional
// step that installs the clone plugin on a donor that lacks it.
const installPluginStep = "Step 14 install plugin clone on "

// prepareKillPoint puts the lab in the state a kill point's step needs to
// run at all. The reference cycle runs on a fresh lab; steps it ran only
// because of that need the state back: the clone plugin stays installed
// on a donor once a start installed it, so for its install step the
// plugin is uninstalled from that node first.
func prepareKillPoint(ctx context.Context, lab *drlab.Lab, k killPoint) error {
	host, ok := strings.CutPrefix(k.Name, installPluginStep)
	if !ok || k.Playbook != "start" {
		return nil
	}
	for _, n := range lab.Nodes {
		if n.Cluster != drlab.ClusterStandby || n.Host != host {
			continue
		}
		db, err := lab.OpenNode(n)
		if err != nil {
			return err
		}
		defer db.Close()
		var installed int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM INFORMATION_SCHEMA.PLUGINS WHERE PLUGIN_NAME = 'clone'").Scan(&installed); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if installed == 0 {
			return nil
		}
		// one session: no GTID of this node's own, whatever the server logs
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, q := range []string{"SET SESSION sql_log_bin = 0", "UNINSTALL PLUGIN clone"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %s: %w", n, q, err)
			}
		}
		return nil
	}
	return fmt.Errorf("no standby node at %s", host)
}

// selectPoints keeps the kill points whose "start|stop NAME KEY" matches
// the regular expression in the environment variable env (keep) or does
// not match it (!keep); an unset variable keeps every point.
func selectPoints(t *testing.T, points []killPoint, env string, keep bool) []killPoint {
	re := os.Getenv(env)
	if re == "" {
		return points
	}
	m, err := regexp.Compile(re)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	var kept []killPoint
	for _, k := range points {
		if m.MatchString(k.Playbook+" "+k.Name+" "+k.Key) == keep {
			kept = append(kept, k)
		}
	}
	return kept
}

// trialChains groups the kill points into trials. In the sample (pair),
// each start point is paired with a stop point: the start killed at its
// point and resumed, the drill's writes, then the stop killed at its point
// and resumed, and the cycle checked once; a pair saves the normal stop of
// the start point's trial and the normal start of the stop point's, and
// every point is still killed and resumed. The full sweep runs one point
// per trial, so each result stands alone.
func trialChains(points []killPoint, pair bool) [][]killPoint {
	var out [][]killPoint
	if !pair {
		for _, k := range points {
			out = append(out, []killPoint{k})
		}
		return out
	}
	var starts, stops []killPoint
	for _, k := range points {
		if k.Playbook == "start" {
			starts = append(starts, k)
		} else {
			stops = append(stops, k)
		}
	}
	for i := 0; i < len(starts) || i < len(stops); i++ {
		var c []killPoint
		if i < len(starts) {
			c = append(c, starts[i])
		}
		if i < len(stops) {
			c = append(c, stops[i])
		}
		out = append(out, c)
	}
	return out
}

// trial runs a chain of kill points (a start point, a stop point, or a
// start point then a stop point) on a healthy lab: each playbook (after a
// normal start when the chain begins with a stop point) is killed at its
// step's start and resumed; after a start point the drill's writes go to
// the standby, and the cycle ends with a normal stop unless a stop point
// follows; then the cycle is checked. It returns one result per point
// (a failure fails every point of the chain, naming where it happened).
func (h *harness) trial(t *testing.T, chain []killPoint) (res []trialResult) {
	h.ensureHealthy(t)
	began := time.Now()
	res = make([]trialResult, len(chain))
	for i, k := range chain {
		res[i].Point = k
	}
	defer func() {
		for i := range res {
			res[i].Took = time.Since(began)
		}
	}()
	ctx := context.Background()
	d := newCycleDirs(t)
	h.leaks = nil
	// fail fails every point of the chain; at >= 0 names the point whose
	// part failed
	fail := func(at int, format string, args ...any) []trialResult {
		msg := fmt.Sprintf(format, args...)
		for i := range res {
			res[i].Failure = msg
			if at >= 0 && at != i {
				res[i].Failure = fmt.Sprintf("in the same trial, at kill point %s: %s", chain[at], msg)
			}
		}
		return res
	}
	base, err := primaryRows(ctx, h.lab)
	if err != nil {
		return fail(-1, "primary rows before the trial: %v", err)
	}
	w := startPrimaryWrites(h.lab)
	defer w.stop()
	if chain[0].Playbook == "stop" {
		if s := h.flow(ctx, h.runArgs("flashback-start.yaml", d.state, d.redo), nil); s.Code != 0 {
			return fail(0, "the normal start before the stop kill point: exit %d: %s", s.Code, s.errorText())
		}
		if err := drillWrites(ctx, h.lab); err != nil {
			return fail(0, "%v", err)
		}
	}
	var runIDs []string
	for i, k := range chain {
		playbook := "flashback-start.yaml"
		if k.Playbook == "stop" {
			playbook = "flashback-stop.yaml"
		}
		if err := prepareKillPoint(ctx, h.lab, k); err != nil {
			return fail(i, "preparing the lab for the kill point: %v", err)
		}
		r := h.flow(ctx, h.runArgs(playbook, d.state, d.redo), func(ev flowEvent, _ int) bool {
			return ev.Event == "step_started" && ev.Key == k.Key
		})
		if !r.Killed {
			return fail(i, "the kill point was not reached: flow %s exited %d: %s", k.Playbook, r.Code, r.errorText())
		}
		if r.RunID == "" {
			return fail(i, "no run id in the event stream of the killed run")
		}
		runIDs = append(runIDs, r.RunID)
		run, err := journal.Load(d.state, r.RunID)
		if err != nil {
			return fail(i, "the killed run's journal: %v", err)
		}
		res[i].Notes = append(res[i].Notes, "at the kill: "+stepState(d.state, r.RunID, k.Key))
		if run.Status == journal.StatusSuccess {
			// the step was the last one and the run ended before SIGKILL landed
			res[i].Notes = append(res[i].Notes, "the run finished before the kill landed: nothing to resume")
		} else {
			if run.Status != journal.StatusInterrupted {
				return fail(i, "the killed run's journal says %q, want %q", run.Status, journal.StatusInterrupted)
			}
			if msg := h.resume(ctx, d.state, r.RunID, k.Key, &res[i]); msg != "" {
				return fail(i, "%s", msg)
			}
		}
		if k.Playbook == "start" {
			if err := drillWrites(ctx, h.lab); err != nil {
				return fail(i, "after the resumed start: %v", err)
			}
			if i+1 == len(chain) {
				if st := h.flow(ctx, h.runArgs("flashback-stop.yaml", d.state, d.redo), nil); st.Code != 0 {
					return fail(i, "the normal stop after the resumed start: exit %d: %s", st.Code, st.errorText())
				}
			}
		}
	}
	rows, werr := w.stop()
	if werr != nil {
		return fail(-1, "primary writes during the trial: %v", werr)
	}
	if problems := restoredProblems(ctx, h.lab, d.redo, base+rows, checkWait); len(problems) > 0 {
		return fail(-1, "the checks after the cycle: %s", strings.Join(problems, "; "))
	}
	for i, id := range runIDs {
		if run, err := journal.Load(d.state, id); err != nil || run.Status != journal.StatusSuccess {
			return fail(i, "the resumed run's journal: %v, status %v", err, statusOf(run))
		}
		if _, err := journal.Verify(d.state, id); err != nil {
			return fail(i, "the resumed run's journal does not verify: %v", err)
		}
	}
	if len(h.leaks) > 0 {
		return fail(-1, "a secret of the lab's config reached the output of %s", strings.Join(h.leaks, ", "))
	}
	for i := range res {
		res[i].Passed = true
	}
	return res
}

// resume runs `flow resume` for a killed run: exit 3 (flow cannot tell)
// fails at once with flow's message; another failure is tried once more.
// It notes resume's decision about the killed step and returns what failed
// ("" on success).
func (h *harness) resume(ctx context.Context, state, runID, key string, res *trialResult) string {
	for attempt := 1; attempt <= 2; attempt++ {
		rr := h.flow(ctx, resumeArgs(runID, state), nil)
		for _, ev := range rr.Events {
			if ev.Key != key {
				continue
			}
			switch ev.Event {
			case "step_resume_decision":
				res.Notes = append(res.Notes, fmt.Sprintf("resume: %s (%s)", ev.Decision, clip(ev.Why, 160)))
			case "step_joined":
				res.Notes = append(res.Notes, "resume joined: "+clip(ev.Why, 160))
			case "step_restored":
				res.Notes = append(res.Notes, "resume: restored from the journal")
			}
		}
		switch rr.Code {
		case 0:
			res.Notes = append(res.Notes, fmt.Sprintf("resume attempt %d: exit 0 in %s", attempt, rr.Took.Round(time.Millisecond)))
			return ""
		case 3:
			return fmt.Sprintf("resume cannot tell (exit 3): %s", rr.errorText())
		}
		res.Notes = append(res.Notes, fmt.Sprintf("resume attempt %d: exit %d: %s", attempt, rr.Code, firstLine(rr.errorText())))
		if attempt == 2 {
			return fmt.Sprintf("resume failed twice, last exit %d: %s", rr.Code, rr.errorText())
		}
	}
	return ""
}

// stepState says what the journal records for the step instance key:
// open (started, no end), finished, failed.
func stepState(state, runID, key string) string {
	recs, err := journal.Records(state, runID)
	if err != nil {
		return "journal unreadable: " + err.Error()
	}
	last := "never started"
	for _, r := range recs {
		if k, _ := r.Fields["key"].(string); k != key {
			continue
		}
		switch r.Event {
		case "step_started":
			last = "the step was open"
		case "step_finished":
			last = "the step had finished"
		case "step_failed":
			last = "the step had failed"
		}
	}
	return last
}

func statusOf(run *journal.Run) string {
	if run == nil {
		return "none"
	}
	return run.Status
}

// writeSummary writes the sweep's figures as Markdown.
func writeSummary(path, mode string, ref *reference, results []trialResult, took time.Duration) error {
	var b strings.Builder
	passed := 0
	var durs []time.Duration
	for _, r := range results {
		if r.Passed {
			passed++
		}
		durs = append(durs, r.Took)
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	fmt.Fprintf(&b, "# Crash sweep (%s)\n\n", mode)
	fmt.Fprintf(&b, "Written by `TestCrashSweep` (playbooks/crash_test.go) on %s.\n\n", time.Now().UTC().Format(time.RFC3339))
	for _, env := range []string{"FLOW_CRASH_MATCH", "FLOW_CRASH_SKIP"} {
		if re := os.Getenv(env); re != "" {
			fmt.Fprintf(&b, "%s=`%s`\n\n", env, re)
		}
	}
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| kill points in flashback-start | %d |\n", len(ref.start))
	fmt.Fprintf(&b, "| kill points in flashback-stop | %d |\n", len(ref.stop))
	fmt.Fprintf(&b, "| trials run | %d |\n| passed | %d |\n| failed | %d |\n", len(results), passed, len(results)-passed)
	fmt.Fprintf(&b, "| reference cycle | %s |\n", ref.took.Round(time.Second))
	if len(durs) > 0 {
		fmt.Fprintf(&b, "| trial time min / median / max | %s / %s / %s |\n", durs[0].Round(time.Second), durs[len(durs)/2].Round(time.Second), durs[len(durs)-1].Round(time.Second))
	}
	fmt.Fprintf(&b, "| total time | %s |\n\n", took.Round(time.Second))
	if passed < len(results) {
		b.WriteString("## Failed kill points\n\n")
		for _, r := range results {
			if !r.Passed {
				fmt.Fprintf(&b, "- **%s** (`%s`): %s\n", r.Point.Playbook+" #"+fmt.Sprint(r.Point.Index)+" "+r.Point.label(), r.Point.Key, oneLineMD(r.Failure))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("## Every trial\n\n| playbook | # | step | type | changes | result | time | what happened |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		res := "pass"
		if !r.Passed {
			res = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %v | %s | %s | %s |\n", r.Point.Playbook, r.Point.Index, oneLineMD(r.Point.label()), r.Point.Type,
			r.Point.Mutates, res, r.Took.Round(time.Second), oneLineMD(strings.Join(r.Notes, "; ")))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// oneLineMD makes s fit a Markdown table cell.
func oneLineMD(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	return clip(s, 600)
}

// clip cuts s to n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
