package engine

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// connPool keeps the MySQL and SSH connections of a run, keyed by the
// resolved endpoint, and closes them at the end.
type connPool struct {
	mu     sync.Mutex
	dbs    map[string]*sql.DB
	sshs   map[string]SSHClient
	dial   SSHDialer
	closed bool
}

func init() {
	// go-sql-driver logs dropped idle connections ("bad idle connection")
	// to stderr; a clone restarting its recipient causes them on purpose.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
}

var dialerSeq struct {
	sync.Mutex
	n int
}

func newConnPool(dial SSHDialer) *connPool {
	return &connPool{dbs: map[string]*sql.DB{}, sshs: map[string]SSHClient{}, dial: dial}
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, db := range p.dbs {
		db.Close()
	}
	for _, c := range p.sshs {
		if cl, ok := c.(interface{ Close() error }); ok {
			cl.Close()
		}
	}
	p.closed = true
}

// endpoint is a resolved connection.
type endpoint struct {
	conn   *Conn
	fields map[string]any
	host   string
	port   int
}

func (e *endpoint) label() string {
	port := strconv.Itoa(e.port)
	if u, ok := e.fields["port"].(Unknown); ok {
		port = "{{ " + u.Why + " }}"
	}
	return fmt.Sprintf("%s %s (%s)", e.conn.Kind, e.conn.Name, net.JoinHostPort(e.host, port))
}

func (e *endpoint) str(k string) string {
	v, ok := e.fields[k]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// resolve evaluates a target's connection fields in env.
func resolve(t *Target, env *evalEnv) (*endpoint, bool, error) {
	if t.conn == nil {
		return nil, false, fmt.Errorf("target %q is not compiled", t.On)
	}
	ep := &endpoint{conn: t.conn, fields: map[string]any{}}
	unknown := false
	for k, v := range t.conn.Fields {
		x, unk, err := v.value(env)
		if err != nil {
			return nil, false, fmt.Errorf("connection %s.%s: %v", t.conn.Name, k, err)
		}
		unknown = unknown || (unk && (k == "host" || k == "port"))
		ep.fields[k] = x
	}
	if t.At != nil {
		if err := resolveAt(t, env, ep, &unknown); err != nil {
			return nil, false, err
		}
	}
	if t.Host != nil {
		x, unk, err := t.Host.value(env)
		if err != nil {
			return nil, false, err
		}
		unknown = unknown || unk
		ep.fields["host"] = x
	}
	if t.Port != nil {
		x, unk, err := t.Port.value(env)
		if err != nil {
			return nil, false, err
		}
		unknown = unknown || unk
		ep.fields["port"] = x
	}
	ep.host = ep.str("host")
	if _, isU := ep.fields["host"].(Unknown); isU {
		ep.host = "{{ " + ep.fields["host"].(Unknown).Why + " }}"
	}
	switch pv := ep.fields["port"].(type) {
	case nil:
		if t.conn.Kind == "mysql" {
			ep.port = 3306
		} else {
			ep.port = 22
		}
	case Unknown:
	default:
		port, err := strconv.Atoi(fmt.Sprint(pv))
		if err != nil || port <= 0 || port > 65535 {
			return nil, false, fmt.Errorf("connection %s: port %v is not a TCP port", t.conn.Name, pv)
		}
		ep.port = port
	}
	if ep.host == "" && !unknown {
		return nil, false, fmt.Errorf("connection %s has no host: set `host:` on the connection or the step", t.conn.Name)
	}
	return ep, unknown, nil
}

func durationField(ep *endpoint, k string, def time.Duration) time.Duration {
	s := ep.str(k)
	if s == "" {
		return def
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	return def
}

// mysqlDB returns a pooled database handle for ep.
func (r *Runner) mysqlDB(ctx context.Context, ep *endpoint, env *evalEnv) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = ep.str("user")
	cfg.Passwd = ep.str("password")
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(ep.host, strconv.Itoa(ep.port))
	cfg.DBName = ep.str("database")
	cfg.InterpolateParams = true
	cfg.Timeout = durationField(ep, "connect_timeout", 10*time.Second)
	cfg.AllowNativePasswords = true
	cfg.ParseTime = false
	cfg.ConnectionAttributes = r.connAttrs()
	if cfg.Passwd != "" {
		r.masker.Add(cfg.Passwd)
	}
	key := cfg.User + "@" + cfg.Addr + "/" + cfg.DBName
	via := ep.str("via")
	to := ep.str("tunnel_to")
	switch to {
	case "":
		to = "127.0.0.1"
	case "self":
		to = ep.host // the instance listens on the node's own address
	}
	if via != "" {
		key += " via " + via + " to " + to
	}
	p := r.pool
	p.mu.Lock()
	if db, ok := p.dbs[key]; ok {
		p.mu.Unlock()
		return db, nil
	}
	p.mu.Unlock()
	if via != "" {
		sshConn, ok := ep.conn.pb().Conns[via]
		if !ok {
			return nil, fmt.Errorf("connection %s: via %q is not a connection", ep.conn.Name, via)
		}
		// the SSH connection goes to the node the MySQL endpoint names
		sep, _, err := resolve(&Target{On: via, conn: sshConn, Host: &Value{lit: ep.host, isLit: true}}, env)
		if err != nil {
			return nil, err
		}
		cl, err := r.sshClient(ctx, sep)
		if err != nil {
			return nil, err
		}
		dialerSeq.Lock()
		dialerSeq.n++
		name := fmt.Sprintf("flow-ssh-%d", dialerSeq.n)
		dialerSeq.Unlock()
		// from the node, the tunnel reaches tunnel_to (default 127.0.0.1):
		// an instance that listens on the node's loopback only
		target := net.JoinHostPort(to, strconv.Itoa(ep.port))
		mysql.RegisterDialContext(name, func(ctx context.Context, _ string) (net.Conn, error) {
			return cl.DialTCP(ctx, target)
		})
		cfg.Net = name
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: %v", cfg.Addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	p.mu.Lock()
	defer p.mu.Unlock()
	if have, ok := p.dbs[key]; ok {
		db.Close()
		return have, nil
	}
	p.dbs[key] = db
	return db, nil
}

// connAttrs names the run in every MySQL connection it opens (the
// server shows them in performance_schema.session_connect_attrs), so that
// a server-side lock's holder can be told: program_name=flow, flow_run_id,
// flow_host (the control host), flow_pid, flow_since (the run's start,
// RFC 3339) and flow_operator.
func (r *Runner) connAttrs() string {
	host := r.opts.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	attrs := [][2]string{
		{"program_name", "flow"},
		{"flow_run_id", r.opts.RunID},
		{"flow_host", host},
		{"flow_pid", strconv.Itoa(os.Getpid())},
		{"flow_since", r.started.Format(time.RFC3339)},
		{"flow_operator", r.opts.Operator},
	}
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		parts[i] = a[0] + ":" + attrValue(a[1])
	}
	return strings.Join(parts, ",")
}

// maxAttrValue bounds one attribute value: the server keeps a few hundred
// bytes of attributes per connection and drops what does not fit.
const maxAttrValue = 64

// attrValue makes s safe as a value of the driver's ConnectionAttributes
// ("key:value,key:value"): the driver splits the list at every comma and
// each pair at its first colon, and has no escape, so a comma (which would
// start a bogus pair) becomes a semicolon; control characters become
// spaces; the value is cut to maxAttrValue bytes on a rune boundary.
func attrValue(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == ',':
			return ';'
		case r < ' ' || r == 0x7f:
			return ' '
		}
		return r
	}, s)
	if len(s) > maxAttrValue {
		cut := maxAttrValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func (r *Runner) sshClient(ctx context.Context, ep *endpoint) (SSHClient, error) {
	if r.pool.dial == nil {
		return nil, fmt.Errorf("ssh is not available in this build")
	}
	sp := SSHParams{Host: ep.host, Port: ep.port, User: ep.str("user"), KeyFile: ep.str("key_file"),
		Password: ep.str("password"), KnownHosts: ep.str("known_hosts"),
		ConnectTimeout: durationField(ep, "connect_timeout", 10*time.Second)}
	if sp.Password != "" {
		r.masker.Add(sp.Password)
	}
	key := fmt.Sprintf("%s@%s:%d", sp.User, sp.Host, sp.Port)
	label := ep.label()
	sp.Reconnected = func(why error) {
		r.opts.Log.Warn(r.masker.Apply(fmt.Sprintf("%s: the connection had ended (%v); the next command went over a new connection", label, why)))
	}
	p := r.pool
	p.mu.Lock()
	if c, ok := p.sshs[key]; ok {
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := p.dial(ctx, sp)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if have, ok := p.sshs[key]; ok {
		if cl, ok := c.(interface{ Close() error }); ok {
			cl.Close()
		}
		return have, nil
	}
	p.sshs[key] = c
	return c, nil
}

// resolveAt sets an endpoint's host (and, for mysql, port) from a step's
// `at:`: a mapping with host and port (a dataserver row, a node of a redo
// record) or "host[:port]".
func resolveAt(t *Target, env *evalEnv, ep *endpoint, unknown *bool) error {
	x, unk, err := t.At.value(env)
	if err != nil {
		return err
	}
	if unk {
		// shown as the fields it stands for: ({{ node.host }}:{{ node.port }})
		*unknown = true
		why := fmt.Sprint(x)
		if u, ok := x.(Unknown); ok {
			why = u.Why
		}
		ep.fields["host"] = Unknown{Why: why + ".host"}
		if t.conn.Kind == "mysql" {
			ep.fields["port"] = Unknown{Why: why + ".port"}
		}
		return nil
	}
	var host, port any
	switch v := x.(type) {
	case map[string]any:
		host, port = v["host"], v["port"]
	case string:
		h, p, err := net.SplitHostPort(v)
		if err != nil {
			host = v
		} else {
			host, port = h, p
		}
	default:
		return fmt.Errorf("%s: `at:` is %T; give a node with host and port (a dataserver row) or \"host:port\"", t.At.Pos, x)
	}
	if host == nil || fmt.Sprint(host) == "" {
		return fmt.Errorf("%s: `at:` has no host: give a node with host and port (a dataserver row) or \"host:port\"", t.At.Pos)
	}
	ep.fields["host"] = host
	if port != nil && t.conn.Kind == "mysql" {
		ep.fields["port"] = port
	}
	return nil
}
