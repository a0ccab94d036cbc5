package drlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/sshd"
	"golang.org/x/sync/errgroup"
)

// Bounds of Up's waits.
const (
	// replicationTimeout bounds the wait for every replica to run.
	replicationTimeout = 90 * time.Second
	// recheckTimeout bounds the wait for replicas of a restarted lab.
	recheckTimeout = 30 * time.Second
	// defaultParallel is how many nodes are created at once (the machine
	// has two cores; mysqld start-up is partly I/O).
	defaultParallel = 3
)

// Options configure Up.
type Options struct {
	// Dir is the lab folder (default DefaultDir).
	Dir string
	// Shards is the number of replication datasources normal_0 …; 0 means
	// 1 for a new lab and the recorded number for an existing one.
	Shards int
	// SSHPort is sshd's port; 0 means DefaultSSHPort for a new lab and the
	// recorded port for an existing one.
	SSHPort int
	// SSHPassword makes a new lab's sshd accept a generated password for
	// root besides the key (host keys still verified), written to
	// flashback.ini as sys_password: sites and older tools log in with
	// passwords. An existing lab keeps what it was built with.
	SSHPassword bool
	// SharedAccount gives a new lab one account for routers and nodes:
	// the routers' admin login is the nodes' admin account with its
	// password, as at the seed's site. An existing lab keeps its accounts.
	SharedAccount bool
	// Parallel bounds how many nodes are created or started at once
	// (default 3).
	Parallel int
	// Log receives progress lines (never a password); nil discards them.
	Log io.Writer
	// Executable is the program re-executed to serve a router (with
	// ServeCommand's arguments); empty means this program.
	Executable string
}

// UpReport says what Up did.
type UpReport struct {
	// Created is true when Up built a new lab, false when it restarted
	// what was down in an existing one.
	Created bool `json:"created"`
	// Started lists what Up started ("primary normal_0_0", "standby
	// router", "sshd"); empty when everything was up already.
	Started []string `json:"started"`
	// Warnings are things a restarted lab may show during a drill
	// (a replica not running), which Up reports but does not fix.
	Warnings []string `json:"warnings"`
	// Phases are the wall times of Up's phases, in order.
	Phases []Phase `json:"phases"`
	// Duration is Up's total wall time.
	Duration time.Duration `json:"duration_ns"`
	// RSS is the summed resident memory of the lab's processes after Up.
	RSS int64 `json:"rss_bytes"`
	// PSS is the same with shared pages counted once (the RAM it takes).
	PSS int64 `json:"pss_bytes"`
}

// Phase is one timed part of Up.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// upRun carries one Up call's options and progress output.
type upRun struct {
	o      Options
	start  time.Time
	mu     sync.Mutex
	report *UpReport
	phase  time.Time
}

func (u *upRun) logf(format string, args ...any) {
	if u.o.Log == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.o.Log, "lab: %6.1fs  %s\n", time.Since(u.start).Seconds(), fmt.Sprintf(format, args...))
}

func (u *upRun) started(what string) {
	u.mu.Lock()
	u.report.Started = append(u.report.Started, what)
	u.mu.Unlock()
}

func (u *upRun) endPhase(name string) {
	now := time.Now()
	u.report.Phases = append(u.report.Phases, Phase{Name: name, Duration: now.Sub(u.phase)})
	u.phase = now
}

// Up creates the lab in o.Dir, or, when o.Dir already holds one, starts
// whatever of it is down (nodes, routers, sshd) and re-checks replication.
// It installs MySQL and OpenSSH first when they are missing. A new lab is
// ready when Up returns: every replica runs, the standby masters replicate
// from the primary masters through the DR link the primary router set up,
// and DIR/flashback.ini is written. If creating fails, Up stops what it
// started and keeps the folder (its logs) for a look.
func Up(ctx context.Context, o Options) (*Lab, *UpReport, error) {
	u := &upRun{o: o, start: time.Now(), report: &UpReport{Started: []string{}, Warnings: []string{}}}
	u.phase = u.start
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, nil, err
	}
	u.o.Dir = dir
	if u.o.Parallel <= 0 {
		u.o.Parallel = defaultParallel
	}
	if o.Shards < 0 || o.Shards > MaxShards {
		return nil, nil, fmt.Errorf("--shards %d: the lab takes 1 to %d shards", o.Shards, MaxShards)
	}
	if o.SSHPort < 0 || o.SSHPort > 65535 {
		return nil, nil, fmt.Errorf("--ssh-port %d is out of range", o.SSHPort)
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	in, err := EnsureMySQL(ctx, logw)
	if err != nil {
		return nil, nil, err
	}
	if err := EnsureSSH(ctx); err != nil {
		return nil, nil, err
	}
	u.endPhase("install check")

	var l *Lab
	existing, err := Load(dir)
	switch {
	case err == nil:
		l = existing
		if o.Shards != 0 && o.Shards != l.Shards {
			return nil, nil, fmt.Errorf("the lab in %s has %d shard(s), not %d: run `flow lab down --remove --dir %s` first to build another", dir, l.Shards, o.Shards, dir)
		}
		if o.SSHPort != 0 && o.SSHPort != l.SSHD.Port {
			return nil, nil, fmt.Errorf("the lab in %s uses SSH port %d, not %d: run `flow lab down --remove --dir %s` first to change it", dir, l.SSHD.Port, o.SSHPort, dir)
		}
		if (o.SSHPassword && l.Credentials.SSHPassword == "") || (o.SharedAccount && !l.Credentials.Shared) {
			return nil, nil, fmt.Errorf("the lab in %s was built without --ssh-password or --shared-account: run `flow lab down --remove --dir %s` first to build it with them", dir, dir)
		}
		err = u.restart(ctx, l, in)
	case errors.Is(err, ErrNoLab):
		u.report.Created = true
		l, err = u.create(ctx, in)
	default:
		return nil, nil, err
	}
	u.report.Duration = time.Since(u.start)
	if l != nil {
		u.report.RSS, u.report.PSS = l.RSS(), l.PSS()
	}
	if err != nil {
		return l, u.report, err
	}
	u.logf("ready in %.1fs; config %s", u.report.Duration.Seconds(), l.IniPath())
	return l, u.report, nil
}

// newLab lays out a new lab's record: credentials, nodes, routers, sshd.
func newLab(dir string, shards, sshPort int, in *mysqld.Install, o Options) (*Lab, error) {
	l := &Lab{
		Format:    labFormat,
		Dir:       dir,
		Shards:    shards,
		CreatedAt: time.Now().UTC().Truncate(time.Second),
		MySQLHome: in.Dir,
		Credentials: Credentials{
			AdminUser:             AdminUser,
			AdminPassword:         mysqld.NewPassword(),
			InternalUser:          InternalUser,
			InternalPassword:      mysqld.NewPassword(),
			RouterUser:            RouterUser,
			PrimaryRouterPassword: mysqld.NewPassword(),
			StandbyRouterPassword: mysqld.NewPassword(),
		},
	}
	if o.SharedAccount {
		c := &l.Credentials
		c.Shared = true
		c.RouterUser = c.AdminUser
		c.PrimaryRouterPassword, c.StandbyRouterPassword = c.AdminPassword, c.AdminPassword
	}
	var addrs []string
	for ci, c := range Clusters {
		for k := range shards {
			for i := range NodesPerShard {
				host := NodeHost(c, k, i)
				suffix := make([]byte, 4)
				if _, err := rand.Read(suffix); err != nil {
					return nil, err
				}
				hostDir := filepath.Join(dir, "hosts", host)
				role := RoleSlave
				if i == MasterIndex(c) {
					role = RoleMaster
				}
				l.Nodes = append(l.Nodes, Node{
					Cluster:     c,
					Shard:       k,
					Index:       i,
					Name:        NodeName(k, i),
					Host:        host,
					Port:        MySQLPort,
					Role:        role,
					ServerID:    uint32(1000*(ci+1) + NodesPerShard*k + i + 1),
					HostDir:     hostDir,
					InstanceDir: filepath.Join(hostDir, "data", "mysqldata", strconv.Itoa(MySQLPort)+"-"+hex.EncodeToString(suffix)),
				})
				addrs = append(addrs, host)
			}
		}
	}
	for _, c := range Clusters {
		rdir := filepath.Join(dir, "routers", c)
		l.Routers = append(l.Routers, Router{
			Cluster: c, Host: RouterHost(c), Port: RouterPort, Dir: rdir, Log: filepath.Join(rdir, routerLogFile),
		})
		addrs = append(addrs, RouterHost(c))
	}
	sdir := filepath.Join(dir, "ssh")
	l.SSHD = SSHD{
		Dir: sdir, Port: sshPort, Addrs: addrs, User: SSHUser,
		KeyFile: filepath.Join(sdir, "id_ed25519"), KnownHosts: filepath.Join(sdir, "known_hosts"),
	}
	if o.SSHPassword {
		l.Credentials.SSHPassword = mysqld.NewPassword()
		l.SSHD.PasswordLogin = true
	}
	return l, nil
}

// portFree fails when something listens on addr already.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is taken by another process (%v): is another lab running? (`flow lab status`, `flow lab down`)", addr, err)
	}
	return ln.Close()
}

// create builds a new lab in u.o.Dir.
func (u *upRun) create(ctx context.Context, in *mysqld.Install) (*Lab, error) {
	dir := u.o.Dir
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s is not empty and holds no lab (no %s): pick another --dir", dir, labFile)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	shards, port := u.o.Shards, u.o.SSHPort
	if shards == 0 {
		shards = 1
	}
	if port == 0 {
		port = DefaultSSHPort
	}
	l, err := newLab(dir, shards, port, in, u.o)
	if err != nil {
		return nil, err
	}
	// Refuse early and clearly when another lab (or anything) holds an
	// address.
	for _, n := range l.Nodes {
		if err := portFree(n.Addr()); err != nil {
			return nil, err
		}
	}
	for _, r := range l.Routers {
		if err := portFree(r.Addr()); err != nil {
			return nil, err
		}
	}
	for _, a := range l.SSHD.Addrs {
		if err := portFree(net.JoinHostPort(a, strconv.Itoa(port))); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	u.logf("creating a lab with %d shard(s) in %s", shards, dir)
	if err := u.build(ctx, l, in); err != nil {
		u.logf("creating the lab failed; stopping what was started")
		_ = l.save() // Down re-reads the record
		if derr := l.Down(context.WithoutCancel(ctx), false); derr != nil {
			err = fmt.Errorf("%w (and stopping the partial lab: %v)", err, derr)
		}
		return l, fmt.Errorf("%w; the lab folder %s is kept for its logs: remove it with `flow lab down --remove --dir %s`", err, dir, dir)
	}
	return l, nil
}

// build starts everything of a new lab.
func (u *upRun) build(ctx context.Context, l *Lab, in *mysqld.Install) error {
	// sshd is independent of the rest: start it meanwhile, and record it
	// (in l) once it is up.
	type sshResult struct {
		s   *sshd.Server
		err error
	}
	sshCh := make(chan sshResult, 1)
	go func() {
		s, err := u.startSSHD(ctx, l)
		sshCh <- sshResult{s, err}
	}()
	var sshDone bool
	waitSSH := func() error {
		if sshDone {
			return nil
		}
		sshDone = true
		r := <-sshCh
		if r.err != nil {
			return r.err
		}
		l.applySSHD(r.s)
		return nil
	}

	insts := make([]*mysqld.Instance, len(l.Nodes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.o.Parallel)
	for idx := range l.Nodes {
		n := &l.Nodes[idx]
		g.Go(func() error {
			inst, err := l.Instance(*n, in)
			if err != nil {
				return err
			}
			insts[idx] = inst
			if err := os.MkdirAll(inst.Root, 0o755); err != nil {
				return err
			}
			if err := linkPlugins(*n, in); err != nil {
				return err
			}
			if err := inst.Provision(gctx); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			n.MysqldPID, _ = inst.MysqldPID()
			n.SafePID = inst.SupervisorPID()
			if err := l.createAccounts(gctx, inst); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			u.logf("%s up", n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = waitSSH()
		return err
	}
	_ = l.save()
	u.endPhase("nodes")

	// Replicas inside each cluster, wired directly.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(u.o.Parallel)
	for idx, n := range l.Nodes {
		if n.Role == RoleMaster {
			continue
		}
		m := l.Master(n.Cluster, n.Shard)
		var src *mysqld.Instance
		for j, x := range l.Nodes {
			if x.Cluster == m.Cluster && x.Shard == m.Shard && x.Index == m.Index {
				src = insts[j]
			}
		}
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(gctx, replicationTimeout)
			defer cancel()
			if err := mysqld.ReplicateFrom(rctx, insts[idx], src, l.Credentials.InternalUser, l.Credentials.InternalPassword); err != nil {
				return fmt.Errorf("%s: replicate from %s: %w", n, m.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = waitSSH()
		return err
	}
	u.logf("replicas of both clusters replicate from their masters")
	u.endPhase("replicas")

	// Routers, then the DR link through them.
	if err := u.startRouters(ctx, l); err != nil {
		_ = waitSSH()
		return err
	}
	_ = l.save()
	u.endPhase("routers")
	if err := l.addDRLink(ctx); err != nil {
		_ = waitSSH()
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, replicationTimeout)
	defer cancel()
	if err := l.waitDRReplication(wctx); err != nil {
		_ = waitSSH()
		return err
	}
	u.logf("DR link: every standby master replicates from its primary master")
	u.endPhase("DR link")
	if err := waitSSH(); err != nil {
		return err
	}
	u.endPhase("sshd")
	if err := l.writeIni(); err != nil {
		return err
	}
	return l.save()
}

// createAccounts makes dbscale_internal and the dbscale_tmp schema on a
// fresh node without spending a GTID, persists the lab's site setting
// (SitePersisted), and checks that gtid_executed is still empty. The account has all
// privileges (no GRANT OPTION): the router forwards clients' statements
// with it, and it is the replication account (REPLICATION SLAVE,
// REPLICATION CLIENT, SUPER, SYSTEM_VARIABLES_ADMIN, performance_schema are
// all covered).
func (l *Lab) createAccounts(ctx context.Context, inst *mysqld.Instance) error {
	db, err := inst.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("create %s: %w", l.Credentials.InternalUser, err)
	}
	defer conn.Close()
	steps := []struct {
		what, q string
		args    []any
	}{
		{"turn off binary logging for the session", "SET SESSION sql_log_bin = 0", nil},
		{"create " + l.Credentials.InternalUser, "CREATE USER ?@'127.%' IDENTIFIED BY ?", []any{l.Credentials.InternalUser, l.Credentials.InternalPassword}},
		{"grant " + l.Credentials.InternalUser + " its privileges", "GRANT ALL PRIVILEGES ON *.* TO ?@'127.%'", []any{l.Credentials.InternalUser}},
		{"create the " + TmpSchema + " schema", "CREATE DATABASE IF NOT EXISTS " + TmpSchema, nil},
		{"persist the site's setting " + SitePersisted.Variable, "SET PERSIST " + SitePersisted.Variable + " = " + SitePersisted.Value, nil},
	}
	for _, s := range steps {
		if _, err := conn.ExecContext(ctx, s.q, s.args...); err != nil {
			return fmt.Errorf("%s: %s", s.what, redactSecret(err.Error(), l.Credentials.InternalPassword))
		}
	}
	var gtids string
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&gtids); err != nil {
		return fmt.Errorf("read gtid_executed: %w", err)
	}
	if strings.TrimSpace(gtids) != "" {
		return fmt.Errorf("gtid_executed of a fresh node is %q, want empty: the template data folder spent GTIDs", gtids)
	}
	return nil
}

// startRouters writes both routers' configs and starts both.
func (u *upRun) startRouters(ctx context.Context, l *Lab) error {
	var g errgroup.Group
	for idx := range l.Routers {
		r := &l.Routers[idx]
		if err := l.writeRouterConfig(*r); err != nil {
			return err
		}
		g.Go(func() error {
			if err := l.startRouter(ctx, r, u.o.Executable); err != nil {
				return err
			}
			u.logf("%s router %s up (pid %d)", r.Cluster, r.Addr(), r.PID)
			u.started(r.Cluster + " router")
			return nil
		})
	}
	return g.Wait()
}

// startSSHD starts the lab's sshd on every node and router address and
// links DIR/ssh/id_ed25519 to its client key. It does not touch l (build
// runs it beside other work): applySSHD records the result.
func (u *upRun) startSSHD(ctx context.Context, l *Lab) (*sshd.Server, error) {
	s, err := sshd.StartWith(ctx, l.SSHD.Dir, l.SSHD.Addrs, l.SSHD.Port, sshd.Options{Password: l.Credentials.SSHPassword})
	if err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	key := filepath.Join(l.SSHD.Dir, "id_ed25519")
	_ = os.Remove(key)
	if err := os.Symlink(filepath.Base(s.ClientKeyFile), key); err != nil {
		_ = s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sshd: link the client key: %w", err)
	}
	login := "key"
	if s.PasswordLogin {
		login = "key or password"
	}
	u.logf("sshd on port %d at %d addresses, %d process(es) (pids %v), login by %s", s.Port, len(s.Addrs), len(s.Procs), s.Pids(), login)
	u.started("sshd")
	return s, nil
}

// applySSHD records a started sshd in l.
func (l *Lab) applySSHD(s *sshd.Server) {
	l.SSHD.PID = s.Pid
	l.SSHD.PIDs = s.Pids()
	l.SSHD.Configs = nil
	for _, p := range s.Procs {
		l.SSHD.Configs = append(l.SSHD.Configs, p.ConfigFile)
	}
	l.SSHD.User = s.User
	l.SSHD.KeyFile = filepath.Join(l.SSHD.Dir, "id_ed25519")
	l.SSHD.KnownHosts = s.KnownHostsFile
}

// sshdAlive reports whether every recorded sshd process of the lab runs.
func (l *Lab) sshdAlive() bool {
	pids, cfgs := l.sshdRecorded()
	for i, p := range pids {
		if !procAlive(p, "-f "+cfgs[i]+" ") {
			return false
		}
	}
	return len(pids) > 0
}

// sshdRecorded returns the recorded sshd pids and their config files (a
// record from before several processes has PID only).
func (l *Lab) sshdRecorded() ([]int, []string) {
	if len(l.SSHD.PIDs) > 0 && len(l.SSHD.PIDs) == len(l.SSHD.Configs) {
		return l.SSHD.PIDs, l.SSHD.Configs
	}
	return []int{l.SSHD.PID}, []string{l.sshdConfig()}
}

// sshdConfig is the first sshd's config file, named on its command line;
// the others are sshdConfig().1, .2, …, so it is a prefix of every one.
func (l *Lab) sshdConfig() string { return filepath.Join(l.SSHD.Dir, "sshd_config") }

// sshdPIDs returns the lab's live sshd listeners: the recorded pids and any
// other sshd started with one of the lab's configs (not the per-login
// children, which exit with their sessions).
func (l *Lab) sshdPIDs() []int {
	var out []int
	seen := map[int]bool{}
	pids, cfgs := l.sshdRecorded()
	for i, p := range pids {
		if procAlive(p, "-f "+cfgs[i]+" ") && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	// Any sshd started with a config of this folder, recorded or not.
	for _, p := range procsMatching("-f "+l.sshdConfig(), l.SSHD.Dir) {
		if !seen[p] && strings.Contains(procCmdline(p), "sshd") {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// waitDRReplication polls every standby master until it replicates (IO and
// SQL threads running) from its shard's primary master, bounded by ctx.
func (l *Lab) waitDRReplication(ctx context.Context) error {
	var g errgroup.Group
	for k := range l.Shards {
		sm, pm := l.Master(ClusterStandby, k), l.Master(ClusterPrimary, k)
		g.Go(func() error {
			err := l.waitReplica(ctx, sm, pm.Host)
			if err != nil {
				return fmt.Errorf("DR link: %w\n%s\n%s", err, tailFile(l.Router(ClusterPrimary).Log, 8), tailFile(l.Router(ClusterStandby).Log, 8))
			}
			return nil
		})
	}
	return g.Wait()
}

// waitReplica polls SHOW REPLICA STATUS on n until both threads run (and,
// when sourceHost is set, the source is that host). It fails at once on a
// replication SQL error, else when ctx ends.
func (l *Lab) waitReplica(ctx context.Context, n Node, sourceHost string) error {
	start := time.Now()
	last := "not a replica yet"
	for {
		rs, err := l.replicaStatus(ctx, n)
		switch {
		case err != nil:
			last = err.Error()
		case !rs.Configured:
			last = "not a replica yet (SHOW REPLICA STATUS is empty)"
		case sourceHost != "" && rs.SourceHost != sourceHost:
			last = "replicates from " + rs.SourceHost + ", not " + sourceHost
		case rs.IORunning == "Yes" && rs.SQLRunning == "Yes":
			return nil
		case rs.SQLRunning == "No" && rs.LastSQLError != "":
			return fmt.Errorf("%s: replication SQL thread stopped: %s", n, rs.LastSQLError)
		default:
			last = fmt.Sprintf("IO thread %s, SQL thread %s", rs.IORunning, rs.SQLRunning)
			if rs.LastIOError != "" {
				last += ", last IO error: " + rs.LastIOError
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not replicate after %s: %s", n, time.Since(start).Round(time.Millisecond), last)
		case <-time.After(pollEvery):
		}
	}
}

// stoppedThreads names the replication threads of rs that are stopped
// without an error ("IO thread", "SQL thread", "IO and SQL threads"), or
// returns "" when none is.
func stoppedThreads(rs ReplicaStatus) string {
	io := rs.IORunning == "No" && rs.LastIOError == ""
	sql := rs.SQLRunning == "No" && rs.LastSQLError == ""
	switch {
	case io && sql:
		return "IO and SQL threads"
	case io:
		return "IO thread"
	case sql:
		return "SQL thread"
	}
	return ""
}

// restart starts what is down in an existing lab and re-checks it.
func (u *upRun) restart(ctx context.Context, l *Lab, in *mysqld.Install) error {
	u.logf("lab in %s exists (%d shard(s)): starting what is down", l.Dir, l.Shards)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.o.Parallel)
	for idx := range l.Nodes {
		n := &l.Nodes[idx]
		g.Go(func() error {
			inst, err := l.Instance(*n, in)
			if err != nil {
				return err
			}
			if !inst.Running() {
				if err := inst.Start(gctx); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				if err := inst.WaitReady(gctx); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				n.SafePID = inst.SupervisorPID()
				u.logf("%s started", n)
				u.started(n.Cluster + " " + n.Name)
			}
			if pid, err := inst.MysqldPID(); err == nil {
				n.MysqldPID = pid
			}
			return nil
		})
	}
	err := g.Wait()
	_ = l.save()
	if err != nil {
		return err
	}
	u.endPhase("nodes")
	for idx := range l.Routers {
		r := &l.Routers[idx]
		if routerAlive(*r) {
			if err := l.waitRouter(ctx, *r); err != nil {
				return err
			}
			continue
		}
		if err := l.writeRouterConfig(*r); err != nil {
			return err
		}
		if err := l.startRouter(ctx, r, u.o.Executable); err != nil {
			_ = l.save()
			return err
		}
		u.logf("%s router %s started (pid %d)", r.Cluster, r.Addr(), r.PID)
		u.started(r.Cluster + " router")
	}
	_ = l.save()
	u.endPhase("routers")
	if !l.sshdAlive() {
		s, err := u.startSSHD(ctx, l)
		if err != nil {
			return err
		}
		l.applySSHD(s)
		if err := l.writeIni(); err != nil {
			return err
		}
	}
	_ = l.save()
	u.endPhase("sshd")
	u.report.Warnings = l.recheck(ctx)
	for _, w := range u.report.Warnings {
		u.logf("warning: %s", w)
	}
	u.endPhase("re-check")
	if _, err := os.Stat(l.IniPath()); err != nil {
		if err := l.writeIni(); err != nil {
			return err
		}
	}
	return nil
}

// recheck waits, bounded, for every node that is configured as a replica
// to run both threads, and returns what is not as warnings: during a drill
// the standby master and the donor are detached on purpose. The masters
// expected to replicate are the current standby's (after a switchover the
// built primary's).
func (l *Lab) recheck(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, recheckTimeout)
	defer cancel()
	standby := ClusterStandby
	if roles, err := l.Roles(ctx); err == nil && roles.Known {
		standby = roles.Standby
	}
	var mu sync.Mutex
	warns := []string{}
	var g errgroup.Group
	for _, n := range l.Nodes {
		g.Go(func() error {
			rs, err := l.replicaStatus(ctx, n)
			if err != nil {
				mu.Lock()
				warns = append(warns, fmt.Sprintf("%s: %v", n, err))
				mu.Unlock()
				return nil
			}
			if !rs.Configured {
				if n.Role == RoleSlave || n.Cluster == standby {
					mu.Lock()
					warns = append(warns, fmt.Sprintf("%s is not a replica (a drill in progress?)", n))
					mu.Unlock()
				}
				return nil
			}
			// a thread stopped without an error (STOP REPLICA, or a
			// server started with skip-replica-start) stays so: waiting
			// for it only costs the whole bound
			if stopped := stoppedThreads(rs); stopped != "" {
				mu.Lock()
				warns = append(warns, fmt.Sprintf("%s: replication %s stopped (a drill in progress?)", n, stopped))
				mu.Unlock()
				return nil
			}
			if err := l.waitReplica(ctx, n, ""); err != nil {
				mu.Lock()
				warns = append(warns, err.Error())
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return warns
}
