package dbscale

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"gopkg.in/yaml.v3"
)

func TestTrimStatement(t *testing.T) {
	for in, want := range map[string]string{
		"dbscale show dataservers;":       "dbscale show dataservers",
		"dbscale show dataservers\\G":     "dbscale show dataservers",
		"dbscale show dataservers\\G;":    "dbscale show dataservers",
		"  select 1 ;  ; ":                "select 1",
		"select 'a;'":                     "select 'a;'",
		"dbscale request cluster info\\g": "dbscale request cluster info",
	} {
		if got := trimStatement(in); got != want {
			t.Errorf("trimStatement(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCommandsAcceptEveryQuotingAndSpacing(t *testing.T) {
	set := func(scope, name, value string) command { return cmdSetOption{scope: scope, name: name, value: value} }
	cases := []struct {
		in   string
		want command
	}{
		{"dbscale set global 'slave-dbscale-mode'=1", set("global", "slave-dbscale-mode", "1")},
		{`dbscale set global "enable-read-only" = 0`, set("global", "enable-read-only", "0")},
		{"DBSCALE SET GLOBAL `enable_read_only`   =   '1'", set("global", "enable_read_only", "1")},
		{"dbscale set global 'log-level' = 'DEBUG'", set("global", "log-level", "DEBUG")},
		{"dbscale set global session_init_charset=''", set("global", "session_init_charset", "")},
		{"dbscale set session 'max-connect-by-result-num'=1000000", set("session", "max-connect-by-result-num", "1000000")},
		{"dbscale set instance max-replication-delay=5", set("instance", "max-replication-delay", "5")},
		{"dbscale request cluster info", cmdRequestClusterInfo{}},
		{"DBScale Request  Next\tGroup\nID", cmdRequestNextGroupID{}},
		{"dbscale show options like 'transparent-mode'", cmdShowOptions{like: "transparent-mode", hasLike: true}},
		{"dbscale show global option like \"%mode%\"", cmdShowOptions{scope: "global", like: "%mode%", hasLike: true}},
		{"dbscale show instance options", cmdShowOptions{scope: "instance"}},
		{"dbscale show datasource type=replication", cmdShowDatasourceType{typ: "replication"}},
		{"dbscale show datasource type =replication", cmdShowDatasourceType{typ: "replication"}},
		{"dbscale show datasource type = 'SERVER'", cmdShowDatasourceType{typ: "SERVER"}},
		{"dbscale show datasource normal_0", cmdShowDatasourceName{name: "normal_0"}},
		{`dbscale dynamic add server datasource slave_dbscale_source slave_dbscale_server-1-1000-400-800 group_id = 6`,
			cmdAddServerDatasource{name: "slave_dbscale_source", server: "slave_dbscale_server", pool: [4]int{1, 1000, 400, 800}, groupID: 6, hasGroup: true}},
		{`dbscale dynamic add server datasource slave_dbscale_source, slave_dbscale_server-1-1000-400-800 group_id =207`,
			cmdAddServerDatasource{name: "slave_dbscale_source", server: "slave_dbscale_server", pool: [4]int{1, 1000, 400, 800}, groupID: 207, hasGroup: true}},
		{`dbscale dynamic add server datasource "src" 'my-srv-2-10-3-8'`,
			cmdAddServerDatasource{name: "src", server: "my-srv", pool: [4]int{2, 10, 3, 8}}},
		{"dbscale dynamic add slave slave_dbscale_source to normal_0", cmdAddSlave{source: "slave_dbscale_source", target: "normal_0"}},
		{"dbscale dynamic ADD SLAVE `s` TO \"normal_1\"", cmdAddSlave{source: "s", target: "normal_1"}},
		{`dbscale dynamic remove datasource "source_name"`, cmdRemove{name: "source_name"}},
		{"dbscale dynamic remove dataserver slave_dbscale_server", cmdRemove{dataserver: true, name: "slave_dbscale_server"}},
		{"dbscale dynamic remove slave s from normal_0", cmdRemoveSlave{source: "s", from: "normal_0"}},
		{"dbscale disable dataserver normal_0_1", cmdEnable{name: "normal_0_1"}},
		{"dbscale enable dataserver 'normal_0_1'", cmdEnable{enable: true, name: "normal_0_1"}},
		{"DBSCALE FLASHBACK DATASERVER normal_0_1 FORCE ONLINE", cmdFlashback{name: "normal_0_1"}},
		{"dbscale flush all config to file '/tmp/router.cfg'", cmdFlushConfig{}},
	}
	for _, c := range cases {
		got, err := parseCommand(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.in, got, c.want)
		}
	}
}

func TestParseAddDataserverFreeQuoting(t *testing.T) {
	want := map[string]string{"server_name": "slave_dbscale_server", "server_host": "127.0.0.1",
		"server_port": "3307", "server_user": "admin", "server_password": "12,3'456"}
	for _, in := range []string{
		`dbscale dynamic add dataserver server_name=slave_dbscale_server,server_host="127.0.0.1",server_port=3307,server_user="admin",server_password="12,3'456",dbscale_server`,
		`dbscale dynamic ADD DATASERVER server_name="slave_dbscale_server",server_host='127.0.0.1',server_port='3307',server_user=admin,server_password='12,3\'456',dbscale_server`,
		"dbscale dynamic add dataserver server-name=`slave_dbscale_server`, server_host = 127.0.0.1 , SERVER_PORT=3307,server_user=admin,server_password='12,3''456', DBSCALE_SERVER",
	} {
		got, err := parseCommand(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		c := got.(cmdAddDataserver)
		if !reflect.DeepEqual(c.fields, want) || !c.flags["dbscale_server"] {
			t.Errorf("%s:\n got %v %v", in, c.fields, c.flags)
		}
	}
}

func TestParseErrorsNameTheCommandButNoValue(t *testing.T) {
	cases := map[string]string{
		"dbscale frobnicate the router":                                "Unknown DBScale command 'dbscale frobnicate the router'",
		"dbscale show everything":                                      "Unknown DBScale command 'dbscale show everything'",
		"dbscale dynamic move dataserver x":                            "Unknown DBScale command 'dbscale dynamic move dataserver'",
		"dbscale set global 'enable-read-only'":                        "expected =",
		"dbscale dynamic add server datasource s srv-1-1000-400 ":      "expected server-min-max-low-high",
		"dbscale flashback dataserver normal_0_1 force":                "expected ONLINE",
		"dbscale dynamic add dataserver server_name=x,server_password": "unknown flag server_password",
		"dbscale show dataservers where status lik '%x%'":              "expected a comparison",
		"dbscale show dataservers 'x'":                                 "unexpected 'x'",
	}
	for in, want := range cases {
		_, err := parseCommand(in)
		me, ok := err.(*mysql.MyError)
		if !ok || me.Code != CodeParse || !strings.Contains(me.Message, want) {
			t.Errorf("%s: got %v, want 1064 containing %q", in, err, want)
		}
	}
	_, err := parseCommand(`dbscale dynamic add dataserver server_name=x,server_password='TopSecret1',bogus_field=1`)
	if err == nil || strings.Contains(err.Error(), "TopSecret1") {
		t.Errorf("error %v must not be nil nor echo the password", err)
	}
}

func TestWhereFilters(t *testing.T) {
	tbl := func() *table {
		return &table{cols: []string{"servername", "status", "port", "master-online-status"}, rows: [][]string{
			{"normal_0_0", "Server normal", "16315", "Master_Online"},
			{"normal_0_1", "Slave normal", "16315", "Not_A_Master"},
			{"normal_0_2", "Server normal, slave down", "3306", "Not_A_Master"},
			{"slave_dbscale_server", "Slave normal", "16310", "Not_A_Master"},
		}}
	}
	cases := map[string][]string{
		"status like '%normal%'":                            {"normal_0_0", "normal_0_1", "normal_0_2", "slave_dbscale_server"},
		"status like 'slave%'":                              {"normal_0_1", "slave_dbscale_server"},
		"servername like '%server%'":                        {"slave_dbscale_server"},
		"port like '%16315%'":                               {"normal_0_0", "normal_0_1"},
		"port = 16315":                                      {"normal_0_0", "normal_0_1"},
		"port > 5000 and port < 16312":                      {"slave_dbscale_server"},
		"`master-online-status` = 'master_online'":          {"normal_0_0"},
		"master-online-status != \"Master_Online\"":         {"normal_0_1", "normal_0_2", "slave_dbscale_server"},
		"servername in ('normal_0_2', 'normal_0_0')":        {"normal_0_0", "normal_0_2"},
		"not (status like '%down%' or servername = 'x')":    {"normal_0_0", "normal_0_1", "slave_dbscale_server"},
		"status not like '%normal' and port <> 16310":       {"normal_0_2"},
		"servername like 'normal\\_0\\_1'":                  {"normal_0_1"},
		"STATUS LIKE 'SERVER NORMAL' OR port = '3306'":      {"normal_0_0", "normal_0_2"},
		"servername like 'normal_0__' and port like '163%'": {"normal_0_0", "normal_0_1"},
	}
	for where, want := range cases {
		c, err := parseCommand("dbscale show dataservers where " + where)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		tb := tbl()
		if err := tb.filter(c.(cmdShowDataservers).where); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		var got []string
		for _, r := range tb.rows {
			got = append(got, r[0])
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("where %s: got %v, want %v", where, got, want)
		}
	}
	c, _ := parseCommand("dbscale show dataservers where nosuch = 1")
	err := tbl().filter(c.(cmdShowDataservers).where)
	if me, ok := err.(*mysql.MyError); !ok || me.Code != CodeBadField {
		t.Errorf("unknown column: got %v, want error 1054", err)
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]stmtClass{
		"select 1":                         classOther,
		"SELECT @@version_comment LIMIT 1": classVersionComment,
		"insert into t values (1)":         classWrite,
		"Replace into t values (1)":        classWrite,
		"create database a":                classWrite,
		"DROP TABLE t":                     classWrite,
		"truncate t":                       classWrite,
		"rename table a to b":              classWrite,
		"grant all on *.* to x":            classWrite,
		"update t set a=1":                 classWrite,
		"delete from t":                    classWrite,
		"alter table t add c int":          classWrite,
		"set names utf8mb4":                classSet,
		"use db":                           classUse,
		"show tables":                      classOther,
		"start slave":                      classReplControl,
		"START REPLICA":                    classReplControl,
		"stop slave":                       classReplControl,
		"reset slave all":                  classReplControl,
		"reset replica":                    classReplControl,
		"change master to master_host='h'": classReplControl,
		"CHANGE REPLICATION SOURCE TO SOURCE_HOST=1":    classReplControl,
		"show binary logs":                              classReplControl,
		"show slave status":                             classReplStatus,
		"show replica status":                           classReplStatus,
		"show master status":                            classReplStatus,
		"show binary log status":                        classReplStatus,
		"change replication filter replicate_do_db=(d)": classOther,
	}
	for q, want := range cases {
		if got, _ := classify(q); got != want {
			t.Errorf("classify(%q) = %d, want %d", q, got, want)
		}
	}
	if hint, rest := splitLeadingComments("/* dbscale datasource=normal_1 */ -- x\n # y\n  STOP SLAVE"); hint != "normal_1" || rest != "STOP SLAVE" {
		t.Errorf("hint %q rest %q", hint, rest)
	}
	if hint, rest := splitLeadingComments("/*+ SET_VAR(x=1) */ select 1"); hint != "" || !strings.HasPrefix(rest, "/*+") {
		t.Errorf("optimizer hint must stay: %q %q", hint, rest)
	}
}

func TestTranslateForEachDialect(t *testing.T) {
	v97, v80, v8026, v57 := dialectOf("9.7.4-2"), dialectOf("8.0.36"), dialectOf("8.0.26-log"), dialectOf("5.7.44")
	cases := []struct {
		d    dialect
		in   string
		want string
	}{
		{v97, "start slave", "START REPLICA"},
		{v97, "stop slave io_thread", "STOP REPLICA io_thread"},
		{v97, "reset slave all", "RESET REPLICA all"},
		{v97, "change master to master_host='a', MASTER_PORT=3306, master_user='u', master_password='MASTER_x', master_auto_position=1, get_master_public_key=1",
			"CHANGE REPLICATION SOURCE to SOURCE_host='a', SOURCE_PORT=3306, SOURCE_user='u', SOURCE_password='MASTER_x', SOURCE_auto_position=1, GET_SOURCE_PUBLIC_KEY=1"},
		{v97, "start slave until master_log_file='b', master_log_pos=4", "START REPLICA until SOURCE_log_file='b', SOURCE_log_pos=4"},
		{v97, "show slave status", "SHOW REPLICA STATUS"},
		{v97, "show master status", "SHOW BINARY LOG STATUS"},
		{v97, "reset master", "RESET BINARY LOGS AND GTIDS"},
		{v97, "start replica", "start replica"},
		{v80, "start slave", "start slave"},
		{v80, "show master status", "show master status"},
		{v8026, "start replica", "start replica"},
		{v57, "start replica", "START SLAVE"},
		{v57, "change replication source to source_host='h'", "CHANGE MASTER to MASTER_host='h'"},
		{v57, "show binary log status", "SHOW MASTER STATUS"},
		{v57, "show replica status", "SHOW SLAVE STATUS"},
	}
	for _, c := range cases {
		_, kw := classify(c.in)
		if got := translate(c.in, kw, c.d).query; got != c.want {
			t.Errorf("translate(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for in, want := range map[string]string{
		"Replica_IO_State": "Slave_IO_State", "Source_Host": "Master_Host", "Read_Source_Log_Pos": "Read_Master_Log_Pos",
		"Relay_Source_Log_File": "Relay_Master_Log_File", "Replica_SQL_Running": "Slave_SQL_Running",
		"Seconds_Behind_Source": "Seconds_Behind_Master", "Replicate_Do_DB": "Replicate_Do_DB",
		"Get_Source_public_key": "Get_master_public_key", "Source_public_key_path": "Master_public_key_path",
		"Executed_Gtid_Set": "Executed_Gtid_Set", "Replica_SQL_Running_State": "Slave_SQL_Running_State",
	} {
		if got := toSlaveColumn(in); got != want {
			t.Errorf("toSlaveColumn(%s) = %s, want %s", in, got, want)
		}
		if back := toReplicaColumn(want); back != in {
			t.Errorf("toReplicaColumn(%s) = %s, want %s", want, back, in)
		}
	}
}

func TestInterpolate(t *testing.T) {
	got, err := interpolate("select ?, '?', `?`, \"?\" -- ?\n, ? /* ? */, ?, ?, ?",
		[]any{int64(-3), mysql.TypedBytes{Type: mysql.MYSQL_TYPE_VAR_STRING, Bytes: []byte("it's")}, nil, 2.5, []byte{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := "select -3, '?', `?`, \"?\" -- ?\n, 'it\\'s' /* ? */, NULL, 2.5, X'0001'"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := interpolate("select ?", nil); err == nil {
		t.Error("want an error for a missing argument")
	}
	if n := countPlaceholders("select '?' , ?, \"\\\"?\""); n != 1 {
		t.Errorf("countPlaceholders = %d", n)
	}
}

func TestConfigValidation(t *testing.T) {
	good := `
users: [{name: admin, password: pw, admin: true}]
node_user: dbscale_internal
node_password: x
datasources:
  - name: normal_0
    servers:
      - {name: normal_0_0, host: 127.0.0.2, port: 16315}
      - {name: normal_0_1, host: 127.0.0.3, port: 16315}
options: {enable-disaster-mode: "1", my-extra: abc}
`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataSources[0].Master != "normal_0_0" || c.DataSources[0].GroupID != 100 || c.AuthPlugin != authSHA2 {
		t.Errorf("defaults not applied: %+v", c.DataSources[0])
	}
	jsonDoc := `{"users":[{"name":"a","password":"p","admin":true}],"node_user":"u","datasources":[{"name":"normal_0","servers":[{"name":"n0","host":"127.0.0.5","port":1}]}]}`
	if _, err := ParseConfig([]byte(jsonDoc)); err != nil {
		t.Errorf("JSON config: %v", err)
	}
	bad := map[string]string{
		"not loopback":  strings.Replace(good, "127.0.0.3", "10.1.2.3", 1),
		"no admin":      strings.Replace(good, "admin: true", "admin: false", 1),
		"unknown key":   good + "bogus: 1\n",
		"dup server":    strings.Replace(good, "normal_0_1", "normal_0_0", 1),
		"bad master":    strings.Replace(good, "- name: normal_0\n", "- name: normal_0\n    master: nope\n", 1),
		"bad option":    strings.Replace(good, `enable-disaster-mode: "1"`, `enable-disaster-mode: "maybe"`, 1),
		"no datasource": "users: [{name: a, password: p, admin: true}]\n",
	}
	for what, doc := range bad {
		if _, err := ParseConfig([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", what)
		} else if strings.Contains(err.Error(), "pw") && what != "unknown key" {
			t.Errorf("%s: error shows a password: %v", what, err)
		}
	}
}

// The lab writes its Config with yaml.Marshal: it must read back the same.
func TestConfigYAMLRoundTrip(t *testing.T) {
	c := &Config{
		Users:    []User{{Name: "admin", Password: "a#b: 'c\"", Admin: true}},
		NodeUser: "dbscale_internal", NodePassword: "n:p#1",
		ProbeTimeout: 1500 * time.Millisecond,
		DataSources:  []DataSourceConfig{{Name: "normal_0", Servers: []ServerConfig{{Name: "normal_0_0", Host: "127.0.0.2", Port: 16315}}}},
		Options:      map[string]string{"enable-disaster-mode": "1"},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v\n%s", back, c, b)
	}
}
