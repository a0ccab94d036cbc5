package report

// The summary at the top of a report: what a DBA hands to a manager — who
// ran what where and how it ended, what changed on which target, the facts
// the playbook stated (detach point, donor, when the standby opened and
// closed), who confirmed, what the rescue did, and every attempt.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
)

// summary is the report's first section.
type summary struct {
	Outcome  string
	Attempts []attemptRow
	Changes  []changeRow
	Facts    []auditRow
	Decided  []auditRow // confirmations and signals
	Safety   []auditRow // rescues and the run lock
	Logs     []logRow
	LogCount int
}

type attemptRow struct {
	N                       int
	Started, Ended, Status  string
	Host, Operator, Error   string
	Steps, Restored, Failed int
}

type changeRow struct {
	Target     string
	Count      int
	First      string
	Statements []string
	More       int
}

type auditRow struct {
	Clock, Text string
	Attempt     int
}

type logRow struct {
	Clock, Level, Where, Msg string
}

// maxShown is how many statements a change row lists before "and N more".
const maxShown = 6

func buildSummary(run *journal.Run, start time.Time) summary {
	var s summary
	h := run.Header
	end := run.Ended
	s.Outcome = fmt.Sprintf("%s ran %s on %s: %s after %s", orDash(h.Operator), orDash(h.PlaybookName), orDash(h.Host),
		run.Status, fmtDuration(end.Sub(start)))
	if run.Changes > 0 {
		s.Outcome += fmt.Sprintf("; %d state-changing step(s) sent their change", run.Changes)
	} else if h.Mode == "run" {
		s.Outcome += "; no state-changing step sent a change"
	}
	if len(run.AttemptList) > 1 {
		s.Outcome += fmt.Sprintf("; %d attempts", len(run.AttemptList))
	}
	for _, a := range run.AttemptList {
		row := attemptRow{N: a.N, Started: a.Started.UTC().Format("2006-01-02 15:04:05"), Status: a.Status,
			Host: orDash(a.Host), Operator: orDash(a.Operator), Error: a.Error}
		if !a.Ended.IsZero() {
			row.Ended = a.Ended.UTC().Format("15:04:05")
		}
		for _, st := range run.Steps {
			if st.Attempt != a.N {
				continue
			}
			switch st.State {
			case journal.StepRestored:
				row.Restored++
			case journal.StepFailed, journal.StepRefused:
				row.Failed++
				row.Steps++
			default:
				row.Steps++
			}
		}
		s.Attempts = append(s.Attempts, row)
	}
	byTarget := map[string]*changeRow{}
	for _, st := range run.Steps {
		if !st.Mutates {
			continue
		}
		for _, stm := range st.Statements {
			t := orDash(stm.Target)
			c := byTarget[t]
			if c == nil {
				c = &changeRow{Target: t, First: stm.Time.UTC().Format("15:04:05")}
				byTarget[t] = c
			}
			c.Count++
			if len(c.Statements) < maxShown {
				c.Statements = append(c.Statements, oneLine(stm.Text))
			} else {
				c.More++
			}
		}
	}
	for _, c := range byTarget {
		s.Changes = append(s.Changes, *c)
	}
	sort.Slice(s.Changes, func(i, j int) bool { return s.Changes[i].First < s.Changes[j].First })
	seenFact := map[string]bool{}
	for _, a := range run.Audit {
		row := auditRow{Clock: a.Time.UTC().Format("15:04:05"), Text: a.Text, Attempt: a.Attempt}
		switch a.Event {
		case event.Summary:
			if !seenFact[a.Text] {
				seenFact[a.Text] = true
				s.Facts = append(s.Facts, row)
			}
		case event.Confirmation, event.Signal:
			s.Decided = append(s.Decided, row)
		default:
			s.Safety = append(s.Safety, row)
		}
	}
	s.LogCount = len(run.Logs)
	for _, l := range run.Logs {
		s.Logs = append(s.Logs, logRow{Clock: l.Time.UTC().Format("15:04:05.000"), Level: l.Level,
			Where: fmt.Sprintf("%s:%d", l.File, l.Line), Msg: l.Msg})
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
