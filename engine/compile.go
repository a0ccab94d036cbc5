package engine

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr/types"
)

// compiler compiles one playbook's expressions and templates.
type compiler struct {
	l    *loader
	pb   *Playbook
	file string
	ids  map[string]*Step
	// sets are the variables defined by set steps (and effects).
	sets map[string]Pos
	// regs are register names with their output types.
	regs    map[string]types.Type
	secrets map[string]bool
	// cur is the step whose expressions are being compiled (nil outside
	// steps); done holds the ids whose steps.<id> result exists by the time
	// cur starts, in run order.
	cur     *Step
	done    map[string]bool
	doneLog []string // the ids in done, in the order they were added
}

func (c *compiler) errorf(p Pos, format string, args ...any) { c.l.errorf(p, format, args...) }
func (c *compiler) warnf(p Pos, format string, args ...any)  { c.l.warnf(p, format, args...) }

// runType is the type of the `run` variable.
var runType = types.Map{
	"id": types.String, "playbook": types.String, "operator": types.String, "host": types.String,
	"dry_run": types.Bool, "plan": types.Bool, "started": types.String, "file": types.String,
}

func (l *loader) compile(pb *Playbook) {
	c := &compiler{l: l, pb: pb, file: pb.File, ids: map[string]*Step{}, sets: map[string]Pos{},
		regs: map[string]types.Type{}, secrets: map[string]bool{}, done: map[string]bool{}}
	base := types.Map{"run": runType}
	for _, p := range pb.Params {
		if p.Removed != "" {
			continue // no longer a name the playbook reads
		}
		if _, dup := base[p.Name]; dup {
			c.errorf(p.Pos, "parameter %q is defined twice", p.Name)
		}
		base[p.Name] = paramType(p.Type)
		if p.Secret {
			c.secrets[p.Name] = true
		}
	}
	sc := &typeEnv{vars: base, secrets: c.secrets}
	for _, v := range pb.Vars {
		if _, dup := sc.lookup(v.Name); dup {
			c.errorf(v.Pos, "variable %q is already defined (as a parameter or variable)", v.Name)
			continue
		}
		c.compileTemplate(&v.Value.Template, kindValue, sc)
		if v.Value.secret {
			c.secrets[v.Name] = true
		}
		sc.set(v.Name, v.Value.valueType().(types.Type))
	}
	// first pass: ids, registers, set names
	stepsT := types.Map{}
	c.collect(pb.Steps, stepsT)
	sc.set("steps", stepsT)
	for name, t := range c.regs {
		if _, dup := sc.lookup(name); dup {
			c.errorf(c.regPos(name), "register %q hides a parameter or variable of the same name: rename one", name)
			continue
		}
		sc.set(name, t)
	}
	for name, p := range c.sets {
		if _, dup := sc.lookup(name); !dup {
			sc.set(name, types.Any)
		} else if _, isReg := c.regs[name]; !isReg && !c.isVarOrParam(name) {
			continue
		} else if c.isParam(name) {
			c.errorf(p, "`set` cannot change parameter %q: parameters are inputs; use a variable", name)
		}
	}
	for _, name := range pb.connOrder {
		conn := pb.Conns[name]
		c.file = conn.Pos.File // a header's connection: positions name the header
		for _, k := range sortedKeys(conn.Fields) {
			v := conn.Fields[k]
			c.compileTemplate(&v.Template, kindValue, sc)
			if v.secret && k != "password" {
				c.errorf(v.Pos, "connections.%s.%s reads a secret; only `password` may", name, k)
			}
		}
		if conn.Kind == "mysql" {
			if via, ok := conn.Fields["via"]; ok && via.lit != nil {
				if vc, ok := pb.Conns[fmt.Sprint(via.lit)]; !ok || vc.Kind != "ssh" {
					c.errorf(via.Pos, "connections.%s.via: %q is not an ssh connection of this playbook", name, fmt.Sprint(via.lit))
				}
			}
		}
	}
	c.file = pb.File
	c.steps(pb.Steps, sc, false)
	pb.outputT = includeOutput(sc)
}

// includeOutput is the type of an include's registered output: every name
// the included playbook's root scope holds at its end (parameters,
// variables, registers, set names), without run and steps.
func includeOutput(sc *typeEnv) types.Map {
	out := types.Map{}
	for k, t := range sc.vars {
		if k != "run" && k != "steps" {
			out[k] = t
		}
	}
	return out
}

func (c *compiler) isParam(name string) bool {
	for _, p := range c.pb.Params {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (c *compiler) isVarOrParam(name string) bool {
	if c.isParam(name) {
		return true
	}
	for _, v := range c.pb.Vars {
		if v.Name == name {
			return true
		}
	}
	return false
}

func (c *compiler) regPos(name string) Pos {
	var found Pos
	walkSteps(c.pb.Steps, func(s *Step) {
		if s.Register == name && found.Line == 0 {
			found = s.Pos
		}
	})
	return found
}

func paramType(t string) types.Type {
	switch t {
	case "int":
		return types.Int
	case "bool":
		return types.Bool
	case "float":
		return types.Float64
	case "list":
		return types.Array(types.Any)
	case "map":
		return types.Map{types.Extra: types.Any}
	case "duration":
		return types.TypeOf(durationZero)
	}
	return types.String
}

// walkSteps visits every step, depth first, including rescue and always.
func walkSteps(steps []*Step, fn func(*Step)) {
	for _, s := range steps {
		if s.SkippedBy != nil {
			continue // a site skips it: it defines nothing and never runs
		}
		fn(s)
		walkSteps(s.Steps, fn)
		walkSteps(s.Rescue, fn)
		walkSteps(s.Always, fn)
		walkSteps(s.Undo, fn)
		if s.Resume != nil && s.Resume.Probe != nil {
			walkSteps([]*Step{s.Resume.Probe}, fn)
		}
	}
}

// outputType is the type of a step's registered output.
func outputType(s *Step) types.Type {
	switch s.Type {
	case "group":
		return types.Array(types.Map{types.Extra: types.Any})
	case "include":
		// the included playbook's names, typed, once it is compiled (includes
		// compile first): a misspelt field of its output is a load error
		if s.Include != nil && s.Include.Playbook != nil && s.Include.Playbook.outputT != nil {
			return s.Include.Playbook.outputT
		}
		return types.Map{types.Extra: types.Any}
	}
	t, _ := LookupType(s.Type)
	if t.Output == nil {
		return types.Map{types.Extra: types.Any}
	}
	return t.Output
}

// stepResultType is the type of steps.<id>: the output plus status fields.
func stepResultType(s *Step) types.Type {
	m := types.Map{"ok": types.Bool, "skipped": types.Bool, "error": types.String, "output": outputType(s)}
	if om, ok := outputType(s).(types.Map); ok {
		for k, v := range om {
			if _, taken := m[k]; !taken {
				m[k] = v
			}
		}
	}
	return m
}

func (c *compiler) collect(steps []*Step, stepsT types.Map) {
	walkSteps(steps, func(s *Step) {
		if s.ID != "" {
			if prev, dup := c.ids[s.ID]; dup {
				c.errorf(s.Pos, "duplicate step id %q (first used at line %d)", s.ID, prev.Pos.Line)
			} else {
				c.ids[s.ID] = s
				stepsT[s.ID] = stepResultType(s)
			}
		}
		if s.Register != "" {
			t := outputType(s)
			if prev, ok := c.regs[s.Register]; ok && !prev.Equal(t) {
				c.regs[s.Register] = types.Any
			} else {
				c.regs[s.Register] = t
			}
		}
		if st, ok := s.Spec.(Setter); ok {
			for _, n := range st.SetsVars() {
				if _, seen := c.sets[n]; !seen {
					c.sets[n] = s.Pos
				}
			}
		}
		for name := range s.Effect {
			if _, seen := c.sets[name]; !seen {
				c.sets[name] = s.Pos
			}
		}
	})
}

// steps compiles a list of steps; guarded says an enclosing step has a
// rescue section (so a change is undone if it fails).
func (c *compiler) steps(steps []*Step, sc *typeEnv, guarded bool) {
	for _, s := range steps {
		c.step(s, sc, guarded)
	}
}

func (c *compiler) step(s *Step, sc *typeEnv, guarded bool) {
	prev, prevFile := c.cur, c.file
	c.cur = s
	if s.Playbook != nil && s.Playbook.File != c.file {
		// a site's step spliced in by extend: positions name its file
		c.file = s.Playbook.File
	}
	defer func() { c.cur, c.file = prev, prevFile }()
	if s.SkippedBy != nil {
		return // never runs: its expressions may read what the site removed
	}
	local := sc
	if s.Type == "group" && s.ForEach != nil {
		c.compileExpr(s.ForEach, sc, reflect.Invalid)
		as := s.As
		if as == "" {
			as = "item"
		}
		if _, clash := sc.lookup(as); clash && as != "item" {
			c.errorf(s.Pos, "for_each variable %q hides another variable: choose another `as:`", as)
		}
		local = sc.with(as, types.Any, s.ForEach.secret)
		local = local.with("index", types.Int, false)
	}
	scopes := keyScopes{local: local, result: local.with("result", outputType(s), false)}
	result := scopes.result
	c.compileCommonKeys(s, scopes, false)
	if (s.Interval > 0 || s.IntervalT != nil) && s.Retries == 0 && !s.hasTimeout() {
		c.errorf(s.Pos, "`interval:` without `retries:` or `timeout:` does nothing")
	}
	if len(s.Effect) > 0 && !s.Mutates() {
		c.warnf(s.Pos, "`effect:` on a read-only step is ignored: a dry run executes it for real")
	}
	// results set inside a for_each item stay in that item's scope
	mark := len(c.doneLog)
	switch s.Type {
	case "group":
		c.steps(s.Steps, local, guarded || len(s.Rescue) > 0 || s.When != nil || len(s.Pre) > 0)
	case "include":
		c.include(s, local)
	default:
		if s.Spec != nil {
			c.spec(s, reflect.ValueOf(s.Spec).Elem(), local)
			if ch, ok := s.Spec.(Checker); ok {
				ch.Check(&Check{c: c, step: s})
			}
			if set, ok := s.Spec.(SecretSetter); ok {
				for _, n := range set.SecretVars() {
					c.secrets[n] = true
				}
			}
			if s.Spec.Mutates() && s.When == nil && len(s.Pre) == 0 && len(s.Rescue) == 0 && !guarded {
				c.warnf(s.Pos, "step %q changes state but has no guard (`when:`/`pre:`) and no rescue path", s.Name)
			}
		}
	}
	if s.ForEach != nil {
		c.undone(mark)
	}
	if s.ID != "" {
		c.done[s.ID] = true
		c.doneLog = append(c.doneLog, s.ID)
	}
	errSc := local.with("error", types.String, false)
	// a rescue runs only when the step failed, and the run stops after it:
	// what it records is not there for the steps that follow
	mark = len(c.doneLog)
	c.steps(s.Rescue, errSc, true)
	c.undone(mark)
	c.steps(s.Always, errSc, guarded)
	if len(s.Undo) > 0 || s.Resume != nil {
		// undo steps and the resume check run outside the normal order:
		// what they record is not there for the steps that follow
		mark = len(c.doneLog)
		c.steps(s.Undo, result, true)
		if s.Resume != nil && s.Resume.Probe != nil {
			c.step(s.Resume.Probe, local, true)
			c.compileExpr(s.Resume.Done, local.with("result", outputType(s.Resume.Probe), false), reflect.Bool)
		}
		c.undone(mark)
	}
	c.compileCommonKeys(s, scopes, true)
}

// undone forgets the ids added to done since mark.
func (c *compiler) undone(mark int) {
	for _, id := range c.doneLog[mark:] {
		delete(c.done, id)
	}
	c.doneLog = c.doneLog[:mark]
}

// reportEarlyStepRefs reports reads of steps.<id> before that step has run.
func (c *compiler) reportEarlyStepRefs(e *Expr) {
	if c.cur == nil {
		return
	}
	for _, r := range e.refs {
		id, ok := strings.CutPrefix(r, "steps.")
		if !ok || c.done[id] {
			continue
		}
		if s := c.ids[id]; s != nil {
			c.errorf(e.Pos, "`steps.%s` is read before step %q (line %d) has run: a step's result exists once it has run (it cannot be read by the step itself, by steps before it, or from outside the for_each group or rescue section it is in)", id, id, s.Pos.Line)
		}
	}
}

func (c *compiler) guard(g *Guard, sc *typeEnv) {
	if g.That != nil {
		c.compileExpr(g.That, sc, reflect.Bool)
	}
	if g.Message != nil {
		c.compileTemplate(&g.Message.Template, kindText, sc)
		if g.Message.secret {
			c.errorf(g.Message.Pos, "the guard's message would log a secret")
		}
	}
}

func (c *compiler) include(s *Step, sc *typeEnv) {
	inc := s.Include
	if inc.Playbook == nil {
		return
	}
	params := map[string]*Param{}
	for _, p := range inc.Playbook.Params {
		params[p.Name] = p
	}
	for _, k := range inc.withKeys {
		v := inc.With[k]
		if v == nil {
			continue
		}
		c.compileTemplate(&v.Template, kindValue, sc)
		p, ok := params[k]
		if !ok {
			c.errorf(v.Pos, "with.%s: %s has no parameter %q%s", k, baseName(inc.Playbook.File), k, suggest(k, paramNames(inc.Playbook)))
			continue
		}
		if p.Removed != "" {
			mark := len(c.l.diags)
			c.errorf(v.Pos, "with.%s: %s no longer has parameter %q", k, baseName(inc.Playbook.File), k)
			c.l.explain(mark, p.Removed, "delete this line")
			continue
		}
		if v.secret && !p.Secret {
			c.errorf(v.Pos, "with.%s passes a secret to a parameter not marked `secret: true`", k)
		}
		if v.isLit {
			c.plainWith(k, v, p, sc)
		}
	}
}

func paramNames(pb *Playbook) []string {
	var out []string
	for _, p := range pb.Params {
		out = append(out, p.Name)
	}
	return out
}

var (
	exprT   = reflect.TypeOf((*Expr)(nil))
	textT   = reflect.TypeOf((*Text)(nil))
	sqlT    = reflect.TypeOf((*SQL)(nil))
	shellT  = reflect.TypeOf((*Shell)(nil))
	valueT  = reflect.TypeOf((*Value)(nil))
	mysqlTT = reflect.TypeOf(MySQLTarget{})
	sshTT   = reflect.TypeOf(SSHTarget{})
)

// spec compiles every template and expression field of a step spec.
func (c *compiler) spec(s *Step, v reflect.Value, sc *typeEnv) {
	if v.Kind() != reflect.Struct {
		c.field(s, v, "", sc)
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		c.field(s, v.Field(i), sf.Tag, sc)
	}
}

func (c *compiler) field(s *Step, fv reflect.Value, tag reflect.StructTag, sc *typeEnv) {
	switch fv.Type() {
	case exprT:
		if e := fv.Interface().(*Expr); e != nil {
			want := reflect.Invalid
			if tag.Get("flow") == "bool" {
				want = reflect.Bool
			}
			c.compileExpr(e, sc, want)
		}
		return
	case textT:
		if x := fv.Interface().(*Text); x != nil {
			c.compileTemplate(&x.Template, kindText, sc)
			if x.secret && tag.Get("flow") != "secret" {
				c.errorf(x.Pos, "this field is logged, and it would log a secret")
			}
		}
		return
	case sqlT:
		if x := fv.Interface().(*SQL); x != nil {
			c.compileTemplate(&x.Template, kindSQL, sc)
		}
		return
	case shellT:
		if x := fv.Interface().(*Shell); x != nil {
			c.compileTemplate(&x.Template, kindShell, sc)
			if x.secret {
				c.errorf(x.Pos, "a secret in a shell command would show on the remote host's process list (ps) and in logs: pass it on `stdin:` instead")
			}
		}
		return
	case valueT:
		if x := fv.Interface().(*Value); x != nil {
			c.compileTemplate(&x.Template, kindValue, sc)
			if x.secret && tag.Get("flow") != "secret" {
				c.errorf(x.Pos, "this field would carry a secret into a log; mark the value's field as secret or use another field")
			}
		}
		return
	case mysqlTT:
		c.target(s, fv.Addr().Interface().(*MySQLTarget).target(), "mysql", sc)
		return
	case sshTT:
		c.target(s, fv.Addr().Interface().(*SSHTarget).target(), "ssh", sc)
		return
	}
	switch fv.Kind() {
	case reflect.Ptr:
		if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
			c.spec(s, fv.Elem(), sc)
		}
	case reflect.Struct:
		c.spec(s, fv, sc)
	case reflect.Slice:
		for i := 0; i < fv.Len(); i++ {
			c.field(s, fv.Index(i), tag, sc)
		}
	case reflect.Map:
		for _, k := range fv.MapKeys() {
			c.field(s, fv.MapIndex(k), tag, sc)
		}
	}
}

func (c *compiler) target(s *Step, t *Target, kind string, sc *typeEnv) {
	if t.On == "" {
		c.errorf(s.Pos, "step %q: `on:` must name a %s connection of this playbook", s.Name, kind)
		return
	}
	conn, ok := c.pb.Conns[t.On]
	if !ok {
		var names []string
		for n, cn := range c.pb.Conns {
			if cn.Kind == kind {
				names = append(names, n)
			}
		}
		c.errorf(s.Pos, "step %q: no %s connection named %q%s", s.Name, kind, t.On, suggest(t.On, names))
		return
	}
	if conn.Kind != kind {
		c.errorf(s.Pos, "step %q: connection %q is %s, but this step needs %s", s.Name, t.On, conn.Kind, kind)
		return
	}
	t.conn = conn
	if t.At != nil && (t.Host != nil || t.Port != nil) {
		c.errorf(t.At.Pos, "step %q: `at:` gives host and port as one value: drop `host:` and `port:`, or drop `at:`", s.Name)
	}
	for _, v := range []*Value{t.Host, t.Port, t.At} {
		if v != nil {
			c.compileTemplate(&v.Template, kindValue, sc)
			if v.secret {
				c.errorf(v.Pos, "a host or port cannot come from a secret")
			}
		}
	}
}
