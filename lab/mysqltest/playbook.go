package mysqltest

import (
	"strconv"
	"strings"
)

// headParams are the parameters PlaybookHead declares, which PlaybookVars
// fills: the account a test playbook reaches a Server with.
const headParams = `  host: {type: string, required: true}
  port: {type: int, required: true}
  user: {type: string, required: true}
  password: {type: string, required: true, secret: true}
`

// PlaybookHead is the start of a test playbook that reaches a Server:
// `name:`, the parameters host, port, user and password (secret), then
// the further parameter lines given (each "NAME: {…}"), then
// `connections:` with the mysql connection conn made of them. The caller
// adds more connections, then `steps:`. Tests share it so the account's
// parameters are spelt once, beside PlaybookVars that fills them.
func PlaybookHead(name, conn string, params ...string) string {
	var b strings.Builder
	b.WriteString("name: " + name + "\nparams:\n" + headParams)
	for _, p := range params {
		b.WriteString("  " + p + "\n")
	}
	b.WriteString("connections:\n  " + conn + `: {mysql: {host: "{{ host }}", port: "{{ port }}", user: "{{ user }}", password: "{{ password }}"}}` + "\n")
	return b.String()
}

// PlaybookVars are the values of PlaybookHead's parameters for s.
func (s *Server) PlaybookVars() map[string]string {
	return map[string]string{"host": s.Host, "port": strconv.Itoa(s.Port), "user": s.User, "password": s.Password}
}
