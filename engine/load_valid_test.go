package engine_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/internal/testutil"
)

const everyConstruct = "testdata/valid/every-construct.yaml"

// TestValidPlaybookLoads loads the playbook that uses every construct: no
// errors, no warnings, and the parts the loader builds are there.
func TestValidPlaybookLoads(t *testing.T) {
	pb, diags, perr := safeLoad(everyConstruct)
	if perr != nil {
		t.Fatal(perr)
	}
	if pb == nil || len(diags) > 0 {
		t.Fatalf("want a clean load, got pb=%v diagnostics:\n%v", pb != nil, diags)
	}
	if pb.Name != "every construct" || len(pb.Params) != 9 || len(pb.Vars) != 5 || len(pb.Conns) != 3 || len(pb.Steps) != 10 {
		t.Fatalf("loaded %q with %d params, %d vars, %d connections, %d steps", pb.Name, len(pb.Params), len(pb.Vars), len(pb.Conns), len(pb.Steps))
	}
	types := map[string]int{}
	var walk func([]*engine.Step)
	walk = func(steps []*engine.Step) {
		for _, s := range steps {
			types[s.Type]++
			walk(s.Steps)
			walk(s.Rescue)
			walk(s.Always)
		}
	}
	walk(pb.Steps)
	for _, typ := range []string{"set", "assert", "log", "sql", "ssh", "group", "include"} {
		if types[typ] == 0 {
			t.Errorf("the valid playbook has no %s step (types: %v)", typ, types)
		}
	}
	if len(pb.Includes) != 1 {
		t.Errorf("want one included playbook, got %d", len(pb.Includes))
	}
	s6 := pb.Steps[5]
	if s6.When == nil || len(s6.Pre) != 2 || len(s6.Post) != 1 || len(s6.Rescue) != 2 || len(s6.Always) != 1 ||
		s6.Confirm == nil || s6.Timeout != time.Minute || len(s6.Effect) != 1 {
		t.Errorf("step 06 lost some of its keys: %+v", s6)
	}
	if s5 := pb.Steps[4]; s5.Retries != 3 || s5.Interval != time.Second || s5.Until == nil || s5.Register != "ver" {
		t.Errorf("step 05 lost its polling keys: %+v", s5)
	}
	if s4 := pb.Steps[3]; s4.ForEach == nil || s4.As != "item" || s4.Parallel != 2 {
		t.Errorf("step 04 lost its group keys: %+v", s4)
	}
}

// TestLintUnguardedChange: a state-changing step with neither a guard nor a
// rescue path loads with a warning at the step; a guard, a rescue or an
// enclosing group's rescue each silence it.
func TestLintUnguardedChange(t *testing.T) {
	const pbText = `name: lint
connections:
  db: {mysql: {host: 127.0.0.1}}
steps:
  - name: unguarded
    sql: {on: db, exec: "SET GLOBAL read_only = 1"}
  - name: guarded by when
    when: "true"
    sql: {on: db, exec: "SET GLOBAL read_only = 1"}
  - name: guarded by pre
    pre: ["1 < 2"]
    sql: {on: db, exec: "SET GLOBAL read_only = 1"}
  - name: with a rescue
    sql: {on: db, exec: "SET GLOBAL read_only = 1"}
    rescue:
      - log: {msg: undo}
  - name: a group with a rescue
    steps:
      - sql: {on: db, exec: "SET GLOBAL read_only = 1"}
    rescue:
      - log: {msg: undo}
`
	path := writePlaybook(t, pbText)
	pb, diags := engine.Load(path)
	if pb == nil {
		t.Fatalf("load failed: %v", diags)
	}
	if len(diags) != 1 {
		t.Fatalf("want exactly one warning, got:\n%v", diags)
	}
	d := diags[0]
	if !d.Warning || d.Pos.Line != 5 || d.Pos.Col != 5 || !strings.Contains(d.Msg, `step "unguarded" changes state but has no guard`) {
		t.Fatalf("unexpected warning %s (warning=%v)", d, d.Warning)
	}
}

// TestLoadHasNoSideEffects: Load only reads. The playbook's connections
// point at a listening loopback port and its steps would query, run a
// command and write; after Load, nothing has connected to the port (a
// dial would sit in the listen backlog), and the playbook's folder holds
// exactly the files it held before, unchanged.
func TestLoadHasNoSideEffects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pbText := `name: no side effects
params:
  pw: {type: string, default: secret-value, secret: true}
connections:
  db: {mysql: {host: 127.0.0.1, port: ` + itoa(port) + `, user: root, password: "{{ pw }}"}}
  box: {ssh: {host: 127.0.0.1, port: ` + itoa(port) + `, user: flow}}
  tunnelled: {mysql: {host: 127.0.0.1, port: ` + itoa(port) + `, via: box}}
steps:
  - sql: {on: db, query: "SELECT 1"}
    register: one
  - when: one.count == 1
    sql: {on: db, exec: "CREATE DATABASE side_effect"}
  - when: "true"
    ssh: {on: box, command: "touch side-effect-file"}
  - sql: {on: tunnelled, query: "SELECT 2"}
`
	// the detector works: a dial is seen, then drained
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); !pending(t, ln); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("waited 5s for the detector to see a dial to the listener")
		}
	}
	path := writePlaybook(t, pbText)
	dir := filepath.Dir(path)
	before := snapshot(t, dir)
	pb, diags := engine.Load(path)
	if pb == nil {
		t.Fatalf("load failed: %v", diags)
	}
	if pending(t, ln) {
		t.Fatal("Load connected to the playbook's connection port")
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("Load changed the playbook's folder:\nbefore: %s\nafter:  %s", before, after)
	}
}

// pending reports whether a connection waits in ln's backlog, accepting
// (and closing) it without blocking: the listener's socket is non-blocking,
// so accept(2) answers EAGAIN at once when nothing is queued.
func pending(t *testing.T, ln net.Listener) bool {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got bool
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		nfd, _, err := syscall.Accept(int(fd))
		if err == nil {
			syscall.Close(nfd)
			got = true
			return
		}
		if err != syscall.EAGAIN {
			aerr = err
		}
	}); err != nil {
		t.Fatal(err)
	}
	if aerr != nil {
		t.Fatalf("accept: %v", aerr)
	}
	return got
}

// snapshot lists a folder's files with sizes and modification times.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + itoa(int(fi.Size())) + " " + fi.ModTime().String() + "; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestValidateCLI builds flow and runs `flow validate`: exit 2 and
// FILE:LINE:COL: lines for broken playbooks, exit 0 for the valid one, and
// the lint warning printed (exit 0) for an unguarded change.
func TestValidateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the flow binary")
	}
	bin := testutil.BuildFlow(t)
	run := func(args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(bin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode()
		default:
			t.Fatalf("run %v: %v", args, err)
		}
		return o.String(), e.String(), code
	}
	for _, name := range []string{"unknown-top-key", "expr-type-mismatch", "include-cycle", "tab-indent", "alias-bomb", "binary-garbage", "secret-in-ssh-command"} {
		path := filepath.Join("testdata", "broken", name+".yaml")
		exp := readExpectation(t, path)
		stdout, stderr, code := run("validate", path)
		if code != engine.ExitInvalid {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, engine.ExitInvalid, stdout, stderr)
			continue
		}
		want := exp.file + ":" + itoa(exp.line) + ":" + itoa(exp.col) + ": "
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			found = found || strings.HasPrefix(line, want) && strings.Contains(line, exp.want)
		}
		if !found {
			t.Errorf("%s: stdout has no line %q…%q:\n%s", name, want, exp.want, stdout)
		}
		// each problem starts with FILE:LINE:COL: message; the source
		// snippet, caret, detail and hint below it are indented
		for _, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
			if strings.HasPrefix(line, " ") {
				continue
			}
			if !diagLineRE.MatchString(line) {
				t.Errorf("%s: stdout line %q is neither FILE:LINE:COL: message nor an indented snippet or hint", name, line)
			}
		}
	}
	// several files at once: every problem of every file, still exit 2
	stdout, _, code := run("validate", everyConstruct, "testdata/broken/duplicate-id.yaml", "testdata/broken/undefined-var.yaml")
	if code != engine.ExitInvalid || !strings.Contains(stdout, "testdata/broken/duplicate-id.yaml:7:5: ") ||
		!strings.Contains(stdout, "testdata/broken/undefined-var.yaml:6:11: ") {
		t.Errorf("validate of three files: exit %d\n%s", code, stdout)
	}
	if stdout, stderr, code := run("validate", everyConstruct); code != 0 || !strings.Contains(stdout, "1 playbook(s) valid") {
		t.Errorf("valid playbook: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	lint := writePlaybook(t, "name: lint\nconnections:\n  db: {mysql: {host: 127.0.0.1}}\nsteps:\n  - sql: {on: db, exec: \"SET GLOBAL read_only = 1\"}\n")
	stdout, stderr, code := run("validate", lint)
	if code != 0 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(lint)+`:5:5: warning: step "sql" changes state but has no guard`).MatchString(stdout) {
		t.Errorf("lint: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestBrokenConfigs loads every INI file of testdata/broken-config: each
// must fail with the message its `# want:` line names, the error must name
// the file, and no value of the file (passwords) may appear in it. ini.v1
// reports no line numbers, so these files carry no `# at:`.
func TestBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/broken-config/*.ini")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("only %d broken configs", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want := strings.TrimPrefix(first, "# want: ")
			if want == first {
				t.Fatalf("%s: first line must be `# want: …`", path)
			}
			c, err := config.Load(path)
			if err == nil {
				t.Fatalf("config.Load accepted it: keys %v", c.Keys())
			}
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q lacks %q or the file name", err, want)
			}
			if strings.Contains(err.Error(), "se#cret") {
				t.Fatalf("error shows a password: %q", err)
			}
		})
	}
}

func writePlaybook(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func itoa(i int) string { return strconv.Itoa(i) }
