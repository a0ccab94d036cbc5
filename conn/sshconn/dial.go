package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// OpenSSH refuses more than MaxSessions (default 10) sessions per
// connection. Commands get maxSessions of them (further Run and Start calls
// wait for a free slot, bounded by their context); the kill(1) sessions that
// stop cancelled commands get the other maxKillSessions, so a kill never
// waits for the commands it is meant to stop.
const (
	maxSessions     = 8
	maxKillSessions = 2
)

// closeWait bounds how long Close and a killed command wait for the SSH
// library to finish after the connection or session was closed.
const closeWait = 5 * time.Second

// Client is an authenticated SSH connection to one host. It is safe for
// concurrent use; each Run or Start opens its own session.
type Client struct {
	name    string // user@host:port, for messages
	conn    *ssh.Client
	sem     chan struct{} // command session slots
	killSem chan struct{} // kill session slots, one per running kill worker
	done    chan struct{} // closed when the connection has ended

	killMu    sync.Mutex
	killQueue []killReq // kill requests waiting for a worker

	mu  sync.Mutex
	err error // why the connection ended
}

// Dial connects to cfg.Host, verifies its host key against
// cfg.KnownHostsFile and authenticates. ctx (and cfg.ConnectTimeout) bound
// both the TCP connect and the SSH handshake. Errors name user@host:port and
// never contain the password.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	name := cfg.String()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ssh %s: invalid config: %w", name, err)
	}
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", name, err)
	}
	known, err := loadKnownHosts(cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", name, err)
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := dctx.Deadline()
	ctxDeadline, hasCtxDeadline := ctx.Deadline()
	// timedOut words an error, telling apart the caller's context, our
	// ConnectTimeout and other failures. The connection deadline can fire
	// a moment before the context notices, hence the clock check.
	timedOut := func(stage string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("ssh %s: %s: %w", name, stage, ctx.Err())
		}
		if dctx.Err() != nil || !time.Now().Before(deadline) {
			if hasCtxDeadline && !ctxDeadline.After(deadline) {
				return fmt.Errorf("ssh %s: %s: %w", name, stage, context.DeadlineExceeded)
			}
			return fmt.Errorf("ssh %s: %s: no answer within ConnectTimeout %s: %w", name, stage, timeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("ssh %s: %s: %w", name, stage, err)
	}

	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", cfg.Addr())
	if err != nil {
		return nil, timedOut("connect", err)
	}
	// The SSH library has no handshake timeout: bound it with the
	// connection's deadline, and break it off when ctx is cancelled.
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })

	var hostErr error
	var hostErrMu sync.Mutex
	check := hostKeyCheck(known, cfg.KnownHostsFile, &hostErr)
	ccfg := &ssh.ClientConfig{
		User: cfg.User,
		Auth: auth,
		HostKeyCallback: func(h string, r net.Addr, k ssh.PublicKey) error {
			hostErrMu.Lock()
			defer hostErrMu.Unlock()
			return check(h, r, k)
		},
		HostKeyAlgorithms: knownAlgorithms(known, cfg.Addr(), nc.RemoteAddr()),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, cfg.Addr(), ccfg)
	stopped := stop()
	if err != nil { // NewClientConn has closed nc
		hostErrMu.Lock()
		herr := hostErr
		hostErrMu.Unlock()
		var hke *HostKeyError
		switch {
		case errors.As(herr, &hke):
			return nil, fmt.Errorf("ssh %s: %w", name, herr)
		case dctx.Err() != nil || !time.Now().Before(deadline):
			return nil, timedOut("handshake", err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("ssh %s: authentication failed (offered: %s): %w", name, offered(cfg), err)
		case strings.Contains(err.Error(), "no common algorithm for host key"):
			return nil, fmt.Errorf("ssh %s: the host offers none of the host key types that known_hosts file %s holds for it; "+
				"check the host's keys with its administrator and update the file: %w", name, cfg.KnownHostsFile, err)
		default:
			return nil, fmt.Errorf("ssh %s: handshake: %w", name, err)
		}
	}
	if !stopped { // ctx ended right as the handshake finished
		sc.Close()
		return nil, timedOut("handshake", context.Canceled)
	}
	_ = nc.SetDeadline(time.Time{})

	c := &Client{
		name:    name,
		conn:    ssh.NewClient(sc, chans, reqs),
		sem:     make(chan struct{}, maxSessions),
		killSem: make(chan struct{}, maxKillSessions),
		done:    make(chan struct{}),
	}
	go func() {
		err := c.conn.Wait()
		c.setErr(err)
		close(c.done)
	}()
	if iv := cfg.KeepaliveInterval; iv >= 0 {
		if iv == 0 {
			iv = DefaultKeepaliveInterval
		}
		go c.keepalive(iv)
	}
	return c, nil
}

// offered describes the authentication methods tried, without secrets.
func offered(cfg Config) string {
	var m []string
	if cfg.KeyFile != "" {
		m = append(m, "public key "+cfg.KeyFile)
	}
	if cfg.Password != "" {
		m = append(m, "password")
	}
	return strings.Join(m, ", ")
}

// authMethods loads the key file (if any) and adds password auth (if any).
func authMethods(cfg Config) ([]ssh.AuthMethod, error) {
	var auth []ssh.AuthMethod
	if cfg.KeyFile != "" {
		fi, err := os.Stat(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("key file %s has permissions %04o, readable by others; run: chmod 600 %s",
				cfg.KeyFile, perm, ShellQuote(cfg.KeyFile))
		}
		data, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				return nil, fmt.Errorf("key file %s is protected by a passphrase, which is not supported; use a key without passphrase that only its owner can read", cfg.KeyFile)
			}
			return nil, fmt.Errorf("key file %s: not a usable private key: %w", cfg.KeyFile, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		auth = append(auth, ssh.Password(cfg.Password))
	}
	return auth, nil
}

// String returns user@host:port.
func (c *Client) String() string { return c.name }

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return errors.New("connection closed")
	}
	return c.err
}

// alive reports whether the connection is still up.
func (c *Client) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// setErr records the first reason the connection ended.
func (c *Client) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && err != nil {
		c.err = err
	}
}

// fail closes the connection for the given reason.
func (c *Client) fail(err error) {
	c.setErr(err)
	_ = c.conn.Close()
}

// Close closes the connection, which ends every session and forwarded
// connection on it. It waits (bounded) until the connection is down.
func (c *Client) Close() error {
	c.setErr(errors.New("connection closed by Close"))
	_ = c.conn.Close()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		return fmt.Errorf("ssh %s: close: connection still not down after %s", c.name, closeWait)
	}
}

// keepalive sends keepalive@openssh.com every interval and closes the
// connection when three in a row go unanswered.
func (c *Client) keepalive(interval time.Duration) {
	const maxMissed = 3
	t := time.NewTicker(interval)
	defer t.Stop()
	replies := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-replies:
			pending, missed = false, 0
			if err != nil {
				c.fail(fmt.Errorf("keepalive failed: %w", err))
				return
			}
		case <-t.C:
			if pending {
				missed++
				if missed >= maxMissed {
					c.fail(fmt.Errorf("no answer to %d keepalives in a row (one every %s): connection presumed dead", missed, interval))
					return
				}
				continue
			}
			pending = true
			go func() {
				// The reply's ok flag does not matter: OpenSSH answers
				// unknown global requests with a failure, which proves
				// it is alive.
				_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
				replies <- err
			}()
		}
	}
}

// acquire takes a command session slot, waiting for one while ctx allows.
func (c *Client) acquire(ctx context.Context) error { return c.acquireFrom(ctx, c.sem) }

// acquireFrom takes a slot of sem, waiting for one while ctx allows.
func (c *Client) acquireFrom(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.Err()
	}
}

// release frees a command session slot.
func (c *Client) release() { <-c.sem }

// sessionRefusedLimit bounds how long newSession keeps retrying a server
// that refuses new sessions.
const sessionRefusedLimit = 10 * time.Second

// newSession opens a session, bounded by ctx. OpenSSH refuses a session
// ("open failed") while MaxSessions are counted, and it counts a finished
// session until it has reaped its process, a moment after the client saw
// the exit status; so a refusal is retried with a bounded poll.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	limit := time.Now().Add(sessionRefusedLimit)
	delay := 5 * time.Millisecond
	for {
		sess, err := c.openSession(ctx)
		var oce *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || (oce.Reason != ssh.ConnectionFailed && oce.Reason != ssh.ResourceShortage) {
			return sess, err
		}
		if time.Now().After(limit) {
			return nil, fmt.Errorf("the server kept refusing new sessions for %s (is its MaxSessions below %d?): %w",
				sessionRefusedLimit, maxSessions+maxKillSessions, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.done:
			t.Stop()
			return nil, c.Err()
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// openSession makes one attempt to open a session, bounded by ctx.
func (c *Client) openSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				_ = r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
