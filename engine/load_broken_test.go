package engine_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	_ "github.com/flowdba/flow/engine/funcs" // expression functions
	_ "github.com/flowdba/flow/steps"        // step types
)

// expectation is what a broken file's header says Load must report.
type expectation struct {
	want string // a substring of the message
	file string // the file the diagnostic names (cleaned)
	line int
	col  int
}

// readExpectation reads the `# want:` and `# at: [FILE:]LINE:COL` header of
// a corpus file, or of its sidecar FILE.want when the file cannot hold one
// (an empty file). FILE in `# at:` is relative to the corpus file's folder.
func readExpectation(t testing.TB, path string) expectation {
	t.Helper()
	src := path
	if _, err := os.Stat(path + ".want"); err == nil {
		src = path + ".want"
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exp := expectation{file: filepath.Clean(path)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for i := 0; i < 2 && sc.Scan(); i++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# want: "):
			exp.want = strings.TrimPrefix(line, "# want: ")
		case strings.HasPrefix(line, "# at: "):
			at := strings.TrimPrefix(line, "# at: ")
			parts := strings.Split(at, ":")
			if len(parts) == 3 {
				exp.file = filepath.Clean(filepath.Join(filepath.Dir(path), parts[0]))
				parts = parts[1:]
			}
			if len(parts) != 2 {
				t.Fatalf("%s: bad `# at:` line %q", src, line)
			}
			exp.line, _ = strconv.Atoi(parts[0])
			exp.col, _ = strconv.Atoi(parts[1])
		}
	}
	if exp.want == "" || exp.line == 0 || exp.col == 0 {
		t.Fatalf("%s: needs `# want: …` and `# at: LINE:COL` as its first two lines", src)
	}
	return exp
}

// safeLoad runs engine.Load and turns a panic into an error with its stack.
func safeLoad(path string) (pb *engine.Playbook, diags engine.Diags, panicked error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Errorf("engine.Load panicked: %v\n%s", r, debug.Stack())
		}
	}()
	pb, diags = engine.Load(path)
	return pb, diags, nil
}

func corpus(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestBrokenPlaybooks loads every playbook of testdata/broken: each must
// fail, with the message its header names at the position it names, and
// without a panic. The slowest load is logged (tests do not time things).
func TestBrokenPlaybooks(t *testing.T) {
	files := corpus(t, "broken")
	if len(files) < 45 {
		t.Fatalf("the broken corpus has %d files; it should have at least 45", len(files))
	}
	type timing struct {
		file string
		d    time.Duration
	}
	var timings []timing
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			exp := readExpectation(t, path)
			start := time.Now()
			pb, diags, perr := safeLoad(path)
			timings = append(timings, timing{path, time.Since(start)})
			if perr != nil {
				t.Fatal(perr)
			}
			if pb != nil {
				t.Fatalf("Load accepted a broken playbook (diagnostics: %v)", diags)
			}
			if len(diags.Errors()) == 0 {
				t.Fatalf("Load failed without an error-level diagnostic: %v", diags)
			}
			for _, d := range diags.Errors() {
				if d.Pos.Line == 0 || d.Pos.Col == 0 || d.Pos.File == "" {
					t.Errorf("diagnostic without a full position: %q", d.String())
				}
			}
			for _, d := range diags {
				if filepath.Clean(d.Pos.File) == exp.file && d.Pos.Line == exp.line && d.Pos.Col == exp.col &&
					strings.Contains(d.Msg, exp.want) && !d.Warning {
					return
				}
			}
			var b strings.Builder
			for _, d := range diags {
				b.WriteString("\n  " + d.String())
			}
			t.Errorf("want an error containing %q at %s:%d:%d; got:%s", exp.want, exp.file, exp.line, exp.col, b.String())
		})
	}
	sort.Slice(timings, func(i, j int) bool { return timings[i].d > timings[j].d })
	for _, tm := range timings[:min(3, len(timings))] {
		t.Logf("slow load: %s took %s", tm.file, tm.d)
	}
}

// TestBrokenDiagnosticsAreStable loads each broken file twice: the
// diagnostics must be identical (no map-order dependence), so `flow validate`
// output can be compared between runs.
func TestBrokenDiagnosticsAreStable(t *testing.T) {
	for _, path := range corpus(t, "broken") {
		_, d1, _ := safeLoad(path)
		_, d2, _ := safeLoad(path)
		if d1.Error() != d2.Error() {
			t.Errorf("%s: diagnostics differ between two loads:\n%s\n---\n%s", path, d1.Error(), d2.Error())
		}
	}
}

// TestBrokenMessagesNameTheFile checks every rendered diagnostic starts
// with FILE:LINE:COL: (the format editors jump to).
func TestBrokenMessagesNameTheFile(t *testing.T) {
	for _, path := range corpus(t, "broken") {
		_, diags, _ := safeLoad(path)
		for _, line := range strings.Split(diags.Error(), "\n") {
			if !diagLineRE.MatchString(line) {
				t.Errorf("%s: diagnostic line %q is not FILE:LINE:COL: message", path, line)
			}
		}
	}
}

var diagLineRE = regexp.MustCompile(`^[^:\n]+:\d+:\d+: \S.*$`)
