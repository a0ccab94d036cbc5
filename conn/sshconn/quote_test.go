package sshconn

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// hostile holds words that would change a command's structure if they were
// interpolated unquoted.
var hostile = []string{
	"",
	" ",
	"plain",
	"db-1.example.com:3306",
	"user@host",
	"a=b,c+d%e/f.g_h-i",
	"it's",
	"'",
	"''",
	`'\''`,
	`"`,
	`"$HOME"`,
	"$HOME",
	"${HOME}",
	"$(id)",
	"`id`",
	"a;b",
	"a; echo INJECTED",
	"a && echo INJECTED",
	"a || echo INJECTED",
	"a | cat",
	"a > /tmp/x",
	"< /etc/passwd",
	"line1\nline2",
	"\n",
	"tab\there",
	"back\\slash",
	"\\",
	"*",
	"?",
	"[a]",
	"~",
	"~root",
	"#comment",
	"a #b",
	"!",
	"{a,b}",
	"-n",
	"--",
	"'; echo INJECTED; '",
	"\"; echo INJECTED; \"",
	"$(echo INJECTED)'`echo INJECTED`'",
	"ünïcödé ✓",
	"\xff\xfe invalid utf8",
	"\x01\x02\x1b[31m",
	"trailing\\",
	"%s%n",
}

// shells returns the POSIX shells available to test against.
func shells(t *testing.T) []string {
	var out []string
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/bin/dash"} {
		if _, err := exec.LookPath(sh); err == nil {
			out = append(out, sh)
		}
	}
	if len(out) == 0 {
		t.Fatal("no POSIX shell found at /bin/sh, /bin/bash or /bin/dash")
	}
	return out
}

// shellWords runs printf with the quoted words under sh and returns the words
// the shell passed.
func shellWords(t testing.TB, sh string, words []string) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`printf '%s\0'`)
	for _, w := range words {
		b.WriteByte(' ')
		b.WriteString(ShellQuote(w))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sh, "-c", b.String()).Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", sh, b.String(), err)
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

func TestShellQuoteRoundTripsThroughShell(t *testing.T) {
	for _, sh := range shells(t) {
		// One word at a time: the shell must read back exactly that word.
		for _, w := range hostile {
			got := shellWords(t, sh, []string{w})
			if len(got) != 1 || got[0] != w {
				t.Errorf("%s: ShellQuote(%q) = %s read back as %q", sh, w, ShellQuote(w), got)
			}
		}
		// All at once: word boundaries must survive too.
		got := shellWords(t, sh, hostile)
		if strings.Join(got, "\x00") != strings.Join(hostile, "\x00") {
			t.Errorf("%s: %d words read back as %d: %q", sh, len(hostile), len(got), got)
		}
	}
}

func TestShellQuoteCannotInject(t *testing.T) {
	// A quoted value in the middle of a command stays one argument of echo:
	// nothing it contains runs.
	for _, w := range hostile {
		cmd := "echo " + ShellQuote(w) + " >/dev/null; echo done"
		out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput()
		if err != nil || string(out) != "done\n" {
			t.Errorf("command %q: output %q, err %v", cmd, out, err)
		}
	}
}

func TestShellQuoteSafeWordsStayBare(t *testing.T) {
	for _, w := range []string{"abc", "A-Z_0.9", "/usr/bin/mysql", "host:3306", "k=v", "a@b", "50%", "a+b,c"} {
		if got := ShellQuote(w); got != w {
			t.Errorf("ShellQuote(%q) = %q, want it bare", w, got)
		}
	}
	for w, want := range map[string]string{
		"":        "''",
		"a b":     "'a b'",
		"it's":    `'it'\''s'`,
		"~":       "'~'",
		"$x":      "'$x'",
		"a\nb":    "'a\nb'",
		"x;y":     "'x;y'",
		"`id`":    "'`id`'",
		"a*":      "'a*'",
		"a\\":     "'a\\'",
		"é":       "'é'",
		"#":       "'#'",
		"{a,b}":   "'{a,b}'",
		"a'b'c":   `'a'\''b'\''c'`,
		"!":       "'!'",
		"\"quote": `'"quote'`,
	} {
		if got := ShellQuote(w); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", w, got, want)
		}
	}
}

func FuzzShellQuote(f *testing.F) {
	for _, w := range hostile {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, w string) {
		if strings.IndexByte(w, 0) >= 0 {
			t.Skip("NUL cannot be passed as an argument")
		}
		got := shellWords(t, "/bin/sh", []string{w, "end"})
		if len(got) != 2 || got[0] != w || got[1] != "end" {
			t.Errorf("ShellQuote(%q) = %s read back as %q", w, ShellQuote(w), got)
		}
	})
}

func TestFirstWords(t *testing.T) {
	for in, want := range map[string]string{
		"sleep 100":                  "sleep 100",
		"  mysql  -h x  -P 1 -e 'x'": "mysql -h x …",
		strings.Repeat("a", 100):     strings.Repeat("a", 57) + "…",
	} {
		if got := firstWords(in); got != want {
			t.Errorf("firstWords(%q) = %q, want %q", in, got, want)
		}
	}
	if got := firstWords(strings.Repeat("é", 40)); !utf8.ValidString(got) {
		t.Errorf("firstWords cut a UTF-8 sequence: %q", got)
	}
}
