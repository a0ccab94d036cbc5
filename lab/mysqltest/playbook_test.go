package mysqltest

import "testing"

// TestPlaybookHead checks the header's exact text: tests place their steps
// by line, so it must not move.
func TestPlaybookHead(t *testing.T) {
	want := `name: t
params:
  host: {type: string, required: true}
  port: {type: int, required: true}
  user: {type: string, required: true}
  password: {type: string, required: true, secret: true}
  gate: {type: int, default: 1}
connections:
  node: {mysql: {host: "{{ host }}", port: "{{ port }}", user: "{{ user }}", password: "{{ password }}"}}
`
	if got := PlaybookHead("t", "node", "gate: {type: int, default: 1}"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	v := (&Server{Host: "127.1.2.3", Port: 3310, User: "u", Password: "p"}).PlaybookVars()
	if len(v) != 4 || v["host"] != "127.1.2.3" || v["port"] != "3310" || v["user"] != "u" || v["password"] != "p" {
		t.Fatalf("PlaybookVars = %v", v)
	}
}
