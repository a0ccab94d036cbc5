package drlab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Bounds of the follow writer (see Follow).
const (
	// followStmtTimeout bounds one statement of the follow writer: a
	// router that stops answering costs at most this much per try.
	followStmtTimeout = 2 * time.Second
	// followBackoffMin and followBackoffMax bound the pause after both
	// routers refused a write in a row: the writer busy-polls, so the
	// outage it measures is accurate to about followBackoffMax.
	followBackoffMin = 5 * time.Millisecond
	followBackoffMax = 20 * time.Millisecond
)

// Error kinds of the follow writer (FollowResult.ErrorsByKind).
const (
	// FollowReadOnly: the router refused the write as read-only (1290).
	FollowReadOnly = "read_only"
	// FollowConnection: no answer (connection refused, lost, timed out):
	// the row may or may not be stored (see FollowResult.InDoubt).
	FollowConnection = "connection"
	// FollowDuplicate: the sequence number was already stored (1062), e.g.
	// by a try whose OK was lost; the writer moves on to the next one.
	FollowDuplicate = "duplicate"
	// FollowOther: any other MySQL error ("other_NNNN" by code).
	FollowOther = "other"
)

// FollowOptions configure Follow.
type FollowOptions struct {
	// Duration bounds the workload's time (required, at most an hour).
	Duration time.Duration
	// MaxRows bounds the rows acknowledged (default DefaultMaxRows).
	MaxRows int
	// Rate is rows per second (0: as fast as the routers answer). The
	// outage Follow measures cannot be shorter than one interval.
	Rate int
}

// FollowSegment is a run of consecutive sequence numbers acknowledged
// through one router.
type FollowSegment struct {
	// Cluster is the built name of the cluster written through (the rows'
	// cluster column), Router its address.
	Cluster  string    `json:"cluster"`
	Router   string    `json:"router"`
	FirstSeq int64     `json:"first_seq"`
	LastSeq  int64     `json:"last_seq"`
	Rows     int       `json:"rows"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
}

// WriteGap is the time between two consecutive acknowledged writes.
type WriteGap struct {
	// Duration is End-Start; Millis the same in milliseconds.
	Duration time.Duration `json:"duration_ns"`
	Millis   float64       `json:"ms"`
	// Start is when the write before the gap was acknowledged, End when
	// the one after it was.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// SeqBefore and SeqAfter are those writes' sequence numbers,
	// ClusterBefore and ClusterAfter the (built) clusters they went to.
	SeqBefore     int64  `json:"seq_before"`
	SeqAfter      int64  `json:"seq_after"`
	ClusterBefore string `json:"cluster_before"`
	ClusterAfter  string `json:"cluster_after"`
	// Errors is how many writes failed inside the gap.
	Errors int `json:"errors"`
}

// FollowResult is what Follow wrote and measured. Its JSON form is `flow
// lab write --follow --json`; `flow lab check --acked FILE` reads it back.
type FollowResult struct {
	// Rows is the number of writes acknowledged with OK, FirstSeq and
	// LastSeq their range (0 when none).
	Rows     int   `json:"rows"`
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Errors counts the failed writes, ErrorsByKind by FollowReadOnly,
	// FollowConnection, FollowDuplicate and other_NNNN.
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	// LastError is the last failure's message (passwords never appear).
	LastError string `json:"last_error,omitempty"`
	// Segments are the acknowledged sequence numbers, run by run and
	// router by router, in order: every row the writer got an OK for.
	Segments []FollowSegment `json:"segments"`
	// Switches is how many times the acknowledged writes moved to the
	// other cluster.
	Switches int `json:"switches"`
	// LongestGap is the write outage: the longest time between two
	// consecutive acknowledged writes (zero with fewer than two).
	LongestGap WriteGap `json:"longest_gap"`
	// InDoubt are sequence numbers whose write got no answer and were not
	// written again: they may or may not be stored (none unless a router
	// or connection died mid-write).
	InDoubt []int64 `json:"in_doubt"`
	// Stopped is true when the context ended the workload (Ctrl-C) before
	// Duration or MaxRows.
	Stopped  bool          `json:"stopped"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
}

// Acked returns the acknowledged sequence numbers as ranges (for
// CheckOptions.Acked).
func (r *FollowResult) Acked() []SeqRange {
	out := make([]SeqRange, 0, len(r.Segments))
	for _, s := range r.Segments {
		out = append(out, SeqRange{First: s.FirstSeq, Last: s.LastSeq})
	}
	return out
}

// classifyWriteError sorts a failed write: its kind (see FollowResult)
// and whether the row may have been stored all the same.
func classifyWriteError(err error) (kind string, inDoubt bool) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1290:
			return FollowReadOnly, false
		case 1062:
			return FollowDuplicate, false
		}
		return fmt.Sprintf("%s_%d", FollowOther, me.Number), false
	}
	return FollowConnection, true
}

// gapTracker follows the acknowledged writes and keeps the longest gap.
type gapTracker struct {
	res       *FollowResult
	lastAt    time.Time
	lastSeq   int64
	lastClu   string
	errsSince int
}

// ack records an acknowledged write of seq through a router at time at.
func (g *gapTracker) ack(seq int64, cluster, router string, at time.Time) {
	r := g.res
	if !g.lastAt.IsZero() {
		if d := at.Sub(g.lastAt); d > r.LongestGap.Duration {
			r.LongestGap = WriteGap{Duration: d, Millis: float64(d.Microseconds()) / 1000, Start: g.lastAt, End: at,
				SeqBefore: g.lastSeq, SeqAfter: seq, ClusterBefore: g.lastClu, ClusterAfter: cluster, Errors: g.errsSince}
		}
		if cluster != g.lastClu {
			r.Switches++
		}
	}
	n := len(r.Segments)
	if n > 0 && r.Segments[n-1].Router == router && r.Segments[n-1].LastSeq == seq-1 {
		s := &r.Segments[n-1]
		s.LastSeq, s.LastAt = seq, at
		s.Rows++
	} else {
		r.Segments = append(r.Segments, FollowSegment{Cluster: cluster, Router: router, FirstSeq: seq, LastSeq: seq, Rows: 1, FirstAt: at, LastAt: at})
	}
	if r.FirstSeq == 0 {
		r.FirstSeq = seq
	}
	r.LastSeq = seq
	r.Rows++
	g.lastAt, g.lastSeq, g.lastClu, g.errsSince = at, seq, cluster, 0
}

// fail records a failed write.
func (g *gapTracker) fail(kind string, err error, secrets []string) {
	g.res.Errors++
	g.res.ErrorsByKind[kind]++
	g.res.LastError = redactSecret(err.Error(), secrets...)
	g.errsSince++
}

// Follow is a writer that survives a switchover, to measure the write
// outage: it inserts workload rows (as Write does) for o.Duration, starting
// through the current primary's router; when a write fails (read-only
// refusal, no connection) it tries the other router, then the first
// again, busy-polling with a 5-20 ms pause after each round of two
// refusals, and goes on through whichever router takes writes. Sequence
// numbers continue across routers (a refused one is written again; the
// rows' cluster column says where it went). It returns every acknowledged
// row (by runs), the errors, and the longest gap between two consecutive
// acknowledged writes (the outage). A cancelled ctx (Ctrl-C) ends it
// cleanly after the statement under way: the result is returned with
// Stopped set and no error. An error is returned only when no router
// could be prepared for the workload before the time was up.
func (l *Lab) Follow(ctx context.Context, o FollowOptions) (*FollowResult, error) {
	if o.Duration <= 0 || o.Duration > MaxWriteDuration {
		return nil, fmt.Errorf("write duration %s: give 1s to %s", o.Duration, MaxWriteDuration)
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("rate %d: give rows per second, or 0 for no limit", o.Rate)
	}
	res := &FollowResult{ErrorsByKind: map[string]int{}, Segments: []FollowSegment{}, InDoubt: []int64{}, Started: time.Now()}
	defer func() { res.Duration = time.Since(res.Started) }()
	deadline := res.Started.Add(o.Duration)
	secrets := []string{l.Credentials.PrimaryRouterPassword, l.Credentials.StandbyRouterPassword}

	// Both routers, the current primary's first (the built primary's when
	// the roles are unknown).
	order := []string{ClusterPrimary, ClusterStandby}
	if roles, err := l.Roles(ctx); err != nil {
		return res, err
	} else if roles.Known {
		order = []string{roles.Primary, roles.Standby}
	}
	dbs := make([]*sql.DB, 2)
	for i, c := range order {
		cfg := l.RouterConfig(c)
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, followStmtTimeout, followStmtTimeout
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return res, fmt.Errorf("%s router: %w", c, err)
		}
		dbs[i] = sql.OpenDB(conn)
		dbs[i].SetMaxOpenConns(1)
		defer dbs[i].Close()
	}
	stmt := func(parent context.Context) (context.Context, context.CancelFunc) {
		// The statement under way finishes even when ctx is cancelled: its
		// outcome is then known, not in doubt.
		return context.WithTimeout(context.WithoutCancel(parent), followStmtTimeout)
	}
	pause := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	// The table and the first sequence number, through whichever router
	// takes the set-up (SELECTs work on a read-only router; the CREATE,
	// only needed once, needs a writable one).
	cur := 0
	var next int64
	for tries := 0; ; tries++ {
		sctx, cancel := stmt(ctx)
		n, what, err := prepareWorkload(sctx, dbs[cur])
		cancel()
		if err == nil {
			next = n
			break
		}
		res.LastError = redactSecret(fmt.Sprintf("the %s router %s: %s: %v", order[cur], l.Router(order[cur]).Addr(), what, err), secrets...)
		if ctx.Err() != nil {
			res.Stopped = true
			return res, nil
		}
		if !time.Now().Before(deadline) {
			return res, errors.New(res.LastError)
		}
		cur = 1 - cur
		if tries%2 == 1 && !pause(followBackoffMax) {
			res.Stopped = true
			return res, nil
		}
	}

	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Second / time.Duration(o.Rate)
	}
	g := &gapTracker{res: res}
	inDoubt := map[int64]bool{}
	due := time.Now()
	failures, backoff := 0, followBackoffMin
	for res.Rows < o.MaxRows {
		if ctx.Err() != nil {
			res.Stopped = true
			break
		}
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		if failures == 0 && interval > 0 && now.Before(due) {
			if !pause(due.Sub(now)) {
				res.Stopped = true
				break
			}
		}
		c := order[cur]
		sctx, cancel := stmt(ctx)
		_, err := dbs[cur].ExecContext(sctx, insertRow, next, c)
		cancel()
		at := time.Now()
		if err == nil {
			delete(inDoubt, next)
			g.ack(next, c, l.Router(c).Addr(), at)
			next++
			failures, backoff = 0, followBackoffMin
			if due = due.Add(interval); due.Before(at) {
				due = at
			}
			continue
		}
		kind, doubt := classifyWriteError(err)
		g.fail(kind, err, secrets)
		if kind == FollowDuplicate {
			// Stored already (a try whose OK was lost, or another
			// writer): not acknowledged to us, and never written twice.
			delete(inDoubt, next)
			next++
			continue
		}
		if doubt {
			inDoubt[next] = true
		}
		failures++
		cur = 1 - cur
		if failures%2 == 0 {
			if !pause(backoff) {
				res.Stopped = true
				break
			}
			backoff = min(2*backoff, followBackoffMax)
		}
	}
	for s := range inDoubt {
		res.InDoubt = append(res.InDoubt, s)
	}
	sort.Slice(res.InDoubt, func(i, j int) bool { return res.InDoubt[i] < res.InDoubt[j] })
	return res, nil
}

// String prints a follow result for people: rows, errors, the outage.
func (r *FollowResult) String() string {
	var b strings.Builder
	seqs := "none"
	if r.Rows > 0 {
		seqs = fmt.Sprintf("seq %d-%d", r.FirstSeq, r.LastSeq)
	}
	fmt.Fprintf(&b, "follow write: %d rows OK (%s) in %.1fs, %d error(s)", r.Rows, seqs, r.Duration.Seconds(), r.Errors)
	if r.Errors > 0 {
		var kinds []string
		keys := make([]string, 0, len(r.ErrorsByKind))
		for k := range r.ErrorsByKind {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(&b, ", %d switch(es) of cluster", r.Switches)
	if r.Stopped {
		b.WriteString(", stopped early")
	}
	b.WriteString("\n")
	for _, s := range r.Segments {
		fmt.Fprintf(&b, "  seq %d-%d (%d rows) through the %s router %s, %s to %s\n", s.FirstSeq, s.LastSeq, s.Rows, s.Cluster, s.Router,
			s.FirstAt.Format("15:04:05.000"), s.LastAt.Format("15:04:05.000"))
	}
	if g := r.LongestGap; g.Duration > 0 {
		fmt.Fprintf(&b, "longest gap between two acknowledged writes (the write outage): %.1f ms, from seq %d (%s) at %s to seq %d (%s) at %s, %d failed write(s) in it\n",
			g.Millis, g.SeqBefore, g.ClusterBefore, g.Start.Format("15:04:05.000000"), g.SeqAfter, g.ClusterAfter, g.End.Format("15:04:05.000000"), g.Errors)
	}
	if len(r.InDoubt) > 0 {
		fmt.Fprintf(&b, "in doubt (no answer, maybe stored): seq %v\n", r.InDoubt)
	}
	if r.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", r.LastError)
	}
	return b.String()
}
