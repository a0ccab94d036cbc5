package engine

import (
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
			val, _ := s["additionalProperties"].(obj)
			d.FreeForm = "name → " + schemaKind(val)
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
	if enum, ok := s["enum"].([]string); ok {
		return strings.Join(enum, "|")
	}
	if r, ok := s["$ref"].(string); ok {
		return strings.TrimPrefix(r, "#/$defs/")
	}
	if _, ok := s["oneOf"]; ok {
		var kinds []string
		for _, alt := range s["oneOf"].([]any) {
			if a, ok := alt.(obj); ok {
				kinds = append(kinds, schemaKind(a))
			}
		}
		return strings.Join(kinds, " or ")
	}
	switch s["type"] {
	case "array":
		if items, ok := s["items"].(obj); ok {
			return "list of " + schemaKind(items)
		}
		return "list"
	case "object":
		return "mapping"
	case nil:
		return "any"
	}
	if t, ok := s["type"].(string); ok {
		return t
	}
	return "any"
}
