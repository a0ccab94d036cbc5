package engine

// Step type fields: decoding a step type's mapping strictly into its spec, with positioned errors.

import (
	"errors"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeSpec decodes a step type's mapping strictly into a fresh spec.
func (l *loader) decodeSpec(pb *Playbook, typ string, kn, n *yaml.Node) StepSpec {
	f := pb.File
	t, ok := LookupType(typ)
	if !ok {
		l.errorf(posOf(f, kn), "unknown step type %q%s", typ, suggest(typ, typeNames()))
		return nil
	}
	spec := t.New()
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode {
		l.errorf(posOf(f, n), "`%s:` must be a mapping of its fields, not %s", typ, kindName(d))
		return nil
	}
	if _, custom := spec.(yaml.Unmarshaler); custom {
		if err := d.Decode(spec); err != nil {
			l.specError(f, typ, d, err)
			return nil
		}
		return spec
	}
	if reflect.TypeOf(spec).Elem().Kind() == reflect.Map {
		m := l.mapping(f, d, typ, nil)
		if m == nil {
			return nil
		}
		for _, k := range m.keys {
			if !nameRE.MatchString(k) {
				l.errorf(posOf(f, m.knodes[k]), "%s: %q is not a valid variable name (%s)", typ, k, nameRE)
				return nil
			}
		}
		if err := d.Decode(spec); err != nil {
			l.specError(f, typ, d, err)
			return nil
		}
		return spec
	}
	fields := structFields(reflect.TypeOf(spec).Elem())
	byName := make(map[string]yamlField, len(fields))
	names := make([]string, 0, len(fields))
	for _, fd := range fields {
		if _, dup := byName[fd.Name]; !dup {
			byName[fd.Name] = fd
		}
		names = append(names, fd.Name)
	}
	m := l.mapping(f, d, typ, names)
	if m == nil {
		return nil
	}
	l.fieldKeyHints(typ, m)
	before := len(l.diags)
	// decode each key separately so errors carry their own positions
	rv := reflect.ValueOf(spec).Elem()
	for _, k := range m.keys {
		fd, ok := byName[k]
		if !ok {
			continue
		}
		fv := fd.in(rv)
		if err := m.vals[k].Decode(fv.Addr().Interface()); err != nil {
			l.specError(f, typ+"."+k, m.vals[k], err)
		}
	}
	if len(l.diags) > before {
		return nil
	}
	return spec
}

func (l *loader) specError(f, what string, n *yaml.Node, err error) {
	defer l.braceHint(len(l.diags), f, n)
	var pe *posError
	if errors.As(err, &pe) {
		l.errorf(posOf(f, pe.n), "%s: %s", what, pe.msg)
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			msg := yamlLineRE.ReplaceAllString(e, "")
			msg = strings.TrimLeft(msg, ": ")
			l.errorf(posOf(f, n), "%s: %s", what, msg)
		}
		return
	}
	l.errorf(posOf(f, n), "%s: %v", what, err)
}
