package engine

// YAML nodes: mappings with their allowed keys and merges, and the scalar readers the loader uses.

import (
	"fmt"
	"time"

	"github.com/flowdba/flow/engine/plain"
	"gopkg.in/yaml.v3"
)

// mapping is a YAML mapping with its keys resolved (merge keys applied).
type mapping struct {
	keys   []string
	vals   map[string]*yaml.Node
	knodes map[string]*yaml.Node
	// unknown are the keys refused as not allowed, with the index of the
	// diagnostic that says so (for a hint once the caller knows more).
	unknown []unknownKey
}

type unknownKey struct {
	key  string
	diag int
}

// mapping reads a mapping node, reporting duplicate and unknown keys.
// allowed == nil accepts any key.
func (l *loader) mapping(file string, n *yaml.Node, what string, allowed []string) *mapping {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return &mapping{vals: map[string]*yaml.Node{}, knodes: map[string]*yaml.Node{}}
		}
		l.errorf(posOf(file, n), "%s must be a mapping (key: value lines), not %s", what, kindName(n))
		return nil
	}
	m := &mapping{vals: map[string]*yaml.Node{}, knodes: map[string]*yaml.Node{}}
	l.mergeInto(file, m, n, what, allowed, 0, map[*yaml.Node]bool{})
	return m
}

// mergeInto adds n's keys to m, then those of the mappings n merges with
// `<<` (explicit keys win; the first merge wins over later ones). seen holds
// the mappings already merged: merging one twice adds nothing.
func (l *loader) mergeInto(file string, m *mapping, n *yaml.Node, what string, allowed []string, depth int, seen map[*yaml.Node]bool) {
	if depth > 8 {
		l.errorf(posOf(file, n), "merge keys nested too deep in %s", what)
		return
	}
	if seen[n] {
		return
	}
	seen[n] = true
	if depth > 0 {
		l.merged += len(n.Content) / 2
		if l.merged > maxMergedKeys {
			l.bomb(posOf(file, n), "merge keys in "+what)
			return
		}
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || (k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Style == 0) {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.errorf(posOf(file, k), "%s: keys must be plain strings", what)
			continue
		}
		if prev, dup := m.knodes[k.Value]; dup && prev.Line > 0 && depth == 0 {
			l.errorf(posOf(file, k), "%s: key %q is already defined at line %d", what, k.Value, prev.Line)
			continue
		} else if dup {
			continue // explicit keys override merged ones
		}
		if allowed != nil && !contains(allowed, k.Value) {
			m.unknown = append(m.unknown, unknownKey{k.Value, len(l.diags)})
			l.errorf(posOf(file, k), "%s: unknown key %q%s", what, k.Value, suggest(k.Value, allowed))
			continue
		}
		m.keys = append(m.keys, k.Value)
		m.vals[k.Value] = v
		m.knodes[k.Value] = k
	}
	for _, mv := range merges {
		mv = deref(mv)
		switch {
		case mv != nil && mv.Kind == yaml.MappingNode:
			l.mergeInto(file, m, mv, what, allowed, depth+1, seen)
		case mv != nil && mv.Kind == yaml.SequenceNode:
			for _, item := range mv.Content {
				if d := deref(item); d != nil && d.Kind == yaml.MappingNode {
					l.mergeInto(file, m, d, what, allowed, depth+1, seen)
				}
			}
		default:
			l.errorf(posOf(file, mv), "%s: `<<` must merge a mapping", what)
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the scalar %q", oneLine(n.Value))
	}
	return "something else"
}

func (l *loader) scalar(file string, n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		l.errorf(posOf(file, n), "%s must be a scalar, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) str(file string, n *yaml.Node, what string) (string, bool) {
	s, ok := l.scalar(file, n, what)
	if ok && deref(n).Tag != "!!str" {
		l.errorf(posOf(file, n), "%s must be a string, not %s", what, kindName(deref(n)))
		return "", false
	}
	return s, ok
}

func (l *loader) boolean(file string, n *yaml.Node, what string) bool {
	var b bool
	if d := deref(n); d == nil || d.Kind != yaml.ScalarNode || d.Tag != "!!bool" || d.Decode(&b) != nil {
		l.errorf(posOf(file, n), "%s must be true or false, not %s", what, kindName(d))
	}
	return b
}

func (l *loader) integer(file string, n *yaml.Node, what string, lo, hi int) int {
	var i int
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag != "!!int" || d.Decode(&i) != nil {
		l.errorf(posOf(file, n), "%s must be an integer, not %s", what, kindName(d))
		return 0
	}
	if i < lo || i > hi {
		l.errorf(posOf(file, n), "%s must be between %d and %d, not %d", what, lo, hi, i)
	}
	return i
}

func (l *loader) duration(file string, n *yaml.Node, what string) time.Duration {
	s, ok := l.scalar(file, n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.errorf(posOf(file, n), "%s must be a positive duration such as 500ms, 30s or 5m, not %q", what, s)
	}
	return d
}

func (l *loader) expr(file string, n *yaml.Node, what string) *Expr {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		l.errorf(posOf(file, n), "%s must be an expression, not %s", what, kindName(d))
		l.braceHint(len(l.diags)-1, file, d)
		return nil
	}
	return &Expr{Src: d.Value, node: d}
}

func (l *loader) text(file string, n *yaml.Node, what string) *Text {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		l.errorf(posOf(file, n), "%s must be a string, not %s", what, kindName(d))
		l.braceHint(len(l.diags)-1, file, d)
		return nil
	}
	t := &Text{}
	t.Raw, t.node, t.set = d.Value, d, true
	return t
}

func (l *loader) value(file string, n *yaml.Node, what string) *Value {
	d := deref(n)
	v := &Value{}
	if d == nil || d.Kind != yaml.ScalarNode {
		if d != nil && (d.Kind == yaml.SequenceNode || d.Kind == yaml.MappingNode) {
			var x any
			if err := d.Decode(&x); err != nil {
				l.errorf(posOf(file, n), "%s: %v", what, err)
				return nil
			}
			v.lit, v.isLit, v.node, v.set, v.Raw = plain.Of(x), true, d, true, ""
			return v
		}
		l.errorf(posOf(file, n), "%s must be a value, not %s", what, kindName(d))
		return nil
	}
	if err := v.UnmarshalYAML(d); err != nil {
		l.errorf(posOf(file, n), "%s: %v", what, err)
		return nil
	}
	return v
}
