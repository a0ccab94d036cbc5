// Package quote renders interpolated values into SQL statements and shell
// commands so that a value can never change the structure of the text it is
// placed in: strings become quoted literals (SQL) or single-quoted words
// (shell), numbers stay bare, and identifiers pass only a safe pattern.
//
// It also finds the lexical context of a position in SQL or shell text, so a
// template that places a value inside quotes written by the author (where the
// value's own quotes would be wrong) is rejected when the playbook loads.
package quote

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Ident is a value that the author asked to render as a bare identifier (a
// dataserver, datasource, schema or table name). It renders only when it
// matches IdentPattern.
type Ident string

// IdentPattern is what an identifier interpolated with ident() must match.
var IdentPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// safeShellWord matches words that need no quoting in a POSIX shell.
var safeShellWord = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

// SQL renders v as a SQL literal: strings single-quoted with quotes and backslashes
// doubled, integers and floats bare, booleans TRUE/FALSE, nil NULL, an Ident
// bare after validation, and a list as a comma-separated list of literals.
func SQL(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "NULL", nil
	case Ident:
		if !IdentPattern.MatchString(string(x)) {
			return "", fmt.Errorf("%q is not a safe identifier (must match %s)", string(x), IdentPattern)
		}
		return string(x), nil
	case string:
		return SQLString(x), nil
	case []byte:
		return SQLString(string(x)), nil
	case bool:
		if x {
			return "TRUE", nil
		}
		return "FALSE", nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case float32, float64:
		return strconv.FormatFloat(reflect.ValueOf(x).Float(), 'g', -1, 64), nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		parts := make([]string, rv.Len())
		for i := range parts {
			s, err := SQL(rv.Index(i).Interface())
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ", "), nil
	}
	return "", fmt.Errorf("a %T cannot be placed in a SQL statement", v)
}

// SQLString quotes s as a single-quoted SQL string literal.
func SQLString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`)
	return "'" + r.Replace(s) + "'"
}

// Shell renders v as one or more shell words: a string is single-quoted unless
// it consists only of safe characters, numbers stay bare, an Ident renders bare
// after validation, and a list becomes space-separated words.
func Shell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "''", nil
	case Ident:
		if !IdentPattern.MatchString(string(x)) {
			return "", fmt.Errorf("%q is not a safe identifier (must match %s)", string(x), IdentPattern)
		}
		return string(x), nil
	case string:
		return ShellWord(x), nil
	case []byte:
		return ShellWord(string(x)), nil
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return ShellWord(fmt.Sprint(x)), nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		parts := make([]string, rv.Len())
		for i := range parts {
			s, err := Shell(rv.Index(i).Interface())
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, " "), nil
	}
	return "", fmt.Errorf("a %T cannot be placed in a shell command", v)
}

// ShellWord quotes s as a single POSIX shell word.
func ShellWord(s string) string {
	if s != "" && safeShellWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Text renders v for human-readable text (log messages): strings as they are,
// lists and maps as JSON, everything else with fmt.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case Ident:
		return string(x)
	case []byte:
		return string(x)
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// Context is the lexical state at a point of SQL or shell text.
type Context int

// Lexical contexts.
const (
	Bare         Context = iota // outside any quotes or comments
	SingleQuoted                // inside '…'
	DoubleQuoted                // inside "…"
	Backquoted                  // inside `…`
	Comment                     // inside a comment
)

func (c Context) String() string {
	return [...]string{"bare", "single quotes", "double quotes", "backquotes", "a comment"}[c]
}

// SQLState tracks the lexical state of SQL text fed to it in pieces.
type SQLState struct {
	ctx     Context
	line    bool // comment runs to end of line (-- or #)
	pending byte // last byte, for two-byte tokens
}

// Feed advances the state over s.
func (st *SQLState) Feed(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		prev := st.pending
		st.pending = c
		switch st.ctx {
		case Bare:
			switch {
			case c == '\'':
				st.ctx = SingleQuoted
			case c == '"':
				st.ctx = DoubleQuoted
			case c == '`':
				st.ctx = Backquoted
			case c == '#':
				st.ctx, st.line = Comment, true
			case c == '-' && prev == '-':
				st.ctx, st.line = Comment, true
			case c == '*' && prev == '/':
				st.ctx, st.line = Comment, false
				st.pending = 0
			}
		case SingleQuoted, DoubleQuoted:
			q := byte('\'')
			if st.ctx == DoubleQuoted {
				q = '"'
			}
			if c == '\\' {
				if i+1 < len(s) {
					i++
				}
				st.pending = 0
			} else if c == q {
				st.ctx = Bare
			}
		case Backquoted:
			if c == '`' {
				st.ctx = Bare
			}
		case Comment:
			if st.line && c == '\n' {
				st.ctx = Bare
			} else if !st.line && c == '/' && prev == '*' {
				st.ctx = Bare
			}
		}
	}
}

// Context reports the current lexical context.
func (st *SQLState) Context() Context { return st.ctx }

// ShellState tracks the lexical state of POSIX shell text fed in pieces.
type ShellState struct {
	ctx    Context
	escape bool
}

// Feed advances the state over s.
func (st *ShellState) Feed(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if st.escape {
			st.escape = false
			continue
		}
		switch st.ctx {
		case Bare:
			switch c {
			case '\\':
				st.escape = true
			case '\'':
				st.ctx = SingleQuoted
			case '"':
				st.ctx = DoubleQuoted
			case '`':
				st.ctx = Backquoted
			}
		case SingleQuoted:
			if c == '\'' {
				st.ctx = Bare
			}
		case DoubleQuoted:
			if c == '\\' {
				st.escape = true
			} else if c == '"' {
				st.ctx = Bare
			}
		case Backquoted:
			if c == '`' {
				st.ctx = Bare
			}
		}
	}
}

// Context reports the current lexical context.
func (st *ShellState) Context() Context { return st.ctx }
