package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The schema is checked with an independent validator
// (santhosh-tekuri/jsonschema), on YAML converted to JSON as an editor's
// YAML language server does.

var (
	schemaOnce     sync.Once
	compiledSchema *jsonschema.Schema
	schemaErr      error
)

// playbookSchema compiles engine.Schema() with the validator.
func playbookSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		b, err := engine.Schema()
		if err != nil {
			schemaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		if err := c.AddResource("mem:///playbook.schema.json", doc); err != nil {
			schemaErr = err
			return
		}
		compiledSchema, schemaErr = c.Compile("mem:///playbook.schema.json")
	})
	if schemaErr != nil {
		t.Fatalf("compile the schema: %v", schemaErr)
	}
	return compiledSchema
}

// yamlToJSON decodes a YAML document (aliases and merge keys resolved) into
// the validator's JSON model.
func yamlToJSON(src []byte) (any, error) {
	var x any
	if err := yaml.Unmarshal(src, &x); err != nil {
		return nil, err
	}
	b, err := json.Marshal(jsonable(x))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func jsonable(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return x
}

func validateYAML(t testing.TB, src []byte) error {
	t.Helper()
	inst, err := yamlToJSON(src)
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	return playbookSchema(t).Validate(inst)
}

// TestSchemaAcceptsValidPlaybooks validates the playbooks the loader's
// tests load cleanly.
func TestSchemaAcceptsValidPlaybooks(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no playbooks in testdata/valid")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateYAML(t, src); err != nil {
			t.Errorf("%s does not match the schema:\n%v", f, err)
		}
	}
}

// TestSchemaAgreesWithLoader feeds the loader and the schema the same
// playbooks: both accept the valid ones and both refuse the broken ones
// (typos above all), so an editor flags what `flow validate` flags.
func TestSchemaAgreesWithLoader(t *testing.T) {
	const head = `name: t
connections:
  db: {mysql: {host: 127.0.0.1, port: 3306, user: root}}
  box: {ssh: {host: 127.0.0.1, user: root}}
steps:
`
	cases := []struct {
		name  string
		steps string // the steps, or a whole playbook when it starts with "name:"
		ok    bool
	}{
		{"sql query", `- sql: {on: db, query: SELECT 1}`, true},
		{"sql exec with session and check", `- sql: {on: db, exec: "SET GLOBAL read_only = ON", check: "SELECT 1", session: ["SET SESSION lock_wait_timeout = 5"]}
  pre: "1 > 0"`, true},
		{"when as a YAML boolean", "- when: true\n  log: {msg: hi}", true},
		{"guards: list of expressions and mappings", "- log: {msg: hi, level: warn}\n  pre: [\"1 > 0\", {that: \"2 > 1\", message: m}]\n  post: {that: \"true\"}", true},
		{"bounded polling", "- sql: {on: db, query: SELECT 1}\n  retries: 3\n  until: result.count > 0\n  interval: 1.5s\n  timeout: 1m30s", true},
		{"parallel group", "- for_each: '[1, 2]'\n  as: x\n  parallel: 2\n  steps:\n    - log: {msg: \"{{ x }}\"}", true},
		{"set", `- set: {a: "1", b: a + "2"}`, true},
		{"wait-gtid from a connection name", `- wait-gtid: {on: db, source: db, timeout: 5s}`, true},
		{"wait-gtid from a target", `- wait-gtid: {on: db, source: {on: db, port: 3307}}`, true},
		{"ssh", `- ssh: {on: box, command: "true", changes: false, ok_codes: [0, 1]}`, true},
		{"redo read", `- redo: {action: read, path: /tmp/flow-schema-test, required: false}`, true},
		{"rescue and always", "- sql: {on: db, exec: \"SET GLOBAL read_only = ON\"}\n  rescue:\n    - log: {msg: undo}\n  always:\n    - log: {msg: done}", true},

		{"typo in a sql field (qurey)", `- sql: {on: db, qurey: SELECT 1}`, false},
		{"typo in a step key (when_)", "- when_: \"true\"\n  log: {msg: hi}", false},
		{"typo in a guard key (mesage)", "- log: {msg: hi}\n  pre: {that: \"true\", mesage: m}", false},
		{"guard without that", "- log: {msg: hi}\n  pre: {message: m}", false},
		{"unknown step type", `- sqll: {on: db, query: SELECT 1}`, false},
		{"two step types", "- sql: {on: db, query: SELECT 1}\n  log: {msg: hi}", false},
		{"no step type", "- name: nothing", false},
		{"a type with steps", "- log: {msg: hi}\n  steps:\n    - log: {msg: hi}", false},
		{"sql without query or exec", `- sql: {on: db}`, false},
		{"sql with query and exec", `- sql: {on: db, query: SELECT 1, exec: "SET GLOBAL read_only = ON"}`, false},
		{"sql without on", `- sql: {query: SELECT 1}`, false},
		{"log without msg", `- log: {level: info}`, false},
		{"ssh with stdin and stdin_sql", `- ssh: {on: box, command: cat, stdin: a, stdin_sql: b}`, false},
		{"ssh ok_codes not integers", `- ssh: {on: box, command: "true", ok_codes: [zero]}`, false},
		{"redo action typo", `- redo: {action: wirte, path: /tmp/x}`, false},
		{"wait-gtid without a reference", `- wait-gtid: {on: db}`, false},
		{"wait-gtid source typo", `- wait-gtid: {on: db, source: {on: db, hots: x}}`, false},
		{"set with a bad name", `- set: {"a-b": "1"}`, false},
		{"retries not an integer", "- log: {msg: hi}\n  retries: many\n  until: \"true\"", false},
		{"interval without a unit", "- log: {msg: hi}\n  retries: 2\n  until: \"true\"\n  interval: 30", false},
		{"until without a bound", "- log: {msg: hi}\n  until: \"true\"", false},
		{"parallel 0", "- for_each: '[1]'\n  parallel: 0\n  steps:\n    - log: {msg: hi}", false},
		{"as without for_each", "- as: x\n  steps:\n    - log: {msg: hi}", false},
		{"for_each on a typed step", "- for_each: '[1]'\n  log: {msg: hi}", false},
		{"with without include", "- with: {a: \"1\"}\n  log: {msg: hi}", false},
		{"bad id", "- id: 1st\n  log: {msg: hi}", false},
		{"bad register name", "- register: a-b\n  log: {msg: hi}", false},
		{"ignore_errors not a boolean", "- ignore_errors: sometimes\n  log: {msg: hi}", false},

		{"top-level typo (step)", "name: t\nstep:\n  - log: {msg: hi}\n", false},
		{"missing name", "steps:\n  - log: {msg: hi}\n", false},
		{"missing steps", "name: t\n", false},
		{"param key typo (requried)", "name: t\nparams:\n  p: {type: string, requried: true}\nsteps:\n  - log: {msg: hi}\n", false},
		{"param type unknown", "name: t\nparams:\n  p: {type: integer}\nsteps:\n  - log: {msg: hi}\n", false},
		{"connection field typo (hots)", "name: t\nconnections:\n  db: {mysql: {hots: x}}\nsteps:\n  - log: {msg: hi}\n", false},
		{"connection of two kinds", "name: t\nconnections:\n  db: {mysql: {host: x}, ssh: {host: x}}\nsteps:\n  - log: {msg: hi}\n", false},
		{"connection of no kind", "name: t\nconnections:\n  db: {postgres: {host: x}}\nsteps:\n  - log: {msg: hi}\n", false},
		{"ssh-only field on mysql", "name: t\nconnections:\n  db: {mysql: {key_file: /k}}\nsteps:\n  - log: {msg: hi}\n", false},
		{"empty sections", "name: t\nparams:\n  p:\nvars:\nconnections:\n  db: {mysql: }\nsteps:\n  - sql: {on: db, exec: \"SET GLOBAL read_only = ON\"}\n    effect:\n    pre: \"true\"\n  - include: other.yaml\n    with:\n", true},
		{"params and vars", "name: t\ndescription: d\nparams:\n  p: {type: int, default: 3, help: h}\n  s: {type: string, secret: true, required: true, config: a.b}\nvars:\n  v: [1, 2]\n  w: {a: 1}\n  x: \"{{ p + 1 }}\"\nsteps:\n  - log: {msg: \"{{ v }}\"}\n", true},
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("name: other\nsteps:\n  - log: {msg: hi}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		src := c.steps
		if !strings.HasPrefix(src, "name:") && !strings.HasPrefix(src, "steps:") {
			src = head + indent(src)
		}
		path := filepath.Join(dir, fmt.Sprintf("case%02d.yaml", i))
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		pb, diags := engine.Load(path)
		loaded := pb != nil
		serr := validateYAML(t, []byte(src))
		if loaded != c.ok {
			t.Errorf("%s: the loader says ok=%v, want %v:\n%s\n%v", c.name, loaded, c.ok, src, diags)
		}
		if (serr == nil) != c.ok {
			t.Errorf("%s: the schema says ok=%v, want %v:\n%s\n%v", c.name, serr == nil, c.ok, src, serr)
		}
	}
}

// indent puts a block of steps under `steps:`.
func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// schemaDoc decodes engine.Schema() into plain maps.
func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := engine.Schema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("flow schema is not JSON: %v", err)
	}
	return doc
}

// TestSchemaIsClosed: every mapping the schema describes refuses unknown
// keys, so a typo anywhere is caught.
func TestSchemaIsClosed(t *testing.T) {
	doc := schemaDoc(t)
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	objects := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["properties"]; ok {
				objects++
				if x["additionalProperties"] != false {
					t.Errorf("%s: properties without additionalProperties: false", path)
				}
			}
			if isObject(x["type"]) && x["properties"] == nil && x["additionalProperties"] == nil {
				t.Errorf("%s: an object schema that accepts any key", path)
			}
			for k, e := range x {
				if path == "/properties" && k == "definitions" {
					continue // free-form by design (YAML anchors)
				}
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("", doc)
	if objects < 20 {
		t.Errorf("only %d closed objects: the schema is missing parts", objects)
	}
}

// isObject reports whether a schema's type admits objects.
func isObject(typ any) bool {
	switch v := typ.(type) {
	case string:
		return v == "object"
	case []any:
		for _, e := range v {
			if e == "object" {
				return true
			}
		}
	}
	return false
}

// TestSchemaFollowsRegistry: one step variant per registered type plus
// group and include, each with the common keys, and the test-only
// testprobe type's fields with their Go types.
func TestSchemaFollowsRegistry(t *testing.T) {
	doc := schemaDoc(t)
	defs := doc["$defs"].(map[string]any)
	var refs []string
	for _, r := range defs["step"].(map[string]any)["oneOf"].([]any) {
		refs = append(refs, strings.TrimPrefix(r.(map[string]any)["$ref"].(string), "#/$defs/step."))
	}
	var want []string
	for _, st := range engine.Types() {
		want = append(want, st.Name)
	}
	want = append(want, "group", "include")
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("step variants %v, want %v", refs, want)
	}
	common := []string{"id", "name", "when", "pre", "post", "register", "retries", "until", "interval", "timeout",
		"effect", "confirm", "rescue", "always", "ignore_errors", "steps", "for_each", "as", "parallel", "include", "with"}
	seen := map[string]bool{}
	for _, v := range want {
		props := defs["step."+v].(map[string]any)["properties"].(map[string]any)
		for k := range props {
			seen[k] = true
		}
		for _, k := range []string{"id", "name", "when", "pre", "post", "register", "rescue", "always"} {
			if props[k] == nil {
				t.Errorf("step.%s lacks the common key %s", v, k)
			}
		}
	}
	for _, k := range common {
		if !seen[k] {
			t.Errorf("no step variant takes the common key %s", k)
		}
	}
	probe := defs["spec.testprobe"].(map[string]any)
	got := map[string]string{}
	for k, v := range probe["properties"].(map[string]any) {
		m := v.(map[string]any)
		if r, ok := m["$ref"]; ok {
			got[k] = r.(string)
		} else {
			got[k] = fmt.Sprint(m["type"])
		}
	}
	wantProbe := map[string]string{"key": "string", "msg": "#/$defs/text", "changes": "boolean", "fail": "boolean", "fail_times": "integer", "await": "integer"}
	if !reflect.DeepEqual(got, wantProbe) {
		t.Errorf("spec.testprobe fields %v, want %v", got, wantProbe)
	}
	if probe["description"] == "" || probe["description"] == nil {
		t.Errorf("spec.testprobe has no description (the type's Summary)")
	}
	sql := defs["spec.sql"].(map[string]any)
	var sqlFields []string
	for k := range sql["properties"].(map[string]any) {
		sqlFields = append(sqlFields, k)
	}
	sort.Strings(sqlFields)
	if strings.Join(sqlFields, " ") != "at check exec host on port query session" {
		t.Errorf("spec.sql fields %v (the inline target's on/host/port/at and the struct's own)", sqlFields)
	}
	a, _ := engine.Schema()
	b, _ := engine.Schema()
	if !bytes.Equal(a, b) {
		t.Error("two calls of engine.Schema() differ")
	}
}
