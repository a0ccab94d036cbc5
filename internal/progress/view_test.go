package progress

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowdba/flow/internal/testutil"
)

// screen is a minimal terminal: it applies the output's carriage returns,
// newlines, cursor-up, erase-below and colour sequences to a grid of lines,
// so a test sees what a person would see.
type screen struct {
	lines    []string
	row, col int
	raw      strings.Builder
}

func (s *screen) Write(p []byte) (int, error) {
	s.raw.Write(p)
	in := string(p)
	for i := 0; i < len(in); {
		switch c := in[i]; {
		case c == '\r':
			s.col = 0
			i++
		case c == '\n':
			s.row++
			s.col = 0
			i++
		case c == 0x1b && i+1 < len(in) && in[i+1] == '[':
			j := i + 2
			for j < len(in) && (in[j] >= '0' && in[j] <= '9' || in[j] == ';' || in[j] == '?') {
				j++
			}
			arg := in[i+2 : j]
			switch in[j] {
			case 'A':
				n, _ := strconv.Atoi(arg)
				if n == 0 {
					n = 1
				}
				s.row -= n
				if s.row < 0 {
					panic("cursor moved above the top of the screen")
				}
			case 'J':
				s.grow()
				s.lines = s.lines[:s.row+1]
				l := []rune(s.lines[s.row])
				if s.col < len(l) {
					s.lines[s.row] = string(l[:s.col])
				}
			case 'm': // colours: nothing to place
			default:
				panic(fmt.Sprintf("unexpected escape sequence %q", in[i:j+1]))
			}
			i = j + 1
		default:
			r, n := utf8.DecodeRuneInString(in[i:])
			s.grow()
			l := []rune(s.lines[s.row])
			for len(l) < s.col {
				l = append(l, ' ')
			}
			if s.col < len(l) {
				l[s.col] = r
			} else {
				l = append(l, r)
			}
			s.lines[s.row] = string(l)
			s.col++
			i += n
		}
	}
	return len(p), nil
}

func (s *screen) grow() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, "")
	}
}

// text is the screen's content, without the empty line the cursor rests on.
func (s *screen) text() string {
	return strings.TrimRight(strings.Join(s.lines, "\n"), "\n")
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const (
	kOne  = "pb.yaml:5:5"
	kPar  = "pb.yaml:9:5"
	kItem = "pb.yaml:9:5#%d > pb.yaml:12:9"
	kLast = "pb.yaml:20:5"
)

func ev(c *clock, f map[string]any) map[string]any {
	f["time"] = c.t
	return f
}

// TestViewDrawsTheRunInPlace feeds a run's events to a view on a fake
// terminal and checks what the screen shows at each point.
func TestViewDrawsTheRunInPlace(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	scr := &screen{}
	v := New(scr, Options{Size: func() (int, int) { return 100, 30 }, Now: c.now, Interval: -1})
	v.SetHistory(NewHistory([]PastRun{{Steps: map[string]time.Duration{kOne: s(2), kPar: s(60), kLast: s(30)}}}), nil)

	v.Observe("run_started", ev(c, map[string]any{"run_id": "20261123T100000Z-abcd", "playbook": "drill"}))
	v.Observe("step_started", ev(c, map[string]any{"key": kOne, "name": "Step 01 read the plan", "type": "sql"}))
	v.Observe("statement", ev(c, map[string]any{"key": kOne, "target": "mysql node (127.0.0.2:3306)", "text": "SELECT 1"}))
	v.Redraw()
	if got := scr.text(); !strings.Contains(got, "▶ drill · run 20261123T100000Z-abcd · 0.0s · ETA ~1m32s (from 1 earlier run)") ||
		!strings.Contains(got, "▸ Step 01 read the plan · mysql node (127.0.0.2:3306)") {
		t.Fatalf("first draw:\n%s", got)
	}

	c.t = c.t.Add(1500 * time.Millisecond)
	v.Observe("step_finished", ev(c, map[string]any{"key": kOne, "name": "Step 01 read the plan", "type": "sql", "duration_ms": int64(1500)}))
	v.Observe("step_started", ev(c, map[string]any{"key": kPar, "name": "Step 02 clone", "type": "group"}))
	for i := 0; i < 3; i++ {
		v.Observe("step_started", ev(c, map[string]any{"key": fmt.Sprintf(kItem, i), "name": "clone node", "type": "clone"}))
	}
	v.Observe("step_finished", ev(c, map[string]any{"key": fmt.Sprintf(kItem, 2), "name": "clone node", "type": "clone", "duration_ms": int64(3)}))
	v.Observe("step_progress", ev(c, map[string]any{"key": fmt.Sprintf(kItem, 1), "waits_for": "clone of 127.0.0.1:3306 into mysql n1 (127.0.0.3:3306), stage FILE COPY",
		"bytes_done": int64(512 << 20), "bytes_total": int64(2 << 30), "rate": float64(64 << 20), "rate_unit": "B/s", "eta_s": 24.0}))
	v.Write([]byte("2026-11-23T10:00:01.500000+00:00 [pb.yaml:  12] [ID:56] [ WARN] n2 is slow\n"))
	c.t = c.t.Add(4 * time.Second)
	v.Redraw()
	want := `✓ Step 01 read the plan · mysql node (127.0.0.2:3306) · 1.5s
✓ #2 clone node · 0.0s
2026-11-23T10:00:01.500000+00:00 [pb.yaml:  12] [ID:56] [ WARN] n2 is slow
▶ drill · run 20261123T100000Z-abcd · 5.5s · ETA ~1m26s (from 1 earlier run)
▸ Step 02 clone · items: 2 running, 1 finished`
	if got := scr.text(); !strings.HasPrefix(got, want) {
		t.Fatalf("second draw:\n%s\nwant it to begin with:\n%s", got, want)
	}
	got := scr.text()
	for _, w := range []string{
		"  #0 ▸ clone node",
		"  #1 ▸ clone node",
		"      ↳ waits for clone of 127.0.0.1:3306 into mysql n1 (127.0.0.3:3306), stage FILE COPY",
		"        512.0 MiB of 2.0 GiB (25%) · 64.0 MiB/s · ETA ~20s",
	} {
		if !strings.Contains(got, w+"\n") && !strings.HasSuffix(got, w) && !strings.Contains(got, w+" ") {
			t.Errorf("the block lacks %q:\n%s", w, got)
		}
	}
	if i0, i1 := strings.Index(got, "#0 ▸"), strings.Index(got, "#1 ▸"); i0 > i1 {
		t.Errorf("items out of order:\n%s", got)
	}
	for _, l := range scr.lines {
		if n := utf8.RuneCountInString(l); n > 99 {
			t.Errorf("a line of %d cells on a 100-cell terminal wraps: %q", n, l)
		}
	}
	// a redraw with nothing new changes nothing on the screen
	before := scr.raw.Len()
	v.Redraw()
	if scr.raw.Len() != before {
		t.Errorf("an idle redraw wrote %q", scr.raw.String()[before:])
	}

	c.t = c.t.Add(20 * time.Second)
	for i := 0; i < 2; i++ {
		v.Observe("step_finished", ev(c, map[string]any{"key": fmt.Sprintf(kItem, i), "name": "clone node", "type": "clone", "duration_ms": int64(24000)}))
	}
	v.Observe("step_finished", ev(c, map[string]any{"key": kPar, "name": "Step 02 clone", "type": "group", "duration_ms": int64(24000)}))
	v.Observe("step_skipped", ev(c, map[string]any{"key": kLast, "name": "Step 03 optional", "reason": "`when: x` is false (x=false)"}))
	v.Observe("run_finished", ev(c, map[string]any{"status": "success"}))
	want = `✓ Step 01 read the plan · mysql node (127.0.0.2:3306) · 1.5s
✓ #2 clone node · 0.0s
2026-11-23T10:00:01.500000+00:00 [pb.yaml:  12] [ID:56] [ WARN] n2 is slow
✓ #0 clone node · 24s
✓ #1 clone node · 24s
✓ Step 02 clone · 24s
↷ Step 03 optional · skipped: ` + "`when: x` is false (x=false)" + `
■ drill · run 20261123T100000Z-abcd · success in 25s`
	if got := scr.text(); got != want {
		t.Fatalf("final screen:\n%s\nwant:\n%s", got, want)
	}
	// the run's end drew the final state: later lines print below it
	v.Write([]byte("flow: a line after the run\n"))
	if got := scr.text(); got != want+"\nflow: a line after the run" {
		t.Fatalf("a line written after the run's end:\n%s", got)
	}
	if strings.Contains(scr.raw.String(), "\x1b[3") {
		t.Error("colours without Options.Color")
	}
	if err := v.Close(); err != nil {
		t.Fatal("Close after the run's end failed:", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal("a second Close failed:", err)
	}
}

// TestViewNarrowAndColoured checks a narrow terminal clips every block line
// and that colours are used only when asked for.
func TestViewNarrowAndColoured(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	scr := &screen{}
	v := New(scr, Options{Color: true, Size: func() (int, int) { return 30, 10 }, Now: c.now, Interval: -1})
	v.Observe("run_started", ev(c, map[string]any{"run_id": "20261123T100000Z-abcd", "playbook": "a-playbook-with-a-long-name"}))
	v.SetHistory(nil, nil)
	for i := 0; i < 20; i++ {
		v.Observe("step_started", ev(c, map[string]any{"key": fmt.Sprintf("pb.yaml:%d:5", i+1), "name": strings.Repeat("long step name ", 4)}))
	}
	v.Observe("step_progress", ev(c, map[string]any{"key": "pb.yaml:1:5", "waits_for": "mysql node (127.0.0.2:3306) to apply 7 missing transaction(s)",
		"missing": 7, "rate": 0.0, "rate_unit": "trx/s"}))
	v.Redraw()
	plain := stripANSI(scr.text())
	lines := strings.Split(plain, "\n")
	if len(lines) > 8 {
		t.Errorf("a block of %d lines on a 10-line terminal:\n%s", len(lines), plain)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 29 {
			t.Errorf("a line of %d cells on a 30-cell terminal: %q", n, l)
		}
	}
	for _, w := range []string{"▶ a-playbook-with-a-long-nam…\n", "\n… and 16 more line(s)", "\n      7 missing · 0.0 trx/s …\n"} {
		if !strings.Contains(plain, w) {
			t.Errorf("the block lacks %q:\n%s", w, plain)
		}
	}
	if !strings.Contains(scr.raw.String(), "\x1b[1m") {
		t.Error("no colour with Options.Color")
	}
	v.Observe("step_failed", ev(c, map[string]any{"key": "pb.yaml:1:5", "name": "x", "duration_ms": int64(2000), "error": "boom"}))
	v.Observe("run_finished", ev(c, map[string]any{"status": "failed"}))
	v.Close()
	out := stripANSI(scr.text())
	if !strings.Contains(out, "✗ long step name") || !strings.Contains(out, "failed after 2.0s") || !strings.Contains(out, "still running when the run ended:") {
		t.Errorf("final screen:\n%s", out)
	}
	if !strings.Contains(out, "■ a-playbook-with-a-long-name · run 20261123T100000Z-abcd · failed after 0.0s\n") ||
		!strings.Contains(out, "\n▸ "+strings.Repeat("long step name ", 4)+"  0.0s\n") {
		t.Errorf("the final lines are clipped or wrong (they stay in the scrollback: nothing is clipped):\n%s", out)
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 'a' && s[i] <= 'z') {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestViewSaysWhyThereIsNoEstimate checks the header without earlier runs.
func TestViewSaysWhyThereIsNoEstimate(t *testing.T) {
	for _, c := range []struct {
		h    *History
		err  error
		want string
	}{
		{NewHistory(nil), nil, "· no earlier runs"},
		{nil, fmt.Errorf("permission denied\nmore"), "· no ETA: permission denied"},
	} {
		scr := &screen{}
		v := New(scr, Options{Interval: -1})
		v.Observe("run_started", map[string]any{"run_id": "r1", "playbook": "pb"})
		v.Redraw()
		if strings.Contains(scr.text(), "ETA") || strings.Contains(scr.text(), "earlier") {
			t.Errorf("an estimate before the history is loaded: %s", scr.text())
		}
		v.SetHistory(c.h, c.err)
		v.Redraw()
		if got := scr.text(); !strings.HasPrefix(got, "▶ pb · run r1 · ") || !strings.HasSuffix(got, c.want) {
			t.Errorf("header %q, want it to end with %q", got, c.want)
		}
		v.Close()
	}
}

// TestViewOfARunThatNeverStarted leaves nothing on the screen.
func TestViewOfARunThatNeverStarted(t *testing.T) {
	scr := &screen{}
	v := New(scr, Options{Interval: -1})
	v.Redraw()
	v.Write([]byte("flow: a warning\n"))
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if got := scr.text(); got != "flow: a warning" {
		t.Fatalf("screen %q, want only the log line", got)
	}
}

// TestViewTickerRedraws checks the view redraws by itself while a step runs.
func TestViewTickerRedraws(t *testing.T) {
	scr := &testutil.SyncBuffer{}
	v := New(scr, Options{Interval: 10 * time.Millisecond})
	v.Observe("run_started", map[string]any{"run_id": "r1", "playbook": "pb"})
	v.Observe("step_started", map[string]any{"key": kOne, "name": "Step 01 wait"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scr.String(), "▸ Step 01 wait") {
		if time.Now().After(deadline) {
			t.Fatalf("the view never drew the running step: %q", scr.String())
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
	v.Close()
}

// TestViewSaysInterruptedNotFailed: a step a signal ended is shown as
// interrupted, one that failed by itself as failed.
func TestViewSaysInterruptedNotFailed(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)}
	scr := &screen{}
	v := New(scr, Options{Size: func() (int, int) { return 100, 30 }, Now: c.now, Interval: -1})
	v.Observe("run_started", ev(c, map[string]any{"run_id": "20261207T230000Z-abcd", "playbook": "switch"}))
	v.Observe("step_started", ev(c, map[string]any{"key": kOne, "name": "freeze", "type": "group"}))
	v.Observe("step_started", ev(c, map[string]any{"key": kLast, "name": "check", "type": "sql"}))
	v.Observe("step_failed", ev(c, map[string]any{"key": kLast, "name": "check", "duration_ms": int64(1000), "error": "boom", "interrupted": false}))
	v.Observe("step_failed", ev(c, map[string]any{"key": kOne, "name": "freeze", "duration_ms": int64(6000), "error": "SIGINT", "interrupted": true}))
	v.Observe("run_finished", ev(c, map[string]any{"status": "interrupted"}))
	v.Close()
	out := stripANSI(scr.text())
	if !strings.Contains(out, "✗ check · failed after 1.0s") || !strings.Contains(out, "✗ freeze · interrupted after 6.0s") {
		t.Errorf("final screen:\n%s", out)
	}
}
