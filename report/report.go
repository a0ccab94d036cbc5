// Package report renders one run's journal as a self-contained HTML page:
// who ran which playbook where, its parameters (secrets masked), every step
// with its target, the statements and commands it sent, its outcome and
// duration, and a timeline drawn as an inline SVG Gantt chart (steps down,
// grouped by host and parallel item; time across). The page loads nothing
// from outside: styles are inline, there is no script, and its content
// security policy forbids any other source.
package report

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/engine/secret"
	"github.com/flowdba/flow/journal"
)

// now is the clock used for the open steps of a run still running.
var now = time.Now

// Write writes the HTML report of run to w.
func Write(w io.Writer, run *journal.Run) error {
	if run == nil {
		return fmt.Errorf("report: no run")
	}
	return pageTmpl.Execute(w, build(run, now()))
}

// page is what the template renders.
type page struct {
	RunID, Title              string
	PlaybookName, Playbook    string
	SHA, Mode, Operator, Host string
	PID, Version, Config      string
	Status, StatusClass       string
	Started, Duration, Error  string
	Params                    []param
	Counts                    string
	Steps                     []stepRow
	Timeline                  timeline
	Summary                   summary
}

type param struct {
	Key, Value string
}

// stepRow is one step in the table of steps.
type stepRow struct {
	N                   int
	Offset, Clock       string
	Duration            string
	State, StateLabel   string
	Name, Type, Where   string
	Worker              string
	Mutates             bool
	Target              string
	Statements          []statement
	Reason, Error       string
	HasDetail, Executed bool
}

type statement struct {
	Offset, Target, Text string
}

// build turns a run into the page model.
func build(run *journal.Run, at time.Time) *page {
	h := run.Header
	p := &page{
		RunID:        run.RunID,
		PlaybookName: orDash(h.PlaybookName),
		Playbook:     orDash(firstNonEmpty(h.Playbook, run.Playbook)),
		SHA:          orDash(h.PlaybookSHA256),
		Mode:         orDash(h.Mode),
		Operator:     orDash(h.Operator),
		Host:         orDash(h.Host),
		Version:      orDash(h.Version),
		Config:       h.Config,
		Status:       run.Status,
		StatusClass:  statusClass(run.Status),
		Error:        run.Error,
	}
	if h.PID > 0 {
		p.PID = fmt.Sprint(h.PID)
	}
	p.Title = fmt.Sprintf("flow run %s: %s", run.RunID, p.PlaybookName)
	if run.ExitCode >= 0 {
		p.Status += fmt.Sprintf(" (exit %d)", run.ExitCode)
	}
	start := runStart(run)
	if !start.IsZero() {
		p.Started = start.UTC().Format("2006-01-02 15:04:05.000 MST")
	}
	end := runEnd(run, at)
	if run.Status == journal.StatusRunning {
		p.Duration = fmtDuration(end.Sub(start)) + " so far"
	} else {
		p.Duration = fmtDuration(end.Sub(start))
	}
	p.Params = params(h.Params)

	steps := mergeRefusals(run)
	counts := map[string]int{}
	for i, s := range steps {
		counts[s.State]++
		p.Steps = append(p.Steps, row(i+1, s, run, start, at))
	}
	open := "started, not finished"
	if run.Status == journal.StatusRunning {
		open = "running"
	}
	p.Counts = fmt.Sprintf("%d done, %d failed, %d refused, %d skipped, %d %s", counts[journal.StepDone],
		counts[journal.StepFailed], counts[journal.StepRefused], counts[journal.StepSkipped], counts[journal.StepOpen], open)
	if n := counts[journal.StepRestored]; n > 0 {
		p.Counts += fmt.Sprintf(", %d restored from an earlier attempt (not run again)", n)
	}
	p.Timeline = layout(steps, run, start, end)
	p.Summary = buildSummary(run, start)
	return p
}

// params sorts the parameters and masks again any value whose key names a
// secret (the journal already masked them; a report is often shared).
func params(in map[string]string) []param {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]param, 0, len(keys))
	for _, k := range keys {
		v := in[k]
		if secret.LooksSecret(k) {
			v = secret.Mask
		}
		out = append(out, param{Key: k, Value: v})
	}
	return out
}

func row(n int, s journal.Step, run *journal.Run, start, at time.Time) stepRow {
	r := stepRow{
		N:        n,
		Offset:   offset(s.Started, start),
		Clock:    s.Started.UTC().Format("15:04:05.000"),
		State:    s.State,
		Name:     s.Name,
		Type:     s.Type,
		Where:    fmt.Sprintf("%s:%d", s.File, s.Line),
		Worker:   workerLabel(s.Worker),
		Mutates:  s.Mutates,
		Target:   stepTarget(s),
		Reason:   s.Reason,
		Error:    s.Error,
		Executed: executed(s),
	}
	r.StateLabel = stateLabel(s.State, run.Status)
	switch {
	case s.State == journal.StepOpen && run.Status == journal.StatusRunning:
		r.Duration = fmtDuration(at.Sub(s.Started)) + " so far"
	case s.State == journal.StepOpen:
		r.Duration = "-"
	case r.Executed:
		r.Duration = fmtDuration(stepDuration(s))
	}
	seen := map[string]bool{}
	var targets []string
	for _, st := range s.Statements {
		r.Statements = append(r.Statements, statement{Offset: offset(st.Time, start), Target: st.Target, Text: st.Text})
		if st.Target != "" && !seen[st.Target] {
			seen[st.Target] = true
			targets = append(targets, st.Target)
		}
	}
	if len(targets) > 0 {
		r.Target = strings.Join(targets, ", ")
	}
	r.HasDetail = len(r.Statements) > 0 || r.Reason != "" || r.Error != ""
	return r
}

// mergeRefusals folds the second record of a step refused while it ran
// into the step that started: journal.Load lists such a step twice, once
// from its step_started (marked refused when the run ends refused) and
// once from its step_refused record.
func mergeRefusals(run *journal.Run) []journal.Step {
	out := make([]journal.Step, 0, len(run.Steps))
	for _, s := range run.Steps {
		if s.State == journal.StepRefused && s.Started.Equal(s.Ended) {
			if i := openTwin(out, s, run); i >= 0 {
				t := &out[i]
				t.State, t.Ended, t.Error = journal.StepRefused, s.Ended, s.Error
				t.Duration = t.Ended.Sub(t.Started)
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// openTwin finds the step in steps that r's refusal ended: the same worker
// and playbook position, started before r, and still open (or closed only
// by the end of the run).
func openTwin(steps []journal.Step, r journal.Step, run *journal.Run) int {
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		if s.Worker != r.Worker || s.File != r.File || s.Line != r.Line || s.Started.After(r.Started) {
			continue
		}
		closedByEnd := s.State == journal.StepRefused && s.Ended.Equal(run.Ended) && s.Ended.After(s.Started)
		if s.State == journal.StepOpen || closedByEnd {
			return i
		}
		return -1
	}
	return -1
}

// executed reports whether a step ran (and so gets a bar): it started, as
// opposed to a skipped step or one a precondition refused before it began.
func executed(s journal.Step) bool {
	switch s.State {
	case journal.StepDone, journal.StepFailed, journal.StepOpen:
		return true
	case journal.StepRefused:
		return s.Ended.After(s.Started)
	}
	return false
}

// stepDuration is what the engine measured, or the time between the
// step's records when that is longer (the engine measures in milliseconds).
func stepDuration(s journal.Step) time.Duration {
	d := s.Duration
	if rec := s.Ended.Sub(s.Started); rec > d {
		d = rec
	}
	return d
}

// stepTarget is the first target the step sent a statement to.
func stepTarget(s journal.Step) string {
	for _, st := range s.Statements {
		if st.Target != "" {
			return st.Target
		}
	}
	return ""
}

// hostOf is the host a target label names: "mysql node (127.0.0.2:3306)"
// is 127.0.0.2; a label in another form is its own host.
func hostOf(target string) string {
	open, end := strings.LastIndex(target, "("), strings.LastIndex(target, ")")
	if open < 0 || end < open {
		return target
	}
	addr := target[open+1 : end]
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func workerLabel(id int64) string {
	if id <= 1 {
		return "main"
	}
	return fmt.Sprintf("ID:%d", id)
}

func stateLabel(state, runStatus string) string {
	if state == journal.StepOpen {
		if runStatus == journal.StatusRunning {
			return "running"
		}
		return "not finished"
	}
	if state == journal.StepRestored {
		return "restored (earlier attempt)"
	}
	return state
}

func statusClass(status string) string {
	switch status {
	case journal.StatusSuccess:
		return "ok"
	case journal.StatusRunning:
		return "open"
	case journal.StatusRefused, journal.StatusAborted:
		return "refused"
	case journal.StatusInterrupted, journal.StatusUnknown:
		return "stopped"
	}
	return "failed"
}

// runStart is the run's start: the header's, else its first step's.
func runStart(run *journal.Run) time.Time {
	if !run.Header.Started.IsZero() {
		return run.Header.Started
	}
	if !run.Started.IsZero() {
		return run.Started
	}
	for _, s := range run.Steps {
		if !s.Started.IsZero() {
			return s.Started
		}
	}
	return time.Time{}
}

// runEnd is the run's last record, or now for a run still running; never
// before the end of a step.
func runEnd(run *journal.Run, at time.Time) time.Time {
	end := run.Ended
	if run.Status == journal.StatusRunning {
		end = at
	}
	for _, s := range run.Steps {
		if s.Ended.After(end) {
			end = s.Ended
		}
	}
	return end
}

func offset(t, start time.Time) string {
	if t.IsZero() || start.IsZero() {
		return "-"
	}
	return "+" + fmtDuration(t.Sub(start))
}

// fmtDuration rounds for reading: microseconds under a millisecond,
// milliseconds under a second, tenths of a second under a minute, seconds
// above.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
