package drlab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The workload's table, written through the routers: WorkloadSchema.WorkloadTable.
const (
	// WorkloadSchema is the workload's schema.
	WorkloadSchema = "flowlab"
	// WorkloadTable is the workload's table.
	WorkloadTable = "seq"
)

// Bounds of the workload.
const (
	// DefaultMaxRows bounds the rows of one Write unless MaxRows says
	// otherwise.
	DefaultMaxRows = 100000
	// MaxWriteDuration bounds WriteOptions.Duration.
	MaxWriteDuration = time.Hour
)

// WriteOptions configure Write.
type WriteOptions struct {
	// Cluster is whose router to write through: ClusterPrimary or
	// ClusterStandby for the cluster holding that role NOW (read from the
	// routers, see Roles), BuiltPrimary or BuiltStandby for a cluster as
	// built; "" is the current primary.
	Cluster string
	// Duration bounds the workload's time (required, at most an hour).
	Duration time.Duration
	// MaxRows bounds the rows written (default DefaultMaxRows).
	MaxRows int
	// Rate is rows per second (0: as fast as the router answers).
	Rate int
}

// WriteResult is what Write wrote.
type WriteResult struct {
	// Cluster is the built name of the cluster written through (also what
	// the rows' cluster column holds); Role its role when the write began
	// ("" when the roles were unknown and a built name was given).
	Cluster string `json:"cluster"`
	Role    string `json:"role"`
	Router  string `json:"router"`
	Rows    int    `json:"rows"`
	// FirstSeq and LastSeq are the sequence numbers written (0 when none).
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Duration is the workload's wall time.
	Duration time.Duration `json:"duration_ns"`
}

// ErrReadOnly is wrapped by Write's error when the router refused the
// write because it is read-only (the standby outside a drill).
var ErrReadOnly = errors.New("the router is read-only")

// clusterLabel names a cluster in messages by its built name and, when it
// differs, its current role: "standby" or "standby (now primary)".
func clusterLabel(built, role string) string {
	switch {
	case role == "":
		return built + " (role unknown)"
	case role != built:
		return built + " (now " + role + ")"
	}
	return built
}

// Write runs a small bounded workload through a cluster's router
// (go-sql-driver, interpolateParams=true): it creates flowlab.seq(id
// BIGINT AUTO_INCREMENT PRIMARY KEY, seq BIGINT UNIQUE, cluster
// VARCHAR(16), written_at DATETIME(6)) if missing, then inserts one row per
// statement with sequence numbers continuing after the largest one that
// cluster holds, until Duration or MaxRows. The cluster is chosen by its
// current role unless a built name is given (see WriteOptions.Cluster), so
// that after a switchover "the primary" is the cluster that takes writes.
// It returns what it wrote also when it fails part-way (with the error).
func (l *Lab) Write(ctx context.Context, o WriteOptions) (*WriteResult, error) {
	if !ValidCluster(o.Cluster) {
		return nil, fmt.Errorf("cluster %q: use %s or %s (the current roles) or %s or %s (as built)", o.Cluster, ClusterPrimary, ClusterStandby, BuiltPrimary, BuiltStandby)
	}
	if o.Duration <= 0 || o.Duration > MaxWriteDuration {
		return nil, fmt.Errorf("write duration %s: give 1s to %s", o.Duration, MaxWriteDuration)
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("rate %d: give rows per second, or 0 for no limit", o.Rate)
	}
	built, role, err := l.ResolveCluster(ctx, o.Cluster)
	if err != nil {
		return nil, err
	}
	r := l.Router(built)
	res := &WriteResult{Cluster: built, Role: role, Router: r.Addr()}
	label := clusterLabel(built, role)
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	db, err := l.OpenRouter(built)
	if err != nil {
		return res, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("connect to the %s router %s: %w", label, r.Addr(), err)
	}
	defer conn.Close()
	refused := func(what string, err error) error {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1290 {
			return fmt.Errorf("%w: the %s router %s refused to %s: %v (a standby cluster is read-only unless a drill opened it)", ErrReadOnly, label, r.Addr(), what, err)
		}
		return fmt.Errorf("the %s router %s: %s: %w", label, r.Addr(), what, err)
	}

	next, what, err := prepareWorkload(ctx, conn)
	if err != nil {
		return res, refused(what, err)
	}
	deadline := start.Add(o.Duration)
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(o.Rate))
		defer t.Stop()
		tick = t.C
	}
	for res.Rows < o.MaxRows && time.Now().Before(deadline) {
		if _, err := conn.ExecContext(ctx, insertRow, next, built); err != nil {
			return res, refused(fmt.Sprintf("insert seq %d", next), err)
		}
		if res.FirstSeq == 0 {
			res.FirstSeq = next
		}
		res.LastSeq = next
		res.Rows++
		next++
		if tick != nil {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-tick:
			}
		}
	}
	return res, nil
}

// insertRow is the workload's statement: one row (seq, cluster, now).
const insertRow = "INSERT INTO " + WorkloadSchema + "." + WorkloadTable + " (seq, cluster, written_at) VALUES (?, ?, NOW(6))"

// prepareWorkload creates the workload's table through a router if it is
// missing and returns the next sequence number (after the largest one the
// router's cluster holds); on an error, what says what failed.
func prepareWorkload(ctx context.Context, conn interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (next int64, what string, err error) {
	var exists int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
		WorkloadSchema, WorkloadTable).Scan(&exists); err != nil {
		return 0, "look for " + WorkloadSchema + "." + WorkloadTable, err
	}
	if exists == 0 {
		for _, q := range []string{
			"CREATE DATABASE IF NOT EXISTS " + WorkloadSchema,
			"CREATE TABLE IF NOT EXISTS " + WorkloadSchema + "." + WorkloadTable + ` (
				id BIGINT AUTO_INCREMENT PRIMARY KEY,
				seq BIGINT NOT NULL UNIQUE,
				cluster VARCHAR(16) NOT NULL,
				written_at DATETIME(6) NOT NULL)`,
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return 0, "create " + WorkloadSchema + "." + WorkloadTable, err
			}
		}
	}
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM "+WorkloadSchema+"."+WorkloadTable).Scan(&next); err != nil {
		return 0, "read the largest sequence number", err
	}
	return next + 1, "", nil
}
