package engine_test

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
)

func TestZZCache(t *testing.T) {
	dir := os.Getenv("FUZZCACHE")
	if dir == "" {
		t.Skip()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	tmp := t.TempDir()
	path := filepath.Join(tmp, "fuzz.yaml")
	type r struct {
		f string
		d time.Duration
		n int
	}
	var rs []r
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.SplitN(string(data), "\n", 2)
		lit := strings.TrimSpace(lines[1])
		lit = strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		os.WriteFile(path, []byte(s), 0o600)
		start := time.Now()
		engine.Load(path)
		rs = append(rs, r{f, time.Since(start), len(s)})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].d > rs[j].d })
	for _, x := range rs[:min(8, len(rs))] {
		t.Logf("%s %d bytes %s", filepath.Base(x.f), x.n, x.d)
	}
}
