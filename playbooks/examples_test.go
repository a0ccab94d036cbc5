package playbooks_test

import (
	"strings"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// TestExamplesOnTheLab runs the read-only examples the README points DBAs
// to on the shared lab: the tutorial's playbook passes and, with a disk
// limit of 1 %, refuses naming every node; the site's verify with two checks
// added by `extend:` runs the shipped verify and then its own checks, and the
// lab's 128 MiB buffer pools make its buffer pool check refuse, naming the
// node (the site's step ran, in the place extend: put it).
func TestExamplesOnTheLab(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	requireHealthy(t, lab)

	res := drill(t, lab, "../examples/tutorial/standby-health.yaml", engine.ModeRun, "", nil)
	if code := engine.ExitCode(res.Err); code != engine.ExitOK {
		t.Fatalf("standby-health: exit %d: %v\n%s", code, res.Err, tail(res.Log))
	}
	nodes := lab.ClusterNodes(drlab.ClusterStandby)
	if !strings.Contains(res.Log, "standby nodes up, enabled and at most") {
		t.Errorf("standby-health did not log its summary:\n%s", tail(res.Log))
	}
	res = drill(t, lab, "../examples/tutorial/standby-health.yaml", engine.ModeRun, "", map[string]string{"disk_limit": "0"})
	if code := engine.ExitCode(res.Err); code != engine.ExitRefused {
		t.Fatalf("standby-health with disk_limit=0: exit %d, want %d: %v", code, engine.ExitRefused, res.Err)
	}
	for _, n := range nodes {
		if !strings.Contains(res.Err.Error(), n.Name+" uses ") {
			t.Errorf("the refusal does not name %s: %v", n.Name, res.Err)
		}
	}

	res = drill(t, lab, "../examples/extra-checks/flashback-verify.yaml", engine.ModeRun, "", nil)
	if code := engine.ExitCode(res.Err); code != engine.ExitRefused {
		t.Fatalf("extra-checks verify: exit %d, want %d (the lab's buffer pools are 128 MiB): %v\n%s", code, engine.ExitRefused, res.Err, tail(res.Log))
	}
	for _, want := range []string{"Step 08 site buffer pool of", "less than 1 GiB"} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("the refusal lacks %q: %v", want, res.Err)
		}
	}
	for _, want := range []string{"Step 08 preflight free disk exceeds the dataset", "Step 08 site disk keeps 20 % headroom after the clone"} {
		if !strings.Contains(res.Log, want) {
			t.Errorf("the run did not reach %q:\n%s", want, tail(res.Log))
		}
	}
	requireHealthy(t, lab)
}
