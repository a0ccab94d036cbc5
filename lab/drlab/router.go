package drlab

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowdba/flow/lab/dbscale"
	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// Names of the router process's files inside Router.Dir.
const (
	routerConfigFile = "topology.yaml"
	routerLogFile    = "dbscale.log"
)

// routerReadyTimeout bounds the wait for a started router to answer.
const routerReadyTimeout = 20 * time.Second

// routerStopGrace bounds the wait for a router to exit after SIGTERM
// (and again after SIGKILL).
const routerStopGrace = 10 * time.Second

// envRouterChild marks a process Up started to serve a router; see init.
const envRouterChild = "FLOW_LAB_ROUTER_CHILD"

// ServeCommand is the command line (after the program name) that runs a
// router: `lab serve-dbscale --dir D --listen H:P`. flow's CLI has it as a
// hidden command.
func ServeCommand(dir, listen string) []string {
	return []string{"lab", "serve-dbscale", "--dir", dir, "--listen", listen}
}

// init serves a router when this process is one Up started: the program
// (flow, or a test binary importing this package) was re-executed with
// FLOW_LAB_ROUTER_CHILD=1 and ServeCommand's arguments. It never returns
// then. Any other process is unaffected.
func init() {
	if os.Getenv(envRouterChild) != "1" || len(os.Args) < 3 || os.Args[1] != "lab" || os.Args[2] != "serve-dbscale" {
		return
	}
	os.Exit(serveChildMain(os.Args[3:], os.Stderr))
}

// serveChildMain parses --dir and --listen and serves until SIGTERM or
// SIGINT; it returns the exit code.
func serveChildMain(args []string, logw io.Writer) int {
	var dir, listen string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--dir":
			dir = args[i+1]
		case "--listen":
			listen = args[i+1]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		if sig, ok := <-sigs; ok {
			fmt.Fprintf(logw, "serve-dbscale: stopped by signal %s\n", sig)
			cancel()
		}
	}()
	if err := ServeRouter(ctx, dir, listen, logw); err != nil {
		fmt.Fprintf(logw, "serve-dbscale: %v\n", err)
		return 1
	}
	return 0
}

// ServeRouter runs the DBScale emulator with its config DIR/topology.yaml
// and its state in DIR, listening on listen (a loopback host:port), until
// ctx ends; then it closes the router and returns. Log lines (never a
// password) go to logw.
func ServeRouter(ctx context.Context, dir, listen string, logw io.Writer) error {
	if dir == "" || listen == "" {
		return fmt.Errorf("serve-dbscale needs --dir DIR and --listen HOST:PORT")
	}
	cfg, err := dbscale.LoadConfig(filepath.Join(dir, routerConfigFile))
	if err != nil {
		return err
	}
	lg := log.New(logw, "", log.LstdFlags|log.Lmicroseconds)
	r, err := dbscale.Start(dbscale.Options{
		Dir:    dir,
		Listen: listen,
		Config: cfg,
		Logf:   func(format string, args ...any) { lg.Printf(format, args...) },
	})
	if err != nil {
		return err
	}
	lg.Printf("serve-dbscale: pid %d serving %s", os.Getpid(), r.Addr())
	<-ctx.Done()
	lg.Printf("serve-dbscale: stopping")
	return r.Close()
}

// routerConfig builds the emulator's topology for a cluster.
func (l *Lab) routerConfig(cluster string) *dbscale.Config {
	c := &dbscale.Config{
		Users: []dbscale.User{{
			Name: l.Credentials.RouterUser, Password: l.Credentials.RouterPassword(cluster), Admin: true,
		}},
		NodeUser:     l.Credentials.InternalUser,
		NodePassword: l.Credentials.InternalPassword,
		RemoteUser:   SSHUser,
		RemotePort:   strconv.Itoa(l.SSHD.Port),
		Options:      map[string]string{"enable-disaster-mode": "1"},
	}
	if cluster == ClusterStandby {
		c.Options["slave-dbscale-mode"] = "1"
		c.Options["enable-read-only"] = "1"
	}
	for k := range l.Shards {
		ds := dbscale.DataSourceConfig{
			Name:   DataSourceName(k),
			Master: NodeName(k, MasterIndex(cluster)),
		}
		for i := range NodesPerShard {
			n, _ := l.Node(cluster, k, i)
			ds.Servers = append(ds.Servers, dbscale.ServerConfig{Name: n.Name, Host: n.Host, Port: n.Port})
		}
		c.DataSources = append(c.DataSources, ds)
	}
	return c
}

// writeRouterConfig writes DIR/topology.yaml (mode 0600: it holds passwords).
func (l *Lab) writeRouterConfig(r Router) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	cfg := l.routerConfig(r.Cluster)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s router config: %w", r.Cluster, err)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("%s router config: %w", r.Cluster, err)
	}
	head := "# The " + r.Cluster + " cluster's DBScale emulator, written by `flow lab up`. It holds passwords.\n"
	return writeFileAtomic(filepath.Join(r.Dir, routerConfigFile), append([]byte(head), b...), 0o600)
}

// routerAlive reports whether the recorded router process runs. A router
// this process started is alive until its reaper saw it exit: right after
// the fork, until the exec, its command line is still this program's, so
// matching it would call a starting router dead (and the lab start would
// then stop it, which CI saw as a router SIGTERMed at birth).
func routerAlive(r Router) bool {
	if ours, exited := childExited(r.PID); ours {
		return !exited
	}
	return procAlive(r.PID, "serve-dbscale", "--dir "+r.Dir+" ")
}

// startRouter launches the router process (the running program,
// re-executed with ServeCommand) in its own process group with its output
// appended to its log, and waits until it answers `dbscale show
// dataservers`. It records the pid in r.
func (l *Lab) startRouter(ctx context.Context, r *Router, exe string) error {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("start the %s router: find this program: %w", r.Cluster, err)
		}
	}
	if err := portFree(r.Addr()); err != nil {
		return fmt.Errorf("start the %s router: %w", r.Cluster, err)
	}
	out, err := os.OpenFile(r.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start the %s router: %w", r.Cluster, err)
	}
	defer out.Close()
	cmd := exec.Command(exe, ServeCommand(r.Dir, r.Addr())...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), envRouterChild+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := startChild(cmd); err != nil {
		return fmt.Errorf("start the %s router (%s): %w", r.Cluster, exe, err)
	}
	r.PID = cmd.Process.Pid
	return l.waitRouter(ctx, *r)
}

// waitRouter polls until the router answers `dbscale show dataservers` as
// its admin, bounded by routerReadyTimeout; it fails early when the
// process exits.
func (l *Lab) waitRouter(ctx context.Context, r Router) error {
	ctx, cancel := context.WithTimeout(ctx, routerReadyTimeout)
	defer cancel()
	start := time.Now()
	var last error
	for {
		if last = l.pingRouter(ctx, r); last == nil {
			return nil
		}
		if !routerAlive(r) {
			return fmt.Errorf("the %s router (pid %d) exited before answering on %s: %v\n%s", r.Cluster, r.PID, r.Addr(), last, tailFile(r.Log, 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the %s router (pid %d) did not answer `dbscale show dataservers` on %s within %s (last error: %v); see %s",
				r.Cluster, r.PID, r.Addr(), time.Since(start).Round(time.Millisecond), last, r.Log)
		case <-time.After(pollEvery):
		}
	}
}

// pingRouter runs `dbscale show dataservers` once.
func (l *Lab) pingRouter(ctx context.Context, r Router) error {
	db, err := l.OpenRouter(r.Cluster)
	if err != nil {
		return err
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, "dbscale show dataservers")
	if err != nil {
		return err
	}
	return rows.Close()
}

// routerPIDs returns the live processes serving a router of the lab: the
// recorded pid and any other process whose command line serves r.Dir (one
// a stale record does not know).
func routerPIDs(r Router) []int {
	var out []int
	if routerAlive(r) {
		out = append(out, r.PID)
	}
	for _, p := range procsMatching("serve-dbscale", "--dir "+r.Dir+" ") {
		if p != r.PID {
			out = append(out, p)
		}
	}
	return out
}

// stopRouter sends SIGTERM to the router's processes and waits for them
// (SIGKILL after routerStopGrace).
func stopRouter(ctx context.Context, r Router) error {
	return stopProcs(ctx, "the "+r.Cluster+" router", routerPIDs(r), func(pid int) bool {
		return routerAlive(Router{PID: pid, Dir: r.Dir})
	}, routerStopGrace)
}

// RouterConfig returns a go-sql-driver configuration for a cluster's router
// as its admin (interpolateParams=true, so no server-side prepares).
func (l *Lab) RouterConfig(cluster string) *mysql.Config {
	return driverConfig(l.Credentials.RouterUser, l.Credentials.RouterPassword(cluster), l.Router(cluster).Addr())
}

// OpenRouter returns a *sql.DB on a cluster's router as its admin. The
// caller closes it.
func (l *Lab) OpenRouter(cluster string) (*sql.DB, error) {
	conn, err := mysql.NewConnector(l.RouterConfig(cluster))
	if err != nil {
		return nil, fmt.Errorf("%s router: %w", cluster, err)
	}
	return sql.OpenDB(conn), nil
}

// addDRLink makes the standby router a slave of every replication
// datasource of the primary router, as DBScale's tools do: request next
// group id, add dataserver slave_dbscale_server (the standby router,
// flagged dbscale_server), add server datasource slave_dbscale_source, add
// slave … to normal_K. The emulator then wires each standby master. The
// statements hold the standby router's password: errors never quote them.
func (l *Lab) addDRLink(ctx context.Context) error {
	db, err := l.OpenRouter(ClusterPrimary)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("DR link: connect to the primary router: %w", err)
	}
	defer conn.Close()
	var gid string
	if err := conn.QueryRowContext(ctx, "dbscale request next group id").Scan(&gid); err != nil {
		return fmt.Errorf("DR link: dbscale request next group id: %w", err)
	}
	if _, err := strconv.Atoi(gid); err != nil {
		return fmt.Errorf("DR link: dbscale request next group id answered %q, not a number", gid)
	}
	sb := l.Router(ClusterStandby)
	stmts := []struct{ what, q string }{
		{"dbscale dynamic add dataserver " + DRServer, fmt.Sprintf(
			`dbscale dynamic add dataserver server_name=%s,server_host="%s",server_port=%d,server_user="%s",server_password="%s",dbscale_server`,
			DRServer, sb.Host, sb.Port, l.Credentials.RouterUser, l.Credentials.StandbyRouterPassword)},
		{"dbscale dynamic add server datasource " + DRSource, fmt.Sprintf(
			"dbscale dynamic add server datasource %s %s-1-1000-400-800 group_id = %s", DRSource, DRServer, gid)},
	}
	for k := range l.Shards {
		q := fmt.Sprintf("dbscale dynamic add slave %s to %s", DRSource, DataSourceName(k))
		stmts = append(stmts, struct{ what, q string }{q, q})
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s.q); err != nil {
			return fmt.Errorf("DR link: %s: %s", s.what, redactSecret(err.Error(), l.Credentials.StandbyRouterPassword))
		}
	}
	return nil
}

// redactSecret replaces every occurrence of the secrets in s.
func redactSecret(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// tailFile returns the last n lines of a file, with its name, or "".
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "last lines of " + path + ":\n" + strings.Join(lines, "\n")
}
