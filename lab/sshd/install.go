package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Binary is the OpenSSH server binary Start runs.
const Binary = "/usr/sbin/sshd"

// policyRC is Debian's hook that decides whether package scripts may start
// services; exit status 101 forbids it.
const policyRC = "/usr/sbin/policy-rc.d"

// installLock serialises installs by concurrent test binaries.
var installLock = filepath.Join(os.TempDir(), "flow-lab-sshd-install.lock")

// Installed reports whether the OpenSSH server binary is present.
func Installed() bool {
	fi, err := os.Stat(Binary)
	return err == nil && fi.Mode().IsRegular()
}

// EnsureInstalled installs Debian's openssh-server package when Binary is
// missing: apt-get update, then apt-get install -y --no-install-recommends
// openssh-server, using the machine's own apt sources. A policy-rc.d that
// forbids service starts must be in place (one is created for the install
// and removed afterwards when there is none), so the package's own sshd is
// never started on port 22. It needs root and says so otherwise. ctx bounds
// the whole install.
func EnsureInstalled(ctx context.Context) error {
	if Installed() {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("OpenSSH server is not installed (%s is missing) and installing it needs root; "+
			"run as root: apt-get install -y --no-install-recommends openssh-server", Binary)
	}
	lock := flock.New(installLock)
	ok, err := lock.TryLockContext(ctx, 100*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("waiting for the install lock %s: %v", installLock, err)
	}
	defer func() { _ = lock.Unlock() }()
	if Installed() { // another process installed it while we waited
		return nil
	}

	cleanup, err := forbidServiceStarts(ctx)
	if err != nil {
		return err
	}
	defer cleanup()

	if err := apt(ctx, "update"); err != nil {
		return err
	}
	if err := apt(ctx, "install", "-y", "--no-install-recommends", "openssh-server"); err != nil {
		return err
	}
	if !Installed() {
		return fmt.Errorf("apt-get install openssh-server succeeded but %s is still missing", Binary)
	}
	return nil
}

// forbidServiceStarts makes sure policy-rc.d forbids starting services. It
// creates one when there is none (the returned cleanup removes it) and
// refuses to go on when an existing one would allow sshd to start.
func forbidServiceStarts(ctx context.Context) (cleanup func(), err error) {
	if _, err := os.Stat(policyRC); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policyRC, []byte("#!/bin/sh\n# Temporary, written by flow lab/sshd: start no services.\nexit 101\n"), 0o755); err != nil {
			return nil, fmt.Errorf("write %s: %w", policyRC, err)
		}
		return func() { _ = os.Remove(policyRC) }, nil
	}
	err = exec.CommandContext(ctx, policyRC, "ssh", "start").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 101 {
		return func() {}, nil
	}
	return nil, fmt.Errorf("refusing to install openssh-server: %s does not forbid starting services "+
		"(`%s ssh start` gave %v, want exit status 101), so the package would start sshd on port 22 on every address",
		policyRC, policyRC, err)
}

// apt runs apt-get non-interactively and reports its output's end on
// failure.
func apt(ctx context.Context, args ...string) error {
	full := append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", full...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %v; output ends with:\n%s", strings.Join(args, " "), err, tail(out.String(), 15))
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
