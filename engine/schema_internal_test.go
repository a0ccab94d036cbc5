package engine

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// selfDecoding decodes itself, so reflection cannot tell its YAML form.
type selfDecoding struct{ v string }

func (s *selfDecoding) UnmarshalYAML(n *yaml.Node) error { s.v = n.Value; return nil }

// shaped decodes itself and says its form.
type shaped struct{ selfDecoding }

func (s *shaped) JSONSchema() map[string]any { return map[string]any{"type": "string", "maxLength": 3} }

type fakeSpec[T any] struct {
	Field T      `yaml:"field" description:"from the tag"`
	Plain string `yaml:"plain"`
}

func (*fakeSpec[T]) Mutates() bool                                      { return false }
func (*fakeSpec[T]) Render(*Render) ([]Action, error)                   { return nil, nil }
func (*fakeSpec[T]) Run(context.Context, *Exec) (map[string]any, error) { return nil, nil }
func fakeType[T any](name string) StepType {
	return StepType{Name: name, Summary: "a fake", New: func() StepSpec { return &fakeSpec[T]{} }}
}

// TestSchemaRefusesUnknownShapes: a field that decodes itself without a
// shape is an error, not a silently wrong schema; a SchemaShaper is used.
func TestSchemaRefusesUnknownShapes(t *testing.T) {
	g := &schemaGen{used: map[string]bool{}}
	if _, err := g.specSchema(fakeType[*selfDecoding]("fake")); err == nil || !strings.Contains(err.Error(), "SchemaShaper") {
		t.Errorf("a self-decoding field: err = %v, want one naming SchemaShaper", err)
	}
	s, err := g.specSchema(fakeType[*shaped]("fake"))
	if err != nil {
		t.Fatal(err)
	}
	f := s["properties"].(obj)["field"].(obj)
	if f["maxLength"] != 3 || f["description"] != "from the tag" {
		t.Errorf("shaped field = %v, want its JSONSchema and the tag's description", f)
	}
	if s["additionalProperties"] != false || s["description"] != "a fake" {
		t.Errorf("spec = %v, want closed and described by the Summary", s)
	}
}

// TestSchemaTablesNameRealFields: a rule naming a field the step lacks is
// reported.
func TestSchemaTablesNameRealFields(t *testing.T) {
	specRules["fake-rules"] = obj{"oneOf": []any{obj{"required": []string{"plain"}}, obj{"required": []string{"nope"}}}}
	defer delete(specRules, "fake-rules")
	g := &schemaGen{used: map[string]bool{}}
	if _, err := g.specSchema(fakeType[string]("fake-rules")); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("err = %v, want one naming the field nope", err)
	}
}

// TestSchemaTablesNameRealDocs: a description for a field a registered
// step type lacks is reported by Schema.
func TestSchemaTablesNameRealDocs(t *testing.T) {
	if _, ok := LookupType("log"); !ok {
		t.Fatal("the log step type is not registered in this test binary")
	}
	specDocs["log.nope"] = "a field that is not there"
	defer delete(specDocs, "log.nope")
	if _, err := Schema(); err == nil || !strings.Contains(err.Error(), `"log.nope"`) {
		t.Errorf("err = %v, want one naming log.nope", err)
	}
}
