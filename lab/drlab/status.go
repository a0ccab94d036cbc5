package drlab

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"
)

// probeTimeout bounds one status probe of a node or router.
const probeTimeout = 3 * time.Second

// Status is a snapshot of a lab: every node, router and the sshd. Its JSON
// form is `flow lab status --json`, stable for scripts: fields are only
// ever added.
type Status struct {
	Dir     string         `json:"dir"`
	Shards  int            `json:"shards"`
	Ini     string         `json:"ini"`
	Nodes   []NodeStatus   `json:"nodes"`
	Routers []RouterStatus `json:"routers"`
	SSHD    SSHDStatus     `json:"sshd"`
	// RSS is the summed resident memory of the lab's live processes; PSS
	// the same with shared pages counted once (the RAM the lab takes).
	RSS int64 `json:"rss_bytes"`
	PSS int64 `json:"pss_bytes"`
	// AllUp is true when every node, router and the sshd answer.
	AllUp bool `json:"all_up"`
	// Roles are the clusters' current DR roles as the routers say them
	// (a switchover swaps them; the nodes' and routers' Cluster stay the
	// built names).
	Roles Roles `json:"roles"`
}

// NodeStatus is one MySQL node.
type NodeStatus struct {
	Cluster string `json:"cluster"`
	Shard   int    `json:"shard"`
	Name    string `json:"name"`
	// Role is the role the lab was built with (master/slave).
	Role        string `json:"role"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Addr        string `json:"addr"`
	InstanceDir string `json:"instance_dir"`
	// PID is the live mysqld's pid from its pid file (0 when down).
	PID int `json:"pid"`
	// Up is true when the node accepts a connection as the admin.
	Up bool `json:"up"`
	// Error says why the node is not up or could not be read.
	Error       string        `json:"error,omitempty"`
	Replication ReplicaStatus `json:"replication"`
	// GTIDExecuted is @@GLOBAL.gtid_executed (newlines removed).
	GTIDExecuted string `json:"gtid_executed"`
	RSS          int64  `json:"rss_bytes"`
	// ClusterRole is the current role of the node's cluster (primary or
	// standby; "" while the roles are unknown). Cluster is its built name.
	ClusterRole string `json:"cluster_role"`
}

// ReplicaStatus is the part of SHOW REPLICA STATUS the lab reports.
type ReplicaStatus struct {
	// Configured is false when the node is no replica (SHOW REPLICA STATUS
	// is empty).
	Configured   bool   `json:"configured"`
	SourceHost   string `json:"source_host"`
	SourcePort   string `json:"source_port"`
	IORunning    string `json:"io_running"`
	SQLRunning   string `json:"sql_running"`
	LastIOError  string `json:"last_io_error"`
	LastSQLError string `json:"last_sql_error"`
	// SecondsBehind is Seconds_Behind_Source ("" for NULL).
	SecondsBehind string `json:"seconds_behind"`
	AutoPosition  string `json:"auto_position"`
}

// Running reports whether both replication threads run.
func (r ReplicaStatus) Running() bool { return r.IORunning == "Yes" && r.SQLRunning == "Yes" }

// RouterStatus is one router process.
type RouterStatus struct {
	Cluster string `json:"cluster"`
	Addr    string `json:"addr"`
	Dir     string `json:"dir"`
	Log     string `json:"log"`
	PID     int    `json:"pid"`
	// Running is true when the recorded pid runs the router; Up when it
	// also answers `dbscale show dataservers`.
	Running bool   `json:"running"`
	Up      bool   `json:"up"`
	Error   string `json:"error,omitempty"`
	RSS     int64  `json:"rss_bytes"`
	// Role is the current role of the router's cluster (primary or
	// standby; "" while the roles are unknown); Cluster is its built name.
	Role string `json:"role"`
	// ReadOnly and SlaveDBScaleMode are the router's enable-read-only and
	// slave-dbscale-mode ("" when unreadable).
	ReadOnly         string `json:"enable_read_only"`
	SlaveDBScaleMode string `json:"slave_dbscale_mode"`
	// DRLink is true when `dbscale show dataservers` has the
	// slave_dbscale_server row (this router feeds a DR standby);
	// DRLinkAddr is that row's host:port (the standby's router) and
	// DRLinkStatus its status.
	DRLink       bool   `json:"dr_link"`
	DRLinkAddr   string `json:"dr_link_addr,omitempty"`
	DRLinkStatus string `json:"dr_link_status,omitempty"`
	// MasterOffline lists the dataservers whose master-online-status is
	// Master_Offline (a disabled node, e.g. a drill's donor).
	MasterOffline []string `json:"master_offline"`
}

// SSHDStatus is the lab's sshd.
type SSHDStatus struct {
	Dir   string   `json:"dir"`
	Port  int      `json:"port"`
	Addrs []string `json:"addrs"`
	PID   int      `json:"pid"`
	// PIDs are every sshd process's (one per 16 addresses).
	PIDs []int `json:"pids"`
	// PasswordLogin is true when the sshd accepts a password as well.
	PasswordLogin bool  `json:"password_login"`
	Up            bool  `json:"up"`
	RSS           int64 `json:"rss_bytes"`
}

// Status probes every node (in parallel), router and the sshd.
func (l *Lab) Status(ctx context.Context) (*Status, error) {
	st := &Status{Dir: l.Dir, Shards: l.Shards, Ini: l.IniPath(), Nodes: make([]NodeStatus, len(l.Nodes))}
	roles, err := l.Roles(ctx)
	if err != nil {
		return nil, err
	}
	st.Roles = roles
	var g errgroup.Group
	g.SetLimit(6)
	for i, n := range l.Nodes {
		g.Go(func() error {
			st.Nodes[i] = l.nodeStatus(ctx, n)
			return nil
		})
	}
	for _, r := range l.Routers {
		rs := RouterStatus{Cluster: r.Cluster, Addr: r.Addr(), Dir: r.Dir, Log: r.Log, PID: r.PID, Running: routerAlive(r),
			Role: roles.Of(r.Cluster), MasterOffline: []string{}}
		for _, rr := range roles.Routers {
			if rr.Cluster == r.Cluster {
				rs.ReadOnly, rs.SlaveDBScaleMode = rr.ReadOnly, rr.SlaveDBScaleMode
			}
		}
		if rs.Running {
			rs.RSS = procRSS(r.PID)
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		if rows, err := l.routerDataservers(pctx, r); err != nil {
			rs.Error = err.Error()
		} else {
			rs.Up = true
			applyDataservers(&rs, rows)
		}
		cancel()
		st.Routers = append(st.Routers, rs)
	}
	_ = g.Wait()
	for i := range st.Nodes {
		st.Nodes[i].ClusterRole = roles.Of(st.Nodes[i].Cluster)
	}
	pids, _ := l.sshdRecorded()
	st.SSHD = SSHDStatus{Dir: l.SSHD.Dir, Port: l.SSHD.Port, Addrs: l.SSHD.Addrs, PID: l.SSHD.PID, PIDs: pids,
		PasswordLogin: l.Credentials.SSHPassword != "", Up: l.sshdAlive()}
	if st.SSHD.Up {
		for _, p := range pids {
			st.SSHD.RSS += procRSS(p)
		}
	}
	st.RSS, st.PSS = l.RSS(), l.PSS()
	st.AllUp = st.SSHD.Up
	for _, n := range st.Nodes {
		st.AllUp = st.AllUp && n.Up
	}
	for _, r := range st.Routers {
		st.AllUp = st.AllUp && r.Up
	}
	return st, nil
}

// routerDataservers runs `dbscale show dataservers` once on a router (as
// its admin): the rows by column name.
func (l *Lab) routerDataservers(ctx context.Context, r Router) ([]map[string]string, error) {
	db, err := l.OpenRouter(r.Cluster)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return queryMaps(ctx, db, "dbscale show dataservers")
}

// applyDataservers fills a router's DR link and Master_Offline
// dataservers from its `dbscale show dataservers` rows.
func applyDataservers(rs *RouterStatus, rows []map[string]string) {
	for _, row := range rows {
		if row["servername"] == DRServer {
			rs.DRLink = true
			rs.DRLinkAddr = net.JoinHostPort(row["host"], row["port"])
			rs.DRLinkStatus = row["status"]
			continue
		}
		if row["master-online-status"] == "Master_Offline" {
			rs.MasterOffline = append(rs.MasterOffline, row["servername"])
		}
	}
}

// nodeStatus probes one node.
func (l *Lab) nodeStatus(ctx context.Context, n Node) NodeStatus {
	ns := NodeStatus{
		Cluster: n.Cluster, Shard: n.Shard, Name: n.Name, Role: n.Role, Host: n.Host, Port: n.Port,
		Addr: n.Addr(), InstanceDir: n.InstanceDir,
	}
	if pid := l.mysqldPID(n); pid > 0 {
		ns.PID = pid
		ns.RSS = procRSS(pid)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	db, err := l.OpenNode(n)
	if err != nil {
		ns.Error = err.Error()
		return ns
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&ns.GTIDExecuted); err != nil {
		ns.Error = err.Error()
		return ns
	}
	ns.Up = true
	ns.GTIDExecuted = strings.ReplaceAll(ns.GTIDExecuted, "\n", "")
	rs, err := queryReplicaStatus(ctx, db)
	if err != nil {
		ns.Error = "SHOW REPLICA STATUS: " + err.Error()
	}
	ns.Replication = rs
	return ns
}

// NodeConfig returns a go-sql-driver configuration for a node as the
// lab's admin (interpolateParams=true).
func (l *Lab) NodeConfig(n Node) *mysql.Config {
	return driverConfig(l.Credentials.AdminUser, l.Credentials.AdminPassword, n.Addr())
}

// driverConfig is the go-sql-driver configuration the lab uses for every
// connection: TCP, interpolateParams=true, bounded connect and I/O.
func driverConfig(user, password, addr string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = user
	c.Passwd = password
	c.Net = "tcp"
	c.Addr = addr
	c.InterpolateParams = true
	c.Timeout = 5 * time.Second
	c.ReadTimeout = time.Minute
	c.WriteTimeout = time.Minute
	return c
}

// OpenNode returns a *sql.DB on a node as the lab's admin. The caller
// closes it.
func (l *Lab) OpenNode(n Node) (*sql.DB, error) {
	conn, err := mysql.NewConnector(l.NodeConfig(n))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	return sql.OpenDB(conn), nil
}

// replicaStatus reads SHOW REPLICA STATUS of a node.
func (l *Lab) replicaStatus(ctx context.Context, n Node) (ReplicaStatus, error) {
	db, err := l.OpenNode(n)
	if err != nil {
		return ReplicaStatus{}, err
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return queryReplicaStatus(qctx, db)
}

// queryReplicaStatus runs SHOW REPLICA STATUS (the first channel).
func queryReplicaStatus(ctx context.Context, db *sql.DB) (ReplicaStatus, error) {
	rows, err := queryMaps(ctx, db, "SHOW REPLICA STATUS")
	if err != nil || len(rows) == 0 {
		return ReplicaStatus{}, err
	}
	r := rows[0]
	return ReplicaStatus{
		Configured:    true,
		SourceHost:    r["Source_Host"],
		SourcePort:    r["Source_Port"],
		IORunning:     r["Replica_IO_Running"],
		SQLRunning:    r["Replica_SQL_Running"],
		LastIOError:   r["Last_IO_Error"],
		LastSQLError:  r["Last_SQL_Error"],
		SecondsBehind: r["Seconds_Behind_Source"],
		AutoPosition:  r["Auto_Position"],
	}, nil
}

// queryMaps returns every row of q as column → text ("" for NULL).
func queryMaps(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args ...any) ([]map[string]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = string(raw[i])
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// mysqldPID returns the live mysqld of a node from its pid file (0 when
// none).
func (l *Lab) mysqldPID(n Node) int {
	inst, err := l.Instance(n, nil)
	if err != nil {
		return 0
	}
	pid, err := inst.MysqldPID()
	if err != nil {
		return 0
	}
	return pid
}

// Process is one live process of the lab.
type Process struct {
	// What names it: "mysqld primary normal_0_0", "mysqld_safe …",
	// "router standby", "sshd", or "other" for a mysqld found by its
	// command line naming a host folder (a playbook's side instance).
	What string `json:"what"`
	PID  int    `json:"pid"`
	RSS  int64  `json:"rss_bytes"`
}

// Processes lists the lab's live processes: the recorded ones (mysqld from
// each pid file, mysqld_safe, routers, sshd), the lab's routers and sshd
// found by their command line (when the record is stale), and any other
// mysqld or
// mysqld_safe whose command line names a path inside the lab's host folders
// (a side instance a playbook started).
func (l *Lab) Processes() []Process {
	seen := map[int]bool{}
	var out []Process
	add := func(what string, pid int) {
		if pid > 0 && !seen[pid] {
			seen[pid] = true
			out = append(out, Process{What: what, PID: pid, RSS: procRSS(pid)})
		}
	}
	for _, n := range l.Nodes {
		add("mysqld "+n.Cluster+" "+n.Name, l.mysqldPID(n))
		for _, p := range procsMatching("mysqld_safe", "--defaults-file="+n.ConfigPath()) {
			add("mysqld_safe "+n.Cluster+" "+n.Name, p)
		}
		if procAlive(n.SafePID, "--defaults-file="+n.ConfigPath()) {
			add("mysqld_safe "+n.Cluster+" "+n.Name, n.SafePID)
		}
	}
	for _, r := range l.Routers {
		for _, p := range routerPIDs(r) {
			add("router "+r.Cluster, p)
		}
	}
	for _, p := range l.sshdPIDs() {
		add("sshd", p)
	}
	// Side instances a playbook started in a node's host folder.
	for _, p := range procsMatching("mysqld", filepath.Join(l.Dir, "hosts")+"/") {
		add("other", p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// PSS sums the proportional memory of the lab's live processes (shared
// pages counted once): the RAM the lab takes, less than RSS's sum.
func (l *Lab) PSS() int64 {
	var sum int64
	for _, p := range l.Processes() {
		sum += procPSS(p.PID)
	}
	return sum
}

// RSS sums the resident memory of the lab's live processes.
func (l *Lab) RSS() int64 {
	var sum int64
	for _, p := range l.Processes() {
		sum += p.RSS
	}
	return sum
}
