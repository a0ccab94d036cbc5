package sshconn

import (
	"strings"

	"github.com/flowdba/flow/engine/quote"
)

// ShellQuote returns s quoted as one word for a POSIX shell, so that the
// shell reads back exactly s whatever it contains (quotes, $(...), backticks,
// newlines, ;, globs). A non-empty word made only of the characters
// [A-Za-z0-9_./:=@%+,-] is returned unchanged; anything else is wrapped in
// single quotes, and each single quote inside is written as quote, backslash,
// quote, quote. The empty string becomes a pair of single quotes. A NUL byte
// cannot be passed to a command at all; it is kept, and the shell will refuse
// or truncate the argument.
//
//	ShellQuote("db-1.example:3306") == "db-1.example:3306"
//	ShellQuote("it's; $(rm -rf /)") == `'it'\''s; $(rm -rf /)'`
func ShellQuote(s string) string { return quote.ShellWord(s) }

// firstWords returns the start of a command line for error messages: at most
// three words and 60 bytes, so errors identify the command without echoing
// long argument lists.
func firstWords(cmd string) string {
	words := strings.Fields(cmd)
	if len(words) > 3 {
		words = append(words[:3], "…")
	}
	s := strings.Join(words, " ")
	if len(s) > 60 {
		cut := 57
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
