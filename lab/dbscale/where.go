package dbscale

import (
	"strconv"
	"strings"
)

// expr is a WHERE filter over the rows of a dbscale result set: column
// comparisons (=, !=, <>, <, <=, >, >=), [NOT] LIKE, [NOT] IN (…), joined by
// AND, OR, NOT and parentheses. Comparisons are case-insensitive, like
// MySQL's default collation; numbers compare numerically.
type expr interface {
	eval(row rowView) bool
	columns() []string
}

// rowView reads a cell of the row being filtered by column name.
type rowView func(col string) string

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ e expr }

// operand is a column reference or a literal.
type operand struct {
	column string
	lit    string
	isCol  bool
}

type cmpExpr struct {
	op   string
	l, r operand
}

type likeExpr struct {
	l, pat operand
	not    bool
}

type inExpr struct {
	l    operand
	list []operand
	not  bool
}

func (e andExpr) eval(r rowView) bool { return e.l.eval(r) && e.r.eval(r) }
func (e orExpr) eval(r rowView) bool  { return e.l.eval(r) || e.r.eval(r) }
func (e notExpr) eval(r rowView) bool { return !e.e.eval(r) }

func (e andExpr) columns() []string { return append(e.l.columns(), e.r.columns()...) }
func (e orExpr) columns() []string  { return append(e.l.columns(), e.r.columns()...) }
func (e notExpr) columns() []string { return e.e.columns() }

func (o operand) get(r rowView) string {
	if o.isCol {
		return r(o.column)
	}
	return o.lit
}

func (o operand) cols() []string {
	if o.isCol {
		return []string{o.column}
	}
	return nil
}

func (e cmpExpr) eval(r rowView) bool {
	c := compareValues(e.l.get(r), e.r.get(r))
	switch e.op {
	case "=":
		return c == 0
	case "!=", "<>":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

func (e cmpExpr) columns() []string { return append(e.l.cols(), e.r.cols()...) }

func (e likeExpr) eval(r rowView) bool {
	return likeMatch(e.pat.get(r), e.l.get(r)) != e.not
}

func (e likeExpr) columns() []string { return append(e.l.cols(), e.pat.cols()...) }

func (e inExpr) eval(r rowView) bool {
	v := e.l.get(r)
	for _, o := range e.list {
		if compareValues(v, o.get(r)) == 0 {
			return !e.not
		}
	}
	return e.not
}

func (e inExpr) columns() []string {
	out := e.l.cols()
	for _, o := range e.list {
		out = append(out, o.cols()...)
	}
	return out
}

// compareValues compares numerically when both sides are numbers, else as
// case-insensitive strings.
func compareValues(a, b string) int {
	fa, ea := strconv.ParseFloat(strings.TrimSpace(a), 64)
	fb, eb := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if ea == nil && eb == nil {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// likeMatch reports whether s matches the MySQL LIKE pattern (% any run, _
// one character, \ escapes), case-insensitively.
func likeMatch(pattern, s string) bool {
	p := []rune(strings.ToLower(pattern))
	t := []rune(strings.ToLower(s))
	var match func(pi, ti int) bool
	match = func(pi, ti int) bool {
		for pi < len(p) {
			switch c := p[pi]; {
			case c == '%':
				for pi < len(p) && p[pi] == '%' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				for k := ti; k <= len(t); k++ {
					if match(pi, k) {
						return true
					}
				}
				return false
			case c == '_':
				if ti >= len(t) {
					return false
				}
				pi, ti = pi+1, ti+1
			default:
				if c == '\\' && pi+1 < len(p) {
					pi++
					c = p[pi]
				}
				if ti >= len(t) || t[ti] != c {
					return false
				}
				pi, ti = pi+1, ti+1
			}
		}
		return ti == len(t)
	}
	return match(0, 0)
}

// parseOptionalWhere reads "WHERE expr" if present.
func (p *parser) parseOptionalWhere() (expr, error) {
	if !p.accept("where") {
		return nil, nil
	}
	return p.parseOr()
}

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.accept("or") {
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.accept("and") {
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseNot() (expr, error) {
	if p.accept("not") {
		e, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	if p.acceptOp("(") {
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.acceptOp(")") {
			return nil, p.errAt(p.peek(), "expected )")
		}
		return e, nil
	}
	return p.parsePredicate()
}

func (p *parser) parsePredicate() (expr, error) {
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	not := p.accept("not")
	switch t := p.peek(); {
	case p.accept("like"):
		pat, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		return likeExpr{l: l, pat: pat, not: not}, nil
	case p.accept("in"):
		if !p.acceptOp("(") {
			return nil, p.errAt(p.peek(), "expected (")
		}
		e := inExpr{l: l, not: not}
		for {
			o, err := p.parseOperand()
			if err != nil {
				return nil, err
			}
			e.list = append(e.list, o)
			if !p.acceptOp(",") {
				break
			}
		}
		if !p.acceptOp(")") {
			return nil, p.errAt(p.peek(), "expected )")
		}
		return e, nil
	case !not && t.kind == tOp && t.text != "," && t.text != "(" && t.text != ")":
		p.next()
		r, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		return cmpExpr{op: t.text, l: l, r: r}, nil
	default:
		return nil, p.errAt(t, "expected a comparison, LIKE or IN")
	}
}

func (p *parser) parseOperand() (operand, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.next()
		return operand{lit: t.text}, nil
	case tIdent:
		p.next()
		return operand{column: t.text, isCol: true}, nil
	case tWord:
		if isKeyword(t.text) {
			break
		}
		p.next()
		if _, err := strconv.ParseFloat(t.text, 64); err == nil {
			return operand{lit: t.text}, nil
		}
		return operand{column: t.text, isCol: true}, nil
	}
	return operand{}, p.errAt(t, "expected a column or a value")
}

// isKeyword reports words that cannot be a bare column name in a filter.
func isKeyword(w string) bool {
	switch strings.ToLower(w) {
	case "and", "or", "not", "like", "in", "where":
		return true
	}
	return false
}
