package dbscale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// Options configure Start.
type Options struct {
	// Dir holds state.json; it is created (mode 0700) if missing.
	Dir string
	// Listen is the loopback host:port to listen on (port 0 picks one).
	Listen string
	// Config is the topology (see LoadConfig). Required.
	Config *Config
	// Backend reaches MySQL nodes and other routers; nil means MySQLBackend.
	Backend Backend
	// Logf receives one line per notable event (admin changes, DR wiring,
	// backend trouble); never a password. nil discards them.
	Logf func(format string, args ...any)
}

// Router is one running emulated DBScale router.
type Router struct {
	cfg     *Config
	dir     string
	backend Backend
	logf    func(format string, args ...any)

	srv    *server.Server
	users  *server.InMemoryAuthenticationHandler
	admins map[string]bool
	ln     net.Listener
	addr   string

	mu sync.Mutex // guards st
	st *state
	// opMu serialises the admin commands that change the state, so that a
	// check and the change it guards are not interleaved with another.
	opMu sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	retryMu sync.Mutex
	retries map[linkKey]*retry // DR set-up retries by link (datasource, slave source)
}

// Start loads (or creates) the state in opts.Dir, listens on opts.Listen and
// serves clients in the background until Close. Links whose replication
// set-up was still pending when the emulator stopped are retried.
func Start(opts Options) (*Router, error) {
	if opts.Config == nil {
		return nil, errors.New("dbscale: Options.Config is required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("dbscale: config: %w", err)
	}
	if opts.Dir == "" {
		return nil, errors.New("dbscale: Options.Dir is required")
	}
	if _, _, err := splitHostPort(opts.Listen); err != nil {
		return nil, fmt.Errorf("dbscale: listen address: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dbscale: %w", err)
	}
	r := &Router{
		cfg:     opts.Config,
		dir:     opts.Dir,
		backend: opts.Backend,
		logf:    opts.Logf,
		admins:  map[string]bool{},
		conns:   map[net.Conn]struct{}{},
		retries: map[linkKey]*retry{},
	}
	if r.backend == nil {
		r.backend = MySQLBackend{}
	}
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	st, err := loadState(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("dbscale: %w", err)
	}
	if st == nil {
		st = newState(r.cfg, time.Now())
		if err := st.save(opts.Dir); err != nil {
			return nil, fmt.Errorf("dbscale: %w", err)
		}
	} else {
		// Options added to the config later get their value; stored values win.
		for k, v := range defaultOptions(r.cfg.Options) {
			if _, ok := st.Options[k]; !ok {
				st.Options[k] = v
			}
		}
	}
	r.st = st

	plugin := mysql.AUTH_NATIVE_PASSWORD
	if r.cfg.AuthPlugin == authSHA2 {
		plugin = mysql.AUTH_CACHING_SHA2_PASSWORD
		key, tlsConf := serverKeys()
		r.srv = server.NewServer(r.cfg.ServerVersion, mysql.DEFAULT_COLLATION_ID, plugin, key, tlsConf)
	} else {
		r.srv = server.NewServer(r.cfg.ServerVersion, mysql.DEFAULT_COLLATION_ID, plugin, nil, nil)
	}
	r.users = server.NewInMemoryAuthenticationHandler(plugin)
	for _, u := range r.cfg.Users {
		if err := r.users.AddUser(u.Name, u.Password, plugin); err != nil {
			return nil, fmt.Errorf("dbscale: user %s: %w", u.Name, err)
		}
		r.admins[u.Name] = u.Admin
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("dbscale: %w", err)
	}
	r.ln = ln
	r.addr = ln.Addr().String()
	r.ctx, r.cancel = context.WithCancel(context.Background())

	r.wg.Add(1)
	go r.acceptLoop()

	for _, ds := range st.Sources {
		for _, l := range ds.Slaves {
			if !l.Wired {
				r.startRetry(ds.Name, l.Source)
			}
		}
	}
	r.logf("dbscale: listening on %s (state in %s)", r.addr, r.dir)
	return r, nil
}

// Addr returns the address the router listens on (host:port).
func (r *Router) Addr() string { return r.addr }

// Host returns the listening host.
func (r *Router) Host() string {
	h, _, _ := net.SplitHostPort(r.addr)
	return h
}

// Port returns the listening port.
func (r *Router) Port() int {
	_, p, _ := net.SplitHostPort(r.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Close stops listening, closes every client connection, stops pending DR
// retries and waits for all of it. The state is already on disk.
func (r *Router) Close() error {
	r.connMu.Lock()
	if r.closed {
		r.connMu.Unlock()
		return nil
	}
	r.closed = true
	err := r.ln.Close()
	for c := range r.conns {
		c.Close()
	}
	r.connMu.Unlock()
	r.cancel()
	r.wg.Wait()
	return err
}

func (r *Router) acceptLoop() {
	defer r.wg.Done()
	for {
		nc, err := r.ln.Accept()
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			r.logf("dbscale: accept: %v", err)
			continue
		}
		r.connMu.Lock()
		if r.closed {
			r.connMu.Unlock()
			nc.Close()
			return
		}
		r.conns[nc] = struct{}{}
		r.wg.Add(1)
		r.connMu.Unlock()
		go r.serve(nc)
	}
}

// serve runs one client connection: a fresh session (handler) per
// connection, as the server package requires.
func (r *Router) serve(nc net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.connMu.Lock()
		delete(r.conns, nc)
		r.connMu.Unlock()
		nc.Close()
	}()
	s := newSession(r)
	defer s.close()
	// The handshake has no deadline of its own.
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := r.srv.NewCustomizedConn(nc, &connAuth{InMemoryAuthenticationHandler: r.users, s: s}, s)
	if err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	for {
		if err := conn.HandleCommand(); err != nil {
			return
		}
	}
}

// connAuth is the shared user list plus the hook that tells the session who
// logged in.
type connAuth struct {
	*server.InMemoryAuthenticationHandler
	s *session
}

// OnAuthSuccess records the user and opens the backend connection if the
// client named a schema in the handshake (so a bad schema fails the login,
// as on MySQL).
func (a *connAuth) OnAuthSuccess(c *server.Conn) error {
	return a.s.authenticated(c.GetUser())
}

// OnAuthFailure does nothing: the server answers the client.
func (a *connAuth) OnAuthFailure(*server.Conn, error) {}

// snapshot returns a copy of the state.
func (r *Router) snapshot() *state {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.clone()
}

// option returns a global option value.
func (r *Router) option(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Options[key]
}

// update applies f to the state under the lock and persists the result; if
// f or the save fails, the state is left as it was.
func (r *Router) update(f func(st *state) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.st.clone()
	if err := f(next); err != nil {
		return err
	}
	next.SpaceVersion++
	if err := next.save(r.dir); err != nil {
		r.logf("dbscale: %v", err)
		return newErr(mysql.ER_UNKNOWN_ERROR, "cannot persist the change: %v", err)
	}
	r.st = next
	return nil
}

// credentials returns the account the router uses on a dataserver: from the
// Config for configured servers, from the state for dynamic ones.
func (r *Router) credentials(s *dataServer) (user, password string) {
	if !s.Dynamic {
		if sc, ok := r.cfg.serverConfig(s.Name); ok {
			return r.cfg.nodeCredentials(sc)
		}
	}
	return s.User, s.Password
}

// replicationCredentials returns the account a replica of s replicates
// with.
func (r *Router) replicationCredentials(s *dataServer) (user, password string) {
	if !s.Dynamic {
		if sc, ok := r.cfg.serverConfig(s.Name); ok {
			return r.cfg.replicationCredentials(sc)
		}
	}
	return s.User, s.Password
}

// endpoint returns how to reach a dataserver.
func (r *Router) endpoint(s *dataServer) Endpoint {
	user, pw := r.credentials(s)
	return Endpoint{Host: s.Host, Port: s.Port, User: user, Password: pw, Timeout: r.cfg.ProbeTimeout}
}

// secrets lists every password the router knows, to scrub them from texts
// that come back from servers.
func (r *Router) secrets() []string {
	var out []string
	out = append(out, r.cfg.NodePassword, r.cfg.ReplicationPassword)
	for _, ds := range r.cfg.DataSources {
		for _, s := range ds.Servers {
			out = append(out, s.Password, s.ReplicationPassword)
		}
	}
	for _, u := range r.cfg.Users {
		out = append(out, u.Password)
	}
	st := r.snapshot()
	for _, s := range st.Servers {
		out = append(out, s.Password)
	}
	return out
}

// advertised is the host:port request cluster info shows for this router.
func (r *Router) advertised() string {
	if r.cfg.Advertise != "" {
		return r.cfg.Advertise
	}
	return r.addr
}
