package engine_test

import (
	"testing"

	"github.com/flowdba/flow/engine"
)

// TestAtGivesTheNodeAsOneValue: `at:` takes a node as a value (a mapping
// with host and port, as a dataserver row is, or "host:port"): the plan
// names that endpoint; on an ssh step only the host counts. Combining it
// with host:/port: is refused at load.
func TestAtGivesTheNodeAsOneValue(t *testing.T) {
	const pb = `name: at
vars:
  node: {host: 127.0.0.9, port: 16315, servername: normal_0_1}
connections:
  db: {mysql: {user: admin, password: x}}
  sh: {ssh: {user: root, port: 2222}}
steps:
  - sql: {on: db, at: "{{ node }}", exec: "SET GLOBAL read_only = ON"}
  - sql: {on: db, at: "127.0.0.8:3310", exec: "SET GLOBAL read_only = ON"}
  - ssh: {on: sh, at: "{{ node }}", command: "true"}
`
	res := run(t, pb, engine.ModePlan, nil)
	wantExit(t, res, engine.ExitOK)
	wantIn(t, "plan", res.Out, "on mysql db (127.0.0.9:16315)", "on mysql db (127.0.0.8:3310)", "on ssh sh (127.0.0.9:2222)")

	loadFail(t, "name: at\nconnections:\n  db: {mysql: {user: a}}\nsteps:\n  - sql: {on: db, at: \"127.0.0.8:3310\", port: 3306, exec: \"SET GLOBAL read_only = ON\"}\n", nil,
		"`at:` gives host and port as one value")
}
