package steps

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
)

// LockStep takes a server-side named lock (GET_LOCK) on a MySQL server and
// holds it until the run ends, so that two runs never work on the same
// clusters at once:
//
//	steps:
//	  - name: Step 00 take the run lock
//	    lock: {on: standby_master, name: flow, wait: 0s}
//
// The lock lives on a connection of its own, which the engine keeps for
// the whole run (Exec.Hold) and closes at its end, releasing the lock. A
// keeper pings that connection every lockKeepEvery; when the connection is
// lost (the server restarted, the session was killed) it takes the lock
// again on a new connection at each tick until the server answers, and if
// another session took the lock meanwhile the run stops before its next
// step, naming the new holder.
//
// When another session holds the lock, the step fails with exit code 2,
// naming the holder: a flow run (its run id, operator, control host, pid
// and start, read from the holder's connection attributes, which every
// flow connection carries) or another client (its account).
//
// The step changes no cluster data (Mutates is false), so a dry run
// executes it, but there it only checks whether the lock is free and who
// holds it; it never takes it.
type LockStep struct {
	engine.MySQLTarget `yaml:",inline"`
	// Name is the lock's name (default "flow"), at most 64 characters.
	Name *engine.Text `yaml:"name"`
	// Wait is how long to wait for a lock another session holds (default
	// 0s: fail at once).
	Wait *engine.Value `yaml:"wait"`
	// IfUnreachable is "fail" (default: a lock server that does not answer
	// stops the run) or "later": the run goes on and the keeper takes the
	// lock as soon as the server answers — for a playbook that restarts the
	// lock's server itself (flashback-stop, resumed after it shut the
	// standby master down).
	IfUnreachable string `yaml:"if_unreachable"`
}

// Defaults and bounds of the lock step.
const (
	lockDefaultName = "flow"
	// lockMaxName is MySQL's limit on a user-level lock name.
	lockMaxName = 64
	// lockKeepEvery is how often the keeper checks the held connection.
	lockKeepEvery = 2 * time.Second
	// lockOpTimeout bounds one statement of the keeper and of Close (GET_LOCK
	// with wait 0, the ownership check, RELEASE_LOCK).
	lockOpTimeout = 5 * time.Second
)

// Statements of the lock step.
const (
	qGetLock     = "SELECT GET_LOCK(?, ?), CONNECTION_ID()"
	qLockState   = "SELECT IS_FREE_LOCK(?), IS_USED_LOCK(?)"
	qLockUsedBy  = "SELECT IS_USED_LOCK(?)"
	qLockMine    = "SELECT IS_USED_LOCK(?) = CONNECTION_ID()"
	qReleaseLock = "DO RELEASE_LOCK(?)"
	qHolderAttrs = "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = ?"
	qHolderUser  = "SELECT PROCESSLIST_USER, PROCESSLIST_HOST FROM performance_schema.threads WHERE PROCESSLIST_ID = ?"
)

// lockHolderType is the type of a lock step's `holder` output.
var lockHolderType = types.Map{
	"connection_id": types.Int,
	"flow":          types.Bool,
	"run_id":        types.String,
	"operator":      types.String,
	"host":          types.String,
	"pid":           types.Int,
	"since":         types.String,
	"program":       types.String,
	"user":          types.String,
	"client_host":   types.String,
}

var lockOutput = types.Map{
	"acquired":      types.Bool,
	"pending":       types.Bool,
	"free":          types.Bool,
	"name":          types.String,
	"holder":        lockHolderType,
	"connection_id": types.Int,
	"target":        types.String,
}

func init() {
	engine.Register(engine.StepType{
		Name:       "lock",
		Summary:    "take a server-side named lock (GET_LOCK) and hold it on its own connection until the run ends; fails with exit 2 naming the holder when another run has it (a dry run only checks)",
		New:        func() engine.StepSpec { return &LockStep{} },
		Output:     lockOutput,
		Idempotent: true,
	})
}

// Mutates is false: the lock changes no cluster data, and a dry run must
// see whether another run holds it.
func (s *LockStep) Mutates() bool { return false }

// DryRunDiffers says a dry run only looks at the lock a run takes: a run
// bound to a plan does not compare their outputs.
func (s *LockStep) DryRunDiffers() bool { return true }

// Recompute is true: a resumed run must take the lock again (the earlier
// attempt's lock ended with its connection), not restore the output.
func (s *LockStep) Recompute() bool { return true }

// Check validates literal names and waits.
func (s *LockStep) Check(c *engine.Check) {
	if s.Name != nil && !strings.Contains(s.Name.Raw, "{{") {
		if n := len(s.Name.Raw); n == 0 || n > lockMaxName {
			c.Errorf(s.Name.Pos, "`name:` of a lock must have 1 to %d characters, not %d", lockMaxName, n)
		}
	}
	if s.Wait != nil && !strings.Contains(s.Wait.Raw, "{{") {
		if _, err := lockWaitText(s.Wait.Raw); err != nil {
			c.Errorf(s.Wait.Pos, "%v", err)
		}
	}
	switch s.IfUnreachable {
	case "", "fail", "later":
	default:
		c.Errorf(c.StepPos(), "`if_unreachable: %s` is not fail or later", s.IfUnreachable)
	}
}

// lockWaitText reads a wait: a duration of zero or more ("0" is allowed).
func lockWaitText(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("`wait: %s` is not a duration: write it with a unit, e.g. 0s, 30s, 5m", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("`wait: %s` is negative: use 0s to fail at once", v)
	}
	return d, nil
}

// name renders the lock's name.
func (s *LockStep) name(x *engine.Exec) (string, error) {
	if s.Name == nil {
		return lockDefaultName, nil
	}
	n, err := x.Text(s.Name)
	if err != nil {
		return "", err
	}
	if n == "" || len(n) > lockMaxName {
		return "", fmt.Errorf("the lock name %q must have 1 to %d characters", n, lockMaxName)
	}
	return n, nil
}

// wait evaluates `wait:`.
func (s *LockStep) wait(x *engine.Exec) (time.Duration, error) {
	if s.Wait == nil {
		return 0, nil
	}
	v, err := x.Value(s.Wait)
	if err != nil {
		return 0, err
	}
	switch t := v.(type) {
	case time.Duration:
		if t < 0 {
			return 0, fmt.Errorf("`wait:` is negative (%s): use 0s to fail at once", t)
		}
		return t, nil
	case string:
		return lockWaitText(t)
	case int:
		if t == 0 {
			return 0, nil
		}
	}
	return 0, fmt.Errorf("`wait:` gave %v (%T), not a duration such as 0s or 30s", v, v)
}

// Render describes the lock.
func (s *LockStep) Render(r *engine.Render) ([]engine.Action, error) {
	name := lockDefaultName
	if s.Name != nil {
		name = r.Text(s.Name)
	}
	wait := "0s"
	if s.Wait != nil {
		wait = r.Value(s.Wait)
		if d, err := lockWaitText(wait); err == nil {
			wait = shortDuration(d)
		}
	}
	text := fmt.Sprintf("take lock `%s` (GET_LOCK, waiting at most %s) on a connection of its own and hold it until the run ends\n(another session holding it fails the run with exit 2, naming the holder; a dry run only checks IS_FREE_LOCK/IS_USED_LOCK)",
		name, wait)
	return []engine.Action{{Target: r.MySQLTarget(&s.MySQLTarget), Text: text}}, nil
}

// Run takes the lock (a dry run only looks at it).
func (s *LockStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	name, err := s.name(x)
	if err != nil {
		return nil, err
	}
	wait, err := s.wait(x)
	if err != nil {
		return nil, err
	}
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	l := &heldLock{x: x, db: db, name: name, target: target, where: addrOf(target), every: lockKeepEvery}
	out := map[string]any{"acquired": false, "pending": false, "free": false, "name": name, "holder": map[string]any{}, "connection_id": 0, "target": target}
	if x.DryRun() {
		return l.check(ctx, out)
	}
	x.Sent(target, fmt.Sprintf("SELECT GET_LOCK('%s', %s)", strings.ReplaceAll(name, "'", "''"), seconds(wait)))
	var conn *sql.Conn
	var id int64
	var holder *lockHolder
	// a holder that lets go between GET_LOCK and naming it: ask again
	for range 3 {
		if conn, id, holder, err = l.take(ctx, wait); err != nil || conn != nil || holder != nil {
			break
		}
	}
	if errors.Is(err, errLockUnreachable) && s.IfUnreachable == "later" {
		// the keeper takes it once the server answers (or stops the run
		// if another session has it by then)
		kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		l.cancel, l.done = cancel, make(chan struct{})
		go l.keep(kctx)
		x.Hold(l)
		x.Warnf("lock `%s`: %s; going on (if_unreachable: later): it is taken as soon as the server answers, checked every %s", name, x.Mask(err.Error()), l.every)
		out["pending"] = true
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if conn == nil {
		if holder != nil && holder.self(x) {
			// an earlier lock step of this run (an included playbook) has it
			x.Infof("lock `%s` on %s is already held by this run (connection id %d)", name, l.where, holder.ConnID)
			out["acquired"], out["connection_id"] = true, int(holder.ConnID)
			return out, nil
		}
		return nil, &engine.ExitError{Code: engine.ExitInvalid, Err: errors.New(l.heldMessage(holder, wait))}
	}
	l.conn, l.connID = conn, id
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	go l.keep(kctx)
	x.Hold(l)
	x.Infof("lock `%s` taken on %s (connection id %d); held until the run ends", name, l.where, id)
	x.Event(event.LockTaken, map[string]any{"lock": name, "target": target, "connection_id": id})
	out["acquired"], out["free"], out["connection_id"] = true, true, int(id)
	return out, nil
}

// seconds writes a wait as GET_LOCK's timeout argument.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// addrOf takes "host:port" out of a target label ("mysql standby
// (127.0.0.1:3306)").
func addrOf(label string) string {
	i, j := strings.LastIndexByte(label, '('), strings.LastIndexByte(label, ')')
	if i < 0 || j < i {
		return label
	}
	return label[i+1 : j]
}

// heldLock is a lock taken by a run: its connection, and the keeper that
// watches it. The engine closes it when the run ends.
type heldLock struct {
	x      *engine.Exec
	db     *sql.DB
	name   string
	target string // the target's label
	where  string // host:port
	every  time.Duration

	mu     sync.Mutex
	conn   *sql.Conn // nil while the connection is lost
	connID int64
	err    error // the lock went to another session

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// take opens a connection and asks for the lock, waiting at most wait. It
// returns the connection that holds it, or nil and the holder (nil when
// the lock was freed again before it could be read).
func (l *heldLock) take(ctx context.Context, wait time.Duration) (*sql.Conn, int64, *lockHolder, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%s: cannot connect: %v (is the server up, and are the credentials in the config right?): %w", l.target, err, errLockUnreachable)
	}
	var got sql.NullInt64
	var id int64
	if err := conn.QueryRowContext(ctx, qGetLock, l.name, wait.Seconds()).Scan(&got, &id); err != nil {
		discard(conn)
		return nil, 0, nil, fmt.Errorf("%s: GET_LOCK('%s'): %v", l.target, l.name, err)
	}
	if !got.Valid {
		discard(conn)
		return nil, 0, nil, fmt.Errorf("%s: GET_LOCK('%s') returned NULL (the session was killed, or the server ran out of memory)", l.target, l.name)
	}
	if got.Int64 == 1 {
		return conn, id, nil, nil
	}
	conn.Close()
	h, err := lookupHolder(ctx, l.db, l.name)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%s: lock `%s` is held by another session, which cannot be named: %v", l.target, l.name, err)
	}
	return nil, 0, h, nil
}

// errLockUnreachable marks a lock server flow could not connect to.
var errLockUnreachable = errors.New("the lock server does not answer")

// discard closes a connection for good instead of giving it back to the
// pool (it may be broken, or hold session state).
func discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}

// check is the dry run: whether the lock is free, and who holds it.
func (l *heldLock) check(ctx context.Context, out map[string]any) (map[string]any, error) {
	l.x.Sent(l.target, fmt.Sprintf("SELECT IS_FREE_LOCK('%s'), IS_USED_LOCK('%[1]s')", strings.ReplaceAll(l.name, "'", "''")))
	var free, used sql.NullInt64
	if err := l.db.QueryRowContext(ctx, qLockState, l.name, l.name).Scan(&free, &used); err != nil {
		return nil, fmt.Errorf("%s: IS_FREE_LOCK('%s'): %v", l.target, l.name, err)
	}
	if free.Int64 == 1 || !used.Valid {
		out["free"] = true
		l.x.Infof("dry run: lock `%s` on %s is free; a real run takes it here and holds it until the run ends", l.name, l.where)
		return out, nil
	}
	h, err := lookupHolder(ctx, l.db, l.name)
	if err != nil {
		return nil, fmt.Errorf("%s: lock `%s` is held by connection id %d, which cannot be named: %v", l.target, l.name, used.Int64, err)
	}
	if h == nil { // freed between the two statements
		out["free"] = true
		return out, nil
	}
	out["holder"] = h.output()
	l.x.Warnf("dry run: %s: a real run would stop here (exit 2)", l.heldMessage(h, 0))
	return out, nil
}

// heldMessage is the error for a lock another session holds.
func (l *heldLock) heldMessage(h *lockHolder, waited time.Duration) string {
	if h == nil {
		return fmt.Sprintf("lock `%s` on %s is held by another session (it was released before it could be named): run again", l.name, l.where)
	}
	after := ""
	if waited > 0 {
		after = " after waiting " + waited.String()
	}
	if h.Flow() {
		return fmt.Sprintf("lock `%s` on %s is held by %s%s: wait for it to finish or check `flow status %s` on that host", l.name, l.where, h, after, h.RunID())
	}
	return fmt.Sprintf("lock `%s` on %s is held by %s%s: find it with `SELECT * FROM performance_schema.threads WHERE PROCESSLIST_ID = %d` and wait for it to end or end it", l.name, l.where, h, after, h.ConnID)
}

// keep watches the held connection every l.every until ctx ends or the
// lock went to another session.
func (l *heldLock) keep(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.every)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l.tick(ctx, &warned) {
			return
		}
	}
}

// tick checks the held connection once and takes the lock again when it
// was lost. It returns true when the keeper is done: the lock went to
// another session (Err says who) or ctx ended.
func (l *heldLock) tick(ctx context.Context, warned *bool) bool {
	l.mu.Lock()
	conn := l.conn
	l.mu.Unlock()
	if conn != nil {
		c, cancel := context.WithTimeout(ctx, lockOpTimeout)
		var mine sql.NullInt64
		err := conn.QueryRowContext(c, qLockMine, l.name).Scan(&mine)
		cancel()
		if err == nil && mine.Int64 == 1 {
			return false
		}
		if ctx.Err() != nil {
			return true
		}
		why := "the server no longer has it on that connection"
		if err != nil {
			why = err.Error()
		}
		if !*warned {
			*warned = true
			l.x.Warnf("lock `%s` on %s: lost the connection that held it (%s): taking it again on a new connection every %s", l.name, l.where, why, l.every)
		}
		discard(conn)
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
	}
	c, cancel := context.WithTimeout(ctx, lockOpTimeout)
	defer cancel()
	nc, id, h, err := l.take(c, 0)
	switch {
	case ctx.Err() != nil:
		if nc != nil {
			discard(nc)
		}
		return true
	case err != nil:
		// the server is still down: try again at the next tick
		l.x.Debugf("lock `%s` on %s: not taken again yet: %v", l.name, l.where, err)
		return false
	case nc != nil:
		l.mu.Lock()
		l.conn, l.connID = nc, id
		l.mu.Unlock()
		*warned = false
		l.x.Infof("lock `%s` on %s taken again (connection id %d)", l.name, l.where, id)
		l.x.Event(event.LockTaken, map[string]any{"lock": l.name, "target": l.target, "connection_id": id, "again": true})
		return false
	}
	if h == nil { // freed again before it could be named: try next tick
		return false
	}
	lost := fmt.Errorf("lock `%s` on %s was lost (its connection ended) and is now held by %s: another run may be working on the same clusters; check it before going on", l.name, l.where, h)
	if h.Flow() {
		lost = fmt.Errorf("%w (`flow status %s` on that host)", lost, h.RunID())
	}
	l.mu.Lock()
	l.err = lost
	l.mu.Unlock()
	l.x.Warnf("%v", lost)
	return true
}

// Err is not nil when the lock went to another session while this run
// held it: the run stops before its next step.
func (l *heldLock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close stops the keeper and releases the lock (RELEASE_LOCK, then the
// connection is closed).
func (l *heldLock) Close() error {
	var err error
	l.closeOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
		l.mu.Lock()
		conn := l.conn
		l.conn = nil
		l.mu.Unlock()
		if conn == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), lockOpTimeout)
		defer cancel()
		if _, err = conn.ExecContext(ctx, qReleaseLock, l.name); err != nil {
			// the connection broke (the lock went with it), or closing it
			// below releases the lock anyway
			l.x.Debugf("lock `%s` on %s: RELEASE_LOCK: %v; closing its connection", l.name, l.where, err)
		} else {
			l.x.Debugf("lock `%s` on %s released", l.name, l.where)
		}
		discard(conn)
		l.x.Event(event.LockReleased, map[string]any{"lock": l.name, "target": l.target})
	})
	return err
}

// lockHolder is the session that holds a lock, as the server shows it.
type lockHolder struct {
	ConnID int64
	// Attrs are the session's connection attributes.
	Attrs map[string]string
	// User and ClientHost are its account, from performance_schema.threads.
	User, ClientHost string
	// Unreadable says why performance_schema could not be read (the
	// holder is then known by its connection id only).
	Unreadable string
}

// lookupHolder names the session that holds lock name, or returns nil when
// the lock is free.
func lookupHolder(ctx context.Context, db *sql.DB, name string) (*lockHolder, error) {
	var used sql.NullInt64
	if err := db.QueryRowContext(ctx, qLockUsedBy, name).Scan(&used); err != nil {
		return nil, err
	}
	if !used.Valid {
		return nil, nil
	}
	h := &lockHolder{ConnID: used.Int64, Attrs: map[string]string{}}
	rows, err := db.QueryContext(ctx, qHolderAttrs, h.ConnID)
	if err != nil {
		h.Unreadable = err.Error()
		return h, nil
	}
	defer rows.Close()
	for rows.Next() {
		var k, v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			h.Unreadable = err.Error()
			return h, nil
		}
		h.Attrs[k.String] = v.String
	}
	if err := rows.Err(); err != nil {
		h.Unreadable = err.Error()
	}
	var user, host sql.NullString
	if err := db.QueryRowContext(ctx, qHolderUser, h.ConnID).Scan(&user, &host); err == nil {
		h.User, h.ClientHost = user.String, host.String
	} else if !errors.Is(err, sql.ErrNoRows) && h.Unreadable == "" {
		h.Unreadable = err.Error()
	}
	return h, nil
}

// Flow reports whether the holder is a flow run.
func (h *lockHolder) Flow() bool { return h.Attrs["program_name"] == "flow" && h.RunID() != "" }

// RunID is the holder's flow run id.
func (h *lockHolder) RunID() string { return h.Attrs["flow_run_id"] }

// self reports whether the holder is this very run (an earlier lock step).
func (h *lockHolder) self(x *engine.Exec) bool {
	return h.Flow() && h.RunID() == x.RunID() && h.Attrs["flow_pid"] == strconv.Itoa(os.Getpid())
}

// String names the holder for messages.
func (h *lockHolder) String() string {
	a := h.Attrs
	if h.Flow() {
		return fmt.Sprintf("run %s of %s on %s (pid %s) since %s (connection id %d)",
			h.RunID(), orUnknown(a["flow_operator"]), orUnknown(a["flow_host"]), orUnknown(a["flow_pid"]), orUnknown(a["flow_since"]), h.ConnID)
	}
	if h.Unreadable != "" {
		return fmt.Sprintf("connection id %d (performance_schema cannot be read to name it: %s)", h.ConnID, h.Unreadable)
	}
	prog := a["program_name"]
	if prog == "" {
		prog = a["_client_name"]
	}
	return fmt.Sprintf("connection id %d of %s@%s, which is not a flow run (client %s)", h.ConnID, orUnknown(h.User), orUnknown(h.ClientHost), orUnknown(prog))
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// output is the holder as the step's output shows it.
func (h *lockHolder) output() map[string]any {
	a := h.Attrs
	pid, _ := strconv.Atoi(a["flow_pid"])
	prog := a["program_name"]
	if prog == "" {
		prog = a["_client_name"]
	}
	return map[string]any{
		"connection_id": int(h.ConnID), "flow": h.Flow(), "run_id": h.RunID(), "operator": a["flow_operator"],
		"host": a["flow_host"], "pid": pid, "since": a["flow_since"], "program": prog,
		"user": h.User, "client_host": h.ClientHost,
	}
}
