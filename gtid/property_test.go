package gtid

import (
	"testing"
)

// triple is one transaction, for the brute-force model.
type triple struct {
	uuid [16]byte
	tag  string
	n    uint64
}

// expand lists every transaction of a small set.
func expand(t *testing.T, s Set) map[triple]bool {
	t.Helper()
	if s.Count() > 1_000_000 {
		t.Fatalf("set too large to expand: %d", s.Count())
	}
	m := map[triple]bool{}
	for _, x := range s.sids {
		for _, iv := range s.ivs[x.lo:x.hi] {
			for n := iv.lo; n < iv.hi; n++ {
				m[triple{x.uuid, x.tag, n}] = true
			}
		}
	}
	return m
}

// checkCanonical verifies the internal invariants of s.
func checkCanonical(t *testing.T, what string, s Set) {
	t.Helper()
	next := 0
	for i, x := range s.sids {
		if i > 0 && compareKey(&s.sids[i-1].uuid, s.sids[i-1].tag, &x.uuid, x.tag) >= 0 {
			t.Fatalf("%s: entries out of order at %d: %q", what, i, s)
		}
		if x.lo != next || x.hi <= x.lo {
			t.Fatalf("%s: entry %d has intervals [%d,%d), want to start at %d and be non-empty", what, i, x.lo, x.hi, next)
		}
		next = x.hi
		for k := x.lo; k < x.hi; k++ {
			iv := s.ivs[k]
			if iv.lo < 1 || iv.hi <= iv.lo || iv.hi > MaxGNO+1 {
				t.Fatalf("%s: bad interval %+v", what, iv)
			}
			if k > x.lo && s.ivs[k-1].hi >= iv.lo {
				t.Fatalf("%s: intervals not merged: %+v %+v", what, s.ivs[k-1], iv)
			}
		}
	}
	if next != len(s.ivs) {
		t.Fatalf("%s: %d intervals, entries cover %d", what, len(s.ivs), next)
	}
	if len(s.sids) == 0 && (s.sids != nil || s.ivs != nil) {
		t.Fatalf("%s: empty set is not the zero value", what)
	}
}

// TestModel compares every operation with a brute-force model on small sets.
func TestModel(t *testing.T) {
	g := newGen(1, 6, 60, false)
	for i := range 3000 {
		ta, tb := g.pair()
		a, err := Parse(ta)
		if err != nil {
			t.Fatalf("case %d: Parse(%q): %v", i, ta, err)
		}
		b, err := Parse(tb)
		if err != nil {
			t.Fatalf("case %d: Parse(%q): %v", i, tb, err)
		}
		ea, eb := expand(t, a), expand(t, b)
		wantU, wantS, wantI := map[triple]bool{}, map[triple]bool{}, map[triple]bool{}
		for k := range ea {
			wantU[k] = true
			if eb[k] {
				wantI[k] = true
			} else {
				wantS[k] = true
			}
		}
		for k := range eb {
			wantU[k] = true
		}
		for name, got := range map[string]Set{"union": a.Union(b), "subtract": a.Subtract(b), "intersect": a.Intersect(b)} {
			checkCanonical(t, name, got)
			want := map[string]map[triple]bool{"union": wantU, "subtract": wantS, "intersect": wantI}[name]
			e := expand(t, got)
			if len(e) != len(want) || uint64(len(e)) != got.Count() {
				t.Fatalf("case %d: %s of\n%q\n%q\n= %q: %d transactions (Count %d), want %d", i, name, ta, tb, got, len(e), got.Count(), len(want))
			}
			for k := range want {
				if !e[k] {
					t.Fatalf("case %d: %s of %q and %q = %q misses %v", i, name, ta, tb, got, k)
				}
			}
		}
		if got, want := a.Contains(b), len(wantI) == len(eb); got != want {
			t.Fatalf("case %d: %q ⊇ %q = %v, want %v", i, ta, tb, got, want)
		}
		if got, want := a.Equal(b), len(wantI) == len(ea) && len(wantI) == len(eb); got != want {
			t.Fatalf("case %d: %q = %q is %v, want %v", i, ta, tb, got, want)
		}
	}
}

// TestProperties checks set algebra laws on random sets, including huge
// intervals near MaxGNO.
func TestProperties(t *testing.T) {
	g := newGen(2, 40, 1_000_000, true)
	for i := range 2000 {
		ta, tb := g.pair()
		a, b := MustParse(ta), MustParse(tb)
		checkCanonical(t, "a", a)
		u, d, n := a.Union(b), a.Subtract(b), a.Intersect(b)
		switch {
		case !u.Contains(a) || !u.Contains(b):
			t.Fatalf("case %d: A∪B does not contain A and B: %q %q", i, ta, tb)
		case !u.Equal(b.Union(a)):
			t.Fatalf("case %d: union not commutative", i)
		case !d.Intersect(b).IsEmpty():
			t.Fatalf("case %d: (A−B)∩B not empty: %q %q", i, ta, tb)
		case !a.Equal(d.Union(n)):
			t.Fatalf("case %d: A ≠ (A−B)∪(A∩B): %q %q", i, ta, tb)
		case !a.Contains(d) || !a.Contains(n) || !b.Contains(n):
			t.Fatalf("case %d: A−B or A∩B not inside its operands", i)
		case a.Contains(b) != b.Subtract(a).IsEmpty():
			t.Fatalf("case %d: A⊇B disagrees with B−A=∅: %q %q", i, ta, tb)
		case a.Equal(b) != (a.Contains(b) && b.Contains(a)):
			t.Fatalf("case %d: Equal disagrees with mutual containment", i)
		case a.Equal(b) != (a.String() == b.String()):
			t.Fatalf("case %d: Equal disagrees with String", i)
		case !u.Subtract(b).Equal(d):
			t.Fatalf("case %d: (A∪B)−B ≠ A−B", i)
		case !a.Subtract(a).IsEmpty() || !a.Union(a).Equal(a) || !a.Intersect(a).Equal(a):
			t.Fatalf("case %d: idempotence laws fail", i)
		}
		// Count: |A∪B| + |A∩B| = |A| + |B| when nothing saturates.
		if u.Count() < 1<<62 && u.Count()+n.Count() != a.Count()+b.Count() {
			t.Fatalf("case %d: counts %d+%d != %d+%d", i, u.Count(), n.Count(), a.Count(), b.Count())
		}
		// Canonical text round trip.
		for _, s := range []Set{a, b, u, d, n} {
			txt := s.String()
			back, err := Parse(txt)
			if err != nil {
				t.Fatalf("case %d: Parse(String()) of %q: %v", i, txt, err)
			}
			if !back.Equal(s) || back.String() != txt {
				t.Fatalf("case %d: round trip changed %q into %q", i, txt, back)
			}
		}
	}
}

// FuzzParse checks that Parse never panics and that parse, print, parse is
// stable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", ",", u1 + ":1-5", u1 + ":1-5:7:9-12,\n" + u2 + ":1-3", u1 + ":tag:1-5", u1 + ":1-3:TAG:5-7",
		" " + u1 + " : 1 - 3 , " + u1 + " : 5 ", "{" + u1 + "}:1", "3e11fa4771ca11e19e33c80aa9429562:1",
		u1 + ":5-3", u1 + ":0", u1 + ":9223372036854775806", u1 + ":tag", u1 + ":a:b:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse(%q) returned %T, want *ParseError", in, err)
			}
			return
		}
		checkCanonical(t, "parsed", s)
		txt := s.String()
		back, err := Parse(txt)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", in, txt, err)
		}
		if !back.Equal(s) || back.String() != txt {
			t.Fatalf("round trip of %q: %q became %q", in, txt, back)
		}
	})
}
