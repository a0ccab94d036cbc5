package steps

import (
	"math"
	"testing"
	"time"
)

// TestCatchUpRateAndEstimate checks the wait's progress reports: the first
// poll reports, then at most one report a second, the rate smoothed over
// the reports and an estimate only once transactions are being applied.
func TestCatchUpRateAndEstimate(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var c catchUp
	steps := []struct {
		at       time.Duration
		count    uint64
		report   bool
		rate     float64
		eta      float64
		estimate bool
	}{
		{0, 100, true, 0, 0, false},
		{200 * time.Millisecond, 100, false, 0, 0, false},
		{time.Second, 100, true, 0, 0, false},              // nothing applied: no estimate
		{2 * time.Second, 80, true, 6, 80 / 6.0, true},     // 20/s, smoothed 0.3*20 + 0.7*0
		{4 * time.Second, 40, true, 10.2, 40 / 10.2, true}, // 20/s again: 0.3*20 + 0.7*6
		{4500 * time.Millisecond, 0, false, 10.2, 0, true}, // too soon to report
	}
	for i, s := range steps {
		got := c.update(t0.Add(s.at), s.count)
		if got != s.report {
			t.Fatalf("poll %d: report %v, want %v", i, got, s.report)
		}
		if math.Abs(c.rate-s.rate) > 1e-9 {
			t.Fatalf("poll %d: rate %v, want %v", i, c.rate, s.rate)
		}
		eta, ok := c.eta(s.count)
		if ok != s.estimate || math.Abs(eta-s.eta) > 1e-9 {
			t.Fatalf("poll %d: eta %v %v, want %v %v", i, eta, ok, s.eta, s.estimate)
		}
	}
}
