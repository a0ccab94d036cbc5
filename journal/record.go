package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Record is one line of a journal.
type Record struct {
	// Seq numbers the records from 1 (the header), one per line.
	Seq int64 `json:"seq"`
	// Time is when the record was written, UTC, RFC 3339 with nanoseconds.
	Time   string         `json:"time"`
	Event  string         `json:"event"`
	Fields map[string]any `json:"fields"`
	// Prev is the previous record's Hash ("" for the first record).
	Prev string `json:"prev"`
	// Hash is the SHA-256 (hex) of Prev followed by the record's canonical
	// JSON without the hash field.
	Hash string `json:"hash,omitempty"`
}

// canon encodes v as canonical JSON: the struct's field order, map keys
// sorted, no HTML escaping, no trailing newline.
func canon(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// chainHash is the hash of a record: SHA-256 over the previous hash and the
// record's canonical JSON (without its own hash).
func (r Record) chainHash() (string, error) {
	r.Hash = ""
	body, err := canon(r)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(r.Prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// seal computes the record's hash and returns its line (without newline).
func (r *Record) seal() ([]byte, error) {
	h, err := r.chainHash()
	if err != nil {
		return nil, err
	}
	r.Hash = h
	return canon(r)
}

// decodeRecord parses one line strictly: unknown keys are an error and
// numbers are kept as written (json.Number).
func decodeRecord(line []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, fmt.Errorf("more than one JSON value on the line")
	}
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	return r, nil
}

// normalize returns fields as they will read back from the file (so that
// the canonical encoding written is the one Verify recomputes): a value
// JSON cannot encode is recorded as its text.
func normalize(fields map[string]any) map[string]any {
	safe := make(map[string]any, len(fields))
	for k, v := range fields {
		if _, err := canon(v); err != nil {
			v = fmt.Sprint(v)
		}
		safe[k] = v
	}
	out, err := structFields(safe)
	if err != nil || out == nil {
		return map[string]any{}
	}
	return out
}

// structFields turns a struct into record fields through its JSON form.
func structFields(v any) (map[string]any, error) {
	b, err := canon(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
