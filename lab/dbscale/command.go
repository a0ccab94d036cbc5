package dbscale

import (
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Option scopes of dbscale set/show options.
const (
	scopeSession  = "session"
	scopeInstance = "instance"
	scopeGlobal   = "global"
)

// command is a parsed `dbscale …` statement.
type command interface {
	// privilege returns the error text for a non-admin user, or "" when any
	// user may run the command.
	privilege() string
}

type cmdShowDataservers struct{ where expr }

type cmdShowDatasourceType struct {
	typ   string
	where expr
}

type cmdShowDatasourceName struct {
	name  string
	where expr
}

type cmdShowOptions struct {
	scope   string // "" means the session's effective values
	like    string
	hasLike bool
}

type cmdSetOption struct {
	scope string
	name  string
	value string
}

type cmdRequestClusterInfo struct{}

type cmdRequestNextGroupID struct{}

type cmdAddDataserver struct {
	fields map[string]string // normalised key → value
	flags  map[string]bool
}

type cmdAddServerDatasource struct {
	name     string
	server   string
	pool     [4]int
	groupID  int
	hasGroup bool
}

type cmdAddSlave struct{ source, target string }

type cmdRemoveSlave struct{ source, from string }

type cmdRemove struct {
	dataserver bool // false: datasource
	name       string
}

type cmdEnable struct {
	enable bool
	name   string
}

type cmdFlashback struct{ name string }

type cmdFlushConfig struct{}

func (cmdShowDataservers) privilege() string     { return "" }
func (cmdShowDatasourceType) privilege() string  { return "" }
func (cmdShowDatasourceName) privilege() string  { return "" }
func (cmdShowOptions) privilege() string         { return "" }
func (cmdRequestClusterInfo) privilege() string  { return "" }
func (cmdRequestNextGroupID) privilege() string  { return "" }
func (cmdAddDataserver) privilege() string       { return msgAdminOnly }
func (cmdAddServerDatasource) privilege() string { return msgAdminOnly }
func (cmdAddSlave) privilege() string            { return msgAdminOnly }
func (cmdRemoveSlave) privilege() string         { return msgAdminOnly }
func (cmdRemove) privilege() string              { return msgAdminOnly }
func (cmdEnable) privilege() string              { return msgAdminOnly }
func (cmdFlashback) privilege() string           { return msgAdminOnly }
func (cmdFlushConfig) privilege() string         { return msgAdminOnly }

func (c cmdSetOption) privilege() string {
	if c.scope == scopeSession {
		return ""
	}
	return msgSetAdminOnly
}

// dataserverFields are the keys `dbscale dynamic add dataserver` accepts
// (normalised: lower case, '_'); dataserverFlags are its bare flags.
var (
	dataserverFields = map[string]bool{
		"server_name": true, "server_host": true, "server_port": true, "server_user": true,
		"server_password": true, "server_alias_host": true, "remote_user": true,
		"remote_password": true, "remote_port": true, "location_id": true,
		"is_master_backup": true, "master_priority": true,
	}
	dataserverFlags = map[string]bool{"dbscale_server": true, "mgr_server": true}
)

// parser reads the tokens of one dbscale command.
type parser struct {
	toks []token
	i    int
	src  string
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// accept consumes the bare word w if it is next.
func (p *parser) accept(w string) bool {
	if p.peek().is(w) {
		p.i++
		return true
	}
	return false
}

// acceptOp consumes the operator op if it is next.
func (p *parser) acceptOp(op string) bool {
	if p.peek().isOp(op) {
		p.i++
		return true
	}
	return false
}

// expect consumes the bare word w or fails.
func (p *parser) expect(w string) error {
	if !p.accept(w) {
		return p.errAt(p.peek(), "expected "+strings.ToUpper(w))
	}
	return nil
}

// value consumes a name or value in any quoting style.
func (p *parser) value(what string) (string, error) {
	t := p.peek()
	v, ok := t.value()
	if !ok {
		return "", p.errAt(t, "expected "+what)
	}
	p.i++
	return v, nil
}

// end fails unless every token was read.
func (p *parser) end() error {
	if t := p.peek(); t.kind != tEOF {
		return p.errAt(t, "unexpected "+t.describe())
	}
	return nil
}

// errAt is a syntax error pointing at a token.
func (p *parser) errAt(t token, msg string) *mysql.MyError {
	return newErr(CodeParse, "DBScale command syntax error: %s near %s in '%s'", msg, t.describe(), commandName(p.src))
}

// commandName returns the leading words of a dbscale statement (at most
// four, stopping at the first non-word token) to name it in errors without
// echoing values such as passwords.
func commandName(src string) string {
	toks, err := lex(src)
	if err != nil {
		f := strings.Fields(src)
		if len(f) > 3 {
			f = f[:3]
		}
		return strings.Join(f, " ")
	}
	var words []string
	for _, t := range toks {
		if t.kind != tWord || len(words) == 4 {
			break
		}
		words = append(words, t.text)
	}
	return strings.Join(words, " ")
}

// unknownCommand is the error for a dbscale statement the emulator does not
// know, naming it.
func unknownCommand(src string) *mysql.MyError {
	return newErr(CodeParse, "Unknown DBScale command '%s'", commandName(src))
}

// parseCommand parses a statement that starts with the word dbscale
// (trailing ';' and '\G' already removed).
func parseCommand(src string) (command, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, newErr(CodeParse, "DBScale command syntax error: %v in '%s'", err, commandName(src))
	}
	p := &parser{toks: toks, src: src}
	if !p.accept("dbscale") {
		return nil, unknownCommand(src)
	}
	var c command
	switch w := p.next(); {
	case w.is("show"):
		c, err = p.parseShow()
	case w.is("set"):
		c, err = p.parseSet()
	case w.is("request"):
		c, err = p.parseRequest()
	case w.is("dynamic"):
		c, err = p.parseDynamic()
	case w.is("enable"), w.is("disable"):
		if !p.accept("dataserver") {
			return nil, unknownCommand(src)
		}
		var name string
		if name, err = p.value("a dataserver name"); err == nil {
			c = cmdEnable{enable: w.is("enable"), name: name}
		}
	case w.is("flashback"):
		c, err = p.parseFlashback()
	case w.is("flush"):
		c, err = p.parseFlush()
	default:
		return nil, unknownCommand(src)
	}
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parser) parseShow() (command, error) {
	switch {
	case p.accept("dataservers"):
		w, err := p.parseOptionalWhere()
		return cmdShowDataservers{where: w}, err
	case p.accept("datasource"):
		if p.peek().is("type") && (p.toks[p.i+1].isOp("=") || p.toks[p.i+1].kind == tWord || p.toks[p.i+1].kind == tString) {
			p.next()
			p.acceptOp("=")
			typ, err := p.value("a datasource type")
			if err != nil {
				return nil, err
			}
			w, err := p.parseOptionalWhere()
			return cmdShowDatasourceType{typ: typ, where: w}, err
		}
		name, err := p.value("a datasource name or TYPE = type")
		if err != nil {
			return nil, err
		}
		w, err := p.parseOptionalWhere()
		return cmdShowDatasourceName{name: name, where: w}, err
	}
	c := cmdShowOptions{}
	for _, s := range []string{scopeSession, scopeInstance, scopeGlobal} {
		if p.accept(s) {
			c.scope = s
			break
		}
	}
	if !p.accept("options") && !p.accept("option") {
		return nil, unknownCommand(p.src)
	}
	if p.accept("like") {
		v, err := p.value("a LIKE pattern")
		if err != nil {
			return nil, err
		}
		c.like, c.hasLike = v, true
	}
	return c, nil
}

func (p *parser) parseSet() (command, error) {
	c := cmdSetOption{scope: scopeSession}
	for _, s := range []string{scopeSession, scopeInstance, scopeGlobal} {
		if p.accept(s) {
			c.scope = s
			break
		}
	}
	name, err := p.value("an option name")
	if err != nil {
		return nil, err
	}
	if !p.acceptOp("=") {
		return nil, p.errAt(p.peek(), "expected =")
	}
	val, err := p.value("an option value")
	if err != nil {
		return nil, err
	}
	c.name, c.value = name, val
	return c, nil
}

func (p *parser) parseRequest() (command, error) {
	switch {
	case p.accept("cluster"):
		if err := p.expect("info"); err != nil {
			return nil, err
		}
		return cmdRequestClusterInfo{}, nil
	case p.accept("next"):
		if err := p.expect("group"); err != nil {
			return nil, err
		}
		if err := p.expect("id"); err != nil {
			return nil, err
		}
		return cmdRequestNextGroupID{}, nil
	}
	return nil, unknownCommand(p.src)
}

func (p *parser) parseDynamic() (command, error) {
	switch {
	case p.accept("add"):
		switch {
		case p.accept("dataserver"):
			return p.parseAddDataserver()
		case p.accept("server"):
			if err := p.expect("datasource"); err != nil {
				return nil, err
			}
			return p.parseAddServerDatasource()
		case p.accept("slave"):
			src, err := p.value("a slave datasource name")
			if err != nil {
				return nil, err
			}
			if err := p.expect("to"); err != nil {
				return nil, err
			}
			dst, err := p.value("a replication datasource name")
			if err != nil {
				return nil, err
			}
			return cmdAddSlave{source: src, target: dst}, nil
		}
	case p.accept("remove"):
		switch {
		case p.accept("datasource"), p.peek().is("dataserver"):
			ds := p.accept("dataserver")
			name, err := p.value("a name")
			if err != nil {
				return nil, err
			}
			return cmdRemove{dataserver: ds, name: name}, nil
		case p.accept("slave"):
			src, err := p.value("a slave datasource name")
			if err != nil {
				return nil, err
			}
			if err := p.expect("from"); err != nil {
				return nil, err
			}
			from, err := p.value("a replication datasource name")
			if err != nil {
				return nil, err
			}
			return cmdRemoveSlave{source: src, from: from}, nil
		}
	}
	return nil, unknownCommand(p.src)
}

// parseAddDataserver reads key=value[,key=value…][,flag] in any quoting.
// Errors never echo values (one of them is a password).
func (p *parser) parseAddDataserver() (command, error) {
	c := cmdAddDataserver{fields: map[string]string{}, flags: map[string]bool{}}
	bad := func(msg string) error {
		return newErr(CodeParse, "DBScale command syntax error: %s in 'dbscale dynamic add dataserver'", msg)
	}
	for {
		t := p.next()
		k, ok := t.value()
		if !ok {
			return nil, bad("expected key=value or a flag")
		}
		key := normaliseOption(k)
		if p.acceptOp("=") {
			v, ok := p.next().value()
			if !ok {
				return nil, bad("expected a value for " + key)
			}
			if !dataserverFields[key] {
				return nil, bad("unknown field " + key)
			}
			if _, dup := c.fields[key]; dup {
				return nil, bad("duplicate field " + key)
			}
			c.fields[key] = v
		} else {
			if !dataserverFlags[key] {
				return nil, bad("unknown flag " + key)
			}
			c.flags[key] = true
		}
		if !p.acceptOp(",") {
			break
		}
	}
	if p.peek().kind != tEOF {
		return nil, bad("unexpected text after the field list")
	}
	return c, nil
}

// parseAddServerDatasource reads NAME[,] server-min-max-low-high
// [GROUP_ID = N].
func (p *parser) parseAddServerDatasource() (command, error) {
	name, err := p.value("a datasource name")
	if err != nil {
		return nil, err
	}
	p.acceptOp(",")
	specTok := p.peek()
	spec, err := p.value("server-min-max-low-high")
	if err != nil {
		return nil, err
	}
	server, pool, ok := parsePoolSpec(spec)
	if !ok {
		return nil, p.errAt(specTok, "expected server-min-max-low-high")
	}
	c := cmdAddServerDatasource{name: name, server: server, pool: pool}
	if t := p.peek(); t.kind == tWord && normaliseOption(t.text) == "group_id" {
		p.next()
		if !p.acceptOp("=") {
			return nil, p.errAt(p.peek(), "expected =")
		}
		gt := p.peek()
		g, err := p.value("a group id")
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(g)
		if err != nil {
			return nil, p.errAt(gt, "expected an integer group id")
		}
		c.groupID, c.hasGroup = n, true
	}
	return c, nil
}

// parsePoolSpec splits name-min-max-low-high; the name may contain '-'.
func parsePoolSpec(spec string) (string, [4]int, bool) {
	var pool [4]int
	parts := strings.Split(spec, "-")
	if len(parts) < 5 {
		return "", pool, false
	}
	nums := parts[len(parts)-4:]
	for i, s := range nums {
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", pool, false
		}
		pool[i] = n
	}
	name := strings.Join(parts[:len(parts)-4], "-")
	return name, pool, name != ""
}

func (p *parser) parseFlashback() (command, error) {
	if !p.accept("dataserver") {
		return nil, unknownCommand(p.src)
	}
	name, err := p.value("a dataserver name")
	if err != nil {
		return nil, err
	}
	if err := p.expect("force"); err != nil {
		return nil, err
	}
	if err := p.expect("online"); err != nil {
		return nil, err
	}
	return cmdFlashback{name: name}, nil
}

// parseFlush reads FLUSH [ALL] CONFIG [TO FILE ['path']].
func (p *parser) parseFlush() (command, error) {
	p.accept("all")
	if !p.accept("config") {
		return nil, unknownCommand(p.src)
	}
	if p.accept("to") {
		if err := p.expect("file"); err != nil {
			return nil, err
		}
		if p.peek().kind != tEOF {
			if _, err := p.value("a file name"); err != nil {
				return nil, err
			}
		}
	}
	return cmdFlushConfig{}, nil
}
