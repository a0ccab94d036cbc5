package dbscale

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the topology file the lab writes for one emulated router: its
// users, the replication datasources and their MySQL nodes, and the initial
// options. It is YAML (JSON, being YAML, works too); unknown keys are errors.
// See README.md for an example.
//
// The topology part (datasources, dataservers, options) only seeds the state
// on the first start: afterwards DIR/state.json wins. Users and every
// password are always read from the Config and are never written to
// state.json (except passwords given to `dbscale dynamic add dataserver`,
// which have nowhere else to live).
type Config struct {
	// Version is the `dbscale version` column of request cluster info.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// ServerVersion is the MySQL version string sent in the handshake.
	ServerVersion string `yaml:"server_version,omitempty" json:"server_version,omitempty"`
	// AuthPlugin is how clients log in: caching_sha2_password (the default;
	// the server offers TLS with a self-signed certificate and its RSA key,
	// so MySQL 9.x clients, go-sql-driver and go-mysql all log in without
	// options) or mysql_native_password (MySQL 9.x's mysql CLI then needs
	// --plugin-dir pointing at mysql_native_password.so).
	AuthPlugin string `yaml:"auth_plugin,omitempty" json:"auth_plugin,omitempty"`
	// ClusterServerID is this router's cluster_server_id (default 1).
	ClusterServerID int `yaml:"cluster_server_id,omitempty" json:"cluster_server_id,omitempty"`
	// Advertise is the host:port request cluster info shows for this router
	// (default: the address it listens on).
	Advertise string `yaml:"advertise,omitempty" json:"advertise,omitempty"`
	// OtherRouters are further routers of the cluster, listed as `slave` by
	// request cluster info (informational: nothing is forwarded to them).
	OtherRouters []RouterAddr `yaml:"other_routers,omitempty" json:"other_routers,omitempty"`
	// Users are the accounts clients log in with (mysql_native_password).
	// Admin users may run the admin commands. At least one admin is needed.
	Users []User `yaml:"users" json:"users"`
	// NodeUser and NodePassword are the account the router uses on the MySQL
	// nodes (dbscale_internal in DBScale), unless a server overrides them.
	NodeUser     string `yaml:"node_user,omitempty" json:"node_user,omitempty"`
	NodePassword string `yaml:"node_password,omitempty" json:"node_password,omitempty"`
	// ReplicationUser and ReplicationPassword are the account a standby
	// master replicates with from this cluster's masters (CHANGE MASTER TO
	// MASTER_USER). Default: the master node's own router account.
	ReplicationUser     string `yaml:"replication_user,omitempty" json:"replication_user,omitempty"`
	ReplicationPassword string `yaml:"replication_password,omitempty" json:"replication_password,omitempty"`
	// RemoteUser and RemotePort fill the remote_user/remote_port columns
	// (the SSH account of a node) unless a server overrides them.
	RemoteUser string `yaml:"remote_user,omitempty" json:"remote_user,omitempty"`
	RemotePort string `yaml:"remote_port,omitempty" json:"remote_port,omitempty"`
	// ProbeTimeout bounds connecting to and querying one node for a status
	// (default 2s).
	ProbeTimeout time.Duration `yaml:"probe_timeout,omitempty" json:"probe_timeout,omitempty"`
	// DRRetryTimeout bounds the background retries of a DR link whose
	// standby router refused or was unreachable (default 5m).
	DRRetryTimeout time.Duration `yaml:"dr_retry_timeout,omitempty" json:"dr_retry_timeout,omitempty"`
	// DataSources are the replication datasources. The first one is the
	// catalog (normal_0): statements are forwarded to its master.
	DataSources []DataSourceConfig `yaml:"datasources" json:"datasources"`
	// Options seeds option values by name ("-" and "_" alike). Names that
	// are not built in are added as string options.
	Options map[string]string `yaml:"options,omitempty" json:"options,omitempty"`
}

// RouterAddr is another router of the cluster.
type RouterAddr struct {
	// Host (loopback) and Port of the router.
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port"`
}

// User is a login of the emulator.
type User struct {
	// Name and Password are the login.
	Name     string `yaml:"name" json:"name"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
	// Admin users may run the admin commands (DBScale's root/dbscale/
	// dbscale_internal).
	Admin bool `yaml:"admin,omitempty" json:"admin,omitempty"`
}

// DataSourceConfig is one replication datasource (normal_K).
type DataSourceConfig struct {
	// Name is normal_K by DBScale's convention.
	Name string `yaml:"name" json:"name"`
	// GroupID defaults to 100+K for the K-th datasource.
	GroupID int `yaml:"group_id,omitempty" json:"group_id,omitempty"`
	// LoadBalance is the LoadBalanceStrategy column (default MASTER).
	LoadBalance string `yaml:"load_balance,omitempty" json:"load_balance,omitempty"`
	// Master names the Master_Online server (default: the first).
	Master string `yaml:"master,omitempty" json:"master,omitempty"`
	// Servers are the datasource's MySQL nodes (normal_K_0..2).
	Servers []ServerConfig `yaml:"servers" json:"servers"`
}

// ServerConfig is one MySQL node (dataserver) of a datasource.
type ServerConfig struct {
	// Name is the dataserver name; Host (loopback) and Port its address.
	Name string `yaml:"name" json:"name"`
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port"`
	// User and Password override NodeUser/NodePassword for this node.
	User     string `yaml:"user,omitempty" json:"user,omitempty"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
	// ReplicationUser and ReplicationPassword override the cluster's
	// replication account when this node is the source.
	ReplicationUser     string `yaml:"replication_user,omitempty" json:"replication_user,omitempty"`
	ReplicationPassword string `yaml:"replication_password,omitempty" json:"replication_password,omitempty"`
	// RemoteUser and RemotePort override the cluster's remote columns.
	RemoteUser string `yaml:"remote_user,omitempty" json:"remote_user,omitempty"`
	RemotePort string `yaml:"remote_port,omitempty" json:"remote_port,omitempty"`
	// MasterPriority is the master_priority column (default 0).
	MasterPriority int `yaml:"master_priority,omitempty" json:"master_priority,omitempty"`
}

// Defaults applied by Validate.
const (
	defaultVersion       = "GreatDBRouter-6.0.0.6026.emulator"
	defaultServerVersion = "8.0.26-GreatDBRouter"
	defaultProbeTimeout  = 2 * time.Second
	defaultDRRetry       = 5 * time.Minute
	authSHA2             = "caching_sha2_password"
	authNative           = "mysql_native_password"
)

// LoadConfig reads and validates a topology file (YAML or JSON).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dbscale config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("dbscale config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates a topology document (YAML or JSON).
func ParseConfig(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the Config and fills in defaults. Errors never contain a
// password.
func (c *Config) Validate() error {
	if c.Version == "" {
		c.Version = defaultVersion
	}
	if c.ServerVersion == "" {
		c.ServerVersion = defaultServerVersion
	}
	switch c.AuthPlugin {
	case "":
		c.AuthPlugin = authSHA2
	case authSHA2, authNative:
	default:
		return fmt.Errorf("auth_plugin: %q is not %s or %s", c.AuthPlugin, authSHA2, authNative)
	}
	if c.ClusterServerID == 0 {
		c.ClusterServerID = 1
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = defaultProbeTimeout
	}
	if c.DRRetryTimeout <= 0 {
		c.DRRetryTimeout = defaultDRRetry
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise: %w", err)
		}
	}
	for i, r := range c.OtherRouters {
		if err := checkLoopback(r.Host); err != nil {
			return fmt.Errorf("other_routers[%d]: %w", i, err)
		}
		if r.Port <= 0 || r.Port > 65535 {
			return fmt.Errorf("other_routers[%d]: bad port %d", i, r.Port)
		}
	}
	admins := 0
	seenUser := map[string]bool{}
	for i, u := range c.Users {
		if u.Name == "" {
			return fmt.Errorf("users[%d]: empty name", i)
		}
		if seenUser[u.Name] {
			return fmt.Errorf("users[%d]: duplicate user %q", i, u.Name)
		}
		seenUser[u.Name] = true
		if u.Admin {
			admins++
		}
	}
	if admins == 0 {
		return errors.New("users: at least one user needs admin: true")
	}
	if len(c.DataSources) == 0 {
		return errors.New("datasources: at least one replication datasource (normal_0) is needed")
	}
	seenDS := map[string]bool{}
	seenServer := map[string]bool{}
	for k := range c.DataSources {
		ds := &c.DataSources[k]
		if !validName(ds.Name) {
			return fmt.Errorf("datasources[%d]: bad name %q", k, ds.Name)
		}
		if seenDS[ds.Name] {
			return fmt.Errorf("datasources[%d]: duplicate datasource %q", k, ds.Name)
		}
		seenDS[ds.Name] = true
		if ds.GroupID == 0 {
			ds.GroupID = 100 + k
		}
		if ds.LoadBalance == "" {
			ds.LoadBalance = "MASTER"
		}
		if len(ds.Servers) == 0 {
			return fmt.Errorf("datasource %s: no servers", ds.Name)
		}
		if ds.Master == "" {
			ds.Master = ds.Servers[0].Name
		}
		hasMaster := false
		for j, s := range ds.Servers {
			where := fmt.Sprintf("datasource %s servers[%d]", ds.Name, j)
			if !validName(s.Name) {
				return fmt.Errorf("%s: bad name %q", where, s.Name)
			}
			if seenServer[s.Name] || seenDS[s.Name] {
				return fmt.Errorf("%s: duplicate name %q", where, s.Name)
			}
			seenServer[s.Name] = true
			if err := checkLoopback(s.Host); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if s.Port <= 0 || s.Port > 65535 {
				return fmt.Errorf("%s: bad port %d", where, s.Port)
			}
			if s.User == "" && c.NodeUser == "" {
				return fmt.Errorf("%s: no user (set node_user or the server's user)", where)
			}
			if s.Name == ds.Master {
				hasMaster = true
			}
		}
		if !hasMaster {
			return fmt.Errorf("datasource %s: master %q is not one of its servers", ds.Name, ds.Master)
		}
	}
	for name, v := range c.Options {
		if def, ok := builtinOption(name); ok {
			if _, err := def.kind.normalise(v); err != nil {
				return fmt.Errorf("options: %s: %v", displayName(name), err)
			}
		}
	}
	return nil
}

// serverConfig finds a configured server by name.
func (c *Config) serverConfig(name string) (ServerConfig, bool) {
	for _, ds := range c.DataSources {
		for _, s := range ds.Servers {
			if s.Name == name {
				return s, true
			}
		}
	}
	return ServerConfig{}, false
}

// nodeCredentials returns the account the router uses on a configured node.
func (c *Config) nodeCredentials(s ServerConfig) (user, password string) {
	user, password = c.NodeUser, c.NodePassword
	if s.User != "" {
		user, password = s.User, s.Password
	}
	return user, password
}

// replicationCredentials returns the account a replica of the configured
// node s replicates with.
func (c *Config) replicationCredentials(s ServerConfig) (user, password string) {
	switch {
	case s.ReplicationUser != "":
		return s.ReplicationUser, s.ReplicationPassword
	case c.ReplicationUser != "":
		return c.ReplicationUser, c.ReplicationPassword
	}
	return c.nodeCredentials(s)
}

// validName accepts DBScale object names: letters, digits, '_' and '-'.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// checkLoopback accepts only loopback IP addresses: the emulator never
// targets any other address.
func checkLoopback(host string) error {
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback IP address (127.x.y.z)", host)
	}
	return nil
}

// splitHostPort parses host:port with a loopback host.
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if err := checkLoopback(h); err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return h, n, nil
}
