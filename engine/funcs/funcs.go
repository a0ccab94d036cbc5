// Package funcs registers flow's functions in the expression language:
// GTID set algebra (gtid_subtract, gtid_union, gtid_contains, gtid_equal,
// gtid_count), MySQL version comparison (version_compare, version_series),
// safe identifiers (ident), generated secrets (random_password) and small
// conversions (to_int, size). Import it for its side effects.
package funcs

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/gtid"
	"github.com/flowdba/flow/mysqlver"
)

func str2(p []any) (string, string) { return toString(p[0]), toString(p[1]) }

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

func init() {
	gtidArgs := []any{new(func(string, string) string)}
	engine.RegisterFunc(engine.FuncDef{Name: "gtid_subtract", Help: "gtid_subtract(a, b): the transactions of GTID set a that are not in b (canonical text)",
		Fn: func(p ...any) (any, error) { a, b := str2(p); return gtid.SubtractStrings(a, b) }, Types: gtidArgs})
	engine.RegisterFunc(engine.FuncDef{Name: "gtid_union", Help: "gtid_union(a, b): every transaction in a or b",
		Fn: func(p ...any) (any, error) { a, b := str2(p); return gtid.UnionStrings(a, b) }, Types: gtidArgs})
	engine.RegisterFunc(engine.FuncDef{Name: "gtid_contains", Help: "gtid_contains(a, b): a ⊇ b (every transaction of b is in a)",
		Fn:    func(p ...any) (any, error) { a, b := str2(p); return gtid.ContainsStrings(a, b) },
		Types: []any{new(func(string, string) bool)}})
	engine.RegisterFunc(engine.FuncDef{Name: "gtid_equal", Help: "gtid_equal(a, b): the same set of transactions",
		Fn:    func(p ...any) (any, error) { a, b := str2(p); return gtid.EqualStrings(a, b) },
		Types: []any{new(func(string, string) bool)}})
	engine.RegisterFunc(engine.FuncDef{Name: "gtid_count", Help: "gtid_count(a): the number of transactions in a",
		Fn: func(p ...any) (any, error) {
			n, err := gtid.CountString(toString(p[0]))
			return int(n), err
		},
		Types: []any{new(func(string) int)}})
	engine.RegisterFunc(engine.FuncDef{Name: "version_compare", Help: "version_compare(a, b): -1, 0 or 1 comparing MySQL versions such as 8.0.26, 8.4.3, 9.7.4-2, 8.0.32-24",
		Fn:    func(p ...any) (any, error) { a, b := str2(p); return mysqlver.Compare(a, b) },
		Types: []any{new(func(string, string) int)}})
	engine.RegisterFunc(engine.FuncDef{Name: "version_series", Help: "version_series(v): the release series, e.g. \"8.0\" for 8.0.26",
		Fn: func(p ...any) (any, error) {
			v, err := mysqlver.Parse(toString(p[0]))
			if err != nil {
				return nil, err
			}
			return v.Series(), nil
		},
		Types: []any{new(func(string) string)}})
	engine.RegisterFunc(engine.FuncDef{Name: "ident", Help: "ident(name): render name bare as an identifier in SQL or shell (validated: letters, digits, _)",
		Fn: func(p ...any) (any, error) {
			s := toString(p[0])
			if !quote.IdentPattern.MatchString(s) {
				return nil, fmt.Errorf("%q is not a safe identifier (letters, digits and _ only)", s)
			}
			return quote.Ident(s), nil
		}})
	engine.RegisterFunc(engine.FuncDef{Name: "random_password", Secret: true, Help: "random_password(n): a generated secret of n letters and digits (masked everywhere)",
		Fn: func(p ...any) (any, error) {
			n, ok := p[0].(int)
			if !ok || n < 8 || n > 128 {
				return nil, fmt.Errorf("random_password(n): n must be an int between 8 and 128")
			}
			const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
			b := make([]byte, n)
			for i := range b {
				k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
				if err != nil {
					return nil, err
				}
				b[i] = alphabet[k.Int64()]
			}
			return string(b), nil
		},
		Types: []any{new(func(int) string)}})
	engine.RegisterFunc(engine.FuncDef{Name: "to_int", Help: "to_int(v): an integer from a number or text such as \"45%\" or \" 12 \"",
		Fn: func(p ...any) (any, error) {
			switch x := p[0].(type) {
			case int:
				return x, nil
			case int64:
				return int(x), nil
			case float64:
				return int(x), nil
			}
			s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(toString(p[0])), "%"))
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("to_int: %q is not an integer", toString(p[0]))
			}
			return n, nil
		},
		Types: []any{new(func(any) int)}})
	engine.RegisterFunc(engine.FuncDef{Name: "seconds", Help: "seconds(d): a duration in whole seconds, rounded up, as MySQL's timeouts take it: seconds(catchup_timeout) = 60 for 60s, seconds(\"1500ms\") = 2",
		Fn: func(p ...any) (any, error) {
			d, ok := p[0].(time.Duration)
			if !ok {
				var err error
				if d, err = time.ParseDuration(toString(p[0])); err != nil {
					return nil, fmt.Errorf("seconds: %q is not a duration such as 30s", toString(p[0]))
				}
			}
			if d < 0 {
				return nil, fmt.Errorf("seconds: %s is negative", d)
			}
			return int((d + time.Second - 1) / time.Second), nil
		},
		Types: []any{new(func(any) int)}})
	engine.RegisterFunc(engine.FuncDef{Name: "bytes", Help: "bytes(text): a size as a DBA writes it, in bytes: bytes(\"1 GiB\") = 1073741824, bytes(\"500MB\") = 500000000",
		Fn: func(p ...any) (any, error) {
			n, err := humanize.ParseBytes(toString(p[0]))
			if err != nil {
				return nil, fmt.Errorf("bytes: %q is not a size such as 1 GiB or 500MB", toString(p[0]))
			}
			return int(n), nil
		},
		Types: []any{new(func(string) int)}})
	engine.RegisterFunc(engine.FuncDef{Name: "size", Help: "size(bytes): a byte count as a DBA reads it, e.g. size(70599213056) = \"66 GiB\"",
		Fn: func(p ...any) (any, error) {
			var n float64
			switch x := p[0].(type) {
			case int:
				n = float64(x)
			case int64:
				n = float64(x)
			case float64:
				n = x
			default:
				v, err := strconv.ParseFloat(strings.TrimSpace(toString(p[0])), 64)
				if err != nil {
					return nil, fmt.Errorf("size: %q is not a byte count", toString(p[0]))
				}
				n = v
			}
			if n < 0 {
				return "-" + humanize.IBytes(uint64(-n)), nil
			}
			return humanize.IBytes(uint64(n)), nil
		},
		Types: []any{new(func(any) string)}})
}
