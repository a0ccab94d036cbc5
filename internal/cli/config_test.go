package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdba/flow/internal/cli"
)

// TestOldConfigFlagAndPrecedence: the old tool's single-dash -config works, a
// password keeps its '#' and ';', FLOW_SECTION_KEY beats the file and
// --var beats both.
func TestOldConfigFlagAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "flashback.ini")
	if err := os.WriteFile(ini, []byte("[source]\nhost = 127.0.0.9\nport = 16310\nmysql_password = a#b;c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pb := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pb, []byte(`name: cfg
params:
  host: {type: string, config: source.host, required: true}
  port: {type: int, config: source.port, required: true}
  pw: {type: string, config: source.mysql_password, secret: true, required: true}
  want_host: {type: string, required: true}
  want_port: {type: int, required: true}
steps:
  - assert:
      that: host == want_host && port == want_port && len(pw) == 5 && indexOf(pw, "#") == 1 && indexOf(pw, ";") == 3
      message: "host {{ host }} port {{ port }}"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Main(append([]string{"run", pb, "-config", ini, "--state-dir", t.TempDir()}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("--var", "want_host=127.0.0.9", "--var", "want_port=16310"); code != 0 {
		t.Fatalf("file values: exit %d\n%s", code, out)
	}
	t.Setenv("FLOW_SOURCE_PORT", "3307")
	if code, out := run("--var", "want_host=127.0.0.9", "--var", "want_port=3307"); code != 0 {
		t.Fatalf("environment over the file: exit %d\n%s", code, out)
	}
	if code, out := run("--var", "want_host=127.0.0.5", "--var", "want_port=3307", "--var", "host=127.0.0.5"); code != 0 {
		t.Fatalf("--var over everything: exit %d\n%s", code, out)
	}
	code, out := run("--var", "want_host=nope", "--var", "want_port=3307")
	if code != 3 || strings.Contains(out, "a#b;c") {
		t.Fatalf("a failing assert must exit 3 without showing the password: exit %d\n%s", code, out)
	}
}
