// Package progress draws the live view of a running playbook on a terminal:
// a compact block, redrawn in place (at most about five times a second, and
// when something happens), that shows the run (playbook, run id, elapsed
// time, an estimate of the time left from earlier runs), the steps running
// now (parallel for_each items grouped under their group) and, for a step
// that waits, what it waits for with its rate and estimate. Every step that
// ends prints one plain line above the block, so the terminal's scrollback
// keeps the history; log lines written to the View print there too.
//
// A View consumes the engine's observer events (Observe) and log output
// (Write); Close prints the final state and leaves it on the screen.
package progress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flowdba/flow/event"
)

// Options configure a View.
type Options struct {
	// Color turns ANSI colours on (the caller leaves it off when NO_COLOR
	// is set). Cursor movements are used either way.
	Color bool
	// Size returns the terminal's width and height in cells; nil, or a
	// result of zero, means 80×24.
	Size func() (width, height int)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Interval is the redraw period (default 200ms: at most five redraws a
	// second). A negative Interval starts no ticker: only Redraw and Close
	// draw.
	Interval time.Duration
}

// DefaultInterval is the redraw period: at most five redraws a second.
const DefaultInterval = 200 * time.Millisecond

// View is a live progress view. Its methods are safe for concurrent use.
// While the run goes on, Observe and Write only queue: the redraw loop
// writes to the terminal. The run's end (run_finished), and lines written
// after it, are written at once.
type View struct {
	out io.Writer
	opt Options

	mu       sync.Mutex // the state below
	playbook string
	runID    string
	started  time.Time
	status   string // the run's final status, once run_finished came
	ended    time.Time
	steps    map[string]*step        // running steps by key
	items    map[string]map[int]bool // for_each group key → the items that started
	done     map[string]bool         // steps that ended
	seq      int
	pending  []string // lines to print above the block
	partial  []byte   // a log line without its newline yet
	history  *History
	histNote string // why there is no estimate ("" while loading)
	closed   bool   // the final state is drawn: lines written later print as they come

	drawMu   sync.Mutex // drawing: the lines on screen
	drawn    int        // lines of the block on the screen
	last     string     // the block as last drawn
	lastDraw time.Time  // wall clock of the last draw

	kick       chan struct{}
	stop       chan struct{}
	loop       sync.WaitGroup // the redraw loop
	finishOnce sync.Once
	finishErr  error
	cancel     context.CancelFunc // stops the history loading
	hist       sync.WaitGroup     // the history loading
	closeMu    sync.Mutex
}

// step is a running step.
type step struct {
	key, name, target string
	seq               int
	item              string // "#N " labels of the for_each items it runs in
	started           time.Time
	prog              map[string]any // the latest step_progress
	progAt            time.Time
}

// New starts a view drawing on out (a terminal).
func New(out io.Writer, opt Options) *View {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Interval == 0 {
		opt.Interval = DefaultInterval
	}
	v := &View{out: out, opt: opt, steps: map[string]*step{}, items: map[string]map[int]bool{},
		done: map[string]bool{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if opt.Interval > 0 {
		v.loop.Add(1)
		go v.redrawLoop()
	}
	return v
}

// redrawLoop redraws on the ticker, and on events when the last draw is at
// least an interval old.
func (v *View) redrawLoop() {
	defer v.loop.Done()
	t := time.NewTicker(v.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.Redraw()
		case <-v.kick:
			v.drawMu.Lock()
			due := time.Since(v.lastDraw) >= v.opt.Interval
			v.drawMu.Unlock()
			if due {
				v.Redraw()
			}
		}
	}
}

func (v *View) poke() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// LoadHistory loads the earlier runs for the run's estimate in the
// background; the header says "no earlier runs" when there are none. Close
// cancels the loading and waits for it.
func (v *View) LoadHistory(load func(ctx context.Context) (*History, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	v.closeMu.Lock()
	v.cancel = cancel
	v.closeMu.Unlock()
	v.hist.Add(1)
	go func() {
		defer v.hist.Done()
		h, err := load(ctx)
		v.SetHistory(h, err)
	}()
}

// SetHistory gives the view the earlier runs it estimates the run's
// remaining time from (err: why there are none).
func (v *View) SetHistory(h *History, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case err != nil:
		v.history, v.histNote = nil, "no ETA: "+firstLine(err.Error())
	case h.Runs() == 0:
		v.history, v.histNote = nil, "no earlier runs"
	default:
		v.history = h
	}
	v.poke()
}

// Observe takes an engine event (engine.Options.Observer). The run's end
// (run_finished) draws the final state at once, so what the command prints
// after the run goes below it.
func (v *View) Observe(ev string, f map[string]any) {
	v.observe(ev, f)
	if ev == event.RunFinished {
		v.finish()
	}
}

func (v *View) observe(ev string, f map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	at, ok := f["time"].(time.Time)
	if !ok {
		at = v.opt.Now()
	}
	key := text(f, "key")
	switch ev {
	case event.RunStarted:
		v.playbook, v.runID, v.started = text(f, "playbook"), text(f, "run_id"), at
	case event.RunFinished:
		v.status, v.ended = text(f, "status"), at
	case event.StepStarted:
		v.seq++
		s := &step{key: key, name: stepName(f), seq: v.seq, item: itemLabel(key), started: at}
		v.steps[key] = s
		v.noteItems(key)
	case event.Statement:
		if s := v.steps[key]; s != nil && s.target == "" {
			s.target = text(f, "target")
		}
	case event.StepProgress:
		if s := v.steps[key]; s != nil {
			s.prog, s.progAt = f, at
			if t := text(f, "target"); t != "" {
				s.target = t
			}
		}
	case event.StepFinished, event.StepFailed, event.StepRefused, event.StepSkipped, event.StepRestored:
		v.ended1(ev, key, f)
	case event.RescueStarted:
		v.pending = append(v.pending, v.styled(yellow, "↺ ")+itemLabel(key)+stepName(f)+v.styled(dim, " · failed: running its rescue section"))
	}
	v.poke()
}

// ended1 records a step's end and queues its line.
func (v *View) ended1(ev, key string, f map[string]any) {
	s := v.steps[key]
	delete(v.steps, key)
	v.done[key] = true
	name := stepName(f)
	if s != nil && s.name != "" {
		name = s.name
	}
	label := itemLabel(key) + name
	dur := Duration(time.Duration(number(f["duration_ms"])) * time.Millisecond)
	var b strings.Builder
	switch ev {
	case event.StepFinished:
		b.WriteString(v.styled(green, "✓ ") + label)
		if s != nil && s.target != "" {
			b.WriteString(v.styled(dim, " · "+s.target))
		}
		if text(f, "type") == "log" {
			if out, ok := f["output"].(map[string]any); ok {
				if msg := text(out, "msg"); msg != "" {
					b.WriteString(" · " + msg)
				}
			}
		}
		b.WriteString(v.styled(dim, " · "+dur))
	case event.StepFailed:
		how := " · failed after "
		if intr, _ := f["interrupted"].(bool); intr {
			how = " · interrupted after "
		}
		b.WriteString(v.styled(red, "✗ ") + label + v.styled(red, how+dur))
	case event.StepRefused:
		b.WriteString(v.styled(red, "⊘ ") + label + v.styled(red, " · refused: ") + indentRest(text(f, "error")))
	case event.StepSkipped:
		b.WriteString(v.styled(yellow, "↷ ") + label + v.styled(dim, " · skipped: "+indentRest(text(f, "reason"))))
	case event.StepRestored:
		b.WriteString(v.styled(green, "✓ ") + label + v.styled(dim, " · done in an earlier attempt"))
	}
	v.pending = append(v.pending, b.String())
}

// noteItems records the for_each items a step key runs in.
func (v *View) noteItems(key string) {
	segs := strings.Split(key, " > ")
	for i := range segs {
		base, n, ok := splitItem(strings.Join(segs[:i+1], " > "))
		if !ok {
			continue
		}
		if v.items[base] == nil {
			v.items[base] = map[int]bool{}
		}
		v.items[base][n] = true
	}
}

// Write takes log output: each complete line prints above the block.
func (v *View) Write(p []byte) (int, error) {
	v.mu.Lock()
	v.partial = append(v.partial, p...)
	for {
		i := bytes.IndexByte(v.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(v.partial[:i]), "\r")
		v.partial = v.partial[i+1:]
		switch {
		case strings.Contains(line, "[ERROR]") || strings.Contains(line, "[FATAL]") || strings.Contains(line, "[PANIC]"):
			line = v.styled(red, line)
		case strings.Contains(line, "[ WARN]"):
			line = v.styled(yellow, line)
		}
		v.pending = append(v.pending, line)
	}
	if len(v.partial) == 0 {
		v.partial = nil
	}
	closed := v.closed
	v.poke()
	v.mu.Unlock()
	if closed {
		// no block and no redraw loop any more: print now
		if err := v.draw(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Redraw draws now: the lines that ended since the last draw, then the
// block in place of the previous one. The ticker calls it; tests may too.
func (v *View) Redraw() { v.draw(false) }

// Close stops the redraws, prints what is still pending and the final
// state of the run (left on the screen; nothing when the run never
// started), and stops and waits for the history loading. It is safe to
// call more than once; log lines written after it print as they come.
func (v *View) Close() error {
	v.closeMu.Lock()
	if v.cancel != nil {
		v.cancel()
	}
	v.closeMu.Unlock()
	err := v.finish()
	v.hist.Wait()
	return err
}

// finish stops the redraw loop and draws the final state, once.
func (v *View) finish() error {
	v.finishOnce.Do(func() {
		v.mu.Lock()
		v.closed = true
		if len(v.partial) > 0 {
			v.pending = append(v.pending, string(v.partial))
			v.partial = nil
		}
		v.mu.Unlock()
		close(v.stop)
		v.loop.Wait()
		v.finishErr = v.draw(true)
	})
	return v.finishErr
}

// draw writes the pending lines and the block; final leaves the block on
// the screen for good.
func (v *View) draw(final bool) error {
	v.drawMu.Lock()
	defer v.drawMu.Unlock()
	w, h := 80, 24
	if v.opt.Size != nil {
		if cw, ch := v.opt.Size(); cw > 0 && ch > 0 {
			w, h = cw, ch
		}
	}
	v.mu.Lock()
	pending := v.pending
	v.pending = nil
	var block []string
	after := v.closed && !final // the final state is on the screen: only new lines
	if !after {
		block = v.block(v.opt.Now(), w, h, final)
	}
	v.mu.Unlock()
	joined := strings.Join(block, "\n")
	if len(pending) == 0 && (after || joined == v.last && !final) {
		return nil
	}
	var b bytes.Buffer
	switch {
	case v.drawn > 0:
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", v.drawn)
	case !after:
		b.WriteString("\r\x1b[J")
	}
	for _, l := range pending {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, l := range block {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	v.drawn, v.last, v.lastDraw = len(block), joined, time.Now()
	if final {
		v.drawn = 0
	}
	_, err := v.out.Write(b.Bytes())
	return err
}

// block renders the live block (v.mu held).
func (v *View) block(now time.Time, width, height int, final bool) []string {
	w := width - 1 // never the last column: no line wraps, so the count of lines to go back up is right
	if final {
		w = 1 << 20 // the final state stays in the scrollback: nothing is clipped
	}
	if final && v.started.IsZero() {
		return nil // the run never started: it has no state to show
	}
	lines := []string{v.header(now, w, final)}
	// the running steps as a tree: each under its nearest running ancestor
	kids := map[string][]*step{}
	parent := map[*step]string{}
	for _, s := range v.steps {
		p, item := v.displayParent(s.key)
		parent[s] = p
		if p != "" {
			s.item = item
		}
		kids[p] = append(kids[p], s)
	}
	for _, l := range kids {
		sort.Slice(l, func(i, j int) bool {
			ii, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l[i].item, "#"), " "))
			ij, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l[j].item, "#"), " "))
			if parent[l[i]] != "" && ii != ij {
				return ii < ij
			}
			return l[i].seq < l[j].seq
		})
	}
	var body []string
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		for _, s := range kids[p] {
			body = append(body, v.stepLines(s, now, depth, w)...)
			walk(s.key, depth+1)
		}
	}
	walk("", 0)
	if final && len(body) > 0 {
		lines = append(lines, clip("still running when the run ended:", w))
	}
	max := height - 2 // the block must fit on the screen to be redrawn in place
	if max < 4 {
		max = 4
	}
	if !final && len(lines)+len(body) > max {
		cut := len(lines) + len(body) - max + 1
		body = append(body[:len(body)-cut], v.styled(dim, clip(fmt.Sprintf("… and %d more line(s)", cut), w)))
	}
	return append(lines, body...)
}

// header is the run's line: playbook, run id, elapsed, estimate or status.
func (v *View) header(now time.Time, w int, final bool) string {
	name := v.playbook
	if name == "" {
		name = "flow"
	}
	parts := []string{name}
	if v.runID != "" {
		parts = append(parts, "run "+v.runID)
	}
	if v.started.IsZero() {
		parts = append(parts, "starting")
		return v.styled(bold, clip("▶ "+strings.Join(parts, " · "), w))
	}
	end := now
	if !v.ended.IsZero() {
		end = v.ended
	}
	elapsed := Duration(end.Sub(v.started))
	switch {
	case v.status != "" && final:
		word := map[string]string{"success": "success in ", "failed": "failed after ", "refused": "refused after ",
			"interrupted": "interrupted after "}[v.status]
		if word == "" {
			word = v.status + " after "
		}
		parts = append(parts, word+elapsed)
	case final:
		parts = append(parts, "ended after "+elapsed)
	default:
		parts = append(parts, elapsed)
		if e := v.estimate(now); e != "" {
			parts = append(parts, e)
		}
	}
	glyph := "▶ "
	style := bold
	if final {
		glyph = "■ "
		switch v.status {
		case "success":
			style = bold + green
		case "":
		default:
			style = bold + red
		}
	}
	return v.styled(style, clip(glyph+strings.Join(parts, " · "), w))
}

// estimate is the header's ETA from earlier runs.
func (v *View) estimate(now time.Time) string {
	if v.history == nil {
		return v.histNote
	}
	st := State{Done: v.done, Running: make(map[string]time.Duration, len(v.steps))}
	for k, s := range v.steps {
		st.Running[k] = now.Sub(s.started)
	}
	e := v.history.Remaining(st)
	runs := "runs"
	if e.Runs == 1 {
		runs = "run"
	}
	return fmt.Sprintf("ETA ~%s (from %d earlier %s)", eta(e.Remaining), e.Runs, runs)
}

// stepLines are a running step's line and, for a step that waits, what it
// waits for.
func (v *View) stepLines(s *step, now time.Time, depth, w int) []string {
	pad := strings.Repeat("  ", depth)
	left := pad + s.item + "▸ " + s.name
	if s.target != "" {
		left += " · " + s.target
	}
	if n := len(v.items[s.key]); n > 0 {
		running := map[string]bool{}
		for k := range v.steps {
			if rest, ok := strings.CutPrefix(k, s.key+"#"); ok {
				running[strings.SplitN(rest, " ", 2)[0]] = true
			}
		}
		left += fmt.Sprintf(" · items: %d running, %d finished", len(running), n-len(running))
	}
	out := []string{v.row(left, Duration(now.Sub(s.started)), w)}
	if s.prog == nil {
		return out
	}
	p := s.prog
	if wf := text(p, "waits_for"); wf != "" {
		out = append(out, v.styled(cyan, clip(pad+"    ↳ waits for "+wf, w)))
	}
	var parts []string
	done, hasDone := numberOK(p["bytes_done"])
	total, hasTotal := numberOK(p["bytes_total"])
	switch {
	case hasDone && hasTotal && total > 0:
		parts = append(parts, fmt.Sprintf("%s of %s (%.0f%%)", Bytes(done), Bytes(total), 100*done/total))
	case hasDone:
		parts = append(parts, Bytes(done))
	}
	if m, ok := numberOK(p["missing"]); ok {
		parts = append(parts, fmt.Sprintf("%.0f missing", m))
	}
	if r, ok := numberOK(p["rate"]); ok {
		unit := text(p, "rate_unit")
		switch {
		case unit == "B/s":
			parts = append(parts, Bytes(r)+"/s")
		case unit != "":
			parts = append(parts, fmt.Sprintf("%.1f %s", r, unit))
		default:
			parts = append(parts, fmt.Sprintf("%.1f/s", r))
		}
	}
	if e, ok := numberOK(p["eta_s"]); ok && e >= 0 {
		left := time.Duration(e*float64(time.Second)) - now.Sub(s.progAt)
		if left < 0 {
			left = 0
		}
		parts = append(parts, "ETA ~"+eta(left))
	} else if _, ok := p["rate"]; ok {
		parts = append(parts, "no ETA yet")
	}
	if len(parts) > 0 {
		out = append(out, v.styled(cyan, clip(pad+"      "+strings.Join(parts, " · "), w)))
	}
	return out
}

// row is left, then right at the right edge (right wins the room).
func (v *View) row(left, right string, w int) string {
	room := w - utf8.RuneCountInString(right) - 1
	left = clip(left, room)
	gap := w - utf8.RuneCountInString(left) - utf8.RuneCountInString(right)
	if gap < 1 || w >= 1<<20 {
		gap = 2
	}
	return left + strings.Repeat(" ", gap) + v.styled(dim, right)
}

// displayParent is the nearest running step a step runs inside ("" for
// none) and the label of the for_each item it runs in under it.
func (v *View) displayParent(key string) (string, string) {
	segs := strings.Split(key, " > ")
	for i := len(segs) - 1; i >= 1; i-- {
		prefix := strings.Join(segs[:i], " > ")
		base, n, isItem := splitItem(prefix)
		if _, ok := v.steps[base]; ok {
			if isItem {
				return base, "#" + strconv.Itoa(n) + " "
			}
			return base, ""
		}
	}
	return "", ""
}

// splitItem strips a key's last " always"/" rescue" and "#N": the key of
// the step (a for_each group, for "#N") and the item number.
func splitItem(prefix string) (base string, n int, item bool) {
	head, last := "", prefix
	if i := strings.LastIndex(prefix, " > "); i >= 0 {
		head, last = prefix[:i+3], prefix[i+3:]
	}
	last = strings.TrimSuffix(strings.TrimSuffix(last, " always"), " rescue")
	if j := strings.LastIndex(last, "#"); j >= 0 {
		if x, err := strconv.Atoi(last[j+1:]); err == nil {
			return head + last[:j], x, true
		}
	}
	return head + last, 0, false
}

// itemLabel is "#N " for each for_each item a step key runs in ("#1/#0 "
// when nested), "" outside any.
func itemLabel(key string) string {
	var l []string
	for _, seg := range strings.Split(key, " > ") {
		if _, n, ok := splitItem(seg); ok {
			l = append(l, "#"+strconv.Itoa(n))
		}
	}
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "/") + " "
}

// stepName names a step: its name, else its type and position.
func stepName(f map[string]any) string {
	if n := text(f, "name"); n != "" {
		return n
	}
	t := text(f, "type")
	if t == "" {
		t = "step"
	}
	if file := text(f, "pb_file"); file != "" {
		return fmt.Sprintf("%s (%s:%d)", t, file, int(number(f["line"])))
	}
	return t
}

// indentRest indents the lines after the first of a multi-line message.
func indentRest(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// ANSI styles.
const (
	bold   = "\x1b[1m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	reset  = "\x1b[0m"
)

// styled wraps s in an ANSI style when colours are on.
func (v *View) styled(style, s string) string {
	if !v.opt.Color || style == "" {
		return s
	}
	return style + s + reset
}
