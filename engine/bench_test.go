package engine_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/sirupsen/logrus"
)

// bigPlaybook generates a playbook of n steps mixing the step types and
// common keys a real playbook uses (guards, registers, templates, groups).
func bigPlaybook(n int) string {
	var b strings.Builder
	b.WriteString(`name: big
params:
  threshold: {type: int, default: 45}
  pw: {type: string, default: secret, secret: true}
vars:
  nodes: [n1, n2, n3]
connections:
  db: {mysql: {host: 127.0.0.1, port: 3306, user: root, password: "{{ pw }}"}}
  box: {ssh: {host: 127.0.0.1, user: flow}}
steps:
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: \"Step %04d {{ threshold }}\"\n    id: s%d\n", i, i)
		switch i % 6 {
		case 0:
			fmt.Fprintf(&b, "    set: {v%d: \"threshold + %d\"}\n", i, i)
		case 1:
			fmt.Fprintf(&b, "    assert: {that: \"v%d > threshold\", message: \"v%d is {{ v%d }}\"}\n", i-1, i-1, i-1)
		case 2:
			fmt.Fprintf(&b, "    when: steps.s%d.ok\n    sql: {on: db, query: \"SELECT {{ v%d }} AS n, {{ ident('t%d') }}\"}\n    register: r%d\n", i-1, i-2, i, i)
		case 3:
			fmt.Fprintf(&b, "    pre: [\"r%d.count >= 0\"]\n    sql: {on: db, exec: \"UPDATE t SET a = {{ v%d }} WHERE id = {{ r%d.row.n ?? 0 }}\"}\n", i-1, i-3, i-1)
		case 4:
			fmt.Fprintf(&b, "    when: \"len(nodes) > 0\"\n    ssh: {on: box, command: \"ls {{ '/tmp/' + string(v%d) }}\", stdin: \"{{ pw }}\"}\n    retries: 2\n    interval: 1s\n", i-4)
		case 5:
			fmt.Fprintf(&b, "    for_each: nodes\n    parallel: 2\n    steps:\n      - log: {msg: \"{{ item }} {{ v%d }}\", level: debug}\n", i-5)
		}
	}
	return b.String()
}

func writeBench(b *testing.B, text string) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkLoad2000 loads and validates a generated 2,000-step playbook
// (YAML, strict keys, every expression and template compiled).
func BenchmarkLoad2000(b *testing.B) {
	const n = 2000
	path := writeBench(b, bigPlaybook(n))
	if pb, diags := engine.Load(path); pb == nil {
		b.Fatalf("load: %v", diags)
	}
	b.ReportAllocs()
	for b.Loop() {
		if pb, _ := engine.Load(path); pb == nil {
			b.Fatal("load failed")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/step")
}

// benchRun runs a loaded playbook b.N times with the log discarded.
func benchRun(b *testing.B, pb *engine.Playbook, steps int) {
	b.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.InfoLevel) // the debug lines are discarded
	b.ReportAllocs()
	for b.Loop() {
		r := engine.NewRunner(engine.Options{Log: log, Out: io.Discard})
		if err := r.Run(context.Background(), pb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(steps), "ns/step")
}

// BenchmarkRunLogSteps measures the engine's per-step overhead: 1,000
// `log` steps at level debug, with logging discarded.
func BenchmarkRunLogSteps(b *testing.B) {
	const n = 1000
	var sb strings.Builder
	sb.WriteString("name: noop\nsteps:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: Step %04d\n    log: {msg: \"step %d\", level: debug}\n", i, i)
	}
	pb, diags := engine.Load(writeBench(b, sb.String()))
	if pb == nil {
		b.Fatalf("load: %v", diags)
	}
	benchRun(b, pb, n)
}

// BenchmarkRunProbeSteps: 1,000 test-only no-op steps, each with a `when`
// guard, so the figure includes evaluating one expression per step.
func BenchmarkRunProbeSteps(b *testing.B) {
	const n = 1000
	var sb strings.Builder
	sb.WriteString("name: noop\nvars: {x: 1}\nsteps:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: Step %04d\n    when: x == 1\n    testprobe: {key: bench}\n", i)
	}
	pb, diags := engine.Load(writeBench(b, sb.String()))
	if pb == nil {
		b.Fatalf("load: %v", diags)
	}
	benchRun(b, pb, n)
}
