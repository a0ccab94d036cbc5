package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// repoRoot is the repository, seen from this package's folder.
const repoRoot = "../.."

// committedSchema is where the repository keeps `flow schema`'s output.
const committedSchema = "schema/playbook.schema.json"

// shippedPlaybooks lists the playbooks under playbooks/ and examples/ (not
// the headers in playbooks/lib/, which the playbooks use:).
func shippedPlaybooks(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"playbooks", "examples"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "lib" {
				return filepath.SkipDir // headers (use:), not playbooks: checked through the playbooks that use them
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 7 {
		t.Fatalf("found %d shipped playbooks, want the 3 flashback playbooks and the 4 examples at least: %v", len(out), out)
	}
	return out
}

// TestSchemaCommand: `flow schema` prints engine.Schema(), and the
// committed schema/playbook.schema.json is that output (it cannot drift).
func TestSchemaCommand(t *testing.T) {
	code, out, errOut := runFlow("schema")
	if code != 0 {
		t.Fatalf("flow schema: exit %d: %s", code, errOut)
	}
	want, err := engine.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatal("flow schema does not print engine.Schema()")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc["$schema"] != engine.SchemaDraft {
		t.Fatalf("flow schema: not a draft 2020-12 JSON Schema (%v)", err)
	}
	committed, err := os.ReadFile(filepath.Join(repoRoot, committedSchema))
	if err != nil {
		t.Fatalf("%v: generate it with `go run ./cmd/flow schema > %s`", err, committedSchema)
	}
	if !bytes.Equal(committed, want) {
		t.Fatalf("%s differs from `flow schema`: regenerate it with `go run ./cmd/flow schema > %s`", committedSchema, committedSchema)
	}
	if code, _, _ := runFlow("schema", "extra"); code != engine.ExitInvalid {
		t.Errorf("flow schema extra: exit %d, want %d", code, engine.ExitInvalid)
	}
}

// TestShippedPlaybooksMatchSchema: every shipped playbook names the
// committed schema on its first line (the path right for its folder) and
// validates against it with an independent validator; and the validator
// catches typos in them.
func TestShippedPlaybooksMatchSchema(t *testing.T) {
	sch := compileSchema(t, filepath.Join(repoRoot, committedSchema))
	for _, p := range shippedPlaybooks(t) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(filepath.Dir(p), filepath.Join(repoRoot, committedSchema))
		if err != nil {
			t.Fatal(err)
		}
		wantLine := "# yaml-language-server: $schema=" + filepath.ToSlash(rel)
		if first, _, _ := strings.Cut(string(src), "\n"); first != wantLine {
			t.Errorf("%s: first line %q, want %q", p, first, wantLine)
		}
		if err := sch.Validate(yamlInstance(t, src)); err != nil {
			t.Errorf("%s does not match the schema:\n%v", p, err)
		}
	}
	// Typos a person makes in these files are caught.
	start, err := os.ReadFile(filepath.Join(repoRoot, "playbooks/flashback-start.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range []struct{ from, to string }{
		{" query: ", " qurey: "},
		{" when: ", " when_: "},
		{"\n  - name:", "\n  - nmae:"},
		{"\nsteps:", "\nstep:"},
	} {
		if !bytes.Contains(start, []byte(typo.from)) {
			t.Errorf("flashback-start.yaml has no %q to misspell", typo.from)
			continue
		}
		bad := bytes.Replace(start, []byte(typo.from), []byte(typo.to), 1)
		if err := sch.Validate(yamlInstance(t, bad)); err == nil {
			t.Errorf("the schema accepts flashback-start.yaml with %q misspelt as %q", typo.from, typo.to)
		}
	}
}

// compileSchema compiles a schema file with the validator.
func compileSchema(t *testing.T, path string) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("mem:///playbook.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem:///playbook.schema.json")
	if err != nil {
		t.Fatalf("%s does not compile: %v", path, err)
	}
	return sch
}

// yamlInstance converts a YAML document (aliases and merge keys resolved)
// to the validator's JSON model, as an editor's YAML language server does.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var x any
	if err := yaml.Unmarshal(src, &x); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	b, err := json.Marshal(stringKeys(x))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func stringKeys(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = stringKeys(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = stringKeys(e)
		}
		return v
	}
	return x
}
