// Command democheck is the independent check at the end of `make demo`
// (bench/demo.sh): after flashback-stop it reads the lab's nodes and the
// standby router directly, never through the playbooks, and says whether
// the drill left the standby as it found it:
//
//   - no drill row (flowlab.seq rows with cluster = 'standby') is left on
//     any node of either cluster, and no drill marker schema (flow_drill);
//   - every node holds exactly the primary rows the primary master holds,
//     and the primary master holds every row the demo wrote (-want-primary);
//   - every standby master replicates from its shard's primary master, and
//     every replica of both clusters runs both replication threads;
//   - no dataserver of the standby router is disabled (the donor is back);
//   - the redo record (-redo) is gone or empty;
//   - no secret of the lab's flashback.ini appears in the given log files
//     (a folder stands for every file in it).
//
// It prints one line per node and per check, then "PASS" or "FAIL", and
// exits 1 on a failed check (2 on bad usage). The last line is
// machine-readable for the demo's summary:
//
//	democheck: primary_rows=N drill_rows_left=0 nodes=6 result=PASS
//
// Usage:
//
//	democheck -dir .flow-lab/demo [-want-primary N] [-redo FILE] [-timeout 30s] [LOGFILE|LOGDIR…]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/lab/drlab"
)

// drillMarkerSchema is the schema flashback-start creates on the standby
// to mark an active drill; stop drops it.
const drillMarkerSchema = "flow_drill"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// checker collects the outcome of every check.
type checker struct {
	out    io.Writer
	failed int
}

// ok prints a passed check.
func (c *checker) ok(format string, args ...any) {
	fmt.Fprintf(c.out, "  ok    %s\n", fmt.Sprintf(format, args...))
}

// fail prints a failed check and counts it.
func (c *checker) fail(format string, args ...any) {
	c.failed++
	fmt.Fprintf(c.out, "  FAIL  %s\n", fmt.Sprintf(format, args...))
}

// run is main without the exit, for readability.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("democheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".flow-lab/demo", "the lab folder")
	wantPrimary := fs.Int("want-primary", -1, "rows the demo wrote through the primary router (-1: do not compare)")
	redo := fs.String("redo", "", "the redo record flashback-stop must have cleared")
	timeout := fs.Duration("timeout", 30*time.Second, "bound of all the queries together")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lab, err := drlab.Load(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "democheck: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := &checker{out: stdout}

	primaryRows, drillLeft := checkRows(ctx, c, lab, *wantPrimary)
	checkReplication(ctx, c, lab)
	checkDataservers(ctx, c, lab)
	checkRedo(c, *redo)
	files, err := logFiles(fs.Args())
	if err != nil {
		c.fail("%v", err)
	}
	checkSecrets(c, lab, files)

	result := "PASS"
	if c.failed > 0 {
		result = "FAIL"
	}
	fmt.Fprintf(stdout, "democheck: primary_rows=%d drill_rows_left=%d nodes=%d failed_checks=%d result=%s\n",
		primaryRows, drillLeft, len(lab.Nodes), c.failed, result)
	if c.failed > 0 {
		return 1
	}
	return 0
}

// rowCounts is what one node holds of the demo's table.
type rowCounts struct {
	primary, drill int
	marker         bool
}

// readCounts reads a node's primary and drill rows and whether the drill
// marker schema exists.
func readCounts(ctx context.Context, lab *drlab.Lab, n drlab.Node) (rowCounts, error) {
	db, err := lab.OpenNode(n)
	if err != nil {
		return rowCounts{}, err
	}
	defer db.Close()
	var rc rowCounts
	var marker int
	err = db.QueryRowContext(ctx, "SELECT COALESCE(SUM(cluster = 'primary'), 0), COALESCE(SUM(cluster = 'standby'), 0) FROM flowlab.seq").Scan(&rc.primary, &rc.drill)
	if err != nil {
		return rc, fmt.Errorf("%s: count flowlab.seq: %w", n, err)
	}
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", drillMarkerSchema).Scan(&marker)
	if err != nil {
		return rc, fmt.Errorf("%s: look for the drill marker: %w", n, err)
	}
	rc.marker = marker > 0
	return rc, nil
}

// checkRows compares every node's rows with its shard's primary master and
// returns the primary master's primary rows (shard 0) and the drill rows
// left anywhere.
func checkRows(ctx context.Context, c *checker, lab *drlab.Lab, wantPrimary int) (primaryRows, drillLeft int) {
	fmt.Fprintln(c.out, "rows of flowlab.seq on every node (primary rows / drill rows):")
	masters := map[int]rowCounts{}
	for shard := 0; shard < lab.Shards; shard++ {
		m := lab.Master(drlab.ClusterPrimary, shard)
		rc, err := readCounts(ctx, lab, m)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		masters[shard] = rc
	}
	primaryRows = masters[0].primary
	if wantPrimary >= 0 {
		if primaryRows == wantPrimary {
			c.ok("the primary master holds all %d rows the demo wrote through the primary router", wantPrimary)
		} else {
			c.fail("the primary master holds %d primary rows, the demo wrote %d", primaryRows, wantPrimary)
		}
	}
	for _, n := range lab.Nodes {
		rc, err := readCounts(ctx, lab, n)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		drillLeft += rc.drill
		want, known := masters[n.Shard]
		switch {
		case rc.drill != 0:
			c.fail("%s: %d primary / %d drill rows: drill rows are left", n, rc.primary, rc.drill)
		case known && rc.primary != want.primary:
			c.fail("%s: %d primary rows, its primary master %d", n, rc.primary, want.primary)
		default:
			c.ok("%s: %d primary / %d drill rows", n, rc.primary, rc.drill)
		}
		if rc.marker {
			c.fail("%s still carries the drill marker schema %s", n, drillMarkerSchema)
		}
	}
	return primaryRows, drillLeft
}

// checkReplication: every standby master replicates from its primary
// master, and every configured replica runs both threads.
func checkReplication(ctx context.Context, c *checker, lab *drlab.Lab) {
	fmt.Fprintln(c.out, "replication:")
	st, err := lab.Status(ctx)
	if err != nil {
		c.fail("lab status: %v", err)
		return
	}
	for _, n := range st.Nodes {
		r := n.Replication
		switch {
		case !n.Up:
			c.fail("%s %s (%s) is down: %s", n.Cluster, n.Name, n.Addr, n.Error)
		case n.Cluster == drlab.ClusterStandby && n.Role == "master":
			pm := lab.Master(drlab.ClusterPrimary, n.Shard)
			if r.SourceHost == pm.Host && r.Running() {
				c.ok("standby master %s (%s) replicates from primary master %s", n.Name, n.Addr, pm.Addr())
			} else {
				c.fail("standby master %s (%s) replicates from %q (IO %s, SQL %s; %s%s), want %s", n.Name, n.Addr,
					r.SourceHost, r.IORunning, r.SQLRunning, r.LastIOError, r.LastSQLError, pm.Addr())
			}
		case !r.Configured:
			c.ok("%s %s (%s) is a master", n.Cluster, n.Name, n.Addr)
		case r.Running():
			c.ok("%s %s (%s) replicates from %s", n.Cluster, n.Name, n.Addr, r.SourceHost)
		default:
			c.fail("%s %s (%s): replication from %s not running (IO %s, SQL %s): %s%s", n.Cluster, n.Name, n.Addr,
				r.SourceHost, r.IORunning, r.SQLRunning, r.LastIOError, r.LastSQLError)
		}
	}
}

// checkDataservers: no dataserver of the standby router is disabled.
func checkDataservers(ctx context.Context, c *checker, lab *drlab.Lab) {
	fmt.Fprintln(c.out, "standby router:")
	db, err := lab.OpenRouter(drlab.ClusterStandby)
	if err != nil {
		c.fail("%v", err)
		return
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "dbscale show dataservers")
	if err != nil {
		c.fail("dbscale show dataservers: %v", err)
		return
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		c.fail("dbscale show dataservers: %v", err)
		return
	}
	nameCol, statusCol := -1, -1
	for i, col := range cols {
		switch strings.ToLower(col) {
		case "servername":
			nameCol = i
		case "status":
			statusCol = i
		}
	}
	if nameCol < 0 || statusCol < 0 {
		c.fail("dbscale show dataservers has no servername/status column: %v", cols)
		return
	}
	disabled := 0
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			c.fail("dbscale show dataservers: %v", err)
			return
		}
		if strings.Contains(strings.ToLower(vals[statusCol].String), "disabled") {
			disabled++
			c.fail("dataserver %s is %q (the donor was not re-enabled)", vals[nameCol].String, vals[statusCol].String)
		}
	}
	if err := rows.Err(); err != nil {
		c.fail("dbscale show dataservers: %v", err)
		return
	}
	if disabled == 0 {
		c.ok("no dataserver is disabled (the donor is enabled again)")
	}
}

// checkRedo: the redo record is gone or empty.
func checkRedo(c *checker, path string) {
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && len(bytes.TrimSpace(b)) == 0:
		c.ok("the redo record %s is cleared", path)
	case err != nil:
		c.fail("read the redo record: %v", err)
	default:
		c.fail("the redo record %s still holds %d bytes", path, len(b))
	}
}

// logFiles expands folders into the regular files they hold.
func logFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return out, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return out, err
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				out = append(out, filepath.Join(a, e.Name()))
			}
		}
	}
	return out, nil
}

// checkSecrets: no password of flashback.ini appears in the logs.
func checkSecrets(c *checker, lab *drlab.Lab, files []string) {
	if len(files) == 0 {
		return
	}
	cfg, err := config.Load(lab.IniPath())
	if err != nil {
		c.fail("read %s: %v", lab.IniPath(), err)
		return
	}
	secrets := cfg.Secrets()
	if len(secrets) == 0 {
		c.fail("%s holds no secret to look for", lab.IniPath())
		return
	}
	leaked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			c.fail("read log %s: %v", f, err)
			continue
		}
		for _, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				leaked++
				c.fail("a password of flashback.ini appears in %s", f)
				break
			}
		}
	}
	if leaked == 0 {
		c.ok("none of the %d passwords of flashback.ini appears in the %d log files", len(secrets), len(files))
	}
}
