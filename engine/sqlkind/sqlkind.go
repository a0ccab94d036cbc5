// Package sqlkind classifies SQL statements (including DBScale admin
// commands) as read-only or state-changing, so a playbook that declares a
// writing statement as a read-only query is rejected by `flow validate`,
// and judges whether a statement is idempotent by its form (Idempotent), so
// a resumed run knows whether it may run an interrupted one again.
package sqlkind

import (
	"strings"
	"unicode"
)

// Kind says whether a statement reads or changes state.
type Kind int

// Statement kinds.
const (
	Read  Kind = iota // SELECT, SHOW, DESCRIBE, EXPLAIN, read-only dbscale commands
	Write             // DML, DDL, SET GLOBAL, replication, clone, dbscale changes, anything unknown
)

// Words returns the first n upper-cased keywords of stmt, skipping comments.
func Words(stmt string, n int) []string {
	s := stripComments(stmt)
	f := strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == '(' || r == ')' || r == ';' || r == '='
	})
	if len(f) > n {
		f = f[:n]
	}
	for i := range f {
		f[i] = strings.ToUpper(f[i])
	}
	return f
}

func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 3
			b.WriteByte(' ')
		case strings.HasPrefix(s[i:], "--") || s[i] == '#':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return b.String()
			}
			i += end
			b.WriteByte(' ')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Classify reports whether stmt only reads. Unknown statements count as
// writes: a lint that errs on the side of "this changes state" is the safe one.
func Classify(stmt string) Kind {
	w := Words(stmt, 4)
	if len(w) == 0 {
		return Write
	}
	switch w[0] {
	case "SHOW", "DESCRIBE", "DESC", "EXPLAIN":
		return Read
	case "SELECT", "WITH", "TABLE", "VALUES":
		up := strings.ToUpper(stripComments(stmt))
		if strings.Contains(up, " INTO ") || strings.Contains(up, "FOR UPDATE") ||
			strings.Contains(up, "GET_LOCK") || strings.Contains(up, "RELEASE_LOCK") {
			return Write
		}
		return Read
	case "DBSCALE":
		if len(w) > 1 && w[1] == "SHOW" {
			return Read
		}
		if len(w) > 3 && w[1] == "REQUEST" && (w[2] == "CLUSTER" && w[3] == "INFO" || w[2] == "NEXT" && w[3] == "GROUP") {
			return Read // request next group id only proposes an id (it is max+1)
		}
		return Write
	}
	return Write
}

// SplitsStatements reports whether stmt holds more than one statement (a
// semicolon outside quotes and comments followed by more text).
func SplitsStatements(stmt string) bool {
	var q byte
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		switch {
		case q != 0:
			if c == '\\' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '\'' || c == '"' || c == '`':
			q = c
		case c == ';':
			if strings.TrimSpace(stripComments(stmt[i+1:])) != "" {
				return true
			}
		}
	}
	return false
}
