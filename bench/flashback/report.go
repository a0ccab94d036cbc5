package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Phase is one measured playbook run (start or stop) of a cycle.
type Phase struct {
	Name string
	Run  *Run
	// ProcStart and ProcEnd bracket the flow process (exec to exit); zero
	// when only the log is known (-from).
	ProcStart, ProcEnd time.Time
	// CPU is the flow process's user and system CPU time.
	User, Sys time.Duration
	// LabCPU is the CPU time the lab's own processes (mysqld, routers, sshd
	// and what they ran) used during the phase; Busy the whole machine's.
	LabCPU, Busy time.Duration
	Shares       Shares
	Rows         []StepRow
}

// newPhase analyses a parsed run.
func newPhase(name string, run *Run, procStart, procEnd time.Time, user, sys time.Duration) *Phase {
	return &Phase{Name: name, Run: run, ProcStart: procStart, ProcEnd: procEnd, User: user, Sys: sys,
		Shares: ComputeShares(run, procStart, procEnd), Rows: StepRows(run)}
}

// Cycle is one start → drill → stop round on the lab.
type Cycle struct {
	N           int
	Start, Stop *Phase
	// Check is the outcome of `flow lab check` after stop ("" when not run).
	Check string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
func secs1(d time.Duration) string {
	return fmt.Sprintf("%.1f", d.Seconds())
}

// shortName keeps a table readable.
func shortName(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// writeSteps prints the per-step table of a phase: every top-level step,
// and nested steps whose wall time reaches min.
func writeSteps(w io.Writer, p *Phase, min time.Duration) {
	fmt.Fprintf(w, "\n%s: per-step wall times (steps under %s hidden unless top-level; n = executions, wall = their union, sum = added up)\n", p.Run.Playbook, min)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  step\ttype\tclass\t   n\t  wall s\t   sum s\tat")
	hidden := 0
	for _, r := range p.Rows {
		if r.Depth > 0 && r.Wall < min {
			hidden++
			continue
		}
		name := strings.Repeat("  ", r.Depth+1) + shortName(r.Name, 72-2*r.Depth)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%4d\t%8s\t%8s\t%s\n", name, r.Type, r.Class, r.Count, secs(r.Wall), secs(r.Sum), r.Key)
	}
	tw.Flush()
	fmt.Fprintf(w, "  (%d shorter nested steps not shown)\n", hidden)
}

// writeShares prints where a phase's wall time went.
func writeShares(w io.Writer, p *Phase) {
	s := p.Shares
	wallWhat := "flow process, exec to exit"
	if p.ProcStart.IsZero() {
		wallWhat = "run_started to run_finished"
	}
	fmt.Fprintf(w, "\n%s: %s s (%s)\n", p.Run.Playbook, secs(s.Wall), wallWhat)
	line := func(label string, d time.Duration, detail string) {
		fmt.Fprintf(w, "  %-30s %9s s %6.1f %%  %s\n", label, secs(d), s.Pct(d), detail)
	}
	line("waiting on MySQL", s.MySQL(), fmt.Sprintf("(initialise %s, clone %s, instance start/stop %s, GTID waits %s)",
		secs(s.ByClass[ClassInit]), secs(s.ByClass[ClassClone]), secs(s.ByClass[ClassInstance]), secs(s.ByClass[ClassGTID])))
	line("other work (sql, ssh, redo)", s.Work(), fmt.Sprintf("(sql %s, ssh %s, redo %s, other %s)",
		secs(s.ByClass[ClassSQL]), secs(s.ByClass[ClassSSH]), secs(s.ByClass[ClassRedo]), secs(s.ByClass[ClassOther])))
	line("engine's own", s.Engine(), fmt.Sprintf("(start-up and load %s, exit %s, between steps %s, set/assert/log %s)",
		secs(s.Startup), secs(s.Exit), secs(s.ByClass[ClassGap]-s.Startup-s.Exit), secs(s.ByClass[ClassEngine])))
	line("engine, upper bound", s.EngineUpper(), fmt.Sprintf("(+ step preparation before the first statement: rendering, journal, connecting %s)",
		secs(s.ByClass[ClassPrep])))
	if p.User+p.Sys > 0 {
		fmt.Fprintf(w, "  %-30s %9s s %6.1f %%  (user %s + sys %s; the in-process SSH and MySQL clients included)\n",
			"flow process CPU", secs(p.User+p.Sys), s.Pct(p.User+p.Sys), secs(p.User), secs(p.Sys))
	}
	fmt.Fprintf(w, "  %-30s %9s s %6.1f %%  (run wall minus the sum of the top-level steps' durations; misses gaps inside groups)\n",
		"naive engine figure", secs(s.NaiveEngine), s.Pct(s.NaiveEngine))
	if p.Run.Unclosed > 0 {
		fmt.Fprintf(w, "  warning: %d step(s) never finished (the run was cut short)\n", p.Run.Unclosed)
	}
}

// writeCycles prints one line per cycle and the medians.
func writeCycles(w io.Writer, cycles []*Cycle) {
	fmt.Fprintln(w, "\nsummary (seconds; shares of each phase's wall time)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "cycle\tstart s\tMySQL\tengine\tengine ≤\tstop s\tMySQL\tengine\tengine ≤\tlab check")
	for _, c := range cycles {
		fmt.Fprintf(tw, "%d\t%s\n", c.N, cycleCells(c))
	}
	if len(cycles) > 1 {
		fmt.Fprintf(tw, "median\t%s\t\t\t\t%s\t\t\t\t\n", secs1(median(cycles, func(c *Cycle) time.Duration { return c.Start.Shares.Wall })),
			secs1(median(cycles, func(c *Cycle) time.Duration { return c.Stop.Shares.Wall })))
	}
	tw.Flush()
	fmt.Fprintln(w, "the seed's production run: start 274 s, stop 114 s; targets (issue #14): start at most 11 s, stop at most 10 s, the engine's own share under 1 %")
}

func cycleCells(c *Cycle) string {
	cell := func(p *Phase) string {
		if p == nil {
			return "-\t-\t-\t-"
		}
		s := p.Shares
		return fmt.Sprintf("%s\t%.1f %%\t%.2f %%\t%.2f %%", secs1(s.Wall), s.Pct(s.MySQL()), s.Pct(s.Engine()), s.Pct(s.EngineUpper()))
	}
	check := c.Check
	if check == "" {
		check = "-"
	}
	return cell(c.Start) + "\t" + cell(c.Stop) + "\t" + check
}

func median(cycles []*Cycle, f func(*Cycle) time.Duration) time.Duration {
	var ds []time.Duration
	for _, c := range cycles {
		if c.Start != nil && c.Stop != nil {
			ds = append(ds, f(c))
		}
	}
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// writeMarkdown writes the figures as Markdown tables (for RESULTS.md):
// per shard count its description and cycles, the scaling table when
// there are several, and the detail of one cycle.
func writeMarkdown(w io.Writer, scales []*Scale, detail *Cycle, min time.Duration) {
	for _, sc := range scales {
		fmt.Fprintf(w, "%s\n\n", sc.Env)
		fmt.Fprintln(w, "| cycle | start s | MySQL | engine | engine ≤ | stop s | MySQL | engine | engine ≤ | lab check |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, c := range sc.Cycles {
			fmt.Fprintf(w, "| %d | %s |\n", c.N, strings.ReplaceAll(cycleCells(c), "\t", " | "))
		}
		if len(sc.Cycles) > 1 {
			fmt.Fprintf(w, "| median | %s | | | | %s | | | | |\n",
				secs1(median(sc.Cycles, func(c *Cycle) time.Duration { return c.Start.Shares.Wall })),
				secs1(median(sc.Cycles, func(c *Cycle) time.Duration { return c.Stop.Shares.Wall })))
		}
		fmt.Fprintln(w)
	}
	if len(scales) > 1 {
		writeScalingMarkdown(w, scales)
	}
	writeFloor(w, scales, true)
	if detail == nil {
		return
	}
	for _, p := range []*Phase{detail.Start, detail.Stop} {
		if p == nil {
			continue
		}
		s := p.Shares
		fmt.Fprintf(w, "\n### %s, cycle %d: %s s\n\n", p.Run.Playbook, detail.N, secs1(s.Wall))
		fmt.Fprintln(w, "| where the time went | s | share |")
		fmt.Fprintln(w, "|---|---:|---:|")
		row := func(label string, d time.Duration) {
			fmt.Fprintf(w, "| %s | %s | %.1f %% |\n", label, secs(d), s.Pct(d))
		}
		row("**waiting on MySQL**", s.MySQL())
		row("— initialise the clone instances (`mysqld --initialize`)", s.ByClass[ClassInit])
		row("— clone", s.ByClass[ClassClone])
		row("— instances starting / stopping (SHUTDOWN, ping, polls)", s.ByClass[ClassInstance])
		row("— GTID waits", s.ByClass[ClassGTID])
		row("**other work**", s.Work())
		row("— SQL statements (routers, nodes)", s.ByClass[ClassSQL])
		row("— SSH commands", s.ByClass[ClassSSH])
		row("— redo record", s.ByClass[ClassRedo]+s.ByClass[ClassOther])
		row("**engine's own**", s.Engine())
		row("— process start-up, loading and compiling the playbooks", s.Startup)
		row("— between steps (guards, `when`, skips, logging, scheduling)", s.ByClass[ClassGap]-s.Startup-s.Exit)
		row("— set / assert / log steps", s.ByClass[ClassEngine])
		row("— process exit", s.Exit)
		row("engine, upper bound (+ step preparation: rendering, journal, connecting)", s.EngineUpper())
		if p.User+p.Sys > 0 {
			row("flow process CPU (user + sys)", p.User+p.Sys)
		}
		row("naive: run wall − Σ top-level step durations", s.NaiveEngine)
		fmt.Fprintf(w, "\nSteps (top-level, and nested ones of %s or more; n = executions, wall = their union):\n\n", min)
		fmt.Fprintln(w, "| step | type | class | n | wall s | sum s | at |")
		fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|")
		for _, r := range p.Rows {
			if r.Depth > 0 && r.Wall < min {
				continue
			}
			name := strings.Repeat("&nbsp;&nbsp;", r.Depth) + strings.ReplaceAll(shortName(r.Name, 80), "|", "\\|")
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s |\n", name, r.Type, r.Class, r.Count, secs(r.Wall), secs(r.Sum), r.Key)
		}
	}
}

// labShare is the lab's CPU use during a phase as cores busy on average and
// as a share of the machine (all cores for the wall time), with the
// machine's whole busy share beside it.
func labShare(p *Phase) (labCores, labPct, busyPct float64) {
	wall := p.Shares.Wall.Seconds()
	if wall <= 0 {
		return 0, 0, 0
	}
	n := float64(cores())
	return p.LabCPU.Seconds() / wall, 100 * p.LabCPU.Seconds() / wall / n, 100 * p.Busy.Seconds() / wall / n
}

// scaleRow is one line of the scaling table, medians over the cycles.
type scaleRow struct {
	sc                      *Scale
	start, stop             time.Duration
	startLab, stopLab       float64 // cores
	startPct, stopPct       float64 // of the machine
	startBusy, stopBusy     float64 // the machine's busy share
	startEngine, stopEngine float64 // the engine's own share, %
	checks                  string
}

func scaleRows(scales []*Scale) []scaleRow {
	var out []scaleRow
	for _, sc := range scales {
		r := scaleRow{sc: sc}
		var done []*Cycle
		for _, c := range sc.Cycles {
			if c.Start != nil && c.Stop != nil {
				done = append(done, c)
			}
		}
		if len(done) == 0 {
			r.checks = "no cycle"
			out = append(out, r)
			continue
		}
		r.start = median(done, func(c *Cycle) time.Duration { return c.Start.Shares.Wall })
		r.stop = median(done, func(c *Cycle) time.Duration { return c.Stop.Shares.Wall })
		// the shares of the cycle whose start is the median one (or the first of two)
		m := done[0]
		for _, c := range done {
			if c.Start.Shares.Wall == r.start {
				m = c
			}
		}
		r.startLab, r.startPct, r.startBusy = labShare(m.Start)
		r.stopLab, r.stopPct, r.stopBusy = labShare(m.Stop)
		r.startEngine, r.stopEngine = m.Start.Shares.Pct(m.Start.Shares.Engine()), m.Stop.Shares.Pct(m.Stop.Shares.Engine())
		var cs []string
		for _, c := range sc.Cycles {
			cs = append(cs, c.Check)
		}
		r.checks = strings.Join(cs, ", ")
		out = append(out, r)
	}
	return out
}

// writeScaling prints the table of start and stop per shard count.
func writeScaling(w io.Writer, scales []*Scale) {
	fmt.Fprintln(w, "\nper shard count (medians of the cycles; lab CPU = the lab's mysqld, routers and sshd, in cores and % of the machine; busy = the whole machine)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "shards\tnodes\tup s\tverify s\tPSS after up\tpeak PSS\tpeak RSS Σ\tstart s\tlab CPU\tbusy\tengine\tstop s\tlab CPU\tbusy\tengine\tlab check")
	for _, r := range scaleRows(scales) {
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%.2f (%.0f %%)\t%.0f %%\t%.2f %%\t%s\t%.2f (%.0f %%)\t%.0f %%\t%.2f %%\t%s\n",
			r.sc.Shards, 6*r.sc.Shards, r.sc.Up.Seconds(), r.sc.Verify.Seconds(), gb(r.sc.AfterUp.PSS), gb(r.sc.PeakPSS), gb(r.sc.PeakRSS),
			secs1(r.start), r.startLab, r.startPct, r.startBusy, r.startEngine, secs1(r.stop), r.stopLab, r.stopPct, r.stopBusy, r.stopEngine, r.checks)
	}
	tw.Flush()
}

// writeScalingMarkdown writes the same table as Markdown.
func writeScalingMarkdown(w io.Writer, scales []*Scale) {
	fmt.Fprintln(w, "| shards | nodes | lab up s | verify s | memory after up (PSS) | peak PSS | peak RSS summed | start s | lab CPU in start | machine busy | engine | stop s | lab CPU in stop | machine busy | engine | lab check |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range scaleRows(scales) {
		fmt.Fprintf(w, "| %d | %d | %.1f | %.1f | %s | %s | %s | %s | %.2f cores (%.0f %%) | %.0f %% | %.2f %% | %s | %.2f cores (%.0f %%) | %.0f %% | %.2f %% | %s |\n",
			r.sc.Shards, 6*r.sc.Shards, r.sc.Up.Seconds(), r.sc.Verify.Seconds(), gb(r.sc.AfterUp.PSS), gb(r.sc.PeakPSS), gb(r.sc.PeakRSS),
			secs1(r.start), r.startLab, r.startPct, r.startBusy, r.startEngine, secs1(r.stop), r.stopLab, r.stopPct, r.stopBusy, r.stopEngine, r.checks)
	}
	fmt.Fprintln(w)
}
