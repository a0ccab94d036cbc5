package engine

// Groups and includes: a block, for_each with bounded parallelism, another playbook's steps.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flowdba/flow/engine/quote"
)

// group runs a block, or a block for each item of a list with a bounded
// degree of parallelism. After a failure no new item starts; running items
// finish (a half-done clone is worse than a finished one).
func (r *Runner) group(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	restart := s.Resume != nil && s.Resume.Mode == "restart" && r.opts.Resume != nil && r.opts.Mode == ModeRun
	if s.ForEach == nil && restart && r.opts.Resume.restart(parentKey(ctx)) {
		r.entry(w, s.Playbook, s.Pos).Warnf("%s was interrupted inside in an earlier attempt: it starts over from its first step (resume: restart)", name)
	}
	if s.ForEach == nil {
		inner := sc
		err := r.steps(ctx, w, inner, s.Steps)
		if err == nil && s.Register != "" {
			sc.set(s.Register, []any{}, false)
		}
		return err
	}
	items, known, err := r.forEachItems(s, sc)
	if err != nil {
		return err
	}
	if !known {
		return r.unknownItems(ctx, w, sc, s, name)
	}
	if restart {
		for i := range items {
			if r.opts.Resume.restart(fmt.Sprintf("%s#%d", parentKey(ctx), i)) {
				r.entry(w, s.Playbook, s.Pos).Warnf("%s: item %d (%s) was interrupted in an earlier attempt: it starts over from its first step (resume: restart)", name, i, itemLabel(items[i]))
			}
		}
	}
	par, err := groupParallel(s, sc.env())
	if err != nil {
		return err
	}
	scopes, errs := r.runItems(ctx, w, sc, s, items, par)
	if s.Register != "" {
		res := make([]any, 0, len(items))
		for i, is := range scopes {
			if is == nil {
				continue
			}
			m := is.local()
			m["ok"] = errs[i] == nil
			res = append(res, m)
		}
		sc.set(s.Register, res, false)
	}
	if err := itemsError(items, errs); err != nil {
		return err
	}
	return ctx.Err()
}

// forEachItems evaluates a group's for_each; known is false when only a
// real run knows the list (a dry run or plan lists the items symbolically;
// a real run fails).
func (r *Runner) forEachItems(s *Step, sc *scope) (items []any, known bool, err error) {
	env := sc.env()
	if env.unknown(s.ForEach) {
		if r.opts.Mode == ModeRun {
			return nil, false, fmt.Errorf("%s: for_each reads unknown values", s.ForEach.Pos)
		}
		return nil, false, nil
	}
	v, err := runExpr(s.ForEach, env.vars)
	if err != nil {
		return nil, false, err
	}
	if _, unk := v.(Unknown); unk && r.opts.Mode != ModeRun {
		return nil, false, nil
	}
	items, ok := toList(v)
	if !ok {
		return nil, false, fmt.Errorf("%s: for_each `%s` gave %T, not a list", s.ForEach.Pos, oneLine(s.ForEach.Src), v)
	}
	return items, true, nil
}

// runItems runs a group's steps for each item, at most `parallel` at a
// time, each in a scope of its own (`as`, `index`); after a failure or an
// interruption no new item starts. scopes[i] is nil for an item that did
// not start.
func (r *Runner) runItems(ctx context.Context, w *worker, sc *scope, s *Step, items []any, par int) (scopes []*scope, errs []error) {
	as := s.As
	if as == "" {
		as = "item"
	}
	scopes = make([]*scope, len(items))
	errs = make([]error, len(items))
	var failed atomic.Bool
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, item := range items {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		if failed.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		is := newScope(sc)
		is.set(as, item, false)
		is.set("index", i, false)
		scopes[i] = is
		iw := w
		if par > 1 {
			iw = &worker{id: r.ids.Add(1) + 54}
		}
		wg.Add(1)
		go func(i int, is *scope, iw *worker) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.steps(withKey(ctx, fmt.Sprintf("%s#%d", parentKey(ctx), i)), iw, is, s.Steps); err != nil {
				errs[i] = err
				failed.Store(true)
			}
		}(i, is, iw)
	}
	wg.Wait()
	return scopes, errs
}

// itemsError is the error the failed items of a for_each give: the one
// error itself, the first refusal, or all of them item by item.
func itemsError(items []any, errs []error) error {
	var msgs []string
	var first error
	for i, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			msgs = append(msgs, fmt.Sprintf("item %d (%s): %v", i, itemLabel(items[i]), e))
		}
	}
	if len(msgs) == 1 {
		return first
	}
	if len(msgs) > 1 {
		var re *RefusedError
		if errors.As(first, &re) {
			return first
		}
		return fmt.Errorf("%d items failed:\n  %s", len(msgs), strings.Join(msgs, "\n  "))
	}
	return nil
}

// unknownItems lists, in a dry run or plan, what each item of a for_each
// whose list only a real run knows would run.
func (r *Runner) unknownItems(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	r.verdict(ctx, s, name, "UNKNOWN", fmt.Sprintf("for each item of `%s` (known only in a real run); each item would run:", oneLine(s.ForEach.Src)), nil)
	as := s.As
	if as == "" {
		as = "item"
	}
	is := newScope(sc)
	is.set(as, Unknown{Why: s.ForEach.Src}, true)
	is.set("index", Unknown{Why: "index"}, true)
	r.countUnknown(ctx)
	err := r.steps(ctx, w, is, s.Steps)
	if s.Register != "" {
		sc.set(s.Register, Unknown{Why: name}, true)
	}
	return err
}

// itemLabel names a for_each item briefly in messages.
func itemLabel(item any) string {
	if m, ok := item.(map[string]any); ok {
		for _, k := range []string{"servername", "name", "host", "ds", "id"} {
			if v, ok := m[k]; ok {
				return quote.Text(v)
			}
		}
		if n, ok := m["node"].(map[string]any); ok {
			return itemLabel(n)
		}
	}
	s := quote.Text(item)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func toList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	case nil:
		return nil, true
	}
	return nil, false
}

// include runs another playbook's steps in a scope of its own.
func (r *Runner) include(ctx context.Context, w *worker, sc *scope, s *Step, name string) error {
	inc := s.Include
	env := sc.env()
	with := map[string]any{}
	for _, k := range inc.withKeys {
		v, _, err := inc.With[k].value(env)
		if err != nil {
			return err
		}
		with[k] = v
	}
	passHeaderParams(s.Playbook, inc.Playbook, sc, with)
	root := newScope(nil)
	if err := r.bindParams(inc.Playbook, root, with); err != nil {
		return Invalid(err)
	}
	for k, v := range with {
		if _, unk := v.(Unknown); unk {
			root.set(k, v, true)
		}
	}
	log := r.entry(w, inc.Playbook, Pos{File: inc.Playbook.File, Line: 1})
	log.Infof("%s ready", inc.Playbook.Name)
	log.Infof("%s whole process consists of %d steps", inc.Playbook.Name, len(inc.Playbook.Steps))
	if err := r.steps(ctx, w, root, inc.Playbook.Steps); err != nil {
		return err
	}
	log.Infof("%s over", inc.Playbook.Name)
	if s.Register != "" {
		sc.set(s.Register, root.local(), false)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
