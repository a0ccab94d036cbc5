package steps

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/redo"
	"gopkg.in/yaml.v3"
)

// RedoStep writes, reads or clears the durable record one playbook leaves
// for another (package redo): the start playbook writes which donor it
// froze, the stop playbook reads it and, when done, clears it.
//
//	redo: {action: write, path: log/flashback_redo.json, values: {donor: donor.name, port: donor.port}}
//	redo: {action: read, path: log/flashback_redo.json, written_by: flashback-start.yaml}
//	redo: {action: read, path: log/gio_flashback_redo.log, format: legacy}   # side, status, donor
//	redo: {action: update, path: log/flashback_redo.json, values: {snapshots: "'sealed'"}}
//	redo: {action: clear, path: log/flashback_redo.json}
//
// A relative path is relative to the working directory flow runs in (as
// the original tool's ./log/gio_flashback_redo.log was). `read` puts the
// values in the output (`steps.<id>.values.donor`, or `<register>.values.donor`);
// a missing file is an error naming the path and its writer unless
// `required: false` (then `found` is false and `values` empty), and a
// corrupt file is always an error quoting the bad part. `write` refuses
// values whose names say password/secret or whose value is a secret of the
// run.
type RedoStep struct {
	// Action is write, read, update (this run's record: the values given
	// are set, the others kept) or clear.
	Action string `yaml:"action"`
	// Path is the record's file; when it renders empty, redo.json in the
	// run's state directory (--state-dir), so the record does not depend on
	// the working directory.
	Path *engine.Text `yaml:"path"`
	// Format is json (default) or legacy (the original one-line file).
	Format string `yaml:"format"`
	// Values are the names and expressions to record (write).
	Values map[string]*engine.Expr `yaml:"values"`
	// Required makes a missing record an error (read; default true).
	Required *bool `yaml:"required"`
	// WrittenBy names the playbook that writes the record, for the error
	// when it is missing (read).
	WrittenBy *engine.Text `yaml:"written_by"`

	// RunID and PlaybookName are the run's metadata, compiled by the
	// engine from `run.id` and `run.playbook` (not YAML fields).
	RunID        *engine.Expr `yaml:"-"`
	PlaybookName *engine.Expr `yaml:"-"`
}

var redoOutput = types.Map{
	"values": types.Map{types.Extra: types.Any}, "found": types.Bool, "existed": types.Bool,
	"path": types.String, "format": types.String, "written_at": types.String,
	"run_id": types.String, "playbook": types.String,
}

func init() {
	engine.Register(engine.StepType{
		Name:       "redo",
		Summary:    "write, read or clear the durable record one playbook leaves for another (json, or the original tool's one-line legacy file)",
		New:        newRedoStep,
		Output:     redoOutput,
		Idempotent: true,
		Changes:    "`action: write`, `update` and `clear` yes, `read` no",
	})
}

// newRedoStep returns a spec whose metadata expressions read the run
// variable (Exec does not expose the run's id and playbook otherwise).
func newRedoStep() engine.StepSpec {
	s := &RedoStep{RunID: &engine.Expr{}, PlaybookName: &engine.Expr{}}
	_ = s.RunID.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Value: "run.id"})
	_ = s.PlaybookName.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Value: "run.playbook"})
	return s
}

// Mutates is true for write and clear.
func (s *RedoStep) Mutates() bool { return s.Action != "read" }

var redoName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Check validates the action and its fields.
func (s *RedoStep) Check(c *engine.Check) {
	name := c.StepName()
	switch s.Action {
	case "write", "read", "update", "clear":
	case "":
		c.Errorf(c.StepPos(), "redo step %q needs `action:` (write, read, update or clear)", name)
		return
	default:
		c.Errorf(c.StepPos(), "redo step %q: unknown action %q: use write, read, update or clear", name, s.Action)
		return
	}
	if s.Path == nil || s.Path.Raw == "" {
		c.Errorf(c.StepPos(), "redo step %q needs `path:` (the record's file)", name)
	}
	format, err := redo.ParseFormat(s.Format)
	if err != nil {
		c.Errorf(c.StepPos(), "redo step %q: %v", name, err)
	}
	writes := s.Action == "write" || s.Action == "update"
	if !writes && s.Values != nil {
		c.Errorf(c.StepPos(), "redo step %q: `values:` goes with `action: write` or `update`", name)
	}
	if s.Action != "read" && s.Required != nil {
		c.Errorf(c.StepPos(), "redo step %q: `required:` goes with `action: read`", name)
	}
	if s.Action != "read" && s.WrittenBy != nil {
		c.Errorf(c.StepPos(), "redo step %q: `written_by:` goes with `action: read`", name)
	}
	if !writes {
		return
	}
	if len(s.Values) == 0 {
		c.Errorf(c.StepPos(), "redo step %q: `action: %s` needs `values:` (names and expressions to record)", name, s.Action)
		return
	}
	keys := make([]string, 0, len(s.Values))
	for k := range s.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := s.Values[k]
		pos := c.StepPos()
		if e != nil {
			pos = e.Pos
		}
		if !redoName.MatchString(k) {
			c.Errorf(pos, "redo step %q: value name %q must match %s", name, k, redoName)
		}
		if err := redo.CheckSecrets(map[string]any{k: nil}, nil); err != nil {
			c.Errorf(pos, "redo step %q: %v", name, err)
		}
		if e != nil && e.Secret() {
			c.Errorf(pos, "redo step %q: values.%s reads a secret, and a redo record is a plain file: record where to find the credentials instead", name, k)
		}
	}
	if format == redo.FormatLegacy {
		if !sameKeys(keys, redo.LegacyKeys) {
			c.Errorf(c.StepPos(), "redo step %q: the legacy format holds exactly the values %s, not %s", name, strings.Join(redo.LegacyKeys, ", "), strings.Join(keys, ", "))
		}
	}
}

func sameKeys(a, b []string) bool {
	bb := append([]string(nil), b...)
	sort.Strings(bb)
	if len(a) != len(bb) {
		return false
	}
	for i := range a {
		if a[i] != bb[i] {
			return false
		}
	}
	return true
}

func (s *RedoStep) format() redo.Format {
	f, _ := redo.ParseFormat(s.Format)
	return f
}

func (s *RedoStep) required() bool { return s.Required == nil || *s.Required }

func (s *RedoStep) valueNames() []string {
	keys := make([]string, 0, len(s.Values))
	for k := range s.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// defaultRedoFile is the record's file in the run's state directory when
// `path:` renders empty.
const defaultRedoFile = "redo.json"

// recordPath is the record's file: path, or, when it is empty,
// defaultRedoFile in the run's state directory ("" when there is none).
func recordPath(path, stateDir string) string {
	if strings.TrimSpace(path) == "" && stateDir != "" {
		return filepath.Join(stateDir, defaultRedoFile)
	}
	return path
}

// Render shows what would be written, read or removed.
func (s *RedoStep) Render(r *engine.Render) ([]engine.Action, error) {
	path := recordPath(r.Text(s.Path), r.StateDir())
	var text string
	switch s.Action {
	case "write":
		lines := []string{fmt.Sprintf("write redo record %s (%s format, atomically):", path, s.format())}
		for _, k := range s.valueNames() {
			lines = append(lines, fmt.Sprintf("  %s = %s", k, r.Expr(s.Values[k])))
		}
		text = strings.Join(lines, "\n")
	case "update":
		lines := []string{fmt.Sprintf("update this run's redo record %s (%s format, atomically; other values kept):", path, s.format())}
		for _, k := range s.valueNames() {
			lines = append(lines, fmt.Sprintf("  %s = %s", k, r.Expr(s.Values[k])))
		}
		text = strings.Join(lines, "\n")
	case "read":
		req := "required: a missing record fails the step"
		if !s.required() {
			req = "optional: found=false when missing"
		}
		text = fmt.Sprintf("read redo record %s (%s format; %s)", path, s.format(), req)
	default:
		text = fmt.Sprintf("remove redo record %s (if present)", path)
	}
	return []engine.Action{{Target: "local file", Text: text}}, nil
}

// Run writes, reads or clears the record.
func (s *RedoStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	path, err := x.Text(s.Path)
	if err != nil {
		return nil, err
	}
	if path = recordPath(path, x.StateDir()); strings.TrimSpace(path) == "" {
		return nil, fmt.Errorf("redo: `path: %s` is empty and the run has no state directory to keep the record in", s.Path.Raw)
	}
	shown := path
	if abs, err := filepath.Abs(path); err == nil && abs != path {
		shown = fmt.Sprintf("%s (%s)", path, abs)
	}
	format := s.format()
	out := map[string]any{"path": path, "format": string(format), "values": map[string]any{}, "found": false,
		"existed": false, "written_at": "", "run_id": "", "playbook": ""}
	switch s.Action {
	case "write", "update":
		values := map[string]any{}
		for _, k := range s.valueNames() {
			v, err := x.Eval(s.Values[k])
			if err != nil {
				return nil, err
			}
			values[k] = v
		}
		if err := redo.CheckSecrets(values, x.Mask); err != nil {
			return nil, err
		}
		rec := &redo.Record{Values: values, WrittenAt: time.Now(), Format: format}
		rec.RunID, rec.Playbook = s.meta(x)
		if s.Action == "update" {
			merged, err := s.merge(path, shown, format, rec.RunID, values)
			if err != nil {
				return nil, err
			}
			rec.Values, values = merged, merged
		}
		x.Debugf("write redo record %s: %s", shown, describeValues(values))
		if err := redo.Write(path, rec); err != nil {
			return nil, err
		}
		x.Infof("redo record %s written (%s format): %s", shown, format, describeValues(values))
		x.Event(event.RedoWritten, map[string]any{"path": path, "format": string(format)})
		out["values"], out["found"] = values, true
		out["written_at"], out["run_id"], out["playbook"] = rec.WrittenAt.Format(time.RFC3339Nano), rec.RunID, rec.Playbook
		return out, nil
	case "read":
		x.Debugf("read redo record %s (%s format)", shown, format)
		rec, err := redo.Read(path, format)
		var me *redo.MissingError
		if errors.As(err, &me) {
			if s.WrittenBy != nil {
				if by, err := x.Text(s.WrittenBy); err == nil {
					me.WrittenBy = by
				}
			}
			if s.required() {
				return nil, me
			}
			x.Infof("no redo record: %s (required: false, so the step goes on with found=false)", me.Error())
			return out, nil
		}
		if err != nil {
			return nil, errors.New(x.Mask(err.Error()))
		}
		written := ""
		if !rec.WrittenAt.IsZero() {
			written = rec.WrittenAt.Format(time.RFC3339Nano)
		}
		from := ""
		if rec.Playbook != "" || rec.RunID != "" {
			from = fmt.Sprintf(", written by %s run %s at %s", rec.Playbook, rec.RunID, written)
		}
		x.Infof("redo record %s read (%s format%s): %s", shown, format, from, describeValues(rec.Values))
		out["values"], out["found"] = rec.Values, true
		out["written_at"], out["run_id"], out["playbook"] = written, rec.RunID, rec.Playbook
		return out, nil
	default:
		x.Debugf("remove redo record %s", shown)
		existed, err := redo.Clear(path)
		if err != nil {
			return nil, err
		}
		out["existed"] = existed
		if existed {
			x.Infof("redo record %s removed", shown)
		} else {
			x.Infof("redo record %s was already absent", shown)
		}
		return out, nil
	}
}

// merge reads this run's record and sets values in it: an update of a
// record another run wrote, or of none, is refused (the record says what
// the standby holds; only the run that wrote it may change it).
func (s *RedoStep) merge(path, shown string, format redo.Format, runID string, values map[string]any) (map[string]any, error) {
	old, err := redo.Read(path, format)
	var me *redo.MissingError
	if errors.As(err, &me) {
		return nil, fmt.Errorf("redo update: %s has no record to update: write it first (action: write)", shown)
	}
	if err != nil {
		return nil, err
	}
	if old.RunID != runID {
		return nil, fmt.Errorf("redo update: %s is the record of run %s (%s), not of this run %s: only the run that wrote a record updates it", shown, old.RunID, old.Playbook, runID)
	}
	merged := make(map[string]any, len(old.Values)+len(values))
	for k, v := range old.Values {
		merged[k] = v
	}
	for k, v := range values {
		merged[k] = v
	}
	return merged, nil
}

// Resume runs an interrupted write, update or clear again: each is idempotent. A
// write replaces the whole record atomically (a temporary file renamed
// over it), so writing the same values again leaves the same record (only
// written_at moves); a clear of a record already removed finds nothing to
// remove (its output says existed: false then). A half-done first attempt
// cannot have left a partial record, since the rename is atomic.
func (s *RedoStep) Resume(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (engine.ResumeDecision, map[string]any, string, error) {
	if s.Action == "write" {
		return engine.ResumeRerun, nil, "writing the redo record again replaces it atomically with the same values", nil
	}
	if s.Action == "update" {
		return engine.ResumeRerun, nil, "updating the redo record again sets the same values in it atomically", nil
	}
	return engine.ResumeRerun, nil, "clearing the redo record again finds it already removed (or removes it)", nil
}

// meta evaluates the run's id and playbook name.
func (s *RedoStep) meta(x *engine.Exec) (runID, playbook string) {
	if v, err := x.Eval(s.RunID); err == nil {
		runID, _ = v.(string)
	}
	if v, err := x.Eval(s.PlaybookName); err == nil {
		playbook, _ = v.(string)
	}
	return runID, playbook
}

// describeValues renders values as "a=1, b=x" in name order.
func describeValues(values map[string]any) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, values[k])
	}
	return strings.Join(parts, ", ")
}
