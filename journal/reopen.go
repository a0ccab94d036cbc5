package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Records returns a run's records after verifying the chain. A torn last
// line (flow killed while writing it: the record was never complete, so
// nothing relied on it) is left out, as Reopen cuts it off; anything else
// that does not verify is an error.
func Records(stateDir, runID string) ([]Record, error) {
	if _, err := verify(stateDir, runID, true); err != nil {
		return nil, err
	}
	return readRecords(Path(stateDir, runID))
}

// Reopen opens an existing run's journal to append a further attempt. The
// chain is verified first; a torn last line (flow killed while writing it:
// the record was never complete, so nothing relied on it) is cut off and
// its length returned. The seal is removed: the journal is open again and
// is sealed anew by Close.
func Reopen(stateDir, runID string) (j *Journal, torn int, err error) {
	if err := validRunID(runID); err != nil {
		return nil, 0, err
	}
	path := Path(stateDir, runID)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %v", err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		torn = len(data) - (i + 1)
		if err := os.Truncate(path, int64(i+1)); err != nil {
			return nil, 0, fmt.Errorf("journal: cutting the torn last line of %s: %v", path, err)
		}
	}
	if err := os.Remove(filepath.Join(RunDir(stateDir, runID), SealFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, torn, fmt.Errorf("journal: %v", err)
	}
	if _, err := Verify(stateDir, runID); err != nil {
		return nil, torn, fmt.Errorf("journal: the run's journal does not verify, so flow will not add to it: %w", err)
	}
	recs, err := readRecords(path)
	if err != nil {
		return nil, torn, err
	}
	if len(recs) == 0 {
		return nil, torn, fmt.Errorf("journal: %s is empty", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, torn, fmt.Errorf("journal: %v", err)
	}
	last := recs[len(recs)-1]
	return &Journal{f: f, dir: RunDir(stateDir, runID), seq: last.Seq, prev: last.Hash}, torn, nil
}

// AttemptFields are the fields of a run_resumed record for this process:
// who resumes, where, and which process (pid and its start, so `flow runs`
// can tell a live attempt from a dead one).
func AttemptFields(operator, host, version string) map[string]any {
	pid := os.Getpid()
	return map[string]any{"pid": pid, "pid_start": processStart(pid), "host": host, "operator": operator,
		"flow_version": version}
}
