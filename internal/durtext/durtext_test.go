package durtext

import (
	"testing"
	"time"
)

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 90 * time.Minute: "1h30m", 2 * time.Hour: "2h", 10 * time.Minute: "10m",
		90 * time.Second: "1m30s", 1500 * time.Microsecond: "1.5ms", 30 * time.Second: "30s",
		time.Hour + time.Second: "1h0m1s",
	} {
		if got := Short(d); got != want {
			t.Errorf("Short(%v) = %q, want %q", d, got, want)
		}
	}
}
