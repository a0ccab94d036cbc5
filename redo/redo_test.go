package redo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestJSONRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log", "redo.json") // the folder is created
	at := time.Date(2026, 11, 23, 15, 14, 12, 146628000, time.FixedZone("CST", 8*3600))
	in := &Record{
		Values: map[string]any{
			"donor": "normal_0_1", "port": 16315, "ratio": 0.5, "frozen": true, "none": nil,
			"nodes": []any{"a", 2}, "where": map[string]any{"host": "127.0.0.3", "port": 16315},
		},
		WrittenAt: at, RunID: "20261123T071412Z", Playbook: "flashback-start",
	}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Values, in.Values) {
		t.Fatalf("values changed:\n in %#v\nout %#v", in.Values, out.Values)
	}
	if !out.WrittenAt.Equal(at) || out.RunID != in.RunID || out.Playbook != in.Playbook || out.Version != Version || out.Format != FormatJSON {
		t.Fatalf("metadata changed: %+v", out)
	}
	if _, ok := out.Values["port"].(int); !ok {
		t.Fatalf("port came back as %T, want int", out.Values["port"])
	}
	// overwrite: the new record replaces the old
	in.Values = map[string]any{"donor": "normal_0_2"}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err = Read(path, FormatJSON)
	if err != nil || !reflect.DeepEqual(out.Values, in.Values) {
		t.Fatalf("after overwrite: %v %#v", err, out)
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestLegacyFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gio_flashback_redo.log")
	// a file as the original tool left it (no trailing newline)
	if err := os.WriteFile(path, []byte("target-Not_A_Master-normal_0_1"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := Read(path, FormatLegacy)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"side": "target", "status": "Not_A_Master", "donor": "normal_0_1"}
	if !reflect.DeepEqual(rec.Values, want) || rec.Format != FormatLegacy {
		t.Fatalf("got %#v", rec)
	}
	// written back byte for byte (plus the newline the old reader ignores)
	if err := Write(path, &Record{Values: want, Format: FormatLegacy}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "target-Not_A_Master-normal_0_1\n" {
		t.Fatalf("legacy file holds %q", b)
	}
	rec, err = Read(path, FormatLegacy)
	if err != nil || !reflect.DeepEqual(rec.Values, want) {
		t.Fatalf("re-read: %v %#v", err, rec)
	}
	// donor names may contain dashes; side and status may not
	if err := Write(path, &Record{Values: map[string]any{"side": "target", "status": "Not_A_Master", "donor": "db-3"}, Format: FormatLegacy}); err != nil {
		t.Fatal(err)
	}
	if rec, err = Read(path, FormatLegacy); err != nil || rec.Values["donor"] != "db-3" {
		t.Fatalf("dash in donor: %v %#v", err, rec)
	}
	for _, bad := range []map[string]any{
		{"side": "target", "status": "Not_A_Master"},                                 // missing donor
		{"side": "tar-get", "status": "Not_A_Master", "donor": "x"},                  // dash in side
		{"side": "target", "status": "Not A Master", "donor": "x"},                   // space
		{"side": "target", "status": "Not_A_Master", "donor": "x", "extra": "y"},     // extra key
		{"side": "target", "status": "Not_A_Master", "donor": 3},                     // not a string
		{"side": "target", "status": "Not_A_Master", "donor": "x\nside-status-evil"}, // newline
	} {
		if err := Write(path, &Record{Values: bad, Format: FormatLegacy}); err == nil {
			t.Errorf("legacy write of %#v succeeded", bad)
		}
	}
	// the refused writes left the last good record in place
	if rec, err = Read(path, FormatLegacy); err != nil || rec.Values["donor"] != "db-3" {
		t.Fatalf("after refused writes: %v %#v", err, rec)
	}
	assertNoTemp(t, dir)
}

func TestCorruption(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := Write(good, &Record{Values: map[string]any{"donor": "normal_0_1", "port": 16315}, RunID: "r1", Playbook: "start"}); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(good)
	cases := []struct {
		name, content string
		format        Format
		want          []string
	}{
		{"truncated JSON", string(full[:len(full)/2]), FormatJSON, []string{"ends early", "truncated"}},
		{"garbage in JSON", `{"version": 1, "written_at": "2026-11-23T07:14:12Z", "values": {"donor": normal_0_1}}`, FormatJSON, []string{"invalid JSON", "normal_0_1"}},
		{"trailing data", string(full) + "{}", FormatJSON, []string{"after the record"}},
		{"unknown field", `{"version": 1, "written_at": "2026-11-23T07:14:12Z", "values": {}, "password": "x"}`, FormatJSON, []string{"unknown field"}},
		{"no version", `{"written_at": "2026-11-23T07:14:12Z", "values": {}}`, FormatJSON, []string{`no "version"`}},
		{"future version", `{"version": 9, "written_at": "2026-11-23T07:14:12Z", "values": {}}`, FormatJSON, []string{"version 9", "newer flow"}},
		{"no values", `{"version": 1, "written_at": "2026-11-23T07:14:12Z"}`, FormatJSON, []string{`no "values"`}},
		{"bad time", `{"version": 1, "written_at": "yesterday", "values": {}}`, FormatJSON, []string{`"yesterday"`}},
		{"legacy read as JSON", "target-Not_A_Master-normal_0_1\n", FormatJSON, []string{"format: legacy", "target-Not_A_Master-normal_0_1"}},
		{"garbage line", "this is not a redo record\n", FormatLegacy, []string{`"this is not a redo record"`, "side-status-donor"}},
		{"two parts", "target-normal_0_1\n", FormatLegacy, []string{`"target-normal_0_1"`}},
		{"second line", "target-Not_A_Master-normal_0_1\nsource-Master_Online-normal_0_2\n", FormatLegacy, []string{":2", "single line", "source-Master_Online-normal_0_2"}},
		{"JSON read as legacy", string(full), FormatLegacy, []string{"format: json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			rec, err := Read(path, c.format)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("want a CorruptError, got %v (record %#v)", err, rec)
			}
			msg := err.Error()
			for _, w := range append(c.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
		})
	}
}

func TestMissingAndCleared(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redo.json")
	_, err := Read(path, "")
	var me *MissingError
	if !errors.As(err, &me) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want MissingError, got %v", err)
	}
	me.WrittenBy = "flashback-start.yaml (Step 13)"
	msg := me.Error()
	for _, w := range []string{path, "flashback-start.yaml (Step 13)", "no redo record"} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing-file error lacks %q: %s", w, msg)
		}
	}
	// an empty file: what the original tool's stop left behind
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Read(path, FormatLegacy)
	if !errors.As(err, &me) || !me.Cleared || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
	// Clear
	if err := Write(path, &Record{Values: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	existed, err := Clear(path)
	if err != nil || !existed {
		t.Fatalf("clear: %v %v", existed, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	existed, err = Clear(path)
	if err != nil || existed {
		t.Fatalf("second clear: %v %v", existed, err)
	}
}

func TestSecretRefusal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redo.json")
	for _, vals := range []map[string]any{
		{"donor_password": "x"},
		{"MySQL_Password": "x"},
		{"node": map[string]any{"host": "h", "SysPassword": "x"}},
		{"api_secret": "x"},
		{"passwd": "x"},
	} {
		err := Write(path, &Record{Values: vals})
		var se *SecretError
		if !errors.As(err, &se) {
			t.Errorf("%v: want SecretError, got %v", vals, err)
		}
	}
	mask := func(s string) string { return strings.ReplaceAll(s, "hunter22", "******") }
	err := CheckSecrets(map[string]any{"donor": "normal_0_1", "dsn": []any{"ok", "admin:hunter22@tcp(h)"}}, mask)
	var se *SecretError
	if !errors.As(err, &se) || se.Key != "dsn[1]" || strings.Contains(err.Error(), "hunter22") {
		t.Fatalf("want a SecretError naming dsn[1] without the value, got %v", err)
	}
	if err := CheckSecrets(map[string]any{"donor": "normal_0_1", "port": 1}, mask); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused write created the file: %v", err)
	}
	assertNoTemp(t, dir)
}

// TestAtomicReplace checks that a failed write leaves the previous record
// and no temporary file, and that a successful one leaves no temporary file.
func TestAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redo.json")
	if err := Write(path, &Record{Values: map[string]any{"donor": "a"}}); err != nil {
		t.Fatal(err)
	}
	// a value JSON cannot encode fails after the secret check, before the rename
	err := Write(path, &Record{Values: map[string]any{"donor": "b", "bad": func() {}}})
	if err == nil {
		t.Fatal("unencodable value written")
	}
	rec, err := Read(path, "")
	if err != nil || rec.Values["donor"] != "a" {
		t.Fatalf("previous record damaged: %v %#v", err, rec)
	}
	// the folder is not writable: the write fails, the old record stays
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		err = Write(path, &Record{Values: map[string]any{"donor": "c"}})
		os.Chmod(dir, 0o755)
		if err == nil {
			t.Fatal("write into a read-only folder succeeded")
		}
	}
	// a path that is a folder cannot be replaced: the temp file is removed
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, &Record{Values: map[string]any{"donor": "d"}}); err == nil {
		t.Fatal("write over a non-empty folder succeeded")
	}
	assertNoTemp(t, dir)
	rec, err = Read(path, "")
	if err != nil || rec.Values["donor"] != "a" {
		t.Fatalf("previous record damaged: %v %#v", err, rec)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatJSON, "json": FormatJSON, "legacy": FormatLegacy} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Fatalf("yaml accepted: %v", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
