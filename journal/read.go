package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowdba/flow/event"
)

// Run statuses.
const (
	StatusRunning = "running"
	StatusSuccess = "success"
	StatusFailed  = "failed"
	StatusRefused = "refused"
	// StatusAborted is a run a guard refused, or whose confirmation was
	// declined, after it had changed something (exit 4): the rescue
	// sections that apply ran.
	StatusAborted     = "aborted"
	StatusInterrupted = "interrupted"
	// StatusRolledBack is a run whose changes flow rollback undid.
	StatusRolledBack = "rolled-back"
	// StatusInvalid is a run stopped by invalid input before any step.
	StatusInvalid = "invalid"
	// StatusUnknown is an unfinished run started on another host: whether
	// it still runs cannot be checked from here.
	StatusUnknown = "unknown"
	// StatusUnreadable is a journal that cannot be read.
	StatusUnreadable = "unreadable"
)

// Summary is one run as `flow runs` lists it.
type Summary struct {
	RunID    string
	Playbook string // the playbook's path as given (or absolute)
	Name     string // the playbook's name
	Mode     string
	Status   string
	Started  time.Time
	// Ended is the time of the run's last record (for an interrupted run,
	// the last thing it recorded).
	Ended time.Time
	// ExitCode is the process exit code (-1 when not recorded).
	ExitCode int
	Error    string
	Records  int
	// Attempts counts the resumed attempts after the first.
	Attempts int
	// Restored counts the steps resumed attempts took from the journal
	// instead of running them again.
	Restored int
}

// Duration is how long the run took (until its last record).
func (s Summary) Duration() time.Duration {
	if s.Started.IsZero() || s.Ended.IsZero() {
		return 0
	}
	return s.Ended.Sub(s.Started)
}

// sortTime is when the run started: from its header, else from its id.
func (s Summary) sortTime() time.Time {
	if !s.Started.IsZero() {
		return s.Started
	}
	if len(s.RunID) >= 16 {
		if t, err := time.Parse("20060102T150405Z", s.RunID[:16]); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Step states.
const (
	StepDone    = "done"
	StepFailed  = "failed"
	StepSkipped = "skipped"
	StepRefused = "refused"
	// StepOpen is a step that started and has no recorded end: the current
	// step of a running run, or where an interrupted run stopped.
	StepOpen = "started"
	// StepRestored is a step a resumed attempt did not run again: its
	// output came back from the journal (an earlier attempt finished it).
	StepRestored = "restored"
)

// AuditEntry is a decision or safety event of a run, for the audit: a
// confirmation (who, how, what word), a signal, the run lock taken or
// released, a rescue started or ended, a fact a playbook logged for the
// summary.
type AuditEntry struct {
	Time    time.Time
	Attempt int
	// Event is the journal event (event.Confirmation, event.Signal, …).
	Event string
	// Text says what happened in a sentence.
	Text string
	// Fields are the record's fields.
	Fields map[string]any
}

// LogLine is a log line the run wrote (secrets masked).
type LogLine struct {
	Time    time.Time
	Attempt int
	Level   string
	File    string
	Line    int
	Worker  int64
	Msg     string
}

// Attempt is one attempt of a run: the first run, or a resume or rollback.
type Attempt struct {
	N        int
	Started  time.Time
	Ended    time.Time
	Status   string
	Error    string
	Host     string
	Operator string
}

// Step is one step of a run as the journal recorded it.
type Step struct {
	// Seq is the record that started (or skipped, refused) the step.
	Seq     int64
	Worker  int64
	File    string // playbook base name
	Line    int
	ID      string
	Name    string
	Type    string
	Mutates bool
	State   string
	Started time.Time
	Ended   time.Time
	// Duration is what the engine measured (0 for an open step).
	Duration time.Duration
	Error    string
	// Interrupted says a failed step was ended by the run's signal
	// (Ctrl-C, SIGTERM, a hang-up), not by its own failure.
	Interrupted bool
	Reason      string // why a step was skipped
	Statements  []Statement
	// Key identifies the step instance (playbook positions and for_each
	// items); Attempt is 1 for the run, 2… for each resume or rollback.
	Key     string
	Attempt int
}

// Statement is a statement or command as sent (secrets masked).
type Statement struct {
	Time   time.Time
	Target string
	Text   string
}

// Run is a whole journal read back.
type Run struct {
	Summary
	Header Header
	Steps  []Step
	// Audit are the run's decisions and safety events, in order.
	Audit []AuditEntry
	// Logs are the run's log lines, in order.
	Logs []LogLine
	// AttemptList are the run's attempts (the first run, then each
	// resume or rollback), in order.
	AttemptList []Attempt
	// Changes counts the state-changing steps whose change was sent.
	Changes int
}

// List returns every run under stateDir, oldest first. A journal that
// cannot be read is listed as unreadable.
func List(stateDir string) ([]Summary, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := Path(stateDir, e.Name())
		if _, err := os.Stat(path); err != nil {
			continue
		}
		run, err := Load(stateDir, e.Name())
		if err != nil {
			out = append(out, Summary{RunID: e.Name(), Status: StatusUnreadable, ExitCode: -1, Error: err.Error()})
			continue
		}
		out = append(out, run.Summary)
	}
	// ids sort by the second; the header's start time orders runs begun
	// within the same second
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].sortTime(), out[j].sortTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].RunID < out[j].RunID
	})
	return out, nil
}

// Resolve finds a run by its id or a unique prefix of it; "last" is the
// newest run.
func Resolve(stateDir, ref string) (string, error) {
	runs, err := List(stateDir)
	if err != nil {
		return "", err
	}
	if len(runs) == 0 {
		return "", fmt.Errorf("no runs in %s", stateDir)
	}
	if ref == "last" {
		return runs[len(runs)-1].RunID, nil
	}
	var match []string
	for _, r := range runs {
		if r.RunID == ref {
			return ref, nil
		}
		if strings.HasPrefix(r.RunID, ref) {
			match = append(match, r.RunID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no run %q in %s (flow runs lists them)", ref, stateDir)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%q matches %d runs in %s (%s): give more of the id", ref, len(match), stateDir, strings.Join(match, ", "))
}

// Load reads a run's journal: its header, status, and steps in the order
// they started, each with the statements it sent. A torn last line (flow
// killed while writing it) is ignored.
func Load(stateDir, runID string) (*Run, error) {
	if err := validRunID(runID); err != nil {
		return nil, err
	}
	recs, err := readRecords(Path(stateDir, runID))
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || recs[0].Event != event.Header {
		return nil, fmt.Errorf("%s: the first record is not a %s", Path(stateDir, runID), event.Header)
	}
	run := &Run{}
	if err := fromFields(recs[0].Fields, &run.Header); err != nil {
		return nil, fmt.Errorf("%s: line 1: %v", Path(stateDir, runID), err)
	}
	h := run.Header
	run.Summary = Summary{RunID: runID, Playbook: h.PlaybookFile, Name: h.PlaybookName, Mode: h.Mode,
		Started: h.Started, ExitCode: -1, Records: len(recs)}
	if run.Playbook == "" {
		run.Playbook = h.Playbook
	}
	finished := false
	attempt := 1
	run.AttemptList = []Attempt{{N: 1, Started: h.Started, Host: h.Host, Operator: h.Operator}}
	cur := func() *Attempt { return &run.AttemptList[len(run.AttemptList)-1] }
	audit := func(rec Record, text string) {
		run.Audit = append(run.Audit, AuditEntry{Time: parseTime(rec.Time), Attempt: attempt, Event: rec.Event, Text: text, Fields: rec.Fields})
	}
	open := map[string][]int{} // worker/file/line → indexes of open steps
	key := func(f map[string]any) string {
		return fmt.Sprintf("%d/%s/%d", num(f, "id"), str(f, "pb_file"), num(f, "line"))
	}
	for _, rec := range recs[1:] {
		f := rec.Fields
		at := parseTime(rec.Time)
		run.Ended = at
		before := len(run.Steps)
		switch rec.Event {
		case event.StepStarted:
			open[key(f)] = append(open[key(f)], len(run.Steps))
			run.Steps = append(run.Steps, newStep(rec, StepOpen))
		case event.StepFinished, event.StepFailed, event.StepRefused:
			k := key(f)
			st := StepDone
			switch rec.Event {
			case event.StepFailed:
				st = StepFailed
			case event.StepRefused:
				st = StepRefused
			}
			if rec.Event == event.StepRefused && len(open[k]) == 0 {
				// refused by a precondition before it started
				s := newStep(rec, st)
				s.Ended, s.Error, s.Reason = at, str(f, "error"), str(f, "reason")
				run.Steps = append(run.Steps, s)
				continue
			}
			if stack := open[k]; len(stack) > 0 {
				s := &run.Steps[stack[len(stack)-1]]
				open[k] = stack[:len(stack)-1]
				s.State, s.Ended, s.Error = st, at, str(f, "error")
				s.Interrupted, _ = f["interrupted"].(bool)
				s.Duration = time.Duration(num(f, "duration_ms")) * time.Millisecond
				if s.Duration == 0 {
					s.Duration = s.Ended.Sub(s.Started) // under a millisecond
				}
			} else {
				s := newStep(rec, st)
				s.Ended, s.Error = at, str(f, "error")
				run.Steps = append(run.Steps, s)
			}
		case event.StepSkipped:
			st := StepSkipped
			s := newStep(rec, st)
			s.Ended, s.Error, s.Reason = at, str(f, "error"), str(f, "reason")
			run.Steps = append(run.Steps, s)
		case event.Statement:
			stm := Statement{Time: at, Target: str(f, "target"), Text: str(f, "text")}
			if stack := open[key(f)]; len(stack) > 0 {
				s := &run.Steps[stack[len(stack)-1]]
				s.Statements = append(s.Statements, stm)
			}
		case event.StepRestored:
			run.Restored++
			rs := newStep(rec, StepRestored)
			rs.Ended = at
			run.Steps = append(run.Steps, rs)
		case event.StepDispatched:
			run.Changes++
		case event.Log:
			run.Logs = append(run.Logs, LogLine{Time: at, Attempt: attempt, Level: str(f, "level"), File: str(f, "pb_file"),
				Line: int(num(f, "line")), Worker: num(f, "id"), Msg: str(f, "msg")})
		case event.Confirmation:
			audit(rec, confirmationText(f))
		case event.Signal:
			audit(rec, fmt.Sprintf("%s received (#%d): %s", str(f, "signal"), num(f, "count"), str(f, "action")))
		case event.LockTaken:
			audit(rec, fmt.Sprintf("run lock `%s` taken on %s", str(f, "lock"), str(f, "target")))
		case event.LockReleased:
			audit(rec, fmt.Sprintf("run lock `%s` released on %s", str(f, "lock"), str(f, "target")))
		case event.RescueStarted:
			audit(rec, fmt.Sprintf("rescue of %q started after: %s", str(f, "name"), str(f, "error")))
		case event.RescueFinished:
			audit(rec, fmt.Sprintf("rescue of %q done (%d change(s) sent)", str(f, "name"), num(f, "changes")))
		case event.RescueFailed:
			audit(rec, fmt.Sprintf("rescue of %q FAILED: %s", str(f, "name"), str(f, "error")))
		case event.RescueSkipped:
			audit(rec, fmt.Sprintf("rescue of %q not needed: %s", str(f, "name"), str(f, "why")))
		case event.Summary:
			audit(rec, str(f, "msg"))
		case event.RunResumed:
			// a further attempt: the run is open again until it ends; its
			// steps do not close the earlier attempt's
			finished = false
			attempt++
			open = map[string][]int{}
			run.Status, run.Error, run.ExitCode = "", "", -1
			run.Attempts++
			run.AttemptList = append(run.AttemptList, Attempt{N: attempt, Started: at, Host: str(f, "host"), Operator: str(f, "operator")})
			if v := str(f, "host"); v != "" {
				h.Host = v
			}
			if v := num(f, "pid"); v != 0 {
				h.PID = int(v)
			}
			h.PIDStart = str(f, "pid_start")
		case event.RunFinished:
			finished = true
			run.Status, run.Error = str(f, "status"), str(f, "error")
		case event.RunExit:
			finished = true
			run.Status = str(f, "status")
			run.ExitCode = int(num(f, "exit_code"))
			if e := str(f, "error"); e != "" {
				run.Error = e
			}
			a := cur()
			a.Ended, a.Status, a.Error = at, run.Status, run.Error
		}
		if len(run.Steps) > before {
			run.Steps[len(run.Steps)-1].Attempt = attempt
		}
	}
	if finished {
		// the engine records no end for a step an assertion or guard
		// refused from inside (assert): the refusal ended the run
		for i := range run.Steps {
			if s := &run.Steps[i]; s.State == StepOpen && (run.Status == StatusRefused || strings.Contains(run.Error, "refused by guard")) {
				s.State, s.Ended, s.Error = StepRefused, run.Ended, run.Error
			}
		}
	} else {
		switch {
		case h.Host != "" && h.Host != hostname():
			run.Status = StatusUnknown
		case processAlive(h.PID, h.PIDStart):
			run.Status = StatusRunning
		default:
			run.Status = StatusInterrupted
		}
	}
	// an attempt with no recorded end ended as the run says (killed or
	// still running), or as the next attempt found it
	for i := range run.AttemptList {
		a := &run.AttemptList[i]
		if a.Status == "" {
			if i == len(run.AttemptList)-1 {
				a.Status, a.Ended = run.Status, run.Ended
			} else {
				a.Status, a.Ended = StatusInterrupted, run.AttemptList[i+1].Started
			}
		}
	}
	return run, nil
}

// confirmationText says who decided what at a confirmation point.
func confirmationText(f map[string]any) string {
	who := str(f, "operator")
	if who == "" {
		who = "an unknown operator"
	}
	step := str(f, "name")
	switch o, how := str(f, "outcome"), str(f, "how"); o {
	case "confirmed":
		switch how {
		case "typed":
			return fmt.Sprintf("%s confirmed %q by typing %q", who, step, str(f, "word"))
		case "--yes":
			return fmt.Sprintf("%s confirmed %q in advance with --yes (word %q)", who, step, str(f, "word"))
		}
		return fmt.Sprintf("%q was confirmed in an earlier attempt (word %q); not asked again", step, str(f, "word"))
	case "declined":
		if how == "typed" {
			return fmt.Sprintf("%s declined %q: typed %q, not %q", who, step, str(f, "typed"), str(f, "word"))
		}
		return fmt.Sprintf("%s declined %q (%s)", who, step, how)
	case "refused":
		return fmt.Sprintf("%q could not be confirmed: %s (no --yes)", step, how)
	case "interrupted":
		if how == "terminal hung up" {
			return fmt.Sprintf("the terminal of %s hung up at the prompt of %q: nobody decided, nothing was confirmed", who, step)
		}
		return fmt.Sprintf("%s interrupted the prompt of %q (%s)", who, step, how)
	}
	return fmt.Sprintf("confirmation of %q: %s", step, str(f, "outcome"))
}

// Current returns the steps that started and have no recorded end.
func (r *Run) Current() []Step { return r.filter(StepOpen) }

// Failed returns the steps that failed or were refused.
func (r *Run) Failed() []Step { return append(r.filter(StepFailed), r.filter(StepRefused)...) }

// Done returns the steps that finished.
func (r *Run) Done() []Step { return r.filter(StepDone) }

func (r *Run) filter(state string) []Step {
	var out []Step
	for _, s := range r.Steps {
		if s.State == state {
			out = append(out, s)
		}
	}
	return out
}

func newStep(rec Record, state string) Step {
	f := rec.Fields
	at := parseTime(rec.Time)
	mut, _ := f["mutates"].(bool)
	return Step{Seq: rec.Seq, Worker: num(f, "id"), File: str(f, "pb_file"), Line: int(num(f, "line")),
		ID: str(f, "step"), Name: str(f, "name"), Type: str(f, "type"), Mutates: mut, State: state, Started: at, Key: str(f, "key")}
}

// readRecords reads a journal's records without checking the chain.
func readRecords(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	err = eachLine(f, func(n int, line []byte, last bool) error {
		rec, err := decodeRecord(line)
		if err != nil {
			if last {
				return errTorn
			}
			return fmt.Errorf("%s: line %d: not a journal record: %v", path, n, err)
		}
		out = append(out, rec)
		return nil
	})
	if errors.Is(err, errTorn) {
		err = nil
	}
	return out, err
}

var errTorn = errors.New("torn last line")

// eachLine calls fn for every line (without its newline); last is true for
// a final line that has no newline.
func eachLine(r io.Reader, fn func(n int, line []byte, last bool) error) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			last := err == io.EOF
			if ferr := fn(n, bytes.TrimSuffix(line, []byte("\n")), last); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func fromFields(f map[string]any, v any) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func str(f map[string]any, k string) string {
	s, _ := f[k].(string)
	return s
}

func num(f map[string]any, k string) int64 {
	switch v := f[k].(type) {
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			fl, _ := v.Float64()
			return int64(fl)
		}
		return n
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
