package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/lab/drlab"
)

// Floor is what one clone and one restart take alone on the lab, with
// nothing else running: the least a drill's start (a clone per recipient)
// and stop (a restart per recipient) can cost on this machine, shown
// beside their medians.
type Floor struct {
	// Clone is one CLONE INSTANCE … DATA DIRECTORY of a standby slave
	// into a new folder of another (the statement alone); Bytes what it
	// copied.
	Clone time.Duration
	Bytes int64
	// Shutdown is SHUTDOWN until mysqld exited, Start mysqld_safe until
	// the server answers: one restart of that standby slave.
	Shutdown, Start time.Duration
}

// measureFloor times the floor on the lab in dir. It leaves the lab as it
// found it: the clone's folder is removed and the slave is running again.
func measureFloor(ctx context.Context, dir string) (*Floor, error) {
	lab, err := drlab.Load(dir)
	if err != nil {
		return nil, err
	}
	var slaves []drlab.Node
	for _, n := range lab.Nodes {
		if n.Cluster == drlab.ClusterStandby && n.Shard == 0 && n.Index != drlab.MasterIndex(drlab.ClusterStandby) {
			slaves = append(slaves, n)
		}
	}
	if len(slaves) < 2 {
		return nil, fmt.Errorf("floor: the standby's shard 0 has %d slave(s), want 2", len(slaves))
	}
	rec, donor := slaves[0], slaves[1]
	rdb, err := lab.OpenNode(rec)
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	ddb, err := lab.OpenNode(donor)
	if err != nil {
		return nil, err
	}
	defer ddb.Close()
	for _, db := range []*sql.DB{rdb, ddb} {
		if err := ensureClonePlugin(ctx, db); err != nil {
			return nil, err
		}
	}
	target := filepath.Join(filepath.Dir(rec.InstanceDir), "bench-floor-clone")
	if err := os.RemoveAll(target); err != nil {
		return nil, err
	}
	defer os.RemoveAll(target)
	if _, err := rdb.ExecContext(ctx, "SET GLOBAL clone_valid_donor_list = ?", donor.Addr()); err != nil {
		return nil, fmt.Errorf("floor: %s: %w", rec, err)
	}
	c := lab.Credentials
	stmt := fmt.Sprintf("CLONE INSTANCE FROM %s@%s:%d IDENTIFIED BY %s DATA DIRECTORY = %s",
		quote.SQLString(c.AdminUser), quote.SQLString(donor.Host), donor.Port, quote.SQLString(c.AdminPassword), quote.SQLString(target))
	f := &Floor{}
	t := time.Now()
	if _, err := rdb.ExecContext(ctx, stmt); err != nil {
		return nil, fmt.Errorf("floor: the clone of %s into %s: %w", donor, rec, err)
	}
	f.Clone = time.Since(t)
	if err := rdb.QueryRowContext(ctx, "SELECT IFNULL(SUM(DATA), 0) FROM performance_schema.clone_progress").Scan(&f.Bytes); err != nil {
		return nil, fmt.Errorf("floor: %s: clone_progress: %w", rec, err)
	}
	inst, err := lab.Instance(rec, nil)
	if err != nil {
		return nil, err
	}
	t = time.Now()
	if err := inst.Stop(ctx); err != nil {
		return nil, fmt.Errorf("floor: stopping %s: %w", rec, err)
	}
	f.Shutdown = time.Since(t)
	t = time.Now()
	if err := inst.Start(ctx); err != nil {
		return nil, fmt.Errorf("floor: starting %s: %w", rec, err)
	}
	if err := inst.WaitReady(ctx); err != nil {
		return nil, fmt.Errorf("floor: %s after its restart: %w", rec, err)
	}
	f.Start = time.Since(t)
	return f, nil
}

// ensureClonePlugin installs the clone plugin where it is missing.
func ensureClonePlugin(ctx context.Context, db *sql.DB) error {
	var status string
	err := db.QueryRowContext(ctx, "SELECT PLUGIN_STATUS FROM INFORMATION_SCHEMA.PLUGINS WHERE PLUGIN_NAME = 'clone'").Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = db.ExecContext(ctx, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
	}
	return err
}

// writeFloor writes, per shard count, the medians of start and stop beside
// the floor (Markdown when md).
func writeFloor(w io.Writer, scales []*Scale, md bool) {
	measured := false
	for _, sc := range scales {
		measured = measured || sc.Floor != nil
	}
	if !measured {
		return // saved logs: no lab to time
	}
	rows := scaleRows(scales)
	if md {
		fmt.Fprintln(w, "| shards | start s | floor: one clone alone | stop s | floor: one restart alone (shutdown + start) |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	} else {
		fmt.Fprintln(w, "\nbeside the floor (one clone and one restart of a standby slave timed alone on the same lab)")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if !md {
		fmt.Fprintln(tw, "shards\tstart s\tone clone\tstop s\tone restart")
	}
	for _, r := range rows {
		clone, restart := "-", "-"
		if f := r.sc.Floor; f != nil {
			clone = fmt.Sprintf("%.2f s (%.0f MiB)", f.Clone.Seconds(), float64(f.Bytes)/(1<<20))
			restart = fmt.Sprintf("%.2f s (%.2f + %.2f)", (f.Shutdown + f.Start).Seconds(), f.Shutdown.Seconds(), f.Start.Seconds())
		}
		if md {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", r.sc.Shards, secs1(r.start), clone, secs1(r.stop), restart)
		} else {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.sc.Shards, secs1(r.start), clone, secs1(r.stop), restart)
		}
	}
	tw.Flush()
	if md {
		fmt.Fprintln(w)
	}
}
