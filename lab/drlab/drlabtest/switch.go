package drlabtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/drlab"
)

// switchTimeout bounds a hand switchover (the catch-up wait included).
const switchTimeout = 2 * time.Minute

// SwitchStep is one statement of a hand switchover: which router (built
// cluster name) ran what, and how long it took.
type SwitchStep struct {
	Router   string
	Query    string
	Duration time.Duration
}

// SwitchByHand makes the built cluster newPrimary the lab's primary and
// the other one its standby through the routers alone, the way a planned
// switchover does (DBScale's D10 recipe, not the shipped playbook): the
// old primary's router read-only; wait until every master of the new
// primary holds the old primary's GTIDs; on the old primary's router remove
// slave_dbscale_source and slave_dbscale_server; on the new primary's
// router stop slave, reset slave all, slave-dbscale-mode 0; on the old
// primary's router slave-dbscale-mode 1; on the new primary's router the
// DR dataserver pointing at the old primary's router (dbscale_server), the
// server datasource with the next group id, add slave … to every
// datasource, and finally enable-read-only 0. Tests of the lab's commands
// use it to flip the roles without depending on playbooks. It fails the
// test naming the statement a router refused, and returns the steps run.
func SwitchByHand(tb testing.TB, l *drlab.Lab, newPrimary string) []SwitchStep {
	tb.Helper()
	oldPrimary := drlab.ClusterPrimary
	if newPrimary == drlab.ClusterPrimary {
		oldPrimary = drlab.ClusterStandby
	}
	ctx, cancel := context.WithTimeout(context.Background(), switchTimeout)
	defer cancel()
	var steps []SwitchStep
	run := func(cluster, q string) {
		tb.Helper()
		db, err := l.OpenRouter(cluster)
		if err != nil {
			tb.Fatal(err)
		}
		defer db.Close()
		start := time.Now()
		if _, err := db.ExecContext(ctx, q); err != nil {
			tb.Fatalf("hand switchover to %s: the %s router refused %q: %v", newPrimary, cluster,
				redact(q, l.Credentials.PrimaryRouterPassword, l.Credentials.StandbyRouterPassword), err)
		}
		steps = append(steps, SwitchStep{Router: cluster, Query: redact(q, l.Credentials.PrimaryRouterPassword, l.Credentials.StandbyRouterPassword), Duration: time.Since(start)})
	}

	run(oldPrimary, "dbscale set global 'enable-read-only' = 1")
	start := time.Now()
	for k := range l.Shards {
		old, nw := l.Master(oldPrimary, k), l.Master(newPrimary, k)
		odb, err := l.OpenNode(old)
		if err != nil {
			tb.Fatal(err)
		}
		var want string
		err = odb.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&want)
		odb.Close()
		if err != nil {
			tb.Fatalf("hand switchover: %s: %v", old, err)
		}
		ndb, err := l.OpenNode(nw)
		if err != nil {
			tb.Fatal(err)
		}
		for {
			var ok int
			if err := ndb.QueryRowContext(ctx, "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)", want).Scan(&ok); err != nil {
				ndb.Close()
				tb.Fatalf("hand switchover: %s: %v", nw, err)
			}
			if ok == 1 {
				break
			}
			select {
			case <-ctx.Done():
				ndb.Close()
				tb.Fatalf("hand switchover: %s did not catch up with %s within %s", nw, old, switchTimeout)
			case <-time.After(2 * time.Millisecond):
			}
		}
		ndb.Close()
	}
	steps = append(steps, SwitchStep{Router: newPrimary, Query: "(wait until its masters hold the old primary's GTIDs)", Duration: time.Since(start)})
	run(oldPrimary, "dbscale dynamic remove datasource "+drlab.DRSource)
	run(oldPrimary, "dbscale dynamic remove dataserver "+drlab.DRServer)
	run(newPrimary, "stop slave")
	run(newPrimary, "reset slave all")
	run(newPrimary, "dbscale set global 'slave-dbscale-mode' = 0")
	run(oldPrimary, "dbscale set global 'slave-dbscale-mode' = 1")
	to := l.Router(oldPrimary)
	run(newPrimary, fmt.Sprintf(`dbscale dynamic add dataserver server_name=%s,server_host="%s",server_port=%d,server_user="%s",server_password="%s",dbscale_server`,
		drlab.DRServer, to.Host, to.Port, l.Credentials.RouterUser, l.Credentials.RouterPassword(oldPrimary)))
	db, err := l.OpenRouter(newPrimary)
	if err != nil {
		tb.Fatal(err)
	}
	var gid string
	err = db.QueryRowContext(ctx, "dbscale request next group id").Scan(&gid)
	db.Close()
	if err != nil {
		tb.Fatalf("hand switchover: dbscale request next group id on the %s router: %v", newPrimary, err)
	}
	steps = append(steps, SwitchStep{Router: newPrimary, Query: "dbscale request next group id"})
	run(newPrimary, fmt.Sprintf("dbscale dynamic add server datasource %s %s-1-1000-400-800 group_id = %s", drlab.DRSource, drlab.DRServer, gid))
	for k := range l.Shards {
		run(newPrimary, fmt.Sprintf("dbscale dynamic add slave %s to %s", drlab.DRSource, drlab.DataSourceName(k)))
	}
	run(newPrimary, "dbscale set global 'enable-read-only' = 0")
	return steps
}

// redact replaces every secret in s.
func redact(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "***")
		}
	}
	return s
}
