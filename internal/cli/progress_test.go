package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/flowdba/flow/gtid"
	"github.com/flowdba/flow/internal/testutil"
	"github.com/flowdba/flow/lab/mysqltest"
)

// progressPlaybook has steps that need nothing (set, log, assert) and a
// wait-gtid on a real server for a transaction the test makes when it has
// seen the wait in the view.
var progressPlaybook = mysqltest.PlaybookHead("progress-e2e", "node", `ref: {type: string, required: true}`) + `steps:
  - name: Step 01 set the answer
    set: {answer: "42"}
  - name: Step 02 say hello
    log: {msg: "hello {{ answer }}"}
  - name: Step 03 wait for the next transaction
    wait-gtid: {on: node, gtid: ref, stopped_grace: 2m, timeout: 2m}
  - name: Step 04 check
    assert: {that: answer == 42, message: "the answer is {{ answer }}"}
`

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// plainText is terminal output without escape sequences and carriage
// returns.
func plainText(s string) string { return strings.ReplaceAll(ansi.ReplaceAllString(s, ""), "\r", "") }

// flowOnPTY runs flow with args on a 150×40 pseudo-terminal; when want is
// not empty, it calls then(terminal) once the terminal shows want
// (bounded); what then writes to the terminal is flow's input. It returns
// what the terminal showed and the exit code.
func flowOnPTY(t *testing.T, bin string, env []string, args []string, want string, then func(tty io.Writer)) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := &testutil.SyncBuffer{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, tty) // ends with EIO once flow has exited
	}()
	if want != "" {
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(plainText(out.String()), want) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("the terminal never showed %q within a minute:\n%s", want, plainText(out.String()))
			}
			time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for an outcome
		}
		then(tty)
	}
	err = cmd.Wait()
	<-copied
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// TestProgressViewEndToEnd runs the real flow binary on a pseudo-terminal:
// the live view shows the run (header with the run id, the wait with what
// it waits for, warnings above the block, one line per finished step, the
// final state), the same run piped prints the plain log lines without any
// escape sequence, and a later run's header estimates its time from the
// earlier runs.
func TestProgressViewEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flow, starts MySQL and runs flow on a pseudo-terminal")
	}
	dir := t.TempDir()
	bin := testutil.BuildFlow(t)
	node := mysqltest.Start(t)
	pb := filepath.Join(dir, "progress.yaml")
	if err := os.WriteFile(pb, []byte(progressPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NO_COLOR=") && !strings.HasPrefix(e, "TERM=") {
			env = append(env, e)
		}
	}
	env = append(env, "TERM=xterm", "FLOW_VAR_PASSWORD="+node.Password)
	uuid := node.QueryString(t, "SELECT @@server_uuid")
	// next is the set of the server's transactions up to n more than now
	next := func(n uint64) string {
		set, err := gtid.Parse(node.GTIDExecuted(t))
		if err != nil || !set.IsEmpty() && !set.Equal(gtid.MustParse(fmt.Sprintf("%s:1-%d", uuid, set.Count()))) {
			t.Fatalf("gtid_executed is not one interval of the server's own: %v %v", set, err)
		}
		return fmt.Sprintf("%s:1-%d", uuid, set.Count()+n)
	}
	args := func(ref string, extra ...string) []string {
		return append([]string{"run", pb, "--state-dir", state, "--var", "host=" + node.Host, "--var", "port=" + strconv.Itoa(node.Port),
			"--var", "user=" + node.User, "--var", "ref=" + ref}, extra...)
	}
	commit := func(io.Writer) { node.Exec(t, fmt.Sprintf("CREATE DATABASE progress_%d", time.Now().UnixNano())) }

	// 1. on a terminal: the live view
	raw, code := flowOnPTY(t, bin, env, args(next(1)), "↳ waits for", commit)
	screen := plainText(raw)
	t.Logf("terminal:\n%s", screen)
	if code != 0 {
		t.Fatalf("flow exited %d", code)
	}
	ids, err := os.ReadDir(filepath.Join(state, "runs"))
	if err != nil || len(ids) != 1 {
		t.Fatalf("want one run in the state dir: %v %v", ids, err)
	}
	id := ids[0].Name()
	for _, want := range []string{
		"▶ progress-e2e · run " + id + " · ", "· no earlier runs",
		"▸ Step 03 wait for the next transaction · mysql node (" + node.Addr() + ")",
		"↳ waits for mysql node (" + node.Addr() + ") to apply 1 missing transaction(s) of `ref`",
		"1 missing · 0.0 trx/s · no ETA yet",
		"[ WARN] mysql node (" + node.Addr() + ") cannot make progress: it has no replication channel",
		"✓ Step 02 say hello · hello 42 · ",
		"■ progress-e2e · run " + id + " · success in ",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal did not show %q", want)
		}
	}
	for _, step := range []string{"Step 01 set the answer", "Step 02 say hello", "Step 03 wait for the next transaction", "Step 04 check"} {
		if n := strings.Count(screen, "✓ "+step); n != 1 {
			t.Errorf("%q finished %d time(s) on the terminal, want once (a line in the scrollback)", step, n)
		}
	}
	if strings.Contains(screen, "[ INFO]") || strings.Contains(screen, "[DEBUG]") {
		t.Error("the view printed the plain info/debug log lines")
	}
	if !strings.Contains(raw, "\x1b[32m✓") || !regexp.MustCompile(`\x1b\[\d+A\x1b\[J`).MatchString(raw) {
		t.Error("no colours or no redraw in place on the terminal")
	}
	if strings.Contains(raw, node.Password) {
		t.Fatal("the password reached the terminal")
	}

	// 2. piped: the plain log lines
	cmd := exec.Command(bin, args(next(0))...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("piped run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String(), "\x1b[") {
		t.Errorf("escape sequences in piped output:\n%q", stdout.String())
	}
	for _, want := range []string{"[ INFO] Step 02 say hello success", "[ INFO] hello 42", "[ INFO] Step 04 check success", "[ INFO] progress-e2e success"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("piped output lacks %q:\n%s", want, stdout.String())
		}
	}

	// 3. on a terminal again: the estimate from the two earlier runs
	raw, code = flowOnPTY(t, bin, env, args(next(1)), "(from 2 earlier runs)", commit)
	if code != 0 || !regexp.MustCompile(`▶ progress-e2e · run \S+ · [0-9.]+s · ETA ~\S+ \(from 2 earlier runs\)`).MatchString(plainText(raw)) {
		t.Errorf("exit %d; the header lacks the estimate:\n%s", code, plainText(raw))
	}

	// 4. on a terminal with --log-format or --progress off: plain lines
	for _, extra := range [][]string{{"--log-format", "text"}, {"--progress", "off"}} {
		raw, code = flowOnPTY(t, bin, append(env, "NO_COLOR=1"), args(next(0), extra...), "", nil)
		if code != 0 || strings.Contains(raw, "▶") || strings.Contains(raw, "\x1b[") || !strings.Contains(raw, "[ INFO] Step 04 check success") {
			t.Errorf("%v on a terminal: exit %d, want plain log lines:\n%q", extra, code, raw)
		}
	}
	// 5. NO_COLOR keeps the view, without colours
	raw, code = flowOnPTY(t, bin, append(env, "NO_COLOR=1"), args(next(0)), "", nil)
	if code != 0 || !strings.Contains(raw, "■ progress-e2e") || strings.Contains(raw, "\x1b[32m") || strings.Contains(raw, "\x1b[1m") {
		t.Errorf("NO_COLOR: exit %d, want the view without colours:\n%q", code, raw)
	}
	// a bad --progress is a usage error
	bad := exec.Command(bin, append(args(next(0)), "--progress", "sometimes")...)
	bad.Env = env
	out, err := bad.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "use auto, on or off") {
		t.Errorf("--progress sometimes: %v\n%s", err, out)
	}
}
