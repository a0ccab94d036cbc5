package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
)

// FuzzLoad feeds arbitrary bytes to the loader, seeded with the broken
// corpus and the valid playbooks. Load must not panic or hang, must return
// either a playbook and no errors or no playbook and at least one error, and
// every error must carry a full FILE:LINE:COL position. The helper playbooks
// the corpus includes sit next to the fuzzed file, so includes resolve.
//
//	go test ./engine -run='^$' -fuzz=FuzzLoad -fuzztime=5m
func FuzzLoad(f *testing.F) {
	const maxSeed = 32 << 10
	var seeds []string
	for _, pattern := range []string{"testdata/broken/*.yaml", "testdata/broken/inc/*.yaml", "testdata/valid/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) < 50 {
		f.Fatalf("only %d seed files", len(seeds))
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > maxSeed {
			continue // minimizing inputs this big stalls the fuzzer; TestBrokenPlaybooks covers them
		}
		f.Add(data)
	}
	dir := f.TempDir()
	for src, dst := range map[string]string{
		"testdata/broken/inc/child.yaml":                  "inc/child.yaml",
		"testdata/broken/inc/child-broken.yaml":           "inc/child-broken.yaml",
		"testdata/valid/every-construct-child.yaml":       "every-construct-child.yaml",
		"testdata/broken/inc/cycle-b.yaml":                "inc/cycle-b.yaml",
		"testdata/broken/include-cycle.yaml":              "include-cycle.yaml",
		"testdata/broken/include-with-nonparam.yaml":      "include-with-nonparam.yaml",
		"testdata/valid/every-construct.yaml":             "every-construct.yaml",
		"testdata/broken/include-broken-child.yaml":       "include-broken-child.yaml",
		"testdata/broken/with-secret-to-plain-param.yaml": "with-secret-to-plain-param.yaml",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			f.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o700); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	path := filepath.Join(dir, "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// a hang detector, not a speed assertion: a load that takes this
		// long is stuck, and crashing the worker records the input
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic("engine.Load did not return within 20s: it hangs on this input")
		})
		pb, diags := engine.Load(path)
		watchdog.Stop()
		errs := diags.Errors()
		switch {
		case pb == nil && len(errs) == 0:
			t.Fatalf("Load returned no playbook and no error (diagnostics: %v)", diags)
		case pb != nil && len(errs) > 0:
			t.Fatalf("Load returned a playbook and errors: %v", errs)
		}
		for _, d := range errs {
			if d.Pos.File == "" || d.Pos.Line < 1 || d.Pos.Col < 1 {
				t.Fatalf("error without a full position: %q (%+v)", d.String(), d.Pos)
			}
			if strings.TrimSpace(d.Msg) == "" {
				t.Fatalf("error without a message at %s", d.Pos)
			}
		}
		_ = diags.Error()
	})
}
