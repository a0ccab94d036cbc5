// Package journal keeps the durable record of a flow run: one append-only
// file per run, STATE/runs/RUN-ID/journal.jsonl, one JSON record per line
// (seq, time, event, fields), each record chained to the one before it by
// a SHA-256 hash so that Verify can prove the file was not edited.
//
// The first record (run_header) says who ran what, where and with which
// parameters; the engine's events follow (run_started, step_started,
// statement, step_finished, …, run_finished). Durable records are written
// and fsynced before Record returns, so a record of a state-changing step
// is on disk before the change begins and after it ends. List, Load and
// Verify read journals back for `flow runs`, `flow status` and `flow audit`.
package journal

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowdba/flow/event"
)

// File names inside a run's folder.
const (
	// JournalFile is the journal's file name.
	JournalFile = "journal.jsonl"
	// SealFile records the record count and last hash when a journal is
	// closed, so records removed from the end are detected too.
	SealFile = "seal.json"
)

// Header is the first record of a run: what ran, where, by whom, with which
// parameters (secrets masked by the caller).
type Header struct {
	RunID string `json:"run_id"`
	// Playbook is the playbook's absolute path; PlaybookFile the path as
	// given on the command line.
	Playbook     string `json:"playbook"`
	PlaybookFile string `json:"playbook_file,omitempty"`
	PlaybookName string `json:"playbook_name,omitempty"`
	// PlaybookSHA256 is the SHA-256 of the playbook file's bytes, hex.
	PlaybookSHA256 string `json:"playbook_sha256"`
	// Mode is run or dry-run.
	Mode string `json:"mode"`
	// Params are the --var settings, secrets masked.
	Params map[string]string `json:"params"`
	// Config is the config file's path ("" for none).
	Config string `json:"config,omitempty"`
	// Operator is the user who ran flow; Host the control host.
	Operator string `json:"operator"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	// PIDStart identifies the process beyond its pid (its start time in
	// clock ticks since boot, from /proc), so a reused pid is not taken for
	// a live run. Create fills it in.
	PIDStart string    `json:"pid_start,omitempty"`
	Started  time.Time `json:"started"`
	Version  string    `json:"flow_version"`
}

// Journal is an open run journal. It implements the engine's Journal
// interface; it is safe for concurrent use.
type Journal struct {
	mu     sync.Mutex
	f      *os.File
	dir    string
	seq    int64
	prev   string
	closed bool
	err    error // the first write error: every later Record fails with it
}

// syncFile flushes a journal file to stable storage (a variable so tests
// can observe and fail it).
var syncFile = (*os.File).Sync

// NewRunID returns a sortable, unique run id: the UTC time to the second
// and four random hex digits, e.g. 20261123T204501Z-3fa9.
func NewRunID(now time.Time) string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; keep the id unique anyway
		b[0], b[1] = byte(now.Nanosecond()>>8), byte(now.Nanosecond())
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// RunDir is the folder of a run's journal.
func RunDir(stateDir, runID string) string { return filepath.Join(stateDir, "runs", runID) }

// Path is the path of a run's journal file.
func Path(stateDir, runID string) string {
	return filepath.Join(RunDir(stateDir, runID), JournalFile)
}

// Create starts the journal of a new run and writes its header, durably.
// It fails if a journal for runID already exists (os.ErrExist).
func Create(stateDir, runID string, h Header) (*Journal, error) {
	if err := validRunID(runID); err != nil {
		return nil, err
	}
	runs := filepath.Join(stateDir, "runs")
	if err := os.MkdirAll(runs, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %v", err)
	}
	dir := RunDir(stateDir, runID)
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("journal: run %s already exists in %s: %w", runID, stateDir, os.ErrExist)
		}
		return nil, fmt.Errorf("journal: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("journal: %v", err)
	}
	j := &Journal{f: f, dir: dir}
	h.RunID = runID
	if h.PID == 0 {
		h.PID = os.Getpid()
	}
	if h.PIDStart == "" && h.PID == os.Getpid() {
		h.PIDStart = processStart(h.PID)
	}
	if h.Started.IsZero() {
		h.Started = time.Now()
	}
	h.Started = h.Started.UTC()
	if h.Params == nil {
		h.Params = map[string]string{}
	}
	fields, err := structFields(h)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: header: %v", err)
	}
	if err := j.Record(event.Header, fields, true); err != nil {
		f.Close()
		return nil, err
	}
	// the new folder and file must survive a crash too
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %v", err)
	}
	if err := syncDir(runs); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %v", err)
	}
	return j, nil
}

// Dir is the run's folder.
func (j *Journal) Dir() string { return j.dir }

// Record appends one record. A durable record is fsynced before Record
// returns. After a write error every later Record fails with that error
// (the engine then stops before the next step).
func (j *Journal) Record(event string, fields map[string]any, durable bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if j.closed {
		return fmt.Errorf("journal %s: record %q after Close", j.dir, event)
	}
	rec := Record{Seq: j.seq + 1, Time: time.Now().UTC().Format(time.RFC3339Nano), Event: event,
		Fields: normalize(fields), Prev: j.prev}
	line, err := rec.seal()
	if err != nil {
		return fmt.Errorf("journal: record %q: %v", event, err)
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		j.err = fmt.Errorf("journal %s: %v", j.f.Name(), err)
		return j.err
	}
	if durable {
		if err := syncFile(j.f); err != nil {
			j.err = fmt.Errorf("journal %s: fsync: %v", j.f.Name(), err)
			return j.err
		}
	}
	j.seq, j.prev = rec.Seq, rec.Hash
	return nil
}

// Close fsyncs and closes the journal and writes its seal (the record count
// and the last hash), so records removed from the end are detected.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	serr := j.f.Sync()
	cerr := j.f.Close()
	if j.err != nil {
		return j.err
	}
	if serr != nil {
		return fmt.Errorf("journal %s: fsync: %v", j.f.Name(), serr)
	}
	if cerr != nil {
		return fmt.Errorf("journal %s: %v", j.f.Name(), cerr)
	}
	b, err := json.Marshal(seal{Records: j.seq, Head: j.prev})
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(j.dir, SealFile), append(b, '\n'))
}

// seal is the content of SealFile.
type seal struct {
	Records int64  `json:"records"`
	Head    string `json:"head"`
}

// validRunID refuses ids that could escape the runs folder.
func validRunID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id {
		return fmt.Errorf("journal: %q is not a valid run id", id)
	}
	return nil
}

// writeFileSync writes a file atomically (temporary file, fsync, rename,
// fsync of the folder).
func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %v", dir, err)
	}
	return nil
}
