package engine

import (
	"reflect"
	"strings"
)

// yamlField is one key of a struct as yaml.v3 decodes it: the field that
// holds it, reached from the outer struct through inline fields. The
// loader (which keys a spec takes, where each decodes), the schema (what
// each key is) and `flow steps` (the reference) all read struct fields
// through structFields, so they cannot disagree about a spec's keys.
type yamlField struct {
	// Name is the yaml key: the tag's name, or the Go name in lower case.
	Name string
	// Field is the Go field.
	Field reflect.StructField
	// Owner is the struct type that declares the field (an inline struct,
	// or the outer one).
	Owner reflect.Type
	// index is the path of field indexes from the outer struct.
	index []int
}

// structFields lists the yaml keys of struct type t in declaration order,
// following inline fields (a pointer to a struct too) as yaml.v3 does and
// skipping `yaml:"-"` and unexported fields.
func structFields(t reflect.Type) []yamlField {
	var out []yamlField
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			index := append(append([]int(nil), prefix...), i)
			if strings.Contains(opts, "inline") {
				ft := sf.Type
				if ft.Kind() == reflect.Ptr {
					ft = ft.Elem()
				}
				walk(ft, index)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			out = append(out, yamlField{Name: name, Field: sf, Owner: t, index: index})
		}
	}
	walk(t, nil)
	return out
}

// in returns the field in struct value v (of the type structFields was
// given), allocating nil inline pointers on the way so it can be set.
func (f yamlField) in(v reflect.Value) reflect.Value {
	for n, i := range f.index {
		v = v.Field(i)
		if n < len(f.index)-1 && v.Kind() == reflect.Ptr {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
	}
	return v
}

// yamlFields lists the yaml keys of a struct type (see structFields).
func yamlFields(t reflect.Type) []string {
	fields := structFields(t)
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}
