package engine

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"
)

// This file gives diagnostics their snippet, detail and hint: the known
// mistakes and what to write instead. The messages themselves stay where
// the problem is found; a hint is added to the diagnostics a check
// produced (explain) once the caller knows what the author meant.

// attachSources gives every diagnostic the source line it points into.
func (l *loader) attachSources() {
	for i := range l.diags {
		d := &l.diags[i]
		if d.Source == "" && d.Pos.Line > 0 {
			d.Source = sourceLine(l.sources[d.Pos.File], d.Pos.Line)
		}
	}
}

// sourceLine is line n (1-based) of src, without its newline; "" when
// src has no such line.
func sourceLine(src []byte, n int) string {
	for i := 1; len(src) > 0; i++ {
		line, rest, _ := bytes.Cut(src, []byte("\n"))
		if i == n {
			return strings.TrimRight(string(line), "\r")
		}
		src = rest
	}
	return ""
}

// explain sets the detail and hint of the error diagnostics added since
// mark (an index into l.diags); an empty argument leaves that part alone.
func (l *loader) explain(mark int, detail, hint string) {
	for i := mark; i < len(l.diags); i++ {
		if l.diags[i].Warning {
			continue
		}
		if detail != "" {
			l.diags[i].Detail = detail
		}
		if hint != "" {
			l.diags[i].Hint = hint
		}
	}
}

// unknownNameHint proposes the defined name closest to an unknown one.
func unknownNameHint(name string, sc *typeEnv) (detail, hint string) {
	names := sc.names()
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	detail = "an expression reads parameters, vars, registered outputs (register:), steps.<id> and run; " + name + " is none of them here"
	switch {
	case best != "":
		hint = fmt.Sprintf("did you mean %s?", best)
	case len(names) > 2 && len(names) <= 12: // more than run and steps
		hint = "the names defined here are " + strings.Join(names, ", ")
	default:
		hint = "define it under params: or vars:, or register: it on an earlier step"
	}
	return detail, hint
}

// names lists the names a typeEnv and its parents define, sorted.
func (s *typeEnv) names() []string {
	seen := map[string]bool{}
	var out []string
	for c := s; c != nil; c = c.parent {
		for n := range c.vars {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// quotedTemplateHint rewrites raw without the quotes around its
// interpolation {{ src }} at [open, close) (the byte offsets of `{{` and
// of the end of `}}`), when the quotes enclose exactly it.
func quotedTemplateHint(raw string, open, close int) string {
	const generic = "remove the quotes around {{ }}: flow quotes the value itself; to join text and a value, build it in the expression, e.g. {{ \"prefix-\" + name }}"
	if open < 1 || close >= len(raw) {
		return generic
	}
	q := raw[open-1]
	if (q != '\'' && q != '"') || raw[close] != q {
		return generic
	}
	return "remove the quotes around {{ }}: flow quotes the value itself; write " + oneLine(raw[:open-1]+raw[open:close]+raw[close+1:])
}

// braceHint is the hint for a value YAML read as a mapping because it
// starts with `{{` unquoted (YAML's flow mapping): quote the value.
func (l *loader) braceHint(mark int, file string, n *yaml.Node) {
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode || d.Style&yaml.FlowStyle == 0 || len(d.Content) < 1 || d.Content[0].Kind != yaml.MappingNode {
		return
	}
	text := strings.TrimSpace(sourceLine(l.sources[file], d.Line))
	if r := []rune(sourceLine(l.sources[file], d.Line)); d.Column >= 1 && d.Column <= len(r) {
		text = strings.TrimSpace(string(r[d.Column-1:]))
	}
	hint := "a value that starts with {{ must be quoted: write \"{{ … }}\""
	if strings.HasPrefix(text, "{{") && strings.HasSuffix(text, "}}") && !strings.Contains(text, `"`) {
		hint = "a value that starts with {{ must be quoted: write \"" + text + "\""
	}
	l.explain(mark, "unquoted, {{ … }} is a YAML mapping inside a mapping, not a template", hint)
}

// stepKeyHints explains the unknown keys of a step that are fields of a
// step type: they belong indented under the type's key.
func (l *loader) stepKeyHints(m *mapping) {
	for _, u := range m.unknown {
		owner := ""
		for _, k := range m.keys {
			if t, ok := LookupType(k); ok && contains(specFields(t), u.key) {
				owner = k
				break
			}
		}
		if owner == "" {
			for _, t := range Types() {
				if contains(specFields(t), u.key) {
					owner = t.Name
					break
				}
			}
		}
		if owner != "" {
			l.explainOne(u.diag, "`"+u.key+":` is a field of the `"+owner+":` step type, not a key of the step itself",
				"indent "+u.key+": under "+owner+":, beside the type's other fields")
		}
	}
}

// fieldKeyHints explains the unknown fields of a step type that are
// common step keys: they belong at the step's level.
func (l *loader) fieldKeyHints(typ string, m *mapping) {
	for _, u := range m.unknown {
		if commonKeys[u.key] {
			l.explainOne(u.diag, "`"+u.key+":` is a key of every step, not a field of `"+typ+":`",
				"move "+u.key+": out of "+typ+": to the step's level, beside "+typ+":")
		}
	}
}

// explainOne sets the detail and hint of diagnostic i.
func (l *loader) explainOne(i int, detail, hint string) {
	if i >= 0 && i < len(l.diags) {
		l.diags[i].Detail, l.diags[i].Hint = detail, hint
	}
}

// specFields lists the yaml keys of a step type's spec (none for a spec
// that decodes itself or is a map).
func specFields(t StepType) []string {
	rt := reflect.TypeOf(t.New())
	if rt.Kind() == reflect.Ptr {
		rt = rt.Elem()
	}
	if rt.Kind() != reflect.Struct {
		return nil
	}
	return yamlFields(rt)
}

// unknownFieldHint looks for the field among the closed maps in scope (an
// include's typed output, a step type's output): the closest field name of
// the closest variable, e.g. "v has tgt_checks".
func unknownFieldHint(field string, sc *typeEnv) (detail, hint string) {
	best, bestD := "", 3
	for c := sc; c != nil; c = c.parent {
		for _, name := range sortedKeys(c.vars) {
			m, ok := c.vars[name].(types.Map)
			if !ok {
				continue
			}
			if _, open := m[types.Extra]; open {
				continue
			}
			for _, k := range sortedKeys(m) {
				if d := editDistance(field, k); d < bestD {
					best, bestD = name+"."+k, d
				}
			}
		}
	}
	if best == "" {
		return "", ""
	}
	return "an included playbook's output holds its parameters, variables and registered outputs; " + field + " is not one of them",
		"did you mean " + best + "?"
}
