package dbscale

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the name of the persisted state inside the emulator's folder.
const stateFile = "state.json"

// stateFormat is the version of the state.json layout.
const stateFormat = 1

// timeLayout is how DBScale prints times (join time, SelectMasterTime).
const timeLayout = "2006-01-02 15:04:05"

// Source types.
const (
	typeReplication = "Replication"
	typeServer      = "Server"
)

// state is everything the router knows and persists.
type state struct {
	Format int `json:"format"`
	// JoinTime is when this router first started (request cluster info).
	JoinTime string `json:"join_time"`
	// SpaceVersion counts dynamic changes (request cluster info's
	// "dynamic space Version").
	SpaceVersion int `json:"space_version"`
	// Options holds the global option values by normalised name.
	Options map[string]string `json:"options"`
	Servers []*dataServer     `json:"dataservers"`
	Sources []*dataSource     `json:"datasources"`
}

// dataServer is a MySQL node or, with DBScaleServer, another router.
type dataServer struct {
	Name string `json:"name"`
	Host string `json:"host"`
	Port int    `json:"port"`
	User string `json:"user"`
	// Password is persisted only for servers added by `dbscale dynamic add
	// dataserver`; configured servers take theirs from the Config.
	Password       string `json:"password,omitempty"`
	AliasHost      string `json:"alias_host,omitempty"`
	RemoteUser     string `json:"remote_user,omitempty"`
	RemotePort     string `json:"remote_port,omitempty"`
	MasterBackup   string `json:"master_backup"`
	MasterPriority int    `json:"master_priority"`
	DBScaleServer  bool   `json:"dbscale_server,omitempty"`
	Disabled       bool   `json:"disabled,omitempty"`
	// Offline is the Master_Offline online status: set by disable
	// dataserver (as in the reference's D5 log), kept by enable, cleared
	// only by `dbscale flashback dataserver NAME force online`.
	Offline bool `json:"offline,omitempty"`
	Dynamic bool `json:"dynamic,omitempty"`
}

// dataSource is a replication datasource (normal_K) or a server datasource.
type dataSource struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	GroupID     int    `json:"group_id"`
	LoadBalance string `json:"load_balance,omitempty"`
	// Replication: the Master_Online server, all member servers (master
	// included) in order, the last master election time, attached slaves.
	Master           string       `json:"master,omitempty"`
	Members          []string     `json:"members,omitempty"`
	SelectMasterTime string       `json:"select_master_time,omitempty"`
	Slaves           []*slaveLink `json:"slaves,omitempty"`
	// Server: the wrapped dataserver and its pool (min, max, low, high).
	Server string `json:"server,omitempty"`
	Pool   [4]int `json:"pool,omitzero"`
}

// slaveLink is a server datasource attached as a slave of a replication
// datasource.
type slaveLink struct {
	Source string `json:"source"`
	// Wired is true once the slave's replication from the datasource's
	// master was set up (for a dbscale_server: through the standby router).
	Wired bool `json:"wired"`
	// LastError is the last set-up error, secrets removed.
	LastError string `json:"last_error,omitempty"`
}

// newState builds the first state from the config.
func newState(cfg *Config, now time.Time) *state {
	st := &state{
		Format:   stateFormat,
		JoinTime: now.Format(timeLayout),
		Options:  defaultOptions(cfg.Options),
	}
	for _, dc := range cfg.DataSources {
		ds := &dataSource{
			Name:             dc.Name,
			Type:             typeReplication,
			GroupID:          dc.GroupID,
			LoadBalance:      dc.LoadBalance,
			Master:           dc.Master,
			SelectMasterTime: now.Format(timeLayout),
		}
		for _, sc := range dc.Servers {
			user, _ := cfg.nodeCredentials(sc)
			remoteUser, remotePort := cfg.RemoteUser, cfg.RemotePort
			if sc.RemoteUser != "" {
				remoteUser = sc.RemoteUser
			}
			if sc.RemotePort != "" {
				remotePort = sc.RemotePort
			}
			st.Servers = append(st.Servers, &dataServer{
				Name:           sc.Name,
				Host:           sc.Host,
				Port:           sc.Port,
				User:           user,
				RemoteUser:     remoteUser,
				RemotePort:     remotePort,
				MasterBackup:   "1",
				MasterPriority: sc.MasterPriority,
			})
			ds.Members = append(ds.Members, sc.Name)
		}
		st.Sources = append(st.Sources, ds)
	}
	return st
}

// loadState reads DIR/state.json; it returns (nil, nil) when there is none.
func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st state
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("read state %s: format %d, want %d (remove the file to start afresh)", path, st.Format, stateFormat)
	}
	if st.Options == nil {
		st.Options = map[string]string{}
	}
	return &st, nil
}

// save writes the state to DIR/state.json atomically: a temporary file in
// the same folder, fsync, rename, fsync of the folder. The file is readable
// by its owner only, since it may hold passwords of dynamic dataservers.
func (st *state) save(dir string) error {
	out := st.clone()
	for _, s := range out.Servers {
		if !s.Dynamic {
			s.Password = ""
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, stateFile)); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: sync folder: %w", err)
	}
	return nil
}

// clone deep-copies the state.
func (st *state) clone() *state {
	c := *st
	c.Options = make(map[string]string, len(st.Options))
	for k, v := range st.Options {
		c.Options[k] = v
	}
	c.Servers = make([]*dataServer, len(st.Servers))
	for i, s := range st.Servers {
		cp := *s
		c.Servers[i] = &cp
	}
	c.Sources = make([]*dataSource, len(st.Sources))
	for i, ds := range st.Sources {
		cp := *ds
		cp.Members = append([]string(nil), ds.Members...)
		cp.Slaves = make([]*slaveLink, len(ds.Slaves))
		for j, l := range ds.Slaves {
			lc := *l
			cp.Slaves[j] = &lc
		}
		if len(cp.Slaves) == 0 {
			cp.Slaves = nil
		}
		c.Sources[i] = &cp
	}
	return &c
}

// server finds a dataserver by name.
func (st *state) server(name string) *dataServer {
	for _, s := range st.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// source finds a datasource by name.
func (st *state) source(name string) *dataSource {
	for _, ds := range st.Sources {
		if ds.Name == name {
			return ds
		}
	}
	return nil
}

// replicationSources returns the replication datasources in order; the
// first is the catalog.
func (st *state) replicationSources() []*dataSource {
	var out []*dataSource
	for _, ds := range st.Sources {
		if ds.Type == typeReplication {
			out = append(out, ds)
		}
	}
	return out
}

// catalog returns the catalog datasource (the first replication one).
func (st *state) catalog() *dataSource {
	if rs := st.replicationSources(); len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// masterOf returns the master dataserver of a replication datasource.
func (st *state) masterOf(ds *dataSource) *dataServer {
	if ds == nil {
		return nil
	}
	return st.server(ds.Master)
}

// usersOf lists the datasources that use a dataserver.
func (st *state) usersOf(server string) []string {
	var out []string
	for _, ds := range st.Sources {
		if ds.Server == server {
			out = append(out, ds.Name)
			continue
		}
		for _, m := range ds.Members {
			if m == server {
				out = append(out, ds.Name)
				break
			}
		}
	}
	return out
}

// attachedTo lists the replication datasources a server datasource is a
// slave of, in datasource order. One source may be attached to several
// datasources (a DR standby router fronting normal_0 … normal_N-1): one
// link per datasource.
func (st *state) attachedTo(source string) []*dataSource {
	var out []*dataSource
	for _, ds := range st.Sources {
		if ds.link(source) != nil {
			out = append(out, ds)
		}
	}
	return out
}

// link returns the link of a slave source on this datasource, or nil.
func (ds *dataSource) link(source string) *slaveLink {
	for _, l := range ds.Slaves {
		if l.Source == source {
			return l
		}
	}
	return nil
}

// nextGroupID is one more than the largest group id in use.
func (st *state) nextGroupID() int {
	max := 0
	for _, ds := range st.Sources {
		if ds.GroupID > max {
			max = ds.GroupID
		}
	}
	return max + 1
}
