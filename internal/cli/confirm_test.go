package cli

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowdba/flow/internal/testutil"
)

// confirmPlaybook has one state-changing step that asks for confirmation.
const confirmPlaybook = `name: confirmed
params:
  dir: {type: string, required: true}
steps:
  - name: Step 01 change after confirmation
    redo: {action: write, path: "{{ dir }}/done.json", values: {n: "1"}}
    confirm: go-ahead
    pre: true
`

// TestConfirmPromptOnATerminal: a run on a terminal shows the confirmation
// prompt (it once went to the discarded listing stream), with and without
// the progress view, and goes on when the word is typed.
func TestConfirmPromptOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flow and runs it on a pseudo-terminal")
	}
	dir := t.TempDir()
	bin := testutil.BuildFlow(t)
	pb := writePlaybook(t, dir, "confirm.yaml", confirmPlaybook)
	for _, progress := range []string{"off", "on"} {
		t.Run("progress "+progress, func(t *testing.T) {
			work := t.TempDir()
			env := append(os.Environ(), "TERM=xterm")
			args := []string{"run", pb, "--state-dir", filepath.Join(work, "state"), "--var", "dir=" + work, "--progress", progress}
			raw, code := flowOnPTY(t, bin, env, args, `Type "go-ahead" to continue`, func(tty io.Writer) {
				if _, err := tty.Write([]byte("go-ahead\n")); err != nil {
					t.Error(err)
				}
			})
			if code != 0 {
				t.Fatalf("flow exited %d:\n%s", code, plainText(raw))
			}
			if _, err := os.Stat(filepath.Join(work, "done.json")); err != nil {
				t.Errorf("the confirmed step did not run: %v", err)
			}
		})
	}
}
