// Package durtext writes durations as people write them: 10m rather than
// Go's 10m0s, in plan output, log lines and report axes alike.
package durtext

import (
	"strings"
	"time"
)

// Short is d.String() without trailing zero units: 10m for 10m0s, 1h for
// 1h0m0s, 1h30m for 1h30m0s; 0 is "0s", as Go writes it.
func Short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
