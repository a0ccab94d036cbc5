package sqlkind

import (
	"strings"
	"unicode"
)

// Idempotent reports whether running stmt a second time, after a first run
// that may or may not have taken effect, leaves the server as one run does
// (or fails harmlessly before changing anything), judging by the
// statement's form alone. A resumed run re-runs an interrupted statement
// that is; for any other it must ask. why names the statement's class and
// the reason, for the log or for the operator.
//
// stmt is one statement as sent: go-sql-driver with interpolateParams
// sends the text with every value inlined as a quoted literal, so values
// are literals here and cannot change the statement's form.
//
// The judgement errs on the side of "not idempotent": anything it does not
// recognise is not. It cannot see the schema (unique keys, triggers), so
// forms whose idempotence depends on it are not idempotent here; a playbook
// that knows better says `resume: rerun` or gives a `check:` query.
func Idempotent(stmt string) (bool, string) {
	t := lex(stmt)
	if len(t) == 0 {
		return false, "an empty statement"
	}
	if Classify(stmt) == Read {
		return true, t.head(2) + " only reads"
	}
	switch t.word(0) {
	case "SET":
		return idempotentSet(t)
	case "CREATE":
		// CREATE … IF NOT EXISTS does nothing when the object exists (for
		// CREATE TABLE … SELECT too: no row is inserted then); CREATE OR
		// REPLACE puts the same definition in place again.
		if t.word(1) == "OR" && t.word(2) == "REPLACE" {
			return true, "CREATE OR REPLACE puts the same definition in place again"
		}
		if t.hasSeq(headLen(t), "IF", "NOT", "EXISTS") {
			return true, "CREATE … IF NOT EXISTS does nothing when the object already exists"
		}
		return false, "CREATE " + t.word(1) + " without IF NOT EXISTS: flow cannot tell whether the object was created (running it again fails if it was)"
	case "DROP":
		if t.hasSeq(headLen(t), "IF", "EXISTS") {
			return true, "DROP … IF EXISTS does nothing when the object is already gone"
		}
		return false, "DROP " + t.word(1) + " without IF EXISTS: flow cannot tell whether the object was dropped (running it again fails if it was)"
	case "START", "STOP":
		// a replica's threads that already run (or are stopped) only give
		// a warning; START … UNTIL a position already reached stops again
		// at once
		if w := t.word(1); w == "REPLICA" || w == "SLAVE" {
			return true, t.word(0) + " " + w + " leaves the threads running (stopped) if they already are"
		}
		return false, t.head(2) + ": flow does not know whether running it again is harmless"
	case "DBSCALE":
		// DBSCALE SET GLOBAL|SESSION|INSTANCE 'option' = value assigns a
		// value, as SET GLOBAL does
		if t.word(1) == "SET" && (t.word(2) == "GLOBAL" || t.word(2) == "SESSION" || t.word(2) == "INSTANCE") {
			if ok, why := literalValues(t, 3); !ok {
				return false, "DBSCALE SET " + t.word(2) + why
			}
			return true, "DBSCALE SET " + t.word(2) + " assigns a fixed value: running it again assigns the same value"
		}
		return false, "a DBScale command (" + t.head(3) + ") that changes the router's state: flow cannot tell whether it took effect"
	case "INSERT":
		// Whether a second INSERT adds a second row depends on the table's
		// unique keys, which the text does not show: with only an
		// AUTO_INCREMENT key, INSERT IGNORE and ON DUPLICATE KEY UPDATE add
		// the row twice. ON DUPLICATE KEY UPDATE c = c + 1 also reads the
		// old row.
		if t.hasSeq(len(t), "ON", "DUPLICATE", "KEY", "UPDATE") {
			return false, "an INSERT … ON DUPLICATE KEY UPDATE: it is idempotent only when the row names a unique key and the update does not read the old row, which flow cannot see"
		}
		if t.word(1) == "IGNORE" || (t.word(1) == "LOW_PRIORITY" || t.word(1) == "HIGH_PRIORITY" || t.word(1) == "DELAYED") && t.word(2) == "IGNORE" {
			return false, "an INSERT IGNORE: it adds the row again unless a unique key stops it, which flow cannot see"
		}
		return false, "an INSERT: running it again could add the rows twice"
	case "REPLACE":
		// REPLACE deletes and re-inserts a row whose unique key collides
		// (firing ON DELETE cascades and triggers, and taking a new
		// AUTO_INCREMENT id), and without a unique key adds the row twice.
		return false, "a REPLACE: it deletes and re-inserts the row (cascades, triggers, new AUTO_INCREMENT ids) or, without a unique key, adds it twice"
	case "UPDATE":
		// even with constant new values, UPDATE triggers fire again for
		// every matched row
		return false, "an UPDATE: it may compute new values from old ones, and its triggers fire again"
	case "DELETE":
		// Deleting the rows a condition matches leaves none to match the
		// second time, so nothing happens (no row, no trigger), unless the
		// statement picks rows by LIMIT or by the clock.
		if t.has("LIMIT") {
			return false, "a DELETE … LIMIT: running it again deletes more rows"
		}
		if f := t.volatile(); f != "" {
			return false, "a DELETE whose condition reads " + f + "(): running it again may match other rows"
		}
		return true, "a DELETE without LIMIT: the rows it deletes are gone, so running it again deletes nothing"
	case "TRUNCATE":
		return true, "TRUNCATE leaves the table empty however often it runs"
	case "GRANT":
		// account management statements are atomic; granting a privilege
		// or role already held changes nothing
		return true, "GRANT of a privilege or role already held changes nothing"
	case "REVOKE":
		if t.hasSeq(headLen(t), "IF", "EXISTS") {
			return true, "REVOKE IF EXISTS of a privilege already revoked changes nothing"
		}
		return false, "a REVOKE without IF EXISTS: running it again fails if it took effect (error 1141/1147)"
	case "FLUSH":
		return true, "FLUSH only flushes again (a second FLUSH BINARY LOGS starts one more, empty, binary log)"
	case "RESET":
		switch t.word(1) {
		case "REPLICA", "SLAVE":
			return true, "RESET " + t.word(1) + " of a replica already reset changes nothing"
		case "PERSIST":
			if len(t) == 2 || t.hasSeq(len(t), "IF", "EXISTS") {
				return true, "RESET PERSIST of settings already removed changes nothing"
			}
			return false, "RESET PERSIST of one setting without IF EXISTS fails if it took effect"
		}
		// RESET MASTER / RESET BINARY LOGS AND GTIDS would also erase the
		// binary logs and GTIDs written since the first run
		return false, "RESET " + t.word(1) + " erases the binary logs and gtid_executed written since: flow does not repeat it without the operator"
	case "CHANGE":
		// sets the replication source's configuration to the values given
		// (the replica is stopped while it runs, so nothing moved since)
		if t.word(1) == "MASTER" || t.word(1) == "REPLICATION" && (t.word(2) == "SOURCE" || t.word(2) == "FILTER") {
			return true, t.head(3) + " sets the same configuration again"
		}
		return false, t.head(3) + ": flow does not know whether running it again is harmless"
	case "PURGE":
		if w := t.word(1); w == "BINARY" || w == "MASTER" {
			return true, "PURGE BINARY LOGS of logs already purged changes nothing"
		}
	case "ANALYZE", "OPTIMIZE", "CHECK":
		return true, t.word(0) + " TABLE only recomputes statistics or rebuilds the table again"
	case "USE":
		return true, "USE only selects a schema"
	case "INSTALL", "UNINSTALL":
		return false, t.head(2) + ": running it again fails if it took effect"
	case "KILL":
		return false, "a KILL: the thread id may belong to another connection by now"
	case "CLONE":
		return false, "a CLONE: running it again clones again"
	case "ALTER":
		return false, "an ALTER " + t.word(1) + ": flow cannot tell whether it took effect (running it again may fail or change the object again)"
	}
	return false, "a " + t.word(0) + " statement: flow does not know whether running it again is harmless"
}

// idempotentSet judges SET statements: assigning fixed values is
// idempotent; a value computed from a variable or a function is not.
func idempotentSet(t tokens) (bool, string) {
	switch t.word(1) {
	case "PASSWORD":
		// a password history policy may refuse to set the same password
		return false, "SET PASSWORD: a password reuse policy may refuse it the second time"
	case "NAMES", "CHARACTER", "CHARSET", "TRANSACTION", "ROLE", "RESOURCE":
		return true, "SET " + t.word(1) + " only changes this connection"
	case "DEFAULT":
		return true, "SET DEFAULT ROLE sets the same default roles again"
	case "GLOBAL", "SESSION", "LOCAL", "PERSIST":
		if t.word(2) == "TRANSACTION" {
			return true, "SET " + t.word(1) + " TRANSACTION sets the same characteristics again"
		}
	}
	for _, a := range t[1:].split(",") {
		target := a.word(0)
		if target == "GLOBAL" || target == "SESSION" || target == "LOCAL" || target == "PERSIST" || target == "PERSIST_ONLY" {
			target = a.word(1)
		}
		target = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(target, "@@"), "GLOBAL."), "PERSIST.")
		if target == "GTID_PURGED" {
			// '+set' adds to gtid_purged; a plain set is refused once
			// gtid_executed is not empty
			return false, "SET gtid_purged: a '+' value adds to it again, a plain one is refused once it took effect"
		}
	}
	scope := "SET"
	if w := t.word(1); w == "GLOBAL" || w == "SESSION" || w == "PERSIST" || w == "PERSIST_ONLY" || w == "LOCAL" {
		scope += " " + w
	}
	if ok, why := literalValues(t, 1); !ok {
		return false, scope + why
	}
	return true, scope + " assigns fixed values: running it again assigns the same values"
}

// literalValues checks that every assignment from token from on assigns
// literals (strings, numbers, keywords such as ON or DEFAULT), not values
// read from variables, functions or subqueries, which may differ the
// second time. why starts with a space or a colon.
func literalValues(t tokens, from int) (bool, string) {
	if from > len(t) {
		return false, ": nothing is assigned"
	}
	for _, a := range t[from:].split(",") {
		eq := -1
		for i, tk := range a {
			if tk.sym && (tk.text == "=" || tk.text == ":=") {
				eq = i
				break
			}
		}
		if eq < 0 {
			return false, ": an assignment flow cannot read"
		}
		for _, tk := range a[eq+1:] {
			switch {
			case tk.str:
			case tk.sym && tk.text == "(":
				return false, ": a value is computed by a function or subquery, which may give another value the second time"
			case strings.HasPrefix(tk.text, "@"):
				return false, ": a value is read from a variable (" + strings.ToLower(tk.text) + "), which may hold another value the second time"
			}
		}
	}
	return true, ""
}

// token is one lexical element of a statement.
type token struct {
	text string // upper-cased for words; the content of a quoted string or identifier
	str  bool   // a quoted string literal
	sym  bool   // punctuation: ( ) , = := ; and other symbols
}

type tokens []token

// lex splits stmt into words, quoted strings, `identifiers` and symbols,
// skipping comments.
func lex(stmt string) tokens {
	var out tokens
	s := stmt
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += end + 4
		case strings.HasPrefix(s[i:], "-- ") || strings.HasPrefix(s[i:], "--\t") || strings.HasPrefix(s[i:], "--\n") || s[i:] == "--" || c == '#':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return out
			}
			i += end + 1
		case c == '\'' || c == '"' || c == '`':
			var b strings.Builder
			j := i + 1
			for j < len(s) {
				if s[j] == '\\' && c != '`' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c { // doubled quote
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{text: b.String(), str: c != '`'})
			i = j + 1
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{text: strings.ToUpper(s[i:j])})
			i = j
		case c == ':' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{text: ":=", sym: true})
			i += 2
		default:
			out = append(out, token{text: string(c), sym: true})
			i++
		}
	}
	return out
}

// isWordByte reports whether c belongs to a word: letters, digits, _, $,
// @ (variables), . (qualified names, decimals) and any non-ASCII byte.
func isWordByte(c byte) bool {
	return c >= 0x80 || c == '_' || c == '$' || c == '@' || c == '.' || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))
}

// word returns the i-th token when it is a word (upper-cased), else "".
func (t tokens) word(i int) string {
	if i < 0 || i >= len(t) || t[i].str || t[i].sym {
		return ""
	}
	return t[i].text
}

// head renders the first n words, for messages.
func (t tokens) head(n int) string {
	var w []string
	for i := 0; i < len(t) && len(w) < n; i++ {
		if t.word(i) == "" {
			break
		}
		w = append(w, t[i].text)
	}
	return strings.Join(w, " ")
}

// has reports whether the word w appears anywhere.
func (t tokens) has(w string) bool {
	for i := range t {
		if t.word(i) == w {
			return true
		}
	}
	return false
}

// hasSeq reports whether the words seq appear in a row within the first n
// tokens.
func (t tokens) hasSeq(n int, seq ...string) bool {
	if n > len(t) {
		n = len(t)
	}
	for i := 0; i+len(seq) <= n; i++ {
		ok := true
		for j, w := range seq {
			if t.word(i+j) != w {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// headLen is the length of a DDL statement's head: the tokens before its
// body (a parenthesis, AS, SELECT, BEGIN), where IF [NOT] EXISTS stands.
func headLen(t tokens) int {
	for i, tk := range t {
		if tk.sym && tk.text == "(" {
			return i
		}
		switch t.word(i) {
		case "AS", "SELECT", "BEGIN", "RETURNS", "ON", "DO":
			return i
		}
	}
	return len(t)
}

// split cuts t at the symbol sep outside parentheses.
func (t tokens) split(sep string) []tokens {
	var out []tokens
	depth, start := 0, 0
	for i, tk := range t {
		if !tk.sym {
			continue
		}
		switch tk.text {
		case "(":
			depth++
		case ")":
			depth--
		case sep:
			if depth == 0 {
				out = append(out, t[start:i])
				start = i + 1
			}
		}
	}
	return append(out, t[start:])
}

// volatileFuncs give another value each time they are called.
var volatileFuncs = map[string]bool{
	"NOW": true, "CURRENT_TIMESTAMP": true, "SYSDATE": true, "CURDATE": true, "CURRENT_DATE": true,
	"CURTIME": true, "CURRENT_TIME": true, "UTC_TIMESTAMP": true, "UTC_DATE": true, "UTC_TIME": true,
	"UNIX_TIMESTAMP": true, "LOCALTIME": true, "LOCALTIMESTAMP": true, "RAND": true, "UUID": true,
	"UUID_SHORT": true,
}

// volatile returns the first clock or random function the statement
// reads, lower-cased ("" if none).
func (t tokens) volatile() string {
	for i := range t {
		if w := t.word(i); volatileFuncs[w] {
			return strings.ToLower(w)
		}
	}
	return ""
}
