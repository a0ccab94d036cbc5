package engine_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
)

// gated is a group behind a confirmation point whose first step changes
// state and whose rescue counts its runs.
const gated = `name: gated
steps:
  - name: Step 01 read
    testprobe: {key: op-read}
  - name: drill
    confirm: {word: go, message: "this changes the probe"}
    rescue:
      - name: rescue undo
        testprobe: {key: op-rescue, changes: true}
    steps:
      - name: Step 02 change
        testprobe: {key: op-change, changes: true}
      - name: Step 03 wait
        testprobe: {key: op-wait, await: 99}
`

// typedLater is a terminal on which the operator types line after the
// prompt showed (lines typed before a prompt never answer it).
func typedLater(line string) io.Reader {
	r, w := io.Pipe()
	time.AfterFunc(300*time.Millisecond, func() { io.WriteString(w, line) })
	return r
}

func resetOp() {
	for _, k := range []string{"op-read", "op-rescue", "op-change", "op-wait"} {
		resetProbe(k)
	}
}

// TestNoTerminalRefusedBeforeAnything: a playbook with a confirmation
// point and neither a terminal nor --yes is refused (exit 3) before its
// first step, read-only ones included.
func TestNoTerminalRefusedBeforeAnything(t *testing.T) {
	resetOp()
	res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun})
	wantExit(t, res, engine.ExitRefused)
	wantIn(t, "error", res.Err.Error(), "no terminal", "nothing was run", "--yes")
	wantRuns(t, "op-read", 0)
	wantRuns(t, "op-change", 0)
}

// TestSignalAtPromptEndsTheRun: a signal (the run's context cancelled)
// while the prompt waits ends the run at once, interrupted, with nothing
// changed and no rescue.
func TestSignalAtPromptEndsTheRun(t *testing.T) {
	resetOp()
	in, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Context: ctx, Stdin: in, Interactive: true, JSON: true})
	wantExit(t, res, engine.ExitInterrupted)
	// the block ended as a typed step does when cut short: failed, not refused
	wantIn(t, "log", res.Log, `"event":"step_failed"`)
	if strings.Contains(res.Log, `"event":"step_refused"`) {
		t.Errorf("a signal at a block's prompt is journaled as a refusal:\n%s", res.Log)
	}
	if res.Elapsed > 20*time.Second {
		t.Errorf("the run took %s after the signal at the prompt", res.Elapsed)
	}
	wantIn(t, "prompt", res.Out, `Type "go"`, "this changes the probe", "declining changes nothing")
	wantRuns(t, "op-change", 0)
	wantRuns(t, "op-rescue", 0)
}

// TestHangUpAtPromptIsNoDecline: the terminal hangs up at the prompt: its
// input ends a moment before the SIGHUP cancels the run (they race on a
// real terminal). The journal records the prompt as interrupted by the
// hang-up, not as the operator's decline; the run ends interrupted with
// nothing changed. An operator who ends the input on a terminal that stays
// (Ctrl-D) declines.
func TestHangUpAtPromptIsNoDecline(t *testing.T) {
	confirmation := func(j *enginetest.Journal) map[string]any {
		for _, ev := range j.Events() {
			if ev.Event == "confirmation" {
				return ev.Fields
			}
		}
		return nil
	}
	t.Run("hang-up", func(t *testing.T) {
		resetOp()
		in, w := io.Pipe()
		var gone atomic.Bool
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(300*time.Millisecond, func() {
			w.Close()                                                                  // the end of input first …
			time.AfterFunc(50*time.Millisecond, func() { gone.Store(true); cancel() }) // … then the SIGHUP
		})
		j := &enginetest.Journal{}
		res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Context: ctx, Stdin: in, Interactive: true,
			TerminalGone: gone.Load, Journal: j})
		wantExit(t, res, engine.ExitInterrupted)
		if f := confirmation(j); f == nil || f["outcome"] != "interrupted" || f["how"] != "terminal hung up" {
			t.Errorf("the confirmation record is %v, want outcome interrupted, how terminal hung up", f)
		}
		wantIn(t, "error", res.Err.Error(), "hang-up", "nothing was confirmed")
		wantRuns(t, "op-change", 0)
		wantRuns(t, "op-rescue", 0)
	})
	t.Run("end of input", func(t *testing.T) {
		resetOp()
		in, w := io.Pipe()
		time.AfterFunc(300*time.Millisecond, func() { w.Close() })
		j := &enginetest.Journal{}
		res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Stdin: in, Interactive: true,
			TerminalGone: func() bool { return false }, Journal: j})
		wantExit(t, res, engine.ExitRefused)
		if f := confirmation(j); f == nil || f["outcome"] != "declined" || f["how"] != "end of input" {
			t.Errorf("the confirmation record is %v, want outcome declined, how end of input", f)
		}
		wantRuns(t, "op-change", 0)
	})
}

// TestWrongWordRefusedNothingChanged: a wrong word declines; nothing had
// changed, so the run is refused (exit 3) and no rescue runs.
func TestWrongWordRefusedNothingChanged(t *testing.T) {
	resetOp()
	res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Stdin: typedLater("no\n"), Interactive: true})
	wantExit(t, res, engine.ExitRefused)
	wantIn(t, "error", res.Err.Error(), `typed "no", not "go"`)
	wantRuns(t, "op-change", 0)
	wantRuns(t, "op-rescue", 0)
}

// TestInterruptAfterChangeRunsTheRescue: interrupted in a wait after a
// change, the run cancels the wait, runs the rescue to its end in its own
// context, and ends interrupted (130).
func TestInterruptAfterChangeRunsTheRescue(t *testing.T) {
	resetOp()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(900*time.Millisecond, cancel)
	res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Context: ctx, Stdin: typedLater("go\n"), Interactive: true})
	wantExit(t, res, engine.ExitInterrupted)
	wantRuns(t, "op-change", 1)
	wantRuns(t, "op-rescue", 1)
	if o := res.Runner.Outcome(); len(o.Rescues) != 1 || o.Rescues[0].Outcome != "done" {
		t.Errorf("rescue outcome %+v, want one done", o.Rescues)
	}
}

// TestPostRefusalBeforeChangeIsRefused: a post guard that refuses before
// any change is exit 3, and the enclosing rescue is not needed.
func TestPostRefusalBeforeChangeIsRefused(t *testing.T) {
	const pb = `name: post
steps:
  - name: drill
    rescue:
      - testprobe: {key: pr-rescue, changes: true}
    steps:
      - name: Step 01 look
        testprobe: {key: pr-read}
        post: [{that: "result.n > 5", message: "too few"}]
      - testprobe: {key: pr-change, changes: true}
`
	res := run(t, pb, engine.ModeRun, nil, "pr-rescue", "pr-read", "pr-change")
	wantExit(t, res, engine.ExitRefused)
	wantIn(t, "error", res.Err.Error(), "too few")
	wantRuns(t, "pr-rescue", 0)
	wantRuns(t, "pr-change", 0)
}

// TestResumeAfterRescueAsksAgain: the operator confirmed, then pressed
// Ctrl-C and the rescue put everything back; `flow resume` asks again
// before changing anything (without a terminal it is refused, nothing
// run), while a resume of a run cut short before its rescue finished
// keeps the earlier confirmation.
func TestResumeAfterRescueAsksAgain(t *testing.T) {
	resetOp()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(900*time.Millisecond, cancel)
	j := &enginetest.Journal{}
	res := enginetest.Run(t, gated, enginetest.Options{Mode: engine.ModeRun, Context: ctx, Stdin: typedLater("go\n"), Interactive: true, Journal: j})
	wantExit(t, res, engine.ExitInterrupted)
	wantRuns(t, "op-rescue", 1)
	earlier := j.Events()

	resetOp()
	rs := engine.BuildResumeState(earlier)
	res = enginetest.RunPlaybook(t, enginetest.Load(t, res.File), enginetest.Options{Mode: engine.ModeRun, Resume: rs})
	// refused before anything ran, but the run did change something (its
	// first attempt, which the rescue put back): exit 4, not 3
	wantExit(t, res, engine.ExitAborted)
	wantIn(t, "error", res.Err.Error(), "drill")
	wantRuns(t, "op-change", 0)

	// asked on a terminal, the operator declines: exit 4 as well
	resetOp()
	res = enginetest.RunPlaybook(t, enginetest.Load(t, res.File), enginetest.Options{Mode: engine.ModeRun, Resume: engine.BuildResumeState(earlier),
		Stdin: typedLater("no\n"), Interactive: true})
	wantExit(t, res, engine.ExitAborted)
	wantRuns(t, "op-change", 0)
	wantIn(t, "prompt", res.Out+res.Log, "An earlier attempt of this run made changes")

	// the same journal without the rescue's end: the yes still stands
	var cut []engine.ResumeEvent
	for _, ev := range earlier {
		if ev.Event != "rescue_finished" {
			cut = append(cut, ev)
		}
	}
	resetOp()
	res = enginetest.RunPlaybook(t, enginetest.Load(t, res.File), enginetest.Options{Mode: engine.ModeRun, Resume: engine.BuildResumeState(cut),
		Timeout: 2 * time.Second})
	if runs := probe("op-change").runs.Load(); runs != 1 {
		t.Errorf("op-change ran %d time(s) on the resume whose rescue had not finished, want 1 (no new question)", runs)
	}
}
