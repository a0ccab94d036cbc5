// Package mysqlver parses and compares MySQL server version strings such as
// "8.0.26", "8.4.3", "9.7.4-2", "8.0.32-24", "8.0.36-28.1", "5.7.44-log" or
// "9.7.4-2 (Debian)", as returned by SELECT VERSION() or @@version.
//
// A version is major.minor.patch (patch may be missing and then counts as 0),
// optionally followed by a numeric distribution or build suffix after a dash
// ("-24", "-28.1", as Percona and Debian number their builds) and then by any
// trailing words ("-log", "-debug", " (Debian)"), which are kept but ignored
// when comparing. Versions compare numerically field by field, then by the
// build suffix, also numerically and dot by dot; a version without a build
// suffix is older than the same version with one: 8.0.32 < 8.0.32-23 <
// 8.0.32-24 < 8.0.33.
package mysqlver

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed MySQL server version.
type Version struct {
	Major, Minor, Patch int
	// Build is the numeric distribution or build suffix split at dots:
	// [24] for "8.0.32-24", [28 1] for "8.0.36-28.1", nil if there is none.
	Build []int
	// Extra is the ignored trailing text, without its leading dash or
	// spaces: "log" for "5.7.44-log", "(Debian)" for "9.7.4-2 (Debian)".
	Extra string
}

// Error reports a version string that cannot be parsed.
type Error struct {
	Text   string // the whole text given to Parse
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("mysqlver: bad version %q: %s", e.Text, e.Reason)
}

// Parse reads a MySQL version string. Leading and trailing spaces are ignored.
func Parse(s string) (Version, error) {
	var v Version
	rest := strings.TrimSpace(s)
	fail := func(reason string) (Version, error) { return Version{}, &Error{Text: s, Reason: reason} }

	nums, rest, ok := dotted(rest, 3)
	if !ok || len(nums) < 2 {
		return fail("want major.minor[.patch] numbers at the start")
	}
	v.Major, v.Minor = nums[0], nums[1]
	if len(nums) == 3 {
		v.Patch = nums[2]
	}
	if strings.HasPrefix(rest, "-") {
		// A build suffix is a dash and dotted numbers ending the word.
		if b, after, ok := dotted(rest[1:], 0); ok && (after == "" || after[0] == '-' || isSpace(after[0])) {
			v.Build, rest = b, after
		}
	}
	switch {
	case rest == "":
	case rest[0] == '-' || isSpace(rest[0]):
		v.Extra = strings.TrimSpace(strings.TrimPrefix(rest, "-"))
	default:
		return fail(fmt.Sprintf("unexpected %q after the version numbers", rest))
	}
	return v, nil
}

// MustParse is like Parse but panics on a bad version. It is meant for
// constants.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// dotted reads up to limit (0: any number of) dot-separated decimal numbers
// from the start of s and returns them with the rest of s.
func dotted(s string, limit int) ([]int, string, bool) {
	var out []int
	for {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return nil, s, false
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || n > 1<<30 {
			return nil, s, false
		}
		out = append(out, n)
		s = s[i:]
		if (limit > 0 && len(out) == limit) || len(s) < 2 || s[0] != '.' || s[1] < '0' || s[1] > '9' {
			return out, s, true
		}
		s = s[1:]
	}
}

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer
// than o. Extra text is ignored.
func (v Version) Compare(o Version) int {
	for _, d := range [3]int{v.Major - o.Major, v.Minor - o.Minor, v.Patch - o.Patch} {
		if d != 0 {
			return sign(d)
		}
	}
	for i := 0; i < len(v.Build) || i < len(o.Build); i++ {
		switch {
		case i == len(v.Build):
			return -1
		case i == len(o.Build):
			return 1
		case v.Build[i] != o.Build[i]:
			return sign(v.Build[i] - o.Build[i])
		}
	}
	return 0
}

func sign(d int) int {
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}

// Series returns the release series, major.minor: "8.0", "8.4", "9.7".
func (v Version) Series() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
}

// AtLeast reports whether v is the same as or newer than major.minor.patch,
// ignoring the build suffix.
func (v Version) AtLeast(major, minor, patch int) bool {
	return Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch}.Compare(Version{Major: major, Minor: minor, Patch: patch}) >= 0
}

// String returns the version without its extra text: "8.0.36-28.1".
func (v Version) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d.%d.%d", v.Major, v.Minor, v.Patch)
	for i, b := range v.Build {
		if i == 0 {
			sb.WriteByte('-')
		} else {
			sb.WriteByte('.')
		}
		sb.WriteString(strconv.Itoa(b))
	}
	return sb.String()
}

// Compare parses a and b and returns -1, 0 or +1 as a is older than, the
// same as, or newer than b.
func Compare(a, b string) (int, error) {
	va, err := Parse(a)
	if err != nil {
		return 0, err
	}
	vb, err := Parse(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// HasReplicaSyntax reports whether the server knows the REPLICA spellings
// of the replication statements — START/STOP/RESET REPLICA, SHOW REPLICA
// STATUS, with Replica_*/Source_* status columns — which MySQL added in
// 8.0.22 (CHANGE REPLICATION SOURCE TO and the SOURCE_* options followed
// in 8.0.23). Older servers know only the SLAVE/MASTER spellings, so a
// tool that must work on both asks this before it speaks.
func (v Version) HasReplicaSyntax() bool { return v.AtLeast(8, 0, 22) }

// HasSlaveSyntax reports whether the server still accepts the SLAVE/MASTER
// spellings (START/STOP/RESET SLAVE, SHOW SLAVE STATUS, CHANGE MASTER TO,
// SHOW MASTER STATUS, RESET MASTER, the MASTER_* options). MySQL 8.4.0
// removed them; 8.0.22 to 8.3 accept both, the old ones deprecated.
func (v Version) HasSlaveSyntax() bool { return !v.AtLeast(8, 4, 0) }
