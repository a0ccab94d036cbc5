package drlab

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/gtid"
	"golang.org/x/sync/errgroup"
)

// Difference kinds.
const (
	// DiffTable: a table's row count or checksum differs, or the table is
	// missing on one side.
	DiffTable = "table"
	// DiffGTID: the node's gtid_executed differs from the reference's.
	DiffGTID = "gtid"
	// DiffNode: the node (or the reference) could not be read.
	DiffNode = "node"
	// DiffAcked: the node lacks workload rows a writer got an OK for
	// (CheckOptions.Acked).
	DiffAcked = "acked"
)

// SeqRange is a range of workload sequence numbers, both ends included.
type SeqRange struct {
	First int64 `json:"first_seq"`
	Last  int64 `json:"last_seq"`
}

// CheckOptions configure Check.
type CheckOptions struct {
	// Wait keeps comparing, with a bounded poll, until no difference is
	// left or Wait has passed (0: compare once). Replication needs a moment
	// after a write.
	Wait time.Duration
	// Acked are workload sequence numbers a writer got an OK for (e.g.
	// FollowResult.Acked): every node must hold each of them in
	// flowlab.seq, whatever the reference holds.
	Acked []SeqRange
}

// CheckReport is the outcome of Check. Its JSON form is `flow lab check
// --json`.
type CheckReport struct {
	// OK is true when no difference was found.
	OK bool `json:"ok"`
	// Nodes is the number of nodes compared (reference masters included).
	Nodes int `json:"nodes"`
	// Tables is the number of user tables on the reference masters.
	Tables      int          `json:"tables"`
	Differences []Difference `json:"differences"`
	// Attempts is how many times the lab was compared (more than one when
	// Wait let it wait for replication).
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration_ns"`
	// ReferenceCluster is the built name of the cluster whose masters are
	// the reference: the current primary (the built primary when the
	// roles are unknown, with Note saying so).
	ReferenceCluster string `json:"reference_cluster"`
	// Roles are the current roles the reference was chosen by.
	Roles Roles  `json:"roles"`
	Note  string `json:"note,omitempty"`
	// AckedRows is the number of acknowledged sequence numbers looked for
	// on every node (CheckOptions.Acked).
	AckedRows int64 `json:"acked_rows"`
	// CatchingUp says every difference is replication lag, not divergence:
	// each node that differs lacks transactions its shard's master has
	// and holds none it lacks (a longer Wait may end in OK). Behind is
	// how many nodes lag, Missing how many transactions they lack in all.
	CatchingUp bool   `json:"catching_up"`
	Behind     int    `json:"behind,omitempty"`
	Missing    uint64 `json:"missing_transactions,omitempty"`
}

// Difference is one thing a node has that its shard's master in the
// current primary has not, or the other way round.
type Difference struct {
	// Kind is DiffTable, DiffGTID or DiffNode.
	Kind string `json:"kind"`
	// Cluster, Shard, Node and Addr name the node that differs.
	Cluster string `json:"cluster"`
	Shard   int    `json:"shard"`
	Node    string `json:"node"`
	Addr    string `json:"addr"`
	// Reference is the node compared with: the shard's master in the
	// current primary cluster ("standby normal_0_1" after a switchover:
	// built cluster names).
	Reference string `json:"reference"`
	// Table is schema.table for DiffTable.
	Table string `json:"table,omitempty"`
	// Rows and Checksum are the node's and the reference's (WantRows,
	// WantChecksum); -1 rows and "" checksum when the table is missing.
	Rows         int64  `json:"rows"`
	WantRows     int64  `json:"want_rows"`
	Checksum     string `json:"checksum,omitempty"`
	WantChecksum string `json:"want_checksum,omitempty"`
	// Missing and Extra are GTID sets for DiffGTID: executed on the
	// reference but not on the node, and the other way round;
	// MissingCount is how many transactions Missing holds.
	Missing      string `json:"missing,omitempty"`
	Extra        string `json:"extra,omitempty"`
	MissingCount uint64 `json:"missing_count,omitempty"`
	// MissingAcked is, for DiffAcked, how many acknowledged sequence
	// numbers the node lacks, FirstMissing the smallest of them.
	MissingAcked int64 `json:"missing_acked,omitempty"`
	FirstMissing int64 `json:"first_missing,omitempty"`
	// Message says it all in one line.
	Message string `json:"message"`
}

// tableSum is one table's row count and CHECKSUM TABLE value.
type tableSum struct {
	rows     int64
	checksum string
}

// snapshot is what Check reads from one node.
type snapshot struct {
	tables map[string]tableSum
	gtids  string
	// acked is how many of CheckOptions.Acked the node holds, firstMissing
	// the smallest one it lacks (0: none lacking).
	acked        int64
	firstMissing int64
	err          error
}

// Check compares every node of both clusters with its shard's master in
// the CURRENT primary cluster (from Roles: after a switchover the built
// standby's masters are the reference): per table of the user schemas the
// row count and CHECKSUM TABLE, and gtid_executed (missing and extra
// transactions); with o.Acked, every node must also hold each
// acknowledged sequence number. With o.Wait it re-compares until nothing
// differs or the time is up, and reports the last comparison.
func (l *Lab) Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	start := time.Now()
	deadline := start.Add(o.Wait)
	for attempt := 1; ; attempt++ {
		roles, err := l.Roles(ctx)
		if err != nil {
			return nil, err
		}
		rep, err := l.compare(ctx, roles, o.Acked)
		if err != nil {
			return nil, err
		}
		rep.Attempts = attempt
		rep.Duration = time.Since(start)
		if rep.OK || !time.Now().Before(deadline) {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, nil
		case <-time.After(4 * pollEvery):
		}
	}
}

// compare reads every node once and lists the differences.
func (l *Lab) compare(ctx context.Context, roles Roles, acked []SeqRange) (*CheckReport, error) {
	var want int64
	for _, r := range acked {
		if r.Last >= r.First {
			want += r.Last - r.First + 1
		}
	}
	snaps := make([]snapshot, len(l.Nodes))
	var g errgroup.Group
	g.SetLimit(6)
	for i, n := range l.Nodes {
		g.Go(func() error {
			snaps[i] = l.readSnapshot(ctx, n, acked)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep := &CheckReport{Nodes: len(l.Nodes), Differences: []Difference{}, Roles: roles, ReferenceCluster: roles.Primary, AckedRows: want}
	if !roles.Known {
		rep.ReferenceCluster = ClusterPrimary
		rep.Note = "the current roles are unknown (" + roles.Reason + "): compared with the built primary's masters"
	}
	refIdx := map[int]int{}
	for i, n := range l.Nodes {
		if n.Cluster == rep.ReferenceCluster && n.Index == MasterIndex(rep.ReferenceCluster) {
			refIdx[n.Shard] = i
		}
	}
	for i, n := range l.Nodes {
		ri := refIdx[n.Shard]
		ref, refSnap := l.Nodes[ri], snaps[ri]
		base := Difference{Cluster: n.Cluster, Shard: n.Shard, Node: n.Name, Addr: n.Addr(), Reference: ref.Cluster + " " + ref.Name}
		if s := snaps[i]; s.err == nil && len(acked) > 0 && s.acked != want {
			d := base
			d.Kind, d.MissingAcked, d.FirstMissing = DiffAcked, want-s.acked, s.firstMissing
			d.Message = fmt.Sprintf("%s: lacks %d of the %d acknowledged workload rows (the first is seq %d)", n, d.MissingAcked, want, s.firstMissing)
			rep.Differences = append(rep.Differences, d)
		}
		if i == ri {
			rep.Tables += len(refSnap.tables)
			if refSnap.err != nil {
				d := base
				d.Kind, d.Message = DiffNode, fmt.Sprintf("%s: cannot read the reference: %v", n, refSnap.err)
				rep.Differences = append(rep.Differences, d)
			}
			continue
		}
		if refSnap.err != nil {
			continue // reported once, above
		}
		s := snaps[i]
		if s.err != nil {
			d := base
			d.Kind, d.Message = DiffNode, fmt.Sprintf("%s: cannot read: %v", n, s.err)
			rep.Differences = append(rep.Differences, d)
			continue
		}
		rep.Differences = append(rep.Differences, tableDiffs(base, n, refSnap.tables, s.tables)...)
		if d, ok := gtidDiff(base, n, refSnap.gtids, s.gtids); ok {
			rep.Differences = append(rep.Differences, d)
		}
	}
	rep.OK = len(rep.Differences) == 0
	rep.judgeLag()
	return rep, nil
}

// judgeLag sets CatchingUp, Behind and Missing: the differences are lag
// when every node that differs has a GTID difference with transactions
// missing and none extra (its tables, and acknowledged rows, may then
// trail the master's); a node that cannot be read, or holds a
// transaction its master lacks, is no lag.
func (r *CheckReport) judgeLag() {
	if r.OK {
		return
	}
	type nodeDiffs struct{ lagging, other bool }
	byNode := map[string]*nodeDiffs{}
	for _, d := range r.Differences {
		k := d.Cluster + " " + d.Node
		n := byNode[k]
		if n == nil {
			n = &nodeDiffs{}
			byNode[k] = n
		}
		switch {
		case d.Kind == DiffGTID && d.Extra == "" && d.MissingCount > 0:
			n.lagging = true
			r.Missing += d.MissingCount
		case d.Kind == DiffTable || d.Kind == DiffAcked:
		default:
			n.other = true
		}
	}
	r.CatchingUp = true
	for _, n := range byNode {
		r.CatchingUp = r.CatchingUp && n.lagging && !n.other
		if n.lagging {
			r.Behind++
		}
	}
	if !r.CatchingUp {
		r.Behind, r.Missing = 0, 0
	}
}

// tableDiffs compares a node's tables with the reference's.
func tableDiffs(base Difference, n Node, want, got map[string]tableSum) []Difference {
	names := map[string]bool{}
	for t := range want {
		names[t] = true
	}
	for t := range got {
		names[t] = true
	}
	sorted := make([]string, 0, len(names))
	for t := range names {
		sorted = append(sorted, t)
	}
	sort.Strings(sorted)
	var out []Difference
	for _, t := range sorted {
		w, wok := want[t]
		h, hok := got[t]
		if wok && hok && w == h {
			continue
		}
		d := base
		d.Kind, d.Table = DiffTable, t
		d.Rows, d.WantRows = -1, -1
		if wok {
			d.WantRows, d.WantChecksum = w.rows, w.checksum
		}
		if hok {
			d.Rows, d.Checksum = h.rows, h.checksum
		}
		switch {
		case !hok:
			d.Message = fmt.Sprintf("%s: table %s is missing (%s has %d rows)", n, t, d.Reference, w.rows)
		case !wok:
			d.Message = fmt.Sprintf("%s: table %s (%d rows) does not exist on %s", n, t, h.rows, d.Reference)
		default:
			d.Message = fmt.Sprintf("%s: table %s has %d rows, checksum %s; %s has %d rows, checksum %s",
				n, t, h.rows, h.checksum, d.Reference, w.rows, w.checksum)
		}
		out = append(out, d)
	}
	return out
}

// gtidDiff compares a node's gtid_executed with the reference's.
func gtidDiff(base Difference, n Node, want, got string) (Difference, bool) {
	d := base
	d.Kind = DiffGTID
	ws, err1 := gtid.Parse(want)
	gs, err2 := gtid.Parse(got)
	if err1 != nil || err2 != nil {
		d.Message = fmt.Sprintf("%s: cannot parse gtid_executed (%v %v)", n, err1, err2)
		return d, true
	}
	missing, extra := ws.Subtract(gs), gs.Subtract(ws)
	if missing.IsEmpty() && extra.IsEmpty() {
		return d, false
	}
	d.Missing = oneLine(missing.String())
	d.Extra = oneLine(extra.String())
	d.MissingCount = missing.Count()
	var parts []string
	if d.Missing != "" {
		parts = append(parts, fmt.Sprintf("missing %s (%d transaction(s))", d.Missing, d.MissingCount))
	}
	if d.Extra != "" {
		parts = append(parts, "extra "+d.Extra)
	}
	d.Message = fmt.Sprintf("%s: GTIDs differ from %s: %s", n, d.Reference, strings.Join(parts, "; "))
	return d, true
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "") }

// systemSchemas are not compared (dbscale_tmp is binlog-ignored on purpose:
// its contents differ between nodes by design).
var systemSchemas = []string{"mysql", "sys", "information_schema", "performance_schema", TmpSchema}

// readSnapshot reads a node's user tables and gtid_executed.
func (l *Lab) readSnapshot(ctx context.Context, n Node, acked []SeqRange) snapshot {
	s := snapshot{tables: map[string]tableSum{}}
	db, err := l.OpenNode(n)
	if err != nil {
		s.err = err
		return s
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&s.gtids); err != nil {
		s.err = err
		return s
	}
	q := "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN (?" +
		strings.Repeat(", ?", len(systemSchemas)-1) + ") ORDER BY 1, 2"
	args := make([]any, len(systemSchemas))
	for i, x := range systemSchemas {
		args[i] = x
	}
	rows, err := queryMaps(ctx, db, q, args...)
	if err != nil {
		s.err = fmt.Errorf("list tables: %w", err)
		return s
	}
	for _, r := range rows {
		schema, table := firstOf(r, "table_schema", "TABLE_SCHEMA"), firstOf(r, "table_name", "TABLE_NAME")
		name := quoteIdent(schema) + "." + quoteIdent(table)
		var ts tableSum
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+name).Scan(&ts.rows); err != nil {
			s.err = fmt.Errorf("count %s.%s: %w", schema, table, err)
			return s
		}
		cs, err := queryMaps(ctx, db, "CHECKSUM TABLE "+name)
		if err != nil || len(cs) == 0 {
			s.err = fmt.Errorf("checksum %s.%s: %v", schema, table, err)
			return s
		}
		ts.checksum = cs[0]["Checksum"]
		s.tables[schema+"."+table] = ts
	}
	if len(acked) > 0 {
		if err := s.readAcked(ctx, db, acked); err != nil {
			s.err = fmt.Errorf("look for the acknowledged workload rows: %w", err)
		}
	}
	return s
}

// readAcked counts the acknowledged sequence numbers a node holds and finds
// the smallest one it lacks.
func (s *snapshot) readAcked(ctx context.Context, db *sql.DB, acked []SeqRange) error {
	table := WorkloadSchema + "." + WorkloadTable
	if _, ok := s.tables[table]; !ok {
		if len(acked) > 0 {
			s.firstMissing = acked[0].First
		}
		return nil
	}
	for _, r := range acked {
		if r.Last < r.First {
			continue
		}
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE seq BETWEEN ? AND ?", r.First, r.Last).Scan(&n); err != nil {
			return err
		}
		s.acked += n
		if n == r.Last-r.First+1 || s.firstMissing != 0 {
			continue
		}
		// The smallest missing seq: the first r.First+k with no row k.
		var first int64
		q := "SELECT COALESCE(MIN(t.seq + 1), ?) FROM (SELECT ? - 1 AS seq UNION ALL SELECT seq FROM " + table +
			" WHERE seq BETWEEN ? AND ?) t WHERE t.seq + 1 <= ? AND NOT EXISTS (SELECT 1 FROM " + table + " u WHERE u.seq = t.seq + 1)"
		if err := db.QueryRowContext(ctx, q, r.First, r.First, r.First, r.Last, r.Last).Scan(&first); err != nil {
			return err
		}
		s.firstMissing = first
	}
	return nil
}

// firstOf returns the first key of m that is present.
func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return ""
}

// quoteIdent quotes a MySQL identifier with backticks.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// String prints a report for people: one line per difference, by table
// and GTID, then a verdict.
func (r *CheckReport) String() string {
	var b strings.Builder
	for _, kind := range []string{DiffNode, DiffAcked, DiffTable, DiffGTID} {
		for _, d := range r.Differences {
			if d.Kind == kind {
				b.WriteString(d.Message + "\n")
			}
		}
	}
	if r.Note != "" {
		b.WriteString("note: " + r.Note + "\n")
	}
	ref := "the current primary (built as " + r.ReferenceCluster + ")"
	if !r.Roles.Known {
		ref = "the built primary"
	}
	acked := ""
	if r.AckedRows > 0 {
		acked = fmt.Sprintf(", %d acknowledged workload rows on every node", r.AckedRows)
	}
	switch {
	case r.OK:
		fmt.Fprintf(&b, "check: OK: %d nodes agree with their shard's master in %s (%d tables, GTIDs equal%s)\n", r.Nodes, ref, r.Tables, acked)
	case r.CatchingUp:
		fmt.Fprintf(&b, "check: still catching up after %s: %d of %d nodes lack %d transaction(s) of their shard's master in %s and hold none it lacks: replication lag, not a divergence (yet); check again with a longer --wait\n",
			roundWait(r.Duration), r.Behind, r.Nodes, r.Missing, ref)
	default:
		fmt.Fprintf(&b, "check: %d difference(s) over %d nodes (%d tables on the masters of %s)\n", len(r.Differences), r.Nodes, r.Tables, ref)
	}
	return b.String()
}

// roundWait rounds how long a check compared for display: to the
// millisecond under a second (a single comparison), else to the second.
func roundWait(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
