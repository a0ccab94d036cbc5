// Package redo keeps the durable record one playbook leaves for another: the
// flashback start playbook writes which donor it froze, and the stop
// playbook reads it to undo exactly that.
//
// A record is a map of names to JSON values plus metadata (when, by which
// run and playbook, in which format version). It is stored in one of two
// formats:
//
//   - FormatJSON (the default): one JSON object,
//     {"version":1,"written_at":…,"run_id":…,"playbook":…,"values":{…}}.
//   - FormatLegacy: the original flashback tool's single line
//     "target-Not_A_Master-normal_0_1" in log/gio_flashback_redo.log — the
//     cluster side, the master-online status and the donor's server name,
//     held as the values "side", "status" and "donor". It carries no
//     metadata.
//
// Write is atomic and durable (a temporary file in the same folder, fsync,
// rename, fsync of the folder), so a reader sees the old record or the new
// one, never half of one. Read never guesses: a missing file, an empty one
// (cleared) and a corrupt one are distinct errors that name the path and
// quote the bad part. Nothing that looks like a secret is written: keys
// naming a password or secret are refused, and CheckSecrets refuses values
// equal to (or containing) a registered secret.
package redo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/engine/plain"
)

// Format selects how a record is stored.
type Format string

// Formats.
const (
	// FormatJSON is the structured format with metadata (the default).
	FormatJSON Format = "json"
	// FormatLegacy is the original tool's one-line "side-status-donor".
	FormatLegacy Format = "legacy"
)

// Version is the version of the JSON record layout this package writes.
// Read refuses records with a higher version.
const Version = 1

// Legacy value names: the three fields of the one-line format, in order.
const (
	LegacySide   = "side"   // cluster side, e.g. "target"
	LegacyStatus = "status" // master-online status, e.g. "Not_A_Master"
	LegacyDonor  = "donor"  // donor server name, e.g. "normal_0_1"
)

// LegacyKeys are the value names of a legacy record, in line order.
var LegacyKeys = []string{LegacySide, LegacyStatus, LegacyDonor}

// Record is one redo record.
type Record struct {
	// Values are the recorded names and their JSON-able values (strings,
	// numbers, booleans, nil, lists and maps of those).
	Values map[string]any
	// WrittenAt is when the record was written (zero for legacy records).
	WrittenAt time.Time
	// RunID and Playbook identify the run that wrote it (empty for legacy).
	RunID, Playbook string
	// Version is the JSON layout version (0 for legacy records).
	Version int
	// Format is the format the record was read in or is written in; empty
	// means FormatJSON.
	Format Format
}

// ParseFormat validates a format name; "" is FormatJSON.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatLegacy:
		return FormatLegacy, nil
	}
	return "", fmt.Errorf("unknown redo format %q: use %q (the default) or %q (the original tool's one-line file)", s, FormatJSON, FormatLegacy)
}

// MissingError says there is no record at Path.
type MissingError struct {
	Path string
	// Cleared is set when the file exists but is empty (a stop cleared it,
	// as the original tool did by truncating the file).
	Cleared bool
	// WrittenBy names the playbook that writes the record, for the message
	// (optional).
	WrittenBy string
}

// Error implements error.
func (e *MissingError) Error() string {
	by := "a playbook's `redo` step with `action: write`"
	if e.WrittenBy != "" {
		by = e.WrittenBy
	}
	what := "there is no redo record at %s"
	if e.Cleared {
		what = "the redo record %s is empty (it was cleared)"
	}
	return fmt.Sprintf(what+": it is written by %s; run that first (and let it finish), or check the path", e.Path, by)
}

// Unwrap makes errors.Is(err, fs.ErrNotExist) hold.
func (e *MissingError) Unwrap() error { return fs.ErrNotExist }

// CorruptError says the file at Path is not a valid record.
type CorruptError struct {
	Path   string
	Format Format
	// Line is the 1-based line of the bad part (0 when unknown).
	Line int
	// Excerpt quotes the bad part.
	Excerpt string
	Reason  string
}

// Error implements error.
func (e *CorruptError) Error() string {
	loc := e.Path
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.Path, e.Line)
	}
	msg := fmt.Sprintf("redo record %s is corrupt (%s format): %s", loc, e.Format, e.Reason)
	if e.Excerpt != "" {
		msg += fmt.Sprintf(", at %q", e.Excerpt)
	}
	return msg + "; fix or remove the file by hand (flow does not guess what it meant)"
}

// SecretError says a record was refused because it would store a secret.
type SecretError struct {
	// Key is the offending value's name (a path such as "donor.password").
	Key    string
	Reason string
}

// Error implements error.
func (e *SecretError) Error() string {
	return fmt.Sprintf("refusing to write redo value %q: %s; a redo record is a plain file, so it must not hold passwords (store where to find the credentials instead)", e.Key, e.Reason)
}

// secretKey matches value names that look like credentials.
var secretKey = regexp.MustCompile(`(?i)passw|secret`)

// CheckSecrets refuses a record whose keys (at any depth) name a password or
// secret, or, when mask is not nil, whose string values mask would change
// (a value equal to or containing a registered secret).
func CheckSecrets(values map[string]any, mask func(string) string) error {
	return checkSecrets("", values, mask)
}

func checkSecrets(prefix string, v any, mask func(string) string) error {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			if secretKey.MatchString(k) {
				return &SecretError{Key: name, Reason: "its name says it is a password or secret"}
			}
			if err := checkSecrets(name, x[k], mask); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkSecrets(fmt.Sprintf("%s[%d]", prefix, i), e, mask); err != nil {
				return err
			}
		}
	case string:
		if mask != nil && mask(x) != x {
			return &SecretError{Key: prefix, Reason: "its value is (or contains) a secret of this run"}
		}
	}
	return nil
}

// Write stores rec at path atomically in rec.Format, creating the folder if
// needed. It refuses secret-looking keys (see CheckSecrets; values are
// checked against registered secrets by the caller, which knows them).
func Write(path string, rec *Record) error {
	if path == "" {
		return errors.New("redo: empty path")
	}
	format, err := ParseFormat(string(rec.Format))
	if err != nil {
		return err
	}
	if err := CheckSecrets(rec.Values, nil); err != nil {
		return err
	}
	var data []byte
	switch format {
	case FormatLegacy:
		line, err := legacyLine(rec.Values)
		if err != nil {
			return fmt.Errorf("redo record %s: %v", path, err)
		}
		data = []byte(line + "\n")
	default:
		data, err = encodeJSON(rec)
		if err != nil {
			return fmt.Errorf("redo record %s: %v", path, err)
		}
	}
	return writeAtomic(path, data)
}

// encodeJSON renders the JSON layout.
func encodeJSON(rec *Record) ([]byte, error) {
	vals := rec.Values
	if vals == nil {
		vals = map[string]any{}
	}
	written := rec.WrittenAt
	if written.IsZero() {
		written = time.Now()
	}
	doc := jsonRecord{
		Version:   Version,
		WrittenAt: written.Format(time.RFC3339Nano),
		RunID:     rec.RunID,
		Playbook:  rec.Playbook,
		Values:    vals,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("a value cannot be stored as JSON: %v", err)
	}
	return append(b, '\n'), nil
}

// jsonRecord is the JSON layout.
type jsonRecord struct {
	Version   int            `json:"version"`
	WrittenAt string         `json:"written_at"`
	RunID     string         `json:"run_id"`
	Playbook  string         `json:"playbook"`
	Values    map[string]any `json:"values"`
}

// legacyPart is what one field of the legacy line may hold: no dash (the
// separator) in side and status, no whitespace anywhere.
var (
	legacyField = regexp.MustCompile(`^[A-Za-z0-9_.]+$`)
	legacyDonor = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
)

// legacyLine renders the one-line format from exactly side, status, donor.
func legacyLine(values map[string]any) (string, error) {
	var extra []string
	for k := range values {
		if k != LegacySide && k != LegacyStatus && k != LegacyDonor {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return "", fmt.Errorf("the legacy format holds only %s; it cannot store %s (use format: json)", strings.Join(LegacyKeys, ", "), strings.Join(extra, ", "))
	}
	parts := make([]string, 3)
	for i, k := range LegacyKeys {
		v, ok := values[k]
		if !ok {
			return "", fmt.Errorf("the legacy format needs the value %q (it holds %s)", k, strings.Join(LegacyKeys, ", "))
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("legacy value %q must be a string, not %T", k, v)
		}
		re := legacyField
		if k == LegacyDonor {
			re = legacyDonor
		}
		if !re.MatchString(s) {
			return "", fmt.Errorf("legacy value %s=%q cannot be stored in the one-line format (allowed: letters, digits, _ and .%s)", k, s, map[bool]string{true: " and -", false: ""}[k == LegacyDonor])
		}
		parts[i] = s
	}
	return strings.Join(parts, "-"), nil
}

// writeAtomic writes data to a temporary file next to path, syncs it,
// renames it over path and syncs the folder.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("redo record %s: create its folder: %v", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("redo record %s: %v", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("redo record %s: write: %v", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("redo record %s: %v", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("redo record %s: fsync: %v", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("redo record %s: close: %v", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("redo record %s: rename: %v", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("redo: open folder %s for fsync: %v", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("redo: fsync folder %s: %v", dir, err)
	}
	return nil
}

// Read loads the record at path in the given format ("" is FormatJSON).
// A missing or empty file is a *MissingError, a malformed one a
// *CorruptError.
func Read(path string, format Format) (*Record, error) {
	f, err := ParseFormat(string(format))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &MissingError{Path: path}
		}
		return nil, fmt.Errorf("redo record %s: %v", path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &MissingError{Path: path, Cleared: true}
	}
	if f == FormatLegacy {
		return parseLegacy(path, data)
	}
	return parseJSON(path, data)
}

// legacyRE is the whole legacy line: side-status-donor.
var legacyRE = regexp.MustCompile(`^([A-Za-z0-9_.]+)-([A-Za-z0-9_.]+)-([A-Za-z0-9_.\-]+)$`)

func parseLegacy(path string, data []byte) (*Record, error) {
	text := strings.TrimRight(string(data), "\r\n")
	lines := strings.Split(text, "\n")
	if strings.HasPrefix(strings.TrimSpace(text), "{") {
		return nil, &CorruptError{Path: path, Format: FormatLegacy, Line: 1, Excerpt: clip(lines[0], 60),
			Reason: "expected one line side-status-donor; this looks like a JSON record: read it with format: json"}
	}
	for i, l := range lines[1:] {
		if strings.TrimSpace(l) != "" {
			return nil, &CorruptError{Path: path, Format: FormatLegacy, Line: i + 2, Excerpt: clip(l, 60),
				Reason: "the legacy format is a single line, but there is more"}
		}
	}
	line := strings.TrimRight(lines[0], "\r")
	m := legacyRE.FindStringSubmatch(line)
	if m == nil {
		why := "expected one line side-status-donor (e.g. target-Not_A_Master-normal_0_1)"
		return nil, &CorruptError{Path: path, Format: FormatLegacy, Line: 1, Excerpt: clip(line, 60), Reason: why}
	}
	return &Record{
		Values: map[string]any{LegacySide: m[1], LegacyStatus: m[2], LegacyDonor: m[3]},
		Format: FormatLegacy,
	}, nil
}

func parseJSON(path string, data []byte) (*Record, error) {
	corrupt := func(off int64, reason string) error {
		line, excerpt := locate(data, off)
		return &CorruptError{Path: path, Format: FormatJSON, Line: line, Excerpt: excerpt, Reason: reason}
	}
	trimmed := bytes.TrimSpace(data)
	if trimmed[0] != '{' {
		why := "not a JSON object"
		if legacyRE.Match(trimmed) {
			why += "; it looks like the original tool's one-line record: read it with format: legacy"
		}
		return nil, corrupt(0, why)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var doc struct {
		Version   *int           `json:"version"`
		WrittenAt string         `json:"written_at"`
		RunID     string         `json:"run_id"`
		Playbook  string         `json:"playbook"`
		Values    map[string]any `json:"values"`
	}
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, corrupt(int64(len(data)), "the JSON ends early (truncated file?)")
		case errors.As(err, &se):
			return nil, corrupt(se.Offset, "invalid JSON: "+se.Error())
		case errors.As(err, &te):
			return nil, corrupt(te.Offset, fmt.Sprintf("field %q holds a %s, not a %s", te.Field, te.Value, te.Type))
		}
		return nil, corrupt(dec.InputOffset(), "invalid record: "+err.Error())
	}
	if dec.More() {
		return nil, corrupt(dec.InputOffset(), "unexpected data after the record")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return nil, corrupt(dec.InputOffset(), "unexpected data after the record")
	}
	if doc.Version == nil {
		return nil, corrupt(0, `the record has no "version"`)
	}
	if *doc.Version < 1 || *doc.Version > Version {
		return nil, corrupt(0, fmt.Sprintf("record version %d is not one this flow reads (1..%d): was it written by a newer flow?", *doc.Version, Version))
	}
	if doc.Values == nil {
		return nil, corrupt(0, `the record has no "values"`)
	}
	rec := &Record{Values: plain.Of(doc.Values).(map[string]any), RunID: doc.RunID, Playbook: doc.Playbook,
		Version: *doc.Version, Format: FormatJSON}
	if doc.WrittenAt == "" {
		return nil, corrupt(0, `the record has no "written_at"`)
	}
	t, err := time.Parse(time.RFC3339Nano, doc.WrittenAt)
	if err != nil {
		return nil, corrupt(int64(bytes.Index(data, []byte(doc.WrittenAt))), fmt.Sprintf("written_at %q is not an RFC 3339 time", doc.WrittenAt))
	}
	rec.WrittenAt = t
	return rec, nil
}

// locate gives the 1-based line of byte offset off and an excerpt around it.
func locate(data []byte, off int64) (int, string) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	start := off - 30
	if start < 0 {
		start = 0
	}
	end := off + 30
	if end > int64(len(data)) {
		end = int64(len(data))
	}
	ex := strings.Join(strings.Fields(string(data[start:end])), " ")
	if start > 0 {
		ex = "…" + ex
	}
	if end < int64(len(data)) {
		ex += "…"
	}
	return line, ex
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// Clear removes the record at path (and syncs the folder). A missing file
// is not an error; existed reports whether there was one.
func Clear(path string) (existed bool, err error) {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("redo record %s: remove: %v", path, err)
	}
	return true, syncDir(filepath.Dir(path))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
