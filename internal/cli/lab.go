package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newLabCmd) }

// newLabCmd is `flow lab`: the DR lab's up, status, write, check and down,
// and the hidden serve-dbscale that runs a router process.
func newLabCmd(st *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "lab",
		Short: "Run the DR lab: two MySQL clusters behind DBScale routers, the standby replicating, on one machine",
		Long: `The DR lab rehearses playbooks on one machine with the seed's topology: a primary
and a standby cluster, each of three real MySQL 9.7 nodes per shard behind a DBScale
router (emulated), the standby replicating from the primary, and an OpenSSH server
through which every node's host is reached. Addresses (loopback): primary nodes
127.0.1.(3K+i+1), standby nodes 127.0.2.(3K+i+1), MySQL port 16315; routers
127.0.1.100:16310 and 127.0.2.100:16310; sshd port 2222. 'flow lab up' writes
DIR/flashback.ini for the flashback playbooks. See lab/README.md.`,
	}
	c.AddCommand(newLabUpCmd(st), newLabStatusCmd(st), newLabWriteCmd(st), newLabCheckCmd(st), newLabDownCmd(st), newLabServeCmd(st))
	return c
}

// labContext is cancelled by Ctrl-C or SIGTERM.
func labContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loadLab reads the lab in dir.
func loadLab(dir string) (*drlab.Lab, error) {
	l, err := drlab.Load(dir)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// upJSON is `flow lab up --json`.
type upJSON struct {
	Dir     string          `json:"dir"`
	Ini     string          `json:"ini"`
	Shards  int             `json:"shards"`
	Report  *drlab.UpReport `json:"report"`
	Nodes   []drlab.Node    `json:"nodes"`
	Routers []drlab.Router  `json:"routers"`
	SSHD    drlab.SSHD      `json:"sshd"`
}

func newLabUpCmd(st *streams) *cobra.Command {
	var dir string
	var shards, sshPort int
	var asJSON, sshPassword, sharedAccount bool
	c := &cobra.Command{
		Use:   "up",
		Short: "Create the lab (or start what is down in an existing one) and write DIR/flashback.ini",
		Long: `Create the DR lab in --dir: install MySQL and OpenSSH if missing, create every node,
wire replication, start both routers and the sshd, add the DR link on the primary
router, wait until the standby replicates, write DIR/flashback.ini and print a summary.
On an existing lab, start whatever is down (nodes, routers, sshd) and re-check it.
Progress goes to standard error.`,
		Example: `  flow lab up
  flow lab up --dir /tmp/lab --shards 2
  flow lab up --shards 4 --ssh-password --shared-account
  flow lab up --json | jq .report.duration_ns`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("shards") && (shards < 1 || shards > drlab.MaxShards) {
				return engine.Invalid(fmt.Errorf("--shards %d: give 1 to %d", shards, drlab.MaxShards))
			}
			if cmd.Flags().Changed("ssh-port") && (sshPort < 1 || sshPort > 65535) {
				return engine.Invalid(fmt.Errorf("--ssh-port %d is out of range", sshPort))
			}
			o := drlab.Options{Dir: dir, Log: st.err, SSHPassword: sshPassword, SharedAccount: sharedAccount}
			if cmd.Flags().Changed("shards") {
				o.Shards = shards
			}
			if cmd.Flags().Changed("ssh-port") {
				o.SSHPort = sshPort
			}
			ctx, stop := labContext()
			defer stop()
			l, rep, err := drlab.Up(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(st.out, upJSON{Dir: l.Dir, Ini: l.IniPath(), Shards: l.Shards, Report: rep,
					Nodes: l.Nodes, Routers: l.Routers, SSHD: l.SSHD})
			}
			printUpSummary(st.out, l, rep)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().IntVar(&shards, "shards", 1, "replication datasources normal_0 … per router (a new lab only)")
	c.Flags().IntVar(&sshPort, "ssh-port", drlab.DefaultSSHPort, "the sshd port at every node address (a new lab only)")
	c.Flags().BoolVar(&sshPassword, "ssh-password", false, "the sshd also takes a generated root password, written to flashback.ini as sys_password (a new lab only)")
	c.Flags().BoolVar(&sharedAccount, "shared-account", false, "one admin account with one password on both routers and every node, as at the seed's site (a new lab only)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON (the lab record without credentials, and the report)")
	return c
}

// printUpSummary prints the lab's addresses, the config path, the time it
// took and its memory.
func printUpSummary(w io.Writer, l *drlab.Lab, rep *drlab.UpReport) {
	how := "created"
	if !rep.Created {
		how = "checked"
		if len(rep.Started) > 0 {
			how = "restarted " + strings.Join(rep.Started, ", ") + " and checked"
		}
	}
	fmt.Fprintf(w, "DR lab in %s: %s in %.1fs (%d shard(s))\n", l.Dir, how, rep.Duration.Seconds(), l.Shards)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range l.Routers {
		note := "enable-disaster-mode"
		if r.Cluster == drlab.ClusterStandby {
			note = "enable-read-only, slave-dbscale-mode"
		}
		fmt.Fprintf(tw, "  %s router\t%s\tpid %d\t%s\n", r.Cluster, r.Addr(), r.PID, note)
	}
	for _, n := range l.Nodes {
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", n.Cluster, n.Name, n.Addr(), n.Role, n.InstanceDir)
	}
	tw.Flush()
	fmt.Fprintf(w, "  ssh      %s@<node address> -p %d -i %s (known hosts %s)\n", l.SSHD.User, l.SSHD.Port, l.SSHD.KeyFile, l.SSHD.KnownHosts)
	if l.SSHD.PasswordLogin {
		fmt.Fprintf(w, "           or with the password sys_password of %s\n", l.IniPath())
	}
	if l.Credentials.Shared {
		fmt.Fprintf(w, "  account  %s on both routers and every node (one password, in %s)\n", l.Credentials.AdminUser, l.IniPath())
	}
	fmt.Fprintf(w, "  config   %s (router and node accounts; mode 0600)\n", l.IniPath())
	fmt.Fprintf(w, "  memory   %.2f GB taken by the lab's processes (PSS: shared pages once; %.2f GB RSS summed)\n", float64(rep.PSS)/1e9, float64(rep.RSS)/1e9)
	for _, x := range rep.Warnings {
		fmt.Fprintf(w, "  warning  %s\n", x)
	}
}

func newLabStatusCmd(st *streams) *cobra.Command {
	var dir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show every node (role, address, up, replication, gtid_executed), router and the sshd",
		Long: `Show every node of both clusters (cluster, shard, name, role, address, up, replication
threads and last error, gtid_executed), both routers and the sshd with pid and up.

--json prints a stable document (fields are only ever added):
  dir, shards, ini, all_up, rss_bytes,
  nodes[]: cluster, shard, name, role, host, port, addr, instance_dir, pid, up, error,
           replication{configured, source_host, source_port, io_running, sql_running,
           last_io_error, last_sql_error, seconds_behind, auto_position},
           gtid_executed, rss_bytes
  routers[]: cluster, addr, dir, log, pid, running, up, error, rss_bytes
  sshd: dir, port, addrs, pid, pids (one sshd per 16 addresses), password_login, up, rss_bytes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := loadLab(dir)
			if err != nil {
				return err
			}
			ctx, stop := labContext()
			defer stop()
			s, err := l.Status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(st.out, s)
			}
			printStatus(st.out, s)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (see the field list above)")
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// printStatus prints a status as tables.
func printStatus(w io.Writer, s *drlab.Status) {
	fmt.Fprintf(w, "DR lab in %s (%d shard(s)), config %s\n", s.Dir, s.Shards, s.Ini)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSHARD\tNAME\tROLE\tADDRESS\tUP\tIO\tSQL\tSOURCE\tGTID_EXECUTED / ERROR")
	for _, n := range s.Nodes {
		io, sqlT, src := "-", "-", "-"
		if n.Replication.Configured {
			io, sqlT, src = n.Replication.IORunning, n.Replication.SQLRunning, n.Replication.SourceHost
		}
		detail := n.GTIDExecuted
		if detail == "" {
			detail = "(empty)"
		}
		switch {
		case n.Error != "":
			detail = "error: " + n.Error
		case n.Replication.LastSQLError != "":
			detail += "  SQL error: " + n.Replication.LastSQLError
		case n.Replication.LastIOError != "":
			detail += "  IO error: " + n.Replication.LastIOError
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Cluster, n.Shard, n.Name, n.Role, n.Addr, yesNo(n.Up), io, sqlT, src, detail)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range s.Routers {
		line := fmt.Sprintf("router %s\t%s\tpid %d\tup %s", r.Cluster, r.Addr, r.PID, yesNo(r.Up))
		if !r.Up && r.Error != "" {
			line += "\t" + r.Error
		}
		fmt.Fprintln(tw, line)
	}
	fmt.Fprintf(tw, "sshd\tport %d\tpids %v\tup %s\n", s.SSHD.Port, s.SSHD.PIDs, yesNo(s.SSHD.Up))
	tw.Flush()
	fmt.Fprintf(w, "memory %.2f GB (PSS; %.2f GB RSS summed); all up: %s\n", float64(s.PSS)/1e9, float64(s.RSS)/1e9, yesNo(s.AllUp))
}

func newLabWriteCmd(st *streams) *cobra.Command {
	var dir, cluster string
	var seconds, maxRows, rate int
	var asJSON bool
	c := &cobra.Command{
		Use:   "write --seconds N",
		Short: "Run a small bounded workload through a cluster's router (rows with sequence numbers)",
		Long: `Insert rows into flowlab.seq(id, seq, cluster, written_at) through a cluster's router,
one per statement, with sequence numbers continuing after the largest the cluster holds,
for --seconds or --max-rows. Writing to the standby fails while it is read-only.`,
		Example: `  flow lab write --seconds 10
  flow lab write --seconds 5 --cluster standby --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if seconds < 1 || time.Duration(seconds)*time.Second > drlab.MaxWriteDuration {
				return engine.Invalid(fmt.Errorf("--seconds %d: give 1 to %d", seconds, int(drlab.MaxWriteDuration.Seconds())))
			}
			if cluster != drlab.ClusterPrimary && cluster != drlab.ClusterStandby {
				return engine.Invalid(fmt.Errorf("--cluster %q: use primary or standby", cluster))
			}
			if maxRows < 1 || rate < 0 {
				return engine.Invalid(errors.New("--max-rows must be at least 1 and --rate at least 0"))
			}
			l, err := loadLab(dir)
			if err != nil {
				return err
			}
			ctx, stop := labContext()
			defer stop()
			res, err := l.Write(ctx, drlab.WriteOptions{Cluster: cluster, Duration: time.Duration(seconds) * time.Second, MaxRows: maxRows, Rate: rate})
			if res != nil {
				if asJSON {
					_ = writeJSON(st.out, res)
				} else {
					seqs := "none"
					if res.Rows > 0 {
						seqs = fmt.Sprintf("seq %d-%d", res.FirstSeq, res.LastSeq)
					}
					fmt.Fprintf(st.out, "wrote %d rows through the %s router %s in %.1fs: %s\n", res.Rows, res.Cluster, res.Router, res.Duration.Seconds(), seqs)
				}
			}
			return err
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().StringVar(&cluster, "cluster", drlab.ClusterPrimary, "whose router to write through: primary or standby")
	c.Flags().IntVar(&seconds, "seconds", 0, "how long to write (required)")
	c.Flags().IntVar(&maxRows, "max-rows", drlab.DefaultMaxRows, "stop after this many rows")
	c.Flags().IntVar(&rate, "rate", 100, "rows per second (0: as fast as the router answers)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: cluster, router, rows, first_seq, last_seq, duration_ns")
	_ = c.MarkFlagRequired("seconds")
	return c
}

func newLabCheckCmd(st *streams) *cobra.Command {
	var dir string
	var wait time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Compare every node with its shard's primary master (tables and GTIDs); exit 1 on a difference",
		Long: `Compare every node of both clusters with its shard's primary master: per table of the
user schemas the row count and CHECKSUM TABLE, and gtid_executed (missing and extra
transactions). Replication needs a moment after a write: check re-compares until nothing
differs or --wait has passed. Exit 0 when everything agrees, 1 with the differences
listed by table and GTID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait < 0 {
				return engine.Invalid(fmt.Errorf("--wait %s must not be negative", wait))
			}
			l, err := loadLab(dir)
			if err != nil {
				return err
			}
			ctx, stop := labContext()
			defer stop()
			rep, err := l.Check(ctx, drlab.CheckOptions{Wait: wait})
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(st.out, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprint(st.out, rep.String())
			}
			if !rep.OK {
				return &engine.ExitError{Code: engine.ExitStepFailed, Err: fmt.Errorf("lab check: %d difference(s)", len(rep.Differences))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().DurationVar(&wait, "wait", 10*time.Second, "keep comparing this long for replication to catch up (0: once)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: ok, nodes, tables, attempts, duration_ns, differences[]")
	return c
}

func newLabDownCmd(st *streams) *cobra.Command {
	var dir string
	var remove bool
	c := &cobra.Command{
		Use:   "down",
		Short: "Stop the lab's own processes (by their recorded pids) and wait for them; --remove deletes the folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := loadLab(dir)
			if err != nil {
				return err
			}
			n := len(l.Processes())
			ctx, stop := labContext()
			defer stop()
			start := time.Now()
			if err := l.Down(ctx, remove); err != nil {
				return err
			}
			what := "stopped"
			if remove {
				what = "stopped and removed"
			}
			fmt.Fprintf(st.out, "DR lab in %s %s (%d processes) in %.1fs\n", l.Dir, what, n, time.Since(start).Seconds())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().BoolVar(&remove, "remove", false, "delete the lab folder once everything stopped")
	return c
}

// newLabServeCmd is the hidden command a router process runs (Up starts
// it; it can also be run by hand in the foreground).
func newLabServeCmd(st *streams) *cobra.Command {
	var dir, listen string
	c := &cobra.Command{
		Use:    "serve-dbscale --dir DIR --listen HOST:PORT",
		Short:  "Run one DBScale emulator in the foreground (DIR holds topology.yaml and state.json)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" || listen == "" {
				return engine.Invalid(errors.New("serve-dbscale needs --dir DIR and --listen HOST:PORT"))
			}
			ctx, stop := labContext()
			defer stop()
			return drlab.ServeRouter(ctx, dir, listen, st.err)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "the router's folder (topology.yaml, state.json)")
	c.Flags().StringVar(&listen, "listen", "", "the loopback address to listen on")
	return c
}
