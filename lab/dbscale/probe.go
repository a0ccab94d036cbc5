package dbscale

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/flowdba/flow/gtid"
)

// Status strings of `dbscale show dataservers` (dbscale.md B).
const (
	statusMasterNormal = "Server normal"
	statusSlaveNormal  = "Slave normal"
	statusDown         = "Server down"
	statusSlaveDown    = "Server normal, slave down"
	statusSlaveError   = "Server normal, slave error"
	statusDisabled     = "server disabled"
	statusCatching     = "Slave normal, catching master %ds"

	onlineMaster    = "Master_Online"
	onlineNotMaster = "Not_A_Master"
	onlineOffline   = "Master_Offline"
)

// probe is what the router found out about one dataserver.
type probe struct {
	status string
	up     bool
	gtids  string // @@GLOBAL.gtid_executed of a MySQL node that answered
}

// probeAll probes every dataserver in parallel.
func (r *Router) probeAll(ctx context.Context, st *state) map[string]probe {
	masters := map[string]bool{}
	for _, ds := range st.replicationSources() {
		masters[ds.Master] = true
	}
	delay, _ := strconv.Atoi(st.Options["max_replication_delay"])
	out := make(map[string]probe, len(st.Servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range st.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := r.probeOne(ctx, s, masters[s.Name], delay)
			mu.Lock()
			out[s.Name] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// probeOne computes the live status of one dataserver.
func (r *Router) probeOne(ctx context.Context, s *dataServer, master bool, maxDelay int) probe {
	ep := r.endpoint(s)
	ep.ReadTimeout = r.cfg.ProbeTimeout
	conn, err := r.backend.Connect(ctx, ep)
	if err != nil {
		if s.Disabled {
			return probe{status: statusDisabled}
		}
		return probe{status: statusDown}
	}
	defer conn.Close()
	p := probe{up: true}
	if s.DBScaleServer {
		p.status = statusSlaveNormal
		if s.Disabled {
			p.status = statusDisabled
		}
		return p
	}
	if res, err := conn.Execute("SELECT @@GLOBAL.gtid_executed"); err == nil && res.Resultset != nil && len(res.Values) == 1 {
		v, _ := cellString(res.Values[0][0])
		p.gtids = strings.ReplaceAll(v, "\n", "")
	}
	switch {
	case s.Disabled:
		p.status = statusDisabled
	case master:
		p.status = statusMasterNormal
	default:
		p.status = replicaStatus(conn, maxDelay)
	}
	return p
}

// replicaStatus reads SHOW REPLICA STATUS (SHOW SLAVE STATUS before 8.0.22)
// and names the state of a slave.
func replicaStatus(conn BackendConn, maxDelay int) string {
	q := "SHOW REPLICA STATUS"
	if dialectOf(conn.ServerVersion()).noReplica {
		q = "SHOW SLAVE STATUS"
	}
	res, err := conn.Execute(q)
	if err != nil {
		if isMySQLError(err) {
			return statusSlaveError
		}
		return statusDown
	}
	if res.Resultset == nil || len(res.Values) == 0 {
		return statusSlaveDown
	}
	get := func(names ...string) (string, bool) {
		for _, n := range names {
			if i, ok := res.FieldNames[n]; ok {
				return cellString(res.Values[0][i])
			}
		}
		return "", false
	}
	io, _ := get("Replica_IO_Running", "Slave_IO_Running")
	sqlRun, _ := get("Replica_SQL_Running", "Slave_SQL_Running")
	ioErr, _ := get("Last_IO_Errno")
	sqlErr, _ := get("Last_SQL_Errno")
	if io == "Yes" && sqlRun == "Yes" {
		lag, ok := get("Seconds_Behind_Source", "Seconds_Behind_Master")
		if n, err := strconv.Atoi(lag); ok && err == nil && n > maxDelay {
			return fmt.Sprintf(statusCatching, n)
		}
		return statusSlaveNormal
	}
	if (ioErr != "" && ioErr != "0") || (sqlErr != "" && sqlErr != "0") {
		return statusSlaveError
	}
	return statusSlaveDown
}

// gtidStatus compares a slave's executed GTIDs with its master's:
// "GTID good" when the slave has nothing the master lacks.
func gtidStatus(master, slave probe) string {
	if !master.up || !slave.up {
		return ""
	}
	ok, err := gtid.ContainsStrings(master.gtids, slave.gtids)
	if err != nil || !ok {
		return "GTID error"
	}
	return "GTID good"
}

// dataserverRows builds `dbscale show dataservers`.
func (r *Router) dataserverRows(st *state, probes map[string]probe) *table {
	masters := map[string]bool{}
	for _, ds := range st.replicationSources() {
		masters[ds.Master] = true
	}
	t := &table{cols: []string{"servername", "host", "port", "username", "status", "master-online-status",
		"master_backup", "remote_user", "remote_port", "max_needed_conn/max_mysql_conn", "master_priority"}}
	for _, s := range st.Servers {
		online := onlineNotMaster
		switch {
		case masters[s.Name]:
			online = onlineMaster
		case s.Offline:
			online = onlineOffline
		}
		t.rows = append(t.rows, []string{s.Name, s.Host, strconv.Itoa(s.Port), s.User, probes[s.Name].status, online,
			s.MasterBackup, s.RemoteUser, s.RemotePort, "", strconv.Itoa(s.MasterPriority)})
	}
	return t
}

// isMyErrorCode reports whether err is a MySQL error with the code.
func isMyErrorCode(err error, code uint16) bool {
	me, ok := err.(*mysql.MyError)
	return ok && me.Code == code
}
