package mysqlver

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		str  string
	}{
		{"8.0.26", Version{Major: 8, Minor: 0, Patch: 26}, "8.0.26"},
		{"8.4.3", Version{Major: 8, Minor: 4, Patch: 3}, "8.4.3"},
		{"9.7.4-2", Version{Major: 9, Minor: 7, Patch: 4, Build: []int{2}}, "9.7.4-2"},
		{"8.0.32-24", Version{Major: 8, Minor: 0, Patch: 32, Build: []int{24}}, "8.0.32-24"},
		{"8.0.36-28.1", Version{Major: 8, Minor: 0, Patch: 36, Build: []int{28, 1}}, "8.0.36-28.1"},
		{"5.7.44-log", Version{Major: 5, Minor: 7, Patch: 44, Extra: "log"}, "5.7.44"},
		{"9.7.4-2 (Debian)", Version{Major: 9, Minor: 7, Patch: 4, Build: []int{2}, Extra: "(Debian)"}, "9.7.4-2"},
		{"8.0.32-24-log", Version{Major: 8, Minor: 0, Patch: 32, Build: []int{24}, Extra: "log"}, "8.0.32-24"},
		{"  8.0.26  ", Version{Major: 8, Minor: 0, Patch: 26}, "8.0.26"},
		{"8.0", Version{Major: 8, Minor: 0}, "8.0.0"},
		{"8.0.26-0ubuntu0.20.04.2", Version{Major: 8, Minor: 0, Patch: 26, Extra: "0ubuntu0.20.04.2"}, "8.0.26"},
		{"10.11.6-MariaDB-0+deb12u1", Version{Major: 10, Minor: 11, Patch: 6, Extra: "MariaDB-0+deb12u1"}, "10.11.6"},
		{"8.0.26 MySQL Community Server - GPL", Version{Major: 8, Minor: 0, Patch: 26, Extra: "MySQL Community Server - GPL"}, "8.0.26"},
		{"8.0.026", Version{Major: 8, Minor: 0, Patch: 26}, "8.0.26"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got.Major != tt.want.Major || got.Minor != tt.want.Minor || got.Patch != tt.want.Patch ||
			!slices.Equal(got.Build, tt.want.Build) || got.Extra != tt.want.Extra {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "   ", "8", "8.", "v8.0.26", "abc", "8.0.26a", "8.0.26.1", "8.x.1", ".8.0", "8.0.26_log", "99999999999.0.1"} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", in)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) || !strings.HasPrefix(err.Error(), "mysqlver: bad version ") {
			t.Errorf("Parse(%q) error %q does not quote the input", in, err)
		}
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"8.0.26", "8.0.26", 0},
		{"8.0.26", "8.0.27", -1},
		{"8.0.27", "8.0.26", 1},
		{"8.0.9", "8.0.10", -1}, // numeric, not lexical
		{"8.4.3", "8.0.40", 1},
		{"9.7.4-2", "8.4.3", 1},
		{"5.7.44-log", "8.0.0", -1},
		{"5.7.44-log", "5.7.44", 0}, // trailing words are ignored
		{"8.0.32-24", "8.0.32-23", 1},
		{"8.0.32-23", "8.0.32", 1},
		{"8.0.32", "8.0.32-23", -1},
		{"8.0.32-24", "8.0.33", -1},
		{"8.0.36-28.1", "8.0.36-28", 1},
		{"8.0.36-28.1", "8.0.36-28.2", -1},
		{"8.0.36-28.10", "8.0.36-28.9", 1},
		{"9.7.4-2 (Debian)", "9.7.4-2", 0},
		{"9.7.4-2 (Debian)", "9.7.4-10", -1},
		{"8.0", "8.0.0", 0},
		{"10.0.1", "9.99.99", 1},
		{"8.0.32-24-log", "8.0.32-24", 0},
	}
	for _, tt := range tests {
		got, err := Compare(tt.a, tt.b)
		if err != nil {
			t.Errorf("Compare(%q, %q): %v", tt.a, tt.b, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if rev, _ := Compare(tt.b, tt.a); rev != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.b, tt.a, rev, -tt.want)
		}
	}
	if _, err := Compare("8.0.26", "eight"); err == nil || !strings.Contains(err.Error(), `"eight"`) {
		t.Errorf("Compare with a bad second version: err = %v", err)
	}
	if _, err := Compare("x8", "8.0.26"); err == nil || !strings.Contains(err.Error(), `"x8"`) {
		t.Errorf("Compare with a bad first version: err = %v", err)
	}
}

func TestSeriesAndAtLeast(t *testing.T) {
	for in, want := range map[string]string{"8.0.26": "8.0", "8.4.3": "8.4", "9.7.4-2 (Debian)": "9.7", "10.11.6-MariaDB": "10.11"} {
		if got := MustParse(in).Series(); got != want {
			t.Errorf("Series(%q) = %q, want %q", in, got, want)
		}
	}
	v := MustParse("8.0.32-24")
	if !v.AtLeast(8, 0, 32) || !v.AtLeast(8, 0, 22) || v.AtLeast(8, 0, 33) || v.AtLeast(8, 4, 0) {
		t.Errorf("AtLeast wrong for %v", v)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse(\"bad\") did not panic")
		}
	}()
	MustParse("bad")
}

// TestReplicationSpellings: the REPLICA spellings start at 8.0.22 (a build
// suffix does not move the boundary) and the SLAVE ones end at 8.4.0.
func TestReplicationSpellings(t *testing.T) {
	for _, c := range []struct {
		v              string
		replica, slave bool
	}{
		{"5.7.44-log", false, true},
		{"8.0.21", false, true},
		{"8.0.21-12", false, true},
		{"8.0.22", true, true},
		{"8.0.30-22", true, true},
		{"8.3.0", true, true},
		{"8.4.0", true, false},
		{"8.4.3", true, false},
		{"9.7.4-2 (Debian)", true, false},
	} {
		v := MustParse(c.v)
		if v.HasReplicaSyntax() != c.replica || v.HasSlaveSyntax() != c.slave {
			t.Errorf("%s: HasReplicaSyntax %v HasSlaveSyntax %v, want %v %v", c.v, v.HasReplicaSyntax(), v.HasSlaveSyntax(), c.replica, c.slave)
		}
	}
}
