package drlab

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestOptionValue(t *testing.T) {
	rows := []map[string]string{
		{"option_name": "enable-read-only", "value": "1"},
		{"option_name": "slave_dbscale_mode", "value": "0"},
	}
	if v, ok := optionValue(rows, "slave-dbscale-mode"); !ok || v != "0" {
		t.Errorf("slave-dbscale-mode: %q %v (underscore names must match)", v, ok)
	}
	if v, ok := optionValue(rows, "ENABLE_READ_ONLY"); !ok || v != "1" {
		t.Errorf("enable-read-only: %q %v", v, ok)
	}
	if _, ok := optionValue(rows, "enable-disaster-mode"); ok {
		t.Errorf("an option not listed was found")
	}
	for v, want := range map[string][2]bool{"1": {true, true}, "0": {false, true}, " ON ": {true, true}, "off": {false, true}, "": {false, false}, "2": {false, false}} {
		on, ok := parseSwitch(v)
		if on != want[0] || ok != want[1] {
			t.Errorf("parseSwitch(%q) = %v, %v; want %v, %v", v, on, ok, want[0], want[1])
		}
	}
}

func TestDecideRoles(t *testing.T) {
	rr := func(p, s string) []RouterRole {
		return []RouterRole{
			{Cluster: ClusterPrimary, Addr: "127.0.1.100:16310", SlaveDBScaleMode: p},
			{Cluster: ClusterStandby, Addr: "127.0.2.100:16310", SlaveDBScaleMode: s},
		}
	}
	r := decideRoles(rr("0", "1"))
	if !r.Known || r.Primary != ClusterPrimary || r.Standby != ClusterStandby || r.Switched || r.Err() != nil {
		t.Errorf("as built: %+v", r)
	}
	if r.Of(ClusterPrimary) != ClusterPrimary || r.Of(ClusterStandby) != ClusterStandby {
		t.Errorf("as built: Of %q %q", r.Of(ClusterPrimary), r.Of(ClusterStandby))
	}
	r = decideRoles(rr("1", "0"))
	if !r.Known || r.Primary != ClusterStandby || r.Standby != ClusterPrimary || !r.Switched {
		t.Errorf("switched: %+v", r)
	}
	if r.Of(ClusterPrimary) != ClusterStandby || r.Of(ClusterStandby) != ClusterPrimary || !strings.Contains(r.String(), "switched") {
		t.Errorf("switched: Of %q %q, %s", r.Of(ClusterPrimary), r.Of(ClusterStandby), r)
	}
	for _, c := range []struct {
		p, s, want string
	}{
		{"0", "0", "neither router"},
		{"1", "1", "both routers"},
		{"", "1", "missing"},
		{"yes please", "0", "yes please"},
	} {
		r := decideRoles(rr(c.p, c.s))
		if r.Known || r.Primary != "" || r.Standby != "" || r.Of(ClusterPrimary) != "" || !errors.Is(r.Err(), ErrRolesUnknown) {
			t.Errorf("modes %q/%q: %+v, want unknown", c.p, c.s, r)
		}
		// Both values are named, never a guess.
		if !strings.Contains(r.Reason, c.want) || !strings.Contains(r.Reason, "127.0.1.100:16310 has slave-dbscale-mode") ||
			!strings.Contains(r.Reason, "127.0.2.100:16310 has slave-dbscale-mode") {
			t.Errorf("modes %q/%q: reason %q", c.p, c.s, r.Reason)
		}
	}
	down := rr("0", "1")
	down[1].Error = "connection refused"
	if r := decideRoles(down); r.Known || !strings.Contains(r.Reason, "unreadable (connection refused)") {
		t.Errorf("a router down: %+v", r)
	}
	if r := decideRoles(rr("0", "1")[:1]); r.Known {
		t.Errorf("one router: %+v", r)
	}
}

func TestValidCluster(t *testing.T) {
	for _, c := range []string{"", ClusterPrimary, ClusterStandby, BuiltPrimary, BuiltStandby} {
		if !ValidCluster(c) {
			t.Errorf("%q refused", c)
		}
	}
	if ValidCluster("third") || ValidCluster("built-third") {
		t.Errorf("a third cluster accepted")
	}
	if got := clusterLabel(ClusterStandby, ClusterPrimary); got != "standby (now primary)" {
		t.Errorf("label %q", got)
	}
}

func TestFollowTracker(t *testing.T) {
	res := &FollowResult{ErrorsByKind: map[string]int{}}
	g := &gapTracker{res: res}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	g.ack(11, ClusterPrimary, "p", t0)
	g.ack(12, ClusterPrimary, "p", t0.Add(10*time.Millisecond))
	for range 3 {
		kind, doubt := classifyWriteError(&mysql.MySQLError{Number: 1290, Message: "read-only"})
		if kind != FollowReadOnly || doubt {
			t.Fatalf("1290: %s %v", kind, doubt)
		}
		g.fail(kind, errors.New("refused"), nil)
	}
	kind, doubt := classifyWriteError(errors.New("dial tcp: connection refused"))
	if kind != FollowConnection || !doubt {
		t.Errorf("connection error: %s %v", kind, doubt)
	}
	g.fail(kind, errors.New("dial tcp 127.0.1.100: connection refused for pw secret1"), []string{"secret1"})
	g.ack(13, ClusterStandby, "s", t0.Add(810*time.Millisecond))
	g.ack(14, ClusterStandby, "s", t0.Add(820*time.Millisecond))
	if kind, _ := classifyWriteError(&mysql.MySQLError{Number: 1062}); kind != FollowDuplicate {
		t.Errorf("1062: %s", kind)
	}
	if kind, _ := classifyWriteError(&mysql.MySQLError{Number: 1146}); kind != "other_1146" {
		t.Errorf("1146: %s", kind)
	}
	g.ack(16, ClusterStandby, "s", t0.Add(830*time.Millisecond)) // 15 skipped: a new run
	if res.Rows != 5 || res.FirstSeq != 11 || res.LastSeq != 16 || res.Errors != 4 || res.ErrorsByKind[FollowReadOnly] != 3 || res.Switches != 1 {
		t.Errorf("result %+v", res)
	}
	gap := res.LongestGap
	if gap.Duration != 800*time.Millisecond || gap.Millis != 800 || gap.SeqBefore != 12 || gap.SeqAfter != 13 ||
		gap.ClusterBefore != ClusterPrimary || gap.ClusterAfter != ClusterStandby || gap.Errors != 4 || !gap.Start.Equal(t0.Add(10*time.Millisecond)) {
		t.Errorf("longest gap %+v", gap)
	}
	want := []SeqRange{{11, 12}, {13, 14}, {16, 16}}
	got := res.Acked()
	if len(got) != len(want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("acked %v, want %v", got, want)
		}
	}
	if strings.Contains(res.LastError, "secret1") {
		t.Errorf("the last error shows a password: %s", res.LastError)
	}
	s := res.String()
	for _, x := range []string{"5 rows OK (seq 11-16)", "read_only 3", "800.0 ms", "from seq 12 (primary)", "to seq 13 (standby)"} {
		if !strings.Contains(s, x) {
			t.Errorf("text lacks %q:\n%s", x, s)
		}
	}
}
