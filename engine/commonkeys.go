package engine

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// keyScopes are the type environments a common key's expressions are
// compiled against: the step's own (local: for a for_each group with the
// item and index), and local with the step's output as `result` (post,
// until, undo).
type keyScopes struct {
	local, result *typeEnv
}

// commonKey is one common step key: the keys a step takes besides its type
// key. Its entry is the one place that says how the loader reads it
// (parse), how its expressions are checked (compile), what the JSON Schema and
// `flow steps` say of it (shape, doc) and which steps take it (only).
// Adding a common key means adding an entry here and the Step field it
// fills (playbook.go), and making the runner act on it where its stage is
// (step.go for what decides whether a step runs, leaf.go for how a typed
// step runs): the order of those stages is the runner's, not the table's.
type commonKey struct {
	name string
	// only is "group" or "include" for a key only a group or an include
	// takes; "" for a key every step takes.
	only string
	// parse reads the key's value v into s (nil: the loader reads it after
	// the other keys, as `with:` needs `include:`).
	parse func(l *loader, s *Step, v *yaml.Node)
	// compile checks the key's expressions and templates against the step's
	// type environments (nil: nothing to compile, or compiled with the
	// step's structure in compiler.step: for_each, steps, rescue, always,
	// undo, resume). Keys compile in table order.
	compile func(c *compiler, s *Step, sc keyScopes)
	// late compiles the key after the step's body and sections, when the
	// step's own result (steps.<id>) may be read.
	late bool
	// shape is the key's JSON Schema, without its description (doc).
	shape func() obj
	// doc is what the key does, for the schema and editors.
	doc string
}

// commonKeyTable are the common step keys, in the order the schema and the docs
// list them; set in init, as their parse functions parse steps.
var commonKeyTable []commonKey

// commonKeys holds the name of every common step key (set with commonKeyTable).
var commonKeys map[string]bool

// commonKeyIndex finds an entry of commonKeyTable by name.
var commonKeyIndex map[string]*commonKey

func init() {
	commonKeyTable = []commonKey{
		{name: "id", doc: "reference name: steps.<id>.ok, .skipped, .error, .output and the output's fields",
			shape: func() obj { return obj{"type": "string", "pattern": idRE.String()} },
			parse: func(l *loader, s *Step, v *yaml.Node) {
				f := s.Playbook.File
				s.ID, _ = l.str(f, v, "id")
				if s.ID != "" && !idRE.MatchString(s.ID) {
					l.errorf(posOf(f, v), "id %q must match %s", s.ID, idRE)
				}
			}},
		{name: "name", doc: "the log label (a template)", shape: refShape("text"),
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.nameT = l.text(s.Playbook.File, v, "name")
				if s.nameT != nil {
					s.Name = s.nameT.Raw
				}
			},
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.nameT != nil {
					c.compileTemplate(&s.nameT.Template, kindText, sc.local)
					if s.nameT.secret {
						c.errorf(s.nameT.Pos, "the step name would log a secret")
					}
				}
			}},
		{name: "when", doc: "skip the step unless this expression is true", shape: refShape("expression"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.When = l.expr(s.Playbook.File, v, "when") },
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.When != nil {
					c.compileExpr(s.When, sc.local, reflect.Bool)
				}
			}},
		{name: "pre", doc: "preconditions: an expression, a list of them, or {that, message}; one failing before any state-changing step ran exits 3",
			shape: refShape("guards"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Pre = l.parseGuards(s.Playbook.File, v, "pre") },
			compile: func(c *compiler, s *Step, sc keyScopes) {
				for _, g := range s.Pre {
					c.guard(g, sc.local)
				}
			}},
		{name: "post", doc: "postconditions on the step's output (`result`)", shape: refShape("guards"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Post = l.parseGuards(s.Playbook.File, v, "post") },
			compile: func(c *compiler, s *Step, sc keyScopes) {
				for _, g := range s.Post {
					c.guard(g, sc.result)
				}
			}},
		{name: "register", doc: "store the step's output in this variable", shape: refShape("name"),
			parse: func(l *loader, s *Step, v *yaml.Node) {
				f := s.Playbook.File
				s.Register, _ = l.str(f, v, "register")
				if s.Register != "" && !nameRE.MatchString(s.Register) {
					l.errorf(posOf(f, v), "register name %q must match %s", s.Register, nameRE)
				}
			}},
		{name: "retries", doc: "re-run the step at most this many more times until `until:` holds",
			shape: func() obj { return obj{"type": "integer", "minimum": 0, "maximum": 1000000} },
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.Retries = l.integer(s.Playbook.File, v, "retries", 0, 1000000)
			}},
		{name: "until", doc: "re-run until this holds (it sees `result`); needs retries: or timeout:", shape: refShape("expression"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Until = l.expr(s.Playbook.File, v, "until") },
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.Until != nil {
					c.compileExpr(s.Until, sc.result, reflect.Bool)
				}
			}},
		{name: "interval", doc: "time between attempts (default 500ms): a duration such as 250ms, or {{ a duration parameter }}", shape: durationOrTemplateShape,
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.Interval, s.IntervalT = l.durationOrTemplate(s.Playbook.File, v, "interval")
			},
			compile: func(c *compiler, s *Step, sc keyScopes) { c.compileDuration(s.IntervalT, sc.local, "interval") }},
		{name: "timeout", doc: "bounds the step with its retries: a duration such as 5m, or {{ a duration parameter }}", shape: durationOrTemplateShape,
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.Timeout, s.TimeoutT = l.durationOrTemplate(s.Playbook.File, v, "timeout")
			},
			compile: func(c *compiler, s *Step, sc keyScopes) { c.compileDuration(s.TimeoutT, sc.local, "timeout") }},
		{name: "effect", doc: "for a dry run: the variables this state-changing step would set, as expressions",
			shape: func() obj { return orNull(nameMap(ref("expression"))) },
			parse: func(l *loader, s *Step, v *yaml.Node) {
				f := s.Playbook.File
				em := l.mapping(f, v, "effect", nil)
				if em == nil {
					return
				}
				s.Effect = map[string]*Expr{}
				for _, name := range em.keys {
					if !nameRE.MatchString(name) {
						l.errorf(posOf(f, em.knodes[name]), "effect name %q must match %s", name, nameRE)
						continue
					}
					s.Effect[name] = l.expr(f, em.vals[name], "effect."+name)
				}
			},
			compile: func(c *compiler, s *Step, sc keyScopes) {
				for _, name := range sortedKeys(s.Effect) {
					if e := s.Effect[name]; e != nil {
						c.compileExpr(e, sc.local, reflect.Invalid)
						if e.secret {
							c.secrets[name] = true
						}
					}
				}
			}},
		{name: "confirm", doc: "a confirmation point: the word the operator must type before this state-changing step, group or include (--yes answers it), or {word, message: what will happen and where}; a run that cannot ask is refused before its first change",
			shape: func() obj {
				return obj{"oneOf": []any{ref("text"),
					obj{"type": "object", "required": []any{"word"}, "additionalProperties": false,
						"properties": obj{"word": ref("text"), "message": ref("text")}}}}
			},
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.Confirm, s.ConfirmMessage = l.parseConfirm(s.Playbook.File, v)
			},
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.Confirm != nil {
					c.compileTemplate(&s.Confirm.Template, kindText, sc.local)
				}
				if s.ConfirmMessage != nil {
					c.compileTemplate(&s.ConfirmMessage.Template, kindText, sc.local)
				}
			}},
		{name: "hint", doc: "what the operator should check or do when this step fails: added to its error", shape: refShape("text"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Hint = l.text(s.Playbook.File, v, "hint") },
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.Hint != nil {
					c.compileTemplate(&s.Hint.Template, kindText, sc.local)
				}
			}},
		{name: "rescue", doc: "steps run when this step fails (they see `error`)", shape: refShape("steps"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Rescue = l.parseSteps(s.Playbook, v, "rescue") }},
		{name: "always", doc: "steps run after this step whatever happened", shape: refShape("steps"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Always = l.parseSteps(s.Playbook, v, "always") }},
		{name: "ignore_errors", doc: "log a failure as a warning and go on",
			shape: func() obj { return obj{"type": "boolean"} },
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.IgnoreErrors = l.boolean(s.Playbook.File, v, "ignore_errors")
			}},
		{name: "undo", doc: "steps `flow rollback` runs, newest change first, to undo this step once it finished (they see `result`)",
			shape: refShape("steps"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Undo = l.parseSteps(s.Playbook, v, "undo") }},
		{name: "point_of_no_return", doc: "once this step sent its change, `flow rollback` refuses with this message and a rescue section around it no longer runs (the run ends failed or interrupted, the message as what to do): say what restores instead",
			shape: refShape("text"),
			parse: func(l *loader, s *Step, v *yaml.Node) {
				s.NoReturn = l.text(s.Playbook.File, v, "point_of_no_return")
			},
			compile: func(c *compiler, s *Step, sc keyScopes) {
				if s.NoReturn != nil {
					c.compileTemplate(&s.NoReturn.Template, kindText, sc.local)
				}
			}, late: true},
		{name: "resume", doc: "how `flow resume` tells whether an interrupted run of this step took effect: rerun (idempotent), ask (the operator decides), {check: a read-only step, done: an expression on its `result`}; on a group, restart (an interrupted group or for_each item starts over)",
			shape: func() obj {
				return obj{"oneOf": []any{
					obj{"enum": []any{"rerun", "ask", "restart"}},
					obj{"type": "object", "required": []any{"check", "done"}, "additionalProperties": false,
						"properties": obj{"check": ref("step"), "done": ref("expression")}},
				}}
			},
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Resume = l.parseResume(s.Playbook, v) }},
		{name: "steps", only: "group", doc: "the group's steps", shape: refShape("steps"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.Steps = l.parseSteps(s.Playbook, v, "steps") }},
		{name: "for_each", only: "group", doc: "run the group once per item of this list expression", shape: refShape("expression"),
			parse: func(l *loader, s *Step, v *yaml.Node) { s.ForEach = l.expr(s.Playbook.File, v, "for_each") }},
		{name: "as", only: "group", doc: "the item's variable name (default item)", shape: refShape("name"),
			parse: func(l *loader, s *Step, v *yaml.Node) {
				f := s.Playbook.File
				s.As, _ = l.str(f, v, "as")
				if s.As != "" && !nameRE.MatchString(s.As) {
					l.errorf(posOf(f, v), "as: %q must match %s", s.As, nameRE)
				}
			}},
		{name: "parallel", only: "group", doc: "how many items run at once (default 1): a whole number from 1 to 256, or {{ an int parameter }}",
			shape: func() obj {
				return obj{"anyOf": []any{obj{"type": "integer", "minimum": 1, "maximum": 256}, obj{"type": "string", "pattern": `\{\{.*\}\}`}}}
			},
			parse: func(l *loader, s *Step, v *yaml.Node) {
				if d := deref(v); d != nil && d.Kind == yaml.ScalarNode && strings.Contains(d.Value, "{{") {
					s.ParallelT = l.value(s.Playbook.File, v, "parallel")
					return
				}
				s.Parallel = l.integer(s.Playbook.File, v, "parallel", 1, 256)
			},
			compile: func(c *compiler, s *Step, sc keyScopes) { c.compileParallel(s.ParallelT, sc.local) }},
		{name: "include", only: "include", doc: "another playbook file, relative to this one",
			shape: func() obj { return obj{"type": "string"} },
			parse: func(l *loader, s *Step, v *yaml.Node) {
				path, _ := l.str(s.Playbook.File, v, "include")
				s.Include = &Include{Path: path, With: map[string]*Value{}}
			}},
		// with: is read once include: is (parseStep), whatever their order
		{name: "with", only: "include", doc: "the included playbook's parameters: plain values as on --var (my.cnf, 3310, [a, b]), or {{ expressions }} (a lone one keeps its type)",
			shape: func() obj {
				return orNull(obj{"type": "object", "additionalProperties": obj{"anyOf": []any{ref("value"), obj{"type": "array"}, obj{"type": "object", "additionalProperties": true}}}})
			}},
		// extend: is read once include: is (parseStep), whatever their order
		{name: "extend", only: "include", doc: "a site's changes to the included playbook, which stays unchanged: a list of {before: STEP, steps: [...]}, {after: STEP, steps: [...]}, {replace: STEP, steps: [...]} or {skip: STEP, reason: text}; STEP is a step's name or id, \"GROUP > STEP\" when several share a name",
			shape: func() obj {
				anchor := func(op string, more obj) obj {
					props := obj{op: ref("text")}
					for k, v := range more {
						props[k] = v
					}
					return obj{"type": "object", "required": []any{op}, "additionalProperties": false, "properties": props}
				}
				return obj{"type": "array", "items": obj{"oneOf": []any{
					anchor("before", obj{"steps": ref("steps")}), anchor("after", obj{"steps": ref("steps")}),
					anchor("replace", obj{"steps": ref("steps")}), anchor("skip", obj{"reason": ref("text")}),
				}}}
			}},
	}
	commonKeys = make(map[string]bool, len(commonKeyTable))
	commonKeyIndex = make(map[string]*commonKey, len(commonKeyTable))
	for i := range commonKeyTable {
		k := &commonKeyTable[i]
		if commonKeys[k.name] || k.shape == nil || k.doc == "" {
			panic("engine: common step key " + k.name + " is defined twice or lacks its schema or doc")
		}
		commonKeys[k.name] = true
		commonKeyIndex[k.name] = k
	}
}

// compileCommonKeys compiles the expressions and templates of a step's
// common keys, the late ones (late) or the others, in table order.
func (c *compiler) compileCommonKeys(s *Step, sc keyScopes, late bool) {
	for i := range commonKeyTable {
		if k := &commonKeyTable[i]; k.compile != nil && k.late == late {
			k.compile(c, s, sc)
		}
	}
}

// durationOrTemplateShape is a duration literal or a {{ }} template.
func durationOrTemplateShape() obj {
	return obj{"anyOf": []any{ref("duration"), obj{"type": "string", "pattern": `\{\{.*\}\}`}}}
}

// refShape is a shape that refers to a shared schema definition.
func refShape(def string) func() obj { return func() obj { return ref(def) } }

// keySchema is a common key's schema with its description.
func (k *commonKey) keySchema() obj { return described(k.shape(), k.doc) }

// commonKeysOnly lists the names of the common keys only a group or an
// include takes (only: "group" or "include"), in table order.
func commonKeysOnly(only string) []string {
	var out []string
	for _, k := range commonKeyTable {
		if k.only == only {
			out = append(out, k.name)
		}
	}
	return out
}
