package engine_test

import (
	"testing"

	"github.com/flowdba/flow/engine"
)

func TestZZShow(t *testing.T) {
	for _, pb := range []string{
		"name: x\nvars: {a: ~, b: null, c: }\nsteps:\n  - log: {msg: \"[{{ a }}] [{{ b }}] [{{ c }}]\"}\n  - assert: {that: a == nil && b == nil && c == nil}\n",
		"name: x\nsteps:\n  - id: g\n    steps:\n      - log: {msg: a}\n  - when: steps.g.ok\n    log: {msg: b}\n",
		"name: x\nsteps:\n  - for_each: '[1]'\n    steps:\n      - id: inner\n        log: {msg: a}\n      - when: steps.inner.ok\n        log: {msg: ok-inside}\n  - when: steps.inner.ok\n    log: {msg: b}\n",
		"name: x\nsteps:\n  - id: s\n    log: {msg: a}\n    rescue:\n      - id: r\n        log: {msg: \"{{ steps.s.error }}\"}\n    always:\n      - log: {msg: \"{{ steps.s.ok }}\"}\n  - when: steps.r.ok\n    log: {msg: b}\n",
	} {
		path := writePlaybook(t, pb)
		p, d := engine.Load(path)
		if p == nil {
			t.Logf("LOAD: %v", d)
			continue
		}
		res := run(t, pb, engine.ModeRun, nil)
		t.Logf("exit %d err %v\n%s", engine.ExitCode(res.Err), res.Err, res.Log)
	}
}
