package mysqld

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// redoLogCapacity is innodb_redo_log_capacity for the template and every
// instance: small, so that copying a data folder is quick.
const redoLogCapacity = "32M"

// templateTimeout bounds the creation of a template when ctx has no deadline.
const templateTimeout = 2 * time.Minute

// TemplateDir returns the folder of the cached, freshly initialised data
// folder for this install's version (it may not exist yet).
func (in *Install) TemplateDir() string {
	return filepath.Join(in.Dir, "templates", in.Version, "dbdata")
}

// Template returns the cached template data folder, creating it with
// `mysqld --initialize-insecure` the first time. Concurrent callers, also in
// other processes, wait on a lock file instead of initialising twice. The
// template has an empty-password root@localhost and no auto.cnf.
func (in *Install) Template(ctx context.Context) (string, error) {
	dir := in.TemplateDir()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, templateTimeout)
		defer cancel()
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("template data folder: %w", err)
	}
	lock := flock.New(filepath.Join(parent, "lock"))
	ok, err := lock.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		return "", fmt.Errorf("template data folder: waiting for the lock %s held by another process initialising MySQL: %v", lock.Path(), err)
	}
	defer func() { _ = lock.Unlock() }()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // made by another process while we waited
	}

	work := filepath.Join(parent, "init."+strconv.Itoa(os.Getpid()))
	if err := os.RemoveAll(work); err != nil {
		return "", fmt.Errorf("template data folder: %w", err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", fmt.Errorf("template data folder: %w", err)
	}
	data := filepath.Join(work, "dbdata")
	errLog := filepath.Join(work, "init.err")
	args := []string{
		"--no-defaults",
		"--initialize-insecure",
		"--basedir=" + in.BaseDir,
		"--datadir=" + data,
		"--lc-messages-dir=" + in.MessagesDir(),
		"--character-sets-dir=" + in.CharsetsDir(),
		"--plugin-dir=" + in.PluginDir(),
		"--innodb-redo-log-capacity=" + redoLogCapacity,
		"--log-error=" + errLog,
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.CommandContext(ctx, in.Bin("mysqld"), args...)
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("template data folder: `mysqld --initialize-insecure` into %s failed: %v\n%s%s", data, err, out.String(), tailFile(errLog, 20))
	}
	// auto.cnf holds server_uuid: every copy must make its own.
	for _, name := range []string{"auto.cnf", "ib_buffer_pool"} {
		if err := os.Remove(filepath.Join(data, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("template data folder: %w", err)
		}
	}
	if err := os.Rename(data, dir); err != nil {
		return "", fmt.Errorf("template data folder: %w", err)
	}
	_ = os.RemoveAll(work)
	return dir, nil
}

// copyTree copies the folder src to dst (which must not exist), keeping file
// modes. It skips the contents of #innodb_temp, which mysqld recreates.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if d.Name() == "#innodb_temp" {
				return filepath.SkipDir
			}
			return nil
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("copy %s: not a regular file or folder", path)
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tailFile returns the last n lines of a file, prefixed with its name, or ""
// when it cannot be read.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("last lines of %s:\n%s\n", path, bytes.Join(lines, []byte("\n")))
}

// childEnv is the environment for MySQL programs: ours without MYSQL_*
// variables (such as MYSQL_PWD or MYSQL_UNIX_PORT) that would change them.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSQL_") {
			env = append(env, kv)
		}
	}
	return env
}
