package drlab_test

// These tests share one lab per package run (drlabtest), built once with
// one shard; they run in this file's order: the lab's build and layout,
// status, the workload and check, a restart of the routers and a node,
// down, and finally --shards 3 with the site-like options (a second lab,
// which Main stops).

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMain(m *testing.M) { drlabtest.Main(m) }

// rows runs q and returns every row as column → text.
func rows(t *testing.T, db *sql.DB, q string, args ...any) []map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []map[string]string
	for rs.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		m := map[string]string{}
		for i, c := range cols {
			m[c] = string(raw[i])
		}
		out = append(out, m)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func one(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rs := rows(t, db, q, args...)
	if len(rs) == 0 {
		t.Fatalf("%s: no rows", q)
	}
	for _, v := range rs[0] {
		return v
	}
	return ""
}

func openRouter(t *testing.T, l *drlab.Lab, cluster string) *sql.DB {
	t.Helper()
	db, err := l.OpenRouter(cluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openNode(t *testing.T, l *drlab.Lab, n drlab.Node) *sql.DB {
	t.Helper()
	db, err := l.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// option reads a router option's value.
func option(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	for _, r := range rows(t, db, "dbscale show options like '"+name+"'") {
		if r["option_name"] == name {
			return r["value"]
		}
	}
	t.Fatalf("router has no option %s", name)
	return ""
}

// masterOnline returns the servername of each Master_Online row.
func masterOnline(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, r := range rows(t, db, "dbscale show dataservers") {
		if r["master-online-status"] == "Master_Online" {
			out = append(out, r["servername"])
		}
	}
	slices.Sort(out)
	return out
}

func TestUpOneShard(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	rep := drlabtest.CreateReport()
	if rep == nil || !rep.Created {
		t.Fatalf("the first Up did not create the lab: %+v", rep)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name+" "+p.Duration.Round(time.Millisecond).String())
	}
	t.Logf("lab up (1 shard): ready in %s; phases: %s; resident memory of its %d processes: %.2f GB",
		rep.Duration.Round(time.Millisecond), strings.Join(phases, ", "), len(l.Processes()), float64(rep.RSS)/1e9)
	if rep.RSS <= 0 || rep.RSS >= 4<<30 {
		t.Errorf("resident memory of the lab's processes is %d bytes, want above 0 and under 4 GiB", rep.RSS)
	}
	if len(l.Nodes) != 6 || len(l.Routers) != 2 {
		t.Fatalf("lab has %d nodes and %d routers, want 6 and 2", len(l.Nodes), len(l.Routers))
	}

	t.Run("addresses and roles", func(t *testing.T) {
		want := map[string]string{
			"primary normal_0_0": "127.0.1.1 master", "primary normal_0_1": "127.0.1.2 slave", "primary normal_0_2": "127.0.1.3 slave",
			"standby normal_0_0": "127.0.2.1 slave", "standby normal_0_1": "127.0.2.2 master", "standby normal_0_2": "127.0.2.3 slave",
		}
		for _, n := range l.Nodes {
			if got := n.Host + " " + n.Role; want[n.Cluster+" "+n.Name] != got || n.Port != 16315 {
				t.Errorf("%s: %s port %d, want %s port 16315", n, got, n.Port, want[n.Cluster+" "+n.Name])
			}
		}
		if a, b := l.Router("primary").Addr(), l.Router("standby").Addr(); a != "127.0.1.100:16310" || b != "127.0.2.100:16310" {
			t.Errorf("routers at %s and %s", a, b)
		}
		if got := masterOnline(t, openRouter(t, l, "primary")); !slices.Equal(got, []string{"normal_0_0"}) {
			t.Errorf("primary router's Master_Online: %v, want normal_0_0", got)
		}
		if got := masterOnline(t, openRouter(t, l, "standby")); !slices.Equal(got, []string{"normal_0_1"}) {
			t.Errorf("standby router's Master_Online: %v, want normal_0_1", got)
		}
	})

	t.Run("router options and DR link", func(t *testing.T) {
		p, s := openRouter(t, l, "primary"), openRouter(t, l, "standby")
		for db, want := range map[*sql.DB]map[string]string{
			p: {"enable-disaster-mode": "1", "enable-read-only": "0", "slave-dbscale-mode": "0"},
			s: {"enable-disaster-mode": "1", "enable-read-only": "1", "slave-dbscale-mode": "1"},
		} {
			for name, v := range want {
				if got := option(t, db, name); got != v {
					t.Errorf("router option %s = %s, want %s", name, got, v)
				}
			}
		}
		found := false
		for _, r := range rows(t, p, "dbscale show dataservers") {
			if r["servername"] == drlab.DRServer {
				found = true
				if r["host"] != "127.0.2.100" || r["port"] != "16310" {
					t.Errorf("%s points at %s:%s, want the standby router", drlab.DRServer, r["host"], r["port"])
				}
			}
		}
		if !found {
			t.Errorf("the primary router has no %s", drlab.DRServer)
		}
		for _, r := range rows(t, s, "dbscale show dataservers") {
			if r["servername"] == drlab.DRServer {
				t.Errorf("the standby router lists %s", drlab.DRServer)
			}
		}
		// Each router has its own admin password.
		cfg := l.RouterConfig("standby")
		cfg.Passwd = l.Credentials.PrimaryRouterPassword
		if db, err := sql.Open("mysql", cfg.FormatDSN()); err == nil {
			if err := db.Ping(); err == nil {
				t.Errorf("the primary router's password logs in to the standby router")
			}
			db.Close()
		}
	})

	t.Run("node layout", func(t *testing.T) {
		in, err := l.Install()
		if err != nil {
			t.Fatal(err)
		}
		name := regexp.MustCompile(`^16315-[0-9a-f]{8}$`)
		for _, n := range l.Nodes {
			if want := filepath.Join(l.Dir, "hosts", n.Host, "data", "mysqldata"); filepath.Dir(n.InstanceDir) != want || !name.MatchString(filepath.Base(n.InstanceDir)) {
				t.Errorf("%s: instance folder %s, want %s/16315-<8 hex>", n, n.InstanceDir, want)
			}
			for _, f := range []string{"dbdata", "my16315.conf", "logfile", "tmp", "socket", "pid"} {
				if _, err := os.Stat(filepath.Join(n.InstanceDir, f)); err != nil {
					t.Errorf("%s: %v", n, err)
				}
			}
			db := openNode(t, l, n)
			base := one(t, db, "SELECT @@basedir")
			if _, err := os.Stat(filepath.Join(base, "bin", "mysqld_safe")); err != nil || filepath.Clean(base) != in.BaseDir {
				t.Errorf("%s: @@basedir %s (want %s with bin/mysqld_safe): %v", n, base, in.BaseDir, err)
			}
			if v := one(t, db, "SELECT @@secure_file_priv"); v != "" {
				t.Errorf("%s: secure_file_priv %q, want empty", n, v)
			}
			if v := one(t, db, "SELECT COUNT(*) FROM information_schema.plugins WHERE plugin_name = 'clone'"); v != "0" {
				t.Errorf("%s: the clone plugin is loaded; the playbooks install it", n)
			}
			if v := one(t, db, "SELECT @@report_host"); v != n.Host {
				t.Errorf("%s: report_host %q", n, v)
			}
			// Like a production DBScale node: dbscale_tmp exists and is
			// not binlogged.
			if v := rows(t, db, "SHOW BINARY LOG STATUS"); len(v) != 1 || v[0]["Binlog_Ignore_DB"] != drlab.TmpSchema {
				t.Errorf("%s: SHOW BINARY LOG STATUS %v, want Binlog_Ignore_DB %s", n, v, drlab.TmpSchema)
			}
			if v := one(t, db, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", drlab.TmpSchema); v != "1" {
				t.Errorf("%s: no %s schema", n, drlab.TmpSchema)
			}
			if v := one(t, db, "SELECT @@skip_replica_start"); v != "0" {
				t.Errorf("%s: skip_replica_start %s, want 0", n, v)
			}
			grants := ""
			for _, r := range rows(t, db, "SHOW GRANTS FOR 'admin'@'127.%'") {
				for _, v := range r {
					grants += v + "\n"
				}
			}
			for _, p := range []string{"CLONE_ADMIN", "BACKUP_ADMIN", "REPLICATION_SLAVE_ADMIN", "SUPER", "WITH GRANT OPTION"} {
				if !strings.Contains(grants, p) {
					t.Errorf("%s: admin lacks %s", n, p)
				}
			}
			// dbscale_internal logs in with its own password.
			cfg := l.NodeConfig(n)
			cfg.User, cfg.Passwd = l.Credentials.InternalUser, l.Credentials.InternalPassword
			idb, err := sql.Open("mysql", cfg.FormatDSN())
			if err != nil {
				t.Fatal(err)
			}
			if err := idb.Ping(); err != nil {
				t.Errorf("%s: dbscale_internal cannot log in: %v", n, err)
			}
			idb.Close()
		}
		c := l.Credentials
		pws := []string{c.AdminPassword, c.InternalPassword, c.PrimaryRouterPassword, c.StandbyRouterPassword}
		for i, p := range pws {
			if len(p) < 20 || slices.Index(pws, p) != i {
				t.Errorf("password %d is short or repeated: passwords are generated per lab", i)
			}
		}
	})

	t.Run("dbscale_tmp is not replicated", func(t *testing.T) {
		// As giogii's begin does: a table in dbscale_tmp on the primary
		// master spends no GTID and reaches no other node.
		m := l.Master("primary", 0)
		db := openNode(t, l, m)
		before := one(t, db, "SELECT @@GLOBAL.gtid_executed")
		for _, q := range []string{"USE " + drlab.TmpSchema, "CREATE TABLE IF NOT EXISTS gtid (id INT PRIMARY KEY AUTO_INCREMENT, val VARCHAR(1024))",
			"INSERT INTO gtid (val) VALUES ('x')"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if after := one(t, db, "SELECT @@GLOBAL.gtid_executed"); after != before {
			t.Errorf("writing %s spent GTIDs: %q -> %q", drlab.TmpSchema, before, after)
		}
		time.Sleep(500 * time.Millisecond)
		for _, n := range l.Nodes {
			if n == m {
				continue
			}
			if v := one(t, openNode(t, l, n), "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'gtid'", drlab.TmpSchema); v != "0" {
				t.Errorf("%s has %s.gtid: it was replicated", n, drlab.TmpSchema)
			}
		}
		if _, err := db.Exec("DROP TABLE " + drlab.TmpSchema + ".gtid"); err != nil {
			t.Error(err)
		}
	})

	t.Run("files", func(t *testing.T) {
		for _, f := range []string{"lab.json", "flashback.ini"} {
			fi, err := os.Stat(filepath.Join(l.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
		cfg, err := config.Load(l.IniPath())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, sec := range []string{"source", "target"} {
			for _, k := range []string{"host", "mysql_password", "mysql_user", "mysqld_user", "port", "sys_key_file", "sys_known_hosts", "sys_port", "sys_user"} {
				keys = append(keys, sec+"."+k)
			}
		}
		keys = append(keys, "nodes.mysql_password", "nodes.mysql_user", "lab.dir", "lab.shards")
		slices.Sort(keys)
		if got := cfg.Keys(); !slices.Equal(got, keys) {
			t.Errorf("flashback.ini keys:\n%v\nwant\n%v", got, keys)
		}
		c := l.Credentials
		want := map[string]string{
			"source.host":            "127.0.1.100",
			"source.port":            "16310",
			"source.mysql_user":      "admin",
			"source.mysql_password":  c.PrimaryRouterPassword,
			"target.host":            "127.0.2.100",
			"target.port":            "16310",
			"target.mysql_user":      "admin",
			"target.mysql_password":  c.StandbyRouterPassword,
			"source.sys_user":        "root",
			"source.sys_port":        "2222",
			"source.sys_key_file":    filepath.Join(l.Dir, "ssh", "id_ed25519"),
			"target.sys_known_hosts": filepath.Join(l.Dir, "ssh", "known_hosts"),
			"nodes.mysql_user":       "admin",
			"nodes.mysql_password":   c.AdminPassword,
			"lab.dir":                l.Dir,
			"lab.shards":             "1",
		}
		for k, v := range want {
			if got, _, _ := cfg.Lookup(k); got != v {
				t.Errorf("flashback.ini %s = %q, want %q", k, got, v)
			}
		}
	})

	t.Run("ssh to every node host", func(t *testing.T) {
		key, err := os.ReadFile(filepath.Join(l.Dir, "ssh", "id_ed25519"))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ssh.ParsePrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		hk, err := knownhosts.New(filepath.Join(l.Dir, "ssh", "known_hosts"))
		if err != nil {
			t.Fatal(err)
		}
		cc := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second}
		for _, n := range l.Nodes {
			c, err := ssh.Dial("tcp", n.Host+":2222", cc)
			if err != nil {
				t.Errorf("ssh root@%s:2222: %v", n.Host, err)
				continue
			}
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.CombinedOutput("sed -n 's/^report_host=//p' " + n.ConfigPath())
			if err != nil || strings.TrimSpace(string(out)) != n.Host {
				t.Errorf("ssh %s: reading %s: %v %s", n.Host, n.ConfigPath(), err, out)
			}
			c.Close()
		}
	})
}

func TestStatusJSON(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	has := func(m map[string]any, where string, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("status JSON %s lacks %q", where, k)
			}
		}
	}
	has(doc, "", "dir", "shards", "ini", "nodes", "routers", "sshd", "rss_bytes", "all_up")
	for _, n := range doc["nodes"].([]any) {
		nm := n.(map[string]any)
		has(nm, "node", "cluster", "shard", "name", "role", "host", "port", "addr", "instance_dir", "pid", "up", "replication", "gtid_executed", "rss_bytes")
		has(nm["replication"].(map[string]any), "replication", "configured", "source_host", "io_running", "sql_running", "last_io_error", "last_sql_error", "seconds_behind")
	}
	for _, r := range doc["routers"].([]any) {
		has(r.(map[string]any), "router", "cluster", "addr", "pid", "running", "up")
	}
	has(doc["sshd"].(map[string]any), "sshd", "port", "pid", "up", "addrs")

	if !st.AllUp {
		t.Errorf("not everything is up: %s", b)
	}
	for _, n := range st.Nodes {
		r := n.Replication
		switch {
		case n.Cluster == "primary" && n.Role == "master":
			if r.Configured {
				t.Errorf("%s %s is a replica of %s", n.Cluster, n.Name, r.SourceHost)
			}
		case n.Cluster == "standby" && n.Role == "master":
			if !r.Running() || r.SourceHost != "127.0.1.1" {
				t.Errorf("standby master %s: replication %+v, want running from 127.0.1.1", n.Name, r)
			}
		default:
			want := "127.0.1.1"
			if n.Cluster == "standby" {
				want = "127.0.2.2"
			}
			if !r.Running() || r.SourceHost != want || r.AutoPosition != "1" {
				t.Errorf("%s %s: replication %+v, want running from %s with auto-position", n.Cluster, n.Name, r, want)
			}
		}
	}
	for _, r := range st.Routers {
		if !r.Running || !r.Up || r.PID <= 0 {
			t.Errorf("router %+v", r)
		}
	}
}

func TestWriteAndCheck(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	ctx := context.Background()
	w1, err := l.Write(ctx, drlab.WriteOptions{Cluster: "primary", Duration: time.Second, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if w1.Rows == 0 || w1.LastSeq-w1.FirstSeq+1 != int64(w1.Rows) {
		t.Fatalf("first write: %+v", w1)
	}
	w2, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 25})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Rows != 25 || w2.FirstSeq != w1.LastSeq+1 || w2.LastSeq != w1.LastSeq+25 {
		t.Fatalf("second write %+v does not continue after the first %+v", w2, w1)
	}

	rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Tables < 1 {
		t.Fatalf("check after replication caught up: %s", rep)
	}
	t.Logf("check: %d attempt(s) in %s", rep.Attempts, rep.Duration.Round(time.Millisecond))

	// The standby is read-only: its router refuses, nothing is written.
	ws, err := l.Write(ctx, drlab.WriteOptions{Cluster: "standby", Duration: time.Second})
	if !errors.Is(err, drlab.ErrReadOnly) || ws == nil || ws.Rows != 0 {
		t.Fatalf("write through the standby router: %+v, %v; want ErrReadOnly and no rows", ws, err)
	}
	if !strings.Contains(err.Error(), "127.0.2.100:16310") || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("the error does not say which router refused and why: %v", err)
	}

	// A row only one standby node has (sql_log_bin=0: no GTID) is found.
	victim, _ := l.Node("standby", 0, 2)
	db := openNode(t, l, victim)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET SESSION sql_log_bin = 0")
	exec("INSERT INTO flowlab.seq (seq, cluster, written_at) VALUES (?, 'injected', NOW(6))", w2.LastSeq+1000)
	rep, err = l.Check(ctx, drlab.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Differences) != 1 {
		t.Fatalf("check after the injection: want exactly one difference, got:\n%s", rep)
	}
	d := rep.Differences[0]
	if d.Kind != drlab.DiffTable || d.Cluster != "standby" || d.Node != "normal_0_2" || d.Table != "flowlab.seq" || d.Rows != d.WantRows+1 || d.Checksum == d.WantChecksum {
		t.Errorf("difference %+v, want flowlab.seq on standby normal_0_2 with one row more", d)
	}
	t.Logf("injected difference reported as: %s", d.Message)
	exec("DELETE FROM flowlab.seq WHERE cluster = 'injected'")
	if rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 10 * time.Second}); err != nil || !rep.OK {
		t.Fatalf("check after removing the injected row: %v\n%s", err, rep)
	}

	// A node whose applier is stopped is reported as catching up, not as
	// diverged; once it applies again, the check is OK.
	exec("STOP REPLICA SQL_THREAD")
	w3, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 20})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = l.Check(ctx, drlab.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exec("START REPLICA SQL_THREAD")
	if rep.OK || !rep.CatchingUp || rep.Behind < 1 || rep.Missing < uint64(w3.Rows) || !strings.Contains(rep.String(), "still catching up") {
		t.Fatalf("check with the applier of %s stopped behind %d rows: want catching up, at least 1 node and %d transactions behind:\n%s", victim, w3.Rows, w3.Rows, rep)
	}
	t.Logf("stopped applier reported as: %s", strings.TrimSpace(rep.String()[strings.LastIndex(strings.TrimSpace(rep.String()), "\n")+1:]))
	if rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 30 * time.Second}); err != nil || !rep.OK {
		t.Fatalf("check after the lock was released: %v\n%s", err, rep)
	}
}

// waitNoProc polls /proc until pid is gone (a zombie is reaped by its
// parent shortly).
func waitNoProc(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Errorf("%s (pid %d) still in /proc after 15s: %s", what, pid, stat)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecheckNamesAStoppedReplica: Up on a lab where a standby slave's
// receiver was stopped on purpose (as a drill does) warns naming it at
// once instead of waiting out its bound for a thread nobody starts.
func TestRecheckNamesAStoppedReplica(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	ctx := context.Background()
	n, _ := l.Node("standby", 0, 1)
	db, err := l.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "STOP REPLICA IO_THREAD"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := db.ExecContext(ctx, "START REPLICA"); err != nil {
			t.Errorf("start the replica again: %v", err)
		}
	}()
	_, rep, err := drlab.Up(ctx, drlab.Options{Dir: l.Dir})
	if err != nil {
		t.Fatal(err)
	}
	want := n.String() + ": replication IO thread stopped"
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.HasPrefix(w, want) }) {
		t.Errorf("warnings %q: none starts with %q", rep.Warnings, want)
	}
}

func TestRestartMidway(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	ctx := context.Background()
	// A dynamic change on each router, which only their state.json keeps.
	s := openRouter(t, l, "standby")
	if _, err := s.ExecContext(ctx, "dbscale set global 'max-replication-delay' = 77"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 50}); err != nil {
		t.Fatal(err)
	}

	// Kill both routers and stop a standby slave.
	old := map[string]int{}
	for _, r := range l.Routers {
		old[r.Cluster] = r.PID
		if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill the %s router (pid %d): %v", r.Cluster, r.PID, err)
		}
		waitNoProc(t, r.PID, r.Cluster+" router")
	}
	victim, _ := l.Node("standby", 0, 2)
	inst, err := l.Instance(victim, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.AllUp {
		t.Fatalf("status says all up with both routers killed and a node stopped")
	}
	// Replication goes on without the routers: they are not in its path.
	if _, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 1}); err == nil {
		t.Fatalf("a write through a killed router succeeded")
	}

	l2, rep, err := drlab.Up(ctx, drlab.Options{Dir: l.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created {
		t.Fatalf("Up rebuilt the lab instead of restarting it")
	}
	for _, want := range []string{"primary router", "standby router", "standby normal_0_2"} {
		if !slices.Contains(rep.Started, want) {
			t.Errorf("Up started %v, want %s among them", rep.Started, want)
		}
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings after the restart: %v", rep.Warnings)
	}
	for _, r := range l2.Routers {
		if r.PID == old[r.Cluster] || r.PID <= 0 {
			t.Errorf("%s router pid %d after the restart (was %d)", r.Cluster, r.PID, old[r.Cluster])
		}
	}
	if got := option(t, openRouter(t, l2, "standby"), "max-replication-delay"); got != "77" {
		t.Errorf("the standby router lost its state: max-replication-delay = %s, want 77", got)
	}
	found := false
	for _, r := range rows(t, openRouter(t, l2, "primary"), "dbscale show datasource type=replication") {
		if r["SlaveSource"] == drlab.DRSource && r["SlaveDBScale"] == "Yes" {
			found = true
		}
	}
	if !found {
		t.Errorf("the primary router lost its DR link over the restart")
	}
	if _, err := l2.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 50}); err != nil {
		t.Fatal(err)
	}
	if rep, err := l2.Check(ctx, drlab.CheckOptions{Wait: 30 * time.Second}); err != nil || !rep.OK {
		t.Fatalf("check after the restart: %v\n%s", err, rep)
	}
}

// TestSwitchoverByHand flips the roles through the routers the way a
// planned switchover does (drlabtest.SwitchByHand), with a follow writer
// running, and checks that status, write and check follow the roles; then
// a half-done state (both routers primaries) is reported as unknown, and
// the roles are switched back.
func TestSwitchoverByHand(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	ctx := context.Background()
	roles, err := l.Roles(ctx)
	if err != nil || !roles.Known || roles.Switched || roles.Primary != "primary" {
		t.Fatalf("roles as built: %+v, %v", roles, err)
	}

	// follow runs a follow writer around a hand switchover to newPrimary.
	follow := func(newPrimary string) *drlab.FollowResult {
		t.Helper()
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		type out struct {
			res *drlab.FollowResult
			err error
		}
		done := make(chan out, 1)
		go func() {
			res, err := l.Follow(wctx, drlab.FollowOptions{Duration: time.Minute, Rate: 0})
			done <- out{res, err}
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		steps := drlabtest.SwitchByHand(t, l, newPrimary)
		took := time.Since(start)
		time.Sleep(300 * time.Millisecond)
		stop()
		var o out
		select {
		case o = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the follow writer did not stop within 10s of its context's end")
		}
		if o.err != nil || o.res == nil {
			t.Fatalf("follow writer: %+v, %v", o.res, o.err)
		}
		var parts []string
		for _, s := range steps {
			parts = append(parts, s.Router+": "+s.Query+" "+s.Duration.Round(time.Microsecond).String())
		}
		res := o.res
		t.Logf("hand switchover to the built %s in %s:\n  %s", newPrimary, took.Round(time.Millisecond), strings.Join(parts, "\n  "))
		t.Logf("follow writer: %s", res)
		other := "primary"
		if newPrimary == "primary" {
			other = "standby"
		}
		g := res.LongestGap
		if !res.Stopped || res.Rows < 10 || res.Switches != 1 || len(res.Segments) != 2 ||
			res.Segments[0].Cluster != other || res.Segments[1].Cluster != newPrimary ||
			res.Segments[1].FirstSeq != res.Segments[0].LastSeq+1 || len(res.InDoubt) != 0 {
			t.Errorf("follow writer across the switchover: %+v", res)
		}
		// The outage spans the switchover from the freeze to the opening
		// (about its whole time) plus at most a poll round: the gap between
		// the last write through the old primary and the first through the
		// new. (The longest gap, which the writer reports as the outage, is
		// at least that long; on a busy machine another gap can be longer.)
		if len(res.Segments) == 2 {
			sw := res.Segments[1].FirstAt.Sub(res.Segments[0].LastAt)
			if sw < took/2 || sw > took+200*time.Millisecond || g.Duration < sw || res.Errors < 1 ||
				res.ErrorsByKind[drlab.FollowReadOnly] != res.Errors {
				t.Errorf("the gap across the switch %s (longest gap %+v, errors %v) is not the switchover's (which took %s)", sw, g, res.ErrorsByKind, took)
			}
		}
		return res
	}

	res1 := follow("standby")
	roles, err = l.Roles(ctx)
	if err != nil || !roles.Known || !roles.Switched || roles.Primary != "standby" || roles.Standby != "primary" {
		t.Fatalf("roles after the switchover: %+v, %v", roles, err)
	}

	// status names each cluster's current role and the routers' DR state.
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.AllUp || !st.Roles.Switched {
		t.Errorf("status after the switchover: all up %v, roles %+v", st.AllUp, st.Roles)
	}
	for _, r := range st.Routers {
		switch r.Cluster {
		case "standby":
			if r.Role != "primary" || r.ReadOnly != "0" || r.SlaveDBScaleMode != "0" || !r.DRLink || r.DRLinkAddr != "127.0.1.100:16310" || len(r.MasterOffline) != 0 {
				t.Errorf("the new primary's router: %+v", r)
			}
		case "primary":
			if r.Role != "standby" || r.ReadOnly != "1" || r.SlaveDBScaleMode != "1" || r.DRLink {
				t.Errorf("the new standby's router: %+v", r)
			}
		}
	}
	for _, n := range st.Nodes {
		want := map[string]string{"primary": "standby", "standby": "primary"}[n.Cluster]
		if n.ClusterRole != want {
			t.Errorf("%s %s: cluster_role %q, want %q", n.Cluster, n.Name, n.ClusterRole, want)
		}
		// Replication flows new primary -> old primary.
		if n.Cluster == "primary" && n.Role == drlab.RoleMaster && (!n.Replication.Running() || n.Replication.SourceHost != "127.0.2.2") {
			t.Errorf("the old primary's master %s: replication %+v, want running from 127.0.2.2", n.Name, n.Replication)
		}
		if n.Cluster == "standby" && n.Role == drlab.RoleMaster && n.Replication.Configured {
			t.Errorf("the new primary's master %s is still a replica: %+v", n.Name, n.Replication)
		}
	}

	// write: the default is the current primary; "standby" the old primary.
	w, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 40})
	if err != nil || w.Cluster != "standby" || w.Role != "primary" || w.Router != "127.0.2.100:16310" || w.Rows != 40 || w.FirstSeq != res1.LastSeq+1 {
		t.Fatalf("write to the current primary: %+v, %v", w, err)
	}
	ws, err := l.Write(ctx, drlab.WriteOptions{Cluster: "standby", Duration: time.Second})
	if !errors.Is(err, drlab.ErrReadOnly) || ws == nil || ws.Rows != 0 || !strings.Contains(err.Error(), "127.0.1.100:16310") ||
		!strings.Contains(err.Error(), "primary (now standby)") {
		t.Errorf("write to the current standby: %+v, %v; want read-only from 127.0.1.100:16310", ws, err)
	}
	if wb, err := l.Write(ctx, drlab.WriteOptions{Cluster: drlab.BuiltStandby, Duration: time.Second, MaxRows: 5}); err != nil || wb.Cluster != "standby" || wb.Rows != 5 {
		t.Errorf("write to the built standby: %+v, %v", wb, err)
	}

	// check: the reference is the new primary's master; every acknowledged
	// row is on every node.
	acked := append(res1.Acked(), drlab.SeqRange{First: w.FirstSeq, Last: w.LastSeq})
	rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 30 * time.Second, Acked: acked})
	if err != nil || !rep.OK || rep.ReferenceCluster != "standby" || rep.AckedRows != int64(res1.Rows+40) {
		t.Fatalf("check after the switchover: %v\n%s", err, rep)
	}
	t.Logf("check after the switchover: %s", strings.TrimSpace(rep.String()))
	// A row taken from the new primary's master alone (no binlog): every
	// other node differs from it, and it lacks an acknowledged row.
	ref := l.Master("standby", 0)
	db := openNode(t, l, ref)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var id, seq int64
	var clu, at string
	if err := conn.QueryRowContext(ctx, "SELECT id, seq, cluster, written_at FROM flowlab.seq WHERE seq = ?", w.LastSeq).Scan(&id, &seq, &clu, &at); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", fmt.Sprintf("DELETE FROM flowlab.seq WHERE seq = %d", w.LastSeq)} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = l.Check(ctx, drlab.CheckOptions{Acked: acked})
	if err != nil || rep.OK {
		t.Fatalf("check after a deletion on the reference: %v\n%s", err, rep)
	}
	kinds := map[string]int{}
	for _, d := range rep.Differences {
		kinds[d.Kind]++
		if d.Reference != "standby normal_0_1" {
			t.Errorf("difference against %q, want the new primary's master standby normal_0_1: %s", d.Reference, d.Message)
		}
		if d.Kind == drlab.DiffAcked && (d.Node != "normal_0_1" || d.Cluster != "standby" || d.FirstMissing != w.LastSeq || d.MissingAcked != 1) {
			t.Errorf("acked difference %+v", d)
		}
	}
	if kinds[drlab.DiffTable] != 5 || kinds[drlab.DiffAcked] != 1 {
		t.Errorf("differences by kind %v, want 5 table and 1 acked:\n%s", kinds, rep)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO flowlab.seq (id, seq, cluster, written_at) VALUES (?, ?, ?, ?)", id, seq, clu, at); err != nil {
		t.Fatal(err)
	}
	if rep, err := l.Check(ctx, drlab.CheckOptions{Acked: acked}); err != nil || !rep.OK {
		t.Fatalf("check after restoring the row: %v\n%s", err, rep)
	}

	// Half-done: both routers out of slave-dbscale-mode. The roles are
	// unknown, a write to "the primary" refuses, a built name still works.
	old := openRouter(t, l, "primary")
	if _, err := old.ExecContext(ctx, "dbscale set global 'slave-dbscale-mode' = 0"); err != nil {
		t.Fatal(err)
	}
	roles, err = l.Roles(ctx)
	if err != nil || roles.Known || !strings.Contains(roles.Reason, "neither router") {
		t.Errorf("roles with both routers in slave-dbscale-mode 0: %+v, %v", roles, err)
	}
	if _, err := l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 1}); !errors.Is(err, drlab.ErrRolesUnknown) {
		t.Errorf("write to the primary with unknown roles: %v, want ErrRolesUnknown", err)
	}
	if st, err := l.Status(ctx); err != nil || st.Roles.Known || st.Routers[0].Role != "" || st.Nodes[0].ClusterRole != "" {
		t.Errorf("status with unknown roles: %+v, %v", st.Roles, err)
	}
	if rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 10 * time.Second}); err != nil || rep.ReferenceCluster != "primary" || !strings.Contains(rep.Note, "unknown") {
		t.Errorf("check with unknown roles: %v\n%s", err, rep)
	}
	if _, err := old.ExecContext(ctx, "dbscale set global 'slave-dbscale-mode' = 1"); err != nil {
		t.Fatal(err)
	}

	// And back: the lab is as built again.
	res2 := follow("primary")
	roles, err = l.Roles(ctx)
	if err != nil || !roles.Known || roles.Switched {
		t.Fatalf("roles after switching back: %+v, %v", roles, err)
	}
	w, err = l.Write(ctx, drlab.WriteOptions{Duration: time.Second, MaxRows: 10})
	if err != nil || w.Cluster != "primary" || w.Role != "primary" {
		t.Fatalf("write after switching back: %+v, %v", w, err)
	}
	acked = append(append(acked, res2.Acked()...), drlab.SeqRange{First: w.FirstSeq, Last: w.LastSeq})
	if rep, err := l.Check(ctx, drlab.CheckOptions{Wait: 30 * time.Second, Acked: acked}); err != nil || !rep.OK || rep.ReferenceCluster != "primary" {
		t.Fatalf("check after switching back: %v\n%s", err, rep)
	}
	t.Logf("write outage measured by the follow writer: %.1f ms to the built standby, %.1f ms back", res1.LongestGap.Millis, res2.LongestGap.Millis)
}

// TestDownLeavesNoProcess stops the package's one-shard lab (TestShardsTwo,
// last, builds another).
func TestDownLeavesNoProcess(t *testing.T) {
	l := drlabtest.Lab(t, 1)
	procs := l.Processes()
	kinds := map[string]int{}
	for _, p := range procs {
		kinds[strings.Fields(p.What)[0]]++
	}
	nodes := len(l.Nodes)
	if kinds["mysqld"] != nodes || kinds["mysqld_safe"] != nodes || kinds["router"] != 2 || kinds["sshd"] != 1 {
		t.Fatalf("the lab's processes before down: %v (want %d mysqld, %d mysqld_safe, 2 routers, 1 sshd)", kinds, nodes, nodes)
	}
	// After everything the earlier tests did: no password in any log or
	// option file the lab's processes wrote (lab.json, flashback.ini and
	// the routers' topology.yaml hold them by design, mode 0600).
	c := l.Credentials
	secrets := []string{c.AdminPassword, c.InternalPassword, c.PrimaryRouterPassword, c.StandbyRouterPassword}
	logs := 0
	err := filepath.WalkDir(l.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".log") || strings.HasSuffix(path, ".conf")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		logs++
		for i, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("password %d appears in %s", i, path)
			}
		}
		return nil
	})
	if err != nil || logs < 2*len(l.Nodes)+3 {
		t.Errorf("scanned %d log and option files (%v)", logs, err)
	}

	if err := l.Down(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		waitNoProc(t, p.PID, p.What)
	}
	if left := l.Processes(); len(left) > 0 {
		t.Errorf("processes left: %+v", left)
	}
	if _, err := os.Stat(l.Dir); err != nil {
		t.Errorf("down without --remove removed the folder: %v", err)
	}
}

// TestShardsThreeSiteLike builds the second lab with three shards (20
// addresses: more than one OpenSSH process can bind, so two sshd) and the
// site-like options (--ssh-password, --shared-account), so one build
// covers both.
func TestShardsThreeSiteLike(t *testing.T) {
	l := drlabtest.LabWith(t, 3, drlabtest.Site{SSHPassword: true, SharedAccount: true})
	if len(l.Nodes) != 18 {
		t.Fatalf("%d nodes, want 18", len(l.Nodes))
	}
	if rep := drlabtest.CreateReport(); rep != nil {
		t.Logf("lab up (3 shards): ready in %s; resident memory %.2f GB", rep.Duration.Round(time.Millisecond), float64(rep.RSS)/1e9)
	}
	for _, c := range drlab.Clusters {
		db := openRouter(t, l, c)
		var servers, sources []string
		for _, r := range rows(t, db, "dbscale show dataservers") {
			servers = append(servers, r["servername"])
		}
		for _, r := range rows(t, db, "dbscale show datasource type=replication") {
			if !slices.Contains(sources, r["Name"]) {
				sources = append(sources, r["Name"])
			}
		}
		for _, want := range []string{"normal_0_0", "normal_0_1", "normal_0_2", "normal_1_0", "normal_1_1", "normal_1_2", "normal_2_0", "normal_2_2"} {
			if !slices.Contains(servers, want) {
				t.Errorf("%s router: dataservers %v lack %s", c, servers, want)
			}
		}
		if !slices.Equal(sources, []string{"normal_0", "normal_1", "normal_2"}) {
			t.Errorf("%s router: replication datasources %v, want normal_0 to normal_2", c, sources)
		}
		wantMasters := []string{"normal_0_0", "normal_1_0", "normal_2_0"}
		if c == "standby" {
			wantMasters = []string{"normal_0_1", "normal_1_1", "normal_2_1"}
		}
		if got := masterOnline(t, db); !slices.Equal(got, wantMasters) {
			t.Errorf("%s router: Master_Online %v, want %v", c, got, wantMasters)
		}
	}
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.AllUp || len(st.SSHD.PIDs) != 2 || !st.SSHD.PasswordLogin {
		t.Errorf("status: all up %v, sshd pids %v, password login %v; want all up, 2 sshd, password login", st.AllUp, st.SSHD.PIDs, st.SSHD.PasswordLogin)
	}
	for _, n := range st.Nodes {
		if n.Cluster == "standby" && n.Role == "master" {
			want := drlab.NodeHost("primary", n.Shard, 0)
			if !n.Replication.Running() || n.Replication.SourceHost != want {
				t.Errorf("standby %s replicates %+v, want from %s", n.Name, n.Replication, want)
			}
		}
	}

	t.Run("one account on routers and nodes", func(t *testing.T) {
		cfg, err := config.Load(l.IniPath())
		if err != nil {
			t.Fatal(err)
		}
		get := func(k string) string { v, _, _ := cfg.Lookup(k); return v }
		c := l.Credentials
		for _, k := range []string{"source", "target", "nodes"} {
			if get(k+".mysql_user") != "admin" || get(k+".mysql_password") != c.AdminPassword {
				t.Errorf("flashback.ini [%s] does not use the shared admin account", k)
			}
		}
		for _, cl := range drlab.Clusters {
			rc := l.RouterConfig(cl)
			rc.User, rc.Passwd = c.AdminUser, c.AdminPassword
			db, err := sql.Open("mysql", rc.FormatDSN())
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Ping(); err != nil {
				t.Errorf("%s router: the nodes' admin account does not log in: %v", cl, err)
			}
			db.Close()
		}
	})

	t.Run("ssh by password", func(t *testing.T) {
		cfg, err := config.Load(l.IniPath())
		if err != nil {
			t.Fatal(err)
		}
		pw, _, _ := cfg.Lookup("source.sys_password")
		if pw == "" || pw != l.Credentials.SSHPassword {
			t.Fatalf("flashback.ini source.sys_password is not the lab's SSH password")
		}
		if v, _, _ := cfg.Lookup("target.sys_password"); v != pw {
			t.Errorf("target.sys_password differs")
		}
		known, _, _ := cfg.Lookup("source.sys_known_hosts")
		hk, err := knownhosts.New(known)
		if err != nil {
			t.Fatal(err)
		}
		// The first and the last node host: served by different sshd.
		for _, n := range []drlab.Node{l.Nodes[0], l.Nodes[len(l.Nodes)-1]} {
			cc := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.Password(pw)}, HostKeyCallback: hk, Timeout: 10 * time.Second}
			c, err := ssh.Dial("tcp", n.Host+":2222", cc)
			if err != nil {
				t.Errorf("ssh root@%s:2222 by password: %v", n.Host, err)
				continue
			}
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.CombinedOutput("test -d " + n.InstanceDir + " && echo ok")
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Errorf("ssh %s: %v %s", n.Host, err, out)
			}
			c.Close()
			cc.Auth = []ssh.AuthMethod{ssh.Password(pw + "x")}
			if c, err := ssh.Dial("tcp", n.Host+":2222", cc); err == nil {
				c.Close()
				t.Errorf("ssh %s: a wrong password logged in", n.Host)
			}
		}
	})

	if _, err := l.Write(context.Background(), drlab.WriteOptions{Duration: time.Second, MaxRows: 50}); err != nil {
		t.Fatal(err)
	}
	if rep, err := l.Check(context.Background(), drlab.CheckOptions{Wait: 30 * time.Second}); err != nil || !rep.OK {
		t.Fatalf("check: %v\n%s", err, rep)
	}
}
