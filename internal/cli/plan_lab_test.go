package cli

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/lab/drlab"
	"github.com/flowdba/flow/lab/drlab/drlabtest"
)

// TestMain shares one DR lab among the package's lab tests and stops it at
// the end. (TestLabCommandsEndToEnd starts and removes a lab of its own
// first, under the same lock.)
func TestMain(m *testing.M) { drlabtest.Main(m) }

// TestPlanBoundToItsRunOnTheLab: on the DR lab, a plan of flashback-verify
// runs bound to the live state; a plan of a small state-changing playbook
// runs as made; and when the live state changes between plan and run (a
// standby slave disabled on the router, a node's read_only switched) the
// bound run refuses with exit 3, naming the step, the field and both
// values, and changes nothing.
func TestPlanBoundToItsRunOnTheLab(t *testing.T) {
	lab := drlabtest.Lab(t, 1)
	ini := lab.IniPath()
	cfg, err := config.Load(ini)
	if err != nil {
		t.Fatal(err)
	}
	secrets := cfg.Secrets()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	flow := func(want int, args ...string) (string, string) {
		t.Helper()
		start := time.Now()
		code, stdout, stderr := runFlow(append(args, "-c", ini, "--state-dir", state)...)
		if code != want {
			t.Fatalf("flow %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, tailLines(stdout, 40), stderr)
		}
		for _, s := range secrets {
			if strings.Contains(stdout+stderr, s) {
				t.Fatalf("flow %s printed a secret", strings.Join(args, " "))
			}
		}
		t.Logf("flow %s %s: exit %d in %s", args[0], filepath.Base(args[1]), code, time.Since(start).Round(time.Millisecond))
		return stdout, stderr
	}

	verify := filepath.Join("..", "..", "playbooks", "flashback-verify.yaml")
	vplan := filepath.Join(dir, "verify.plan.json")
	stdout, _ := flow(0, "plan", verify, "--out", vplan)
	if !strings.Contains(stdout, "Plan written to "+vplan) {
		t.Fatalf("flow plan --out:\n%s", tailLines(stdout, 20))
	}
	stdout, _ = flow(0, "run", verify, "--plan", vplan, "--log-level", "info")
	if !strings.Contains(stdout, "observation(s) as planned, 0 change(s) as planned") {
		t.Fatalf("flow run --plan of flashback-verify:\n%s", tailLines(stdout, 20))
	}
	t.Logf("%s", lastLine(stdout, "Plan "+vplan+" applied"))

	// the drill's plan can be made (not run here: that is the whole drill)
	start := filepath.Join("..", "..", "playbooks", "flashback-start.yaml")
	splan := filepath.Join(dir, "start.plan.json")
	stdout, _ = flow(0, "plan", start, "--out", splan, "--var", "redo_path="+filepath.Join(dir, "redo.json"))
	t.Logf("%s", lastLine(stdout, "Plan written to"))

	small := filepath.Join("testdata", "plan-bind.yaml")
	n := labStandbySlave(lab)
	db, err := lab.OpenNode(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after the restore below: cleanups run last first
	v0 := nodeInt(t, db, "SELECT @@GLOBAL.max_connect_errors")
	t.Cleanup(func() { nodeExec(t, db, fmt.Sprintf("SET GLOBAL max_connect_errors = %d", v0)) })
	vars := func(v int) []string {
		return []string{"--var", "node_host=" + n.Host, "--var", "max_connect_errors=" + strconv.Itoa(v)}
	}

	// as planned
	plan := filepath.Join(dir, "small.plan.json")
	flow(0, append([]string{"plan", small, "--out", plan}, vars(v0+7)...)...)
	if v := nodeInt(t, db, "SELECT @@GLOBAL.max_connect_errors"); v != v0 {
		t.Fatalf("flow plan --out changed max_connect_errors to %d", v)
	}
	stdout, _ = flow(0, append([]string{"run", small, "--plan", plan, "--log-level", "info"}, vars(v0+7)...)...)
	if !strings.Contains(stdout, "2 observation(s) as planned, 1 change(s) as planned") {
		t.Fatalf("flow run --plan:\n%s", tailLines(stdout, 20))
	}
	if v := nodeInt(t, db, "SELECT @@GLOBAL.max_connect_errors"); v != v0+7 {
		t.Fatalf("the bound run set max_connect_errors to %d, want %d", v, v0+7)
	}

	ro0 := nodeInt(t, db, "SELECT @@GLOBAL.read_only")
	sro0 := nodeInt(t, db, "SELECT @@GLOBAL.super_read_only")
	cases := []struct {
		name   string
		inject func() (want []string, repair func())
	}{
		{"standby slave disabled on the router", func() ([]string, func()) {
			labRouterExec(t, lab, drlab.ClusterStandby, "dbscale disable dataserver "+n.Name)
			return []string{"plan-bind.yaml:24", "standby dataservers", "].status", `planned "Slave normal"`, "disabled"}, func() {
				labRouterExec(t, lab, drlab.ClusterStandby, "dbscale enable dataserver "+n.Name)
				labRouterExec(t, lab, drlab.ClusterStandby, "dbscale flashback dataserver "+n.Name+" force online")
				// the next case plans on this dataserver: wait until the
				// router shows it as it was planned (its slave back up)
				waitDataserverStatus(t, lab, drlab.ClusterStandby, n.Name, "Slave normal")
			}
		}},
		{"read_only switched on the node", func() ([]string, func()) {
			if ro0 == 1 {
				nodeExec(t, db, "SET GLOBAL read_only = OFF") // super_read_only goes off with it
			} else {
				nodeExec(t, db, "SET GLOBAL read_only = ON")
			}
			return []string{"plan-bind.yaml:27", "read-only state of the node", fmt.Sprintf("rows[0].read_only: planned %d, live %d", ro0, 1-ro0)}, func() {
				nodeExec(t, db, fmt.Sprintf("SET GLOBAL read_only = %d", ro0))
				nodeExec(t, db, fmt.Sprintf("SET GLOBAL super_read_only = %d", sro0))
			}
		}},
	}
	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			plan := filepath.Join(dir, fmt.Sprintf("drift%d.plan.json", i))
			flow(0, append([]string{"plan", small, "--out", plan}, vars(v0+9)...)...)
			want, repair := c.inject()
			defer repair()
			_, stderr := flow(3, append([]string{"run", small, "--plan", plan}, vars(v0+9)...)...)
			for _, w := range append(want, "drift from the plan "+plan, "Make a new plan") {
				if !strings.Contains(stderr, w) {
					t.Errorf("the refusal does not name %q:\n%s", w, stderr)
				}
			}
			if v := nodeInt(t, db, "SELECT @@GLOBAL.max_connect_errors"); v != v0+7 {
				t.Errorf("the refused run changed max_connect_errors to %d", v)
			}
			t.Logf("refused:\n%s", stderr)
		})
	}
}

// labStandbySlave is a standby node that is not its shard's master.
func labStandbySlave(lab *drlab.Lab) drlab.Node {
	for _, n := range lab.ClusterNodes(drlab.ClusterStandby) {
		if n.Index != drlab.MasterIndex(drlab.ClusterStandby) {
			return n
		}
	}
	panic("the lab has no standby slave")
}

func labRouterExec(t *testing.T, lab *drlab.Lab, cluster, stmt string) {
	t.Helper()
	db, err := lab.OpenRouter(cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s router: %s: %v", cluster, stmt, err)
	}
}

func nodeInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var v int
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func nodeExec(t *testing.T, db *sql.DB, stmt string) {
	t.Helper()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}

// waitDataserverStatus polls (bounded: 30 s, every 100 ms) until the
// router lists dataserver name with status want.
func waitDataserverStatus(t *testing.T, lab *drlab.Lab, cluster, name, want string) {
	t.Helper()
	db, err := lab.OpenRouter(cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	last := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rows, err := db.Query("dbscale show dataservers")
		if err != nil {
			last = err.Error()
			continue
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if rows.Scan(ptrs...) != nil {
				continue
			}
			row := map[string]string{}
			for i, c := range cols {
				row[c] = string(vals[i])
			}
			if row["servername"] == name {
				last = row["status"]
			}
		}
		rows.Close()
		if last == want {
			return
		}
	}
	t.Fatalf("the %s router lists dataserver %s as %q after 30 s, want %q", cluster, name, last, want)
}
