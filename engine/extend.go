package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

// A site wraps a shipped playbook with `include:` and changes it with
// `extend:` instead of forking it, so every upgrade of the shipped file still
// reaches the site:
//
//	- include: ../playbooks/flashback-start.yaml
//	  extend:
//	    - after: Step 12 the standby is open for the drill
//	      steps: [...]
//	    - skip: Step 08 preflight free disk
//	      reason: thin-provisioned volumes
//
// The included file is parsed afresh for the include that extends it (the
// shipped playbook's own parse stays untouched for every other include of
// it), the anchors are found by step name or id, and the site's steps are
// spliced in at load time, so validation, the dry run and `flow plan` all see
// the combined playbook. Spliced steps run inside the included playbook: they
// see its parameters, variables, registered outputs and connections. Their
// positions, log lines and journal keys name the site's file.

// Extension is one change a site makes to an included playbook.
type Extension struct {
	// Op is before, after, replace or skip.
	Op string
	// Anchor names the step: its name (as written, {{ }} included) or id;
	// "Parent > Step" picks one of several steps of the same name by an
	// enclosing group's name.
	Anchor string
	// Steps are the site's steps (before, after, replace).
	Steps []*Step
	// Reason says why a step is skipped (skip).
	Reason string
	Pos    Pos
}

// Skip marks a step a site skips: it stays in the plan and the journal as
// skipped, with where and why.
type Skip struct {
	Pos    Pos
	Reason string
}

var extendOps = []string{"before", "after", "replace", "skip"}

// parseExtendKey reads an include's `extend:` (the site's changes).
func (l *loader) parseExtendKey(f string, s *Step, m *mapping) {
	en, ok := m.vals["extend"]
	if !ok {
		return
	}
	if s.Include == nil {
		l.errorf(posOf(f, m.knodes["extend"]), "`extend:` only goes with `include:`")
		return
	}
	s.Include.Extend = l.parseExtend(s, en)
}

// parseExtend reads the `extend:` list of an include step.
func (l *loader) parseExtend(s *Step, n *yaml.Node) []*Extension {
	f := s.Playbook.File
	d := deref(n)
	if d == nil || d.Kind != yaml.SequenceNode {
		l.errorf(posOf(f, n), "extend: must be a list of changes (- after: STEP, steps: [...]), not %s", kindName(d))
		return nil
	}
	var out []*Extension
	for i, item := range d.Content {
		what := fmt.Sprintf("extend[%d]", i)
		m := l.mapping(f, item, what, append(append([]string(nil), extendOps...), "steps", "reason"))
		if m == nil {
			continue
		}
		e := &Extension{Pos: posOf(f, item)}
		for _, op := range extendOps {
			if v, ok := m.vals[op]; ok {
				if e.Op != "" {
					l.errorf(posOf(f, m.knodes[op]), "%s: one change per entry: `%s:` and `%s:` cannot be combined", what, e.Op, op)
					continue
				}
				e.Op = op
				e.Anchor, _ = l.str(f, v, what+"."+op)
				e.Pos = posOf(f, v)
			}
		}
		if e.Op == "" {
			l.errorf(e.Pos, "%s: say which step: add one of `before:`, `after:`, `replace:` or `skip:` with the step's name", what)
			continue
		}
		if v, ok := m.vals["steps"]; ok {
			if e.Op == "skip" {
				l.errorf(posOf(f, m.knodes["steps"]), "%s: `skip:` takes no `steps:` (use `replace:` to run other steps instead)", what)
			}
			e.Steps = l.parseSteps(s.Playbook, v, what+".steps")
		} else if e.Op != "skip" {
			l.errorf(e.Pos, "%s: `%s:` needs `steps:`, the site's steps", what, e.Op)
		}
		if v, ok := m.vals["reason"]; ok {
			if e.Op != "skip" {
				l.errorf(posOf(f, m.knodes["reason"]), "%s: `reason:` goes with `skip:`", what)
			}
			e.Reason, _ = l.str(f, v, what+".reason")
		}
		out = append(out, e)
	}
	return out
}

// extendInclude loads the included file afresh and applies the site's
// changes to that copy.
func (l *loader) extendInclude(s *Step, path string, from Pos) *Playbook {
	exts := s.Include.Extend
	inc := l.loadFresh(path, from)
	if inc == nil || len(exts) == 0 {
		return inc
	}
	for _, e := range exts {
		l.applyExtension(inc, e)
	}
	return inc
}

// loadFresh parses a playbook again, bypassing the cache, so the copy can be
// changed without touching other includes of the same file.
func (l *loader) loadFresh(path string, from Pos) *Playbook {
	abs, _ := absPath(path)
	saved, had := l.loaded[abs]
	delete(l.loaded, abs)
	pb := l.load(path, from)
	if had {
		l.loaded[abs] = saved
	} else {
		delete(l.loaded, abs)
	}
	return pb
}

// stepSlot is where a step sits: the list holding it and its index, with
// the names of its enclosing steps (outermost first).
type stepSlot struct {
	list    *[]*Step
	i       int
	parents []string
	owner   *Playbook
}

func (p stepSlot) step() *Step { return (*p.list)[p.i] }

// findAnchor lists the steps of pb (and of what it includes) an anchor
// names. Nested includes the anchor reaches into are parsed afresh too.
func (l *loader) findAnchor(pb *Playbook, anchor string) []stepSlot {
	path := strings.Split(anchor, " > ")
	for i := range path {
		path[i] = strings.TrimSpace(path[i])
	}
	want := path[len(path)-1]
	var out []stepSlot
	var walk func(owner *Playbook, list *[]*Step, parents []string)
	walk = func(owner *Playbook, list *[]*Step, parents []string) {
		for i, s := range *list {
			if (s.Name == want || s.ID == want) && ancestorsMatch(parents, path[:len(path)-1]) {
				out = append(out, stepSlot{list: list, i: i, parents: parents, owner: owner})
			}
			inner := append(append([]string(nil), parents...), s.Name)
			walk(owner, &s.Steps, inner)
			walk(owner, &s.Rescue, inner)
			walk(owner, &s.Always, inner)
			walk(owner, &s.Undo, inner)
			if s.Include != nil && s.Include.Playbook != nil && containsAnchor(s.Include.Playbook, want) {
				if s.Include.Extend == nil && !s.Include.fresh {
					// the anchor is inside a shared include: give this include
					// its own parse before changing it
					if fresh := l.loadFresh(s.Include.Playbook.File, s.Pos); fresh != nil {
						s.Include.Playbook = fresh
						s.Include.fresh = true
					}
				}
				walk(s.Include.Playbook, &s.Include.Playbook.Steps, inner)
			}
		}
	}
	walk(pb, &pb.Steps, nil)
	return out
}

// ancestorsMatch reports whether want (outermost first) is a subsequence
// of the enclosing steps' names.
func ancestorsMatch(parents, want []string) bool {
	j := 0
	for _, p := range parents {
		if j < len(want) && p == want[j] {
			j++
		}
	}
	return j == len(want)
}

// containsAnchor reports whether any step of pb (includes included) is
// named or identified as name.
func containsAnchor(pb *Playbook, name string) bool {
	found := false
	walkSteps(pb.Steps, func(s *Step) {
		if s.Name == name || s.ID == name {
			found = true
		}
		if !found && s.Include != nil && s.Include.Playbook != nil && s.Include.Playbook != pb {
			found = containsAnchor(s.Include.Playbook, name)
		}
	})
	return found
}

// applyExtension splices one change into pb.
func (l *loader) applyExtension(pb *Playbook, e *Extension) {
	slots := l.findAnchor(pb, e.Anchor)
	switch {
	case len(slots) == 0:
		var names []string
		walkSteps(pb.Steps, func(s *Step) { names = append(names, s.Name) })
		l.errorf(e.Pos, "extend.%s: %s has no step named %q%s", e.Op, baseName(pb.File), e.Anchor, suggest(e.Anchor, names))
		return
	case len(slots) > 1:
		var where []string
		for _, sl := range slots {
			st := sl.step()
			label := st.Name
			if len(sl.parents) > 0 {
				label = sl.parents[len(sl.parents)-1] + " > " + st.Name
			}
			where = append(where, fmt.Sprintf("%s (%s:%d)", label, baseName(st.Pos.File), st.Pos.Line))
		}
		l.errorf(e.Pos, "extend.%s: %q names %d steps: %s; name the one you mean with its group, as \"GROUP > STEP\"", e.Op, e.Anchor, len(slots), strings.Join(where, "; "))
		return
	}
	sl := slots[0]
	anchor := sl.step()
	if anchor.SkippedBy != nil {
		l.errorf(e.Pos, "extend.%s: %q is skipped by the change at line %d", e.Op, e.Anchor, anchor.SkippedBy.Pos.Line)
		return
	}
	if e.Op == "skip" || e.Op == "replace" {
		l.noteRemoved(anchor, e)
	}
	list := *sl.list
	switch e.Op {
	case "skip":
		anchor.SkippedBy = &Skip{Pos: e.Pos, Reason: e.Reason}
	case "before":
		*sl.list = splice(list, sl.i, 0, e.Steps)
	case "after":
		*sl.list = splice(list, sl.i+1, 0, e.Steps)
	case "replace":
		*sl.list = splice(list, sl.i, 1, e.Steps)
	}
}

// splice returns list with del steps removed at i and ins inserted there.
func splice(list []*Step, i, del int, ins []*Step) []*Step {
	out := make([]*Step, 0, len(list)-del+len(ins))
	out = append(out, list[:i]...)
	out = append(out, ins...)
	return append(out, list[i+del:]...)
}

// skippedBySite records a step a site's extend: skips, under its name as
// written (its name template may read values that no longer exist).
func (r *Runner) skippedBySite(ctx context.Context, w *worker, sc *scope, s *Step, key string) error {
	log := r.entry(w, s.Playbook, s.Pos)
	why := "skipped by the site's extend: at " + s.SkippedBy.Pos.Short()
	if s.SkippedBy.Reason != "" {
		why += " (" + s.SkippedBy.Reason + ")"
	}
	base := merge(stepFields(s, s.Name, key), logrus.Fields{"type": s.Type, "mutates": false})
	r.skipped(ctx, sc, s, s.Name, log, base, why)
	return nil
}

// skipped logs and journals a step that does not run, and says so in a
// preview.
func (r *Runner) skipped(ctx context.Context, sc *scope, s *Step, name string, log *logrus.Entry, base logrus.Fields, why string) {
	log.Infof("%s skipped: %s", name, why)
	r.event(log, event.StepSkipped, merge(base, logrus.Fields{"reason": why}))
	if r.opts.Mode != ModeRun {
		r.verdict(ctx, s, name, "WILL SKIP", why, nil)
	}
	if s.ID != "" {
		sc.setStep(s.ID, map[string]any{"ok": false, "skipped": true, "error": "", "output": map[string]any{}}, false)
	}
}

// noteRemoved remembers the names a skipped or replaced step (and its
// children) would have defined, so a later read of one is explained.
func (l *loader) noteRemoved(s *Step, e *Extension) {
	if l.removed == nil {
		l.removed = map[string]string{}
	}
	how := "skips"
	if e.Op == "replace" {
		how = "replaces"
	}
	walkSteps([]*Step{s}, func(c *Step) {
		names := []string{c.Register}
		if st, ok := c.Spec.(Setter); ok {
			names = append(names, st.SetsVars()...)
		}
		for _, n := range names {
			if n != "" {
				l.removed[n] = fmt.Sprintf("%s is defined by %q (%s:%d), which the site %s at %s", n, c.Name, baseName(c.Pos.File), c.Pos.Line, how, e.Pos.Short())
			}
		}
	})
}
