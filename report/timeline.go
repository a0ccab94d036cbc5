package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/internal/durtext"
	"github.com/flowdba/flow/journal"
)

// Timeline geometry, in SVG user units (pixels at 100%).
const (
	labelW   = 400.0 // the step names' column
	plotX    = labelW + 12
	plotW    = 820.0
	rightPad = 40.0
	axisY    = 34.0 // the time axis line; tick labels above it
	groupH   = 24.0
	rowH     = 20.0
	barH     = 12.0
	maxLabel = 56 // runes of a step name shown on its row
	maxTicks = 8
)

// timeline is the SVG Gantt chart.
type timeline struct {
	Width, Height string
	AxisX1        string
	AxisX2        string
	AxisY         string
	TickTop       string
	GridY2        string
	Ticks         []tick
	Groups        []group
	Bars          int
	Skipped       int
}

type tick struct {
	X, Label string
}

// group is the rows of one host and one worker (the main flow or one
// parallel item).
type group struct {
	Y, H, LabelY  string
	X, W          string
	Label, Detail string
	Shade         bool
	Rows          []lane
}

// lane is one step's row: its label and its bar (or, for a step refused
// before it began, a marker).
type lane struct {
	LabelX, TextY string
	Label         string
	Bar           *bar
	Mark          *mark
}

type bar struct {
	X, Y, W, H string
	Class      string
	Title      string
}

type mark struct {
	Points string
	Title  string
}

type laneStep struct {
	s     journal.Step
	start time.Time
	end   time.Time
}

type groupKey struct {
	host   string
	worker int64
}

// layout places every executed step (and every refusal) of the run on the
// chart, grouped by host and worker, groups and rows in the order they
// started.
func layout(steps []journal.Step, run *journal.Run, start, end time.Time) timeline {
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	tl := timeline{
		Width:   f(plotX + plotW + rightPad),
		AxisX1:  f(plotX),
		AxisX2:  f(plotX + plotW),
		AxisY:   f(axisY),
		TickTop: f(axisY - 5),
	}
	byKey := map[groupKey][]laneStep{}
	var order []groupKey
	for _, s := range steps {
		if s.State == journal.StepSkipped {
			tl.Skipped++
			continue
		}
		ls := laneStep{s: s, start: s.Started, end: s.Ended}
		if s.State == journal.StepOpen {
			ls.end = end
		}
		if ls.start.IsZero() {
			continue
		}
		k := groupKey{host: hostOf(stepTarget(s)), worker: s.Worker}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], ls)
	}
	sort.SliceStable(order, func(i, j int) bool {
		return byKey[order[i]][0].start.Before(byKey[order[j]][0].start)
	})
	x := func(t time.Time) float64 {
		fr := float64(t.Sub(start)) / float64(span)
		return plotX + math.Max(0, math.Min(1, fr))*plotW
	}
	y := axisY + 8
	for gi, k := range order {
		rows := byKey[k]
		sort.SliceStable(rows, func(i, j int) bool {
			if !rows[i].start.Equal(rows[j].start) {
				return rows[i].start.Before(rows[j].start)
			}
			return rows[i].s.Seq < rows[j].s.Seq
		})
		g := group{Y: f(y), H: f(groupH + float64(len(rows))*rowH), LabelY: f(y + 16), X: "0",
			W: f(plotX + plotW + rightPad), Shade: gi%2 == 1}
		g.Label, g.Detail = groupLabel(k, run.Header.Host)
		y += groupH
		for _, r := range rows {
			l := lane{LabelX: "22", TextY: f(y + rowH/2 + 4), Label: truncate(r.s.Name, maxLabel)}
			tip := tooltip(r.s, run, start, r.end)
			by := y + (rowH-barH)/2
			if executed(r.s) {
				x0, x1 := x(r.start), x(r.end)
				w := math.Max(x1-x0, 2)
				if x0+w > plotX+plotW {
					x0 = plotX + plotW - w
				}
				l.Bar = &bar{X: f(x0), Y: f(by), W: f(w), H: f(barH), Class: "bar bar-" + barClass(r.s.State, r.s.Interrupted), Title: tip}
				tl.Bars++
			} else {
				cx, cy, d := x(r.start), y+rowH/2, barH/2
				l.Mark = &mark{Points: fmt.Sprintf("%s,%s %s,%s %s,%s %s,%s", f(cx), f(cy-d), f(cx+d), f(cy), f(cx), f(cy+d), f(cx-d), f(cy)), Title: tip}
			}
			g.Rows = append(g.Rows, l)
			y += rowH
		}
		tl.Groups = append(tl.Groups, g)
	}
	tl.Height = f(y + 12)
	tl.GridY2 = f(y + 4)
	step := niceStep(span / maxTicks)
	for t := time.Duration(0); t <= span; t += step {
		tl.Ticks = append(tl.Ticks, tick{X: f(x(start.Add(t))), Label: fmtTick(t)})
	}
	return tl
}

// groupLabel names a group: its host (the control host for steps that
// sent nothing) and its worker.
func groupLabel(k groupKey, control string) (label, detail string) {
	host := k.host
	if host == "" {
		host = "control host " + orDash(control)
	}
	if k.worker <= 1 {
		return host, "main flow"
	}
	return host, fmt.Sprintf("parallel item [ID:%d]", k.worker)
}

func tooltip(s journal.Step, run *journal.Run, start, end time.Time) string {
	var b strings.Builder
	b.WriteString(s.Name)
	if s.Type != "" {
		fmt.Fprintf(&b, " [%s]", s.Type)
	}
	fmt.Fprintf(&b, "\n%s", stateLabel(s.State, run.Status))
	if executed(s) {
		d := stepDuration(s)
		if s.State == journal.StepOpen {
			d = end.Sub(s.Started)
		}
		fmt.Fprintf(&b, ", %s", fmtDuration(d))
	}
	fmt.Fprintf(&b, ", from %s\n%s:%d, %s", offset(s.Started, start), s.File, s.Line, workerLabel(s.Worker))
	if t := stepTarget(s); t != "" {
		fmt.Fprintf(&b, "\non %s", t)
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s", truncate(s.Error, 300))
	}
	return b.String()
}

func barClass(state string, interrupted bool) string {
	switch state {
	case journal.StepDone:
		return "done"
	case journal.StepFailed:
		if interrupted {
			return "interrupted"
		}
		return "failed"
	case journal.StepRefused:
		return "refused"
	}
	return "open"
}

// niceStep is the tick interval: under a second, the smallest 1, 2 or 5
// times a power of ten (in nanoseconds) not below min; above, the smallest
// of 1, 2, 5, 10, 15 and 30 seconds or minutes, or whole hours.
func niceStep(min time.Duration) time.Duration {
	if min < 1 {
		min = 1
	}
	if min > 500*time.Millisecond {
		for _, unit := range []time.Duration{time.Second, time.Minute} {
			for _, m := range []time.Duration{1, 2, 5, 10, 15, 30} {
				if m*unit >= min {
					return m * unit
				}
			}
		}
		return (min + time.Hour - 1) / time.Hour * time.Hour
	}
	for p := time.Duration(1); ; p *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if m*p >= min {
				return m * p
			}
		}
	}
}

// fmtTick labels a tick: "0", "500µs", "1.5s", "2m", "1h30m".
func fmtTick(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return durtext.Short(d)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func f(v float64) string { return fmt.Sprintf("%.1f", v) }
