package gtid

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4d22ab58-82db-22f2-af44-d91bbb53a673"
	u0 = "0a11fa47-71ca-11e1-9e33-c80aa9429562"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   \n\t", ""},
		{",", ""},
		{", ,\n,", ""},
		{u1 + ":1-5", u1 + ":1-5"},
		{u1 + ":7", u1 + ":7"},
		{u1 + ":3-3", u1 + ":3"},
		{strings.ToUpper(u1) + ":1-5", u1 + ":1-5"},
		{u1 + ":1-5:7:9-12", u1 + ":1-5:7:9-12"},
		{u1 + ":9-12:1-5:7", u1 + ":1-5:7:9-12"},                                                 // unsorted
		{u1 + ":1-5:3-8:8:9", u1 + ":1-9"},                                                       // overlapping and adjacent
		{u1 + ":1-3:4-6", u1 + ":1-6"},                                                           // adjacent merge
		{u1 + ":01-05", u1 + ":1-5"},                                                             // leading zeros
		{u1 + ":1-3," + u1 + ":5", u1 + ":1-3:5"},                                                // repeated UUID
		{u2 + ":1-3,\n" + u1 + ":1-5", u1 + ":1-5,\n" + u2 + ":1-3"},                             // sorted by UUID
		{u1 + ":1-5,\n" + u2 + ":1-3", u1 + ":1-5,\n" + u2 + ":1-3"},                             // SHOW REPLICA STATUS spelling
		{" " + u1 + " : 1 - 3 , " + u1 + " : 5 ", u1 + ":1-3:5"},                                 // spaces everywhere
		{u1 + ":1\t,\t" + u1 + ":4", u1 + ":1:4"},                                                // tabs
		{u1 + ":1-5,\r\n" + u2 + ":1", u1 + ":1-5,\n" + u2 + ":1"},                               // CRLF
		{",," + u1 + ":1,,," + u1 + ":2,", u1 + ":1-2"},                                          // empty elements
		{"3e11fa4771ca11e19e33c80aa9429562:1", u1 + ":1"},                                        // bare hex UUID
		{"{" + u1 + "}:1", u1 + ":1"},                                                            // braced UUID
		{u1, ""},                                                                                 // UUID without intervals adds nothing
		{u1 + ":tag", ""},                                                                        // nor does a tag without intervals
		{u1 + ":tag:1:tag2", u1 + ":tag:1"},                                                      // trailing tag
		{u1 + ":tag:tag2:1", u1 + ":tag2:1"},                                                     // the last tag wins
		{u1 + ":tag:1-5", u1 + ":tag:1-5"},                                                       // tagged
		{u1 + ":1-3:tag:5-7", u1 + ":1-3:tag:5-7"},                                               // mixed
		{u1 + ":TagB:1:taga:3-4:5-7:1-3", u1 + ":taga:1-7:tagb:1"},                               // tag case and order
		{u1 + ":t:1," + u1 + ":T:2", u1 + ":t:1-2"},                                              // tags are case-insensitive
		{u1 + ":tag:1,\n" + u1 + ":2", u1 + ":2:tag:1"},                                          // untagged part first
		{u1 + ":z9:1:_x:2:ab:3:a:4", u1 + ":_x:2:a:4:ab:3:z9:1"},                                 // byte order of tags
		{u1 + " : Tag : 1 , " + u1 + ":tag :2", u1 + ":tag:1-2"},                                 // spaces around tags
		{u1 + ":_:1:_9:2", u1 + ":_:1:_9:2"},                                                     // underscore tags
		{u1 + ":abcdefghijabcdefghijabcdefghijab:1", u1 + ":abcdefghijabcdefghijabcdefghijab:1"}, // 32-character tag
		{u1 + ":9223372036854775806", u1 + ":9223372036854775806"},
		{u1 + ":1-9223372036854775806", u1 + ":1-9223372036854775806"},
		{u2 + ":5," + u0 + ":tagz:1," + u0 + ":9", u0 + ":9:tagz:1,\n" + u2 + ":5"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := s.String(); got != tt.want {
			t.Errorf("Parse(%q).String() =\n%q, want\n%q", tt.in, got, tt.want)
		}
		if s.IsEmpty() != (tt.want == "") {
			t.Errorf("Parse(%q).IsEmpty() = %v", tt.in, s.IsEmpty())
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		what   string
		part   string
		offset int
	}{
		{u1 + ":5-3", "interval", "5-3", 37},
		{u1 + ":1-2:5-3", "interval", "5-3", 41},
		{u1 + ":tag:1:5-3", "interval", "5-3", 43},
		{u1 + ":0", "interval", "0", 37},
		{u1 + ":0-3", "interval", "0-3", 37},
		{u1 + ":9223372036854775807", "interval", "9223372036854775807", 37},
		{u1 + ":1-9223372036854775807", "interval", "1-9223372036854775807", 37},
		{u1 + ":99999999999999999999999", "interval", "99999999999999999999999", 37},
		{u1 + ":57088682118355738265", "interval", "57088682118355738265", 37}, // wraps uint64 if unchecked
		{u1 + ":18446744073709551617", "interval", "18446744073709551617", 37}, // 2^64+1
		{u1 + ":1-18446744073709551621", "interval", "1-18446744073709551621", 37},
		{u1 + ":09223372036854775806-9223372036854775807", "interval", "09223372036854775806-9223372036854775807", 37},
		{u1 + ":", "interval", "", 37},
		{u1 + ":1:", "interval", "", 39},
		{u1 + "::1", "interval", ":", 37},
		{u1 + ":-1", "interval", "-1", 37},
		{u1 + ":1-", "interval", "1-", 37},
		{u1 + ":1- ", "interval", "1-", 37},
		{u1 + ":1-5-7", "interval", "1-5-7", 37},
		{u1 + ":1a", "interval", "1a", 37},
		{u1 + ":1tag:1", "interval", "1tag", 37},
		{u1 + ":1-x", "interval", "1-x", 37},
		{u1 + ":tag-x:1", "tag", "tag-x", 37},
		{u1 + ":abcdefghijabcdefghijabcdefghijabc:1", "tag", "abcdefghijabcdefghijabcdefghijabc", 37},
		{u1 + ":1 2", "separator", "2", 39},
		{u1 + ":1;" + u2 + ":1", "separator", ";" + u2, 38},
		{u1 + " 1", "separator", "1", 37},
		{u1 + ":1,:2", "uuid", ":", 39},
		{"zzz", "uuid", "zzz", 0},
		{"  zzz:1", "uuid", "zzz", 2},
		{"3e11fa47-71ca-11e1-9e33-c80aa942956:1", "uuid", "3e11fa47-71ca-11e1-9e33-c80aa942956", 0},     // short
		{"3e11fa47-71ca-11e1-9e33-c80aa94295621:1", "uuid", "3e11fa47-71ca-11e1-9e33-c80aa94295621", 0}, // long
		{"3e11fa47-71ca11e1-9e33-c80aa9429562:1", "uuid", "3e11fa47-71ca11e1-9e33-c80aa9429562", 0},     // dash missing
		{"3e11fa47-71ca-11e1-9e33-c80aa942956g:1", "uuid", "3e11fa47-71ca-11e1-9e33-c80aa942956g", 0},   // not hex
		{"{3e11fa4771ca11e19e33c80aa9429562}:1", "uuid", "{3e11fa4771ca11e19e33c80aa9429562}", 0},       // braces need dashes
		{"{" + u1 + ":1", "uuid", "{" + u1, 0},
		{u1 + "}:1", "uuid", u1 + "}", 0},
		{"3e11fa4771ca11e19e33c80aa942956:1", "uuid", "3e11fa4771ca11e19e33c80aa942956", 0},
		{u1 + ":1," + u2 + ":x-1", "tag", "x-1", 76},
		{u1 + ":1,\n" + u2 + ":é", "interval", "é", 77},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v, want a *ParseError", tt.in, err)
			continue
		}
		if pe.What != tt.what || pe.Part != tt.part || pe.Offset != tt.offset || pe.Input != tt.in {
			t.Errorf("Parse(%q) = %q (what %q part %q offset %d), want what %q part %q offset %d",
				tt.in, err, pe.What, pe.Part, pe.Offset, tt.what, tt.part, tt.offset)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "gtid: bad "+tt.what+" ") || !strings.Contains(msg, "at offset ") ||
			!strings.Contains(msg, fmt.Sprintf("%q at offset %d", tt.part, tt.offset)) {
			t.Errorf("Parse(%q) message %q does not name the bad part", tt.in, msg)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	in := u1 + ":1-2,\n" + u2 + ":5-3"
	_, err := Parse(in)
	want := `gtid: bad interval "5-3" at offset 79 in "` + u1 + `:1-2,\n` + u2 + `:5-3": end is before start`
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
	// Long inputs are shortened around the bad part.
	long := strings.Repeat(u1+":1-2,", 20) + u2 + ":x-"
	_, err = Parse(long)
	if err == nil || !strings.Contains(err.Error(), `bad tag "x-" at offset 857 in "…`) || len(err.Error()) > 250 {
		t.Fatalf("long input error = %v", err)
	}
}

func TestMustParse(t *testing.T) {
	if MustParse(u1+":1-3").Count() != 3 {
		t.Error("MustParse count")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse of bad input did not panic")
		}
	}()
	MustParse("bad")
}

func TestOperations(t *testing.T) {
	a := MustParse(u1 + ":1-10:20-30:tag:1-5," + u2 + ":1-100")
	tests := []struct {
		name, b                    string
		sub, union, inter          string
		aContainsB, bContainsA, eq bool
	}{
		{"empty", "", a.String(), a.String(), "", true, false, false},
		{"self", a.String(), "", a.String(), a.String(), true, true, true},
		{"middle", u1 + ":5-25", u1 + ":1-4:26-30:tag:1-5,\n" + u2 + ":1-100", u1 + ":1-30:tag:1-5,\n" + u2 + ":1-100", u1 + ":5-10:20-25", false, false, false},
		{"tag only", u1 + ":tag:2-3", u1 + ":1-10:20-30:tag:1:4-5,\n" + u2 + ":1-100", a.String(), u1 + ":tag:2-3", true, false, false},
		{"untagged does not remove tagged", u1 + ":1-5", u1 + ":6-10:20-30:tag:1-5,\n" + u2 + ":1-100", a.String(), u1 + ":1-5", true, false, false},
		{"other uuid", u0 + ":1", a.String(), u0 + ":1,\n" + a.String(), "", false, false, false},
		{"superset", u1 + ":1-40:tag:1-9," + u2 + ":1-100", "", u1 + ":1-40:tag:1-9,\n" + u2 + ":1-100", a.String(), false, true, false},
		{"edges", u1 + ":10:20:30," + u2 + ":1:100", u1 + ":1-9:21-29:tag:1-5,\n" + u2 + ":2-99", a.String(), u1 + ":10:20:30,\n" + u2 + ":1:100", true, false, false},
		{"max", u1 + ":9223372036854775806", a.String(), u1 + ":1-10:20-30:9223372036854775806:tag:1-5,\n" + u2 + ":1-100", "", false, false, false},
	}
	for _, tt := range tests {
		b := MustParse(tt.b)
		if got := a.Subtract(b).String(); got != tt.sub {
			t.Errorf("%s: a-b = %q, want %q", tt.name, got, tt.sub)
		}
		if got := a.Union(b).String(); got != tt.union {
			t.Errorf("%s: a∪b = %q, want %q", tt.name, got, tt.union)
		}
		if got := b.Union(a).String(); got != tt.union {
			t.Errorf("%s: b∪a = %q, want %q", tt.name, got, tt.union)
		}
		if got := a.Intersect(b).String(); got != tt.inter {
			t.Errorf("%s: a∩b = %q, want %q", tt.name, got, tt.inter)
		}
		if got := a.Contains(b); got != tt.aContainsB {
			t.Errorf("%s: a⊇b = %v", tt.name, got)
		}
		if got := b.Contains(a); got != tt.bContainsA {
			t.Errorf("%s: b⊇a = %v", tt.name, got)
		}
		if got := a.Equal(b); got != tt.eq {
			t.Errorf("%s: a=b = %v", tt.name, got)
		}
	}
	// Operands are never modified.
	if a.String() != u1+":1-10:20-30:tag:1-5,\n"+u2+":1-100" {
		t.Errorf("a was modified: %q", a)
	}
}

func TestContainsEdgeCases(t *testing.T) {
	var empty Set
	a := MustParse(u1 + ":1-5:7-9")
	for _, tt := range []struct {
		b    string
		want bool
	}{
		{u1 + ":1-5", true}, {u1 + ":5-7", false}, {u1 + ":6", false}, {u1 + ":9", true},
		{u1 + ":10", false}, {u1 + ":7-9:1", true}, {u1 + ":0-0", false}, {u2 + ":1", false},
		{u1 + ":x:1", false}, {"", true},
	} {
		b, err := Parse(tt.b)
		if err != nil {
			if tt.want {
				t.Error(err)
			}
			continue
		}
		if got := a.Contains(b); got != tt.want {
			t.Errorf("%q ⊇ %q = %v, want %v", a, tt.b, got, tt.want)
		}
	}
	if !empty.Contains(empty) || empty.Contains(a) || !a.Contains(empty) || !empty.Equal(Set{}) || !empty.IsEmpty() {
		t.Error("empty set relations wrong")
	}
	if empty.String() != "" || empty.Count() != 0 {
		t.Error("empty set text or count wrong")
	}
}

func TestCount(t *testing.T) {
	for in, want := range map[string]uint64{
		"":                                0,
		u1 + ":1-5:7:9-12":                10,
		u1 + ":1-5," + u1 + ":3-8":        8,
		u1 + ":1-5:tag:1-5":               10,
		u1 + ":1-9223372036854775806":     MaxGNO,
		u1 + ":1-9223372036854775806:t:1": MaxGNO + 1,
		u1 + ":1-9223372036854775806," + u2 + ":1-9223372036854775806": 2 * MaxGNO,
		u1 + ":1-9223372036854775806:a:1-9223372036854775806:b:1-3":    math.MaxUint64, // saturates
	} {
		if got := MustParse(in).Count(); got != want {
			t.Errorf("Count(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestStringHelpers(t *testing.T) {
	a, b := u1+":1-10,"+u2+":1-3", u1+":5"
	if got, err := SubtractStrings(a, b); err != nil || got != u1+":1-4:6-10,\n"+u2+":1-3" {
		t.Errorf("SubtractStrings = %q, %v", got, err)
	}
	if got, err := UnionStrings(b, u1+":11"); err != nil || got != u1+":5:11" {
		t.Errorf("UnionStrings = %q, %v", got, err)
	}
	if got, err := ContainsStrings(a, b); err != nil || !got {
		t.Errorf("ContainsStrings(a, b) = %v, %v", got, err)
	}
	if got, err := ContainsStrings(b, a); err != nil || got {
		t.Errorf("ContainsStrings(b, a) = %v, %v", got, err)
	}
	if got, err := EqualStrings(a, " "+strings.ToUpper(u2)+":3:1-2,\n"+u1+":1-10 "); err != nil || !got {
		t.Errorf("EqualStrings = %v, %v", got, err)
	}
	if got, err := EqualStrings(a, b); err != nil || got {
		t.Errorf("EqualStrings(a, b) = %v, %v", got, err)
	}
	if got, err := CountString(a); err != nil || got != 13 {
		t.Errorf("CountString = %d, %v", got, err)
	}
	if _, err := CountString(u1 + ":1-9223372036854775806," + u2 + ":1-2"); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("CountString overflow: err = %v", err)
	}
	bad := u1 + ":5-3"
	for name, f := range map[string]func() error{
		"SubtractStrings a": func() error { _, err := SubtractStrings(bad, a); return err },
		"SubtractStrings b": func() error { _, err := SubtractStrings(a, bad); return err },
		"UnionStrings":      func() error { _, err := UnionStrings(a, bad); return err },
		"ContainsStrings":   func() error { _, err := ContainsStrings(bad, a); return err },
		"EqualStrings":      func() error { _, err := EqualStrings(a, bad); return err },
		"CountString":       func() error { _, err := CountString(bad); return err },
	} {
		var pe *ParseError
		if err := f(); !errors.As(err, &pe) || pe.Part != "5-3" {
			t.Errorf("%s with bad input: err = %v", name, err)
		}
	}
}
