package journal

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdba/flow/event"
)

// header returns a header for a run of this process.
func header() Header {
	return Header{Playbook: "/pb/flashback-start.yaml", PlaybookFile: "flashback-start.yaml", PlaybookName: "flashback-start",
		PlaybookSHA256: strings.Repeat("ab", 32), Mode: "run", Params: map[string]string{"source_pass": "******", "disk": "45"},
		Config: "flashback.ini", Operator: "dba", Host: hostname(), Version: "test"}
}

// step returns the fields the engine records for a step event.
func step(line int, name string, mutates bool, extra ...any) map[string]any {
	f := map[string]any{"step": "", "name": name, "line": line, "type": "sql", "mutates": mutates,
		"pb_file": "flashback-start.yaml", "pb_line": line, "id": int64(1)}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i].(string)] = extra[i+1]
	}
	return f
}

// writeRun writes a journal of a run that executes two steps and ends with
// status (no end at all when status is "").
func writeRun(t *testing.T, dir, id string, h Header, status string) {
	t.Helper()
	if at, err := time.Parse("20060102T150405Z", id[:16]); err == nil {
		h.Started = at // as the CLI does: the id is the start time
	}
	j, err := Create(dir, id, h)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(event string, f map[string]any, durable bool) {
		t.Helper()
		if err := j.Record(event, f, durable); err != nil {
			t.Fatal(err)
		}
	}
	rec("run_started", map[string]any{"run_id": id, "playbook": h.PlaybookName, "hash": h.PlaybookSHA256, "mode": h.Mode}, true)
	rec("step_started", step(10, "Step 01 read", false), false)
	rec("statement", step(10, "Step 01 read", false, "target", "router 127.0.2.100:16310", "text", "SELECT @@gtid_executed"), false)
	rec("step_finished", step(10, "Step 01 read", false, "duration_ms", int64(12)), false)
	rec("step_started", step(20, "Step 02 detach", true), true)
	rec("statement", step(20, "Step 02 detach", true, "target", "node 127.0.2.1:16315", "text", "STOP REPLICA"), true)
	if status == "" {
		return // the process "died": no end, journal left open
	}
	if status == StatusSuccess {
		rec("step_finished", step(20, "Step 02 detach", true, "duration_ms", int64(30)), true)
	} else {
		rec("step_failed", step(20, "Step 02 detach", true, "duration_ms", int64(30), "error", "boom", "interrupted", status == StatusInterrupted), true)
	}
	rec(event.RunFinished, map[string]any{"run_id": id, "status": status}, true)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, dir, id string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(Path(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func writeLines(t *testing.T, dir, id string, lines [][]byte) {
	t.Helper()
	var b []byte
	for _, l := range lines {
		b = append(b, bytes.TrimSuffix(l, []byte("\n"))...)
		b = append(b, '\n')
	}
	if err := os.WriteFile(Path(dir, id), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestNewRunID(t *testing.T) {
	at := time.Date(2026, 11, 23, 20, 45, 1, 0, time.FixedZone("CST", 8*3600))
	id := NewRunID(at)
	if !regexp.MustCompile(`^20261123T124501Z-[0-9a-f]{4}$`).MatchString(id) {
		t.Fatalf("NewRunID = %q, want 20261123T124501Z-xxxx (UTC)", id)
	}
	if later := NewRunID(at.Add(time.Second)); later <= id[:16]+"-ffff" {
		t.Errorf("ids do not sort by time: %q then %q", id, later)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x"} {
		if _, err := Create(t.TempDir(), bad, header()); err == nil {
			t.Errorf("Create accepted run id %q", bad)
		}
	}
}

func TestRecordLoadVerify(t *testing.T) {
	dir := t.TempDir()
	id := "20261123T204501Z-0001"
	writeRun(t, dir, id, header(), StatusFailed)

	ch, err := Verify(dir, id)
	if err != nil {
		t.Fatalf("Verify of an untouched journal: %v", err)
	}
	if ch.Records != 9 || !ch.Sealed || len(ch.Head) != 64 {
		t.Errorf("Verify = %+v, want 9 records, sealed, a 64-hex head", ch)
	}
	run, err := Load(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != StatusFailed || run.Records != 9 || run.Header.Operator != "dba" || run.Header.PID != os.Getpid() ||
		run.Header.Params["disk"] != "45" || run.Header.PlaybookSHA256 != strings.Repeat("ab", 32) {
		t.Errorf("Load summary/header = %+v / %+v", run.Summary, run.Header)
	}
	if len(run.Steps) != 2 {
		t.Fatalf("Load: %d steps, want 2: %+v", len(run.Steps), run.Steps)
	}
	s1, s2 := run.Steps[0], run.Steps[1]
	if s1.State != StepDone || s1.Duration != 12*time.Millisecond || s1.Line != 10 || len(s1.Statements) != 1 ||
		s1.Statements[0].Text != "SELECT @@gtid_executed" || s1.Statements[0].Target != "router 127.0.2.100:16310" {
		t.Errorf("step 1 = %+v", s1)
	}
	if s2.State != StepFailed || s2.Error != "boom" || !s2.Mutates || len(s2.Statements) != 1 || s2.Statements[0].Text != "STOP REPLICA" || s2.Interrupted {
		t.Errorf("step 2 = %+v", s2)
	}
	// a step a signal ended reads as interrupted
	writeRun(t, dir, "20261123T204502Z-0002", header(), StatusInterrupted)
	if ir, err := Load(dir, "20261123T204502Z-0002"); err != nil || len(ir.Steps) != 2 || !ir.Steps[1].Interrupted {
		t.Errorf("an interrupted run's cut step: %+v, %v", ir, err)
	}
	if len(run.Failed()) != 1 || len(run.Done()) != 1 || len(run.Current()) != 0 {
		t.Errorf("Failed/Done/Current = %d/%d/%d", len(run.Failed()), len(run.Done()), len(run.Current()))
	}
	if _, err := Create(dir, id, header()); !errors.Is(err, os.ErrExist) {
		t.Errorf("a second Create of the same run: %v, want os.ErrExist", err)
	}
	if err := (&Journal{closed: true}).Record("x", nil, false); err == nil {
		t.Error("Record after Close succeeded")
	}
}

// TestDurableRecordsAreSynced: a durable record is fsynced before Record
// returns, a plain one is not; every record is in the file (not in a
// buffer) when Record returns; a failed fsync fails this and every later
// record.
func TestDurableRecordsAreSynced(t *testing.T) {
	var syncs int
	fail := false
	syncFile = func(f *os.File) error {
		syncs++
		if fail {
			return errors.New("injected fsync failure")
		}
		return f.Sync()
	}
	t.Cleanup(func() { syncFile = (*os.File).Sync })
	dir := t.TempDir()
	id := "20261123T204501Z-0002"
	j, err := Create(dir, id, header())
	if err != nil {
		t.Fatal(err)
	}
	if syncs != 1 {
		t.Errorf("Create: %d fsyncs of the journal, want 1 (the header)", syncs)
	}
	if err := j.Record("step_started", step(10, "read", false), false); err != nil {
		t.Fatal(err)
	}
	if syncs != 1 {
		t.Errorf("a plain record was fsynced (%d syncs)", syncs)
	}
	if err := j.Record("step_started", step(20, "change", true), true); err != nil {
		t.Fatal(err)
	}
	if syncs != 2 {
		t.Errorf("a durable record: %d fsyncs in all, want 2", syncs)
	}
	if n := len(readLines(t, dir, id)); n != 3 {
		t.Errorf("after three records the file holds %d lines", n)
	}
	fail = true
	if err := j.Record("step_finished", step(20, "change", true), true); err == nil || !strings.Contains(err.Error(), "injected fsync failure") {
		t.Fatalf("Record with a failing fsync: %v", err)
	}
	fail = false
	if err := j.Record("log", nil, false); err == nil {
		t.Error("a record after a failed write succeeded: the error must stick")
	}
	if err := j.Close(); err == nil {
		t.Error("Close after a failed write reported no error")
	}
}

// TestVerifyDetectsTampering edits a sealed journal in every way a person
// with a text editor could and expects Verify to name the first bad line.
func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(lines [][]byte) [][]byte
		line   int
		reason string
	}{
		{"edited statement", func(l [][]byte) [][]byte {
			l[6] = bytes.Replace(l[6], []byte("STOP REPLICA"), []byte("START REPLICA"), 1)
			return l
		}, 7, "edited"},
		{"edited and rehashed line", func(l [][]byte) [][]byte {
			rec, _ := decodeRecord(bytes.TrimSuffix(l[3], []byte("\n")))
			rec.Fields["duration_ms"] = 1
			rec.Fields = normalize(rec.Fields)
			b, _ := rec.seal()
			l[3] = b
			return l
		}, 5, "line 4 was edited"},
		{"removed line", func(l [][]byte) [][]byte { return append(l[:3:3], l[4:]...) }, 4, "removed"},
		{"reordered lines", func(l [][]byte) [][]byte { l[3], l[4] = l[4], l[3]; return l }, 4, "reordered"},
		{"removed header", func(l [][]byte) [][]byte { return l[1:] }, 1, "record number 2"},
		{"removed last line", func(l [][]byte) [][]byte { return l[:len(l)-1] }, 9, "removed from the end"},
		{"appended line", func(l [][]byte) [][]byte {
			rec, _ := decodeRecord(bytes.TrimSuffix(l[len(l)-1], []byte("\n")))
			next := Record{Seq: rec.Seq + 1, Time: rec.Time, Event: "step_finished", Fields: map[string]any{}, Prev: rec.Hash}
			b, _ := next.seal()
			return append(l, b)
		}, 10, "after the journal was closed"},
		{"reformatted line", func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"seq":3,`), []byte(`"seq": 3,`), 1)
			return l
		}, 3, "not in the form flow writes"},
		{"garbage line", func(l [][]byte) [][]byte { l[7] = []byte("not json"); return l }, 8, "not a journal record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			id := "20261123T204501Z-0003"
			writeRun(t, dir, id, header(), StatusSuccess)
			writeLines(t, dir, id, c.edit(readLines(t, dir, id)))
			_, err := Verify(dir, id)
			var te *TamperError
			if !errors.As(err, &te) {
				t.Fatalf("Verify: %v, want a TamperError", err)
			}
			if te.Line != c.line || !strings.Contains(te.Reason, c.reason) {
				t.Errorf("Verify: %v; want line %d and %q", err, c.line, c.reason)
			}
		})
	}
}

// TestVerifyUnsealedAndTorn: an open journal verifies without a seal; a
// torn last line (flow killed while writing) fails Verify but not Load.
func TestVerifyUnsealedAndTorn(t *testing.T) {
	dir := t.TempDir()
	id := "20261123T204501Z-0004"
	writeRun(t, dir, id, header(), "")
	ch, err := Verify(dir, id)
	if err != nil || ch.Sealed || ch.Records != 7 {
		t.Fatalf("Verify of an open journal = %+v, %v; want 7 records, not sealed", ch, err)
	}
	f, err := os.OpenFile(Path(dir, id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":8,"time":"2026-`)
	f.Close()
	if _, err := Verify(dir, id); err == nil || !strings.Contains(err.Error(), "line 8: the last line has no newline") {
		t.Errorf("Verify of a torn journal: %v", err)
	}
	run, err := Load(dir, id)
	if err != nil || run.Records != 7 {
		t.Errorf("Load of a torn journal: %v, %+v", err, run)
	}
	// what resume reads: the complete records, the torn one left out
	recs, err := Records(dir, id)
	if err != nil || len(recs) != 7 || recs[6].Seq != 7 {
		t.Errorf("Records of a torn journal: %d record(s), %v; want the 7 complete ones", len(recs), err)
	}
	// a torn line is only ever the last one: an edit before it still fails
	data, err := os.ReadFile(Path(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(dir, id), bytes.Replace(data, []byte(`"seq":3,`), []byte(`"seq":33,`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Records(dir, id); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Records of an edited, torn journal: %v; want line 3 refused", err)
	}
}

// TestFieldsRoundTrip: whatever the engine passes, the written line is the
// canonical form Verify recomputes.
func TestFieldsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id := "20261123T204501Z-0005"
	j, err := Create(dir, id, header())
	if err != nil {
		t.Fatal(err)
	}
	odd := map[string]any{
		"nan": math.NaN(), "big": int64(math.MaxInt64), "float": 1e21, "html": "<a & b>", "bad_utf8": "x\xffy",
		"nested": map[string]any{"k\xfe": []any{1, "two", nil}}, "dur": 1500 * time.Millisecond, "ch": make(chan int),
		"newline": "SELECT 1;\nSELECT 2", "u2028": "a\u2028b",
	}
	if err := j.Record("statement", odd, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Record("nil", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, id); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	line := string(readLines(t, dir, id)[1])
	for _, want := range []string{`"big":9223372036854775807`, `"html":"<a & b>"`, `"nan":"NaN"`, `"dur":1500000000`} {
		if !strings.Contains(line, want) {
			t.Errorf("record %s lacks %s", line, want)
		}
	}
}

// TestConcurrentRecords: parallel workers record at once; the chain holds.
func TestConcurrentRecords(t *testing.T) {
	dir := t.TempDir()
	id := "20261123T204501Z-0006"
	j, err := Create(dir, id, header())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := j.Record("statement", map[string]any{"id": w, "i": i}, i%5 == 0); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ch, err := Verify(dir, id)
	if err != nil || ch.Records != 201 {
		t.Fatalf("Verify = %+v, %v; want 201 records", ch, err)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.ProcessState.Pid()
}

func TestListStatuses(t *testing.T) {
	dir := t.TempDir()
	if runs, err := List(dir); err != nil || len(runs) != 0 {
		t.Fatalf("List of an empty state dir = %v, %v", runs, err)
	}
	live := header()
	dead := header()
	dead.PID = deadPID(t)
	reused := header()
	reused.PID, reused.PIDStart = os.Getpid(), "1" // this pid, but not the process that wrote the journal
	remote := header()
	remote.Host = "another-host.invalid"
	remote.PID = dead.PID

	writeRun(t, dir, "20261123T000001Z-0001", live, StatusSuccess)
	writeRun(t, dir, "20261123T000002Z-0002", live, StatusFailed)
	writeRun(t, dir, "20261123T000003Z-0003", live, "")   // this process: still running
	writeRun(t, dir, "20261123T000004Z-0004", dead, "")   // gone without an end
	writeRun(t, dir, "20261123T000005Z-0005", reused, "") // pid reused by another process
	writeRun(t, dir, "20261123T000006Z-0006", remote, "") // started elsewhere
	writeRun(t, dir, "20261123T000007Z-0007", live, StatusInterrupted)
	// the CLI's final record overrides the engine's status (refusal, exit code)
	live.Started = time.Date(2026, 11, 23, 0, 0, 8, 0, time.UTC)
	j, err := Create(dir, "20261123T000008Z-0008", live)
	if err != nil {
		t.Fatal(err)
	}
	j.Record(event.RunFinished, map[string]any{"status": "failed", "error": `x.yaml:3:5: refused by guard "false"`}, true)
	j.Record(event.RunExit, map[string]any{"status": StatusRefused, "exit_code": 3}, true)
	j.Close()
	os.MkdirAll(RunDir(dir, "20261123T000009Z-0009"), 0o750)
	os.WriteFile(Path(dir, "20261123T000009Z-0009"), []byte("garbage\nmore garbage\n"), 0o640)
	os.MkdirAll(RunDir(dir, "not-a-run"), 0o750) // no journal: not listed

	runs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{StatusSuccess, StatusFailed, StatusRunning, StatusInterrupted, StatusInterrupted, StatusUnknown,
		StatusInterrupted, StatusRefused, StatusUnreadable}
	if len(runs) != len(want) {
		t.Fatalf("List: %d runs, want %d: %+v", len(runs), len(want), runs)
	}
	for i, r := range runs {
		if r.Status != want[i] {
			t.Errorf("run %s: status %q, want %q", r.RunID, r.Status, want[i])
		}
	}
	if runs[7].ExitCode != 3 || runs[0].Playbook != "flashback-start.yaml" || runs[0].Mode != "run" || runs[0].Duration() <= 0 {
		t.Errorf("summaries: %+v", runs)
	}
	if got := runs[3]; got.Ended.IsZero() || got.Duration() <= 0 {
		t.Errorf("an interrupted run has no end time: %+v", got)
	}
	run, err := Load(dir, "20261123T000004Z-0004")
	if err != nil {
		t.Fatal(err)
	}
	if cur := run.Current(); len(cur) != 1 || cur[0].Name != "Step 02 detach" || cur[0].Statements[0].Text != "STOP REPLICA" {
		t.Errorf("the interrupted run's open step = %+v", cur)
	}
	run, _ = Load(dir, "20261123T000008Z-0008")
	if run.Error == "" {
		t.Errorf("the refused run has no error: %+v", run.Summary)
	}

	for ref, want := range map[string]string{"last": "20261123T000009Z-0009", "20261123T000003": "20261123T000003Z-0003",
		"20261123T000003Z-0003": "20261123T000003Z-0003"} {
		if got, err := Resolve(dir, ref); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for ref, want := range map[string]string{"2026": "matches 9 runs", "nope": "no run"} {
		if _, err := Resolve(dir, ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve(%q): %v, want %q", ref, err, want)
		}
	}
	if _, err := Resolve(t.TempDir(), "last"); err == nil {
		t.Error("Resolve in an empty state dir succeeded")
	}
}

// BenchmarkRecord measures one record of a statement, plain and durable
// (write + fsync).
func BenchmarkRecord(b *testing.B) {
	for _, durable := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "durable"}[durable], func(b *testing.B) {
			j, err := Create(b.TempDir(), "20261123T204501Z-be00", header())
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			f := step(20, "Step 02 detach", true, "target", "node 127.0.2.1:16315", "text", "STOP REPLICA FOR CHANNEL 'dr'")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := j.Record("statement", f, durable); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures verifying a journal of 1000 records.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	j, err := Create(dir, "20261123T204501Z-be01", header())
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 999; i++ {
		j.Record("statement", step(20, "Step 02 detach", true, "text", "SELECT 1"), false)
	}
	j.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(dir, "20261123T204501Z-be01"); err != nil {
			b.Fatal(err)
		}
	}
}
