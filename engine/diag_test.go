package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
)

// loadFail loads yaml (with extra files) and returns the one error
// diagnostic whose message contains want.
func loadFail(t *testing.T, yaml string, files map[string]string, want string) engine.Diag {
	t.Helper()
	pb, diags := engine.Load(enginetest.Write(t, yaml, files))
	if pb != nil {
		t.Fatalf("the playbook loaded; want an error containing %q", want)
	}
	for _, d := range diags.Errors() {
		if strings.Contains(d.Msg, want) {
			return d
		}
	}
	t.Fatalf("no error contains %q; got:\n%v", want, diags)
	return engine.Diag{}
}

// loadOK loads a playbook that must be valid.
func loadOK(t *testing.T, yaml string, files map[string]string) *engine.Playbook {
	t.Helper()
	pb, diags := engine.Load(enginetest.Write(t, yaml, files))
	if pb == nil {
		t.Fatalf("the playbook did not load:\n%v", diags)
	}
	return pb
}

// formatLines renders d and checks its first line is String's.
func formatLines(t *testing.T, d engine.Diag) []string {
	t.Helper()
	lines := strings.Split(d.Format(), "\n")
	if lines[0] != d.String() {
		t.Fatalf("Format's first line %q is not String's %q", lines[0], d.String())
	}
	return lines
}

// TestDiagFormatWithText is the example: `with:` takes the text
// my.cnf as it is, and a value written for the old `with:` (an expression)
// is refused with the exact rewrite, source line and caret.
func TestDiagFormatWithText(t *testing.T) {
	child := "name: child\nparams:\n  conf_name: {type: string}\n  port: {type: int}\nsteps:\n  - log: {msg: hi}\n"
	files := map[string]string{"child.yaml": child}
	loadOK(t, "name: demo\nsteps:\n  - include: child.yaml\n    with: {conf_name: my.cnf, port: 3310}\n", files)
	d := loadFail(t, "name: demo\nsteps:\n  - include: child.yaml\n    with: {conf_name: '\"my.cnf\"'}\n", files,
		"is an expression, the form of `with:` before plain values")
	want := []string{
		d.String(),
		`  4 |     with: {conf_name: '"my.cnf"'}`,
		"    |                       ^",
		"  `with:` takes plain values, as --var and the config file do; an expression goes inside {{ }} (a lone {{ expr }} keeps its type)",
		"  hint: write conf_name: my.cnf",
	}
	if got := formatLines(t, d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", d.Format(), strings.Join(want, "\n"))
	}
	d = loadFail(t, "name: demo\nparams:\n  p: {type: int, default: 1}\nsteps:\n  - include: child.yaml\n    with: {port: p}\n", files,
		"`p` reads names of this playbook as an expression")
	if d.Hint != `write port: '{{ p }}'` {
		t.Errorf("hint %q, want the template rewrite", d.Hint)
	}
	d = loadFail(t, "name: demo\nsteps:\n  - include: child.yaml\n    with: {port: many}\n", files, `parameter "port" of child.yaml is a int: "many" is not an integer`)
	if !strings.HasSuffix(d.Pos.String(), ":4:18") {
		t.Errorf("position %s, want the value's line 4", d.Pos)
	}
}

// TestDiagHints checks the known mistakes each get their hint.
func TestDiagHints(t *testing.T) {
	const db = "connections:\n  db: {mysql: {host: 127.0.0.1}}\n  h: {ssh: {host: 127.0.0.1}}\n"
	cases := []struct {
		name, yaml, want, hint string
	}{
		{"unknown name near a defined one", "name: demo\nvars: {nodes: 3}\nsteps:\n  - log: {msg: hi}\n    when: nodez > 1\n",
			"unknown name nodez", "did you mean nodes?"},
		{"unknown name, few names", "name: demo\nvars: {alpha: 3, beta: 4}\nsteps:\n  - log: {msg: hi}\n    when: zzzzzz > 1\n",
			"unknown name zzzzzz", "the names defined here are alpha, beta, run, steps"},
		{"sql template in quotes", "name: demo\nvars: {who: bob}\n" + db + "steps:\n  - sql:\n      on: db\n      query: \"SELECT * FROM t WHERE user = '{{ who }}'\"\n",
			"is inside single quotes", "remove the quotes around {{ }}: flow quotes the value itself; write SELECT * FROM t WHERE user = {{ who }}"},
		{"shell template inside a larger quoted word", "name: demo\nvars: {who: bob}\n" + db + "steps:\n  - ssh:\n      on: h\n      command: \"echo 'hi {{ who }}'\"\n",
			"is inside", `remove the quotes around {{ }}: flow quotes the value itself; to join text and a value, build it in the expression, e.g. {{ "prefix-" + name }}`},
		{"unquoted template", "name: demo\nvars: {x: 1}\nsteps:\n  - log:\n      msg: {{ x }}\n",
			"log.msg", `a value that starts with {{ must be quoted: write "{{ x }}"`},
		{"unquoted template in a common key", "name: demo\nvars: {x: 1}\nsteps:\n  - log: {msg: hi}\n    name: {{ x }}\n",
			"name must be a string", `a value that starts with {{ must be quoted: write "{{ x }}"`},
		{"type field at the step's level", "name: demo\n" + db + "steps:\n  - sql: {on: db}\n    query: SELECT 1\n",
			`unknown key "query"`, "indent query: under sql:, beside the type's other fields"},
		{"common key inside the type", "name: demo\nsteps:\n  - log: {msg: hi, when: true}\n",
			`unknown key "when"`, "move when: out of log: to the step's level, beside log:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := loadFail(t, c.yaml, nil, c.want)
			if d.Hint != c.hint {
				t.Fatalf("hint %q, want %q (diagnostic:\n%s)", d.Hint, c.hint, d.Format())
			}
			lines := formatLines(t, d)
			if lines[len(lines)-1] != "  hint: "+c.hint {
				t.Errorf("Format does not end with the hint:\n%s", d.Format())
			}
		})
	}
}

// TestDiagFormatCaret checks the caret stands under the column, for a plain
// line, a line indented with a tab (YAML error) and a line too long to show.
func TestDiagFormatCaret(t *testing.T) {
	d := loadFail(t, "name: demo\nsteps:\n  - log: {msg: hi}\n    retires: 3\n", nil, `unknown key "retires"`)
	lines := formatLines(t, d)
	if len(lines) != 3 || lines[1] != "  4 |     retires: 3" || lines[2] != "    |     ^" {
		t.Fatalf("got:\n%s", d.Format())
	}

	d = loadFail(t, "name: demo\nsteps:\n\t- log: {msg: hi}\n", nil, "tabs cannot indent")
	lines = formatLines(t, d)
	if len(lines) != 3 || lines[1] != "  3 | \t- log: {msg: hi}" || lines[2] != "    | ^" {
		t.Fatalf("got:\n%q", lines)
	}

	long := "name: demo\nsteps:\n  - log: {msg: hi}\n    when: " + strings.Repeat("1 == 1 && ", 40) + "nosuch\n"
	d = loadFail(t, long, nil, "unknown name nosuch")
	lines = formatLines(t, d)
	src, caret := lines[1], lines[2]
	if !strings.Contains(src, "…") || len([]rune(src)) > 120 {
		t.Fatalf("a long line is not cut to a window: %q", src)
	}
	col := len([]rune(caret)) - 1
	if r := []rune(src); col >= len(r) || !strings.HasPrefix(string(r[col:]), "nosuch") {
		t.Fatalf("the caret does not stand under the unknown name:\n%s\n%s", src, caret)
	}
}

// TestFormattedDiagsIsStillDiags checks the error a command returns for a
// playbook that does not load renders the snippet and still maps to exit 2.
func TestFormattedDiagsIsStillDiags(t *testing.T) {
	_, diags := engine.Load(enginetest.Write(t, "name: demo\nsteps:\n  - log: {msg: hi}\n    retires: 3\n", nil))
	err := diags.Formatted()
	var ds engine.Diags
	if !errors.As(err, &ds) || len(ds) != 1 {
		t.Fatalf("errors.As does not find the Diags in %v", err)
	}
	if engine.ExitCode(err) != engine.ExitInvalid {
		t.Errorf("exit code %d, want %d", engine.ExitCode(err), engine.ExitInvalid)
	}
	if err.Error() != diags.Format() || !strings.Contains(err.Error(), "\n  4 |     retires: 3\n") {
		t.Errorf("the error is not the formatted form:\n%s", err)
	}
}

// TestRemovedParameterRefused: a parameter a playbook retired with
// `removed:` is refused, with what replaces it, when a wrapper's with: or a
// --var still sets it; unset, it changes nothing, and the playbook itself
// can no longer read it.
func TestRemovedParameterRefused(t *testing.T) {
	child := "name: child\nparams:\n  old_switch: {removed: the spelling comes from the server}\nsteps:\n  - log: {msg: hi}\n"
	files := map[string]string{"child.yaml": child}
	d := loadFail(t, "name: demo\nsteps:\n  - include: child.yaml\n    with: {old_switch: false}\n", files, `child.yaml no longer has parameter "old_switch"`)
	if d.Detail != "the spelling comes from the server" || d.Hint != "delete this line" {
		t.Errorf("detail %q, hint %q", d.Detail, d.Hint)
	}
	loadOK(t, "name: demo\nsteps:\n  - include: child.yaml\n", files)
	loadFail(t, "name: demo\nparams:\n  gone: {removed: use new}\nsteps:\n  - log: {msg: \"{{ gone }}\"}\n", nil, "unknown name gone")
	loadFail(t, "name: demo\nparams:\n  gone: {removed: \"\"}\nsteps:\n  - log: {msg: hi}\n", nil, "say what replaces the parameter")

	res := enginetest.Run(t, "name: demo\nparams:\n  gone: {removed: use new_one instead}\nsteps:\n  - log: {msg: hi}\n",
		enginetest.Options{Mode: engine.ModeRun, Vars: map[string]string{"gone": "1"}})
	if res.Err == nil || !strings.Contains(res.Err.Error(), `--var gone sets parameter "gone", which this playbook no longer has: use new_one instead`) {
		t.Errorf("a --var of a removed parameter: %v", res.Err)
	}
}
