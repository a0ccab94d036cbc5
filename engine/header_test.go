package engine_test

import (
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
)

// header is what several playbooks share: a parameter and a connection.
const header = `params:
  node_host: {type: string, default: 127.0.0.9, help: the node}
  limit: {type: int, default: 3}
connections:
  db: {mysql: {host: "{{ node_host }}", port: 3310, user: admin, password: x}}
`

// TestHeaderSharedByPlaybooks: a playbook that `use:`s a header has its
// parameters and connections; an include of a playbook that uses the same
// header gets the includer's values passed on (here a --var), unless with:
// sets them; a name defined twice is refused naming both places.
func TestHeaderSharedByPlaybooks(t *testing.T) {
	child := "name: child\nuse: lib/h.yaml\nsteps:\n  - testprobe: {key: hdr-child, msg: \"child limit={{ limit }}\"}\n  - sql: {on: db, exec: \"SET GLOBAL read_only = ON\"}\n"
	parent := "name: parent\nuse: lib/h.yaml\nsteps:\n  - testprobe: {key: hdr-parent, msg: \"parent limit={{ limit }}\"}\n  - include: child.yaml\n  - include: child.yaml\n    with: {limit: 9}\n"
	files := map[string]string{"lib/h.yaml": header, "child.yaml": child}
	resetProbe("hdr-parent")
	resetProbe("hdr-child")
	res := enginetest.Run(t, parent, enginetest.Options{Mode: engine.ModeDryRun, Files: files, Vars: map[string]string{"limit": "5", "node_host": "127.0.0.8"}})
	wantExit(t, res, engine.ExitOK)
	wantIn(t, "log", res.Log, "parent limit=5", "child limit=5", "child limit=9")
	wantIn(t, "dry run", res.Out, "on mysql db (127.0.0.8:3310)")

	d := loadFail(t, "name: p\nuse: lib/h.yaml\nparams:\n  limit: {type: int, default: 1}\nsteps:\n  - log: {msg: hi}\n", files,
		`parameter "limit" is also defined in h.yaml (line 3), which this playbook uses: drop one`)
	if !strings.HasSuffix(d.Pos.String(), ":4:3") {
		t.Errorf("the duplicate is reported at %s, want the playbook's own line 4", d.Pos)
	}
	d = loadFail(t, "name: p\nuse: lib/h.yaml\nsteps:\n  - log: {msg: hi}\n", map[string]string{"lib/h.yaml": header + "steps: []\n"}, `unknown key "steps"`)
	if !strings.Contains(d.Pos.File, "h.yaml") {
		t.Errorf("a bad header is reported in %s, want the header", d.Pos.File)
	}
	d = loadFail(t, "name: p\nuse: lib/h.yaml\nsteps:\n  - log: {msg: hi}\n", map[string]string{"lib/h.yaml": strings.Replace(header, "{{ node_host }}", "{{ node_hots }}", 1)}, "unknown name node_hots")
	if !strings.Contains(d.Pos.File, "h.yaml") || d.Pos.Line != 5 {
		t.Errorf("an expression error in a header's connection is reported at %s, want the header's line 5", d.Pos)
	}
}
