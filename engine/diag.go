package engine

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a playbook file.
type Pos struct {
	File string // path as given by the user
	Line int    // 1-based
	Col  int    // 1-based
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Short is "base.yaml:line", the location used in log lines.
func (p Pos) Short() string { return fmt.Sprintf("%s:%d", baseName(p.File), p.Line) }

func posOf(file string, n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: file}
	}
	return Pos{File: file, Line: n.Line, Col: n.Column}
}

// Diag is one problem found in a playbook or config. Msg is the one-line
// summary that String prints after the position (what editors and tests
// match); Detail and Hint, when known, explain it and say what to write
// instead, and Source is the line Pos points into, so Format can show the
// problem where it is without reading the file again.
type Diag struct {
	Pos     Pos
	Msg     string
	Warning bool
	// Detail explains why this is a problem (empty when Msg says it all).
	Detail string
	// Hint says what to write instead, where a fix is known.
	Hint string
	// Source is the text of line Pos.Line of Pos.File, without its newline
	// (empty when unknown).
	Source string
}

// String is the one-line form `FILE:LINE:COL: [warning: ]message`, the
// form editors jump to and logs keep.
func (d Diag) String() string {
	kind := ""
	if d.Warning {
		kind = "warning: "
	}
	return fmt.Sprintf("%s: %s%s", d.Pos, kind, d.Msg)
}

// Format is the form for a person: String's line, then the source line
// with a caret under the column, then the detail and the hint when known.
// Its first line is always String.
func (d Diag) Format() string {
	var b strings.Builder
	b.WriteString(d.String())
	if d.Source != "" && d.Pos.Line > 0 {
		line, col := snippet(d.Source, d.Pos.Col)
		num := strconv.Itoa(d.Pos.Line)
		gutter := strings.Repeat(" ", len(num))
		fmt.Fprintf(&b, "\n  %s | %s", num, line)
		if col > 0 {
			fmt.Fprintf(&b, "\n  %s | %s^", gutter, caretPad(line, col))
		}
	}
	if d.Detail != "" {
		b.WriteString("\n  " + d.Detail)
	}
	if d.Hint != "" {
		b.WriteString("\n  hint: " + d.Hint)
	}
	return b.String()
}

// snippetWidth bounds the source shown: a longer line is cut to a window
// around the column.
const snippetWidth = 100

// snippet returns the part of line to show and the 1-based column of the
// caret in it (0: no caret, the column is not on the line).
func snippet(line string, col int) (string, int) {
	runes := []rune(strings.TrimRight(line, "\r"))
	if col < 1 || col > len(runes)+1 {
		col = 0
	}
	if len(runes) <= snippetWidth {
		return string(runes), col
	}
	start := 0
	if col > snippetWidth/2 {
		start = col - snippetWidth/2
	}
	end := min(start+snippetWidth, len(runes))
	out := string(runes[start:end])
	if col > 0 {
		col -= start
	}
	if start > 0 {
		out, col = "…"+out, col+1
	}
	if end < len(runes) {
		out += "…"
	}
	return out, col
}

// caretPad is the blank space before the caret under column col of line:
// tabs stay tabs so the caret lines up however the terminal shows them.
func caretPad(line string, col int) string {
	var b strings.Builder
	for i, r := range []rune(line) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteRune('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// Diags is the list of problems a load found; as an error it holds at least
// one error-level Diag.
type Diags []Diag

func (ds Diags) Error() string { return ds.join(Diag.String) }

// join renders the diagnostics sorted by position, one per line (or
// block).
func (ds Diags) join(render func(Diag) string) string {
	var b strings.Builder
	for i, d := range ds.sorted() {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(render(d))
	}
	return b.String()
}

func (ds Diags) sorted() Diags {
	out := append(Diags(nil), ds...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return out
}

// Format renders every diagnostic with Diag.Format, sorted by position.
func (ds Diags) Format() string { return ds.join(Diag.Format) }

// Formatted returns ds as an error whose message is the Format form, for
// a command to print when a playbook does not load; errors.As still finds
// the Diags (and ExitCode still says exit 2).
func (ds Diags) Formatted() error { return &FormattedDiags{Diags: ds} }

// FormattedDiags is Diags whose Error is the Format form (see Formatted).
type FormattedDiags struct{ Diags Diags }

func (f *FormattedDiags) Error() string { return f.Diags.Format() }

// Unwrap gives errors.As the Diags.
func (f *FormattedDiags) Unwrap() error { return f.Diags }

// Errors reports the error-level diagnostics.
func (ds Diags) Errors() Diags {
	var out Diags
	for _, d := range ds {
		if !d.Warning {
			out = append(out, d)
		}
	}
	return out
}

// Warnings reports the warning-level diagnostics.
func (ds Diags) Warnings() Diags {
	var out Diags
	for _, d := range ds {
		if d.Warning {
			out = append(out, d)
		}
	}
	return out.sorted()
}

// Exit codes, as documented in the README.
const (
	ExitOK          = 0
	ExitStepFailed  = 1
	ExitInvalid     = 2
	ExitRefused     = 3
	ExitInterrupted = 130
)

// ExitError carries the process exit code for an error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ds Diags
	if errors.As(err, &ds) {
		return ExitInvalid
	}
	return ExitStepFailed
}

// Invalid wraps err as invalid input (exit 2).
func Invalid(err error) error { return &ExitError{Code: ExitInvalid, Err: err} }

// RefusedError is a guard or assertion that did not hold.
type RefusedError struct {
	Pos     Pos    // the guard's position
	Step    string // the step's name
	Guard   string // the expression
	Message string // the author's message, rendered
	Seen    string // "name=value, …" of the values the guard read
	// Declined says the refusal is the operator's: a confirmation not
	// given (declined, or no terminal to ask on).
	Declined bool
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	if e.Declined {
		fmt.Fprintf(&b, "%s: step %q was not confirmed (%s)", e.Pos, e.Step, e.Guard)
	} else {
		fmt.Fprintf(&b, "%s: refused by guard `%s` of step %q", e.Pos, e.Guard, e.Step)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Seen != "" {
		b.WriteString(" (saw " + e.Seen + ")")
	}
	return b.String()
}

// StepError is a step that failed; it names the playbook position and target.
type StepError struct {
	Pos    Pos
	Step   string
	Target string
	Err    error
}

func (e *StepError) Error() string {
	t := ""
	if e.Target != "" {
		t = " on " + e.Target
	}
	return fmt.Sprintf("%s: step %q failed%s: %v", e.Pos, e.Step, t, e.Err)
}
func (e *StepError) Unwrap() error { return e.Err }

// hintError is a step's error with the step's `hint:` (what to do).
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "; what to do: " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
