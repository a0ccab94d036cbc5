package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
)

// TestCommandsPrintDiagnosticSnippets: `flow validate` and a command that
// loads a playbook to run it (plan) print a load error with its source
// line, a caret and the hint, the FILE:LINE:COL line first.
func TestCommandsPrintDiagnosticSnippets(t *testing.T) {
	dir := t.TempDir()
	pb := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(pb, []byte("name: demo\nsteps:\n  - log: {msg: hi}\n    retires: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := pb + `:4:5: step: unknown key "retires" (did you mean "retries"?)`
	snippet := first + "\n  4 |     retires: 3\n    |     ^\n"

	code, out, _ := runFlow("validate", pb)
	if code != engine.ExitInvalid || !strings.HasPrefix(out, snippet) {
		t.Errorf("flow validate: exit %d, output:\n%s\nwant it to start with:\n%s", code, out, snippet)
	}
	code, _, errOut := runFlow("plan", pb)
	if code != engine.ExitInvalid || !strings.HasPrefix(errOut, "flow: "+snippet) {
		t.Errorf("flow plan: exit %d, stderr:\n%s\nwant it to start with:\nflow: %s", code, errOut, snippet)
	}
}
