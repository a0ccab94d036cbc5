package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// SchemaDraft is the JSON Schema dialect Schema writes.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

// Schema returns the JSON Schema (draft 2020-12) of a playbook file,
// generated from the loader's keys and the registered step types: every
// mapping is closed (`additionalProperties: false`), so a misspelt key is
// an error in an editor. The output is deterministic (keys sorted), ends
// with a newline, and is what `flow schema` prints.
func Schema() ([]byte, error) {
	g := &schemaGen{used: map[string]bool{}}
	doc, err := g.document()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("schema: %v", err)
	}
	return buf.Bytes(), nil
}

// obj is a JSON Schema object under construction.
type obj = map[string]any

func ref(def string) obj { return obj{"$ref": "#/$defs/" + def} }

func described(s obj, desc string) obj {
	if desc != "" {
		s["description"] = desc
	}
	return s
}

// closed returns an object schema that accepts only props.
func closed(props obj, required ...string) obj {
	s := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}

// nameMap is a mapping whose keys are names (variables, parameters,
// connections) and whose values follow val.
func nameMap(val any) obj {
	return obj{"type": "object", "propertyNames": ref("name"), "additionalProperties": val}
}

// orNull lets an object schema be empty too: the loader reads `key:` with
// nothing after it as an empty mapping.
func orNull(s obj) obj {
	s["type"] = []string{"object", "null"}
	return s
}

// scalarTypes are the YAML scalars a template or an expression may be
// written as (`when: true`, `port: 3306`).
var scalarTypes = []string{"string", "number", "boolean"}

// goDuration matches what time.ParseDuration accepts (positive).
const goDuration = `^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`

// topDocs describe the playbook's top-level keys (topKeys).
var topDocs = map[string]string{
	"name":        "the playbook's name (required)",
	"description": "what the playbook does",
	"params":      "typed inputs: --var NAME=VALUE, FLOW_VAR_NAME, the config key a parameter names, or its default",
	"vars":        "variables computed once at the start, in order: literals, lists, mappings or templates ({{ expression }})",
	"connections": "named endpoints: each is `mysql:` or `ssh:` with fields that are templates",
	"use":         "header files (relative to this one) whose params: and connections: this playbook takes as its own; includes of playbooks that use the same header get those parameters passed on",
	"steps":       "the steps, run in order",
	"definitions": "free-form: a place for YAML anchors (&name) that steps merge or alias; flow ignores it",
}

// paramDocs describe a parameter's keys (paramKeys).
var paramDocs = map[string]string{
	"type":     "string (default), int, bool, float, list, map or duration",
	"required": "the run stops (exit 2) before anything runs when no value is given",
	"default":  "the value when none is given (not with required: true)",
	"help":     "what the parameter is, for messages",
	"secret":   "masked in every log, error and file flow writes",
	"config":   "the config file's SECTION.KEY this parameter reads (FLOW_SECTION_KEY wins over the file)",
	"removed":  "the parameter is gone: what replaces it; a wrapper's with: or a --var that still sets it is refused with this text",
}

// connDocs describe connection fields (connFields), by kind.
var connDocs = map[string]string{
	"mysql":                 "a MySQL endpoint",
	"ssh":                   "an SSH host",
	"mysql.host":            "the server's host (a template; a step's `host:` overrides it)",
	"mysql.port":            "the server's port (a step's `port:` overrides it)",
	"mysql.user":            "the MySQL account",
	"mysql.password":        "the account's password: use a secret parameter, e.g. \"{{ admin_pass }}\"",
	"mysql.database":        "the default database",
	"mysql.via":             "an ssh connection to tunnel through (a MySQL that listens on a node's loopback)",
	"mysql.tunnel_to":       "with via: the address the tunnel reaches from the SSH host (default 127.0.0.1)",
	"mysql.connect_timeout": "bounds connecting, e.g. 5s",
	"ssh.host":              "the host (a template; a step's `host:` overrides it)",
	"ssh.port":              "the SSH port (default 22)",
	"ssh.user":              "the login user",
	"ssh.key_file":          "the private key file",
	"ssh.password":          "a password: use a secret parameter",
	"ssh.known_hosts":       "the known_hosts file that authenticates the host",
	"ssh.connect_timeout":   "bounds connecting, e.g. 5s",
}

// specDocs describe step fields, keyed "TYPE.FIELD" ("target.FIELD" for
// on/host/port): Go doc comments are not there at run time. A field's
// `description:"…"` struct tag wins. An entry naming no field is an error.
var specDocs = map[string]string{
	"target.on":   "the connection: a name under connections:",
	"target.host": "overrides the connection's host (e.g. a node found at run time)",
	"target.port": "overrides the connection's port",
	"target.at":   "the node as one value instead of host and port: a mapping with host and port (a dataserver row) or \"host:port\"; an ssh step takes its host",

	"sql.query":   "a read-only statement: its rows are the output (rows, row, count, columns); runs in a dry run",
	"sql.exec":    "a state-changing statement (output rows_affected); listed, not run, in a dry run",
	"sql.check":   "a read-only query that returns rows when exec: already took effect (used when resuming)",
	"sql.session": "statements run first on the same connection (SET SESSION …)",

	"ssh.command":   "the shell command; interpolated values become shell words",
	"ssh.stdin":     "fed to the command: the place for secrets (never on a command line, never logged)",
	"ssh.stdin_sql": "SQL fed to the command (a mysql client): values become SQL literals; never logged",
	"ssh.changes":   "whether the command changes state (default true); false runs it in a dry run",
	"ssh.ok_codes":  "exit codes that count as success (default [0])",

	"assert.that":    "the expression that must be true",
	"assert.message": "what is wrong and what to do (a template)",

	"log.msg":     "the message (a template)",
	"log.level":   "debug, info (default), warn or error",
	"log.summary": "also a fact of the run's summary (flow status, flow report): what changed where, when",

	"redo.action":     "write, read or clear the record",
	"redo.path":       "the record's file; empty: redo.json in the run's state directory (--state-dir)",
	"redo.format":     "json (default) or legacy (the original tool's one-line file)",
	"redo.values":     "write: the names and expressions to record",
	"redo.required":   "read: a missing record is an error (default true)",
	"redo.written_by": "read: the playbook that writes the record, named when it is missing",

	"clone.donor_host":      "the donor's host as the recipient reaches it",
	"clone.donor_port":      "the donor's port as the recipient reaches it",
	"clone.donor_user":      "an account on the donor with BACKUP_ADMIN",
	"clone.donor_password":  "its password: a secret, never logged or shown",
	"clone.buffer_size":     "clone_buffer_size in bytes (32M-style suffixes allowed)",
	"clone.max_concurrency": "clone_max_concurrency",
	"clone.autotune":        "clone_autotune_concurrency",
	"clone.restart_timeout": "bounds the wait for the recipient to come back after the clone (default 5m)",
	"clone.timeout":         "bounds the whole step (default 6h)",
	"clone.progress":        "how often copy progress is logged (default 5s)",
	"clone.data_directory":  "a new folder on the recipient (absolute path) that receives the snapshot while the recipient keeps its data and keeps serving (CLONE INSTANCE … DATA DIRECTORY, MySQL 8.0.17+); no restart",

	"wait-gtid.gtid":          "an expression giving the GTID set to wait for",
	"wait-gtid.source":        "a MySQL target whose gtid_executed, read once at the start, is the set to wait for: a connection name or {on, host, port}",
	"wait-gtid.interval":      "the poll interval (default 200ms)",
	"wait-gtid.timeout":       "bounds the whole wait (default 10m)",
	"wait-gtid.stopped_grace": "how long the node may make no progress (applier stopped, no channel, unreachable) before the step fails (default 30s)",
	"wait-gtid.progress":      "how often progress is logged (default 5s)",

	"lock.name":           "the lock's name (GET_LOCK), at most 64 characters (default flow)",
	"lock.wait":           "how long to wait while another session holds the lock, e.g. 30s (default 0s: fail at once)",
	"lock.if_unreachable": "fail (default): a lock server that does not answer stops the run; later: go on, the lock is taken as soon as it answers (a playbook that restarts that server itself)",
}

// specRules add what a step type's Check enforces and reflection cannot
// see: required fields and exclusive alternatives. Every field they name
// must exist.
var specRules = map[string]obj{
	"sql":         {"oneOf": []any{obj{"required": []string{"query"}}, obj{"required": []string{"exec"}}}},
	"ssh":         {"required": []string{"command"}, "not": obj{"required": []string{"stdin", "stdin_sql"}}},
	"assert":      {"required": []string{"that"}},
	"log":         {"required": []string{"msg"}},
	"redo":        {"required": []string{"action", "path"}},
	"replication": {"required": []string{"action"}},
	"clone":       {"required": []string{"donor_host", "donor_port", "donor_user", "donor_password"}},
	"wait-gtid":   {"oneOf": []any{obj{"required": []string{"gtid"}}, obj{"required": []string{"source"}}}},
}

// specEnums list the values of string fields that take one of a few words.
var specEnums = map[string][]string{
	"redo.action": {"write", "read", "update", "clear"},
	"redo.format": {"json", "legacy"},
}

// customShapes give the schema of types that decode themselves and do not
// implement SchemaShaper, keyed by the Go type's name (set in init: the
// shapes call back into the generator).
var customShapes map[string]func(g *schemaGen, t reflect.Type) (obj, error)

func init() {
	customShapes = map[string]func(g *schemaGen, t reflect.Type) (obj, error){
		// set: a mapping of variable name → expression, in order.
		"steps.SetStep": func(*schemaGen, reflect.Type) (obj, error) {
			return nameMap(ref("expression")), nil
		},
		// wait-gtid's source: a connection name or a strict {on, host, port}.
		"steps.GTIDSource": func(g *schemaGen, t reflect.Type) (obj, error) {
			m, err := g.structSchema(t, "wait-gtid", "source")
			if err != nil {
				return nil, err
			}
			return obj{"oneOf": []any{described(obj{"type": "string"}, "a mysql connection's name"), m}}, nil
		},
	}
}

// schemaGen builds the schema; used records the table entries consulted,
// so an entry that names nothing is reported.
type schemaGen struct {
	used map[string]bool
}

func (g *schemaGen) doc(key string) string {
	if d, ok := specDocs[key]; ok {
		g.used[key] = true
		return d
	}
	return ""
}

// document is the JSON Schema of a playbook file: the shared definitions,
// parameters, connections, steps (one variant per registered type, a group
// and an include) and the top-level keys.
func (g *schemaGen) document() (obj, error) {
	defs := sharedDefs()
	param, err := paramSchema()
	if err != nil {
		return nil, err
	}
	defs["param"] = param
	conn, err := connectionSchema()
	if err != nil {
		return nil, err
	}
	defs["connection"] = conn
	if err := g.stepDefs(defs); err != nil {
		return nil, err
	}
	if err := g.unusedTableEntries(); err != nil {
		return nil, err
	}
	props, err := topSchemas()
	if err != nil {
		return nil, err
	}
	root := closed(props, "name", "steps")
	root["$schema"] = SchemaDraft
	root["title"] = "flow playbook"
	root["description"] = "A flow playbook: typed steps run against MySQL clusters behind the DBScale router. Generated by `flow schema`."
	root["$defs"] = defs
	return root, nil
}

// sharedDefs are the definitions the other schemas refer to by name:
// expression, text, sql, shell, value, duration, name, steps and guards.
func sharedDefs() obj {
	defs := obj{
		"expression": described(obj{"type": scalarTypes}, "an expression (expr-lang) over parameters, variables, registered outputs and steps.<id>"),
		"text":       described(obj{"type": scalarTypes}, "text; {{ expression }} interpolates a value"),
		"sql":        described(obj{"type": scalarTypes}, "a SQL statement; {{ expression }} interpolates a value as a SQL literal (identifiers through ident())"),
		"shell":      described(obj{"type": scalarTypes}, "a shell command; {{ expression }} interpolates a value as one shell word"),
		"value":      described(obj{"type": append(append([]string(nil), scalarTypes...), "null")}, "a literal, or a template: a lone {{ expression }} keeps the expression's type"),
		"duration":   described(obj{"type": "string", "pattern": goDuration}, "a duration such as 500ms, 30s, 5m or 1h30m"),
		"name":       described(obj{"type": "string", "pattern": nameRE.String()}, "a name: letters, digits and _, not starting with a digit"),
		"steps":      obj{"type": "array", "items": ref("step")},
	}
	defs["guard"] = obj{"oneOf": []any{
		ref("expression"),
		closed(obj{"that": described(ref("expression"), "the expression that must hold"), "message": described(ref("text"), "what is wrong and what to do")}, "that"),
	}}
	defs["guards"] = obj{"oneOf": []any{ref("guard"), obj{"type": "array", "items": ref("guard")}}}
	return defs
}

// paramSchema is the schema of one entry under `params:`.
func paramSchema() (obj, error) {
	pprops := obj{}
	for _, k := range paramKeys {
		d, ok := paramDocs[k]
		if !ok {
			return nil, fmt.Errorf("schema: parameter key %q has no description", k)
		}
		var s obj
		switch k {
		case "type":
			var types []string
			for t := range paramTypes {
				types = append(types, t)
			}
			sort.Strings(types)
			s = obj{"enum": types}
		case "required", "secret":
			s = obj{"type": "boolean"}
		case "default":
			s = obj{}
		default:
			s = obj{"type": "string"}
		}
		pprops[k] = described(s, d)
	}
	return orNull(closed(pprops)), nil
}

// connectionSchema is the schema of one entry under `connections:`:
// exactly one kind (mysql, ssh) with its fields.
func connectionSchema() (obj, error) {
	kinds := make([]string, 0, len(connFields))
	for k := range connFields {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	cprops := obj{}
	for _, kind := range kinds {
		fprops := obj{}
		for _, f := range connFields[kind] {
			d, ok := connDocs[kind+"."+f]
			if !ok {
				return nil, fmt.Errorf("schema: connection field %s.%s has no description", kind, f)
			}
			fprops[f] = described(ref("value"), d)
		}
		cprops[kind] = described(orNull(closed(fprops)), connDocs[kind])
	}
	return described(obj{"type": "object", "properties": cprops, "additionalProperties": false,
		"minProperties": 1, "maxProperties": 1}, "exactly one of "+strings.Join(kinds, ", ")), nil
}

// stepDefs adds the step definitions to defs: the keys every step takes,
// then one variant per registered type, a group and an include.
func (g *schemaGen) stepDefs(defs obj) error {
	base := obj{}
	for _, k := range commonKeyTable {
		if k.only == "" {
			base[k.name] = k.keySchema()
		}
	}
	variant := func(extra []string, required string, typeSchema obj) obj {
		props := obj{}
		for k, v := range base {
			props[k] = v
		}
		for _, k := range extra {
			props[k] = commonKeyIndex[k].keySchema()
		}
		if typeSchema != nil {
			props[required] = typeSchema
		}
		s := closed(props, required)
		s["dependentSchemas"] = obj{"until": obj{"anyOf": []any{obj{"required": []string{"retries"}}, obj{"required": []string{"timeout"}}}}}
		return s
	}
	var oneOf []any
	for _, t := range Types() {
		spec, err := g.specSchema(t)
		if err != nil {
			return err
		}
		defs["spec."+t.Name] = spec
		defs["step."+t.Name] = described(variant(nil, t.Name, ref("spec."+t.Name)), "a `"+t.Name+":` step")
		oneOf = append(oneOf, ref("step."+t.Name))
	}
	group := variant(commonKeysOnly("group"), "steps", nil)
	group["dependentRequired"] = obj{"as": []string{"for_each"}, "parallel": []string{"for_each"}}
	defs["step.group"] = described(group, "a group: its steps in order, or once per item of for_each")
	defs["step.include"] = described(variant(commonKeysOnly("include"), "include", nil), "another playbook run inline")
	oneOf = append(oneOf, ref("step.group"), ref("step.include"))
	defs["step"] = described(obj{"oneOf": oneOf}, "a step: exactly one type key ("+strings.Join(typeNames(), ", ")+"), steps: (a group) or include:")
	return nil
}

// unusedTableEntries reports a specDocs or specEnums entry for a
// registered type that names none of its fields (a program may register
// only some of the types).
func (g *schemaGen) unusedTableEntries() error {
	for k := range specDocs {
		if typ, _, _ := strings.Cut(k, "."); !g.used[k] && registered(typ) {
			return fmt.Errorf("schema: specDocs has %q, which is no step field", k)
		}
	}
	for k := range specEnums {
		if typ, _, _ := strings.Cut(k, "."); !g.used["enum:"+k] && registered(typ) {
			return fmt.Errorf("schema: specEnums has %q, which is no step field", k)
		}
	}

	return nil
}

// topSchemas are the schemas of the playbook's top-level keys.
func topSchemas() (obj, error) {
	props := obj{}
	for _, k := range topKeys {
		d, ok := topDocs[k]
		if !ok {
			return nil, fmt.Errorf("schema: top-level key %q has no description", k)
		}
		var s obj
		switch k {
		case "params":
			s = orNull(nameMap(ref("param")))
		case "vars":
			s = orNull(nameMap(true))
		case "connections":
			s = orNull(nameMap(ref("connection")))
		case "steps":
			s = ref("steps")
		case "definitions":
			s = obj{}
		case "use":
			s = obj{"oneOf": []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": "string"}}}}
		default:
			s = obj{"type": "string"}
		}
		props[k] = described(s, d)
	}
	return props, nil
}

func registered(typ string) bool {
	_, ok := LookupType(typ)
	return ok
}

// specSchema is the schema of a step type's mapping.
func (g *schemaGen) specSchema(t StepType) (obj, error) {
	rt := reflect.TypeOf(t.New())
	if rt.Kind() == reflect.Ptr {
		rt = rt.Elem()
	}
	var s obj
	var err error
	if custom, ok := g.custom(rt); ok {
		s, err = custom()
	} else {
		switch rt.Kind() {
		case reflect.Struct:
			s, err = g.structSchema(rt, t.Name, "")
		case reflect.Map:
			var val obj
			val, err = g.typeSchema(rt.Elem(), t.Name, "")
			s = nameMap(val)
		default:
			err = fmt.Errorf("schema: step type %s: spec %s is neither a struct nor a map", t.Name, rt)
		}
	}
	if err != nil {
		return nil, err
	}
	if rules, ok := specRules[t.Name]; ok {
		if err := unknownRuleField(t.Name, rules, s); err != nil {
			return nil, err
		}
		for k, v := range rules {
			if k == "required" {
				req, _ := s["required"].([]string)
				req = append(append([]string(nil), req...), v.([]string)...)
				sort.Strings(req)
				s["required"] = req
				continue
			}
			s[k] = v
		}
	}
	return described(s, t.Summary), nil
}

// unknownRuleField reports a rule that names a field the spec lacks.
func unknownRuleField(typ string, rules obj, s obj) error {
	props, _ := s["properties"].(obj)
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case obj:
			for k, e := range x {
				if k == "required" {
					for _, f := range e.([]string) {
						if _, ok := props[f]; !ok {
							return fmt.Errorf("schema: specRules[%s] names %q, which is no field of the step", typ, f)
						}
					}
					continue
				}
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(rules)
}

var (
	shaperT      = reflect.TypeOf((*SchemaShaper)(nil)).Elem()
	unmarshalerT = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationT    = reflect.TypeOf(time.Duration(0))
)

// custom returns the schema of a type that shapes itself or has an entry
// in customShapes.
func (g *schemaGen) custom(t reflect.Type) (func() (obj, error), bool) {
	if reflect.PointerTo(t).Implements(shaperT) {
		return func() (obj, error) {
			return reflect.New(t).Interface().(SchemaShaper).JSONSchema(), nil
		}, true
	}
	if f, ok := customShapes[t.String()]; ok {
		return func() (obj, error) { return f(g, t) }, true
	}
	return nil, false
}

// structSchema is the closed object of a struct's yaml fields, as the
// loader reads them (structFields).
func (g *schemaGen) structSchema(t reflect.Type, typ, prefix string) (obj, error) {
	props := obj{}
	var required []string
	if err := g.addFields(t, typ, prefix, props, &required); err != nil {
		return nil, err
	}
	return closed(props, required...), nil
}

func (g *schemaGen) addFields(t reflect.Type, typ, prefix string, props obj, required *[]string) error {
	for _, fd := range structFields(t) {
		sf, name, owner := fd.Field, fd.Name, fd.Owner
		target := owner == mysqlTT || owner == sshTT
		if _, dup := props[name]; dup {
			return fmt.Errorf("schema: step type %s: field %q is defined twice", typ, name)
		}
		key := typ + "." + name
		if prefix != "" {
			key = typ + "." + prefix + "." + name
		}
		docKey := key
		if target {
			docKey = "target." + name
		}
		s, err := g.typeSchema(sf.Type, typ, name)
		if err != nil {
			return err
		}
		d := sf.Tag.Get("description")
		if d == "" {
			d = g.doc(docKey)
		}
		if target && name == "on" {
			kind := "mysql"
			if owner == sshTT {
				kind = "ssh"
			}
			d = strings.Replace(d, "the connection:", "the "+kind+" connection:", 1)
			*required = append(*required, "on")
		}
		if enum, ok := specEnums[key]; ok {
			g.used["enum:"+key] = true
			s["enum"] = enum
		}
		props[name] = described(s, d)
	}
	return nil
}

// typeSchema is the schema of a field's Go type.
func (g *schemaGen) typeSchema(t reflect.Type, typ, field string) (obj, error) {
	switch t {
	case exprT:
		return ref("expression"), nil
	case textT:
		return ref("text"), nil
	case sqlT:
		return ref("sql"), nil
	case shellT:
		return ref("shell"), nil
	case valueT:
		return ref("value"), nil
	case durationT:
		return ref("duration"), nil
	}
	base := t
	if base.Kind() == reflect.Ptr {
		base = base.Elem()
	}
	if f, ok := g.custom(base); ok {
		return f()
	}
	if reflect.PointerTo(base).Implements(unmarshalerT) {
		return nil, fmt.Errorf("schema: step type %s, field %s: %s decodes itself (UnmarshalYAML); give it a JSONSchema method (engine.SchemaShaper)", typ, field, base)
	}
	switch base.Kind() {
	case reflect.String:
		return obj{"type": "string"}, nil
	case reflect.Bool:
		return obj{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return obj{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return obj{"type": "number"}, nil
	case reflect.Slice, reflect.Array:
		items, err := g.typeSchema(base.Elem(), typ, field)
		if err != nil {
			return nil, err
		}
		return obj{"type": "array", "items": items}, nil
	case reflect.Map:
		if base.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("schema: step type %s, field %s: map keys must be strings", typ, field)
		}
		val, err := g.typeSchema(base.Elem(), typ, field)
		if err != nil {
			return nil, err
		}
		return obj{"type": "object", "additionalProperties": val}, nil
	case reflect.Struct:
		return g.structSchema(base, typ, field)
	case reflect.Interface:
		return obj{}, nil
	}
	return nil, fmt.Errorf("schema: step type %s, field %s: cannot describe Go type %s", typ, field, t)
}
