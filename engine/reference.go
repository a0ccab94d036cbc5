package engine

import (
	"fmt"
	"sort"
	"strings"
)

// StepDoc is a step type's entry in the step reference (`flow steps`):
// what the registry and the schema know of it, so the reference cannot
// drift from what the loader accepts.
type StepDoc struct {
	Name    string
	Summary string
	// Changes says whether the step changes state: "yes", "no", or the
	// type's own words where its fields decide (StepType.Changes).
	Changes string
	// Idempotent says re-running it after an interruption is safe.
	Idempotent bool
	// Fields are the keys under the type's key, sorted; none for a type
	// whose mapping is free-form (see FreeForm).
	Fields []FieldDoc
	// FreeForm describes a mapping whose keys the author chooses (set:
	// "name → expression"); empty for a type with fields.
	FreeForm string
}

// FieldDoc is one field of a step type.
type FieldDoc struct {
	Name string
	// Kind is the field's form: expression, text, sql, shell, value,
	// duration, name, string, integer, boolean, list, mapping or a choice
	// ("write|read|clear").
	Kind string
	// Required says the loader refuses the step without it (fields that
	// are alternatives, such as sql's query or exec, are not).
	Required bool
	Doc      string
}

// Reference documents the registered step types, sorted by name. It reads
// the fields, their descriptions and required keys from the schema's
// generator, the one place that turns a spec's struct into keys.
func Reference() ([]StepDoc, error) {
	g := &schemaGen{used: map[string]bool{}}
	var out []StepDoc
	for _, t := range Types() {
		s, err := g.specSchema(t)
		if err != nil {
			return nil, err
		}
		d := StepDoc{Name: t.Name, Summary: t.Summary, Changes: t.Changes, Idempotent: t.Idempotent}
		if d.Changes == "" {
			d.Changes = "no"
			if t.New().Mutates() {
				d.Changes = "yes"
			}
		}
		if _, free := s["propertyNames"]; free {
			d.FreeForm = schemaKind(s)
		}
		props, _ := s["properties"].(obj)
		required := map[string]bool{}
		if req, ok := s["required"].([]string); ok {
			for _, r := range req {
				required[r] = true
			}
		}
		for name, p := range props {
			ps, _ := p.(obj)
			doc, _ := ps["description"].(string)
			d.Fields = append(d.Fields, FieldDoc{Name: name, Kind: schemaKind(ps), Required: required[name], Doc: doc})
		}
		sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Name < d.Fields[j].Name })
		out = append(out, d)
	}
	return out, nil
}

// schemaKind names the form a field's schema describes.
func schemaKind(s obj) string {
	switch enum := s["enum"].(type) {
	case []string:
		return strings.Join(enum, "|")
	case []any:
		words := make([]string, len(enum))
		for i, e := range enum {
			words[i] = fmt.Sprint(e)
		}
		return strings.Join(words, "|")
	}
	if r, ok := s["$ref"].(string); ok {
		return strings.TrimPrefix(r, "#/$defs/")
	}
	if alts, ok := s["oneOf"].([]any); ok {
		var kinds []string
		for _, alt := range alts {
			if a, ok := alt.(obj); ok {
				kinds = append(kinds, schemaKind(a))
			}
		}
		return strings.Join(kinds, " or ")
	}
	typ, _ := s["type"].(string)
	if types, ok := s["type"].([]string); ok && contains(types, "object") {
		typ = "object" // an object that may also be empty (null)
	}
	switch typ {
	case "array":
		if items, ok := s["items"].(obj); ok {
			return "list of " + schemaKind(items)
		}
		return "list"
	case "object":
		val, ok := s["additionalProperties"].(obj)
		switch {
		case !ok:
			return "mapping"
		case s["propertyNames"] != nil:
			return "mapping of name → " + schemaKind(val)
		default:
			return "mapping of key → " + schemaKind(val)
		}
	case "":
		return "any"
	}
	return typ
}

// CommonKeyDocs documents the keys a step takes besides its type key, in
// the table's order (commonKeyTable); Only is "group" or "include" for a
// key only those take.
func CommonKeyDocs() []CommonKeyDoc {
	out := make([]CommonKeyDoc, 0, len(commonKeyTable))
	for _, k := range commonKeyTable {
		out = append(out, CommonKeyDoc{Name: k.name, Kind: schemaKind(k.shape()), Only: k.only, Doc: k.doc})
	}
	return out
}

// CommonKeyDoc is one common step key in the reference.
type CommonKeyDoc struct {
	Name, Kind string
	// Only is "group" or "include" for a key only a group or an include
	// takes, "" for every step.
	Only string
	Doc  string
}
