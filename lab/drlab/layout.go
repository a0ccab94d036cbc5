package drlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/flowdba/flow/lab/mysqld"
)

// Fixed facts of the lab's topology.
const (
	// MySQLPort is every node's MySQL port (production's).
	MySQLPort = 16315
	// RouterPort is both routers' port (production's).
	RouterPort = 16310
	// DefaultSSHPort is the sshd port unless Options.SSHPort says otherwise.
	DefaultSSHPort = 2222
	// DefaultDir is the lab folder unless Options.Dir says otherwise
	// (relative to the working directory).
	DefaultDir = ".flow-lab"
	// MaxShards bounds Options.Shards: each shard adds six mysqld of about
	// 330 MB each.
	MaxShards = 8
	// NodesPerShard is the number of MySQL nodes per shard and cluster.
	NodesPerShard = 3

	// ClusterPrimary and ClusterStandby name the two clusters.
	ClusterPrimary = "primary"
	ClusterStandby = "standby"
	// RoleMaster and RoleSlave are a node's role within its cluster.
	RoleMaster = "master"
	RoleSlave  = "slave"

	// AdminUser is the MySQL account flow uses on every node (all
	// privileges, host '127.%').
	AdminUser = "admin"
	// InternalUser is the account the routers use on the nodes and the
	// replicas replicate with (DBScale's dbscale_internal).
	InternalUser = "dbscale_internal"
	// RouterUser is the routers' admin login.
	RouterUser = "admin"
	// SSHUser is the login on every node host.
	SSHUser = "root"

	// DRServer and DRSource are the names of the primary router's DR link
	// to the standby router (as DBScale names them).
	DRServer = "slave_dbscale_server"
	DRSource = "slave_dbscale_source"

	// labFile is the lab's record inside Dir; iniFile is the playbooks'
	// config.
	labFile = "lab.json"
	iniFile = "flashback.ini"
	// labFormat is the version of lab.json's layout.
	labFormat = 1
)

// Clusters lists the two clusters, primary first.
var Clusters = []string{ClusterPrimary, ClusterStandby}

// clusterNet is the third octet of a cluster's addresses.
func clusterNet(cluster string) int {
	if cluster == ClusterStandby {
		return 2
	}
	return 1
}

// NodeHost returns the address of node normal_shard_index of a cluster:
// 127.0.1.(3K+i+1) for the primary, 127.0.2.(3K+i+1) for the standby.
func NodeHost(cluster string, shard, index int) string {
	return fmt.Sprintf("127.0.%d.%d", clusterNet(cluster), NodesPerShard*shard+index+1)
}

// RouterHost returns the address of a cluster's router (127.0.1.100 or
// 127.0.2.100).
func RouterHost(cluster string) string { return fmt.Sprintf("127.0.%d.100", clusterNet(cluster)) }

// NodeName returns DBScale's name of a node: normal_K_i.
func NodeName(shard, index int) string { return fmt.Sprintf("normal_%d_%d", shard, index) }

// DataSourceName returns the replication datasource of a shard: normal_K.
func DataSourceName(shard int) string { return fmt.Sprintf("normal_%d", shard) }

// MasterIndex is the index of a cluster's master within each shard: 0 for
// the primary, 1 for the standby (not the first row on purpose: playbooks
// must find roles from data).
func MasterIndex(cluster string) int {
	if cluster == ClusterStandby {
		return 1
	}
	return 0
}

// Lab is a lab's record, DIR/lab.json: everything needed to reach, restart
// and stop it. It holds the lab's passwords: never log it.
type Lab struct {
	Format int `json:"format"`
	// Dir is the lab folder (absolute).
	Dir    string `json:"dir"`
	Shards int    `json:"shards"`
	// CreatedAt is when Up created the lab.
	CreatedAt time.Time `json:"created_at"`
	// MySQLHome is the MySQL install the nodes run (mysqld.Install.Dir).
	MySQLHome   string      `json:"mysql_home"`
	Credentials Credentials `json:"credentials"`
	Nodes       []Node      `json:"nodes"`
	Routers     []Router    `json:"routers"`
	SSHD        SSHD        `json:"sshd"`
}

// Credentials are the lab's accounts, generated per lab.
type Credentials struct {
	// AdminUser/AdminPassword: on every node, all privileges (flow's).
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	// InternalUser/InternalPassword: on every node, for routers and
	// replication.
	InternalUser     string `json:"internal_user"`
	InternalPassword string `json:"internal_password"`
	// RouterUser is the admin login of both routers, each with its own
	// password.
	RouterUser            string `json:"router_user"`
	PrimaryRouterPassword string `json:"primary_router_password"`
	StandbyRouterPassword string `json:"standby_router_password"`
	// Shared is true when the routers' admin login is the nodes' admin
	// account with the same password (`flow lab up --shared-account`),
	// as at the seed's site where one `admin` works everywhere.
	Shared bool `json:"shared,omitempty"`
	// SSHPassword, when set (`flow lab up --ssh-password`), is accepted by
	// the lab's sshd for root besides the key, as on sites that log in
	// with passwords; flashback.ini has it as sys_password.
	SSHPassword string `json:"ssh_password,omitempty"`
}

// RouterPassword returns the admin password of a cluster's router.
func (c Credentials) RouterPassword(cluster string) string {
	if cluster == ClusterStandby {
		return c.StandbyRouterPassword
	}
	return c.PrimaryRouterPassword
}

// Node is one MySQL node of the lab.
type Node struct {
	Cluster string `json:"cluster"`
	Shard   int    `json:"shard"`
	// Index is i in normal_K_i.
	Index int    `json:"index"`
	Name  string `json:"name"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	// Role is RoleMaster or RoleSlave as the lab was built (a drill may
	// change the routers' view; Status reads the live state).
	Role     string `json:"role"`
	ServerID uint32 `json:"server_id"`
	// HostDir is the node's "host" folder DIR/hosts/<ip>.
	HostDir string `json:"host_dir"`
	// InstanceDir is HostDir/data/mysqldata/16315-xxxxxxxx.
	InstanceDir string `json:"instance_dir"`
	// MysqldPID and SafePID are the processes Up last saw or started.
	MysqldPID int `json:"mysqld_pid"`
	SafePID   int `json:"mysqld_safe_pid"`
}

// Addr returns host:port.
func (n Node) Addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

// ConfigPath returns the node's option file, InstanceDir/my16315.conf.
func (n Node) ConfigPath() string {
	return filepath.Join(n.InstanceDir, "my"+strconv.Itoa(n.Port)+".conf")
}

// String names the node in messages: "standby normal_0_1 (127.0.2.2:16315)".
func (n Node) String() string { return n.Cluster + " " + n.Name + " (" + n.Addr() + ")" }

// Router is one emulated DBScale router process.
type Router struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	// Dir holds the emulator's config (topology.yaml), state.json and log.
	Dir string `json:"dir"`
	// Log is the process's output, Dir/dbscale.log.
	Log string `json:"log"`
	PID int    `json:"pid"`
}

// Addr returns host:port.
func (r Router) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// SSHD is the lab's OpenSSH server: one sshd process per group of up to
// sshd.MaxAddrsPerProcess addresses (OpenSSH binds at most 16 sockets).
type SSHD struct {
	Dir   string   `json:"dir"`
	Port  int      `json:"port"`
	Addrs []string `json:"addrs"`
	// PID is the first process's, PIDs every process's, Configs their
	// config files (named on their command lines), in the same order.
	PID     int      `json:"pid"`
	PIDs    []int    `json:"pids,omitempty"`
	Configs []string `json:"configs,omitempty"`
	User    string   `json:"user"`
	// KeyFile is the client key (DIR/ssh/id_ed25519), KnownHosts lists the
	// host keys for every address.
	KeyFile    string `json:"key_file"`
	KnownHosts string `json:"known_hosts"`
	// PasswordLogin is true when the sshd also accepts
	// Credentials.SSHPassword for User (`flow lab up --ssh-password`).
	PasswordLogin bool `json:"password_login,omitempty"`
}

// Path returns a path inside the lab folder.
func (l *Lab) Path(elem ...string) string { return filepath.Join(append([]string{l.Dir}, elem...)...) }

// IniPath returns DIR/flashback.ini.
func (l *Lab) IniPath() string { return l.Path(iniFile) }

// Node returns node normal_shard_index of a cluster.
func (l *Lab) Node(cluster string, shard, index int) (Node, bool) {
	for _, n := range l.Nodes {
		if n.Cluster == cluster && n.Shard == shard && n.Index == index {
			return n, true
		}
	}
	return Node{}, false
}

// Master returns the master node of a shard in a cluster, as built.
func (l *Lab) Master(cluster string, shard int) Node {
	n, _ := l.Node(cluster, shard, MasterIndex(cluster))
	return n
}

// ClusterNodes returns a cluster's nodes in shard and index order.
func (l *Lab) ClusterNodes(cluster string) []Node {
	var out []Node
	for _, n := range l.Nodes {
		if n.Cluster == cluster {
			out = append(out, n)
		}
	}
	return out
}

// Router returns a cluster's router.
func (l *Lab) Router(cluster string) Router {
	for _, r := range l.Routers {
		if r.Cluster == cluster {
			return r
		}
	}
	return Router{Cluster: cluster, Host: RouterHost(cluster), Port: RouterPort}
}

// Install returns the MySQL install the nodes run.
func (l *Lab) Install() (*mysqld.Install, error) { return mysqld.LocateAt(l.MySQLHome) }

// Instance returns a mysqld.Instance handle for a node (for Start, Stop,
// Open, …). in may be nil: it is then located from MySQLHome.
func (l *Lab) Instance(n Node, in *mysqld.Install) (*mysqld.Instance, error) {
	if in == nil {
		var err error
		if in, err = l.Install(); err != nil {
			return nil, err
		}
	}
	return &mysqld.Instance{
		Install:       in,
		Root:          filepath.Dir(n.InstanceDir),
		Name:          filepath.Base(n.InstanceDir),
		Host:          n.Host,
		Port:          n.Port,
		ServerID:      n.ServerID,
		AdminUser:     l.Credentials.AdminUser,
		AdminPassword: l.Credentials.AdminPassword,
		Extra:         nodeOptions(n),
	}, nil
}

// TmpSchema is the schema every production DBScale node carries and does
// not binlog (binlog_ignore_db): DBScale's and giogii's scratch space (e.g.
// dbscale_tmp.gtid, which exists only on the master that wrote it).
const TmpSchema = "dbscale_tmp"

// SitePersisted is a setting every lab node persists (SET PERSIST, kept in
// the data folder's mysqld-auto.cnf) as a site's own tuning would be: a
// drill must leave it in place on every node (a clone does not copy it).
var SitePersisted = struct{ Variable, Value string }{"max_connect_errors", "1000000"}

// nodeOptions are the lab's option lines beyond lab/mysqld's defaults:
// the node's own plugin folder, binlog_ignore_db = dbscale_tmp as on
// production DBScale nodes, and a smaller performance_schema so that 8
// shards (48 nodes) fit in 16 GB with a drill running: 100 thread slots instead of 300 (a node
// runs about 35 threads, 50 in a drill; a slot is only memory, a thread
// beyond them is counted as lost, not refused) and no per-error summaries
// (performance_schema_error_size=0: nothing here reads
// events_errors_summary_*); together about 26 MB less per instance.
func nodeOptions(n Node) []string {
	return []string{
		"plugin-dir=" + PluginDir(n),
		"binlog-ignore-db=" + TmpSchema,
		"performance_schema_max_thread_instances=100",
		"performance_schema_error_size=0",
	}
}

// PluginDir is a node's own plugin folder, DIR/hosts/<ip>/plugin: links to
// the install's plugins, so one node can lose a plugin (a test of the
// playbooks' "clone plugin not loadable" refusal) without touching the
// others or the install.
func PluginDir(n Node) string {
	return filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(n.InstanceDir))), "plugin")
}

// linkPlugins fills a node's plugin folder with links to the install's
// plugins (existing links are kept).
func linkPlugins(n Node, in *mysqld.Install) error {
	dir := PluginDir(n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(in.PluginDir())
	if err != nil {
		return fmt.Errorf("%s: plugins: %w", n, err)
	}
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(in.PluginDir(), e.Name()), link); err != nil {
			return fmt.Errorf("%s: plugins: %w", n, err)
		}
	}
	return nil
}

// Load reads DIR/lab.json. The error for a folder without a lab says to
// run `flow lab up`.
func Load(dir string) (*Lab, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab folder %s: %w", dir, err)
	}
	path := filepath.Join(abs, labFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (no %s): run `flow lab up --dir %s` first: %w", abs, labFile, dir, ErrNoLab)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lab
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("read %s: %v (remove the lab with `flow lab down --remove` after stopping its processes)", path, err)
	}
	if l.Format != labFormat {
		return nil, fmt.Errorf("read %s: format %d, this flow knows %d", path, l.Format, labFormat)
	}
	l.Dir = abs
	return &l, nil
}

// ErrNoLab is wrapped by Load's error when the folder holds no lab.
var ErrNoLab = errors.New("no lab")

// save writes DIR/lab.json atomically, mode 0600.
func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", labFile, err)
	}
	return writeFileAtomic(l.Path(labFile), append(b, '\n'), 0o600)
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
