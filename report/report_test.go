package report

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
)

var t0 = time.Date(2026, 11, 23, 20, 45, 1, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// syntheticRun is an interrupted run with every kind of step: done on the
// control host and on two MySQL hosts, two parallel items, a failed step
// (ignored), a skipped step, a step a precondition refused before it began,
// and a step left open when the run stopped.
func syntheticRun() *journal.Run {
	sql := func(ms int, target, text string) []journal.Statement {
		return []journal.Statement{{Time: at(ms), Target: target, Text: text}}
	}
	steps := []journal.Step{
		{Seq: 3, Worker: 1, File: "drill.yaml", Line: 10, Name: "Step 01 read routers", Type: "set", State: journal.StepDone, Started: at(100), Ended: at(200), Duration: 100 * time.Millisecond},
		{Seq: 5, Worker: 1, File: "drill.yaml", Line: 20, Name: "Step 02 check conns", Type: "group", State: journal.StepDone, Started: at(200), Ended: at(1200), Duration: time.Second},
		{Seq: 6, Worker: 55, File: "drill.yaml", Line: 25, Name: "Step 02 conn 127.0.0.2", Type: "sql", State: journal.StepDone, Started: at(210), Ended: at(700), Duration: 490 * time.Millisecond,
			Statements: sql(220, "mysql node (127.0.0.2:3306)", "SELECT @@version")},
		{Seq: 7, Worker: 56, File: "drill.yaml", Line: 25, Name: "Step 02 conn 127.0.0.3", Type: "sql", State: journal.StepDone, Started: at(215), Ended: at(1100), Duration: 885 * time.Millisecond,
			Statements: sql(230, "mysql node (127.0.0.3:3306)", "SELECT @@version")},
		{Seq: 9, Worker: 56, File: "drill.yaml", Line: 30, Name: "Step 02 disk", Type: "set", State: journal.StepDone, Started: at(1100), Ended: at(1150), Duration: 50 * time.Millisecond},
		{Seq: 12, Worker: 1, File: "drill.yaml", Line: 40, Name: "Step 03 optional", Type: "sql", State: journal.StepFailed, Started: at(1300), Ended: at(1500), Duration: 200 * time.Millisecond,
			Error: "mysql node (127.0.0.2:3306): Error 1146: table missing", Statements: sql(1310, "mysql node (127.0.0.2:3306)", "SELECT * FROM flow_drill.active")},
		{Seq: 14, Worker: 1, File: "drill.yaml", Line: 50, Name: "Step 04 only on failover", Type: "log", State: journal.StepSkipped, Started: at(1550), Ended: at(1550),
			Reason: "`when: failover` is false (failover=false)"},
		{Seq: 15, Worker: 1, File: "drill.yaml", Line: 60, Name: "Step 05 guarded", Type: "sql", State: journal.StepRefused, Started: at(1600), Ended: at(1600),
			Error: "refused by guard `lag == 0`"},
		{Seq: 16, Worker: 1, File: "drill.yaml", Line: 70, Name: "Step 06 wait", Type: "wait-gtid", State: journal.StepOpen, Started: at(1700), Mutates: true,
			Statements: sql(1710, "mysql node (127.0.0.3:3306)", "SELECT WAIT_FOR_EXECUTED_GTID_SET('x:1-5', 1)")},
	}
	h := journal.Header{RunID: "20261123T204501Z-3fa9", Playbook: "/srv/drill.yaml", PlaybookFile: "drill.yaml", PlaybookName: "drill",
		PlaybookSHA256: "ab12", Mode: "run", Params: map[string]string{"greeting": "hello", "admin_password": "******"},
		Operator: "dba", Host: "ctl1", PID: 4242, Started: t0, Version: "1.2.3"}
	return &journal.Run{
		Summary: journal.Summary{RunID: h.RunID, Playbook: "drill.yaml", Name: "drill", Mode: "run", Status: journal.StatusInterrupted,
			Started: t0, Ended: at(4000), ExitCode: 130, Error: "interrupted"},
		Header: h,
		Steps:  steps,
	}
}

func render(t *testing.T, run *journal.Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, run); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var barRE = regexp.MustCompile(`<rect class="bar bar-(\w+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"`)

func TestOneBarPerExecutedStep(t *testing.T) {
	out := render(t, syntheticRun())
	bars := barRE.FindAllStringSubmatch(out, -1)
	// 9 steps: the skipped one and the one refused before it began are not bars
	if len(bars) != 7 {
		t.Fatalf("%d bars, want 7 (one per executed step):\n%s", len(bars), out)
	}
	states := map[string]int{}
	for _, b := range bars {
		states[b[1]]++
	}
	if states["done"] != 5 || states["failed"] != 1 || states["open"] != 1 {
		t.Errorf("bar classes %v, want 5 done, 1 failed, 1 open", states)
	}
	if n := strings.Count(out, `<polygon class="mark"`); n != 1 {
		t.Errorf("%d refusal marks, want 1", n)
	}
	svg := out[strings.Index(out, "<svg"):strings.Index(out, "</svg>")]
	if strings.Contains(svg, "Step 04 only on failover") {
		t.Error("the skipped step is drawn in the timeline")
	}
	if !strings.Contains(out, "Step 04 only on failover") || !strings.Contains(out, "why: `when: failover` is false") {
		t.Error("the skipped step and its reason are missing from the steps table")
	}
	// groups: control host/main, 127.0.0.2/item 55, 127.0.0.3/item 56,
	// control host/item 56, 127.0.0.2/main, 127.0.0.3/main
	var labels []string
	for _, m := range regexp.MustCompile(`<text class="glabel"[^>]*>([^<]*)</text><text class="gdetail"[^>]*>([^<]*)</text>`).FindAllStringSubmatch(svg, -1) {
		labels = append(labels, m[1]+" / "+m[2])
	}
	want := []string{"control host ctl1 / main flow", "127.0.0.2 / parallel item [ID:55]", "127.0.0.3 / parallel item [ID:56]",
		"control host ctl1 / parallel item [ID:56]", "127.0.0.2 / main flow", "127.0.0.3 / main flow"}
	if strings.Join(labels, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(labels, "\n"), strings.Join(want, "\n"))
	}
	// the open step of an interrupted run ends where the run's record ends
	for _, b := range bars {
		if b[1] == "open" {
			x, _ := strconv.ParseFloat(b[2], 64)
			w, _ := strconv.ParseFloat(b[3], 64)
			if math.Abs(x+w-(plotX+plotW)) > 0.2 {
				t.Errorf("the open step's bar ends at %.1f, want the chart's end %.1f", x+w, plotX+plotW)
			}
		}
	}
	for _, want := range []string{"<title>Step 02 conn 127.0.0.3 [sql]\ndone, 885ms, from &#43;215ms\ndrill.yaml:25, ID:56\non mysql node (127.0.0.3:3306)</title>",
		"SELECT WAIT_FOR_EXECUTED_GTID_SET(&#39;x:1-5&#39;, 1)", "interrupted (exit 130)", "changes state",
		"5 done, 1 failed, 1 refused, 1 skipped, 1 started, not finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

func TestBarGeometryAndTicks(t *testing.T) {
	run := syntheticRun()
	tl := layout(run.Steps, run, t0, at(4000))
	var got []string
	for _, g := range tl.Groups {
		for _, r := range g.Rows {
			if r.Bar != nil && strings.HasPrefix(r.Label, "Step 01") {
				got = append(got, r.Bar.X, r.Bar.W)
			}
		}
	}
	// 100ms to 200ms of 4s: a fortieth of the plot, starting at its 1/40
	if want := []string{f(plotX + plotW/40), f(plotW / 40)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Step 01's bar x, width = %v, want %v", got, want)
	}
	var ticks []string
	for _, tk := range tl.Ticks {
		ticks = append(ticks, tk.Label)
	}
	if strings.Join(ticks, " ") != "0 500ms 1s 1.5s 2s 2.5s 3s 3.5s 4s" {
		t.Errorf("ticks %v", ticks)
	}
	for span, want := range map[time.Duration]time.Duration{2500 * time.Microsecond: 500 * time.Microsecond,
		20 * time.Minute: 5 * time.Minute, 90 * time.Second: 15 * time.Second, 10 * time.Hour: 2 * time.Hour} {
		if got := niceStep(span / maxTicks); got != want {
			t.Errorf("niceStep(%v/%d) = %v, want %v", span, maxTicks, got, want)
		}
	}
	for d, want := range map[time.Duration]string{90 * time.Minute: "1h30m", 2 * time.Hour: "2h", 5 * time.Minute: "5m",
		90 * time.Second: "1m30s", 1500 * time.Microsecond: "1.5ms"} {
		if got := fmtTick(d); got != want {
			t.Errorf("fmtTick(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestEscapesEverything(t *testing.T) {
	run := syntheticRun()
	const evil = `<script>alert("pwned")</script>`
	run.Steps[0].Name = evil
	run.Steps[2].Statements[0].Text = "SELECT '" + evil + "'"
	run.Steps[2].Statements[0].Target = "mysql " + evil + " (127.0.0.2:3306)"
	run.Steps[5].Error = evil
	run.Header.Params["note"] = evil
	run.Header.PlaybookName = evil
	run.Error = evil
	out := render(t, run)
	if strings.Contains(strings.ToLower(out), "<script") {
		t.Fatalf("a hostile value reached the page unescaped:\n%s", out)
	}
	if n := strings.Count(out, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;"); n < 8 {
		t.Errorf("the hostile value appears escaped %d times, want at least 8 (title, name, svg label, tooltip, statement, target, error, param)", n)
	}
	if !strings.Contains(out, "<title>&lt;script&gt;") {
		t.Error("the hostile step name is not escaped inside the bar's <title>")
	}
}

func TestParamsMaskedAgain(t *testing.T) {
	run := syntheticRun()
	run.Header.Params["repl_passwd"] = "Leaked-In-Old-Journal-1"
	run.Header.Params["api_token"] = "tok-123456"
	out := render(t, run)
	for _, leak := range []string{"Leaked-In-Old-Journal-1", "tok-123456"} {
		if strings.Contains(out, leak) {
			t.Errorf("the report shows %q", leak)
		}
	}
	if !regexp.MustCompile(`repl_passwd</td><td class="mono">\*{6}</td>`).MatchString(out) ||
		!regexp.MustCompile(`greeting</td><td class="mono">hello</td>`).MatchString(out) {
		t.Errorf("parameters not shown as expected:\n%s", out)
	}
}

// TestRealJournal writes a journal with the journal package, as a run of
// two parallel items and an assertion refused while it ran, and reports it.
func TestRealJournal(t *testing.T) {
	state := t.TempDir()
	id := journal.NewRunID(time.Now())
	j, err := journal.Create(state, id, journal.Header{Playbook: "/pb/x.yaml", PlaybookName: "x", PlaybookSHA256: "00",
		Mode: "run", Operator: "dba", Host: "ctl"})
	if err != nil {
		t.Fatal(err)
	}
	step := func(event string, worker, line int, name, typ string, extra ...any) {
		t.Helper()
		f := map[string]any{"id": worker, "line": line, "pb_file": "x.yaml", "pb_line": line, "name": name, "type": typ, "mutates": false, "step": ""}
		for i := 0; i+1 < len(extra); i += 2 {
			f[extra[i].(string)] = extra[i+1]
		}
		if err := j.Record(event, f, false); err != nil {
			t.Fatal(err)
		}
	}
	step("run_started", 1, 1, "", "")
	step("step_started", 1, 5, "fan out", "group")
	step("step_started", 55, 8, "item a", "sql")
	step("step_started", 56, 8, "item b", "sql")
	step("statement", 55, 8, "item a", "sql", "target", "mysql node (127.0.0.2:3306)", "text", "SELECT 1")
	step("statement", 56, 8, "item b", "sql", "target", "mysql node (127.0.0.3:3306)", "text", "SELECT 2")
	step("step_finished", 56, 8, "item b", "sql", "duration_ms", 1)
	step("step_finished", 55, 8, "item a", "sql", "duration_ms", 2)
	step("step_finished", 1, 5, "fan out", "group", "duration_ms", 3)
	step("step_skipped", 1, 12, "never", "log", "reason", "`when: false` is false")
	step("step_started", 1, 14, "check", "assert")
	step("step_refused", 1, 14, "check", "assert", "duration_ms", 0, "error", "x.yaml:15:9: refused by guard `false`")
	if err := j.Record(event.RunFinished, map[string]any{"status": "refused", "error": "x.yaml:15:9: refused by guard `false`"}, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(event.RunExit, map[string]any{"status": "refused", "exit_code": 3}, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	run, err := journal.Load(state, id)
	if err != nil {
		t.Fatal(err)
	}
	out := render(t, run)
	bars := barRE.FindAllStringSubmatch(out, -1)
	var classes []string
	for _, b := range bars {
		classes = append(classes, b[1])
	}
	// the control host's group (fan out, then check, refused while it ran:
	// one step, one bar), then item a's and item b's
	if strings.Join(classes, " ") != "done refused done done" {
		t.Errorf("bars %v, want done refused done done", classes)
	}
	if n := strings.Count(out, `<tr class="step `); n != 5 {
		t.Errorf("%d step rows, want 5 (the refused assertion once)", n)
	}
	for _, want := range []string{"SELECT 1", "SELECT 2", "parallel item [ID:55]", "parallel item [ID:56]", "refused (exit 3)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

func TestRunningRunUsesNow(t *testing.T) {
	run := syntheticRun()
	run.Status, run.ExitCode = journal.StatusRunning, -1
	defer func(old func() time.Time) { now = old }(now)
	now = func() time.Time { return at(8000) }
	out := render(t, run)
	if !strings.Contains(out, "<dd>8s so far</dd>") || !strings.Contains(out, "6.3s so far") {
		t.Errorf("a running run's durations are not measured to now:\n%s", out)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{"mysql node (127.0.0.2:3306)": "127.0.0.2", "ssh target_ssh (127.0.0.5:22)": "127.0.0.5",
		"mysql m ([::1]:3306)": "::1", "local": "local", "": ""} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestInterruptedStepHasItsOwnBar: a step the run's signal ended is drawn
// as interrupted, not as failed, and the legend names it.
func TestInterruptedStepHasItsOwnBar(t *testing.T) {
	run := syntheticRun()
	run.Steps[5].Interrupted = true // Step 03 optional
	out := render(t, run)
	states := map[string]int{}
	for _, b := range barRE.FindAllStringSubmatch(out, -1) {
		states[b[1]]++
	}
	if states["interrupted"] != 1 || states["failed"] != 0 {
		t.Errorf("bar classes %v, want 1 interrupted, 0 failed", states)
	}
	if !strings.Contains(out, `<span class="sw-interrupted"></span>interrupted`) {
		t.Error("the legend does not name interrupted steps")
	}
}
