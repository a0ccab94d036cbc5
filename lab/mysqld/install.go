// Package mysqld manages real MySQL server instances on loopback addresses for
// flow's tests and lab.
//
// It finds the private MySQL install made by lab/mysql/install.sh (Locate),
// lays out instance folders the way a production node does (an instance
// folder holding dbdata/, logfile/, tmp/, socket/, pid/ and my<port>.conf),
// initialises data folders by copying a cached template, and starts mysqld
// under mysqld_safe (or bare), waits for it, stops it and connects to it.
package mysqld

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvHome is the environment variable that, when set, names the install
// folder instead of <repo root>/.lab/mysql.
const EnvHome = "FLOW_MYSQL_HOME"

// Install is a MySQL install made by lab/mysql/install.sh.
type Install struct {
	// Dir is the install folder (install.sh's DEST).
	Dir string
	// Prefix is Dir/prefix, where the Debian packages are unpacked.
	Prefix string
	// BaseDir is Dir/basedir: its bin/ holds mysqld, mysqld_safe, mysql,
	// mysqladmin and my_print_defaults. Every instance uses it as basedir.
	BaseDir string
	// Version is the server version from Dir/VERSION, e.g. "9.7.4".
	Version string
}

// Locate finds the install: the folder named by $FLOW_MYSQL_HOME if set,
// else .lab/mysql in the repository root (the first folder above the working
// directory holding go.mod). Its error says to run `make mysql`.
func Locate() (*Install, error) {
	if dir := os.Getenv(EnvHome); dir != "" {
		return LocateAt(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("locate MySQL: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return LocateAt(filepath.Join(dir, ".lab", "mysql"))
		}
		if filepath.Dir(dir) == dir {
			return nil, fmt.Errorf("locate MySQL: no go.mod above %s; set %s to the install folder or run `make mysql` in the repository", wd, EnvHome)
		}
	}
}

// LocateAt checks that dir holds a complete install and returns it.
func LocateAt(dir string) (*Install, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("locate MySQL in %s: %w", dir, err)
	}
	in := &Install{
		Dir:     abs,
		Prefix:  filepath.Join(abs, "prefix"),
		BaseDir: filepath.Join(abs, "basedir"),
	}
	v, err := os.ReadFile(filepath.Join(abs, "VERSION"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("MySQL is not installed in %s: run `make mysql` (or lab/mysql/install.sh %s)", abs, abs)
		}
		return nil, fmt.Errorf("MySQL install in %s: %w", abs, err)
	}
	in.Version = strings.TrimSpace(string(v))
	for _, p := range []string{in.Bin("mysqld"), in.Bin("mysqld_safe"), in.Bin("mysql"), filepath.Join(in.PluginDir(), "mysql_clone.so")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("MySQL install in %s is incomplete (%s is missing): run `make mysql` again", abs, p)
		}
	}
	return in, nil
}

// Bin returns the path of a program in BaseDir/bin, e.g. Bin("mysqld_safe").
func (in *Install) Bin(name string) string { return filepath.Join(in.BaseDir, "bin", name) }

// PluginDir is the folder holding server plugins such as mysql_clone.so.
func (in *Install) PluginDir() string {
	return filepath.Join(in.Prefix, "usr", "lib", "mysql", "plugin")
}

// MessagesDir is the folder for the lc-messages-dir option.
func (in *Install) MessagesDir() string { return filepath.Join(in.Prefix, "usr", "share", "mysql") }

// CharsetsDir is the folder for the character-sets-dir option.
func (in *Install) CharsetsDir() string { return filepath.Join(in.MessagesDir(), "charsets") }
