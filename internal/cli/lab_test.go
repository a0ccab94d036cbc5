package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// runFlow runs the CLI in-process and returns its exit code and output.
func runFlow(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestLabUsageErrors(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lab", "write"}, 2, "seconds"},
		{[]string{"lab", "write", "--seconds", "0", "--dir", empty}, 2, "--seconds 0"},
		{[]string{"lab", "write", "--seconds", "1", "--cluster", "third", "--dir", empty}, 2, "--cluster"},
		{[]string{"lab", "up", "--shards", "0", "--dir", empty}, 2, "--shards 0"},
		{[]string{"lab", "up", "--shards", "99", "--dir", empty}, 2, "--shards 99"},
		{[]string{"lab", "up", "--ssh-port", "70000", "--dir", empty}, 2, "--ssh-port"},
		{[]string{"lab", "check", "--wait", "-1s", "--dir", empty}, 2, "--wait"},
		{[]string{"lab", "write", "--seconds", "1", "--follow", "--cluster", "standby", "--dir", empty}, 2, "--follow"},
		{[]string{"lab", "check", "--acked", filepath.Join(empty, "none.json"), "--dir", empty}, 2, "--acked"},
		{[]string{"lab", "serve-dbscale"}, 2, "--dir"},
		{[]string{"lab", "status", "--dir", empty}, 1, "no lab in " + empty},
		{[]string{"lab", "down", "--dir", empty}, 1, "flow lab up"},
		{[]string{"lab", "status", "extra"}, 2, "unknown command"},
	}
	for _, c := range cases {
		code, _, stderr := runFlow(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("flow %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
	_, help, _ := runFlow("lab", "--help")
	for _, sub := range []string{"up", "status", "write", "check", "down"} {
		if !strings.Contains(help, "  "+sub+" ") {
			t.Errorf("flow lab --help does not list %s:\n%s", sub, help)
		}
	}
	if strings.Contains(help, "serve-dbscale") {
		t.Errorf("flow lab --help lists the hidden serve-dbscale")
	}
}

// TestLabCommandsEndToEnd drives a whole lab through the CLI: up, status,
// write (both clusters), check (equal, then a difference), down --remove.
func TestLabCommandsEndToEnd(t *testing.T) {
	drlabtest.Lock(t)
	// A short folder: unix socket paths inside it must stay under 108 bytes.
	parent, err := os.MkdirTemp("", "flowlab-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "lab")
	drlabtest.RecordDir(t, dir)
	var secrets []string
	var all strings.Builder
	flow := func(wantCode int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runFlow(append(args, "--dir", dir)...)
		all.WriteString(stdout + stderr)
		if code != wantCode {
			t.Fatalf("flow %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		return stdout
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "lab.json")); err == nil {
			if code, _, stderr := runFlow("lab", "down", "--remove", "--dir", dir); code != 0 {
				t.Errorf("cleanup: flow lab down: %s", stderr)
			}
		}
	})

	var up struct {
		Dir    string          `json:"dir"`
		Ini    string          `json:"ini"`
		Report *drlab.UpReport `json:"report"`
		Nodes  []drlab.Node    `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(flow(0, "lab", "up", "--json")), &up); err != nil {
		t.Fatal(err)
	}
	if up.Dir != dir || up.Report == nil || !up.Report.Created || len(up.Nodes) != 6 {
		t.Fatalf("flow lab up --json: %+v", up)
	}
	if _, err := os.Stat(up.Ini); err != nil {
		t.Fatal(err)
	}
	l, err := drlab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Credentials
	secrets = []string{c.AdminPassword, c.InternalPassword, c.PrimaryRouterPassword, c.StandbyRouterPassword}

	var st drlab.Status
	if err := json.Unmarshal([]byte(flow(0, "lab", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.AllUp || len(st.Nodes) != 6 || len(st.Routers) != 2 {
		t.Fatalf("flow lab status --json: %+v", st)
	}
	if text := flow(0, "lab", "status"); !strings.Contains(text, "normal_0_1") || !strings.Contains(text, "all up: yes") {
		t.Errorf("flow lab status:\n%s", text)
	}

	var w drlab.WriteResult
	if err := json.Unmarshal([]byte(flow(0, "lab", "write", "--seconds", "1", "--rate", "0", "--max-rows", "30", "--json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.Rows != 30 || w.FirstSeq != 1 || w.LastSeq != 30 {
		t.Errorf("flow lab write --json: %+v", w)
	}
	code, _, stderr := runFlow("lab", "write", "--seconds", "1", "--cluster", "standby", "--dir", dir)
	all.WriteString(stderr)
	if code != 1 || !strings.Contains(stderr, "read-only") {
		t.Errorf("flow lab write --cluster standby: exit %d, stderr %q; want exit 1 and read-only", code, stderr)
	}

	if text := flow(0, "lab", "status"); !strings.Contains(text, "the cluster built as primary (router 127.0.1.100:16310): now PRIMARY") ||
		!strings.Contains(text, "DR link: slave_dbscale_server -> 127.0.2.100:16310") || !strings.Contains(text, "roles: as built") {
		t.Errorf("flow lab status (as built):\n%s", text)
	}

	// The roles flipped by hand through the routers: status, write and
	// check follow them.
	drlabtest.SwitchByHand(t, l, drlab.ClusterStandby)
	if err := json.Unmarshal([]byte(flow(0, "lab", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Roles.Known || !st.Roles.Switched || st.Roles.Primary != "standby" || st.Routers[0].Role != "standby" || st.Routers[1].Role != "primary" ||
		st.Routers[1].DRLinkAddr != "127.0.1.100:16310" || st.Routers[0].DRLink || st.Routers[0].ReadOnly != "1" || st.Routers[1].ReadOnly != "0" {
		t.Errorf("flow lab status --json after the switchover: roles %+v, routers %+v", st.Roles, st.Routers)
	}
	if text := flow(0, "lab", "status"); !strings.Contains(text, "the cluster built as primary (router 127.0.1.100:16310): now STANDBY") ||
		!strings.Contains(text, "the cluster built as standby (router 127.0.2.100:16310): now PRIMARY") || !strings.Contains(text, "switched over") {
		t.Errorf("flow lab status after the switchover:\n%s", text)
	}
	w = drlab.WriteResult{}
	if err := json.Unmarshal([]byte(flow(0, "lab", "write", "--seconds", "1", "--rate", "0", "--max-rows", "5", "--json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.Cluster != "standby" || w.Role != "primary" || w.Rows != 5 || w.FirstSeq != 31 {
		t.Errorf("flow lab write after the switchover: %+v, want 5 rows through the built standby from seq 31", w)
	}
	if text := flow(0, "lab", "write", "--seconds", "1", "--max-rows", "3", "--cluster", "built-standby"); !strings.Contains(text, "wrote 3 rows through the standby (now PRIMARY) router 127.0.2.100:16310") {
		t.Errorf("flow lab write --cluster built-standby:\n%s", text)
	}
	code, _, stderr = runFlow("lab", "write", "--seconds", "1", "--cluster", "standby", "--dir", dir)
	all.WriteString(stderr)
	if code != 1 || !strings.Contains(stderr, "read-only") || !strings.Contains(stderr, "127.0.1.100:16310") {
		t.Errorf("flow lab write --cluster standby after the switchover: exit %d, stderr %q; want the old primary's router read-only", code, stderr)
	}
	followOut := flow(0, "lab", "write", "--follow", "--seconds", "1", "--rate", "200", "--json")
	var fr drlab.FollowResult
	if err := json.Unmarshal([]byte(followOut), &fr); err != nil {
		t.Fatal(err)
	}
	if fr.Rows < 10 || fr.Errors != 0 || len(fr.Segments) != 1 || fr.Segments[0].Cluster != "standby" || fr.FirstSeq != 39 || fr.Stopped {
		t.Errorf("flow lab write --follow: %+v", fr)
	}
	ackedFile := filepath.Join(parent, "writer.json")
	if err := os.WriteFile(ackedFile, []byte(followOut), 0o600); err != nil {
		t.Fatal(err)
	}
	if text := flow(0, "lab", "check", "--wait", "30s", "--acked", ackedFile); !strings.Contains(text, "check: OK") ||
		!strings.Contains(text, "the current primary (built as standby)") || !strings.Contains(text, strconv.Itoa(fr.Rows)+" acknowledged workload rows") {
		t.Errorf("flow lab check --acked after the switchover:\n%s", text)
	}
	drlabtest.SwitchByHand(t, l, drlab.ClusterPrimary)

	if text := flow(0, "lab", "check", "--wait", "30s"); !strings.Contains(text, "check: OK") || !strings.Contains(text, "built as primary") {
		t.Errorf("flow lab check:\n%s", text)
	}
	// A row only one standby node has: check exits 1 and names the table.
	n, _ := l.Node("standby", 0, 0)
	db, err := l.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "DELETE FROM flowlab.seq WHERE seq = 30"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	db.Close()
	if text := flow(1, "lab", "check", "--wait", "0s"); !strings.Contains(text, "standby normal_0_0") ||
		!strings.Contains(text, fmt.Sprintf("flowlab.seq has %d rows", fr.LastSeq-1)) {
		t.Errorf("flow lab check after a deletion on standby normal_0_0:\n%s", text)
	}

	var pids []int
	for _, p := range l.Processes() {
		pids = append(pids, p.PID)
	}
	if text := flow(0, "lab", "down", "--remove"); !strings.Contains(text, "stopped and removed") {
		t.Errorf("flow lab down:\n%s", text)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("flow lab down --remove left %s: %v", dir, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		for {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("pid %d of the lab is still in /proc after down", pid)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("password %d appears in the CLI's output", i)
		}
	}
}

// TestRouterRoleNote: the up summary names each router's current role and
// DR options, so after a switchover the router built as primary reads as
// the standby; unknown roles say why.
func TestRouterRoleNote(t *testing.T) {
	routers := []drlab.RouterRole{
		{Cluster: drlab.ClusterPrimary, SlaveDBScaleMode: "1", ReadOnly: "1"},
		{Cluster: drlab.ClusterStandby, SlaveDBScaleMode: "0", ReadOnly: "0"},
	}
	switched := drlab.Roles{Known: true, Primary: drlab.ClusterStandby, Standby: drlab.ClusterPrimary, Switched: true, Routers: routers}
	if got, want := routerRoleNote(switched, drlab.ClusterPrimary), "now STANDBY: slave-dbscale-mode=1, enable-read-only=1"; got != want {
		t.Errorf("built primary after a switchover: %q, want %q", got, want)
	}
	if got, want := routerRoleNote(switched, drlab.ClusterStandby), "now PRIMARY: slave-dbscale-mode=0, enable-read-only=0"; got != want {
		t.Errorf("built standby after a switchover: %q, want %q", got, want)
	}
	unknown := drlab.Roles{Reason: "both routers have slave-dbscale-mode 0"}
	if got := routerRoleNote(unknown, drlab.ClusterPrimary); got != "role unknown (both routers have slave-dbscale-mode 0)" {
		t.Errorf("unknown roles: %q", got)
	}
}
