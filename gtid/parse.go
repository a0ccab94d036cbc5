package gtid

import (
	"fmt"
	"slices"
	"strings"
)

// maxTagLen is the longest tag MySQL accepts.
const maxTagLen = 32

// ParseError reports malformed GTID set text. Its message quotes the bad part,
// its byte offset and the input, for example
//
//	gtid: bad interval "5-3" at offset 37 in "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-3": end is before start
type ParseError struct {
	Input  string // the whole text given to Parse
	Offset int    // byte offset of Part in Input
	Part   string // the offending piece of text
	What   string // what Part was expected to be: "uuid", "interval", "tag", "separator"
	Reason string // why Part is wrong
}

// Error implements error.
func (e *ParseError) Error() string {
	return fmt.Sprintf("gtid: bad %s %q at offset %d in %q: %s", e.What, e.Part, e.Offset, excerpt(e.Input, e.Offset), e.Reason)
}

// excerpt shortens long input around off so error messages stay readable.
func excerpt(s string, off int) string {
	const keep = 60
	if len(s) <= 2*keep+20 {
		return s
	}
	lo, hi := max(off-keep, 0), min(off+keep, len(s))
	out := s[lo:hi]
	if lo > 0 {
		out = "…" + out
	}
	if hi < len(s) {
		out += "…"
	}
	return out
}

// group is a run of parsed intervals that share a UUID and a tag, in the
// order the text gave them.
type group struct {
	uuid   [16]byte
	tag    string
	lo, hi int // parser.spans[lo:hi]
}

// parser holds the state of one Parse call.
type parser struct {
	s      string
	pos    int
	spans  []span
	groups []group
}

// startGroup closes the current group and opens one for (u, tag).
func (p *parser) startGroup(u [16]byte, tag string) {
	p.endGroup()
	p.groups = append(p.groups, group{uuid: u, tag: tag, lo: len(p.spans)})
}

func (p *parser) endGroup() {
	if n := len(p.groups); n > 0 {
		p.groups[n-1].hi = len(p.spans)
	}
}

// Parse reads a GTID set as MySQL's own parser does, in every form the
// server prints or accepts: "uuid:1-5:7,\nuuid2:1-3" with spaces, tabs and
// newlines around every separator; UUIDs in any letter case, also in braces
// or as 32 bare hexadecimal digits; several intervals per UUID; repeated
// UUIDs; overlapping, adjacent or unsorted intervals; empty elements (",",
// "a,,b", a leading or trailing comma); and MySQL 8.3+ tags ("uuid:tag:1-5",
// "uuid:1-3:tag:5-7"), which match [a-z_][a-z0-9_]{0,31} in any case and are
// stored in lower case. A tag applies to the intervals after it up to the
// next tag or the next UUID; a UUID or tag with no interval adds nothing,
// as in MySQL. The empty string (or only whitespace) is the empty set.
//
// Parse is stricter than MySQL in one respect: an interval whose end is
// before its start ("5-3"), which MySQL silently reads as no transaction,
// is an error here, since it is almost certainly a typo.
//
// Errors are *ParseError values naming the bad part and its byte offset.
func Parse(s string) (Set, error) {
	// Every interval follows a ':', so this bounds their number and the
	// intervals need a single allocation.
	p := parser{s: s, spans: make([]span, 0, strings.Count(s, ":")), groups: make([]group, 0, strings.Count(s, ",")+1)}
	if err := p.parse(); err != nil {
		return Set{}, err
	}
	p.endGroup()
	return build(p.groups, p.spans), nil
}

// MustParse is like Parse but panics on malformed input. It is meant for
// constants in tests and examples.
func MustParse(s string) Set {
	set, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return set
}

// build turns parsed groups into a canonical Set. When the text was already
// in canonical order (as everything MySQL prints is), it merges the intervals
// in place; otherwise it sorts the groups and each UUID's intervals first.
func build(groups []group, spans []span) Set {
	inOrder := true
	var prev *group
	for i := range groups {
		g := &groups[i]
		if g.lo == g.hi {
			continue
		}
		if (prev != nil && compareKey(&prev.uuid, prev.tag, &g.uuid, g.tag) >= 0) ||
			!slices.IsSortedFunc(spans[g.lo:g.hi], compareLo) {
			inOrder = false
			break
		}
		prev = g
	}
	var b builder
	tags := tagInterner{}
	if inOrder {
		// add writes at most one span per span read, at an index no
		// larger than the one read, so merging can reuse spans.
		b.s = Set{sids: make([]sid, 0, len(groups)), ivs: spans[:0]}
		for i := range groups {
			g := &groups[i]
			if g.lo == g.hi {
				continue
			}
			b.begin(&g.uuid, tags.intern(g.tag))
			for _, x := range spans[g.lo:g.hi] {
				b.add(x)
			}
			b.end()
		}
		return b.finish()
	}
	order := make([]int, 0, len(groups))
	for i := range groups {
		if groups[i].lo < groups[i].hi {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(x, y int) int {
		return compareKey(&groups[x].uuid, groups[x].tag, &groups[y].uuid, groups[y].tag)
	})
	b.s = Set{sids: make([]sid, 0, len(order)), ivs: make([]span, 0, len(spans))}
	var tmp []span
	for i := 0; i < len(order); {
		g := &groups[order[i]]
		tmp = tmp[:0]
		j := i
		for ; j < len(order); j++ {
			h := &groups[order[j]]
			if h.uuid != g.uuid || h.tag != g.tag {
				break
			}
			tmp = append(tmp, spans[h.lo:h.hi]...)
		}
		if !slices.IsSortedFunc(tmp, compareLo) {
			slices.SortFunc(tmp, compareLo)
		}
		b.begin(&g.uuid, tags.intern(g.tag))
		for _, x := range tmp {
			b.add(x)
		}
		b.end()
		i = j
	}
	return b.finish()
}

func compareLo(a, b span) int {
	switch {
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

// tagInterner copies tags out of the parsed text, so that a Set does not
// keep the whole input alive, and shares one copy per distinct tag.
type tagInterner map[string]string

func (t tagInterner) intern(tag string) string {
	if tag == "" {
		return ""
	}
	if c, ok := t[tag]; ok {
		return c
	}
	c := strings.Clone(tag)
	t[tag] = c
	return c
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isTagStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isTagChar(c byte) bool { return isTagStart(c) || isDigit(c) }

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && isSpace(p.s[p.pos]) {
		p.pos++
	}
}

// token returns the text from off up to the next separator, for error messages.
func (p *parser) token(off int) string {
	end := off
	for end < len(p.s) && p.s[end] != ':' && p.s[end] != ',' && !isSpace(p.s[end]) {
		end++
	}
	if end == off && end < len(p.s) {
		end++ // a lone separator
	}
	return p.s[off:end]
}

func (p *parser) fail(off int, part, what, reason string) error {
	return &ParseError{Input: p.s, Offset: off, Part: part, What: what, Reason: reason}
}

func (p *parser) parse() error {
	for {
		// MySQL skips empty elements: ",", ",,", a leading or trailing ','.
		p.skipSpace()
		for p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			p.skipSpace()
		}
		if p.pos == len(p.s) {
			return nil
		}
		u, err := p.uuid()
		if err != nil {
			return err
		}
		p.startGroup(u, "")
		p.skipSpace()
		for p.pos < len(p.s) && p.s[p.pos] == ':' {
			p.pos++
			p.skipSpace()
			off := p.pos
			switch {
			case p.pos < len(p.s) && isDigit(p.s[p.pos]):
				iv, err := p.interval()
				if err != nil {
					return err
				}
				p.spans = append(p.spans, iv)
			case p.pos < len(p.s) && isTagStart(p.s[p.pos]):
				tag, err := p.tag()
				if err != nil {
					return err
				}
				p.startGroup(u, tag)
			default:
				return p.fail(off, p.token(off), "interval", "expected a number or a tag after ':'")
			}
			p.skipSpace()
		}
		if p.pos == len(p.s) {
			return nil
		}
		if p.s[p.pos] != ',' {
			return p.fail(p.pos, p.token(p.pos), "separator", "expected ':' or ','")
		}
	}
}

// uuid reads a UUID in one of the forms MySQL accepts:
// 8-4-4-4-12 hexadecimal digits, the same in braces, or 32 hexadecimal digits.
func (p *parser) uuid() ([16]byte, error) {
	var u [16]byte
	off := p.pos
	bad := func() ([16]byte, error) {
		return u, p.fail(off, p.token(off), "uuid", "want 8-4-4-4-12 hexadecimal digits")
	}
	i := off
	braced := i < len(p.s) && p.s[i] == '{'
	if braced {
		i++
	}
	dashed := braced || (i+8 < len(p.s) && p.s[i+8] == '-')
	for j := 0; j < 32; j++ {
		if dashed && (j == 8 || j == 12 || j == 16 || j == 20) {
			if i == len(p.s) || p.s[i] != '-' {
				return bad()
			}
			i++
		}
		if i == len(p.s) {
			return bad()
		}
		v, ok := hexVal(p.s[i])
		if !ok {
			return bad()
		}
		u[j/2] |= v << (4 * (1 - j%2))
		i++
	}
	if braced {
		if i == len(p.s) || p.s[i] != '}' {
			return bad()
		}
		i++
	}
	if i < len(p.s) && (isTagChar(p.s[i]) || p.s[i] == '-' || p.s[i] == '}') {
		return bad()
	}
	p.pos = i
	return u, nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// interval reads "n" or "n-m", with optional spaces around the dash.
func (p *parser) interval() (span, error) {
	off := p.pos
	lo, err := p.number(off)
	if err != nil {
		return span{}, err
	}
	hi := lo
	save := p.pos
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == '-' {
		p.pos++
		p.skipSpace()
		if p.pos == len(p.s) || !isDigit(p.s[p.pos]) {
			return span{}, p.fail(off, p.intervalText(off), "interval", "want n or first-last")
		}
		if hi, err = p.number(off); err != nil {
			return span{}, err
		}
	} else {
		p.pos = save
	}
	if p.pos < len(p.s) && (isTagChar(p.s[p.pos]) || p.s[p.pos] == '-') {
		return span{}, p.fail(off, p.intervalText(off), "interval", "want n or first-last")
	}
	if lo == 0 {
		return span{}, p.fail(off, p.intervalText(off), "interval", "transaction numbers start at 1")
	}
	if hi < lo {
		return span{}, p.fail(off, p.intervalText(off), "interval", "end is before start")
	}
	return span{lo, hi + 1}, nil
}

// intervalText returns the interval starting at off, for error messages.
func (p *parser) intervalText(off int) string {
	end := off
	for end < len(p.s) && p.s[end] != ':' && p.s[end] != ',' && p.s[end] != '\n' {
		end++
	}
	return strings.TrimRight(p.s[off:end], " \t\r\v\f")
}

// number reads a decimal transaction number no larger than MaxGNO.
func (p *parser) number(ivOff int) (uint64, error) {
	var n uint64
	start := p.pos
	for p.pos < len(p.s) && isDigit(p.s[p.pos]) {
		d := uint64(p.s[p.pos] - '0')
		if n > (MaxGNO-d)/10 { // n*10+d would exceed MaxGNO (or wrap around)
			return 0, p.fail(ivOff, p.intervalText(ivOff), "interval", fmt.Sprintf("number is larger than %d", uint64(MaxGNO)))
		}
		n = n*10 + d
		p.pos++
	}
	if p.pos == start {
		return 0, p.fail(ivOff, p.intervalText(ivOff), "interval", "want n or first-last")
	}
	return n, nil
}

// tag reads a tag and returns it in lower case.
func (p *parser) tag() (string, error) {
	off := p.pos
	for p.pos < len(p.s) && isTagChar(p.s[p.pos]) {
		p.pos++
	}
	t := p.s[off:p.pos]
	if len(t) > maxTagLen {
		return "", p.fail(off, t, "tag", fmt.Sprintf("longer than %d characters", maxTagLen))
	}
	if p.pos < len(p.s) && p.s[p.pos] == '-' {
		return "", p.fail(off, p.token(off), "tag", "want [a-z_][a-z0-9_]{0,31}")
	}
	return strings.ToLower(t), nil
}
