package drlab

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/mysqld"
)

func TestAddresses(t *testing.T) {
	cases := []struct{ got, want string }{
		{NodeHost(ClusterPrimary, 0, 0), "127.0.1.1"},
		{NodeHost(ClusterPrimary, 0, 2), "127.0.1.3"},
		{NodeHost(ClusterPrimary, 1, 0), "127.0.1.4"},
		{NodeHost(ClusterStandby, 1, 2), "127.0.2.6"},
		{RouterHost(ClusterPrimary), "127.0.1.100"},
		{RouterHost(ClusterStandby), "127.0.2.100"},
		{NodeName(1, 2), "normal_1_2"},
		{DataSourceName(3), "normal_3"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	if MasterIndex(ClusterPrimary) != 0 || MasterIndex(ClusterStandby) != 1 {
		t.Errorf("master indexes %d %d", MasterIndex(ClusterPrimary), MasterIndex(ClusterStandby))
	}
	// The largest lab's last node stays below the routers' .100.
	if last := NodesPerShard * MaxShards; last >= 100 {
		t.Errorf("the last node 127.0.x.%d collides with the routers", last)
	}
}

// fakeLab lays out a lab record without starting anything.
func fakeLab(t *testing.T, shards int) *Lab {
	t.Helper()
	in := &mysqld.Install{Dir: "/nonexistent/mysql"}
	l, err := newLab(t.TempDir(), shards, DefaultSSHPort, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewLabAndRouterConfig(t *testing.T) {
	l := fakeLab(t, 2)
	if len(l.Nodes) != 12 || len(l.Routers) != 2 || len(l.SSHD.Addrs) != 14 {
		t.Fatalf("%d nodes, %d routers, %d ssh addresses", len(l.Nodes), len(l.Routers), len(l.SSHD.Addrs))
	}
	ids := map[uint32]bool{}
	for _, n := range l.Nodes {
		if ids[n.ServerID] {
			t.Errorf("server id %d repeated", n.ServerID)
		}
		ids[n.ServerID] = true
		if (n.Role == RoleMaster) != (n.Index == MasterIndex(n.Cluster)) {
			t.Errorf("%s has role %s", n, n.Role)
		}
	}
	for _, c := range Clusters {
		cfg := l.routerConfig(c)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s router config: %v", c, err)
		}
		if len(cfg.DataSources) != 2 || cfg.DataSources[1].Name != "normal_1" || cfg.DataSources[1].Master != NodeName(1, MasterIndex(c)) {
			t.Errorf("%s datasources %+v", c, cfg.DataSources)
		}
		if cfg.NodeUser != InternalUser || cfg.RemotePort != "2222" || cfg.Users[0].Password != l.Credentials.RouterPassword(c) {
			t.Errorf("%s router config accounts", c)
		}
	}
	if l.routerConfig(ClusterStandby).Options["enable-read-only"] != "1" || l.routerConfig(ClusterPrimary).Options["enable-read-only"] != "" {
		t.Errorf("read-only options wrong")
	}
}

func TestWriteIni(t *testing.T) {
	l := fakeLab(t, 1)
	if err := l.writeIni(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.IniPath())
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"[source]\nhost = 127.0.1.100\nport = 16310\n", "[target]\nhost = 127.0.2.100\n",
		"mysql_password = " + l.Credentials.StandbyRouterPassword, "[nodes]\nmysql_user = admin\nmysql_password = " + l.Credentials.AdminPassword,
		"[lab]\ndir = " + l.Dir + "\nshards = 1\n", "sys_key_file = " + l.Dir + "/ssh/id_ed25519"} {
		if !strings.Contains(s, want) {
			t.Errorf("flashback.ini lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, l.Credentials.InternalPassword) {
		t.Errorf("flashback.ini holds dbscale_internal's password, which flow does not need")
	}
}

func TestDiffs(t *testing.T) {
	const u1, u2 = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4d22ab58-82db-22f2-af44-d91bbb53a673"
	n := Node{Cluster: ClusterStandby, Name: "normal_0_2", Host: "127.0.2.3", Port: MySQLPort}
	base := Difference{Cluster: n.Cluster, Node: n.Name, Reference: "primary normal_0_0"}
	if _, ok := gtidDiff(base, n, u1+":1-10", u1+":1-10"); ok {
		t.Errorf("equal sets differ")
	}
	d, ok := gtidDiff(base, n, u1+":1-10", u1+":1-7,\n"+u2+":1")
	if !ok || d.Missing != u1+":8-10" || d.Extra != u2+":1" || !strings.Contains(d.Message, "missing "+u1+":8-10 (3 transaction(s)); extra "+u2+":1") || d.MissingCount != 3 {
		t.Errorf("gtid difference %+v", d)
	}
	want := map[string]tableSum{"a.t": {3, "11"}, "a.u": {1, "5"}}
	got := map[string]tableSum{"a.t": {4, "12"}, "b.v": {0, "0"}}
	ds := tableDiffs(base, n, want, got)
	if len(ds) != 3 || ds[0].Table != "a.t" || ds[0].Rows != 4 || ds[0].WantRows != 3 ||
		ds[1].Table != "a.u" || ds[1].Rows != -1 || !strings.Contains(ds[1].Message, "missing") ||
		ds[2].Table != "b.v" || ds[2].WantRows != -1 {
		t.Errorf("table differences %+v", ds)
	}
	rep := &CheckReport{Differences: append(ds, d), Nodes: 6, Tables: 2}
	if s := rep.String(); strings.Index(s, "a.t") > strings.Index(s, "GTIDs differ") {
		t.Errorf("report does not list tables before GTIDs:\n%s", s)
	}

	// lag: the nodes that differ only lack transactions (their tables
	// trail); one extra transaction, or a node that cannot be read, is not
	// lag
	behind, _ := gtidDiff(base, n, u1+":1-10", u1+":1-7")
	other := base
	other.Node = "normal_0_0"
	otherGTID, _ := gtidDiff(other, n, u1+":1-10", u1+":1-9")
	for _, c := range []struct {
		name    string
		ds      []Difference
		lagging bool
		behind  int
		missing uint64
	}{
		{"two nodes behind, one with a trailing table", []Difference{ds[0], behind, otherGTID}, true, 2, 4},
		{"an extra transaction", []Difference{d}, false, 0, 0},
		{"a table difference without a GTID one", []Difference{ds[0]}, false, 0, 0},
		{"a node behind and one unreadable", []Difference{behind, {Kind: DiffNode, Cluster: n.Cluster, Node: "normal_0_1"}}, false, 0, 0},
	} {
		r := &CheckReport{Differences: c.ds, Nodes: 6}
		r.judgeLag()
		if r.CatchingUp != c.lagging || r.Behind != c.behind || r.Missing != c.missing {
			t.Errorf("%s: catching up %v, behind %d, missing %d; want %v, %d, %d", c.name, r.CatchingUp, r.Behind, r.Missing, c.lagging, c.behind, c.missing)
		}
		if got := strings.Contains(r.String(), "still catching up"); got != c.lagging {
			t.Errorf("%s: the verdict says catching up: %v\n%s", c.name, got, r)
		}
	}
}

func TestProcHelpers(t *testing.T) {
	self := os.Getpid()
	if !procAlive(self) || procAlive(self, "no-such-argument-xyz") {
		t.Errorf("procAlive on this process")
	}
	if procRSS(self) <= 0 {
		t.Errorf("procRSS of this process is %d", procRSS(self))
	}
	if procAlive(0) || procAlive(-1) {
		t.Errorf("procAlive accepts pid 0 or -1")
	}
}

func TestRedactSecret(t *testing.T) {
	if got := redactSecret(`server_password="S3CR3T",x`, "S3CR3T"); strings.Contains(got, "S3CR3T") {
		t.Errorf("redactSecret left the secret: %s", got)
	}
}

// TestRouterAliveFromFork: a router this process started counts as alive
// from the fork on, although until its exec its command line is still
// this program's (no "serve-dbscale" in it), and as gone once it exited.
// Before, a router polled in that window was judged dead and the lab start
// stopped it.
func TestRouterAliveFromFork(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "read line")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startChild(cmd); err != nil {
		t.Fatal(err)
	}
	r := Router{PID: cmd.Process.Pid, Dir: t.TempDir()}
	if !routerAlive(r) {
		t.Fatalf("a started child (pid %d) whose command line is not a router's counts as dead", r.PID)
	}
	stdin.Close() // the child reads EOF and exits
	deadline := time.Now().Add(10 * time.Second)
	for routerAlive(r) {
		if time.Now().After(deadline) {
			t.Fatalf("the child (pid %d) still counts as alive 10 s after its stdin closed", r.PID)
		}
		time.Sleep(10 * time.Millisecond) // poll, bounded by the deadline above
	}
}
