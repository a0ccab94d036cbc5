package engine

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/engine/secret"
	"gopkg.in/yaml.v3"
)

// tmplKind is the context a template's values are placed in.
type tmplKind int

const (
	kindText  tmplKind = iota // human text: values as they are
	kindSQL                   // a SQL statement: values as SQL literals
	kindShell                 // a shell command: values as shell words
	kindValue                 // a value: a lone {{ expr }} keeps its type
)

// Template is a string with {{ expression }} interpolations.
type Template struct {
	Raw    string
	Pos    Pos
	node   *yaml.Node
	parts  []tpart
	secret bool
	set    bool
}

type tpart struct {
	lit string
	e   *Expr
}

// UnmarshalYAML keeps the raw text and its node.
func (t *Template) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &posError{n, "expected a string"}
	}
	t.Raw, t.node, t.set = n.Value, n, true
	return nil
}

// IsZero reports whether the template is absent.
func (t *Template) IsZero() bool { return t == nil || !t.set }

// Secret reports whether the template interpolates a secret.
func (t *Template) Secret() bool { return t != nil && t.secret }

// Text is a template rendered as human-readable text (names, messages).
type Text struct{ Template }

// SQL is a template rendered into a SQL statement: values become literals.
type SQL struct{ Template }

// Shell is a template rendered into a shell command: values become words.
type Shell struct{ Template }

// Value is a template producing a value: a lone {{ expr }} keeps the
// expression's type (a port stays an int); literals keep their YAML type.
type Value struct {
	Template
	lit any
	// isLit says lit holds the value (which may be nil: a YAML null).
	isLit bool
}

// UnmarshalYAML accepts any scalar.
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &posError{n, "expected a scalar value"}
	}
	v.Raw, v.node, v.set = n.Value, n, true
	if !strings.Contains(n.Value, "{{") {
		var x any
		if err := n.Decode(&x); err != nil {
			return err
		}
		v.lit, v.isLit = x, true
	}
	return nil
}

// compileTemplate splits t into literal and expression parts and compiles them.
func (c *compiler) compileTemplate(t *Template, kind tmplKind, sc *typeEnv) {
	t.Pos = posOf(c.file, t.node)
	s := t.Raw
	offset := 0
	var sqlState quote.SQLState
	var shState quote.ShellState
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if strings.Contains(s, "}}") {
				c.errorf(t.Pos, "unmatched `}}` in %q", oneLine(t.Raw))
			}
			t.parts = append(t.parts, tpart{lit: s})
			break
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			c.errorf(t.Pos, "unclosed `{{` in %q: close it with `}}`", oneLine(t.Raw))
			return
		}
		lit := s[:i]
		if strings.Contains(lit, "}}") {
			c.errorf(t.Pos, "unmatched `}}` in %q", oneLine(t.Raw))
		}
		src := strings.TrimSpace(s[i+2 : i+j])
		t.parts = append(t.parts, tpart{lit: lit})
		switch kind {
		case kindSQL:
			sqlState.Feed(lit)
			if ctx := sqlState.Context(); ctx != quote.Bare {
				mark := len(c.l.diags)
				c.errorf(t.Pos, "`{{ %s }}` is inside %s in %q: flow quotes interpolated values itself, so remove the quotes around it", src, ctx, oneLine(t.Raw))
				c.l.explain(mark, "a value interpolated into SQL becomes a SQL literal ('text', 42, NULL): inside quotes it would be quoted twice", quotedTemplateHint(t.Raw, offset+i, offset+i+j+2))
			}
			sqlState.Feed("0")
		case kindShell:
			shState.Feed(lit)
			if ctx := shState.Context(); ctx != quote.Bare {
				mark := len(c.l.diags)
				c.errorf(t.Pos, "`{{ %s }}` is inside %s in %q: flow quotes interpolated values itself, so remove the quotes around it (build a larger value in the expression instead)", src, ctx, oneLine(t.Raw))
				c.l.explain(mark, "a value interpolated into a shell command becomes one shell word, quoted by flow: inside quotes it would be quoted twice", quotedTemplateHint(t.Raw, offset+i, offset+i+j+2))
			}
			shState.Feed("0")
		}
		e := &Expr{Src: src, node: t.node}
		// place the expression inside the scalar, for error positions
		inner := s[i+2 : i+j]
		start := offset + i + 2 + len(inner) - len(strings.TrimLeft(inner, " \t\r\n"))
		before := t.Raw[:start]
		e.inLine = strings.Count(before, "\n")
		e.inCol = utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
		c.compileExpr(e, sc, reflect.Invalid)
		e.Pos = t.Pos
		if e.secret {
			t.secret = true
		}
		t.parts = append(t.parts, tpart{e: e})
		s = s[i+j+2:]
		offset += i + j + 2
	}
}

// renderMode selects how a template is rendered.
type renderMode int

const (
	renderReal    renderMode = iota // the text that is executed
	renderDisplay                   // secrets masked, unknown values symbolic
)

// render evaluates the template. With renderDisplay, secret values show as
// ****** and values unknown in sc show as {{ expr }}; unknown reports whether
// any were.
func (t *Template) render(kind tmplKind, env *evalEnv, mode renderMode) (out string, unknown bool, err error) {
	if len(t.parts) == 1 && t.parts[0].e == nil {
		return t.parts[0].lit, false, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.e == nil {
			b.WriteString(p.lit)
			continue
		}
		if env.unknown(p.e) {
			unknown = true
			fmt.Fprintf(&b, "{{ %s }}", p.e.Src)
			continue
		}
		if mode == renderDisplay && p.e.secret {
			switch kind {
			case kindSQL:
				b.WriteString("'" + secret.Mask + "'")
			default:
				b.WriteString(secret.Mask)
			}
			continue
		}
		v, err := runExpr(p.e, env.vars)
		if err != nil {
			return "", false, err
		}
		var s string
		switch kind {
		case kindSQL:
			s, err = quote.SQL(v)
		case kindShell:
			s, err = quote.Shell(v)
		default:
			s = quote.Text(v)
		}
		if err != nil {
			return "", false, fmt.Errorf("%s: `{{ %s }}`: %v", p.e.Pos, p.e.Src, err)
		}
		b.WriteString(s)
	}
	return b.String(), unknown, nil
}

// value evaluates a Value template: a literal, a lone expression's typed
// result, or an interpolated string.
func (v *Value) value(env *evalEnv) (any, bool, error) {
	if v.isLit {
		return v.lit, false, nil
	}
	if len(v.parts) == 1 && v.parts[0].e == nil {
		return v.parts[0].lit, false, nil
	}
	if len(v.parts) == 3 && v.parts[0].lit == "" && v.parts[2].lit == "" && v.parts[1].e != nil {
		e := v.parts[1].e
		if env.unknown(e) {
			return Unknown{Why: e.Src}, true, nil
		}
		out, err := runExpr(e, env.vars)
		return out, false, err
	}
	s, unk, err := v.render(kindText, env, renderReal)
	if unk {
		return Unknown{Why: v.Raw}, true, err
	}
	return s, false, err
}

// valueType gives the expression type of a compiled Value.
func (v *Value) valueType() any {
	if v.isLit {
		return typeOfValue(v.lit)
	}
	if len(v.parts) == 3 && v.parts[0].lit == "" && v.parts[2].lit == "" && v.parts[1].e != nil {
		return typeOfProgram(v.parts[1].e.prog)
	}
	return typeOfValue("")
}
