package cli

import (
	"os"
	"path/filepath"
)

// The package's tests that give no --state-dir keep their journals in a
// folder of this test process, never in the state folder of the DBA who
// runs them (nor one shared with another package's tests and its run
// lock).
func init() {
	if os.Getenv("FLOW_STATE_DIR") != "" {
		return
	}
	if dir, err := os.MkdirTemp("", "flow-cli-test-state-"); err == nil {
		os.Setenv("XDG_STATE_HOME", filepath.Clean(dir))
	}
}
