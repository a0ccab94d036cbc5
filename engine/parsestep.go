package engine

// Steps as written: a step's keys, its type, groups, includes, resume and guards.

import (
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseConfirm reads `confirm:`: the word to type, or a mapping of the
// word and the message the prompt shows (what will happen, where).
func (l *loader) parseConfirm(file string, n *yaml.Node) (word, message *Text) {
	if d := deref(n); d != nil && d.Kind == yaml.MappingNode {
		m := l.mapping(file, n, "confirm", []string{"word", "message"})
		if m == nil {
			return nil, nil
		}
		if wn, ok := m.vals["word"]; ok {
			word = l.text(file, wn, "confirm.word")
		} else {
			l.errorf(posOf(file, n), "confirm: needs `word:` (what the operator types), e.g. confirm: {word: \"{{ target_host }}\", message: …}")
		}
		if mn, ok := m.vals["message"]; ok {
			message = l.text(file, mn, "confirm.message")
		}
		return word, message
	}
	return l.text(file, n, "confirm"), nil
}

func (l *loader) parseSteps(pb *Playbook, n *yaml.Node, what string) []*Step {
	f := pb.File
	d := deref(n)
	if d == nil || d.Kind != yaml.SequenceNode {
		l.errorf(posOf(f, n), "%s must be a list of steps (lines starting with `- `), not %s", what, kindName(d))
		return nil
	}
	var out []*Step
	for i, item := range d.Content {
		if s := l.parseStep(pb, item, fmt.Sprintf("%s[%d]", what, i)); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// parseStep reads one step: its type (stepType), each key (a common key's
// parse, or the step type's fields), include's `with:`, the keys that must
// go together, and the playbook an include names.
func (l *loader) parseStep(pb *Playbook, n *yaml.Node, what string) *Step {
	f := pb.File
	d := deref(n)
	s := &Step{Pos: posOf(f, d), Playbook: pb, Interval: 0}
	if l.depth == 0 {
		l.top = posOf(f, n)
	}
	if l.steps++; l.steps > maxSteps {
		l.bomb(l.top, fmt.Sprintf("more than %d steps", maxSteps))
		return nil
	}
	l.depth++
	defer func() { l.depth-- }()
	if d == nil || d.Kind != yaml.MappingNode {
		l.errorf(posOf(f, n), "%s: a step must be a mapping, not %s", what, kindName(d))
		return nil
	}
	allowed := make([]string, 0, len(commonKeys)+len(registry))
	for k := range commonKeys {
		allowed = append(allowed, k)
	}
	allowed = append(allowed, typeNames()...)
	m := l.mapping(f, d, "step", allowed)
	if m == nil {
		return nil
	}
	l.stepKeyHints(m)
	if !l.stepType(s, m, what) {
		return nil
	}
	for _, k := range m.keys {
		if key, common := commonKeyIndex[k]; !common {
			s.Spec = l.decodeSpec(pb, k, m.knodes[k], m.vals[k])
		} else if key.parse != nil {
			key.parse(l, s, m.vals[k])
		}
	}
	l.parseWith(f, s, m)
	l.parseExtendKey(f, s, m)
	l.misplacedKeys(f, s, m)
	if s.Include != nil && s.Include.Path != "" && !l.loadInclude(pb, s, m) {
		return nil
	}
	if s.Name == "" {
		switch {
		case s.ID != "":
			s.Name = s.ID
		default:
			s.Name = s.Type
		}
	}
	return s
}

// stepType sets a step's type from its keys: the one step type key, or
// group (`steps:`) or include (`include:`); false when the keys do not
// name exactly one.
func (l *loader) stepType(s *Step, m *mapping, what string) bool {
	var typeKeys []string
	for _, k := range m.keys {
		if !commonKeys[k] {
			typeKeys = append(typeKeys, k)
		}
	}
	_, hasSteps := m.vals["steps"]
	_, hasInclude := m.vals["include"]
	switch {
	case len(typeKeys) > 1:
		l.errorf(s.Pos, "%s: a step has one type, but this one has %s", what, strings.Join(typeKeys, " and "))
		return false
	case len(typeKeys) == 1 && (hasSteps || hasInclude):
		l.errorf(s.Pos, "%s: `%s:` cannot be combined with `steps:` or `include:`", what, typeKeys[0])
		return false
	case hasSteps && hasInclude:
		l.errorf(s.Pos, "%s: `steps:` and `include:` cannot be combined", what)
		return false
	case len(typeKeys) == 1:
		s.Type = typeKeys[0]
	case hasSteps:
		s.Type = "group"
	case hasInclude:
		s.Type = "include"
	default:
		l.errorf(s.Pos, "%s: the step has no type: add one of %s, `steps:` (a group) or `include:`", what, strings.Join(typeNames(), ", "))
		return false
	}
	return true
}

// parseWith reads an include's `with:` (the values it passes).
func (l *loader) parseWith(f string, s *Step, m *mapping) {
	wn, ok := m.vals["with"]
	if !ok {
		return
	}
	if s.Include == nil {
		l.errorf(posOf(f, m.knodes["with"]), "`with:` only goes with `include:`")
	} else if wm := l.mapping(f, wn, "with", nil); wm != nil {
		for _, k := range wm.keys {
			s.Include.With[k] = l.value(f, wm.vals[k], "with."+k)
			s.Include.withKeys = append(s.Include.withKeys, k)
		}
	}
}

// misplacedKeys reports common keys that do not go with the step's
// type or need another key: for_each, as and parallel with a group only;
// undo and resume with a typed step (a group takes resume: restart);
// until with a bound.
func (l *loader) misplacedKeys(f string, s *Step, m *mapping) {
	if s.Type != "group" {
		for _, k := range []string{"for_each", "as", "parallel"} {
			if kn, ok := m.knodes[k]; ok {
				l.errorf(posOf(f, kn), "`%s:` only goes with `steps:` (a group)", k)
			}
		}
	}
	if s.Type == "group" && s.ForEach == nil {
		for _, k := range []string{"as", "parallel"} {
			if kn, ok := m.knodes[k]; ok {
				l.errorf(posOf(f, kn), "`%s:` needs `for_each:`", k)
			}
		}
	}
	if s.Type == "group" || s.Type == "include" {
		for _, k := range []string{"undo", "resume"} {
			if kn, ok := m.knodes[k]; ok && !(k == "resume" && s.Type == "group" && s.Resume != nil && s.Resume.Mode == "restart") {
				l.errorf(posOf(f, kn), "`%s:` goes with a typed step (sql, ssh, …), not with a group or an include (a group takes only `resume: restart`)", k)
			}
		}
	} else if s.Resume != nil && s.Resume.Mode == "restart" {
		l.errorf(s.Resume.Pos, "`resume: restart` goes with a group (it starts the group over); a typed step takes rerun, ask or {check, done}")
	}
	if s.Until != nil && s.Retries == 0 && !s.hasTimeout() {
		l.errorf(s.Until.posIn(f), "`until:` needs a bound: add `retries:` or `timeout:`")
	}
}

// loadInclude loads the playbook an include names (relative to the
// including file); false when it cannot be loaded.
func (l *loader) loadInclude(pb *Playbook, s *Step, m *mapping) bool {
	path := s.Include.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(pb.File), path)
	}
	var inc *Playbook
	if s.Include.Extend != nil {
		inc = l.extendInclude(s, path, posOf(pb.File, m.vals["include"]))
	} else {
		inc = l.load(path, posOf(pb.File, m.vals["include"]))
	}
	if inc == nil {
		return false
	}
	s.Include.Playbook = inc
	pb.Includes[inc.Abs] = inc
	return true
}

func (e *Expr) posIn(file string) Pos { return posOf(file, e.node) }

// parseResume reads a step's `resume:`: rerun, ask, or {check: STEP, done: EXPR}.
func (l *loader) parseResume(pb *Playbook, n *yaml.Node) *ResumeSpec {
	f := pb.File
	d := deref(n)
	rs := &ResumeSpec{Pos: posOf(f, d)}
	if d != nil && d.Kind == yaml.ScalarNode {
		switch d.Value {
		case "rerun", "ask", "restart":
			rs.Mode = d.Value
			return rs
		}
		l.errorf(rs.Pos, "resume: %q is not one of rerun, ask, restart (a group), or a mapping {check: <read-only step>, done: <expression>}", d.Value)
		return nil
	}
	m := l.mapping(f, d, "resume", []string{"check", "done"})
	if m == nil {
		return nil
	}
	rs.Mode = "probe"
	if cn, ok := m.vals["check"]; ok {
		rs.Probe = l.parseStep(pb, cn, "resume.check")
	}
	if dn, ok := m.vals["done"]; ok {
		rs.Done = l.expr(f, dn, "resume.done")
	}
	if rs.Probe == nil || rs.Done == nil {
		l.errorf(rs.Pos, "resume: needs both `check:` (a read-only step) and `done:` (an expression on its output `result`)")
		return nil
	}
	if rs.Probe.Spec == nil || rs.Probe.Type == "group" || rs.Probe.Type == "include" {
		l.errorf(rs.Probe.Pos, "resume.check: must be one typed read-only step (sql query, ssh with changes: false, …)")
		return nil
	}
	if rs.Probe.Spec.Mutates() {
		l.errorf(rs.Probe.Pos, "resume.check: must be read-only: it runs before flow knows whether to change anything")
		return nil
	}
	return rs
}

func (l *loader) parseGuards(f string, n *yaml.Node, what string) []*Guard {
	d := deref(n)
	items := []*yaml.Node{d}
	if d != nil && d.Kind == yaml.SequenceNode {
		items = d.Content
	}
	var out []*Guard
	for _, it := range items {
		it = deref(it)
		if it != nil && it.Kind == yaml.MappingNode {
			m := l.mapping(f, it, what, []string{"that", "message"})
			if m == nil {
				continue
			}
			g := &Guard{}
			if v, ok := m.vals["that"]; ok {
				g.That = l.expr(f, v, what+".that")
			} else {
				l.errorf(posOf(f, it), "%s: a guard needs `that:` (the expression that must hold)", what)
				continue
			}
			if v, ok := m.vals["message"]; ok {
				g.Message = l.text(f, v, what+".message")
			}
			out = append(out, g)
			continue
		}
		if e := l.expr(f, it, what); e != nil {
			out = append(out, &Guard{That: e})
		}
	}
	return out
}
