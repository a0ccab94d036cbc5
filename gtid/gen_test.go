package gtid

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// gen writes random GTID set texts in the many spellings MySQL accepts, over
// a shared pool of UUIDs and tags so that random sets overlap.
type gen struct {
	r     *rand.Rand
	uuids [][16]byte
	tags  []string
	maxN  uint64 // largest transaction number in "small" intervals
	huge  bool   // sometimes emit intervals near MaxGNO
}

func newGen(seed uint64, nUUID int, maxN uint64, huge bool) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), maxN: maxN, huge: huge}
	for range nUUID {
		var u [16]byte
		for i := range u {
			u[i] = byte(g.r.IntN(256))
		}
		g.uuids = append(g.uuids, u)
	}
	// Tags that sort in interesting ways: '_' sorts between upper and lower
	// case letters, digits before letters, prefixes before longer tags.
	g.tags = []string{"a", "ab", "b", "_x", "z9", "tag_1", "Tag_2", "x", "abcdefghijabcdefghijabcdefghijab"}
	return g
}

func (g *gen) uuidText(u [16]byte) string {
	var sb strings.Builder
	writeUUID(&sb, &u)
	s := sb.String()
	switch g.r.IntN(8) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		s = strings.ReplaceAll(s, "-", "")
	case 2:
		s = "{" + s + "}"
	}
	return s
}

func (g *gen) space() string {
	switch g.r.IntN(12) {
	case 0:
		return " "
	case 1:
		return "\n"
	case 2:
		return "\t "
	}
	return ""
}

func (g *gen) interval() string {
	if g.huge && g.r.IntN(20) == 0 {
		hi := uint64(MaxGNO) - g.r.Uint64N(5)
		lo := hi - g.r.Uint64N(1<<62)
		return fmt.Sprintf("%d-%d", lo, hi)
	}
	lo := 1 + g.r.Uint64N(g.maxN)
	if g.r.IntN(3) == 0 {
		return fmt.Sprint(lo)
	}
	hi := lo + g.r.Uint64N(g.maxN/4+1)
	return fmt.Sprintf("%d%s-%s%d", lo, g.space(), g.space(), hi)
}

// set returns the text of a random set with about nElems UUID elements.
func (g *gen) set(nElems int) string {
	if nElems == 0 {
		return []string{"", " ", "\n", ","}[g.r.IntN(4)]
	}
	var parts []string
	for range nElems {
		var sb strings.Builder
		sb.WriteString(g.space())
		sb.WriteString(g.uuidText(g.uuids[g.r.IntN(len(g.uuids))]))
		for k := 1 + g.r.IntN(4); k > 0; k-- {
			sb.WriteString(g.space() + ":" + g.space())
			if g.r.IntN(4) == 0 {
				sb.WriteString(g.tags[g.r.IntN(len(g.tags))])
				sb.WriteString(g.space() + ":" + g.space())
			}
			sb.WriteString(g.interval())
		}
		sb.WriteString(g.space())
		parts = append(parts, sb.String())
	}
	return strings.Join(parts, ",")
}

// pair returns two random sets with a varied number of elements each.
func (g *gen) pair() (string, string) {
	n := func() int {
		switch g.r.IntN(10) {
		case 0:
			return 0
		case 1:
			return 10 + g.r.IntN(30)
		}
		return 1 + g.r.IntN(5)
	}
	a := g.set(n())
	if g.r.IntN(6) == 0 {
		// b derived from a, so that containment and equality also happen.
		return a, g.subsetOf(a)
	}
	return a, g.set(n())
}

// subsetOf returns a respelling of a with some elements dropped, or all kept.
func (g *gen) subsetOf(a string) string {
	parts := strings.Split(a, ",")
	g.r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	if g.r.IntN(2) == 0 && len(parts) > 1 {
		parts = parts[:1+g.r.IntN(len(parts)-1)]
	}
	return strings.Join(parts, ",")
}
