package drift

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/flowdba/flow/gtid"
)

// gtidInText finds GTID sets inside a statement or command: UUIDs each
// followed by intervals (and tags), separated by commas.
var gtidInText = func() *regexp.Regexp {
	uuid := `[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`
	entry := uuid + `(?::[A-Za-z_][A-Za-z0-9_]{0,31}|:[0-9]+(?:-[0-9]+)?)+`
	return regexp.MustCompile(entry + `(?:\s*,\s*` + entry + `)*`)
}()

// gtidMark stands for a GTID set in a statement's skeleton.
const gtidMark = "\x00GTID\x00"

// CompareText compares a planned statement or command with the live one:
// the text must be equal except for the GTID sets in it, which may have
// grown with transactions of the servers the plan saw (see the package
// doc). It returns nil when they match.
func CompareText(planned, live string) *Difference {
	if planned == live {
		return nil
	}
	pskel, psets := skeleton(planned)
	lskel, lsets := skeleton(live)
	if pskel != lskel || len(psets) != len(lsets) {
		return lineDiff(planned, live)
	}
	for i := range psets {
		d, _ := compareGTID("gtid", psets[i], lsets[i])
		if d != nil {
			d.Path = fmt.Sprintf("GTID set %d of the text", i+1)
			return d
		}
	}
	return nil
}

func skeleton(s string) (string, []string) {
	sets := gtidInText.FindAllString(s, -1)
	for _, set := range sets {
		if _, err := gtid.Parse(set); err != nil {
			return s, nil // not a set after all: compare the text as it is
		}
	}
	return gtidInText.ReplaceAllLiteralString(s, gtidMark), sets
}

// lineDiff names the first line where two texts differ.
func lineDiff(planned, live string) *Difference {
	pl, ll := strings.Split(planned, "\n"), strings.Split(live, "\n")
	for i := 0; i < len(pl) || i < len(ll); i++ {
		var p, l any
		if i < len(pl) {
			p = pl[i]
		}
		if i < len(ll) {
			l = ll[i]
		}
		if p != l {
			path := "the text"
			if len(pl) > 1 || len(ll) > 1 {
				path = fmt.Sprintf("line %d of the text", i+1)
			}
			return &Difference{Path: path, Planned: Show(p), Live: Show(l), Why: "the statement differs from the planned one"}
		}
	}
	return &Difference{Path: "the text", Planned: Show(planned), Live: Show(live), Why: "the statement differs from the planned one"}
}
