package gtid

import (
	"fmt"
	"math"
)

// SubtractStrings parses a and b and returns GTID_SUBTRACT(a, b) in
// canonical text form.
func SubtractStrings(a, b string) (string, error) {
	x, y, err := parse2(a, b)
	if err != nil {
		return "", err
	}
	return x.Subtract(y).String(), nil
}

// UnionStrings parses a and b and returns their union in canonical text form.
func UnionStrings(a, b string) (string, error) {
	x, y, err := parse2(a, b)
	if err != nil {
		return "", err
	}
	return x.Union(y).String(), nil
}

// ContainsStrings reports whether the set a contains every transaction of
// the set b (a ⊇ b), like MySQL's GTID_SUBSET(b, a).
func ContainsStrings(a, b string) (bool, error) {
	x, y, err := parse2(a, b)
	if err != nil {
		return false, err
	}
	return x.Contains(y), nil
}

// EqualStrings reports whether the sets a and b hold the same transactions,
// whatever their spelling.
func EqualStrings(a, b string) (bool, error) {
	x, y, err := parse2(a, b)
	if err != nil {
		return false, err
	}
	return x.Equal(y), nil
}

// CountString returns the number of transactions in the set a. It fails if
// the count does not fit in an int64.
func CountString(a string) (int64, error) {
	x, err := Parse(a)
	if err != nil {
		return 0, err
	}
	n := x.Count()
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("gtid: set %q holds more than %d transactions", excerpt(a, 0), int64(math.MaxInt64))
	}
	return int64(n), nil
}

func parse2(a, b string) (Set, Set, error) {
	x, err := Parse(a)
	if err != nil {
		return Set{}, Set{}, err
	}
	y, err := Parse(b)
	if err != nil {
		return Set{}, Set{}, err
	}
	return x, y, nil
}
