// Package logfmt formats flow's log lines in the original flashback tool's
// layout, with the playbook's file:line in place of a Go source location:
//
//	2026-11-23T15:13:58.977024+08:00 [flashback-start.yaml:  42] [ID:1] [ INFO] Step 05 check gtid set consistency success
//
// and, for tooling, as one JSON object per line.
package logfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

// Field names the engine sets on every entry.
const (
	FieldFile = "pb_file" // playbook base name
	FieldLine = "pb_line" // playbook line
	FieldID   = "id"      // worker id: 1 for the main flow, one per parallel item
)

// TimeLayout is the timestamp layout: microseconds and a numeric offset.
const TimeLayout = "2006-01-02T15:04:05.000000-07:00"

var levelText = map[logrus.Level]string{
	logrus.PanicLevel: "PANIC", logrus.FatalLevel: "FATAL", logrus.ErrorLevel: "ERROR",
	logrus.WarnLevel: "WARN", logrus.InfoLevel: "INFO", logrus.DebugLevel: "DEBUG", logrus.TraceLevel: "TRACE",
}

// Text is the seed tool's line format.
type Text struct{}

// Format implements logrus.Formatter.
func (Text) Format(e *logrus.Entry) ([]byte, error) {
	b := e.Buffer
	if b == nil {
		b = &bytes.Buffer{}
	}
	file, _ := e.Data[FieldFile].(string)
	if file == "" {
		file = "flow"
	}
	line, _ := e.Data[FieldLine].(int)
	id, ok := e.Data[FieldID]
	if !ok {
		id = 1
	}
	b.WriteString(e.Time.Format(TimeLayout))
	fmt.Fprintf(b, " [%23s:%4d] [ID:%v] [%5s] %s", file, line, id, levelText[e.Level], e.Message)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != FieldFile && k != FieldLine && k != FieldID {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(e.Data[k])
		if strings.ContainsAny(v, " \t\n\"") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(b, " %s=%s", k, v)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// JSON writes one JSON object per entry: time, level, msg, file, line, id and
// every other field.
type JSON struct{}

// Format implements logrus.Formatter.
func (JSON) Format(e *logrus.Entry) ([]byte, error) {
	m := make(map[string]any, len(e.Data)+4)
	for k, v := range e.Data {
		switch k {
		case FieldFile:
			m["file"] = v
		case FieldLine:
			m["line"] = v
		default:
			if err, ok := v.(error); ok {
				v = err.Error()
			}
			m[k] = v
		}
	}
	m["time"] = e.Time.Format(TimeLayout)
	m["level"] = strings.ToLower(levelText[e.Level])
	if _, ok := m["event"]; !ok {
		m["event"] = event.Log
	}
	m["msg"] = e.Message
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Masked wraps a formatter and passes every formatted line through Mask
// (the run's secret masker), so no secret reaches the log.
type Masked struct {
	Inner logrus.Formatter
	Mask  func(string) string
}

// Format implements logrus.Formatter.
func (m Masked) Format(e *logrus.Entry) ([]byte, error) {
	b, err := m.Inner.Format(e)
	if err != nil {
		return nil, err
	}
	return []byte(m.Mask(string(b))), nil
}
