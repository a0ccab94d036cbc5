package dbscale

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// admin runs one `dbscale …` command.
func (r *Router) admin(s *session, body string) (*mysql.Result, error) {
	cmd, err := parseCommand(body)
	if err != nil {
		return nil, err
	}
	if msg := cmd.privilege(); msg != "" && !s.admin {
		return nil, newErr(CodeAccess, "%s", msg)
	}
	switch c := cmd.(type) {
	case cmdShowDataservers:
		st := r.snapshot()
		t := r.dataserverRows(st, r.probeAll(r.ctx, st))
		return tableResult(t, c.where)
	case cmdShowDatasourceType:
		return r.showDatasourceType(c)
	case cmdShowDatasourceName:
		return r.showDatasourceName(c)
	case cmdShowOptions:
		return r.showOptions(s, c)
	case cmdSetOption:
		return nil, r.setOption(s, c)
	case cmdRequestClusterInfo:
		return r.clusterInfo()
	case cmdRequestNextGroupID:
		t := &table{cols: []string{"next_group_id"}, rows: [][]string{{strconv.Itoa(r.snapshot().nextGroupID())}}}
		return t.result(), nil
	}

	// The rest change the state: one at a time.
	r.opMu.Lock()
	defer r.opMu.Unlock()
	switch c := cmd.(type) {
	case cmdAddDataserver:
		return nil, r.addDataserver(c)
	case cmdAddServerDatasource:
		return nil, r.addServerDatasource(c)
	case cmdAddSlave:
		return nil, r.addSlave(c)
	case cmdRemoveSlave:
		return nil, r.removeSlave(c.source, c.from)
	case cmdRemove:
		if c.dataserver {
			return nil, r.removeDataserver(c.name)
		}
		return nil, r.removeDatasource(c.name)
	case cmdEnable:
		return nil, r.enableDataserver(c.name, c.enable)
	case cmdFlashback:
		return nil, r.forceOnline(c.name)
	case cmdFlushConfig:
		return nil, r.update(func(*state) error { return nil })
	}
	return nil, unknownCommand(body)
}

// tableResult filters a table and encodes it.
func tableResult(t *table, where expr) (*mysql.Result, error) {
	if err := t.filter(where); err != nil {
		return nil, err
	}
	return t.result(), nil
}

func errNoServer(name string) *mysql.MyError {
	return newErr(CodeDataServer, "DataServer '%s' does not exist", name)
}

func errNoSource(name string) *mysql.MyError {
	return newErr(CodeDataSource, "DataSource '%s' does not exist", name)
}

// Datasource types DBScale knows (dbscale.md A3).
var knownSourceTypes = map[string]bool{
	"SERVER": true, "RWSPLIT": true, "LOAD_BALANCE": true, "REPLICATION": true,
	"SHARE_DISK": true, "READ_ONLY": true, "MGR": true,
}

func (r *Router) showDatasourceType(c cmdShowDatasourceType) (*mysql.Result, error) {
	typ := strings.ToUpper(c.typ)
	if !knownSourceTypes[typ] {
		return nil, newErr(CodeDataSource, msgUnknownDSType)
	}
	st := r.snapshot()
	var t *table
	switch typ {
	case "REPLICATION":
		if len(st.replicationSources()) == 0 {
			return nil, newErr(CodeDataSource, msgNoDSOfType)
		}
		t = r.replicationRows(st, r.probeAll(r.ctx, st), "")
	case "SERVER":
		t = r.serverRows(st, r.probeAll(r.ctx, st), "")
	default:
		return nil, newErr(CodeDataSource, msgNoDSOfType)
	}
	return tableResult(t, c.where)
}

func (r *Router) showDatasourceName(c cmdShowDatasourceName) (*mysql.Result, error) {
	st := r.snapshot()
	if ds := st.source(c.name); ds != nil {
		probes := r.probeAll(r.ctx, st)
		if ds.Type == typeReplication {
			return tableResult(r.replicationRows(st, probes, ds.Name), c.where)
		}
		return tableResult(r.serverRows(st, probes, ds.Name), c.where)
	}
	// An internal per-node source, normal_0_normal_0_1.
	t := r.serverRows(st, r.probeAll(r.ctx, st), c.name)
	if len(t.rows) == 0 {
		return nil, errNoSource(c.name)
	}
	return tableResult(t, c.where)
}

// disasterColumns reports whether replication listings carry SlaveDBScale:
// on a DR-configured cluster (enable-disaster-mode on, or a dbscale_server
// slave attached).
func disasterColumns(st *state) bool {
	if optionIsOn(st.Options["enable_disaster_mode"]) {
		return true
	}
	for _, ds := range st.Sources {
		for _, l := range ds.Slaves {
			if src := st.source(l.Source); src != nil {
				if sv := st.server(src.Server); sv != nil && sv.DBScaleServer {
					return true
				}
			}
		}
	}
	return false
}

// replicationRows builds `show datasource type=replication` (only the named
// datasource when only is not empty): one row per slave source, the master
// columns filled in the first row of each datasource only.
func (r *Router) replicationRows(st *state, probes map[string]probe, only string) *table {
	t := &table{cols: []string{"Name", "Type", "SourceStatus", "LoadBalanceStrategy", "MasterSource",
		"MasterSourceStatus", "MasterServer", "MasterServerHostInfo", "MasterServerStatus", "SelectMasterTime",
		"SlaveSource", "SlaveSourceStatus", "SlaveServers", "SlaveServerHostInfo", "SlaveServerStatus",
		"SlaveExecutedGtidStatus"}}
	dr := disasterColumns(st)
	if dr {
		t.cols = append(t.cols, "SlaveDBScale")
	}
	for _, ds := range st.replicationSources() {
		if only != "" && ds.Name != only {
			continue
		}
		m := st.masterOf(ds)
		masterCols := []string{ds.Name + "_" + m.Name, "Working", m.Name, hostInfo(m), probes[m.Name].status, ds.SelectMasterTime}
		var slaves [][]string
		for _, name := range ds.Members {
			if name == ds.Master {
				continue
			}
			sv := st.server(name)
			status := "Working"
			if sv.Disabled {
				status = "Stop"
			}
			row := []string{ds.Name + "_" + name, status, name, hostInfo(sv), probes[name].status,
				gtidStatus(probes[m.Name], probes[name])}
			if dr {
				row = append(row, "No")
			}
			slaves = append(slaves, row)
		}
		for _, l := range ds.Slaves {
			src := st.source(l.Source)
			if src == nil {
				continue
			}
			sv := st.server(src.Server)
			status := "Working"
			switch {
			case sv != nil && sv.Disabled:
				status = "Stop"
			case !l.Wired:
				status = "Connecting"
			}
			row := []string{l.Source, status, "", "", "", ""}
			isDBScale := sv != nil && sv.DBScaleServer
			if sv != nil && !isDBScale {
				row = []string{l.Source, status, sv.Name, hostInfo(sv), probes[sv.Name].status,
					gtidStatus(probes[m.Name], probes[sv.Name])}
			}
			if dr {
				row = append(row, yesNo(isDBScale))
			}
			slaves = append(slaves, row)
		}
		if len(slaves) == 0 {
			empty := []string{"", "", "", "", "", ""}
			if dr {
				empty = append(empty, "")
			}
			slaves = append(slaves, empty)
		}
		for i, sl := range slaves {
			row := []string{ds.Name, typeReplication, "Working", ds.LoadBalance}
			if i == 0 {
				row = append(row, masterCols...)
			} else {
				row = append(row, "", "", "", "", "", "")
			}
			t.rows = append(t.rows, append(row, sl...))
		}
	}
	return t
}

// serverRows builds `show datasource type=server`: the internal per-node
// sources (Is-internal YES) and the server datasources (NO). only selects
// one source by name.
func (r *Router) serverRows(st *state, probes map[string]probe, only string) *table {
	t := &table{cols: []string{"Name", "Type", "Server", "ServerHostInfo", "ServerStatus", "SourceStatus", "Is-internal"}}
	add := func(name string, sv *dataServer, internal bool) {
		if only != "" && name != only {
			return
		}
		status := "Working"
		if sv.Disabled {
			status = "Stop"
		}
		host := hostInfo(sv)
		if sv.DBScaleServer {
			host = ""
		}
		t.rows = append(t.rows, []string{name, typeServer, sv.Name, host, probes[sv.Name].status, status, strings.ToUpper(yesNo(internal))})
	}
	for _, ds := range st.replicationSources() {
		for _, name := range ds.Members {
			if sv := st.server(name); sv != nil {
				add(ds.Name+"_"+name, sv, true)
			}
		}
	}
	for _, ds := range st.Sources {
		if ds.Type == typeServer {
			if sv := st.server(ds.Server); sv != nil {
				add(ds.Name, sv, false)
			}
		}
	}
	return t
}

func hostInfo(s *dataServer) string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func (r *Router) showOptions(s *session, c cmdShowOptions) (*mysql.Result, error) {
	st := r.snapshot()
	values := st.Options
	if c.scope == "" || c.scope == scopeSession {
		for k, v := range s.opts {
			values[k] = v
		}
	}
	t := &table{cols: []string{"option_name", "value"}}
	for _, k := range sortedKeys(values) {
		name := displayName(k)
		if c.hasLike && !likeMatch(c.like, name) {
			continue
		}
		t.rows = append(t.rows, []string{name, values[k]})
	}
	return t.result(), nil
}

func (r *Router) setOption(s *session, c cmdSetOption) error {
	key := normaliseOption(c.name)
	if _, ok := r.snapshot().Options[key]; !ok {
		return newErr(CodeUnknownOption, "Unknown option '%s'", displayName(c.name))
	}
	v, err := optionKindOf(key).normalise(c.value)
	if err != nil {
		return newErr(CodeBadOptionValue, "Option '%s' can't be set to the value of '%s'", displayName(key), c.value)
	}
	if key == "slave_dbscale_mode" && !optionIsOn(r.option("enable_disaster_mode")) {
		return newErr(CodeOptionRule, msgSlaveModeRule)
	}
	if c.scope == scopeSession {
		s.opts[key] = v
		return nil
	}
	r.opMu.Lock()
	defer r.opMu.Unlock()
	err = r.update(func(st *state) error {
		st.Options[key] = v
		return nil
	})
	if err == nil {
		r.logf("dbscale: set %s %s = %s", c.scope, displayName(key), v)
	}
	return err
}

func (r *Router) clusterInfo() (*mysql.Result, error) {
	st := r.snapshot()
	if !optionIsOn(st.Options["multiple_mode"]) {
		return nil, newErr(CodeNotMultiple, msgNotMultiple)
	}
	t := &table{cols: []string{"master_dbscale", "cluster_server_id", "host", "join time", "ka init Version",
		"ka update Version", "dynamic node Version", "dynamic space Version", "master re-scramble delay", "dbscale version"}}
	space := strconv.Itoa(st.SpaceVersion + 1)
	t.rows = append(t.rows, []string{"master", strconv.Itoa(r.cfg.ClusterServerID), r.advertised(), st.JoinTime,
		"1", "1|1", "1", space, "1", r.cfg.Version})
	for i, o := range r.cfg.OtherRouters {
		t.rows = append(t.rows, []string{"slave", strconv.Itoa(r.cfg.ClusterServerID + i + 1),
			net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), st.JoinTime, "1", "1|1", "1", space, "1", r.cfg.Version})
	}
	return t.result(), nil
}

// addDataserver handles dynamic add dataserver.
func (r *Router) addDataserver(c cmdAddDataserver) error {
	bad := func(format string, args ...any) error {
		return newErr(CodeDynamicArgs, "dynamic add dataserver: "+format, args...)
	}
	for _, k := range []string{"server_name", "server_host", "server_port", "server_user", "server_password"} {
		if _, ok := c.fields[k]; !ok {
			return bad("%s is required", k)
		}
	}
	name := c.fields["server_name"]
	if !validName(name) {
		return bad("bad server_name '%s'", name)
	}
	host := c.fields["server_host"]
	if err := checkLoopback(host); err != nil {
		return bad("server_host must be a loopback address (the emulator never targets another)")
	}
	port, err := strconv.Atoi(c.fields["server_port"])
	if err != nil || port <= 0 || port > 65535 {
		return bad("bad server_port '%s'", c.fields["server_port"])
	}
	prio := 0
	if v, ok := c.fields["master_priority"]; ok {
		if prio, err = strconv.Atoi(v); err != nil {
			return bad("bad master_priority '%s'", v)
		}
	}
	dbscale := c.flags["dbscale_server"]
	if dbscale && (net.JoinHostPort(host, strconv.Itoa(port)) == r.addr || net.JoinHostPort(host, strconv.Itoa(port)) == r.advertised()) {
		return bad("%s:%d is this dbscale itself", host, port)
	}
	sv := &dataServer{
		Name: name, Host: host, Port: port,
		User: c.fields["server_user"], Password: c.fields["server_password"],
		AliasHost: c.fields["server_alias_host"], MasterBackup: "1", MasterPriority: prio,
		DBScaleServer: dbscale, Dynamic: true,
	}
	if v, ok := c.fields["is_master_backup"]; ok {
		sv.MasterBackup = v
	}
	if !dbscale {
		sv.RemoteUser, sv.RemotePort = c.fields["remote_user"], c.fields["remote_port"]
	}
	err = r.update(func(st *state) error {
		if st.server(name) != nil {
			return newErr(CodeDataServer, "DataServer '%s' already exists", name)
		}
		st.Servers = append(st.Servers, sv)
		return nil
	})
	if err == nil {
		r.logf("dbscale: added dataserver %s (%s:%d, dbscale_server=%v)", name, host, port, dbscale)
	}
	return err
}

// addServerDatasource handles dynamic add server datasource.
func (r *Router) addServerDatasource(c cmdAddServerDatasource) error {
	if !validName(c.name) {
		return newErr(CodeDynamicArgs, "bad datasource name '%s'", c.name)
	}
	initial, most, lo, hi := c.pool[0], c.pool[1], c.pool[2], c.pool[3]
	if initial < 0 || !(initial <= lo && lo <= hi && hi < most) {
		return newErr(CodeDynamicArgs, "bad connection pool %d-%d-%d-%d: want min-max-low-high with min <= low <= high < max",
			c.pool[0], c.pool[1], c.pool[2], c.pool[3])
	}
	if c.hasGroup && c.groupID <= 0 {
		return newErr(CodeDynamicArgs, "bad group_id %d", c.groupID)
	}
	return r.update(func(st *state) error {
		if st.source(c.name) != nil {
			return newErr(CodeDataSource, "DataSource '%s' already exists", c.name)
		}
		if st.server(c.server) == nil {
			return errNoServer(c.server)
		}
		gid := st.nextGroupID()
		if c.hasGroup {
			for _, ds := range st.Sources {
				if ds.GroupID == c.groupID {
					return newErr(CodeDynamicArgs, "group_id %d is used by datasource %s", c.groupID, ds.Name)
				}
			}
			gid = c.groupID
		}
		st.Sources = append(st.Sources, &dataSource{Name: c.name, Type: typeServer, GroupID: gid, Server: c.server, Pool: c.pool})
		return nil
	})
}

// addSlave attaches a server datasource to a replication datasource and
// sets up its replication (see wire). One source may be a slave of several
// datasources (a DR standby router fronting every normal_K: one link per
// datasource); only a second attach to the same datasource is refused. A
// standby that refuses for now (its slave-dbscale-mode is off, it or its
// master is unreachable) leaves the link pending, retried in the
// background; any other refusal undoes this attach only.
func (r *Router) addSlave(c cmdAddSlave) error {
	err := r.update(func(st *state) error {
		src := st.source(c.source)
		if src == nil {
			return errNoSource(c.source)
		}
		if src.Type != typeServer {
			return newErr(CodeDataSource, "DataSource '%s' is not a server datasource", c.source)
		}
		dst := st.source(c.target)
		if dst == nil {
			return errNoSource(c.target)
		}
		if dst.Type != typeReplication {
			return newErr(CodeDataSource, "DataSource '%s' is not a replication datasource", c.target)
		}
		if dst.link(c.source) != nil {
			return newErr(CodeDataSource, "DataSource '%s' is already a slave of %s", c.source, dst.Name)
		}
		dst.Slaves = append(dst.Slaves, &slaveLink{Source: c.source})
		return nil
	})
	if err != nil {
		return err
	}
	werr := r.wire(r.ctx, c.target, c.source)
	switch {
	case werr == nil:
		r.markWired(c.target, c.source, "")
		r.logf("dbscale: %s is a slave of %s; replication set up", c.source, c.target)
		return nil
	case isPending(werr):
		r.markWired(c.target, c.source, werr.Error())
		r.logf("dbscale: %s is a slave of %s; replication set-up pending: %v", c.source, c.target, werr)
		r.startRetry(c.target, c.source)
		return nil
	}
	_ = r.update(func(st *state) error {
		if ds := st.source(c.target); ds != nil {
			ds.detach(c.source)
		}
		return nil
	})
	return werr
}

// detach removes a server datasource from the slaves of this datasource;
// it reports whether it was one.
func (ds *dataSource) detach(source string) bool {
	found := false
	kept := ds.Slaves[:0]
	for _, l := range ds.Slaves {
		if l.Source == source {
			found = true
			continue
		}
		kept = append(kept, l)
	}
	ds.Slaves = kept
	if len(ds.Slaves) == 0 {
		ds.Slaves = nil
	}
	return found
}

// removeSlave handles dynamic remove slave SRC from DS: it removes that one
// link; the source's links to other datasources stay. It does not stop any
// replication.
func (r *Router) removeSlave(source, from string) error {
	err := r.update(func(st *state) error {
		ds := st.source(from)
		if ds == nil {
			return errNoSource(from)
		}
		if !ds.detach(source) {
			return newErr(CodeDataSource, "DataSource '%s' is not a slave of %s", source, from)
		}
		return nil
	})
	if err == nil {
		r.stopRetry(from, source)
		r.logf("dbscale: %s is no longer a slave of %s", source, from)
	}
	return err
}

// removeDatasource handles dynamic remove datasource: server datasources
// only, detached first from every datasource they are a slave of. It does
// not stop any replication.
func (r *Router) removeDatasource(name string) error {
	var links []string
	err := r.update(func(st *state) error {
		ds := st.source(name)
		if ds == nil {
			return errNoSource(name)
		}
		if ds.Type == typeReplication {
			return newErr(CodeDataSource, "DataSource '%s' is a replication datasource: the emulator only removes server datasources", name)
		}
		links = nil
		for _, at := range st.attachedTo(name) {
			at.detach(name)
			links = append(links, at.Name)
		}
		kept := st.Sources[:0]
		for _, d := range st.Sources {
			if d.Name != name {
				kept = append(kept, d)
			}
		}
		st.Sources = kept
		return nil
	})
	if err == nil {
		for _, ds := range links {
			r.stopRetry(ds, name)
		}
		r.logf("dbscale: removed datasource %s", name)
	}
	return err
}

// removeDataserver handles dynamic remove dataserver: refused while a
// datasource uses the server.
func (r *Router) removeDataserver(name string) error {
	err := r.update(func(st *state) error {
		if st.server(name) == nil {
			return errNoServer(name)
		}
		if users := st.usersOf(name); len(users) > 0 {
			return newErr(CodeDataServer, "DataServer '%s' is still used by datasource %s", name, strings.Join(users, ", "))
		}
		kept := st.Servers[:0]
		for _, s := range st.Servers {
			if s.Name != name {
				kept = append(kept, s)
			}
		}
		st.Servers = kept
		return nil
	})
	if err == nil {
		r.logf("dbscale: removed dataserver %s", name)
	}
	return err
}

// forceOnline handles `dbscale flashback dataserver NAME force online`: it
// sets the server's online status back from Master_Offline to normal
// (Not_A_Master; the emulator never demotes a master, so a master is never
// offline). A disabled server stays disabled: the command changes the
// online status only. On a server that is not offline it changes nothing
// and answers OK, as DBScale's ReturnOK plan does; the log says which.
func (r *Router) forceOnline(name string) error {
	was := false
	err := r.update(func(st *state) error {
		sv := st.server(name)
		if sv == nil {
			return errNoServer(name)
		}
		was, sv.Offline = sv.Offline, false
		return nil
	})
	if err != nil {
		return err
	}
	if was {
		r.logf("dbscale: flashback dataserver %s force online: Master_Offline -> Not_A_Master", name)
	} else {
		r.logf("dbscale: flashback dataserver %s force online: it was not offline, nothing changed", name)
	}
	return nil
}

// enableDataserver handles enable/disable dataserver. Disabling a slave
// MySQL node stops its replication (STOP REPLICA) and makes it
// Master_Offline; enabling starts replication and leaves it offline until
// `flashback … force online` (what giogii's stop sends right after). The
// master cannot be disabled. The flag changes even when the node is
// unreachable; the replication action's failure is only logged.
func (r *Router) enableDataserver(name string, enable bool) error {
	var sv *dataServer
	err := r.update(func(st *state) error {
		sv = st.server(name)
		if sv == nil {
			return errNoServer(name)
		}
		if !enable {
			for _, ds := range st.replicationSources() {
				if ds.Master == name {
					return newErr(CodeDataServer, "DataServer '%s' is the master of %s and cannot be disabled", name, ds.Name)
				}
			}
		}
		sv.Disabled = !enable
		if !enable {
			sv.Offline = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "enabled", false: "disabled"}[enable]
	r.logf("dbscale: dataserver %s %s", name, verb)
	if sv.DBScaleServer {
		return nil
	}
	q := map[bool]string{true: "START SLAVE", false: "STOP SLAVE"}[enable]
	ctx, cancel := context.WithTimeout(r.ctx, 3*r.cfg.ProbeTimeout)
	defer cancel()
	conn, err := r.transient(ctx, sv)
	if err != nil {
		r.logf("dbscale: dataserver %s %s, but %s was not sent: %v", name, verb, q, err)
		return nil
	}
	defer conn.Close()
	t := translate(q, keywords(q, 2), dialectOf(conn.ServerVersion()))
	if _, err := conn.Execute(t.query); err != nil {
		r.logf("dbscale: dataserver %s %s, but %s failed: %s", name, verb, t.query, redact(fmt.Sprint(err), r.secrets()...))
	}
	return nil
}
