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
			roles, err := l.Roles(ctx)
			if err != nil {
				roles = drlab.Roles{Reason: err.Error()}
			}
			printUpSummary(st.out, l, rep, roles)
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
// took and its memory. The routers are listed by their built names with
// the role each has now and its DR options (after a switchover the one
// built as primary is the standby).
func printUpSummary(w io.Writer, l *drlab.Lab, rep *drlab.UpReport, roles drlab.Roles) {
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
		fmt.Fprintf(tw, "  %s router\t%s\tpid %d\t%s\n", r.Cluster, r.Addr(), r.PID, routerRoleNote(roles, r.Cluster))
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

// routerRoleNote says what a router is now: its current DR role and its
// slave-dbscale-mode and enable-read-only, or why the roles are unknown.
func routerRoleNote(roles drlab.Roles, cluster string) string {
	opts := ""
	for _, rr := range roles.Routers {
		if rr.Cluster == cluster && rr.Error == "" {
			opts = fmt.Sprintf(": slave-dbscale-mode=%s, enable-read-only=%s", rr.SlaveDBScaleMode, rr.ReadOnly)
		}
	}
	if now := roles.Of(cluster); now != "" {
		return "now " + strings.ToUpper(now) + opts
	}
	return "role unknown (" + roles.Reason + ")" + opts
}

func newLabStatusCmd(st *streams) *cobra.Command {
	var dir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the clusters' current DR roles, every node (role, address, up, replication, gtid_executed), router and the sshd",
		Long: `Show the clusters' current DR roles, read from the routers (the router in
slave-dbscale-mode fronts the standby: a switchover swaps them; both or neither in
that mode is shown as unknown, never guessed), every node of both clusters (cluster as
built, its current role, shard, name, role in its cluster, address, up, replication
threads and last error, gtid_executed), both routers (pid, up, enable-read-only,
slave-dbscale-mode, the DR link with the address it feeds, Master_Offline dataservers)
and the sshd with pid and up.

--json prints a stable document (fields are only ever added):
  dir, shards, ini, all_up, rss_bytes, pss_bytes,
  roles{known, primary, standby, switched, reason,
        routers[]{cluster, addr, slave_dbscale_mode, enable_read_only, error}}
        (primary/standby: the built names of the clusters holding the roles now),
  nodes[]: cluster (as built), cluster_role (now: primary, standby or "" unknown),
           shard, name, role, host, port, addr, instance_dir, pid, up, error,
           replication{configured, source_host, source_port, io_running, sql_running,
           last_io_error, last_sql_error, seconds_behind, auto_position},
           gtid_executed, rss_bytes
  routers[]: cluster (as built), role (now), addr, dir, log, pid, running, up, error,
             rss_bytes, enable_read_only, slave_dbscale_mode, dr_link, dr_link_addr,
             dr_link_status, master_offline[]
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

// nowRole prints a current role: PRIMARY, STANDBY or UNKNOWN.
func nowRole(role string) string {
	if role == "" {
		return "UNKNOWN"
	}
	return strings.ToUpper(role)
}

// orQ prints an option value, "?" when it could not be read.
func orQ(v string) string {
	if v == "" {
		return "?"
	}
	return v
}

// printStatus prints a status as tables.
func printStatus(w io.Writer, s *drlab.Status) {
	fmt.Fprintf(w, "DR lab in %s (%d shard(s)), config %s\n", s.Dir, s.Shards, s.Ini)
	fmt.Fprintln(w, s.Roles.String())
	for _, r := range s.Routers {
		fmt.Fprintf(w, "  the cluster built as %s (router %s): now %s\n", r.Cluster, r.Addr, nowRole(r.Role))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNOW\tSHARD\tNAME\tROLE\tADDRESS\tUP\tIO\tSQL\tSOURCE\tGTID_EXECUTED / ERROR")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Cluster, nowRole(n.ClusterRole), n.Shard, n.Name, n.Role, n.Addr, yesNo(n.Up), io, sqlT, src, detail)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range s.Routers {
		line := fmt.Sprintf("router %s (now %s)\t%s\tpid %d\tup %s", r.Cluster, nowRole(r.Role), r.Addr, r.PID, yesNo(r.Up))
		if !r.Up && r.Error != "" {
			line += "\t" + r.Error
		} else {
			link := "DR link: none"
			if r.DRLink {
				link = "DR link: " + drlab.DRServer + " -> " + r.DRLinkAddr + " (" + r.DRLinkStatus + ")"
			}
			offline := "none"
			if len(r.MasterOffline) > 0 {
				offline = strings.Join(r.MasterOffline, ",")
			}
			line += fmt.Sprintf("\tenable-read-only=%s\tslave-dbscale-mode=%s\t%s\tMaster_Offline: %s", orQ(r.ReadOnly), orQ(r.SlaveDBScaleMode), link, offline)
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
	var asJSON, follow bool
	c := &cobra.Command{
		Use:   "write --seconds N",
		Short: "Run a small bounded workload through the current primary's router (rows with sequence numbers); --follow survives a switchover",
		Long: `Insert rows into flowlab.seq(id, seq, cluster, written_at) through a cluster's router,
one per statement, with sequence numbers continuing after the largest the cluster holds,
for --seconds or --max-rows. The cluster column holds the built name of the cluster
written through.

--cluster names the cluster by its CURRENT role, read from the routers (the one in
slave-dbscale-mode is the standby): primary (the default) or standby; after a
switchover "primary" is the built standby. While the roles are unknown (both or
neither router in slave-dbscale-mode: a half-done switchover) these refuse; name a
cluster as built instead: built-primary or built-standby. Writing to the standby fails
while it is read-only.

--follow is a writer that survives a switchover, to measure the write outage: it
starts through the current primary and, when a write fails (read-only refusal, no
connection), tries the other router, then the first again (a busy poll, 5-20 ms
between rounds), going on through whichever takes writes; sequence numbers continue
across routers. It reports the rows acknowledged with OK (run by run, per router),
the errors by kind, and the longest gap between two consecutive acknowledged writes
(the outage) with its start and end. Ctrl-C stops it cleanly and still prints the
result. Its --json output is what 'flow lab check --acked FILE' reads.`,
		Example: `  flow lab write --seconds 10
  flow lab write --seconds 5 --cluster standby --json
  flow lab write --seconds 5 --cluster built-standby
  flow lab write --follow --seconds 60 --rate 0 --json > writer.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if seconds < 1 || time.Duration(seconds)*time.Second > drlab.MaxWriteDuration {
				return engine.Invalid(fmt.Errorf("--seconds %d: give 1 to %d", seconds, int(drlab.MaxWriteDuration.Seconds())))
			}
			if !drlab.ValidCluster(cluster) || cluster == "" {
				return engine.Invalid(fmt.Errorf("--cluster %q: use primary or standby (the current roles) or %s or %s (as built)", cluster, drlab.BuiltPrimary, drlab.BuiltStandby))
			}
			if follow && cmd.Flags().Changed("cluster") {
				return engine.Invalid(errors.New("--follow writes through whichever router takes writes: leave out --cluster"))
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
			d := time.Duration(seconds) * time.Second
			if follow {
				res, err := l.Follow(ctx, drlab.FollowOptions{Duration: d, MaxRows: maxRows, Rate: rate})
				if res != nil {
					if asJSON {
						_ = writeJSON(st.out, res)
					} else {
						fmt.Fprint(st.out, res.String())
					}
				}
				return err
			}
			res, err := l.Write(ctx, drlab.WriteOptions{Cluster: cluster, Duration: d, MaxRows: maxRows, Rate: rate})
			if res != nil {
				if asJSON {
					_ = writeJSON(st.out, res)
				} else {
					seqs := "none"
					if res.Rows > 0 {
						seqs = fmt.Sprintf("seq %d-%d", res.FirstSeq, res.LastSeq)
					}
					label := res.Cluster
					if res.Role != res.Cluster {
						label = res.Cluster + " (now " + nowRole(res.Role) + ")"
					}
					fmt.Fprintf(st.out, "wrote %d rows through the %s router %s in %.1fs: %s\n", res.Rows, label, res.Router, res.Duration.Seconds(), seqs)
				}
			}
			return err
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().StringVar(&cluster, "cluster", drlab.ClusterPrimary, "whose router to write through: primary or standby (the current roles), built-primary or built-standby (as built)")
	c.Flags().IntVar(&seconds, "seconds", 0, "how long to write (required)")
	c.Flags().IntVar(&maxRows, "max-rows", drlab.DefaultMaxRows, "stop after this many rows")
	c.Flags().IntVar(&rate, "rate", 100, "rows per second (0: as fast as the router answers)")
	c.Flags().BoolVar(&follow, "follow", false, "survive a switchover: go on through whichever router takes writes and report the longest gap between acknowledged writes")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: cluster, role, router, rows, first_seq, last_seq, duration_ns; with --follow: rows, first_seq, last_seq, errors, errors_by_kind, segments[], switches, longest_gap{duration_ns, ms, start, end, seq_before, seq_after, cluster_before, cluster_after, errors}, in_doubt[], stopped, started, duration_ns")
	_ = c.MarkFlagRequired("seconds")
	return c
}

func newLabCheckCmd(st *streams) *cobra.Command {
	var dir, ackedFile string
	var wait time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Compare every node with its shard's master in the current primary (tables and GTIDs); exit 1 on a difference",
		Long: `Compare every node of both clusters with its shard's master in the CURRENT primary
cluster (read from the routers: after a switchover, the built standby's masters; while
the roles are unknown, the built primary's, with a note): per table of the user schemas
the row count and CHECKSUM TABLE, and gtid_executed (missing and extra transactions).
--acked FILE (the --json output of 'flow lab write', with or without --follow) also
requires every sequence number the writer got an OK for on every node, whatever the
reference holds. Replication needs a moment after a write: check re-compares until
nothing differs or --wait has passed. Exit 0 when everything agrees, 1 with the
differences listed by table and GTID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait < 0 {
				return engine.Invalid(fmt.Errorf("--wait %s must not be negative", wait))
			}
			var acked []drlab.SeqRange
			if ackedFile != "" {
				var err error
				if acked, err = readAcked(ackedFile); err != nil {
					return engine.Invalid(err)
				}
			}
			l, err := loadLab(dir)
			if err != nil {
				return err
			}
			ctx, stop := labContext()
			defer stop()
			rep, err := l.Check(ctx, drlab.CheckOptions{Wait: wait, Acked: acked})
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
			if rep.CatchingUp {
				return &engine.ExitError{Code: engine.ExitStepFailed, Err: fmt.Errorf("lab check: %d node(s) still %d transaction(s) behind after --wait %s", rep.Behind, rep.Missing, wait)}
			}
			if !rep.OK {
				return &engine.ExitError{Code: engine.ExitStepFailed, Err: fmt.Errorf("lab check: %d difference(s)", len(rep.Differences))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", drlab.DefaultDir, "the lab folder")
	c.Flags().DurationVar(&wait, "wait", 10*time.Second, "keep comparing this long for replication to catch up (0: once)")
	c.Flags().StringVar(&ackedFile, "acked", "", "a 'flow lab write [--follow] --json' output: every row it got an OK for must be on every node")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: ok, catching_up, behind, missing_transactions, nodes, tables, attempts, duration_ns, reference_cluster, roles, note, acked_rows, differences[]")
	return c
}

// readAcked reads the acknowledged sequence numbers from the --json output
// of `flow lab write`: the segments of a --follow result, else first_seq
// to last_seq.
func readAcked(path string) ([]drlab.SeqRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--acked: %w", err)
	}
	var doc struct {
		Segments []drlab.SeqRange `json:"segments"`
		FirstSeq int64            `json:"first_seq"`
		LastSeq  int64            `json:"last_seq"`
		Rows     *int             `json:"rows"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Rows == nil {
		return nil, fmt.Errorf("--acked %s: not the --json output of 'flow lab write' (%v)", path, err)
	}
	if doc.Segments != nil {
		return doc.Segments, nil
	}
	if doc.FirstSeq > 0 {
		return []drlab.SeqRange{{First: doc.FirstSeq, Last: doc.LastSeq}}, nil
	}
	return []drlab.SeqRange{}, nil
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
