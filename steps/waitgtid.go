package steps

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/gtid"
	"github.com/flowdba/flow/internal/durtext"
	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// WaitGTIDStep waits until a MySQL node has applied a GTID set: its
// @@GLOBAL.gtid_executed contains every transaction of the reference.
//
// The reference is either `gtid:` (an expression giving a GTID set, e.g. a
// variable holding the source's set) or `source:` (another MySQL target
// whose @@GLOBAL.gtid_executed is read once, when the step starts):
//
//	wait-gtid: {on: standby, gtid: primary_gtids, timeout: 5m}
//	wait-gtid: {on: standby, source: primary}
//	wait-gtid: {on: node, host: "{{ item.host }}", source: {on: node, host: "{{ donor.host }}"}}
//
// It never trusts Seconds_Behind_Master (NULL right after STOP REPLICA is
// not "caught up"). While it waits it watches the node's replication
// (performance_schema): an applier stopped with an error, or a receiver
// stopped with an error while transactions of the reference were never
// received, fails the step at once with the server's error. A node that
// cannot make progress without an error (applier stopped by hand, no
// replication channel, the server unreachable) fails after `stopped_grace`
// (default 30s): it would never catch up by itself. Otherwise the wait is
// bounded by `timeout` (default 10m), whose error quotes the missing set.
//
// Every second of the wait it reports to the live progress view (a
// step_progress event) what it waits for, the transactions missing, the
// rate they are applied at (smoothed) and the estimate of the time left.
type WaitGTIDStep struct {
	engine.MySQLTarget `yaml:",inline"`
	// GTID is an expression giving the reference GTID set (text).
	GTID *engine.Expr `yaml:"gtid"`
	// Source is a MySQL target whose gtid_executed is the reference, read
	// once at the start: a connection name, or {on:, host:, port:}.
	Source *GTIDSource `yaml:"source"`
	// Interval is the poll interval (default 200ms).
	Interval *engine.Value `yaml:"interval"`
	// Timeout bounds the whole wait (default 10m).
	Timeout *engine.Value `yaml:"timeout"`
	// StoppedGrace is how long the node may be unable to make progress
	// (applier stopped without an error, no channel, unreachable) before the
	// step fails (default 30s).
	StoppedGrace *engine.Value `yaml:"stopped_grace"`
	// Progress is how often progress is logged (default 5s).
	Progress *engine.Value `yaml:"progress"`
}

// GTIDSource is the `source:` of a wait-gtid step: a MySQL connection of
// the playbook, given as its name, as {on:, host:, port:} or as {on:, at:}.
type GTIDSource struct {
	engine.MySQLTarget `yaml:",inline"`
}

// UnmarshalYAML accepts a connection name or a strict {on, host, port}
// mapping.
func (g *GTIDSource) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		g.On = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch k := n.Content[i].Value; k {
			case "on", "host", "port", "at":
			default:
				return fmt.Errorf("`source:` takes on, host and port (or at), not %q", k)
			}
		}
		type plain GTIDSource
		return n.Decode((*plain)(g))
	}
	return fmt.Errorf("`source:` is a connection name, {on:, host:, port:} or {on:, at:}")
}

// Defaults of wait-gtid.
const (
	waitGTIDInterval = 200 * time.Millisecond
	waitGTIDTimeout  = 10 * time.Minute
	waitGTIDGrace    = 30 * time.Second
	waitGTIDProgress = 5 * time.Second
)

var waitGTIDOutput = types.Map{
	"missing": types.String, "count": types.Int, "waited_ms": types.Int,
	"gtid_executed": types.String, "reference": types.String, "target": types.String,
}

func init() {
	engine.Register(engine.StepType{
		Name:       "wait-gtid",
		Summary:    "wait until a node's gtid_executed contains a GTID set (`gtid:` or another node's, `source:`); fails fast on replication errors",
		New:        func() engine.StepSpec { return &WaitGTIDStep{} },
		Output:     waitGTIDOutput,
		Idempotent: true,
	})
}

// Mutates is false: the step only reads.
func (s *WaitGTIDStep) Mutates() bool { return false }

// Check requires exactly one reference and valid literal durations.
func (s *WaitGTIDStep) Check(c *engine.Check) {
	switch {
	case s.GTID == nil && s.Source == nil:
		c.Errorf(c.StepPos(), "wait-gtid step %q needs the set to wait for: `gtid:` (an expression giving a GTID set) or `source:` (a MySQL connection whose gtid_executed is read at the start)", c.StepName())
	case s.GTID != nil && s.Source != nil:
		c.Errorf(c.StepPos(), "wait-gtid step %q has both `gtid:` and `source:`: give one reference", c.StepName())
	}
	checkDuration(c, "interval", s.Interval)
	checkDuration(c, "timeout", s.Timeout)
	checkDuration(c, "stopped_grace", s.StoppedGrace)
	checkDuration(c, "progress", s.Progress)
}

// checkDuration validates a literal duration field at load time.
func checkDuration(c *engine.Check, field string, v *engine.Value) {
	if v == nil || strings.Contains(v.Raw, "{{") {
		return
	}
	d, err := parseDuration(v.Raw)
	if err != nil {
		c.Errorf(v.Pos, "`%s: %s`: %v", field, v.Raw, err)
	} else if d <= 0 {
		c.Errorf(v.Pos, "`%s:` must be more than zero", field)
	}
}

// parseDuration reads "200ms", "5m", "1h30m".
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not a duration: write it with a unit, e.g. 500ms, 30s, 10m")
	}
	return d, nil
}

// durationValue evaluates a duration field (a literal, or a template giving
// a duration parameter or text); def when absent.
func durationValue(x *engine.Exec, field string, v *engine.Value, def time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	val, err := x.Value(v)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	switch t := val.(type) {
	case time.Duration:
		d = t
	case string:
		if d, err = parseDuration(t); err != nil {
			return 0, fmt.Errorf("`%s: %s`: %v", field, t, err)
		}
	default:
		return 0, fmt.Errorf("`%s:` gave %v (%T), not a duration such as 30s", field, val, val)
	}
	if d <= 0 {
		return 0, fmt.Errorf("`%s:` must be more than zero, not %s", field, d)
	}
	return d, nil
}

// renderDuration shows a duration field for plan and dry run.
func renderDuration(r *engine.Render, v *engine.Value, def time.Duration) string {
	if v == nil {
		return shortDuration(def)
	}
	out := r.Value(v)
	if d, err := parseDuration(out); err == nil {
		return shortDuration(d)
	}
	return out
}

// shortDuration writes 10m for 10m0s and 1h for 1h0m0s, as plan output,
// logs and the report write durations.
var shortDuration = durtext.Short

// Render describes the wait.
func (s *WaitGTIDStep) Render(r *engine.Render) ([]engine.Action, error) {
	var ref string
	if s.Source != nil {
		ref = "@@GLOBAL.gtid_executed of " + r.MySQLTarget(&s.Source.MySQLTarget) + ", read once at the start"
	} else {
		ref = clipGTID(flatGTID(r.Expr(s.GTID)), 300)
	}
	text := fmt.Sprintf("wait until @@GLOBAL.gtid_executed contains %s\n(poll every %s, timeout %s; fail at once on a replication error, after %s if the applier stays stopped)",
		ref, renderDuration(r, s.Interval, waitGTIDInterval), renderDuration(r, s.Timeout, waitGTIDTimeout), renderDuration(r, s.StoppedGrace, waitGTIDGrace))
	return []engine.Action{{Target: r.MySQLTarget(&s.MySQLTarget), Text: text}}, nil
}

// Statements wait-gtid runs.
const (
	qGTIDExecuted   = "SELECT @@GLOBAL.gtid_executed"
	qApplierStatus  = "SELECT CHANNEL_NAME, SERVICE_STATE FROM performance_schema.replication_applier_status"
	qWorkerErrors   = "SELECT CHANNEL_NAME, WORKER_ID, SERVICE_STATE, LAST_ERROR_NUMBER, LAST_ERROR_MESSAGE FROM performance_schema.replication_applier_status_by_worker WHERE LAST_ERROR_NUMBER <> 0"
	qCoordErrors    = "SELECT CHANNEL_NAME, SERVICE_STATE, LAST_ERROR_NUMBER, LAST_ERROR_MESSAGE FROM performance_schema.replication_applier_status_by_coordinator WHERE LAST_ERROR_NUMBER <> 0"
	qReceiverStatus = "SELECT CHANNEL_NAME, SERVICE_STATE, LAST_ERROR_NUMBER, LAST_ERROR_MESSAGE, RECEIVED_TRANSACTION_SET FROM performance_schema.replication_connection_status"
)

// waiter holds one run of the step.
type waiter struct {
	x       *engine.Exec
	db      *sql.DB
	target  string
	logged  map[string]bool
	polls   int
	noPerfS bool // performance_schema is not readable: no fail-fast
}

// debugOnce logs a polled statement the first time it runs (a poll repeats
// it every interval; the log says so once instead of hundreds of times).
func (w *waiter) debugOnce(q string, every time.Duration) {
	if !w.logged[q] {
		w.logged[q] = true
		w.x.Debugf("%s   (repeated every %s while waiting)", q, every)
	}
}

// waitTimes are a wait's bounds and rhythm, evaluated once at its start.
type waitTimes struct {
	interval, timeout, grace, every time.Duration
}

// times evaluates the step's interval, timeout, stopped_grace and progress.
func (s *WaitGTIDStep) times(x *engine.Exec) (waitTimes, error) {
	var t waitTimes
	var err error
	if t.interval, err = durationValue(x, "interval", s.Interval, x.Interval(waitGTIDInterval)); err != nil {
		return t, err
	}
	if t.timeout, err = durationValue(x, "timeout", s.Timeout, waitGTIDTimeout); err != nil {
		return t, err
	}
	if t.grace, err = durationValue(x, "stopped_grace", s.StoppedGrace, waitGTIDGrace); err != nil {
		return t, err
	}
	if t.every, err = durationValue(x, "progress", s.Progress, waitGTIDProgress); err != nil {
		return t, err
	}
	return t, nil
}

// waitState is one wait's state from poll to poll: what is missing, since
// when the target cannot make progress, and what was last reported.
type waitState struct {
	s *WaitGTIDStep
	w *waiter
	t waitTimes
	// ref is the set waited for; refName and refDesc name it in messages.
	ref              gtid.Set
	refName, refDesc string
	start            time.Time
	missing          gtid.Set
	count            uint64
	// stuckSince is when the target stopped being able to make progress
	// (or to be reached), stuckWhy why.
	stuckSince time.Time
	stuckWhy   string
	// lastReport and reportCount are the last progress log line's time and
	// count; rate the rate it gave.
	lastReport  time.Time
	reportCount uint64
	rate        float64
	first       bool
	view        catchUp // the progress view's rate and estimate
}

// Run waits: it polls the target's gtid_executed every interval until it
// contains the reference set, failing at once on a replication error, after
// stopped_grace when the target cannot make progress or be reached, and at
// the timeout.
func (s *WaitGTIDStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	t, err := s.times(x)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	parent := ctx
	if dl, ok := parent.Deadline(); ok && time.Until(dl) < t.timeout {
		t.timeout = time.Until(dl).Round(time.Millisecond) // the step's own `timeout:` is shorter
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()

	ref, refName, err := s.reference(ctx, x)
	if err != nil {
		return nil, err
	}
	refDesc := fmt.Sprintf("%s (%d transaction(s))", refName, ref.Count())
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	w := &waiter{x: x, db: db, target: target, logged: map[string]bool{}}
	if ref.IsEmpty() {
		x.Infof("%s: the reference GTID set (%s) is empty: nothing to wait for", target, refDesc)
	}
	st := &waitState{s: s, w: w, t: t, ref: ref, refName: refName, refDesc: refDesc, start: start, lastReport: start, first: true}
	for {
		w.polls++
		executed, err := w.gtidExecuted(ctx, t.interval)
		now := time.Now()
		if err != nil {
			if err := st.pollFailed(ctx, parent, now, err); err != nil {
				return nil, err
			}
		} else {
			done, err := st.polled(ctx, now, executed)
			if err != nil {
				return nil, err
			}
			if done {
				return st.done(executed), nil
			}
		}
		tm := time.NewTimer(t.interval)
		select {
		case <-ctx.Done():
			tm.Stop()
			if errors.Is(parent.Err(), context.Canceled) {
				return nil, st.interrupted(parent)
			}
			return nil, s.timeoutError(target, refDesc, t.timeout, st.missing, st.count, st.rate, st.stuckWhy)
		case <-tm.C:
		}
	}
}

// interrupted is the error of a wait the operator interrupted.
func (st *waitState) interrupted(parent context.Context) error {
	if st.first {
		return fmt.Errorf("%s: interrupted while waiting for %s: %v", st.w.target, st.refDesc, parent.Err())
	}
	return fmt.Errorf("%s: interrupted while waiting for %s, %d of them still missing: %v", st.w.target, st.refDesc, st.count, parent.Err())
}

// pollFailed judges a poll that could not read gtid_executed: an
// interruption, the timeout or a permanent error ends the wait; an
// unreachable or restarting server is waited for up to stopped_grace.
func (st *waitState) pollFailed(ctx, parent context.Context, now time.Time, err error) error {
	x, target := st.w.x, st.w.target
	if errors.Is(parent.Err(), context.Canceled) {
		return st.interrupted(parent)
	}
	if ctx.Err() != nil {
		return st.s.timeoutError(target, st.refDesc, st.t.timeout, st.missing, st.count, st.rate, "the last poll failed: "+x.Mask(err.Error()))
	}
	if permanent(err) {
		return fmt.Errorf("%s: `%s`: %s", target, qGTIDExecuted, x.Mask(err.Error()))
	}
	// the server is unreachable or shutting down: it may come back (a restart)
	if st.stuckSince.IsZero() {
		st.stuckSince = now
		x.Warnf("%s: cannot read gtid_executed (%v): retrying for up to %s", target, x.Mask(err.Error()), shortDuration(st.t.grace))
	}
	if now.Sub(st.stuckSince) >= st.t.grace {
		return fmt.Errorf("%s: unreachable for %s while waiting for %s: %s", target, now.Sub(st.stuckSince).Round(time.Millisecond), st.refDesc, x.Mask(err.Error()))
	}
	return nil
}

// polled takes a poll's gtid_executed: done when nothing is missing; an
// error when replication failed or the target cannot catch up by itself.
// It reports progress on the way.
func (st *waitState) polled(ctx context.Context, now time.Time, executed gtid.Set) (done bool, err error) {
	x, target := st.w.x, st.w.target
	st.missing = st.ref.Subtract(executed)
	prev := st.count
	st.count = st.missing.Count()
	if st.missing.IsEmpty() {
		return true, nil
	}
	if st.first {
		st.first = false
		st.reportCount = st.count
		x.Infof("%s: waiting for it to apply %s: %d transaction(s) missing (timeout %s)", target, st.refDesc, st.count, shortDuration(st.t.timeout))
		x.Event(event.GTIDWaitStarted, map[string]any{"target": target, "missing_count": st.count,
			"reference": clipGTID(flatGTID(st.ref.String()), 200), "timeout_ms": st.t.timeout.Milliseconds()})
	}
	st.showProgress(now)
	why, fatal := st.w.health(ctx, st.t.interval, st.missing, executed)
	if fatal != nil {
		return false, fmt.Errorf("%s: replication stopped with an error while %d transaction(s) of %s are missing (%s): %s",
			target, st.count, st.refDesc, clipGTID(flatGTID(st.missing.String()), 200), x.Mask(fatal.Error()))
	}
	if err := st.stuck(now, why, st.count < prev); err != nil {
		return false, err
	}
	st.logProgress(now)
	return false, nil
}

// done is the step's output once the target has applied the reference set.
func (st *waitState) done(executed gtid.Set) map[string]any {
	x, target := st.w.x, st.w.target
	waited := time.Since(st.start)
	x.Infof("%s has applied %s after %s", target, st.refDesc, waited.Round(time.Millisecond))
	x.Event(event.GTIDWaitDone, map[string]any{"target": target, "waited_ms": waited.Milliseconds(), "polls": st.w.polls})
	x.Debugf("%s: polled %d time(s)", target, st.w.polls)
	return map[string]any{"reference": flatGTID(st.ref.String()), "target": target,
		"missing": "", "count": 0, "waited_ms": int(waited.Milliseconds()), "gtid_executed": flatGTID(executed.String())}
}

// showProgress feeds the progress view (rate, estimate, what is waited for).
func (st *waitState) showProgress(now time.Time) {
	if !st.view.update(now, st.count) {
		return
	}
	f := map[string]any{"target": st.w.target, "missing": st.count, "rate": st.view.rate, "rate_unit": "trx/s",
		"waits_for": fmt.Sprintf("%s to apply %d missing transaction(s) of %s", st.w.target, st.count, st.refName)}
	if eta, ok := st.view.eta(st.count); ok {
		f["eta_s"] = eta
	}
	st.w.x.Progress(f)
}

// stuck follows why the target cannot make progress (why is empty when it
// can): an error once that lasted stopped_grace without progress.
func (st *waitState) stuck(now time.Time, why string, progressed bool) error {
	switch {
	case why == "" || progressed:
		st.stuckSince, st.stuckWhy = time.Time{}, ""
	case st.stuckSince.IsZero():
		st.stuckSince, st.stuckWhy = now, why
		st.w.x.Warnf("%s cannot make progress: %s; %d transaction(s) still missing; waiting up to %s for that to change", st.w.target, why, st.count, shortDuration(st.t.grace))
	default:
		st.stuckWhy = why
		if now.Sub(st.stuckSince) >= st.t.grace {
			return fmt.Errorf("%s will not catch up by itself: %s (for %s); %d transaction(s) of %s are still missing: %s; start replication (START REPLICA) and run the step again",
				st.w.target, st.stuckWhy, now.Sub(st.stuckSince).Round(time.Millisecond), st.count, st.refDesc, clipGTID(flatGTID(st.missing.String()), 200))
		}
	}
	return nil
}

// logProgress logs, every `progress:`, how many transactions are missing,
// the rate they are applied at and the estimate.
func (st *waitState) logProgress(now time.Time) {
	since := now.Sub(st.lastReport)
	if since < st.t.every {
		return
	}
	applied := float64(0)
	if st.reportCount > st.count {
		applied = float64(st.reportCount - st.count)
	}
	st.rate = applied / since.Seconds()
	eta := "unknown"
	if st.rate > 0 {
		eta = time.Duration(float64(st.count) / st.rate * float64(time.Second)).Round(time.Second).String()
	}
	msg := fmt.Sprintf("%s: %d transaction(s) missing, applying %.1f trx/s (ETA %s), waited %s", st.w.target, st.count, st.rate, eta, roundDuration(now.Sub(st.start)))
	if st.stuckWhy != "" {
		msg += "; " + st.stuckWhy
	}
	st.w.x.Infof("%s", msg)
	st.w.x.Event(event.GTIDWaitProgress, map[string]any{"target": st.w.target, "missing_count": st.count, "rate_trx_s": st.rate, "waited_ms": now.Sub(st.start).Milliseconds()})
	st.lastReport, st.reportCount = now, st.count
}

// catchUp follows a wait's catch-up for the progress view: a report at the
// first poll, then at most once a second, with the rate of transactions
// applied, smoothed over the reports.
type catchUp struct {
	at      time.Time // the last report
	count   uint64    // the transactions missing then
	rate    float64   // transactions applied per second, smoothed
	reports int
}

// Progress reports of wait-gtid: at most one a second, the rate smoothed
// exponentially (each new second weighs catchUpWeight).
const (
	catchUpEvery  = time.Second
	catchUpWeight = 0.3
)

// update takes the count of missing transactions at now and reports
// whether a progress report is due.
func (c *catchUp) update(now time.Time, count uint64) bool {
	if c.reports == 0 {
		c.at, c.count, c.reports = now, count, 1
		return true
	}
	dt := now.Sub(c.at)
	if dt < catchUpEvery {
		return false
	}
	applied := 0.0
	if c.count > count {
		applied = float64(c.count - count)
	}
	sample := applied / dt.Seconds()
	if c.reports == 1 {
		c.rate = sample
	} else {
		c.rate = catchUpWeight*sample + (1-catchUpWeight)*c.rate
	}
	c.at, c.count = now, count
	c.reports++
	return true
}

// eta is the estimate in seconds for count missing transactions at the
// current rate (false while nothing has been applied).
func (c *catchUp) eta(count uint64) (float64, bool) {
	if c.rate <= 0 {
		return 0, false
	}
	return float64(count) / c.rate, true
}

// timeoutError says what is still missing when the wait runs out.
func (s *WaitGTIDStep) timeoutError(target, refDesc string, timeout time.Duration, missing gtid.Set, count uint64, rate float64, extra string) error {
	msg := fmt.Sprintf("%s has not applied %s within %s (timeout): %d transaction(s) still missing: %s", target, refDesc, shortDuration(timeout), count, clipGTID(flatGTID(missing.String()), 300))
	if rate > 0 {
		msg += fmt.Sprintf(" (it was applying %.1f trx/s: raise `timeout:`?)", rate)
	}
	if extra != "" {
		msg += "; " + extra
	}
	return errors.New(msg)
}

// reference evaluates the set to wait for and names it.
func (s *WaitGTIDStep) reference(ctx context.Context, x *engine.Exec) (gtid.Set, string, error) {
	if s.Source != nil {
		db, label, err := x.MySQL(ctx, &s.Source.MySQLTarget)
		if err != nil {
			return gtid.Set{}, "", err
		}
		x.Debugf("%s", qGTIDExecuted)
		var text string
		if err := db.QueryRowContext(ctx, qGTIDExecuted).Scan(&text); err != nil {
			return gtid.Set{}, "", fmt.Errorf("%s: `%s`: %s", label, qGTIDExecuted, x.Mask(err.Error()))
		}
		set, err := gtid.Parse(text)
		if err != nil {
			return gtid.Set{}, "", fmt.Errorf("%s: gtid_executed: %v", label, err)
		}
		x.Infof("reference: gtid_executed of %s: %s", label, clipGTID(flatGTID(set.String()), 300))
		return set, "the gtid_executed of " + label, nil
	}
	v, err := x.Eval(s.GTID)
	if err != nil {
		return gtid.Set{}, "", err
	}
	text, ok := v.(string)
	if !ok {
		return gtid.Set{}, "", fmt.Errorf("%s: `gtid: %s` gave %T, not a GTID set (text)", s.GTID.Pos, s.GTID.Src, v)
	}
	set, err := gtid.Parse(text)
	if err != nil {
		return gtid.Set{}, "", fmt.Errorf("%s: `gtid: %s`: %v", s.GTID.Pos, s.GTID.Src, err)
	}
	return set, fmt.Sprintf("`%s`", oneLine(s.GTID.Src)), nil
}

// gtidExecuted reads and parses the node's gtid_executed.
func (w *waiter) gtidExecuted(ctx context.Context, every time.Duration) (gtid.Set, error) {
	w.debugOnce(qGTIDExecuted, every)
	var text string
	if err := w.db.QueryRowContext(ctx, qGTIDExecuted).Scan(&text); err != nil {
		return gtid.Set{}, err
	}
	set, err := gtid.Parse(text)
	if err != nil {
		return gtid.Set{}, &permanentError{fmt.Errorf("unparsable gtid_executed: %v", err)}
	}
	return set, nil
}

// permanentError is an error that waiting does not cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent reports whether retrying cannot help: a bad answer, or the
// server refusing the account or the statement (as opposed to being down or
// restarting).
func permanent(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1064, 1142, 1227, 1370:
			return true
		}
	}
	return false
}

// channel is the replication state of one channel.
type channel struct {
	name        string
	applier     string // ON / OFF ("" when unknown)
	applierErr  string
	receiver    string // ON / OFF / CONNECTING
	receiverNo  int
	receiverErr string
	received    gtid.Set
}

func (c *channel) label() string {
	if c.name == "" {
		return "the default channel"
	}
	return fmt.Sprintf("channel %q", c.name)
}

// health reads the node's replication state (channels) and judges it
// (judgeChannels). fatal is set when replication stopped with an error
// that leaves transactions of the reference behind; why is set when
// nothing can currently make progress (no error).
func (w *waiter) health(ctx context.Context, every time.Duration, missing, executed gtid.Set) (why string, fatal error) {
	if w.noPerfS {
		return "", nil
	}
	chans, err := w.channels(ctx, every)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1142 || me.Number == 1227 || me.Number == 1044) {
			w.noPerfS = true
			w.x.Warnf("%s: cannot read replication state from performance_schema (%s): waiting without failing fast on replication errors", w.target, w.x.Mask(err.Error()))
			return "", nil
		}
		return "cannot read the replication state: " + w.x.Mask(err.Error()), nil
	}
	return judgeChannels(chans, missing, executed)
}

// channels reads each replication channel's applier and receiver state
// and their last errors from performance_schema.
func (w *waiter) channels(ctx context.Context, every time.Duration) (map[string]*channel, error) {
	chans := map[string]*channel{}
	get := func(name string) *channel {
		c, ok := chans[name]
		if !ok {
			c = &channel{name: name}
			chans[name] = c
		}
		return c
	}
	err := w.query(ctx, every, qApplierStatus, func(r *sql.Rows) error {
		var name, state string
		if err := r.Scan(&name, &state); err != nil {
			return err
		}
		get(name).applier = state
		return nil
	})
	if err == nil {
		err = w.query(ctx, every, qWorkerErrors, func(r *sql.Rows) error {
			var name, state, msg string
			var worker sql.NullInt64
			var no int
			if err := r.Scan(&name, &worker, &state, &no, &msg); err != nil {
				return err
			}
			c := get(name)
			if c.applierErr == "" {
				c.applierErr = fmt.Sprintf("worker %d: error %d: %s", worker.Int64, no, msg)
			}
			return nil
		})
	}
	if err == nil {
		err = w.query(ctx, every, qCoordErrors, func(r *sql.Rows) error {
			var name, state, msg string
			var no int
			if err := r.Scan(&name, &state, &no, &msg); err != nil {
				return err
			}
			c := get(name)
			if c.applierErr == "" { // the worker's error names the cause; the coordinator's only says a worker failed
				c.applierErr = fmt.Sprintf("coordinator: error %d: %s", no, msg)
			}
			return nil
		})
	}
	if err == nil {
		err = w.query(ctx, every, qReceiverStatus, func(r *sql.Rows) error {
			var name, state, msg string
			var no int
			var recv sql.NullString
			if err := r.Scan(&name, &state, &no, &msg, &recv); err != nil {
				return err
			}
			c := get(name)
			c.receiver, c.receiverNo, c.receiverErr = state, no, msg
			if recv.Valid {
				if set, err := gtid.Parse(recv.String); err == nil {
					c.received = set
				}
			}
			return nil
		})
	}
	return chans, err
}

// judgeChannels says whether any channel can still deliver and apply what
// is missing: fatal when replication stopped with an error that leaves
// missing transactions behind, why when none can make progress now.
func judgeChannels(chans map[string]*channel, missing, executed gtid.Set) (why string, fatal error) {
	names := make([]string, 0, len(chans))
	for n := range chans {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "it has no replication channel (it is not a replica)", nil
	}
	var stuck []string
	var receiverFatal []string
	for _, n := range names {
		c := chans[n]
		if c.applier != "ON" {
			if c.applierErr != "" {
				return "", fmt.Errorf("the replication applier (SQL thread) of %s stopped with %s", c.label(), clipText(c.applierErr, 600))
			}
			stuck = append(stuck, fmt.Sprintf("the replication applier (SQL thread) of %s is stopped (no error)", c.label()))
			continue
		}
		if c.receiver == "ON" {
			return "", nil // this channel can deliver and apply
		}
		notReceived := missing.Subtract(executed.Union(c.received))
		if notReceived.IsEmpty() {
			return "", nil // everything missing is in the relay log: the applier will get there
		}
		switch {
		case c.receiver == "OFF" && c.receiverNo != 0:
			receiverFatal = append(receiverFatal, fmt.Sprintf("the replication receiver (I/O thread) of %s stopped with error %d: %s; %d missing transaction(s) were never received",
				c.label(), c.receiverNo, clipText(c.receiverErr, 600), notReceived.Count()))
		case c.receiverNo != 0:
			stuck = append(stuck, fmt.Sprintf("the replication receiver (I/O thread) of %s is %s, last error %d: %s", c.label(), c.receiver, c.receiverNo, clipText(c.receiverErr, 300)))
		default:
			stuck = append(stuck, fmt.Sprintf("the replication receiver (I/O thread) of %s is %s and %d missing transaction(s) were never received", c.label(), c.receiver, notReceived.Count()))
		}
	}
	if len(receiverFatal) > 0 {
		return "", errors.New(strings.Join(receiverFatal, "; "))
	}
	return strings.Join(stuck, "; "), nil
}

// query runs a polled statement and scans each row.
func (w *waiter) query(ctx context.Context, every time.Duration, q string, scan func(*sql.Rows) error) error {
	w.debugOnce(q, every)
	rows, err := w.db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// roundDuration rounds for a log line: tens of milliseconds below ten
// seconds, seconds above.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// flatGTID removes the newlines MySQL puts between a set's UUIDs.
func flatGTID(s string) string { return strings.ReplaceAll(s, "\n", "") }

// clipGTID shortens a GTID set's text to about n bytes at a UUID boundary,
// saying how many UUIDs were left out.
func clipGTID(s string, n int) string {
	if len(s) <= n {
		return s
	}
	parts := strings.Split(s, ",")
	var b strings.Builder
	shown := 0
	for _, p := range parts {
		if b.Len() > 0 && b.Len()+len(p)+1 > n {
			break
		}
		if b.Len() == 0 && len(p) > n {
			b.WriteString(p[:n] + "…")
			shown++
			break
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p)
		shown++
	}
	if left := len(parts) - shown; left > 0 {
		fmt.Fprintf(&b, ",… (%d more UUID(s))", left)
	}
	return b.String()
}

// clipText shortens a server message to n runes.
func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
