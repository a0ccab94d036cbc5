package engine_test

import (
	"os"
	"testing"
)

func TestZZDump(t *testing.T) {
	dir := os.Getenv("DUMP")
	if dir == "" {
		t.Skip()
	}
	for _, p := range corpus(t, dir) {
		_, d, _ := safeLoad(p)
		s := d.Error()
		if len(s) > 600 {
			s = s[:600]
		}
		t.Logf("== %s\n%s", p, s)
	}
}
