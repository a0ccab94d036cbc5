package engine

// Events: every event a run emits goes through Runner.event to the observer, the journal and the JSON log.

import (
	"time"

	"github.com/flowdba/flow/engine/logfmt"
	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// entry is a log entry located at a playbook position for a worker.
func (r *Runner) entry(w *worker, pb *Playbook, p Pos) *logrus.Entry {
	return r.opts.Log.WithFields(logrus.Fields{logfmt.FieldFile: baseName(pb.File), logfmt.FieldLine: p.Line, logfmt.FieldID: w.id})
}

// event emits a structured event: to the observer (with its time), to the
// journal (unless transient) and, in the JSON log format, to the log.
func (r *Runner) event(e *logrus.Entry, name string, f logrus.Fields) {
	if r.opts.Observer != nil {
		rec := r.record(e, f, 1)
		rec["time"] = time.Now()
		r.opts.Observer(name, rec)
	}
	if r.opts.Journal != nil && !event.Transient[name] {
		mutates, _ := f["mutates"].(bool)
		durable := event.Durable[name] || mutates && !coveredBySync[name]
		if err := r.opts.Journal.Record(name, r.record(e, f, 0), durable); err != nil {
			r.journalErr.CompareAndSwap(nil, &err)
		}
	}
	if !r.opts.JSON {
		return
	}
	if name == event.StepFinished {
		// the output goes to the journal; the event stream stays small
		g := logrus.Fields{}
		for k, v := range f {
			if k != "output" {
				g[k] = v
			}
		}
		f = g
	}
	e.WithFields(f).WithField("event", name).Info(name)
}

// coveredBySync are the events of a state-changing step that are written at
// once but not fsynced on their own. The write reaches the kernel, so a
// killed flow loses none of them; only a machine crash can lose the tail
// after the last fsync. Nothing changes on a cluster between step_started
// and the durable step_dispatched, whose fsync takes step_started along;
// a step_finished lost with the machine leaves the step started and not
// finished, which resume judges as it judges a step cut short (probe, ask
// or rerun), and the next durable record (a later step's dispatch, the
// run's end, Close) takes it along. Three fsyncs per changing step were
// most of the engine's own time between steps.
var coveredBySync = map[string]bool{event.StepStarted: true, event.StepFinished: true}

// record is an event's fields with secrets masked and the log entry's
// position (file, line, worker id) added: a map of its own for each
// receiver, with room for extra more fields.
func (r *Runner) record(e *logrus.Entry, f logrus.Fields, extra int) map[string]any {
	rec := make(map[string]any, len(f)+3+extra)
	for k, v := range f {
		rec[k] = r.maskValue(v)
	}
	for _, k := range []string{logfmt.FieldFile, logfmt.FieldLine, logfmt.FieldID} {
		if v, ok := e.Data[k]; ok {
			rec[k] = v
		}
	}
	return rec
}

// maskValue masks secrets in every string inside v (maps and lists too).
func (r *Runner) maskValue(v any) any {
	switch x := v.(type) {
	case string:
		return r.masker.Apply(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = r.maskValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.maskValue(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.maskValue(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.masker.Apply(e)
		}
		return out
	}
	return v
}

// stepFields are the fields every event about a step carries: its id,
// rendered name, line and instance key. Events add theirs with merge.
func stepFields(s *Step, name, key string) logrus.Fields {
	return logrus.Fields{"step": s.ID, "name": name, "line": s.Pos.Line, "key": key}
}

// merge is a with b's fields added (b wins).
func merge(a, b logrus.Fields) logrus.Fields {
	out := logrus.Fields{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
