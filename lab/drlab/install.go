package drlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/sshd"
)

// installScript is lab/mysql/install.sh relative to the repository root.
var installScript = filepath.Join("lab", "mysql", "install.sh")

// EnsureMySQL returns the MySQL install (mysqld.Locate: $FLOW_MYSQL_HOME or
// <repo>/.lab/mysql), running lab/mysql/install.sh first when it is
// missing. The script is found in the repository holding the working
// directory; outside the repository set FLOW_MYSQL_HOME to an install made
// there. The script's output goes to logw.
func EnsureMySQL(ctx context.Context, logw io.Writer) (*mysqld.Install, error) {
	in, err := mysqld.Locate()
	if err == nil {
		return in, nil
	}
	root, rerr := repoRoot()
	if rerr != nil {
		return nil, fmt.Errorf("%v; and the install script cannot be found: %v", err, rerr)
	}
	script := filepath.Join(root, installScript)
	if _, serr := os.Stat(script); serr != nil {
		return nil, fmt.Errorf("%v; and %s is missing", err, script)
	}
	args := []string{script}
	if home := os.Getenv(mysqld.EnvHome); home != "" {
		args = append(args, home)
	}
	fmt.Fprintf(logw, "lab: MySQL is not installed: running %s\n", script)
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("install MySQL with %s: %w", script, err)
	}
	return mysqld.Locate()
}

// repoRoot returns the first folder above the working directory holding
// go.mod.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("no go.mod above " + wd + " (run flow from the repository, or set " + mysqld.EnvHome + ")")
		}
	}
}

// EnsureSSH installs Debian's OpenSSH server when it is missing (see
// sshd.EnsureInstalled; needs root).
func EnsureSSH(ctx context.Context) error { return sshd.EnsureInstalled(ctx) }
