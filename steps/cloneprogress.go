package steps

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The clone's progress for the live progress view: while CLONE INSTANCE
// runs, performance_schema.clone_progress is read on the recipient from
// another connection of the pool once a second, and reported with
// engine.Exec.Progress as {waits_for, bytes_done, bytes_total, rate (bytes
// a second, smoothed), rate_unit, eta_s, stage, target}.

// qCloneViewProgress reads the clone's stages for the progress view.
const qCloneViewProgress = "SELECT STAGE, STATE, IFNULL(DATA, 0), IFNULL(ESTIMATE, 0) FROM performance_schema.clone_progress"

// Progress reports of a clone: one a second, each query bounded by the
// same second, the rate smoothed exponentially (each new second weighs
// cloneViewWeight).
const (
	cloneViewEvery  = time.Second
	cloneViewWeight = 0.3
)

// viewProgress reports the clone's progress to the progress view until the
// returned stop is called or ctx ends; stop also calls stopLog (the stop of
// the logging watcher, cloneRun.watch), so one call stops both:
//
//	stop := cr.viewProgress(ctx, cr.watch(ctx))
func (cr *cloneRun) viewProgress(ctx context.Context, stopLog func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cloneViewEvery)
		defer t.Stop()
		var m cloneMeter
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			qctx, cancel := context.WithTimeout(ctx, cloneViewEvery)
			stages, err := cloneViewStages(qctx, cr.db)
			cancel()
			if err != nil {
				continue // the recipient may be restarting: the outcome is checked after the statement
			}
			f := m.update(time.Now(), stages)
			f["waits_for"] = fmt.Sprintf("clone of %s into %s, stage %s", cr.p.donor(), cr.target, f["stage"])
			f["target"] = cr.target
			cr.x.Progress(f)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			stopLog()
		})
	}
}

// cloneViewStage is a row of performance_schema.clone_progress.
type cloneViewStage struct {
	stage, state   string
	data, estimate int64
}

// cloneViewStages reads clone_progress.
func cloneViewStages(ctx context.Context, db *sql.DB) ([]cloneViewStage, error) {
	rows, err := db.QueryContext(ctx, qCloneViewProgress)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []cloneViewStage
	for rows.Next() {
		var s cloneViewStage
		if err := rows.Scan(&s.stage, &s.state, &s.data, &s.estimate); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// cloneMeter turns successive clone_progress readings into a progress
// report: bytes copied of the estimate, the smoothed rate and an estimate
// of the time left.
type cloneMeter struct {
	at      time.Time
	done    int64
	rate    float64 // bytes a second, smoothed
	samples int
}

// update takes a reading at now and returns the report's fields.
func (m *cloneMeter) update(now time.Time, stages []cloneViewStage) map[string]any {
	var done, total int64
	stage := "starting"
	for _, s := range stages {
		done += s.data
		total += s.estimate
		if s.state == "In Progress" {
			stage = s.stage
		}
	}
	if stage == "starting" && len(stages) > 0 && done > 0 {
		stage = "between stages"
	}
	if !m.at.IsZero() {
		if dt := now.Sub(m.at).Seconds(); dt > 0 {
			sample := float64(done-m.done) / dt
			if sample < 0 {
				sample = 0 // a new clone's rows replaced an old one's
			}
			if m.samples == 0 {
				m.rate = sample
			} else {
				m.rate = cloneViewWeight*sample + (1-cloneViewWeight)*m.rate
			}
			m.samples++
		}
	}
	m.at, m.done = now, done
	f := map[string]any{"stage": strings.ToLower(stage), "bytes_done": done, "bytes_total": total, "rate": m.rate, "rate_unit": "B/s"}
	if m.rate > 0 && total > done {
		f["eta_s"] = float64(total-done) / m.rate
	}
	return f
}
