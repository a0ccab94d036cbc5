package dbscale

import (
	"fmt"
	"strings"
	"unicode"
)

// tokKind is the kind of a token of a dbscale command.
type tokKind int

const (
	tEOF    tokKind = iota
	tWord           // a bare word: keywords, names, numbers, host addresses, name-1-2-3-4
	tString         // a '…' or "…" literal, unescaped
	tIdent          // a `…` identifier, unescaped
	tOp             // = , ( ) != <> < > <= >=
)

// token is one lexical unit of a dbscale command.
type token struct {
	kind tokKind
	text string
	pos  int
}

// is reports whether t is the bare word w (case-insensitive).
func (t token) is(w string) bool { return t.kind == tWord && strings.EqualFold(t.text, w) }

// isOp reports whether t is the operator op.
func (t token) isOp(op string) bool { return t.kind == tOp && t.text == op }

// value is the token's text for a value position: words, strings and
// identifiers alike (every quoting style is the same value).
func (t token) value() (string, bool) {
	switch t.kind {
	case tWord, tString, tIdent:
		return t.text, true
	}
	return "", false
}

// describe names a token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of statement"
	case tString:
		return fmt.Sprintf("'%s'", t.text)
	}
	return t.text
}

// lex splits a dbscale command into tokens. Quotes may use '…', "…" or
// `…`; inside '…' and "…" a backslash escapes and a doubled quote is one
// quote, as in MySQL.
func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '\'' || c == '"' || c == '`':
			text, n, err := lexQuoted(s[i:])
			if err != nil {
				return nil, fmt.Errorf("%v at position %d", err, i)
			}
			kind := tString
			if c == '`' {
				kind = tIdent
			}
			toks = append(toks, token{kind: kind, text: text, pos: i})
			i += n
		case c == '=' || c == ',' || c == '(' || c == ')':
			toks = append(toks, token{kind: tOp, text: string(c), pos: i})
			i++
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			toks = append(toks, token{kind: tOp, text: "!=", pos: i})
			i += 2
		case c == '<' || c == '>':
			op := string(c)
			if i+1 < len(s) && (s[i+1] == '=' || c == '<' && s[i+1] == '>') {
				op += string(s[i+1])
			}
			toks = append(toks, token{kind: tOp, text: op, pos: i})
			i += len(op)
		default:
			j := i
			for j < len(s) && !wordStop(s, j) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: s[i:j], pos: i})
			i = j
		}
	}
	toks = append(toks, token{kind: tEOF, pos: len(s)})
	return toks, nil
}

// wordStop reports whether s[j] ends a bare word.
func wordStop(s string, j int) bool {
	switch c := s[j]; c {
	case ' ', '\t', '\n', '\r', '\f', '\'', '"', '`', '=', ',', '(', ')', '<', '>':
		return true
	case '!':
		return j+1 < len(s) && s[j+1] == '='
	}
	return false
}

// lexQuoted reads the quoted literal at the start of s and returns its text
// and length in s.
func lexQuoted(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && q != '`' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(26)
			case '%', '_':
				b.WriteByte('\\')
				b.WriteByte(e)
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated %c quote", q)
}

// trimStatement removes surrounding spaces and any trailing ';', '\G' or
// '\g' a client left on a statement.
func trimStatement(q string) string {
	q = strings.TrimSpace(q)
	for {
		switch {
		case strings.HasSuffix(q, ";"):
			q = strings.TrimSpace(q[:len(q)-1])
		case strings.HasSuffix(q, `\G`), strings.HasSuffix(q, `\g`):
			q = strings.TrimSpace(q[:len(q)-2])
		default:
			return q
		}
	}
}

// hintKey is the routing hint the emulator reads from a leading comment:
// /* dbscale datasource=normal_1 */ sends a replication or status
// statement to that datasource's master only.
const hintKey = "datasource"

// splitLeadingComments skips the comments before a statement and returns
// the datasource named by a routing hint among them ("" if none) and the
// statement from its first keyword on. Executable comments (/*! … */ and
// /*+ … */) are not skipped.
func splitLeadingComments(q string) (hint, rest string) {
	for {
		q = strings.TrimLeftFunc(q, unicode.IsSpace)
		switch {
		case strings.HasPrefix(q, "/*") && !strings.HasPrefix(q, "/*!") && !strings.HasPrefix(q, "/*+"):
			end := strings.Index(q[2:], "*/")
			if end < 0 {
				return hint, q
			}
			if h := parseHint(q[2 : 2+end]); h != "" {
				hint = h
			}
			q = q[2+end+2:]
		case strings.HasPrefix(q, "#") || strings.HasPrefix(q, "-- ") || strings.HasPrefix(q, "--\t") || q == "--":
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return hint, ""
			}
			q = q[end+1:]
		default:
			return hint, q
		}
	}
}

// parseHint reads "dbscale datasource=NAME" from a comment body.
func parseHint(body string) string {
	f := strings.Fields(strings.ReplaceAll(body, "=", " = "))
	if len(f) == 4 && strings.EqualFold(f[0], "dbscale") && strings.EqualFold(f[1], hintKey) && f[2] == "=" {
		return strings.Trim(f[3], "'\"`")
	}
	return ""
}

// keywords returns the first n words of a statement in upper case; a word
// is a run of letters, digits, '_' or '@'. Later words are dropped.
func keywords(q string, n int) []string {
	var out []string
	i := 0
	for len(out) < n && i < len(q) {
		c := q[i]
		if isKeywordChar(c) {
			j := i
			for j < len(q) && isKeywordChar(q[j]) {
				j++
			}
			out = append(out, strings.ToUpper(q[i:j]))
			i = j
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		break // punctuation ends the keyword prefix
	}
	return out
}

func isKeywordChar(c byte) bool {
	return c == '_' || c == '@' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// hasKeywords reports whether kw starts with the given words.
func hasKeywords(kw []string, words ...string) bool {
	if len(kw) < len(words) {
		return false
	}
	for i, w := range words {
		if kw[i] != w {
			return false
		}
	}
	return true
}

// quoteString returns s as a MySQL single-quoted literal.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 26:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
