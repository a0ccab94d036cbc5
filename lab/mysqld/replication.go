package mysqld

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DefaultReplicaTimeout bounds WaitReplicating when ctx has no deadline.
const DefaultReplicaTimeout = 60 * time.Second

// ReplicateFrom makes replica replicate from source with GTID auto-position:
// CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1,
// GET_SOURCE_PUBLIC_KEY=1 (caching_sha2_password without TLS), START
// REPLICA, then WaitReplicating. user and password are an account on source
// with REPLICATION SLAVE; the password goes to the server only.
func ReplicateFrom(ctx context.Context, replica, source *Instance, user, password string) error {
	db, err := replica.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?,
		SOURCE_USER = ?, SOURCE_PASSWORD = ?, SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1,
		SOURCE_CONNECT_RETRY = 1`, source.Host, source.Port, user, password)
	if err != nil {
		return fmt.Errorf("%s: CHANGE REPLICATION SOURCE TO %s: %w", replica, source.Addr(), err)
	}
	if _, err := db.ExecContext(ctx, "START REPLICA"); err != nil {
		return fmt.Errorf("%s: START REPLICA (source %s): %w", replica, source.Addr(), err)
	}
	return WaitReplicating(ctx, replica)
}

// WaitReplicating polls SHOW REPLICA STATUS until the replica's IO and SQL
// threads both run. It fails at once when the SQL thread has stopped with an
// error, and otherwise when ctx (or DefaultReplicaTimeout) runs out, naming
// the last IO error.
func WaitReplicating(ctx context.Context, replica *Instance) error {
	ctx, cancel := withDefaultTimeout(ctx, DefaultReplicaTimeout)
	defer cancel()
	db, err := replica.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	var last string
	for {
		row, err := queryRow(ctx, db, "SHOW REPLICA STATUS")
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: replication threads did not start within %s (%s)", replica, time.Since(start).Round(time.Millisecond), last)
			}
			return fmt.Errorf("%s: SHOW REPLICA STATUS: %w", replica, err)
		}
		if row == nil {
			return fmt.Errorf("%s is not a replica (SHOW REPLICA STATUS is empty): run ReplicateFrom first", replica)
		}
		st := map[string]string{}
		for _, c := range row {
			st[c.name] = c.value
		}
		io, sqlThread := st["Replica_IO_Running"], st["Replica_SQL_Running"]
		if io == "Yes" && sqlThread == "Yes" {
			return nil
		}
		last = fmt.Sprintf("IO thread %s, SQL thread %s", io, sqlThread)
		if e := st["Last_IO_Error"]; e != "" {
			last += "; last IO error " + st["Last_IO_Errno"] + ": " + e
		}
		if sqlThread == "No" && st["Last_SQL_Error"] != "" {
			return fmt.Errorf("%s: replication SQL thread stopped with error %s: %s: fix it and run START REPLICA", replica, st["Last_SQL_Errno"], st["Last_SQL_Error"])
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: replication threads did not start within %s (%s): check the source address and account", replica, time.Since(start).Round(time.Millisecond), strings.TrimSpace(last))
		case <-time.After(pollInterval):
		}
	}
}

// WaitGTIDs waits until the instance has executed every transaction of the
// GTID set gtids (WAIT_FOR_EXECUTED_GTID_SET), bounded by ctx or by
// DefaultReplicaTimeout.
func (i *Instance) WaitGTIDs(ctx context.Context, gtids string) error {
	ctx, cancel := withDefaultTimeout(ctx, DefaultReplicaTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	secs := time.Until(dl).Seconds()
	if secs < 0.001 {
		secs = 0.001
	}
	got, err := i.QueryString(ctx, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)", gtids, secs)
	if err != nil {
		return err
	}
	if got != "0" {
		have, _ := i.QueryString(ctx, "SELECT @@GLOBAL.gtid_executed")
		return fmt.Errorf("%s has not executed %s within %.1fs (gtid_executed is %q): is replication running?", i, gtids, secs, have)
	}
	return nil
}
