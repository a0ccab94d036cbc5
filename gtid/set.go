package gtid

import (
	"bytes"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
)

// MaxGNO is the largest transaction number MySQL accepts in a GTID
// (2^63-2; MySQL reserves 2^63-1 as the exclusive end of every range).
const MaxGNO = math.MaxInt64 - 1

// setSeparator is what MySQL prints between two UUIDs of a set.
const setSeparator = ",\n"

// span is a half-open range [lo, hi) of transaction numbers; 1 <= lo < hi <= MaxGNO+1.
type span struct {
	lo, hi uint64
}

// sid is one (UUID, tag) pair of a Set together with the position of its
// intervals in Set.ivs.
type sid struct {
	uuid   [16]byte
	tag    string
	lo, hi int // ivs[lo:hi]
}

// compareKey orders (uuid, tag) pairs the way MySQL prints them: by the
// UUID's 16 bytes, then by tag, the untagged part first.
func compareKey(au *[16]byte, at string, bu *[16]byte, bt string) int {
	if c := bytes.Compare(au[:], bu[:]); c != 0 {
		return c
	}
	return strings.Compare(at, bt)
}

// Set is an immutable set of MySQL GTIDs. The zero value is the empty set.
// Every operation returns a new Set and never modifies its operands, so a Set
// may be shared between goroutines freely.
//
// Internally a Set is kept canonical: its (UUID, tag) pairs are sorted and
// distinct, and each pair's intervals are sorted, non-empty, and neither
// overlapping nor adjacent. Two sets hold the same transactions exactly when
// their internal representations are identical.
type Set struct {
	sids []sid
	ivs  []span
}

// IsEmpty reports whether s holds no transaction.
func (s Set) IsEmpty() bool { return len(s.sids) == 0 }

// Count returns the number of transactions in s. A set can hold more than
// 2^64-1 transactions (each UUID alone can hold 2^63-2); in that case Count
// returns math.MaxUint64.
func (s Set) Count() uint64 {
	var n uint64
	for _, iv := range s.ivs {
		d := iv.hi - iv.lo
		if n > math.MaxUint64-d {
			return math.MaxUint64
		}
		n += d
	}
	return n
}

// Equal reports whether s and o hold exactly the same transactions.
func (s Set) Equal(o Set) bool {
	if len(s.sids) != len(o.sids) || len(s.ivs) != len(o.ivs) {
		return false
	}
	for i := range s.sids {
		a, b := &s.sids[i], &o.sids[i]
		if a.uuid != b.uuid || a.tag != b.tag || a.hi-a.lo != b.hi-b.lo {
			return false
		}
	}
	for i := range s.ivs {
		if s.ivs[i] != o.ivs[i] {
			return false
		}
	}
	return true
}

// Contains reports whether every transaction of o is also in s (s ⊇ o),
// like MySQL's GTID_SUBSET(o, s).
func (s Set) Contains(o Set) bool {
	i := 0
	for j := range o.sids {
		b := &o.sids[j]
		for i < len(s.sids) && compareKey(&s.sids[i].uuid, s.sids[i].tag, &b.uuid, b.tag) < 0 {
			i++
		}
		if i == len(s.sids) {
			return false
		}
		a := &s.sids[i]
		if a.uuid != b.uuid || a.tag != b.tag {
			return false
		}
		if !spansContain(s.ivs[a.lo:a.hi], o.ivs[b.lo:b.hi]) {
			return false
		}
	}
	return true
}

// spansContain reports whether the canonical span list a covers every span of b.
func spansContain(a, b []span) bool {
	i := 0
	for _, x := range b {
		for i < len(a) && a[i].hi < x.hi {
			i++
		}
		// a[i] is the first span that ends at or after x's end; as spans
		// are merged, only it can cover x.
		if i == len(a) || a[i].lo > x.lo {
			return false
		}
	}
	return true
}

// builder assembles a canonical Set from (uuid, tag) pairs given in order.
type builder struct {
	s Set
}

// begin starts the intervals of a new (uuid, tag) pair.
func (b *builder) begin(u *[16]byte, tag string) {
	b.s.sids = append(b.s.sids, sid{uuid: *u, tag: tag, lo: len(b.s.ivs)})
}

// add appends a span to the current pair, merging it with the previous span
// when they overlap or touch. Spans must come in ascending order of lo.
func (b *builder) add(x span) {
	cur := &b.s.sids[len(b.s.sids)-1]
	if n := len(b.s.ivs); n > cur.lo && b.s.ivs[n-1].hi >= x.lo {
		if x.hi > b.s.ivs[n-1].hi {
			b.s.ivs[n-1].hi = x.hi
		}
		return
	}
	b.s.ivs = append(b.s.ivs, x)
}

// end closes the current pair, dropping it if it received no span.
func (b *builder) end() {
	cur := &b.s.sids[len(b.s.sids)-1]
	cur.hi = len(b.s.ivs)
	if cur.hi == cur.lo {
		b.s.sids = b.s.sids[:len(b.s.sids)-1]
	}
}

// finish returns the built set, with nil slices for the empty set.
func (b *builder) finish() Set {
	if len(b.s.sids) == 0 {
		return Set{}
	}
	return b.s
}

// Union returns the transactions that are in s or in o (or both).
func (s Set) Union(o Set) Set {
	if len(o.sids) == 0 {
		return s
	}
	if len(s.sids) == 0 {
		return o
	}
	b := builder{s: Set{
		sids: make([]sid, 0, len(s.sids)+len(o.sids)),
		ivs:  make([]span, 0, len(s.ivs)+len(o.ivs)),
	}}
	i, j := 0, 0
	for i < len(s.sids) || j < len(o.sids) {
		var c int
		switch {
		case i == len(s.sids):
			c = 1
		case j == len(o.sids):
			c = -1
		default:
			c = compareKey(&s.sids[i].uuid, s.sids[i].tag, &o.sids[j].uuid, o.sids[j].tag)
		}
		switch {
		case c < 0:
			a := &s.sids[i]
			b.begin(&a.uuid, a.tag)
			b.s.ivs = append(b.s.ivs, s.ivs[a.lo:a.hi]...)
			b.end()
			i++
		case c > 0:
			x := &o.sids[j]
			b.begin(&x.uuid, x.tag)
			b.s.ivs = append(b.s.ivs, o.ivs[x.lo:x.hi]...)
			b.end()
			j++
		default:
			a, x := &s.sids[i], &o.sids[j]
			b.begin(&a.uuid, a.tag)
			p, q := s.ivs[a.lo:a.hi], o.ivs[x.lo:x.hi]
			for len(p) > 0 || len(q) > 0 {
				if len(q) == 0 || (len(p) > 0 && p[0].lo <= q[0].lo) {
					b.add(p[0])
					p = p[1:]
				} else {
					b.add(q[0])
					q = q[1:]
				}
			}
			b.end()
			i++
			j++
		}
	}
	return b.finish()
}

// Subtract returns the transactions of s that are not in o, like MySQL's
// GTID_SUBTRACT(s, o).
func (s Set) Subtract(o Set) Set {
	if len(o.sids) == 0 || len(s.sids) == 0 {
		return s
	}
	b := builder{s: Set{
		sids: make([]sid, 0, len(s.sids)),
		ivs:  make([]span, 0, len(s.ivs)+len(o.ivs)),
	}}
	j := 0
	for i := range s.sids {
		a := &s.sids[i]
		for j < len(o.sids) && compareKey(&o.sids[j].uuid, o.sids[j].tag, &a.uuid, a.tag) < 0 {
			j++
		}
		b.begin(&a.uuid, a.tag)
		if j < len(o.sids) && o.sids[j].uuid == a.uuid && o.sids[j].tag == a.tag {
			x := &o.sids[j]
			b.s.ivs = subtractSpans(b.s.ivs, s.ivs[a.lo:a.hi], o.ivs[x.lo:x.hi])
		} else {
			b.s.ivs = append(b.s.ivs, s.ivs[a.lo:a.hi]...)
		}
		b.end()
	}
	return b.finish()
}

// subtractSpans appends p minus q to dst; p and q are canonical.
func subtractSpans(dst, p, q []span) []span {
	k := 0
	for _, x := range p {
		lo := x.lo
		for k < len(q) && q[k].hi <= lo {
			k++
		}
		for m := k; m < len(q) && q[m].lo < x.hi; m++ {
			if q[m].lo > lo {
				dst = append(dst, span{lo, q[m].lo})
			}
			lo = q[m].hi
			if lo >= x.hi {
				break
			}
		}
		if lo < x.hi {
			dst = append(dst, span{lo, x.hi})
		}
	}
	return dst
}

// Intersect returns the transactions that are in both s and o.
func (s Set) Intersect(o Set) Set {
	if len(o.sids) == 0 || len(s.sids) == 0 {
		return Set{}
	}
	b := builder{s: Set{
		sids: make([]sid, 0, min(len(s.sids), len(o.sids))),
		ivs:  make([]span, 0, len(s.ivs)+len(o.ivs)),
	}}
	j := 0
	for i := range s.sids {
		a := &s.sids[i]
		for j < len(o.sids) && compareKey(&o.sids[j].uuid, o.sids[j].tag, &a.uuid, a.tag) < 0 {
			j++
		}
		if j == len(o.sids) {
			break
		}
		x := &o.sids[j]
		if x.uuid != a.uuid || x.tag != a.tag {
			continue
		}
		b.begin(&a.uuid, a.tag)
		p, q := s.ivs[a.lo:a.hi], o.ivs[x.lo:x.hi]
		for len(p) > 0 && len(q) > 0 {
			lo, hi := max(p[0].lo, q[0].lo), min(p[0].hi, q[0].hi)
			if lo < hi {
				b.s.ivs = append(b.s.ivs, span{lo, hi})
			}
			if p[0].hi < q[0].hi {
				p = p[1:]
			} else {
				q = q[1:]
			}
		}
		b.end()
	}
	return b.finish()
}

// String returns s in MySQL's canonical text form, byte for byte what
// MySQL 9.7's GTID_SUBTRACT returns when it subtracts the empty set: UUIDs
// in lower case and sorted by their bytes, separated by ",\n"; after each
// UUID its untagged intervals, then each tag in ascending byte order followed
// by its intervals; intervals merged and printed as "n" or "first-last".
// The empty set is "".
func (s Set) String() string {
	if len(s.sids) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(len(s.sids)*40 + len(s.ivs)*12)
	var num [20]byte
	for i := range s.sids {
		x := &s.sids[i]
		if i == 0 || s.sids[i-1].uuid != x.uuid {
			if i > 0 {
				sb.WriteString(setSeparator)
			}
			writeUUID(&sb, &x.uuid)
		}
		if x.tag != "" {
			sb.WriteByte(':')
			sb.WriteString(x.tag)
		}
		for _, iv := range s.ivs[x.lo:x.hi] {
			sb.WriteByte(':')
			sb.Write(strconv.AppendUint(num[:0], iv.lo, 10))
			if iv.hi-iv.lo > 1 {
				sb.WriteByte('-')
				sb.Write(strconv.AppendUint(num[:0], iv.hi-1, 10))
			}
		}
	}
	return sb.String()
}

// writeUUID writes u in the 8-4-4-4-12 lower-case hexadecimal form.
func writeUUID(sb *strings.Builder, u *[16]byte) {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], u[10:16])
	sb.Write(buf[:])
}
