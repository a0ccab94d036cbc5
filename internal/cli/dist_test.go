package cli

import (
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDistAmd64IsStatic runs the linux/amd64 command of `make dist` (read
// from `make -n`, so the Makefile's real flags are tested) into a temporary
// folder, then checks the binary is static (no ELF interpreter, no shared
// libraries) and prints the stamped version. The arm64 command is checked
// to be there with the same flags, not run (it is a second full build).
func TestDistAmd64IsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary (a full build with -trimpath)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	const version = "v0.0.0-disttest"
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	plan := exec.CommandContext(ctx, "make", "-n", "-s", "dist", "VERSION="+version, "GO="+goBin)
	plan.Dir = repoRoot
	out, err := plan.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n dist: %v\n%s", err, out)
	}
	var amd64 string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, " build ") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "-X github.com/flowdba/flow/internal/cli.Version=" + version, "./cmd/flow"} {
			if !strings.Contains(l, want) {
				t.Errorf("make dist builds without %q: %s", want, l)
			}
		}
		switch {
		case strings.Contains(l, "GOARCH=amd64"):
			amd64 = l
		case strings.Contains(l, "GOARCH=arm64"):
		default:
			t.Errorf("make dist builds for an unexpected platform: %s", l)
		}
	}
	if amd64 == "" || !strings.Contains(string(out), "GOARCH=arm64") {
		t.Fatalf("make dist does not build both linux/amd64 and linux/arm64:\n%s", out)
	}
	const target = "-o dist/flow-linux-amd64 "
	if !strings.Contains(amd64, target) {
		t.Fatalf("make dist's amd64 build does not write dist/flow-linux-amd64: %s", amd64)
	}
	bin := filepath.Join(t.TempDir(), "flow-linux-amd64")
	build := exec.CommandContext(ctx, "bash", "-c", strings.Replace(amd64, target, "-o '"+bin+"' ", 1))
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", amd64, err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("the amd64 binary is for %v", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the amd64 binary has a %v program header: it is not static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the amd64 binary needs shared libraries %v", libs)
	}

	for _, args := range [][]string{{"version"}, {"--version"}} {
		got, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, args[0], err, got)
		}
		if !strings.Contains(string(got), version) {
			t.Errorf("flow %s printed %q, want the stamped version %s", args[0], got, version)
		}
	}
	if got, _ := exec.CommandContext(ctx, bin, "version").Output(); string(got) != "flow "+version+"\n" {
		t.Errorf("flow version printed %q, want %q", got, "flow "+version+"\n")
	}
}
