package engine_test

import (
	"testing"

	"github.com/flowdba/flow/engine"
)

func TestZZShow(t *testing.T) {
	for _, pb := range []string{
		"name: x\nvars: {a: ~, b: null, c: }\nsteps:\n  - log: {msg: \"[{{ a }}] [{{ b }}] [{{ c }}]\"}\n  - assert: {that: a == nil && b == nil && c == nil}\n",
		"name: x\nvars: {a: \"x }} y {{ 1 }}\"}\nsteps:\n  - log: {msg: \"{{ a }}\"}\n",
		"name: x\nsteps:\n  - when: steps.later.ok\n    log: {msg: a}\n  - id: later\n    log: {msg: b}\n",
		"name: x\nsteps:\n  - log: {msg: \"é {{ nosuch }}\"}\n",
		"name: x\nsteps:\n  - when: |\n      1 == 1 &&\n        nosuch\n    log: {msg: a}\n",
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
