package mysqld

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// DefaultAdminUser is the account Bootstrap creates when AdminUser is empty.
const DefaultAdminUser = "admin"

// DefaultBufferPool is innodb_buffer_pool_size when BufferPool is empty.
const DefaultBufferPool = "64M"

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Instance is one mysqld on a loopback address, laid out like a production
// node: the instance folder Root/Name holds dbdata/, logfile/, tmp/, socket/,
// pid/ and the option file my<port>.conf.
//
// Fill in the exported fields, then call Create (new data folder), Start,
// WaitReady and Bootstrap; or Provision, which does all four. An Instance is
// safe for use by several goroutines.
type Instance struct {
	// Install is the MySQL install to run.
	Install *Install
	// Root is the folder holding the instance folder.
	Root string
	// Name is the instance folder's name; empty means the port number.
	Name string
	// Host is the loopback IPv4 address mysqld binds (127.x.y.z).
	Host string
	// Port is the TCP port mysqld listens on.
	Port int
	// ServerID is server-id; 0 derives one from Host and Port.
	ServerID uint32
	// AdminUser is the account Bootstrap creates for host '127.%' with all
	// privileges; empty means DefaultAdminUser.
	AdminUser string
	// AdminPassword is AdminUser's password (also set for root@localhost by
	// Bootstrap). Create generates a random one when it is empty. It is kept
	// in memory only: never written to a file or an error.
	AdminPassword string
	// Bare starts mysqld directly instead of under mysqld_safe. Without the
	// supervisor, a restart requested by the server (as after CLONE INSTANCE)
	// fails with error 3707.
	Bare bool
	// BufferPool is innodb_buffer_pool_size; empty means DefaultBufferPool.
	BufferPool string
	// Extra holds more option lines for the [mysqld] group, such as
	// "plugin-load-add=mysql_clone.so".
	Extra []string

	mu           sync.Mutex
	proc         *process // the process we started (mysqld_safe, or mysqld when Bare)
	created      bool     // Create made the data folder: root still has no password
	bootstrapped bool
}

// Addr returns "host:port".
func (i *Instance) Addr() string { return net.JoinHostPort(i.Host, strconv.Itoa(i.Port)) }

// String names the instance in messages: "mysqld 127.0.0.2:16315".
func (i *Instance) String() string { return "mysqld " + i.Addr() }

// Dir returns the instance folder Root/Name.
func (i *Instance) Dir() string {
	name := i.Name
	if name == "" {
		name = strconv.Itoa(i.Port)
	}
	return filepath.Join(i.Root, name)
}

// DataDir returns the data folder, Dir()/dbdata.
func (i *Instance) DataDir() string { return filepath.Join(i.Dir(), "dbdata") }

// ConfigPath returns the option file, Dir()/my<port>.conf.
func (i *Instance) ConfigPath() string {
	return filepath.Join(i.Dir(), "my"+strconv.Itoa(i.Port)+".conf")
}

// SocketPath returns the unix socket, Dir()/socket/mysql.sock.
func (i *Instance) SocketPath() string { return filepath.Join(i.Dir(), "socket", "mysql.sock") }

// PIDFile returns mysqld's pid file, Dir()/pid/mysqld.pid.
func (i *Instance) PIDFile() string { return filepath.Join(i.Dir(), "pid", "mysqld.pid") }

// ErrorLog returns mysqld's error log, Dir()/logfile/error.log.
func (i *Instance) ErrorLog() string { return filepath.Join(i.Dir(), "logfile", "error.log") }

// OutLog returns the file receiving mysqld_safe's (or bare mysqld's)
// standard output and error, Dir()/logfile/out.log.
func (i *Instance) OutLog() string { return filepath.Join(i.Dir(), "logfile", "out.log") }

// TmpDir returns mysqld's tmpdir, Dir()/tmp.
func (i *Instance) TmpDir() string { return filepath.Join(i.Dir(), "tmp") }

// User returns the admin account name.
func (i *Instance) User() string {
	if i.AdminUser == "" {
		return DefaultAdminUser
	}
	return i.AdminUser
}

// serverID returns ServerID or one derived from Host and Port.
func (i *Instance) serverID() uint32 {
	if i.ServerID != 0 {
		return i.ServerID
	}
	h := fnv.New32a()
	h.Write([]byte(i.Addr()))
	if id := h.Sum32(); id != 0 {
		return id
	}
	return 1
}

// Validate checks the configuration: a loopback IPv4 host, a port, an
// absolute Root and a socket path short enough for Linux.
func (i *Instance) Validate() error {
	if i.Install == nil {
		return fmt.Errorf("%s: no Install: call mysqld.Locate first", i)
	}
	ip := net.ParseIP(i.Host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: host %q is not a loopback IPv4 address (127.x.y.z); the lab binds loopback only", i, i.Host)
	}
	if i.Port <= 0 || i.Port > 65535 {
		return fmt.Errorf("%s: port %d is out of range 1-65535", i, i.Port)
	}
	if !filepath.IsAbs(i.Root) {
		return fmt.Errorf("%s: Root %q must be an absolute folder", i, i.Root)
	}
	if strings.ContainsRune(i.Name, '/') || i.Name == "." || i.Name == ".." {
		return fmt.Errorf("%s: Name %q must be a plain folder name", i, i.Name)
	}
	if n := len(i.SocketPath()); n > maxSocketPath {
		return fmt.Errorf("%s: socket path %s is %d bytes, longer than Linux's limit of %d: use a shorter Root", i, i.SocketPath(), n, maxSocketPath)
	}
	return nil
}

// Config returns the text of the option file.
func (i *Instance) Config() string {
	pool := i.BufferPool
	if pool == "" {
		pool = DefaultBufferPool
	}
	in := i.Install
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# %s, written by flow's lab/mysqld.", i)
	line("[mysqld]")
	if os.Geteuid() == 0 {
		line("user=root")
	}
	line("basedir=%s", in.BaseDir)
	line("datadir=%s", i.DataDir())
	line("tmpdir=%s", i.TmpDir())
	line("socket=%s", i.SocketPath())
	line("pid-file=%s", i.PIDFile())
	line("log-error=%s", i.ErrorLog())
	line("plugin-dir=%s", in.PluginDir())
	line("lc-messages-dir=%s", in.MessagesDir())
	line("character-sets-dir=%s", in.CharsetsDir())
	line("secure-file-priv=")
	line("bind-address=%s", i.Host)
	line("port=%d", i.Port)
	line("report_host=%s", i.Host)
	line("report_port=%d", i.Port)
	line("skip-name-resolve")
	line("mysqlx=OFF")
	line("server-id=%d", i.serverID())
	line("gtid-mode=ON")
	line("enforce-gtid-consistency=ON")
	line("log-bin=mysql-bin")
	line("relay-log=relay-bin")
	line("log-replica-updates=ON")
	line("innodb_buffer_pool_size=%s", pool)
	line("innodb_redo_log_capacity=%s", redoLogCapacity)
	line("max_connections=200")
	// A small footprint, so that a dozen instances fit a test machine: about
	// 300 MB RSS each instead of 540 MB with the defaults.
	line("innodb_log_buffer_size=4M")
	// Linux's native AIO contexts are machine-wide (fs.aio-max-nr, 65536 by
	// default) and InnoDB takes 256 events per I/O thread: with the default
	// 4 read + 4 write threads an instance takes about 2,300, so only 28
	// instances start (an 8-shard lab has 48 nodes);
	// one thread each takes about 770, and native AIO stays on as in
	// production.
	line("innodb_read_io_threads=1")
	line("innodb_write_io_threads=1")
	line("innodb_buffer_pool_load_at_startup=OFF")
	line("innodb_buffer_pool_dump_at_shutdown=OFF")
	line("key_buffer_size=1M")
	line("performance_schema_digests_size=1000")
	line("performance_schema_events_statements_history_long_size=100")
	line("performance_schema_events_stages_history_long_size=100")
	line("performance_schema_events_waits_history_long_size=100")
	line("performance_schema_events_transactions_history_long_size=100")
	line("performance_schema_accounts_size=20")
	line("performance_schema_hosts_size=20")
	line("performance_schema_users_size=20")
	line("performance_schema_max_thread_instances=300")
	for _, x := range i.Extra {
		line("%s", x)
	}
	line("")
	line("[client]")
	line("socket=%s", i.SocketPath())
	line("host=%s", i.Host)
	line("port=%d", i.Port)
	return b.String()
}

// WriteConfig writes Config() to ConfigPath().
func (i *Instance) WriteConfig() error {
	if err := os.WriteFile(i.ConfigPath(), []byte(i.Config()), 0o644); err != nil {
		return fmt.Errorf("%s: write option file: %w", i, err)
	}
	return nil
}

// Create makes the instance folder with its subfolders, a data folder copied
// from the install's template (without auto.cnf, so the server makes a fresh
// server_uuid) and the option file. It generates AdminPassword when empty.
// The instance folder must not hold a data folder yet.
func (i *Instance) Create(ctx context.Context) error {
	if err := i.Validate(); err != nil {
		return err
	}
	if entries, err := os.ReadDir(i.DataDir()); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s: data folder %s already exists: remove %s or pick another Name", i, i.DataDir(), i.Dir())
	}
	for _, sub := range []string{"logfile", "tmp", "socket", "pid"} {
		if err := os.MkdirAll(filepath.Join(i.Dir(), sub), 0o750); err != nil {
			return fmt.Errorf("%s: %w", i, err)
		}
	}
	tmpl, err := i.Install.Template(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", i, err)
	}
	if err := os.Remove(i.DataDir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", i, err)
	}
	if err := copyTree(tmpl, i.DataDir()); err != nil {
		return fmt.Errorf("%s: copy the template data folder: %w", i, err)
	}
	if i.AdminPassword == "" {
		i.AdminPassword = NewPassword()
	}
	i.mu.Lock()
	i.created, i.bootstrapped = true, false
	i.mu.Unlock()
	return i.WriteConfig()
}

// Provision creates, starts, waits for and bootstraps a new instance.
func (i *Instance) Provision(ctx context.Context) error {
	if err := i.Create(ctx); err != nil {
		return err
	}
	if err := i.Start(ctx); err != nil {
		return err
	}
	if err := i.WaitReady(ctx); err != nil {
		_ = i.Stop(context.WithoutCancel(ctx))
		return err
	}
	if err := i.Bootstrap(ctx); err != nil {
		_ = i.Stop(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// NewPassword returns a random password (26 characters, 130 bits, from
// crypto/rand).
func NewPassword() string { return rand.Text() }
