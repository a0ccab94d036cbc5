package gtid

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// benchSets returns two sets over the same nUUID UUIDs with nIv fragmented
// intervals each: b's intervals straddle a's, so a−b fragments further and
// neither contains the other.
func benchSets(nUUID, nIv int) (Set, Set) {
	a, b := benchTexts(nUUID, nIv)
	return MustParse(a), MustParse(b)
}

// benchTexts is benchSets as canonical text. It also serves subsetText.
func benchTexts(nUUID, nIv int) (string, string) {
	r := rand.New(rand.NewPCG(42, 43))
	var a, b strings.Builder
	for i := range nUUID {
		var u [16]byte
		for k := range u {
			u[k] = byte(r.IntN(256))
		}
		for _, sb := range []*strings.Builder{&a, &b} {
			if i > 0 {
				sb.WriteString(",\n")
			}
			writeUUID(sb, &u)
		}
		for k := range nIv {
			base := uint64(k)*1000 + 1
			lo := base + r.Uint64N(100)
			fmt.Fprintf(&a, ":%d-%d", lo, lo+400+r.Uint64N(100))
			lo = base + 300 + r.Uint64N(100)
			fmt.Fprintf(&b, ":%d-%d", lo, lo+200+r.Uint64N(300))
		}
	}
	return a.String(), b.String()
}

// benchInput holds the shared inputs: 1,000 UUIDs × 20 intervals.
type benchInput struct {
	aText, bText, subText string // b overlaps a; sub is a subset of a
	a, b, sub             Set
	ga, gb, gsub          *gomysql.MysqlGTIDSet
}

func loadBench(b *testing.B) *benchInput {
	b.Helper()
	in := &benchInput{}
	in.aText, in.bText = benchTexts(1000, 20)
	in.a, in.b = MustParse(in.aText), MustParse(in.bText)
	in.sub = in.a.Subtract(in.b) // a ⊇ sub, with about 40 intervals per UUID
	in.subText = in.sub.String()
	for _, p := range []struct {
		text string
		dst  **gomysql.MysqlGTIDSet
	}{{in.aText, &in.ga}, {in.bText, &in.gb}, {in.subText, &in.gsub}} {
		g, err := gomysql.ParseMysqlGTIDSet(p.text)
		if err != nil {
			b.Fatal(err)
		}
		*p.dst = g.(*gomysql.MysqlGTIDSet)
	}
	if !in.a.Contains(in.sub) || !in.ga.Contain(in.gsub) || in.a.Contains(in.b) || in.ga.Contain(in.gb) {
		b.Fatal("benchmark sets do not have the intended containment")
	}
	return in
}

var sinkSet Set
var sinkBool bool
var sinkString string

// BenchmarkSubtract: a − b. go-mysql v1.16.0 has no subtraction for MySQL
// GTID sets, so there is no counterpart.
func BenchmarkSubtract(b *testing.B) {
	in := loadBench(b)
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSet = in.a.Subtract(in.b)
		}
	})
}

// BenchmarkContains: a ⊇ sub (true, so every interval is checked) and a ⊇ b
// (false at the first UUID).
func BenchmarkContains(b *testing.B) {
	in := loadBench(b)
	b.Run("flow/true", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.a.Contains(in.sub)
		}
	})
	b.Run("gomysql/true", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.ga.Contain(in.gsub)
		}
	})
	b.Run("flow/false", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.a.Contains(in.b)
		}
	})
	b.Run("gomysql/false", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.ga.Contain(in.gb)
		}
	})
}

// BenchmarkEqual compares two equal sets built separately.
func BenchmarkEqual(b *testing.B) {
	in := loadBench(b)
	a2 := MustParse(in.aText)
	g2, err := gomysql.ParseMysqlGTIDSet(in.aText)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.a.Equal(a2)
		}
	})
	b.Run("gomysql", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = in.ga.Equal(g2)
		}
	})
}

// BenchmarkUnion: a ∪ b. go-mysql's only union is Update, which mutates its
// receiver and takes text, so its figure includes a Clone and parsing b.
func BenchmarkUnion(b *testing.B) {
	in := loadBench(b)
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSet = in.a.Union(in.b)
		}
	})
	b.Run("flow/parse-b", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSet = in.a.Union(MustParse(in.bText))
		}
	})
	b.Run("gomysql/clone+update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := in.ga.Clone()
			if err := c.Update(in.bText); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParse reads the 1,000-UUID canonical text.
func BenchmarkParse(b *testing.B) {
	in := loadBench(b)
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSet = MustParse(in.aText)
		}
	})
	b.Run("gomysql", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gomysql.ParseMysqlGTIDSet(in.aText); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkString prints the 1,000-UUID set.
func BenchmarkString(b *testing.B) {
	in := loadBench(b)
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkString = in.a.String()
		}
	})
	b.Run("gomysql", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkString = in.ga.String()
		}
	})
}
