package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowdba/flow/event"
)

// Chain is what Verify proved: the number of records and the last hash
// (the value a change board can write down: any later edit changes it).
type Chain struct {
	Records int64
	Head    string
	// Sealed says the journal was closed (its seal matched).
	Sealed bool
}

// TamperError names the first line of a journal that fails verification.
type TamperError struct {
	Path string
	// Line is the 1-based line number.
	Line   int
	Reason string
}

// Error names the file, the line and what is wrong with it.
func (e *TamperError) Error() string {
	return fmt.Sprintf("%s: line %d: %s", e.Path, e.Line, e.Reason)
}

// Verify checks a run's journal record by record: each line must be a
// record in canonical form, numbered in order, whose prev is the hash of
// the line before and whose hash matches its content. When the journal was
// closed, its seal must name the last record. An edited, removed, inserted
// or reordered line is reported as a *TamperError naming the first bad
// line.
//
// The chain proves the file is consistent with itself: someone who
// rewrites a line and recomputes every hash after it is caught only by
// comparing Chain.Head with a copy kept elsewhere.
func Verify(stateDir, runID string) (Chain, error) {
	return verify(stateDir, runID, false)
}

// verify is Verify; with tornOK a final line without its newline ends the
// chain instead of failing it.
func verify(stateDir, runID string, tornOK bool) (Chain, error) {
	if err := validRunID(runID); err != nil {
		return Chain{}, err
	}
	path := Path(stateDir, runID)
	f, err := os.Open(path)
	if err != nil {
		return Chain{}, err
	}
	defer f.Close()
	var (
		ch   Chain
		prev string
	)
	bad := func(n int, format string, args ...any) error {
		return &TamperError{Path: path, Line: n, Reason: fmt.Sprintf(format, args...)}
	}
	err = eachLine(f, func(n int, line []byte, last bool) error {
		if last && tornOK {
			return errTorn
		}
		if last {
			return bad(n, "the last line has no newline: the record is incomplete (flow stopped while writing it) or was edited")
		}
		rec, err := decodeRecord(line)
		if err != nil {
			return bad(n, "not a journal record: %v", err)
		}
		if rec.Seq != int64(n) {
			return bad(n, "record number %d where %d was expected: a record was removed, inserted or reordered", rec.Seq, n)
		}
		if n == 1 && rec.Event != event.Header {
			return bad(n, "the first record is %q, not %s", rec.Event, event.Header)
		}
		if rec.Prev != prev {
			if n == 1 {
				return bad(n, "the first record names a previous hash: records before it were removed")
			}
			return bad(n, "its prev hash does not match line %d's hash: a record was removed, inserted or reordered, or line %d was edited", n-1, n-1)
		}
		want, err := rec.chainHash()
		if err != nil {
			return bad(n, "%v", err)
		}
		if rec.Hash != want {
			return bad(n, "its hash does not match its content: the record was edited")
		}
		if c, err := canon(rec); err != nil || !bytes.Equal(c, line) {
			return bad(n, "the line is not in the form flow writes: it was edited")
		}
		prev = rec.Hash
		ch.Records, ch.Head = rec.Seq, rec.Hash
		return nil
	})
	if errors.Is(err, errTorn) {
		err = nil
	}
	if err != nil {
		return ch, err
	}
	if ch.Records == 0 {
		return ch, &TamperError{Path: path, Line: 1, Reason: "the journal is empty"}
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), SealFile))
	if errors.Is(err, os.ErrNotExist) {
		return ch, nil // still open, or flow was stopped before closing it
	}
	if err != nil {
		return ch, err
	}
	var s seal
	if err := json.Unmarshal(b, &s); err != nil {
		return ch, fmt.Errorf("%s: %v", filepath.Join(filepath.Dir(path), SealFile), err)
	}
	switch {
	case s.Records > ch.Records:
		return ch, bad(int(ch.Records)+1, "missing: the journal was closed with %d records and has %d: records were removed from the end", s.Records, ch.Records)
	case s.Records < ch.Records:
		return ch, bad(int(s.Records)+1, "written after the journal was closed with %d records", s.Records)
	case s.Head != ch.Head:
		return ch, bad(int(ch.Records), "its hash is not the one the journal was closed with: the records were rewritten")
	}
	ch.Sealed = true
	return ch, nil
}
