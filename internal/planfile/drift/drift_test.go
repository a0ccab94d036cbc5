package drift_test

import (
	"strings"
	"testing"

	"github.com/flowdba/flow/internal/planfile/drift"
)

const (
	uA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uB = "4d22ab58-82db-22f2-af44-d91bbb53a673"
	uC = "5f33bc69-93ec-33a3-b055-e02ccc64b784"
)

// node is a node's read as a sql step returns it, in JSON form.
func node(role, readOnly, gtids string, lag int) any {
	row := map[string]any{"servername": "normal_0_1", "host": "127.0.2.2", "port": 16315,
		"master-online-status": role, "read_only": readOnly, "uuid": uB,
		"Executed_Gtid_Set": gtids, "Seconds_Behind_Source": lag, "Read_Source_Log_Pos": 1000 + lag}
	return drift.Normalize(map[string]any{"rows": []any{row}, "row": row, "count": 1})
}

func requireOne(t *testing.T, diffs []drift.Difference, words ...string) {
	t.Helper()
	if len(diffs) != 1 {
		t.Fatalf("want 1 difference, got %d: %v", len(diffs), diffs)
	}
	s := diffs[0].String()
	for _, w := range words {
		if !strings.Contains(s, w) {
			t.Errorf("the difference %q does not name %q", s, w)
		}
	}
}

func TestGTIDSetThatGrewIsNotDrift(t *testing.T) {
	planned := node("Master_Online", "0", uA+":1-100,\n"+uB+":1-5", 0)
	live := node("Master_Online", "0", uA+":1-180,\n"+uB+":1-5", 3) // the primary took writes; lag and position moved
	if d := drift.Compare(planned, live); len(d) != 0 {
		t.Fatalf("a GTID set that grew, lag and a position that moved are drift: %v", d)
	}
}

func TestGTIDSetThatLostATransactionIsDrift(t *testing.T) {
	planned := node("Master_Online", "0", uA+":1-100", 0)
	live := node("Master_Online", "0", uA+":1-99:101-120", 0)
	requireOne(t, drift.Compare(planned, live), "rows[0].Executed_Gtid_Set", "lost transactions", uA+":100")
}

func TestGTIDSetWithANewServerIsDrift(t *testing.T) {
	planned := node("Master_Online", "0", uA+":1-100", 0)
	live := node("Master_Online", "0", uA+":1-100,"+uC+":1", 0) // someone wrote on this node
	requireOne(t, drift.Compare(planned, live), "rows[0].Executed_Gtid_Set", "never saw", uC)
}

func TestGTIDFieldThatWasEmpty(t *testing.T) {
	p := drift.Normalize(map[string]any{"gtid_executed": ""})
	l := drift.Normalize(map[string]any{"gtid_executed": uC + ":1-3"})
	requireOne(t, drift.Compare(p, l), "gtid_executed", uC)
	if d := drift.Compare(p, p); len(d) != 0 {
		t.Fatal(d)
	}
}

func TestRoleChangedIsDrift(t *testing.T) {
	planned := node("Master_Online", "0", uA+":1-100", 0)
	live := node("Not_A_Master", "0", uA+":1-100", 0)
	requireOne(t, drift.Compare(planned, live), `rows[0]["master-online-status"]`, `planned "Master_Online"`, `live "Not_A_Master"`)
}

func TestReadOnlyChangedIsDrift(t *testing.T) {
	requireOne(t, drift.Compare(node("Master_Online", "0", "", 0), node("Master_Online", "1", "", 0)), "rows[0].read_only", `"0"`, `"1"`)
	p := drift.Normalize(map[string]any{"read_only": 1, "super_read_only": true})
	l := drift.Normalize(map[string]any{"read_only": 0, "super_read_only": false})
	if d := drift.Compare(p, l); len(d) != 2 {
		t.Fatalf("want 2 differences (a number and a boolean), got %v", d)
	}
}

func TestServerUUIDIsNotAGTIDSet(t *testing.T) {
	p := drift.Normalize(map[string]any{"uuid": uA})
	l := drift.Normalize(map[string]any{"uuid": uB})
	requireOne(t, drift.Compare(p, l), "uuid", "values differ")
}

func TestRowsAddedOrGone(t *testing.T) {
	p := drift.Normalize(map[string]any{"rows": []any{map[string]any{"servername": "normal_0_0"}}, "count": 1})
	l := drift.Normalize(map[string]any{"rows": []any{map[string]any{"servername": "normal_0_0"}, map[string]any{"servername": "normal_0_9"}}, "count": 2})
	d := drift.Compare(p, l)
	if len(d) != 2 || d[0].Path != "count" || d[1].Path != "rows" || !strings.Contains(d[1].String(), "1 item") {
		t.Fatalf("want the count and the rows named: %v", d)
	}
	d = drift.Compare(drift.Normalize(map[string]any{"a": 1}), drift.Normalize(map[string]any{"b": 1}))
	if len(d) != 2 {
		t.Fatalf("a field gone and a new one: %v", d)
	}
}

func TestCommandOutputFigures(t *testing.T) {
	p := drift.Normalize(map[string]any{"stdout": "12% 5000123 4001 clone-ok mysqld_safe\n", "rc": 0})
	moved := drift.Normalize(map[string]any{"stdout": "13% 4990001 4100 clone-ok mysqld_safe\n", "rc": 0})
	if d := drift.Compare(p, moved); len(d) != 0 {
		t.Fatalf("figures in command output are drift: %v", d)
	}
	broken := drift.Normalize(map[string]any{"stdout": "12% 5000123 4001 clone-missing mysqld_safe\n", "rc": 0})
	requireOne(t, drift.Compare(p, broken), "stdout", "clone-missing")
	host := drift.Normalize(map[string]any{"lines": []any{"127.0.2.3 up"}})
	other := drift.Normalize(map[string]any{"lines": []any{"127.0.2.4 up"}})
	requireOne(t, drift.Compare(host, other), "lines[0]", "127.0.2.4")
}

func TestVolatile(t *testing.T) {
	for _, n := range []string{"Seconds_Behind_Source", "Read_Source_Log_Pos", "Relay_Log_File", "Replica_SQL_Running_State",
		"waited_ms", "free_bytes", "max_needed_conn/max_mysql_conn", "Last_IO_Error_Timestamp", "seconds_behind", "io_state", "sql_state"} {
		if !drift.Volatile(n) {
			t.Errorf("%s is not volatile", n)
		}
	}
	for _, n := range []string{"status", "master-online-status", "read_only", "host", "port", "Last_IO_Errno", "count", "gtid_executed", "Replica_IO_Running", "io_running", "source_host", "running"} {
		if drift.Volatile(n) {
			t.Errorf("%s is volatile", n)
		}
	}
}

func TestCompareText(t *testing.T) {
	stmt := "INSERT INTO flow_drill.active VALUES ('r1', '" + uA + ":1-100,\n" + uB + ":1-5')"
	if d := drift.CompareText(stmt, stmt); d != nil {
		t.Fatal(d)
	}
	grown := strings.Replace(stmt, "1-100", "1-140", 1)
	if d := drift.CompareText(stmt, grown); d != nil {
		t.Fatalf("a GTID set in a statement that grew is drift: %v", d)
	}
	lost := strings.Replace(stmt, "1-100", "1-90", 1)
	if d := drift.CompareText(stmt, lost); d == nil || !strings.Contains(d.String(), "lost transactions") {
		t.Fatalf("a GTID set that lost transactions: %v", d)
	}
	fresh := strings.Replace(stmt, uB+":1-5", uB+":1-5,"+uC+":1", 1)
	if d := drift.CompareText(stmt, fresh); d == nil || !strings.Contains(d.String(), uC) {
		t.Fatalf("a GTID set with a new server: %v", d)
	}
	d := drift.CompareText("dbscale disable dataserver normal_0_2", "dbscale disable dataserver normal_0_0")
	if d == nil || !strings.Contains(d.String(), `planned "dbscale disable dataserver normal_0_2"`) || !strings.Contains(d.String(), "normal_0_0") {
		t.Fatalf("a changed statement: %v", d)
	}
	d = drift.CompareText("SET SESSION sql_log_bin = 0\nDROP DATABASE a", "SET SESSION sql_log_bin = 0\nDROP DATABASE b")
	if d == nil || d.Path != "line 2 of the text" {
		t.Fatalf("want line 2 named: %v", d)
	}
}

func TestNormalizeNumbers(t *testing.T) {
	p := drift.Normalize(map[string]any{"port": 16315, "f": 1.5, "big": int64(1) << 62})
	l := drift.Normalize(map[string]any{"port": int64(16315), "f": float32(1.5), "big": int64(1)<<62 + 1})
	requireOne(t, drift.Compare(p, l), "big")
}
