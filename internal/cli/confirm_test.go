package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
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
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command to build flow with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flow")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/flowdba/flow/cmd/flow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pb := writePlaybook(t, dir, "confirm.yaml", confirmPlaybook)
	for _, progress := range []string{"off", "on"} {
		t.Run("progress "+progress, func(t *testing.T) {
			work := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", pb, "--state-dir", filepath.Join(work, "state"), "--var", "dir="+work, "--progress", progress)
			cmd.Env = append(os.Environ(), "TERM=xterm")
			tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 150})
			if err != nil {
				t.Fatal(err)
			}
			defer tty.Close()
			out := &ptyBuffer{}
			copied := make(chan struct{})
			go func() {
				defer close(copied)
				_, _ = io.Copy(out, tty)
			}()
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(plainText(out.String()), `Type "go-ahead" to continue`) {
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("the terminal never showed the prompt:\n%s", plainText(out.String()))
				}
				time.Sleep(20 * time.Millisecond) // a poll interval
			}
			if _, err := tty.Write([]byte("go-ahead\n")); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			<-copied
			var ee *exec.ExitError
			if errors.As(err, &ee) || err != nil {
				t.Fatalf("flow: %v\n%s", err, plainText(out.String()))
			}
			if _, err := os.Stat(filepath.Join(work, "done.json")); err != nil {
				t.Errorf("the confirmed step did not run: %v", err)
			}
		})
	}
}
