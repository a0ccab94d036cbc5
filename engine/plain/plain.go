// Package plain turns decoded data into the plain values the expression
// language compares: a playbook's YAML literals (the loader) and a JSON
// redo record (the redo package) must give the same values, or a port
// read back from a record would no longer equal the one a playbook wrote.
package plain

import (
	"encoding/json"
	"math"
)

// Of makes v plain, in place and recursively through map[string]any and
// []any: a json.Number becomes an int when it is integral and fits, a
// float64 otherwise (a port stays an int); every other value is kept.
func Of(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = Of(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = Of(e)
		}
		return x
	}
	return v
}
