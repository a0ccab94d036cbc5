package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
)

// registeredTypes are the names of the step types this binary registers.
func registeredTypes() []string {
	var out []string
	for _, t := range engine.Types() {
		out = append(out, t.Name)
	}
	return out
}

// TestStepsCommandListsTheRegistry: `flow steps` prints every registered
// type with its summary and every field the schema gives it, and says
// whether it changes state.
func TestStepsCommandListsTheRegistry(t *testing.T) {
	code, out, errOut := runFlow("steps")
	if code != 0 {
		t.Fatalf("flow steps: exit %d: %s", code, errOut)
	}
	ref, err := engine.Reference()
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(engine.Types()) || len(ref) < 9 {
		t.Fatalf("the reference has %d types, the registry %d", len(ref), len(engine.Types()))
	}
	for _, d := range ref {
		if !strings.Contains(out, "\n"+d.Name+": "+d.Summary+"\n") && !strings.HasPrefix(out, d.Name+": "+d.Summary+"\n") {
			t.Errorf("flow steps does not list %s with its summary", d.Name)
		}
		for _, f := range d.Fields {
			if f.Doc == "" {
				t.Errorf("%s.%s has no description", d.Name, f.Name)
			}
			if !regexp.MustCompile(`\n  ` + regexp.QuoteMeta(f.Name) + ` +\(` + regexp.QuoteMeta(f.Kind) + `[,)].*` + regexp.QuoteMeta(f.Doc) + `\n`).MatchString(out) {
				t.Errorf("flow steps does not list field %s.%s (%s): %s", d.Name, f.Name, f.Kind, f.Doc)
			}
		}
	}
	for _, want := range []string{
		"sql: ", "  changes state: `exec:` yes, `query:` no; safe to re-run: no\n",
		"  changes state: yes; safe to re-run: no\n", // clone: a fresh spec mutates
		"  on               (string, required) the mysql connection: a name under connections:\n",
		"  fields: a mapping of name → expression\n", // set
		"\ncommon keys, on any step besides its type:\n",
		"  hint                (text) what the operator should check or do when this step fails: added to its error\n",
		"  for_each            (expression, group only) run the group once per item of this list expression\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("flow steps lacks %q:\n%s", want, out)
		}
	}
}

// TestStepsMarkdown: --markdown gives a table row and a section per type,
// each field in its section's table.
func TestStepsMarkdown(t *testing.T) {
	code, out, errOut := runFlow("steps", "--markdown")
	if code != 0 {
		t.Fatalf("flow steps --markdown: exit %d: %s", code, errOut)
	}
	ref, err := engine.Reference()
	if err != nil {
		t.Fatal(err)
	}
	sections := strings.Split(out, "\n### ")
	if len(sections) != len(ref)+2 || !strings.HasPrefix(sections[len(sections)-1], "Common keys\n") {
		t.Fatalf("%d sections for %d types and the common keys", len(sections)-1, len(ref))
	}
	for _, k := range engine.CommonKeyDocs() {
		if !strings.Contains(sections[len(sections)-1], "\n| `"+k.Name+"` | "+mdCell(k.Kind)+" | ") {
			t.Errorf("the common keys table has no row for %s (%s)", k.Name, k.Kind)
		}
	}
	for i, d := range ref {
		if !strings.Contains(sections[0], "\n| `"+d.Name+"` | ") {
			t.Errorf("the type table has no row for %s", d.Name)
		}
		sec := sections[i+1]
		if !strings.HasPrefix(sec, "`"+d.Name+"`\n") {
			t.Errorf("section %d is not %s: %q", i, d.Name, sec[:min(len(sec), 40)])
		}
		for _, f := range d.Fields {
			if !strings.Contains(sec, "\n| `"+f.Name+"` | ") {
				t.Errorf("section %s has no row for field %s", d.Name, f.Name)
			}
		}
	}
	if !strings.Contains(out, "| `if_unreachable` | string | no | fail (default)") {
		t.Errorf("the lock section lacks if_unreachable:\n%s", out)
	}
}

// TestReadmeStepTableListsTheRegistry: the README's table under "### Steps"
// names exactly the registered step types (in its first column, in
// backquotes; group and include are rows without them).
func TestReadmeStepTableListsTheRegistry(t *testing.T) {
	section := readmeSteps(t)
	var listed []string
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the first table ends
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(cells[1], "---") || strings.TrimSpace(cells[1]) == "type" {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[1], -1) {
			listed = append(listed, m[1])
		}
	}
	sort.Strings(listed)
	want := registeredTypes()
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Fatalf("the README's step table lists %v; the registry has %v (see `flow steps --markdown`)", listed, want)
	}
}

// TestReadmeNamesEveryCommonKey: the README's "### Steps" section names
// every common key of engine's table in backquotes (a new key is
// documented where users read about steps).
func TestReadmeNamesEveryCommonKey(t *testing.T) {
	section := readmeSteps(t)
	section, _, _ = strings.Cut(section, "\n### ")
	for _, k := range engine.CommonKeyDocs() {
		if !strings.Contains(section, "`"+k.Name+"`") && !strings.Contains(section, "`"+k.Name+":") {
			t.Errorf("the README's ### Steps section does not name the common key `%s` (see `flow steps --markdown`)", k.Name)
		}
	}
}

// readmeSteps is the README from its section "### Steps" on.
func readmeSteps(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Steps\n")
	if !ok {
		t.Fatal("README.md has no section ### Steps")
	}
	return section
}
