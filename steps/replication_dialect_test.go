package steps_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/dbscale"
	"github.com/flowdba/flow/lab/mysqltest"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// fakeReplica is a protocol-level MySQL server — go-mysql's server package,
// so flow's real driver talks the real wire protocol to it — standing in
// for the MySQL 8.0 servers that cannot be installed here (Debian offers
// only 9.7). It presents a version in its handshake and to SELECT
// VERSION(), understands only the replication spellings that version
// accepts (as the test declares them, not as flow computes them: 8.0.21
// only SLAVE, 8.0.30 both, 8.4 only REPLICA; anything else is error 1064),
// keeps the replica's state (threads, configured) as a server would, and
// records every statement it receives.
type fakeReplica struct {
	version               string
	slaveOK, replicaOK    bool
	user, password        string
	ln                    net.Listener
	srv                   *server.Server
	mu                    sync.Mutex
	got                   []string
	io, sqlRun, configure bool
	// skipVars are the names under which the fake's version knows the
	// skip-replica-start system variable (none before 8.0.24), persisted
	// what SET PERSIST_ONLY set.
	skipVars  []string
	persisted map[string]bool
}

// startFakeReplica listens on a loopback address outside 127.0.0.0/24 (the
// lab's) on a port the OS picks; it stops when the test ends.
func startFakeReplica(t *testing.T, version string, slaveOK, replicaOK bool) *fakeReplica {
	t.Helper()
	f := &fakeReplica{version: version, slaveOK: slaveOK, replicaOK: replicaOK, user: "flow", password: "fake-" + strconv.Itoa(rand.IntN(1e9)),
		io: true, sqlRun: true, configure: true}
	var err error
	for range 20 {
		host := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250), 2+rand.IntN(250))
		if f.ln, err = net.Listen("tcp", host+":0"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	f.srv = server.NewServer(version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := f.ln.Accept()
			if err != nil {
				return
			}
			go f.serve(nc)
		}
	}()
	t.Cleanup(func() { f.ln.Close(); <-done })
	return f
}

func (f *fakeReplica) serve(nc net.Conn) {
	defer nc.Close()
	users := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
	if err := users.AddUser(f.user, f.password, mysql.AUTH_NATIVE_PASSWORD); err != nil {
		return
	}
	c, err := f.srv.NewCustomizedConn(nc, users, &fakeHandler{f: f})
	if err != nil {
		return
	}
	for !c.Closed() {
		if err := c.HandleCommand(); err != nil {
			return
		}
	}
}

func (f *fakeReplica) hostPort() (string, int) {
	a := f.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// vars are the mysqltest.PlaybookHead parameters that reach the fake.
func (f *fakeReplica) vars() map[string]string {
	h, p := f.hostPort()
	return map[string]string{"host": h, "port": strconv.Itoa(p), "user": f.user, "password": f.password}
}

// received returns the replication statements received (SELECT VERSION(),
// CONNECTION_ID() and SET left out).
func (f *fakeReplica) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, q := range f.got {
		if u := strings.ToUpper(q); !strings.HasPrefix(u, "SELECT ") && (!strings.HasPrefix(u, "SET ") || strings.HasPrefix(u, "SET PERSIST")) {
			out = append(out, q)
		}
	}
	return out
}

type fakeHandler struct {
	server.EmptyHandler
	f *fakeReplica
}

var replStmt = regexp.MustCompile(`^(?i)(START|STOP|RESET|SHOW) (SLAVE|REPLICA)( IO_THREAD| SQL_THREAD| ALL| STATUS)?( FOR CHANNEL '')?$`)

// HandleQuery answers the statements the step sends, in the fake's dialect.
func (h *fakeHandler) HandleQuery(q string) (*mysql.Result, error) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, q)
	upper := strings.ToUpper(strings.TrimSpace(q))
	switch {
	case upper == "SELECT VERSION()":
		return textResult([]string{"VERSION()"}, [][]any{{f.version}})
	case upper == "SELECT CONNECTION_ID()":
		return textResult([]string{"CONNECTION_ID()"}, [][]any{{int64(7)}})
	case strings.HasPrefix(upper, "SET PERSIST_ONLY "), strings.HasPrefix(upper, "RESET PERSIST IF EXISTS "):
		return f.persist(upper)
	case strings.HasPrefix(upper, "SET "):
		return &mysql.Result{}, nil
	}
	m := replStmt.FindStringSubmatch(upper)
	if m == nil || (m[2] == "SLAVE" && !f.slaveOK) || (m[2] == "REPLICA" && !f.replicaOK) {
		return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '"+q+"'")
	}
	verb, what := m[1], strings.TrimSpace(m[3])
	switch verb {
	case "STOP":
		if what != "SQL_THREAD" {
			f.io = false
		}
		if what != "IO_THREAD" {
			f.sqlRun = false
		}
	case "START":
		if !f.configure {
			return nil, mysql.NewError(mysql.ER_BAD_SLAVE, "The server is not configured as slave; fix in config file or with CHANGE MASTER TO")
		}
		if what != "SQL_THREAD" {
			f.io = true
		}
		if what != "IO_THREAD" {
			f.sqlRun = true
		}
	case "RESET":
		if f.io || f.sqlRun {
			return nil, mysql.NewError(3081, "This operation cannot be performed with running replication threads; run STOP "+m[2]+" FOR CHANNEL '' first")
		}
		if what == "ALL" {
			f.configure = false
		}
	case "SHOW":
		return f.status(m[2] == "SLAVE")
	}
	return &mysql.Result{}, nil
}

var persistStmt = regexp.MustCompile(`^(?:SET PERSIST_ONLY (\w+) = ON|RESET PERSIST IF EXISTS (\w+))$`)

// persist answers SET PERSIST_ONLY v = ON and RESET PERSIST IF EXISTS v
// for the skip-replica-start variable under the names its version knows
// (both names stand for one setting, as on a real server).
func (f *fakeReplica) persist(upper string) (*mysql.Result, error) {
	m := persistStmt.FindStringSubmatch(upper)
	if m == nil {
		return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax near '"+upper+"'")
	}
	name := strings.ToLower(m[1] + m[2])
	known := false
	for _, v := range f.skipVars {
		known = known || v == name
	}
	if !known {
		return nil, mysql.NewError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, "Unknown system variable '"+name+"'")
	}
	if f.persisted == nil {
		f.persisted = map[string]bool{}
	}
	f.persisted["skip_start"] = m[1] != ""
	return &mysql.Result{}, nil
}

// status is SHOW SLAVE STATUS (old column names) or SHOW REPLICA STATUS.
func (f *fakeReplica) status(old bool) (*mysql.Result, error) {
	name := func(modern, legacy string) string {
		if old {
			return legacy
		}
		return modern
	}
	cols := []string{name("Replica_IO_State", "Slave_IO_State"), name("Source_Host", "Master_Host"), name("Source_User", "Master_User"),
		name("Source_Port", "Master_Port"), name("Replica_IO_Running", "Slave_IO_Running"), name("Replica_SQL_Running", "Slave_SQL_Running"),
		"Last_IO_Errno", "Last_IO_Error", "Last_SQL_Errno", "Last_SQL_Error", name("Seconds_Behind_Source", "Seconds_Behind_Master"),
		name("Source_UUID", "Master_UUID"), "Retrieved_Gtid_Set", "Executed_Gtid_Set", "Auto_Position", "Channel_Name"}
	if !f.configure {
		return textResult(cols, nil)
	}
	yn := func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	}
	var lag any // NULL unless both threads run
	if f.io && f.sqlRun {
		lag = int64(3)
	}
	row := []any{"Waiting for source to send event", "10.0.0.7", "dbscale_internal", int64(16315), yn(f.io), yn(f.sqlRun),
		int64(0), "", int64(0), "", lag, "3e11fa47-71ca-11e1-9e33-c80aa9429562",
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n8c2b7e1a-71ca-11e1-9e33-c80aa9429562:1-2", int64(1), ""}
	return textResult(cols, [][]any{row})
}

func textResult(cols []string, rows [][]any) (*mysql.Result, error) {
	rs, err := mysql.BuildSimpleTextResultset(cols, rows)
	if err != nil {
		return nil, err
	}
	return &mysql.Result{Resultset: rs}, nil
}

// replDialectSteps stop the receiver, read the status, start it again,
// stop everything and reset all, asserting the state each left under
// flow's field names.
const replDialectSteps = `  - name: Step 09 stop receiving
    replication: {on: node, action: stop, threads: io, channel: ""}
    pre: true
    post:
      - that: result.configured && !result.io_running && result.sql_running && result.seconds_behind == nil
        message: "after stop io: {{ result }}"
  - name: Step 07 status
    replication: {on: node, action: status}
    register: rs
  - assert:
      that: >-
        rs.configured && !rs.running && rs.source_host == "10.0.0.7" && rs.source_port == 16315 &&
        rs.source_user == "dbscale_internal" && rs.auto_position && rs.source_uuid == "3e11fa47-71ca-11e1-9e33-c80aa9429562" &&
        rs.executed_gtid_set == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,8c2b7e1a-71ca-11e1-9e33-c80aa9429562:1-2" &&
        rs.io_state == "Waiting for source to send event" && rs.spelling == spelling && rs.version == version
      message: "status: {{ rs }}"
  - name: start receiving
    replication: {on: node, action: start, threads: io}
    pre: true
    post:
      - that: result.running && result.seconds_behind == 3
        message: "after start io: {{ result }}"
  - name: forget the source
    replication: {on: node, action: reset, all: true}
    pre: true
    post:
      - that: "!result.configured && !result.running && result.count == 0"
        message: "after reset all: {{ result }}"
`

// TestReplicationSpellsForTheVersion runs the same playbook against fake
// servers that present 8.0.21 (SLAVE only), 8.0.30 (both; REPLICA is the
// one to use) and 8.4.3 (REPLICA only): each receives exactly the
// statements of its spelling, ends in the state the steps asked for, and
// the status fields come back under the same names from the old and the
// new columns.
func TestReplicationSpellsForTheVersion(t *testing.T) {
	for _, c := range []struct {
		version            string
		slaveOK, replicaOK bool
		word               string
	}{
		{"8.0.21", true, false, "SLAVE"},
		{"8.0.30-22", true, true, "REPLICA"},
		{"8.4.3", false, true, "REPLICA"},
	} {
		t.Run(c.version, func(t *testing.T) {
			f := startFakeReplica(t, c.version, c.slaveOK, c.replicaOK)
			pb := replPlaybookWith(`spelling: {type: string}`, `version: {type: string}`) + replDialectSteps
			vars := f.vars()
			vars["spelling"], vars["version"] = c.word, c.version
			j := &enginetest.Journal{}
			res := enginetest.Run(t, pb, enginetest.Options{Vars: vars, Journal: j})
			if res.Err != nil {
				t.Fatalf("%v\n%s\nthe fake received: %q", res.Err, res.Log, f.received())
			}
			w := c.word
			want := []string{
				"STOP " + w + " IO_THREAD FOR CHANNEL ''", "SHOW " + w + " STATUS FOR CHANNEL ''",
				"SHOW " + w + " STATUS",
				"START " + w + " IO_THREAD", "SHOW " + w + " STATUS",
				"STOP " + w, "RESET " + w + " ALL", "SHOW " + w + " STATUS",
			}
			if got := f.received(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the %s fake received:\n  %s\nwant:\n  %s", c.version, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if f.io || f.sqlRun || f.configure {
				t.Fatalf("the fake ends with io=%v sql=%v configured=%v, want all false", f.io, f.sqlRun, f.configure)
			}
			sent := journaled(j)
			wantJournal := []string{"STOP " + w + " IO_THREAD FOR CHANNEL ''", "SHOW " + w + " STATUS", "START " + w + " IO_THREAD", "STOP " + w, "RESET " + w + " ALL"}
			if strings.Join(sent, "\n") != strings.Join(wantJournal, "\n") {
				t.Errorf("journaled statements %q, want %q", sent, wantJournal)
			}
			if strings.Contains(res.Log, f.password) {
				t.Fatal("the password reached the log")
			}
		})
	}
}

// TestReplicationNoSourceOnOldServer: on the 8.0.21 fake, START SLAVE on a
// server with no source fails naming the host, the statement, the server's
// error and what to do.
func TestReplicationNoSourceOnOldServer(t *testing.T) {
	f := startFakeReplica(t, "8.0.21", true, false)
	f.configure, f.io, f.sqlRun = false, false, false
	res := enginetest.Run(t, replPlaybookWith()+`  - name: start replication
    replication: {on: node, action: start}
    pre: true
`, enginetest.Options{Vars: f.vars()})
	if engine.ExitCode(res.Err) != engine.ExitStepFailed {
		t.Fatalf("exit %d: %v", engine.ExitCode(res.Err), res.Err)
	}
	h, p := f.hostPort()
	for _, want := range []string{"start replication", net.JoinHostPort(h, strconv.Itoa(p)), "`START SLAVE`", "Error 1200", "not configured as slave", "it is not a replica"} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, res.Err)
		}
	}
}

// TestReplicationOnRestart: `on_restart: stopped` persists the variable
// under the name each version knows (skip_slave_start on 8.0.24 and
// 8.0.25, skip_replica_start from 8.0.26), after the STOP; `on_restart:
// default` forgets it before the START; before 8.0.24, which has no such
// system variable, `stopped` fails before sending anything, naming the
// option-file line to add, and `default` has nothing to forget.
func TestReplicationOnRestart(t *testing.T) {
	for _, c := range []struct {
		version            string
		slaveOK, replicaOK bool
		word, skip         string
		known              []string
	}{
		{"8.0.23", true, true, "REPLICA", "", nil},
		{"8.0.25", true, true, "REPLICA", "skip_slave_start", []string{"skip_slave_start"}},
		{"8.0.30-22", true, true, "REPLICA", "skip_replica_start", []string{"skip_slave_start", "skip_replica_start"}},
		{"8.4.3", false, true, "REPLICA", "skip_replica_start", []string{"skip_slave_start", "skip_replica_start"}},
	} {
		t.Run(c.version, func(t *testing.T) {
			f := startFakeReplica(t, c.version, c.slaveOK, c.replicaOK)
			f.skipVars = c.known
			const freeze = `  - name: freeze the donor
    replication: {on: node, action: stop, on_restart: stopped}
    pre: true
`
			// a dry run sends nothing and shows both statements with the
			// spellings of the other versions
			dry := enginetest.Run(t, replPlaybookWith()+freeze, enginetest.Options{Vars: f.vars(), Mode: engine.ModeDryRun})
			for _, want := range []string{"STOP REPLICA\n", "SET PERSIST_ONLY skip_replica_start = ON\n", "skip_slave_start on 8.0.24 and 8.0.25", "before 8.0.24, which cannot persist it, the step fails"} {
				if !strings.Contains(dry.Out, want) {
					t.Errorf("the dry run lacks %q:\n%s", want, dry.Out)
				}
			}
			if got := f.received(); dry.Err != nil || len(got) != 0 {
				t.Fatalf("the dry run: %v; sent %q", dry.Err, got)
			}
			res := enginetest.Run(t, replPlaybookWith()+freeze, enginetest.Options{Vars: f.vars()})
			w := c.word
			if c.skip == "" {
				if engine.ExitCode(res.Err) != engine.ExitStepFailed || !strings.Contains(fmt.Sprint(res.Err), "add skip-slave-start to the [mysqld] section") {
					t.Fatalf("on %s: exit %d, %v; want a failure naming the option-file line", c.version, engine.ExitCode(res.Err), res.Err)
				}
				if got := f.received(); len(got) != 0 {
					t.Fatalf("on %s the failing step sent %q", c.version, got)
				}
			} else {
				if res.Err != nil {
					t.Fatalf("%v\n%s\nthe fake received: %q", res.Err, res.Log, f.received())
				}
				want := []string{"STOP " + w, "SET PERSIST_ONLY " + strings.ToUpper(c.skip) + " = ON", "SHOW " + w + " STATUS"}
				if got := f.received(); !equalFold(got, want) || !f.persisted["skip_start"] {
					t.Fatalf("stop, on_restart stopped: the fake received %q (persisted %v), want %q", got, f.persisted, want)
				}
			}
			f.got = nil
			res = enginetest.Run(t, replPlaybookWith()+`  - name: release the donor
    replication: {on: node, action: start, on_restart: default}
    pre: true
`, enginetest.Options{Vars: f.vars()})
			if res.Err != nil {
				t.Fatalf("%v\n%s\nthe fake received: %q", res.Err, res.Log, f.received())
			}
			want := []string{"START " + w, "SHOW " + w + " STATUS"}
			if c.skip != "" {
				want = append([]string{"RESET PERSIST IF EXISTS " + c.skip}, want...)
			}
			if got := f.received(); !equalFold(got, want) || f.persisted["skip_start"] {
				t.Fatalf("start, on_restart default: the fake received %q (persisted %v), want %q", got, f.persisted, want)
			}
		})
	}
}

// equalFold compares statement lists ignoring case.
func equalFold(got, want []string) bool {
	return strings.EqualFold(strings.Join(got, "\n"), strings.Join(want, "\n"))
}

// replPlaybookWith is replPlaybook's head with further parameters.
func replPlaybookWith(params ...string) string {
	return mysqltest.PlaybookHead("replication-test", "node", params...) + "steps:\n"
}

// TestReplicationThroughTheDBScaleEmulator sends the step to the
// repository's DBScale emulator (lab/dbscale) with `router: true`, its
// catalog master being a fake server: in front of an 8.0.26 master the step
// speaks the SLAVE spelling, the one DBScale is documented to pass on
// (dbscale.md A13), and the master receives it through the router; in
// front of an 8.4.3 master, which no longer knows SLAVE, the step sends
// REPLICA; with slave-dbscale-mode off the router's refusal (error 9001)
// comes back with what to do.
func TestReplicationThroughTheDBScaleEmulator(t *testing.T) {
	for _, c := range []struct {
		version            string
		slaveOK, replicaOK bool
		word, mode         string
	}{
		{"8.0.26", true, true, "SLAVE", "1"},
		{"8.4.3", false, true, "REPLICA", "1"},
		{"8.0.26", true, true, "SLAVE", "0"},
	} {
		t.Run(c.version+" slave-dbscale-mode "+c.mode, func(t *testing.T) {
			f := startFakeReplica(t, c.version, c.slaveOK, c.replicaOK)
			h, p := f.hostPort()
			cfg, err := dbscale.ParseConfig([]byte(fmt.Sprintf(`auth_plugin: mysql_native_password
server_version: 8.0.26-GreatDBRouter
users: [{name: admin, password: router-pw, admin: true}]
node_user: %s
node_password: %s
datasources:
  - name: normal_0
    servers: [{name: normal_0_0, host: %s, port: %d}]
options: {enable-disaster-mode: 1, slave-dbscale-mode: %s}
`, f.user, f.password, h, p, c.mode)))
			if err != nil {
				t.Fatal(err)
			}
			r, err := dbscale.Start(dbscale.Options{Dir: t.TempDir(), Listen: h + ":0", Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			vars := map[string]string{"host": r.Host(), "port": strconv.Itoa(r.Port()), "user": "admin", "password": "router-pw"}
			j := &enginetest.Journal{}
			res := enginetest.Run(t, replPlaybookWith()+`  - name: Step 09 stop slave
    replication: {on: node, router: true, action: stop}
    pre: true
    post:
      - that: result.configured && !result.running && result.router && result.source_host == "10.0.0.7"
        message: "through the router: {{ result }}"
`, enginetest.Options{Vars: vars, Journal: j})
			sent := journaled(j)
			if c.mode == "0" {
				if res.Err == nil || !strings.Contains(res.Err.Error(), "9001") || !strings.Contains(res.Err.Error(), "`dbscale set global 'slave-dbscale-mode' = 1` first") {
					t.Fatalf("with slave-dbscale-mode 0: %v", res.Err)
				}
				if got := f.received(); len(got) != 0 {
					t.Fatalf("the master received %q although the router refused", got)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("%v\n%s\nthe master received %q", res.Err, res.Log, f.received())
			}
			if strings.Join(sent, "|") != "STOP "+c.word {
				t.Errorf("journaled %q, want STOP %s", sent, c.word)
			}
			if got := f.received(); len(got) != 2 || got[0] != "STOP "+c.word || !strings.HasPrefix(got[1], "SHOW "+c.word+" STATUS") {
				t.Errorf("the catalog master received %q, want STOP %s then SHOW %s STATUS", got, c.word, c.word)
			}
			if f.io || f.sqlRun {
				t.Errorf("the catalog master's replication still runs: io=%v sql=%v", f.io, f.sqlRun)
			}
		})
	}
}

// TestReplicationLoadErrors checks the fields' validation when a playbook
// loads, each error at the word's own line and column.
func TestReplicationLoadErrors(t *testing.T) {
	head := "name: r\nconnections:\n  db: {mysql: {host: 127.0.0.1, port: 3306, user: u, password: p}}\nsteps:\n  - name: Step 01\n    replication: "
	for _, c := range []struct{ step, want string }{
		{`{on: db}`, "needs `action:`"},
		{`{on: db, action: pause}`, `unknown action "pause"`},
		{`{on: db, action: stop, threads: both}`, `unknown threads "both"`},
		{`{on: db, action: reset, threads: io}`, "`threads:` goes with `action: stop` or `start`"},
		{`{on: db, action: stop, all: true}`, "`all:` goes with `action: reset`"},
		{`{on: db, action: stop, on_restart: never}`, `:6:53: replication step "Step 01": unknown on_restart "never"`},
		{`{on: db, action: start, on_restart: stopped}`, "`on_restart: stopped` goes with `action: stop`, not start"},
		{`{on: db, action: status, on_restart: default}`, "`on_restart: default` goes with `action: start`, not status"},
		{`{on: db, router: true, action: stop, on_restart: stopped}`, "not through a DBScale router"},
	} {
		_, diags := engine.Load(enginetest.Write(t, head+c.step+"\n", nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s: want %q, got %v", c.step, c.want, diags)
		}
	}
}
