package engine_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
)

// shipped is a playbook a site must not fork: a for_each group, a nested
// include, a register a later step reads.
const shipped = `name: shipped
params:
  nodes: {type: list, default: [a, b]}
steps:
  - name: Step 01 read
    set: {total: len(nodes)}
  - name: Step 02 per node
    for_each: nodes
    as: node
    steps:
      - name: "Step 02 touch {{ node }}"
        testprobe: {key: ext-touch, changes: true, msg: "touch {{ node }}"}
  - name: Step 03 open
    testprobe: {key: ext-open, changes: true, msg: "open {{ total }}"}
  - name: Step 04 checks
    include: checks.yaml
  - name: Step 05 done
    testprobe: {key: ext-done, msg: "done"}
`

const checks = `name: checks
steps:
  - name: check disk
    testprobe: {key: ext-disk, msg: "check disk"}
  - name: check memory
    testprobe: {key: ext-mem, msg: "check memory"}
`

// order lists the probe messages of a run's log, in order.
func order(log string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\] (touch \S+|open \d+|check \w+|done|x-[^\n]*)\n`).FindAllStringSubmatch(log, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestExtendWithoutAFork: a site inserts steps before and after named steps
// (one inside a for_each group, seeing its item), replaces one, skips a
// check of a nested include, and the shipped files stay as they are: a
// second include of the same file in the same run is unchanged.
func TestExtendWithoutAFork(t *testing.T) {
	const site = `name: site
steps:
  - name: site start
    include: shipped.yaml
    extend:
      - after: Step 03 open
        steps:
          - name: site notify
            testprobe: {key: ext-site, msg: "x-notified {{ total }}"}
      - before: "Step 02 touch {{ node }}"
        steps:
          - testprobe: {key: ext-site-pre, msg: "x-before {{ node }}"}
      - replace: Step 05 done
        steps:
          - testprobe: {key: ext-site-done, msg: "x-done"}
      - skip: check disk
        reason: thin volumes
  - name: plain again
    include: shipped.yaml
    with: {nodes: [c]}
`
	files := map[string]string{"shipped.yaml": shipped, "checks.yaml": checks}
	res := run(t, site, engine.ModeRun, files, "ext-touch", "ext-open", "ext-disk", "ext-mem", "ext-done", "ext-site", "ext-site-pre", "ext-site-done")
	wantExit(t, res, engine.ExitOK)
	want := []string{
		"x-before a", "touch a", "x-before b", "touch b", "open 2", "x-notified 2", "check memory", "x-done",
		"touch c", "open 1", "check disk", "check memory", "done",
	}
	if got := order(res.Log); strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("run order:\n got %s\nwant %s\nlog:\n%s", strings.Join(got, " | "), strings.Join(want, " | "), res.Log)
	}
	wantRuns(t, "ext-disk", 1) // only in the second, unextended include
	wantRuns(t, "ext-done", 1)
	wantIn(t, "log", res.Log, "check disk skipped: skipped by the site's extend: at test.yaml:16 (thin volumes)")
	if !regexp.MustCompile(`\[ *test\.yaml: +8\] .*x-notified 2`).MatchString(res.Log) {
		t.Errorf("the site's step does not log under the site's file and line:\n%s", res.Log)
	}

	dry := run(t, site, engine.ModeDryRun, files)
	wantExit(t, dry, engine.ExitOK)
	wantIn(t, "dry run", dry.Out, "[WILL SKIP] checks.yaml:3 check disk — skipped by the site's extend: at test.yaml:16 (thin volumes)",
		"test.yaml:8 site notify")
}

// TestExtendRefusals: a change that names no step, or several, or removes
// what a later step reads, is refused at load, naming the site's line.
func TestExtendRefusals(t *testing.T) {
	files := map[string]string{"shipped.yaml": shipped, "checks.yaml": checks}
	d := loadFail(t, "name: s\nsteps:\n  - include: shipped.yaml\n    extend:\n      - after: Step 03 opne\n        steps: [{log: {msg: x}}]\n", files,
		`shipped.yaml has no step named "Step 03 opne"`)
	if !strings.HasSuffix(d.Pos.String(), ":5:16") || !strings.Contains(d.Msg, `did you mean "Step 03 open"?`) {
		t.Errorf("diagnostic %s: want line 5:16 and a did-you-mean", d)
	}
	twice := strings.Replace(shipped, "  - name: Step 05 done", "  - name: Step 04b\n    steps:\n      - name: Step 03 open\n        log: {msg: again}\n  - name: Step 05 done", 1)
	loadFail(t, "name: s\nsteps:\n  - include: shipped.yaml\n    extend:\n      - skip: Step 03 open\n", map[string]string{"shipped.yaml": twice, "checks.yaml": checks},
		`"Step 03 open" names 2 steps`)
	loadOK(t, "name: s\nsteps:\n  - include: shipped.yaml\n    extend:\n      - skip: Step 04b > Step 03 open\n", map[string]string{"shipped.yaml": twice, "checks.yaml": checks})
	d = loadFail(t, "name: s\nsteps:\n  - include: shipped.yaml\n    extend:\n      - skip: Step 01 read\n", files, "unknown name total")
	if !strings.Contains(d.Detail, `total is defined by "Step 01 read" (shipped.yaml:5), which the site skips at test.yaml:5`) {
		t.Errorf("detail %q does not name the skip", d.Detail)
	}
	loadFail(t, "name: s\nsteps:\n  - include: shipped.yaml\n    extend:\n      - skip: Step 01 read\n        steps: []\n", files,
		"`skip:` takes no `steps:`")
	loadFail(t, "name: s\nsteps:\n  - log: {msg: x}\n    extend:\n      - skip: Step 01 read\n", files, "`extend:` only goes with `include:`")
}
