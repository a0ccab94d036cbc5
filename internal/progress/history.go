package progress

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/flowdba/flow/event"
	"github.com/flowdba/flow/journal"
)

// HistoryLimits bound LoadHistory: the newest MaxRuns successful runs are
// used, and at most MaxScanned journals are read to find them.
const (
	MaxRuns    = 10
	MaxScanned = 50
)

// LoadHistory reads, newest first, the journals under stateDir of earlier
// runs of the playbook named playbook that ran in mode run (not dry runs),
// in one attempt (a resumed run's durations cover only part of it), and
// succeeded; exclude is the current run's id. A journal that cannot be read
// or fails its chain check is passed over. ctx stops the reading.
func LoadHistory(ctx context.Context, stateDir, playbook, exclude string) (*History, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return NewHistory(nil), nil
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() && e.Name() != exclude {
			ids = append(ids, e.Name())
		}
	}
	// run ids begin with their UTC start time: newest first
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var past []PastRun
	scanned := 0
	for _, id := range ids {
		if len(past) == MaxRuns || scanned == MaxScanned {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		scanned++
		recs, err := journal.Records(stateDir, id)
		if err != nil {
			continue
		}
		if r, ok := pastRun(id, recs, playbook); ok {
			past = append(past, r)
		}
	}
	return NewHistory(past), nil
}

// pastRun turns a journal's records into a PastRun when it is a successful
// single-attempt run of the playbook.
func pastRun(id string, recs []journal.Record, playbook string) (PastRun, bool) {
	if len(recs) == 0 || recs[0].Event != event.Header {
		return PastRun{}, false
	}
	h := recs[0].Fields
	if name, _ := h["playbook_name"].(string); name != playbook {
		return PastRun{}, false
	}
	if mode, _ := h["mode"].(string); mode != "run" {
		return PastRun{}, false
	}
	r := PastRun{ID: id, Steps: map[string]time.Duration{}}
	status := ""
	for _, rec := range recs[1:] {
		switch rec.Event {
		case event.RunResumed:
			return PastRun{}, false
		case event.RunFinished, event.RunExit:
			status, _ = rec.Fields["status"].(string)
		case event.StepFinished:
			key, _ := rec.Fields["key"].(string)
			if key == "" {
				continue
			}
			r.Steps[key] = time.Duration(number(rec.Fields["duration_ms"])) * time.Millisecond
		}
	}
	if status != journal.StatusSuccess {
		return PastRun{}, false
	}
	return r, true
}
