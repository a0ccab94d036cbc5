package steps

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/mysqlver"
	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// ReplicationStep stops, starts, resets or reads the replication of a MySQL
// node, so a playbook says what it wants done and flow speaks the server's
// dialect: the spelling comes from the server's VERSION() when the step
// runs — STOP SLAVE / SHOW SLAVE STATUS before 8.0.22, STOP REPLICA / SHOW
// REPLICA STATUS from 8.0.22 on (8.4 removed the SLAVE spellings) — and the
// status comes back under one set of field names whatever the version
// (replicationFields), instead of twin steps and column-name parameters in
// every playbook.
//
//	replication: {on: node, host: "{{ m.host }}", action: stop, threads: io}
//	replication: {on: node, action: reset, all: true}
//	replication: {on: node, at: "{{ donor }}", action: stop, on_restart: stopped}
//	replication: {on: node, action: status}          # result.running, result.seconds_behind …
//	replication: {on: target, router: true, action: stop}   # a DBScale router
//
// `router: true` sends the statement to a DBScale router, which passes its
// replication statements on to its catalog master MySQL (dbscale.md A13):
// the SLAVE spelling, the one DBScale is documented to accept, while that
// master is older than 8.4 (VERSION() through the router is the master's),
// REPLICA on 8.4 and newer, which no longer knows SLAVE.
//
// Every action except status ends by reading the status, so `post:` can
// check the state it left (`result.running == false`).
type ReplicationStep struct {
	engine.MySQLTarget `yaml:",inline"`
	// Action is stop, start, reset or status.
	Action replAction `yaml:"action" description:"stop, start, reset (stops first) or status (read-only)"`
	// Threads limits stop and start to one thread: io (the receiver) or
	// sql (the applier); both when absent.
	Threads *replThreads `yaml:"threads" description:"stop/start only one thread: io (the receiver) or sql (the applier); both when absent"`
	// Channel names one replication channel; every channel (status: each
	// in channels) when absent.
	Channel *engine.Value `yaml:"channel" description:"one replication channel (FOR CHANNEL); the default channel '' included; all channels when absent"`
	// All makes reset forget the source's connection settings too (RESET
	// REPLICA ALL): the node is no replica afterwards.
	All *bool `yaml:"all" description:"reset: also forget the source's connection settings (RESET REPLICA ALL): the node is no replica afterwards"`
	// Router says the connection is a DBScale router (see the type).
	Router bool `yaml:"router" description:"the connection is a DBScale router: the statement goes to its catalog master (SLAVE spelling before 8.4); no channel:"`
	// OnRestart says whether the replication starts when the node's mysqld
	// starts next: `stopped` (with stop) persists skip_replica_start, so a
	// crash or a supervisor's restart does not start it again; `default`
	// (with start) forgets that persisted setting. A frozen drill donor
	// that restarts would otherwise fetch the drill's writes.
	OnRestart *replOnRestart `yaml:"on_restart" description:"stop: stopped (SET PERSIST_ONLY skip_replica_start = ON: a restart of mysqld does not start the replication again); start: default (RESET PERSIST IF EXISTS skip_replica_start)"`
}

// replWord is a one-word field (action, threads) that keeps where it was
// written, so a wrong word is reported at its own file:line:col.
type replWord struct {
	Word      string
	Line, Col int
}

// UnmarshalYAML takes a scalar.
func (w *replWord) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want one word, e.g. stop")
	}
	w.Word, w.Line, w.Col = n.Value, n.Line, n.Column
	return nil
}

// replAction is the `action:` of a replication step.
type replAction struct{ replWord }

// JSONSchema lists the actions.
func (replAction) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "enum": replActions}
}

// replThreads is the `threads:` of a replication step.
type replThreads struct{ replWord }

// JSONSchema lists the threads.
func (replThreads) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "enum": replThreadWords}
}

// replOnRestart is the `on_restart:` of a replication step.
type replOnRestart struct{ replWord }

// JSONSchema lists the words.
func (replOnRestart) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "enum": []string{"stopped", "default"}}
}

// Replication actions and threads.
var (
	replActions     = []string{"stop", "start", "reset", "status"}
	replThreadWords = []string{"io", "sql"}
)

// onRestartAction is the action each `on_restart:` word goes with.
var onRestartAction = map[string]string{"stopped": "stop", "default": "start"}

// channelName is what a channel name may be: MySQL allows 64 characters;
// flow keeps to those that need no care in a literal or a log line.
var channelName = regexp.MustCompile(`^[A-Za-z0-9_.\-]{0,64}$`)

// replChannelFields is the status of one channel under flow's names.
var replChannelFields = types.Map{
	"channel":               types.String,
	"configured":            types.Bool,
	"running":               types.Bool,
	"io_running":            types.Bool,
	"io_connecting":         types.Bool,
	"sql_running":           types.Bool,
	"io_state":              types.String,
	"sql_state":             types.String,
	"source_host":           types.String,
	"source_port":           types.Int,
	"source_user":           types.String,
	"source_uuid":           types.String,
	"source_server_id":      types.Int,
	"seconds_behind":        types.Any,
	"sql_delay":             types.Int,
	"auto_position":         types.Bool,
	"retrieved_gtid_set":    types.String,
	"executed_gtid_set":     types.String,
	"source_log_file":       types.String,
	"read_source_log_pos":   types.Int,
	"relay_source_log_file": types.String,
	"exec_source_log_pos":   types.Int,
	"last_io_errno":         types.Int,
	"last_io_error":         types.String,
	"last_sql_errno":        types.Int,
	"last_sql_error":        types.String,
	"all":                   types.Map{types.Extra: types.Any},
}

// replicationOutput is the step's output: the status of the channel asked
// for (or the default channel, or the first by name), every channel in
// channels, and what flow detected.
var replicationOutput = func() types.Map {
	m := types.Map{}
	for k, v := range replChannelFields {
		m[k] = v
	}
	m["channels"] = types.Array(replChannelFields)
	m["count"] = types.Int
	m["version"] = types.String
	m["spelling"] = types.String
	m["router"] = types.Bool
	m["target"] = types.String
	return m
}()

func init() {
	engine.Register(engine.StepType{
		Name:       "replication",
		Summary:    "stop, start, reset or read a node's replication, spelt for its MySQL version (SLAVE before 8.0.22, REPLICA after); status fields named one way on every version",
		New:        func() engine.StepSpec { return &ReplicationStep{} },
		Output:     replicationOutput,
		Idempotent: true,
		Changes:    "`action: stop`, `start`, `reset` yes, `status` no",
	})
}

// Mutates is false only for status.
func (s *ReplicationStep) Mutates() bool { return s.Action.Word != "status" }

// Check validates the words and which fields go with which action.
func (s *ReplicationStep) Check(c *engine.Check) {
	name := c.StepName()
	at := func(w replWord) engine.Pos {
		if w.Line == 0 {
			return c.StepPos()
		}
		return engine.Pos{File: c.StepPos().File, Line: w.Line, Col: w.Col}
	}
	switch a := s.Action.Word; {
	case a == "":
		c.Errorf(c.StepPos(), "replication step %q needs `action:`: stop, start, reset or status", name)
		return
	case !contains(replActions, a):
		c.Errorf(at(s.Action.replWord), "replication step %q: unknown action %q: use stop, start, reset (RESET REPLICA, stopping first) or status (read-only)", name, a)
		return
	}
	if s.Threads != nil {
		switch {
		case !contains(replThreadWords, s.Threads.Word):
			c.Errorf(at(s.Threads.replWord), "replication step %q: unknown threads %q: use io (the receiver, IO_THREAD) or sql (the applier, SQL_THREAD), or leave `threads:` out for both", name, s.Threads.Word)
		case s.Action.Word != "stop" && s.Action.Word != "start":
			c.Errorf(at(s.Threads.replWord), "replication step %q: `threads:` goes with `action: stop` or `start`, not %s", name, s.Action.Word)
		}
	}
	if o := s.OnRestart; o != nil {
		switch want, ok := onRestartAction[o.Word]; {
		case !ok:
			c.Errorf(at(o.replWord), "replication step %q: unknown on_restart %q: use stopped (with action: stop) or default (with action: start)", name, o.Word)
		case s.Router:
			c.Errorf(at(o.replWord), "replication step %q: `on_restart:` persists a setting of one MySQL node: not through a DBScale router (`router: true`)", name)
		case s.Action.Word != want:
			c.Errorf(at(o.replWord), "replication step %q: `on_restart: %s` goes with `action: %s`, not %s", name, o.Word, want, s.Action.Word)
		}
	}
	if s.All != nil && s.Action.Word != "reset" {
		c.Errorf(c.StepPos(), "replication step %q: `all:` goes with `action: reset`", name)
	}
	if s.Channel != nil {
		if s.Router {
			c.Errorf(s.Channel.Pos, "replication step %q: a DBScale router (`router: true`) takes no `channel:`: it passes the statement to its catalog master's default channel", name)
		} else if !strings.Contains(s.Channel.Raw, "{{") && !channelName.MatchString(s.Channel.Raw) {
			c.Errorf(s.Channel.Pos, "replication step %q: channel %q: a channel name is up to 64 letters, digits, _, . or -", name, s.Channel.Raw)
		}
	}
}

func contains(list []string, w string) bool {
	for _, x := range list {
		if x == w {
			return true
		}
	}
	return false
}

// replDialect is the spelling a statement is sent in.
type replDialect struct {
	replica bool // REPLICA (8.0.22+) rather than SLAVE
	// skipStart is the system variable that keeps the replication stopped
	// when mysqld starts: skip_replica_start from 8.0.26, skip_slave_start
	// from 8.0.24 (before, only a command-line option: ""). The server
	// persists both names for either.
	skipStart string
}

func (d replDialect) word() string {
	if d.replica {
		return "REPLICA"
	}
	return "SLAVE"
}

// dialectFor chooses the spelling for a server version: REPLICA where the
// server knows it; through a DBScale router SLAVE while the master behind
// it still accepts it (the spelling DBScale is documented to pass on).
func dialectFor(v mysqlver.Version, router bool) replDialect {
	if router {
		return replDialect{replica: !v.HasSlaveSyntax()}
	}
	d := replDialect{replica: v.HasReplicaSyntax()}
	switch {
	case v.AtLeast(8, 0, 26):
		d.skipStart = "skip_replica_start"
	case v.AtLeast(8, 0, 24):
		d.skipStart = "skip_slave_start"
	}
	return d
}

// statements are what the action sends in dialect d, channel ch (nil: no
// FOR CHANNEL clause), in order; status is the status query.
func (s *ReplicationStep) statements(d replDialect, ch *string) (control []string, status string) {
	forCh := ""
	if ch != nil {
		forCh = " FOR CHANNEL " + quote.SQLString(*ch)
	}
	threads := ""
	if s.Threads != nil {
		threads = " " + strings.ToUpper(s.Threads.Word) + "_THREAD"
	}
	w := d.word()
	onRestart := ""
	if s.OnRestart != nil {
		onRestart = s.OnRestart.Word
	}
	switch s.Action.Word {
	case "stop":
		control = []string{"STOP " + w + threads + forCh}
		if onRestart == "stopped" && d.skipStart != "" {
			control = append(control, "SET PERSIST_ONLY "+d.skipStart+" = ON")
		}
	case "start":
		control = []string{"START " + w + threads + forCh}
		if onRestart == "default" && d.skipStart != "" {
			control = append([]string{"RESET PERSIST IF EXISTS " + d.skipStart}, control...)
		}
	case "reset":
		all := ""
		if s.All != nil && *s.All {
			all = " ALL"
		}
		control = []string{"STOP " + w + forCh, "RESET " + w + all + forCh}
	}
	return control, "SHOW " + w + " STATUS" + forCh
}

// Render shows the statements as spelt for the current versions (8.0.22
// and newer; through a router, before 8.4) and the other spelling: which
// one is sent is decided from the server's VERSION() when the step runs,
// and a plan or dry run must not depend on reaching the server.
func (s *ReplicationStep) Render(r *engine.Render) ([]engine.Action, error) {
	var ch *string
	if s.Channel != nil {
		v := r.Value(s.Channel)
		ch = &v
	}
	first, other := replDialect{replica: true, skipStart: "skip_replica_start"}, replDialect{replica: false}
	firstFor, otherFor := "MySQL 8.0.22 and newer (8.4, 9.x)", "before 8.0.22"
	if s.Router {
		first, other = other, first
		firstFor, otherFor = "a catalog master older than 8.4", "8.4 and newer"
	}
	control, status := s.statements(first, ch)
	otherControl, otherStatus := s.statements(other, ch)
	lines := append([]string(nil), control...)
	alt := otherControl
	if s.Action.Word == "status" {
		lines, alt = []string{status}, []string{otherStatus}
	}
	via := ""
	if s.Router {
		via = "through the DBScale router to its catalog master; "
	}
	note := fmt.Sprintf("(%sspelt for %s; %s: %s — chosen from the server's VERSION() when the step runs", via, firstFor, otherFor, strings.Join(alt, "; "))
	if s.OnRestart != nil {
		note += "; the variable is skip_replica_start from 8.0.26, skip_slave_start on 8.0.24 and 8.0.25"
		if s.OnRestart.Word == "stopped" {
			note += ", and before 8.0.24, which cannot persist it, the step fails before sending anything"
		} else {
			note += ", and before 8.0.24 there is none to forget"
		}
	}
	if s.Action.Word != "status" {
		note += "; then " + status + " into the output"
	}
	lines = append(lines, note+")")
	return []engine.Action{{Target: r.MySQLTarget(&s.MySQLTarget), Text: strings.Join(lines, "\n")}}, nil
}

// qVersion is how the step learns the server's version.
const qVersion = "SELECT VERSION()"

// Run detects the version, sends the action's statements and reads the
// status.
func (s *ReplicationStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	var ch *string
	if s.Channel != nil {
		v, err := x.Value(s.Channel)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprint(v)
		if !channelName.MatchString(name) {
			return nil, fmt.Errorf("%s: channel %q: a channel name is up to 64 letters, digits, _, . or -", s.Channel.Pos, name)
		}
		ch = &name
	}
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect: %v (is the server up, and are the credentials in the config right?)", target, x.Mask(err.Error()))
	}
	defer conn.Close()

	x.Debugf("%s   (to choose the REPLICA or SLAVE spelling)", qVersion)
	var text string
	if err := conn.QueryRowContext(ctx, qVersion).Scan(&text); err != nil {
		return nil, fmt.Errorf("%s: `%s`: %s", target, qVersion, x.Mask(err.Error()))
	}
	ver, err := mysqlver.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: VERSION() is %q, which flow cannot read as a MySQL version: it chooses the REPLICA or SLAVE spelling from it", target, text)
	}
	d := dialectFor(ver, s.Router)
	if s.OnRestart != nil && s.OnRestart.Word == "stopped" && d.skipStart == "" {
		return nil, fmt.Errorf("%s: MySQL %s cannot persist skip_slave_start (a system variable from 8.0.24 on), so flow cannot keep its replication stopped across a restart of mysqld: add skip-slave-start to the [mysqld] section of its option file, then run the step without `on_restart:`", target, ver)
	}
	control, status := s.statements(d, ch)
	x.Debugf("%s: MySQL %s: the %s spelling", target, ver, d.word())

	for _, q := range control {
		if err := s.send(ctx, x, db, conn, target, q); err != nil {
			return nil, err
		}
	}
	if s.Mutates() {
		x.Debugf("%s   (the state the step left)", status)
	} else {
		x.Sent(target, status)
	}
	out, err := readStatus(ctx, conn, status, ch)
	if err != nil {
		return nil, fmt.Errorf("%s: `%s`: %s", target, status, x.Mask(err.Error()))
	}
	out["version"], out["spelling"], out["router"], out["target"] = ver.String(), d.word(), s.Router, target
	x.Infof("%s: %s", target, describeStatus(out))
	return out, nil
}

// send runs one control statement, journaled as sent; a cancelled run kills
// it on a MySQL node (not through a router: the connection id it reports
// is its backend's, not the router's own).
func (s *ReplicationStep) send(ctx context.Context, x *engine.Exec, db *sql.DB, conn *sql.Conn, target, q string) error {
	if !s.Router {
		defer killOnCancel(ctx, x, db, conn, target, q)()
	}
	x.Sent(target, q)
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: `%s`: %s%s", target, q, x.Mask(err.Error()), replHint(err))
	}
	return nil
}

// replHint says what to do about the server errors a replication
// statement typically meets.
func replHint(err error) string {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return ""
	}
	switch me.Number {
	case 1200, 3080: // ER_REPLICA_CONFIGURATION: no source configured
		return " (the node has no replication source configured: it is not a replica; configure one with CHANGE REPLICATION SOURCE TO, or check the step targets the right node)"
	case 3074: // ER_REPLICA_CHANNEL_DOES_NOT_EXIST
		return " (no such channel on this node: `replication: {action: status}` lists its channels)"
	case 1227: // ER_SPECIFIC_ACCESS_DENIED_ERROR
		return " (the account needs REPLICATION_SLAVE_ADMIN, or SUPER; `on_restart:` also SYSTEM_VARIABLES_ADMIN and PERSIST_RO_VARIABLES_ADMIN)"
	case 9001: // DBScale: slave-dbscale-mode off
		return " (the DBScale router refuses replication statements while slave-dbscale-mode is 0: `dbscale set global 'slave-dbscale-mode' = 1` first)"
	}
	return ""
}

// readStatus runs the status query and returns the output: the chosen
// channel's fields at the top, every channel in channels. A node that is
// no replica (no row, or a channel it lacks) has configured and every
// flag false, texts "", numbers 0, seconds_behind nil and no channels.
func readStatus(ctx context.Context, conn *sql.Conn, q string, ch *string) (map[string]any, error) {
	rows, err := conn.QueryContext(ctx, q)
	var me *mysql.MySQLError
	if err != nil && ch != nil && errors.As(err, &me) && me.Number == 3074 {
		return statusOutput(nil), nil // the channel does not exist: not configured
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list, _, err := ScanRows(rows)
	if err != nil {
		return nil, err
	}
	chans := make([]map[string]any, 0, len(list))
	for _, r := range list {
		chans = append(chans, channelStatus(r.(map[string]any)))
	}
	sort.Slice(chans, func(i, j int) bool { return chans[i]["channel"].(string) < chans[j]["channel"].(string) })
	return statusOutput(chans), nil
}

// statusOutput puts the chosen channel (the default one, else the first by
// name) at the top level.
func statusOutput(chans []map[string]any) map[string]any {
	out := channelStatus(nil)
	if len(chans) > 0 {
		out = chans[0] // sorted: the default channel "" first
	}
	top := make(map[string]any, len(out)+8)
	for k, v := range out {
		top[k] = v
	}
	list := make([]any, len(chans))
	for i, c := range chans {
		list[i] = c
	}
	top["channels"] = list
	top["count"] = len(chans)
	return top
}

// normalColumn is a status column's name in one spelling whatever the
// server's: lower case, SLAVE → replica, MASTER → source (Slave_IO_Running
// and Replica_IO_Running are both replica_io_running).
func normalColumn(c string) string {
	c = strings.ToLower(c)
	c = strings.ReplaceAll(c, "slave", "replica")
	return strings.ReplaceAll(c, "master", "source")
}

// channelStatus reads one row of SHOW REPLICA/SLAVE STATUS under flow's
// names (nil: a channel that is not configured).
func channelStatus(row map[string]any) map[string]any {
	all := make(map[string]any, len(row))
	for k, v := range row {
		if s, ok := v.(string); ok && strings.HasSuffix(normalColumn(k), "_gtid_set") {
			v = flatGTID(s)
		}
		all[normalColumn(k)] = v
	}
	str := func(k string) string {
		if v, ok := all[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	num := func(k string) int {
		n, _ := toInt(all[k])
		return n
	}
	io, sqlT := str("replica_io_running"), str("replica_sql_running")
	var lag any
	if n, ok := toInt(all["seconds_behind_source"]); ok {
		lag = n
	}
	return map[string]any{
		"channel":               str("channel_name"),
		"configured":            row != nil,
		"running":               io == "Yes" && sqlT == "Yes",
		"io_running":            io == "Yes",
		"io_connecting":         io == "Connecting",
		"sql_running":           sqlT == "Yes",
		"io_state":              str("replica_io_state"),
		"sql_state":             str("replica_sql_running_state"),
		"source_host":           str("source_host"),
		"source_port":           num("source_port"),
		"source_user":           str("source_user"),
		"source_uuid":           str("source_uuid"),
		"source_server_id":      num("source_server_id"),
		"seconds_behind":        lag,
		"sql_delay":             num("sql_delay"),
		"auto_position":         num("auto_position") == 1,
		"retrieved_gtid_set":    str("retrieved_gtid_set"),
		"executed_gtid_set":     str("executed_gtid_set"),
		"source_log_file":       str("source_log_file"),
		"read_source_log_pos":   num("read_source_log_pos"),
		"relay_source_log_file": str("relay_source_log_file"),
		"exec_source_log_pos":   num("exec_source_log_pos"),
		"last_io_errno":         num("last_io_errno"),
		"last_io_error":         str("last_io_error"),
		"last_sql_errno":        num("last_sql_errno"),
		"last_sql_error":        str("last_sql_error"),
		"all":                   all,
	}
}

// toInt reads a status cell as a number (false for NULL or text).
func toInt(v any) (int, bool) {
	switch t := v.(type) {
	case int:
		return t, true
	case float64:
		return int(t), true
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(t))
		return n, err == nil
	}
	return 0, false
}

// describeStatus is the log line of the state the step saw or left.
func describeStatus(out map[string]any) string {
	if !out["configured"].(bool) {
		return "not a replica (no replication channel configured)"
	}
	ch := "the default channel"
	if n := out["channel"].(string); n != "" {
		ch = "channel " + strconv.Quote(n)
	}
	yn := func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	}
	io := yn(out["io_running"].(bool))
	if out["io_connecting"].(bool) {
		io = "Connecting"
	}
	lag := "unknown"
	if v := out["seconds_behind"]; v != nil {
		lag = fmt.Sprintf("%ds", v)
	}
	msg := fmt.Sprintf("replication of %s from %s:%d: IO %s, SQL %s, behind %s", ch, out["source_host"], out["source_port"], io, yn(out["sql_running"].(bool)), lag)
	if n := out["last_io_errno"].(int); n != 0 {
		msg += fmt.Sprintf("; IO error %d: %s", n, clipText(out["last_io_error"].(string), 300))
	}
	if n := out["last_sql_errno"].(int); n != 0 {
		msg += fmt.Sprintf("; SQL error %d: %s", n, clipText(out["last_sql_error"].(string), 300))
	}
	if c := out["count"].(int); c > 1 {
		msg += fmt.Sprintf(" (%d channels)", c)
	}
	return msg
}

// Resume judges an interrupted run: every action may run again. STOP and
// START set a state (repeating them only warns that the threads already
// are stopped or running), a second RESET leaves the same forgotten
// state, and status only reads.
func (s *ReplicationStep) Resume(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (engine.ResumeDecision, map[string]any, string, error) {
	switch s.Action.Word {
	case "stop", "start":
		return engine.ResumeRerun, nil, fmt.Sprintf("replication %s sets a state (and on_restart a persisted setting): sending it again changes nothing more", s.Action.Word), nil
	case "reset":
		return engine.ResumeRerun, nil, "replication reset stops and forgets the position: doing it again leaves the same state", nil
	}
	return engine.ResumeRerun, nil, "a replication status only reads", nil
}
