package engine

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Expr is a compiled expression from a playbook (a guard, a value, a
// for_each list). It is compiled once at load against the typed environment.
type Expr struct {
	Src  string
	Pos  Pos
	node *yaml.Node
	prog *vm.Program
	// refs are the names the expression reads: top-level variables and,
	// for step results, "steps.<id>".
	refs []string
	// pnames are the member chains it reads, evaluated on refusal or skip
	// to report the values seen. They are compiled on first use (parts):
	// most guards never refuse, and compiling a program per chain at load
	// was a third of the time a playbook took to load.
	pnames []string
	penv   expr.Option
	pOnce  sync.Once
	parts  []*vm.Program // parallel to pnames; nil where a chain does not compile
	secret bool
	// inLine and inCol place Src inside its YAML scalar when it is part of a
	// template: the 0-based line of the scalar's value it starts on and its
	// 0-based column (in characters) on that line.
	inLine, inCol int
}

// UnmarshalYAML keeps the node for positions; compilation happens later.
func (e *Expr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &posError{n, "expected an expression (a string)"}
	}
	e.Src, e.node = n.Value, n
	return nil
}

// IsZero reports whether the expression is absent.
func (e *Expr) IsZero() bool { return e == nil || e.Src == "" && e.node == nil }

// Secret reports whether the expression reads a secret.
func (e *Expr) Secret() bool { return e != nil && e.secret }

// Refs returns the names the expression reads.
func (e *Expr) Refs() []string { return e.refs }

type posError struct {
	n   *yaml.Node
	msg string
}

func (e *posError) Error() string { return e.msg }

// FuncDef is a function available in expressions.
type FuncDef struct {
	Name string
	Fn   func(params ...any) (any, error)
	// Types are signatures such as new(func(string, string) bool).
	Types []any
	// Secret marks functions whose result is a secret (generated passwords).
	Secret bool
	Help   string
}

var (
	funcMu  sync.RWMutex
	funcs   = map[string]FuncDef{}
	funcGen int // counts RegisterFunc calls: baseConfig rebuilds after one
)

// RegisterFunc adds a function to the expression language.
func RegisterFunc(f FuncDef) {
	funcMu.Lock()
	defer funcMu.Unlock()
	if _, dup := funcs[f.Name]; dup {
		panic("engine: duplicate expression function " + f.Name)
	}
	funcs[f.Name] = f
	funcGen++
}

// Funcs lists the registered expression functions, sorted by name.
func Funcs() []FuncDef {
	funcMu.RLock()
	defer funcMu.RUnlock()
	out := make([]FuncDef, 0, len(funcs))
	for _, f := range funcs {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// compileProgram compiles src as expr.Compile does (parse and type check,
// optimise, compile), but from a configuration built once: expr.Compile
// builds a new one with every builtin and registered function for each
// expression, which was most of the time a playbook takes to load.
func compileProgram(src string, opts ...expr.Option) (*vm.Program, error) {
	c := baseConfig()
	for _, op := range opts {
		op(c)
	}
	c.Check()
	tree, err := checker.ParseCheck(src, c)
	if err != nil {
		return nil, err
	}
	if c.Optimize {
		if err := optimizer.Optimize(&tree.Node, c); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, fe.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return exprcompiler.Compile(tree, c)
}

var base struct {
	sync.Mutex
	gen int
	cfg *conf.Config
}

// baseConfig returns a copy of the configuration with the builtins and the
// registered functions. The copy shares their tables, which compiling only
// reads; what an option sets (environment, visitors, expected kind) and the
// type cache are its own.
func baseConfig() *conf.Config {
	funcMu.RLock()
	gen := funcGen
	funcMu.RUnlock()
	base.Lock()
	defer base.Unlock()
	if base.cfg == nil || base.gen != gen {
		c := conf.CreateNew()
		for _, op := range funcOptions() {
			op(c)
		}
		base.cfg, base.gen = c, gen
	}
	c := *base.cfg
	c.Visitors = nil
	c.NtCache = nature.Cache{}
	return &c
}

func funcOptions() []expr.Option {
	var opts []expr.Option
	for _, f := range Funcs() {
		opts = append(opts, expr.Function(f.Name, f.Fn, f.Types...))
	}
	return opts
}

// typeEnv is the typed environment an expression is compiled against: the
// names it may read and their types (not the JSON Schema of a playbook
// file, which is schema.go's). A typeEnv made by with adds one name to its
// parent without copying it, and the environment expr-lang checks against
// (a Nature) is built once per typeEnv, when an expression first needs it: converting a large types.Map
// for every expression made loading quadratic in the number of steps.
type typeEnv struct {
	parent  *typeEnv
	vars    types.Map // the names this typeEnv adds (the root: all of its own)
	secrets map[string]bool
	nat     *nature.Nature
}

func (s *typeEnv) with(name string, t types.Type, secret bool) *typeEnv {
	n := &typeEnv{parent: s, vars: types.Map{name: t}, secrets: s.secrets}
	if secret {
		n.secrets = make(map[string]bool, len(s.secrets)+1)
		for k, v := range s.secrets {
			n.secrets[k] = v
		}
		n.secrets[name] = true
	}
	return n
}

// lookup finds a name's type, innermost typeEnv first.
func (s *typeEnv) lookup(name string) (types.Type, bool) {
	for c := s; c != nil; c = c.parent {
		if t, ok := c.vars[name]; ok {
			return t, true
		}
	}
	return nil, false
}

// set defines a name in this typeEnv (only before its children are made).
func (s *typeEnv) set(name string, t types.Type) {
	s.vars[name] = t
	s.nat = nil
}

// nature returns the typeEnv's environment for expr-lang, building it on
// first use: from the parent's by adding this typeEnv's names.
func (s *typeEnv) nature() nature.Nature {
	if s.nat != nil {
		return *s.nat
	}
	var nt nature.Nature
	if s.parent == nil {
		nt = s.vars.Nature()
	} else {
		nt = s.parent.nature()
		td := *nt.TypeData
		td.Fields = make(map[string]nature.Nature, len(nt.Fields)+len(s.vars))
		for k, v := range nt.Fields {
			td.Fields[k] = v
		}
		for k, v := range s.vars {
			td.Fields[k] = v.Nature()
		}
		nt.TypeData = &td
	}
	s.nat = &nt
	return nt
}

// env is the expr.Env option for the typeEnv, with its cached environment.
func (s *typeEnv) env() expr.Option {
	nt := s.nature()
	return func(c *conf.Config) {
		c.Env = nt
		c.Strict = nt.Strict
	}
}

// refVisitor collects the names and member chains an expression reads.
type refVisitor struct {
	refs   map[string]bool
	chains map[string]bool
	calls  map[string]bool
}

func (v *refVisitor) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		v.refs[x.Value] = true
	case *ast.MemberNode:
		if id, ok := x.Node.(*ast.IdentifierNode); ok && id.Value == "steps" {
			if s, ok := x.Property.(*ast.StringNode); ok {
				v.refs["steps."+s.Value] = true
			}
		}
		if chain := memberChain(x); chain != "" {
			v.chains[chain] = true
		}
	case *ast.CallNode:
		if id, ok := x.Callee.(*ast.IdentifierNode); ok {
			v.calls[id.Value] = true
		}
	}
}

func memberChain(n ast.Node) string {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value
	case *ast.MemberNode:
		base := memberChain(x.Node)
		if base == "" {
			return ""
		}
		switch p := x.Property.(type) {
		case *ast.StringNode:
			return base + "." + p.Value
		case *ast.IntegerNode:
			return fmt.Sprintf("%s[%d]", base, p.Value)
		}
	}
	return ""
}

// compile compiles e against sc; want is the result kind required
// (reflect.Bool for guards, reflect.Invalid for any).
func (c *compiler) compileExpr(e *Expr, sc *typeEnv, want reflect.Kind) {
	if e == nil {
		return
	}
	e.Pos = posOf(c.file, e.node)
	if strings.TrimSpace(e.Src) == "" {
		c.errorf(e.Pos, "empty expression")
		return
	}
	vis := &refVisitor{refs: map[string]bool{}, chains: map[string]bool{}, calls: map[string]bool{}}
	opts := []expr.Option{sc.env(), expr.Patch(vis)}
	switch want {
	case reflect.Bool:
		opts = append(opts, expr.AsBool())
	}
	prog, err := compileProgram(e.Src, opts...)
	if err != nil {
		c.exprError(e, err, sc)
		return
	}
	e.prog = prog
	for r := range vis.refs {
		if _, ok := sc.lookup(r); ok || strings.HasPrefix(r, "steps.") {
			e.refs = append(e.refs, r)
		}
		if sc.secrets[r] {
			e.secret = true
		}
	}
	sort.Strings(e.refs)
	c.reportEarlyStepRefs(e)
	for fn := range vis.calls {
		if f, ok := funcs[fn]; ok && f.Secret {
			e.secret = true
		}
	}
	chains := make([]string, 0, len(vis.chains)+len(e.refs))
	for ch := range vis.chains {
		chains = append(chains, ch)
	}
	for _, r := range e.refs {
		if !strings.HasPrefix(r, "steps.") && !vis.chains[r] {
			chains = append(chains, r)
		}
	}
	sort.Strings(chains)
	// keep only the longest chains: "a.b.c" makes "a.b" and "a" redundant
	for i, ch := range chains {
		redundant := false
		for _, other := range chains[i+1:] {
			if strings.HasPrefix(other, ch+".") || strings.HasPrefix(other, ch+"[") {
				redundant = true
				break
			}
		}
		if redundant || ch == "steps" {
			continue
		}
		e.pnames = append(e.pnames, ch)
	}
	if len(e.pnames) > 0 {
		e.penv = sc.env()
	}
}

// chainPrograms compiles the member chains the expression reads, once.
func (e *Expr) chainPrograms() []*vm.Program {
	e.pOnce.Do(func() {
		e.parts = make([]*vm.Program, len(e.pnames))
		for i, ch := range e.pnames {
			if p, err := compileProgram(ch, e.penv); err == nil {
				e.parts[i] = p
			}
		}
	})
	return e.parts
}

// exprError maps an expr-lang error to a playbook position.
func (c *compiler) exprError(e *Expr, err error, sc *typeEnv) {
	pos := e.Pos
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if e.node != nil {
			line, col := fe.Line, fe.Column
			if line <= 1 {
				col += e.inCol
			}
			pos = exprPos(c.file, e.node, line+e.inLine, col)
			if e.node.Style == yaml.LiteralStyle {
				pos.Col += blockIndent(c.l.sources[c.file], e.node.Line)
			}
		}
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	mark := len(c.l.diags)
	c.errorf(pos, "expression `%s`: %s", oneLine(e.Src), msg)
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok && nameRE.MatchString(name) {
		detail, hint := unknownNameHint(name, sc)
		if why, ok := c.l.removed[name]; ok {
			detail, hint = why, "skip or replace the steps that read "+name+" too, or replace the step with steps that define "+name
		}
		c.l.explain(mark, detail, hint)
	} else if field, ok := strings.CutPrefix(msg, "unknown field "); ok && nameRE.MatchString(field) {
		if detail, hint := unknownFieldHint(field, sc); hint != "" {
			c.l.explain(mark, detail, hint)
		}
	}
}

// exprPos maps a (1-based line, 0-based column) inside an expression to the
// file position of the YAML scalar holding it.
func exprPos(fileName string, n *yaml.Node, line, col int) Pos {
	p := Pos{File: fileName, Line: n.Line, Col: n.Column}
	switch n.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line <= 1 {
			p.Col = n.Column + 1 + col
		}
	case yaml.LiteralStyle:
		p.Line = n.Line + line
		p.Col = col + 1 // indentation unknown here; the line is exact
	case yaml.FoldedStyle:
	default:
		p.Line = n.Line + line - 1
		if line <= 1 {
			p.Col = n.Column + col
		} else {
			p.Col = col + 1
		}
	}
	return p
}

// blockIndent is the indentation of a literal block scalar whose indicator
// (`|`) is on line: that of its first non-blank content line.
func blockIndent(src []byte, line int) int {
	lines := strings.Split(string(src), "\n")
	for i := line; i < len(lines); i++ { // lines[line] is the line after the indicator
		trimmed := strings.TrimLeft(lines[i], " ")
		if strings.TrimSpace(trimmed) != "" {
			return len(lines[i]) - len(trimmed)
		}
	}
	return 0
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// Unknown marks a value that only a real run can produce (plan and dry run).
type Unknown struct{ Why string }

func (u Unknown) String() string { return "<unknown: " + u.Why + ">" }

// typeOfValue gives the expression type of a Go value.
func typeOfValue(v any) types.Type {
	switch v.(type) {
	case string:
		return types.String
	case int, int64:
		return types.Int
	case bool:
		return types.Bool
	case float64:
		return types.Float64
	case []any:
		return types.Array(types.Any)
	case map[string]any:
		return types.Map{types.Extra: types.Any}
	}
	return types.Any
}

// typeOfProgram gives the result type of a compiled expression.
func typeOfProgram(p *vm.Program) types.Type {
	if p == nil {
		return types.Any
	}
	t := p.Node().Type()
	if t == nil {
		return types.Any
	}
	switch t.Kind() {
	case reflect.String:
		return types.String
	case reflect.Int, reflect.Int64, reflect.Int32:
		return types.Int
	case reflect.Bool:
		return types.Bool
	case reflect.Float64, reflect.Float32:
		return types.Float64
	}
	return types.Any
}

// run evaluates a compiled expression.
func runExpr(e *Expr, env map[string]any) (any, error) {
	out, err := expr.Run(e.prog, env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s: expression `%s`: %s", e.Pos, oneLine(e.Src), firstLine(fe.Message))
		}
		return nil, fmt.Errorf("%s: expression `%s`: %v", e.Pos, oneLine(e.Src), err)
	}
	return out, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Eval compiles and evaluates one expression with the given variables, the
// same language and functions as playbook guards (for `flow eval`).
func Eval(src string, vars map[string]any) (any, error) {
	opts := []expr.Option{expr.Env(vars)}
	opts = append(opts, funcOptions()...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	return expr.Run(prog, vars)
}
