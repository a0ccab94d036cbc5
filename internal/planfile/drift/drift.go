// Package drift compares what a saved plan saw on a live MySQL cluster with
// what a run sees now, and names every difference that matters (the field
// path, the planned and the live value).
//
// Values are compared in their JSON form (see Normalize): maps key by key,
// lists item by item, leaves under these rules:
//
//   - GTID sets (a field whose name contains "gtid" and whose two values
//     parse as GTID sets, or any two values that parse as non-empty GTID
//     sets): the live set must contain every transaction the plan saw and
//     name no server UUID the plan did not see. A set that grew with the
//     same servers' transactions (a primary taking writes, a replica
//     applying them) is not drift; a lost transaction, or one from a new
//     server (a write on a standby), is.
//   - Volatile fields (see Volatile): figures that move by themselves
//     between a plan and its run (replication lag and positions, relay log
//     files and states, timestamps, durations, byte counts, connection
//     counts) are not compared.
//   - Command output (fields stdout, stderr, lines, msg, message): the words
//     must be equal; figures among them (a plain number, optionally with a
//     unit or %: "45%", "1024", "1.5G") may move. An address such as
//     127.0.2.3 is a word, not a figure.
//   - Everything else (roles, statuses, read-only flags, server UUIDs,
//     hosts, ports, error numbers, counts of rows, other strings, numbers
//     and booleans) must be equal. A "row" beside "rows" is the first of
//     the rows and is not compared twice.
//
// Statement texts (CompareText) must be equal except for GTID sets inside
// them, which follow the GTID rule above: a statement that carries a
// detach point taken later is the same statement.
package drift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/flowdba/flow/gtid"
)

// Difference is one way the live value differs from the planned one.
type Difference struct {
	// Path names the field: "rows[2].status", `row["master-online-status"]`.
	Path string
	// Planned and Live are the two values, rendered for a message.
	Planned, Live string
	// Why says which rule found the difference.
	Why string
}

// String renders the difference for an error message.
func (d Difference) String() string {
	p := d.Path
	if p == "" {
		p = "the value"
	}
	return fmt.Sprintf("%s: planned %s, live %s (%s)", p, d.Planned, d.Live, d.Why)
}

// Normalize returns v in its JSON form (maps of string keys, []any,
// string, json.Number, bool, nil), as a plan file stores it, so that a live
// value and a planned one read back from a file compare alike. A value
// JSON cannot encode becomes its fmt text.
func Normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return fmt.Sprint(v)
	}
	return out
}

// Compare returns the differences between a planned and a live value, both
// in their Normalize form, in path order.
func Compare(planned, live any) []Difference {
	var c comparer
	c.value("", "", planned, live)
	return c.diffs
}

type comparer struct{ diffs []Difference }

func (c *comparer) add(path, why string, planned, live any) {
	c.diffs = append(c.diffs, Difference{Path: path, Planned: Show(planned), Live: Show(live), Why: why})
}

// value compares one value at path; name is the field name it sits under
// (a list's items inherit the list's name).
func (c *comparer) value(path, name string, planned, live any) {
	if Volatile(name) {
		return
	}
	switch p := planned.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			c.add(path, "a different kind of value", planned, live)
			return
		}
		keys := map[string]bool{}
		for k := range p {
			keys[k] = true
		}
		for k := range l {
			keys[k] = true
		}
		_, prows := p["rows"]
		_, lrows := l["rows"]
		for _, k := range sortedKeys(keys) {
			if k == "row" && prows && lrows {
				continue // the first of the rows, compared there
			}
			pv, pok := p[k]
			lv, lok := l[k]
			kp := join(path, k)
			switch {
			case !pok:
				if !Volatile(k) {
					c.add(kp, "a field the plan did not see", nil, lv)
				}
			case !lok:
				if !Volatile(k) {
					c.add(kp, "a field the plan saw is gone", pv, nil)
				}
			default:
				c.value(kp, k, pv, lv)
			}
		}
	case []any:
		l, ok := live.([]any)
		if !ok {
			c.add(path, "a different kind of value", planned, live)
			return
		}
		if len(p) != len(l) {
			c.diffs = append(c.diffs, Difference{Path: path, Planned: items(len(p)), Live: items(len(l)), Why: "a different number of items"})
		}
		for i := 0; i < len(p) && i < len(l); i++ {
			c.value(fmt.Sprintf("%s[%d]", path, i), name, p[i], l[i])
		}
	case string:
		l, ok := live.(string)
		if !ok {
			c.add(path, "a different kind of value", planned, live)
			return
		}
		c.text(path, name, p, l)
	case json.Number:
		l, ok := live.(json.Number)
		if !ok {
			c.add(path, "a different kind of value", planned, live)
			return
		}
		if !sameNumber(p, l) {
			c.add(path, "values differ", planned, live)
		}
	default: // bool, nil
		if planned != live {
			c.add(path, "values differ", planned, live)
		}
	}
}

// text compares two strings: as GTID sets, as command output, or exactly.
func (c *comparer) text(path, name, planned, live string) {
	if planned == live {
		return
	}
	if d, isGTID := compareGTID(name, planned, live); isGTID {
		if d != nil {
			d.Path = path
			c.diffs = append(c.diffs, *d)
		}
		return
	}
	if freeText[normName(name)] {
		if why := compareWords(planned, live); why != "" {
			c.add(path, why, planned, live)
		}
		return
	}
	c.add(path, "values differ", planned, live)
}

// compareGTID applies the GTID rule when the two strings are GTID sets;
// isGTID is false when they are not.
func compareGTID(name, planned, live string) (d *Difference, isGTID bool) {
	ps, perr := gtid.Parse(planned)
	ls, lerr := gtid.Parse(live)
	if perr != nil || lerr != nil {
		return nil, false
	}
	if !strings.Contains(normName(name), "gtid") && (ps.IsEmpty() || ls.IsEmpty()) {
		return nil, false
	}
	if lost := ps.Subtract(ls); !lost.IsEmpty() {
		return &Difference{Planned: ShowGTID(ps), Live: ShowGTID(ls),
			Why: "the GTID set lost transactions the plan saw: " + oneLine(lost.String())}, true
	}
	known := map[string]bool{}
	for _, u := range UUIDs(ps) {
		known[u] = true
	}
	var fresh []string
	for _, u := range UUIDs(ls) {
		if !known[u] {
			fresh = append(fresh, u)
		}
	}
	if len(fresh) > 0 {
		return &Difference{Planned: ShowGTID(ps), Live: ShowGTID(ls),
			Why: "the GTID set holds transactions of server(s) the plan never saw: " + strings.Join(fresh, ", ")}, true
	}
	return nil, true
}

// UUIDs lists the server UUIDs a GTID set names, in the set's order.
func UUIDs(s gtid.Set) []string {
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s.String(), ",") {
		part = strings.TrimSpace(part)
		u, _, _ := strings.Cut(part, ":")
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// figure matches a word of command output that is a measurement: digits,
// an optional fraction, an optional unit or percent sign.
var figure = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?(%|[kKmMgGtTpP]i?[bB]?|[bB]|s|ms)?$`)

// compareWords compares command output word by word, figures excepted; it
// returns why they differ, or "".
func compareWords(planned, live string) string {
	pw, lw := strings.Fields(planned), strings.Fields(live)
	if len(pw) != len(lw) {
		return fmt.Sprintf("the output has %d words, the plan saw %d", len(lw), len(pw))
	}
	for i := range pw {
		if pw[i] == lw[i] || figure.MatchString(pw[i]) && figure.MatchString(lw[i]) {
			continue
		}
		return fmt.Sprintf("word %d of the output is %q, the plan saw %q", i+1, lw[i], pw[i])
	}
	return ""
}

// volatileNames are fields whose values move by themselves between a plan
// and its run (matched after lower-casing, with '-' and ' ' read as '_').
var volatileNames = map[string]bool{
	// replication lag and delay
	"seconds_behind_source": true, "seconds_behind_master": true, "sql_remaining_delay": true,
	"lag": true, "lag_seconds": true,
	"seconds_behind": true, // the replication step's name for it
	// where the replication threads are: files and states
	"source_log_file": true, "master_log_file": true, "relay_log_file": true,
	"relay_source_log_file": true, "relay_master_log_file": true, "relay_log_space": true,
	"replica_io_state": true, "slave_io_state": true,
	"replica_sql_running_state": true, "slave_sql_running_state": true,
	"io_state": true, "sql_state": true, // the replication step's names for them
	// SHOW BINARY LOG STATUS
	"position": true,
	// the clock
	"uptime": true, "now": true,
	// load
	"max_needed_conn/max_mysql_conn": true, "threads_connected": true, "threads_running": true,
	// disk use
	"disk_use": true, "disk_usage": true, "used": true, "avail": true, "free": true,
}

// volatileSuffixes are name endings of volatile fields: positions,
// timestamps, durations in milliseconds, byte counts.
var volatileSuffixes = []string{"_pos", "_timestamp", "_ms", "_bytes"}

// Volatile reports whether a field of this name is not compared: its value
// moves by itself (lag, positions, relay log files and states, timestamps,
// durations, byte counts, connection counts).
func Volatile(name string) bool {
	n := normName(name)
	if n == "" {
		return false
	}
	if volatileNames[n] {
		return true
	}
	for _, s := range volatileSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// VolatileRules describes the volatile fields, for documentation and
// messages.
func VolatileRules() string {
	var names []string
	for n, v := range volatileNames {
		if v {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ") + "; and names ending in " + strings.Join(volatileSuffixes, ", ")
}

// freeText are fields holding command output or messages.
var freeText = map[string]bool{"stdout": true, "stderr": true, "lines": true, "msg": true, "message": true}

func normName(name string) string {
	return strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(name))
}

func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	if x, err := strconv.ParseInt(string(a), 10, 64); err == nil {
		if y, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return x == y
		}
	}
	x, err1 := strconv.ParseFloat(string(a), 64)
	y, err2 := strconv.ParseFloat(string(b), 64)
	return err1 == nil && err2 == nil && x == y
}

var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func join(path, key string) string {
	if ident.MatchString(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

func items(n int) string {
	if n == 1 {
		return "1 item"
	}
	return fmt.Sprintf("%d items", n)
}

// Show renders a value for a message: strings quoted, long values cut.
func Show(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		s = strconv.Quote(x)
	case json.Number:
		s = string(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			s = fmt.Sprint(x)
		} else {
			s = string(b)
		}
	}
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// ShowGTID renders a GTID set on one line, quoted.
func ShowGTID(s gtid.Set) string { return Show(oneLine(s.String())) }

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "") }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
