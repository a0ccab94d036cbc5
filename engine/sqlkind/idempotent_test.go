package sqlkind

import (
	"strings"
	"testing"
)

func TestIdempotent(t *testing.T) {
	for _, c := range []struct {
		stmt string
		want bool
		why  string // a part of the reason
	}{
		// variables: fixed values yes, computed values no
		{"SET GLOBAL read_only = ON", true, "SET GLOBAL assigns fixed values"},
		{"set global super_read_only=1, read_only = 1", true, "SET GLOBAL"},
		{"SET @@GLOBAL.clone_valid_donor_list = '127.0.0.5:16315'", true, "fixed values"},
		{"SET PERSIST rpl_semi_sync_source_timeout = 10000", true, "SET PERSIST"},
		{"SET PERSIST_ONLY innodb_log_file_size = 1073741824", true, "SET PERSIST_ONLY"},
		{"SET SESSION sql_log_bin = 0", true, "SET SESSION"},
		{"SET GLOBAL x = 'it''s @@not a variable (nor a call)'", true, "fixed values"},
		{"SET GLOBAL max_connections = DEFAULT", true, "fixed values"},
		{"SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED", true, "TRANSACTION"},
		{"SET NAMES utf8mb4", true, "only changes this connection"},
		{"SET GLOBAL max_connections = @@max_connections + 10", false, "read from a variable (@@max_connections)"},
		{"SET @n := @n + 1", false, "read from a variable"},
		{"SET GLOBAL event_scheduler = IF(1, 'ON', 'OFF')", false, "computed by a function"},
		{"SET GLOBAL gtid_purged = '+3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5'", false, "gtid_purged"},
		{"SET @@GLOBAL.gtid_purged = 'x:1-5'", false, "gtid_purged"},
		{"SET PASSWORD FOR 'u'@'%' = 'secret'", false, "password reuse"},
		// IF [NOT] EXISTS
		{"CREATE DATABASE IF NOT EXISTS flowtest", true, "IF NOT EXISTS"},
		{"create table if not exists d.t (id int primary key, v text)", true, "IF NOT EXISTS"},
		{"CREATE USER IF NOT EXISTS 'flow'@'127.%' IDENTIFIED BY 'pw'", true, "IF NOT EXISTS"},
		{"CREATE OR REPLACE VIEW v AS SELECT 1", true, "CREATE OR REPLACE"},
		{"CREATE TABLE t (id INT)", false, "CREATE TABLE without IF NOT EXISTS"},
		{"CREATE TABLE t AS SELECT * FROM u WHERE NOT EXISTS (SELECT 1 FROM w)", false, "without IF NOT EXISTS"},
		{"CREATE INDEX i ON t (c)", false, "CREATE INDEX"},
		{"DROP TABLE IF EXISTS d.t", true, "IF EXISTS"},
		{"DROP USER IF EXISTS 'flow'@'127.%'", true, "IF EXISTS"},
		{"DROP DATABASE d", false, "DROP DATABASE without IF EXISTS"},
		// replication threads
		{"START REPLICA", true, "START REPLICA"},
		{"STOP SLAVE IO_THREAD", true, "STOP SLAVE"},
		{"START REPLICA SQL_THREAD UNTIL SQL_AFTER_GTIDS = 'x:1-9' FOR CHANNEL 'c'", true, "START REPLICA"},
		{"STOP REPLICA IO_THREAD, SQL_THREAD", true, "STOP REPLICA"},
		{"START GROUP_REPLICATION", false, "START GROUP_REPLICATION"},
		{"CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.2', SOURCE_AUTO_POSITION = 1", true, "same configuration"},
		{"CHANGE MASTER TO MASTER_HOST = '127.0.0.2'", true, "same configuration"},
		{"RESET REPLICA ALL", true, "already reset"},
		{"RESET MASTER", false, "erases the binary logs"},
		{"RESET BINARY LOGS AND GTIDS", false, "erases the binary logs"},
		{"RESET PERSIST", true, "already removed"},
		{"RESET PERSIST IF EXISTS max_connections", true, "already removed"},
		{"RESET PERSIST max_connections", false, "without IF EXISTS"},
		{"PURGE BINARY LOGS TO 'binlog.000042'", true, "PURGE BINARY LOGS"},
		// DBScale
		{`dbscale set global "enable-read-only" = 0`, true, "DBSCALE SET GLOBAL"},
		{`dbscale set global 'slave-dbscale-mode'=1`, true, "DBSCALE SET GLOBAL"},
		{`DBSCALE SET SESSION 'max-connect-by-result-num'=1000000`, true, "DBSCALE SET SESSION"},
		{`dbscale set global session_init_charset=''`, true, "DBSCALE SET GLOBAL"},
		{`dbscale set global 'x' = @@y`, false, "read from a variable"},
		{`dbscale dynamic add dataserver server1 server_host="127.0.0.2"`, false, "a DBScale command (DBSCALE DYNAMIC ADD)"},
		{`dbscale show dataservers`, true, "only reads"},
		// rows: depends on keys the text does not show
		{"INSERT INTO t (k, v) VALUES (1, 'a') ON DUPLICATE KEY UPDATE v = VALUES(v)", false, "ON DUPLICATE KEY UPDATE"},
		{"INSERT INTO t (k, n) VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1", false, "ON DUPLICATE KEY UPDATE"},
		{"INSERT IGNORE INTO t VALUES (1)", false, "INSERT IGNORE"},
		{"INSERT LOW_PRIORITY IGNORE INTO t VALUES (1)", false, "INSERT IGNORE"},
		{"INSERT INTO t VALUES ('ON DUPLICATE KEY UPDATE')", false, "an INSERT: running it again could add the rows twice"},
		{"REPLACE INTO t VALUES (1, 'a')", false, "REPLACE"},
		{"UPDATE t SET v = 'a' WHERE k = 1", false, "UPDATE"},
		{"DELETE FROM t WHERE k = 1", true, "DELETE without LIMIT"},
		{"DELETE FROM t WHERE k > 1 LIMIT 10", false, "DELETE … LIMIT"},
		{"DELETE FROM t WHERE created < NOW() - INTERVAL 1 DAY", false, "reads now()"},
		{"TRUNCATE TABLE t", true, "TRUNCATE"},
		// accounts
		{"GRANT BACKUP_ADMIN ON *.* TO 'flowclone'@'127.%'", true, "GRANT"},
		{"REVOKE IF EXISTS SELECT ON d.* FROM u", true, "REVOKE IF EXISTS"},
		{"REVOKE SELECT ON d.* FROM u", false, "1141"},
		// others
		{"FLUSH BINARY LOGS", true, "FLUSH"},
		{"ANALYZE TABLE d.t", true, "ANALYZE"},
		{"INSTALL PLUGIN clone SONAME 'mysql_clone.so'", false, "INSTALL PLUGIN"},
		{"KILL 42", false, "thread id"},
		{"CLONE INSTANCE FROM 'u'@'h':3306 IDENTIFIED BY 'pw'", false, "clones again"},
		{"ALTER TABLE t ADD COLUMN c INT", false, "ALTER TABLE"},
		{"CALL p()", false, "a CALL statement"},
		{"", false, "empty"},
		{"/* a comment */ -- and another\n SET GLOBAL read_only = ON", true, "SET GLOBAL"},
		{"# comment\nDROP TABLE t", false, "DROP TABLE"},
		{"SELECT * FROM t", true, "only reads"},
	} {
		got, why := Idempotent(c.stmt)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("Idempotent(%q) = %v, %q; want %v and a reason with %q", c.stmt, got, why, c.want, c.why)
		}
	}
}

func TestLexQuotesAndComments(t *testing.T) {
	got := lex("SET x = 'a''b\\'c' /* no */ , `we ird` := \"d\" -- tail")
	var parts []string
	for _, tk := range got {
		switch {
		case tk.str:
			parts = append(parts, "s:"+tk.text)
		case tk.sym:
			parts = append(parts, "y:"+tk.text)
		default:
			parts = append(parts, tk.text)
		}
	}
	if want := "SET X y:= s:a'b'c y:, we ird y::= s:d"; strings.Join(parts, " ") != want {
		t.Fatalf("lex: %q, want %q", strings.Join(parts, " "), want)
	}
}
