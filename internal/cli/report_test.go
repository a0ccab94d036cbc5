package cli

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/journal"
)

// reportPlaybook runs without MySQL or SSH: set, log, assert, a parallel
// group of three items two at a time, a skipped step, and a step name a
// browser would take for markup.
const reportPlaybook = `name: report-demo
params:
  greeting: {type: string, default: hi}
  admin_password: {type: string, secret: true}
steps:
  - name: Step 01 compute
    set:
      x: '"1"'
      items: '["a", "b", "c"]'
  - name: "Step 02 say <b>loud</b> & clear"
    log: {msg: "{{ greeting }} {{ x }}"}
  - name: Step 03 fan out
    for_each: items
    as: it
    parallel: 2
    steps:
      - name: "Step 03 item {{ it }}"
        log: {msg: "item {{ it }}"}
      - set:
          y: it
  - name: Step 04 check
    assert: {that: x == "1", message: "x is not 1"}
  - name: Step 05 never
    when: x == "2"
    log: {msg: never}
`

// reportBars is how many steps of reportPlaybook execute: Step 01, 02, the
// group, two steps in each of three items, and Step 04 (Step 05 skips).
const reportBars = 10

const reportPass = "Pw-not-in-any-report-77"

var barClassRE = regexp.MustCompile(`class="bar bar-(\w+)"`)

// reportRun runs reportPlaybook into a new state directory and returns it
// and the run's id.
func reportRun(t *testing.T) (state, id string) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	pb := writePlaybook(t, dir, "report-demo.yaml", reportPlaybook)
	if code, out, errOut := runFlow("run", pb, "--state-dir", state, "--var", "admin_password="+reportPass); code != 0 {
		t.Fatalf("flow run: exit %d\n%s%s", code, out, errOut)
	}
	return state, onlyRun(t, state).RunID
}

// executedSteps counts the run's steps that started, from the journal.
func executedSteps(t *testing.T, state, id string) int {
	t.Helper()
	run, err := journal.Load(state, id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range run.Steps {
		if s.State != journal.StepSkipped {
			n++
		}
	}
	return n
}

func TestReportCommand(t *testing.T) {
	state, id := reportRun(t)
	out := filepath.Join(t.TempDir(), "run.html")
	code, stdout, stderr := runFlow("report", id[:12], "--state-dir", state, "--out", out)
	if code != 0 || !strings.Contains(stdout, "report of run "+id) || !strings.Contains(stdout, out) {
		t.Fatalf("flow report --out: exit %d\n%s%s", code, stdout, stderr)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the report file's mode is %v, want 0600 (it names hosts and statements)", fi.Mode().Perm())
	}
	for _, want := range []string{"<h2>Summary</h2>", "Who decided", "What changed, by target", "log line(s) of the run"} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks its summary part %q", want)
		}
	}
	if n := len(barClassRE.FindAllString(html, -1)); n != reportBars || n != executedSteps(t, state, id) {
		t.Errorf("%d bars, want %d (one per executed step)", n, reportBars)
	}
	for _, want := range []string{id, "report-demo", "admin_password", "******", "Step 05 never", "skipped",
		"Step 02 say &lt;b&gt;loud&lt;/b&gt; &amp; clear", "parallel item [ID:"} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, bad := range []string{reportPass, "<b>loud", "://"} {
		if strings.Contains(html, bad) {
			t.Errorf("the report contains %q", bad)
		}
	}
	if code, stdout, _ := runFlow("report", "last", "--state-dir", state); code != 0 || stdout != html {
		t.Errorf("flow report last (to standard output) differs from the --out file (exit %d)", code)
	}
	if code, _, stderr := runFlow("report", "nosuch", "--state-dir", state); code != 2 || !strings.Contains(stderr, `no run "nosuch"`) {
		t.Errorf("flow report of an unknown run: exit %d, %s", code, stderr)
	}
}

var chromiumOnce struct {
	sync.Once
	path string
	err  error
}

// chromium returns the path of Debian's chromium, installing the package
// when it is missing (as root, after apt-get update). It fails the test,
// never skips it, when the browser cannot be had.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs chromium: not run by -short (make unit); make test runs it")
	}
	chromiumOnce.Do(func() {
		if p, err := exec.LookPath("chromium"); err == nil {
			chromiumOnce.path = p
			return
		}
		if os.Geteuid() != 0 {
			chromiumOnce.err = fmt.Errorf("chromium is not installed and this test is not root to install it: run `apt-get update && apt-get install chromium` as root")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		for _, args := range [][]string{{"update"}, {"install", "-y", "chromium"}} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				chromiumOnce.err = fmt.Errorf("apt-get %s (for Debian's chromium package, within 8 minutes): %v\n%s", strings.Join(args, " "), err, tail(out, 2000))
				return
			}
		}
		chromiumOnce.path, chromiumOnce.err = exec.LookPath("chromium")
	})
	if chromiumOnce.err != nil {
		t.Fatal(chromiumOnce.err)
	}
	return chromiumOnce.path
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// headless runs chromium headless on a file with extra flags, bounded in
// time, and returns its standard output and error.
func headless(t *testing.T, bin, file string, extra ...string) (stdout, stderr string) {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, extra...)
	args = append(args, "file://"+file)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// chromium is a wrapper script with child processes: end the group
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		what := "to finish"
		if ctx.Err() != nil {
			what = "for 90s to load the page, in vain"
		}
		t.Fatalf("chromium %s: waited %s: %v\n%s", strings.Join(extra, " "), what, err, tail(e.Bytes(), 3000))
	}
	return o.String(), e.String()
}

// consoleLines are the page's console messages chromium logged (errors,
// content security policy violations, script messages).
func consoleLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, ":CONSOLE") {
			out = append(out, l)
		}
	}
	return out
}

func TestReportInChromium(t *testing.T) {
	bin := chromium(t)
	state, id := reportRun(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "run.html")
	if code, out, errOut := runFlow("report", id, "--state-dir", state, "--out", page); code != 0 {
		t.Fatalf("flow report: exit %d\n%s%s", code, out, errOut)
	}

	dom, stderr := headless(t, bin, page, "--enable-logging=stderr", "--v=0", "--dump-dom")
	if msgs := consoleLines(stderr); len(msgs) > 0 {
		t.Errorf("the report logs console messages in chromium:\n%s", strings.Join(msgs, "\n"))
	}
	if !strings.Contains(dom, "<svg") || !strings.Contains(dom, "</svg>") || !strings.Contains(dom, id) {
		t.Fatalf("chromium's DOM of the report has no timeline or no run id:\n%s", tail([]byte(dom), 3000))
	}
	want := executedSteps(t, state, id)
	if n := len(barClassRE.FindAllString(dom, -1)); n != want || n != reportBars {
		t.Errorf("chromium's DOM has %d bars, want %d (one per executed step)", n, want)
	}
	if n := strings.Count(dom, "<title>"); n != reportBars+1 {
		t.Errorf("chromium's DOM has %d <title> elements, want %d (the page's and one tooltip per bar)", n, reportBars+1)
	}
	items := map[string]bool{}
	for _, m := range regexp.MustCompile(`parallel item \[ID:(\d+)\]`).FindAllStringSubmatch(dom, -1) {
		items[m[1]] = true
	}
	if len(items) != 3 {
		t.Errorf("the timeline groups %d parallel items, want 3", len(items))
	}
	if strings.Contains(dom, "<b>loud</b>") || !strings.Contains(dom, "&lt;b&gt;loud&lt;/b&gt;") {
		t.Error("a step name was parsed as markup by the browser")
	}

	// the console check sees a resource the page's policy blocks: the same
	// report with a stylesheet from elsewhere logs a violation
	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "external.html")
	withLink := strings.Replace(string(src), "<style>", `<link rel="stylesheet" href="http://127.0.0.1:9/x.css"><style>`, 1)
	if err := os.WriteFile(bad, []byte(withLink), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr := headless(t, bin, bad, "--enable-logging=stderr", "--v=0", "--dump-dom"); len(consoleLines(stderr)) == 0 {
		t.Error("a report loading an outside stylesheet logged no console message: the console check cannot fail")
	}

	shot := filepath.Join(dir, "run.png")
	headless(t, bin, page, "--screenshot="+shot, "--window-size=1400,1000", "--hide-scrollbars")
	checkScreenshot(t, shot)
	if keep := os.Getenv("FLOW_REPORT_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// checkScreenshot checks the screenshot is a 1400×1000 PNG with the done
// bars' green right of the step names (the legend's swatch is left of
// them), so the timeline is drawn, styled, in the first screen.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1400 || b.Dy() != 1000 {
		t.Errorf("the screenshot is %dx%d, want 1400x1000", b.Dx(), b.Dy())
	}
	if n := countColour(img, 420, 0x43, 0xa0, 0x47); n < 200 {
		t.Errorf("the screenshot has %d pixels of the done bars' green right of the step names, want at least 200", n)
	}
}

// countColour counts the pixels of one colour right of x0.
func countColour(img image.Image, x0 int, r, g, b uint8) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X + x0; x < bd.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if uint8(cr>>8) == r && uint8(cg>>8) == g && uint8(cb>>8) == b {
				n++
			}
		}
	}
	return n
}
