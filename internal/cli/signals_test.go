package cli

import (
	"context"
	"io"
	"syscall"
	"testing"
)

// TestRepeatedHangUpDoesNotAbandon: one hang-up sends SIGHUP several times
// (the kernel to the terminal's foreground group, the shell to its jobs,
// tmux or sshd): the first cancels the run, the others do not count, so
// they never abandon the rescue; a SIGTERM and a SIGINT from another
// terminal afterwards are the second and third signals, and abandon it.
func TestRepeatedHangUpDoesNotAbandon(t *testing.T) {
	s := watchSignals(context.Background(), io.Discard)
	defer s.Stop()
	for range 3 {
		s.handle(syscall.SIGHUP)
	}
	if s.ctx.Err() == nil {
		t.Error("the first SIGHUP did not cancel the run")
	}
	if !s.TerminalGone() {
		t.Error("after a SIGHUP the terminal is not marked gone")
	}
	if s.abandon.Err() != nil {
		t.Fatal("three SIGHUPs of one hang-up abandoned the rescue")
	}
	s.handle(syscall.SIGTERM)
	if s.abandon.Err() != nil {
		t.Fatal("a second signal abandoned the rescue")
	}
	s.handle(syscall.SIGINT)
	if s.abandon.Err() == nil {
		t.Error("the third signal that counts did not abandon the rescue")
	}
}
