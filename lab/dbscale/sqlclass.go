package dbscale

import (
	"strings"

	"github.com/flowdba/flow/mysqlver"
)

// stmtClass is how the router treats a non-dbscale statement.
type stmtClass int

const (
	classOther          stmtClass = iota // forwarded to the catalog master
	classWrite                           // DML/DDL: refused while enable-read-only is on
	classReplControl                     // replication control: needs slave-dbscale-mode
	classReplStatus                      // replication status: always answered by the master
	classSet                             // SET …
	classUse                             // USE db
	classVersionComment                  // the mysql CLI's login query
)

// writeKeywords start the statements enable-read-only refuses: DBScale
// refuses statement types from DDL_START through CALL (dbscale.md B).
var writeKeywords = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "REPLACE": true,
	"CREATE": true, "ALTER": true, "DROP": true, "TRUNCATE": true, "RENAME": true,
	"GRANT": true, "REVOKE": true, "LOAD": true, "CALL": true, "IMPORT": true,
	"INSTALL": true, "UNINSTALL": true,
}

// classify returns the class of a statement (leading comments removed) and
// its first keywords in upper case.
func classify(q string) (stmtClass, []string) {
	kw := keywords(q, 5)
	if len(kw) == 0 {
		return classOther, kw
	}
	switch {
	case isVersionComment(q):
		return classVersionComment, kw
	case kw[0] == "SET":
		return classSet, kw
	case kw[0] == "USE":
		return classUse, kw
	case writeKeywords[kw[0]]:
		return classWrite, kw
	case hasKeywords(kw, "START", "SLAVE"), hasKeywords(kw, "START", "REPLICA"),
		hasKeywords(kw, "STOP", "SLAVE"), hasKeywords(kw, "STOP", "REPLICA"),
		hasKeywords(kw, "RESET", "SLAVE"), hasKeywords(kw, "RESET", "REPLICA"),
		hasKeywords(kw, "CHANGE", "MASTER"), hasKeywords(kw, "CHANGE", "REPLICATION", "SOURCE"),
		hasKeywords(kw, "SHOW", "BINARY", "LOGS"), hasKeywords(kw, "SHOW", "MASTER", "LOGS"):
		return classReplControl, kw
	case hasKeywords(kw, "SHOW", "SLAVE", "STATUS"), hasKeywords(kw, "SHOW", "REPLICA", "STATUS"),
		hasKeywords(kw, "SHOW", "MASTER", "STATUS"), hasKeywords(kw, "SHOW", "BINARY", "LOG", "STATUS"),
		hasKeywords(kw, "SHOW", "SLAVE", "HOSTS"), hasKeywords(kw, "SHOW", "REPLICAS"):
		return classReplStatus, kw
	}
	return classOther, kw
}

// isVersionComment matches `select @@version_comment limit 1`, sent by the
// mysql CLI at login, in any case and spacing.
func isVersionComment(q string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(q), " "), "select @@version_comment limit 1")
}

// isSessionSet reports whether a SET only changes the session (and so may
// be answered locally): not SET GLOBAL/PERSIST/PASSWORD/… .
func isSessionSet(q string) bool {
	kw := keywords(q, 2)
	if len(kw) < 2 {
		return true
	}
	switch w := kw[1]; {
	case w == "GLOBAL", w == "PERSIST", w == "PERSIST_ONLY", w == "PASSWORD", w == "ROLE", w == "DEFAULT", w == "RESOURCE":
		return false
	case strings.HasPrefix(w, "@@GLOBAL"), strings.HasPrefix(w, "@@PERSIST"):
		return false
	}
	return true
}

// dialect says which replication spellings a backend MySQL accepts.
type dialect struct {
	noSlave         bool // 8.4+: SLAVE/MASTER spellings removed
	noReplica       bool // before 8.0.22: REPLICA/SOURCE spellings unknown
	noBinlogStatus  bool // before 8.2: no SHOW BINARY LOG STATUS, no RESET BINARY LOGS AND GTIDS
	modernResetOnly bool // 8.4+: RESET MASTER removed
}

// dialectOf reads a server version string; an unparsable one gets no
// translation.
func dialectOf(version string) dialect {
	v, err := mysqlver.Parse(version)
	if err != nil {
		return dialect{}
	}
	return dialect{
		noSlave:         v.AtLeast(8, 4, 0),
		noReplica:       !v.AtLeast(8, 0, 22),
		noBinlogStatus:  !v.AtLeast(8, 2, 0),
		modernResetOnly: v.AtLeast(8, 4, 0),
	}
}

// translation is a statement rewritten for a backend and, when the result
// set's column names changed with the spelling, how to rename them back to
// the spelling the client used.
type translation struct {
	query  string
	rename func(string) string
}

// translate rewrites a replication statement (class classReplControl or
// classReplStatus, or RESET MASTER) for the backend's dialect. Statements
// the backend accepts as they are come back unchanged.
func translate(q string, kw []string, d dialect) translation {
	swap := func(n int, with string, toModern bool) string {
		rest := afterWords(q, n)
		rest = renameReplicationOptions(rest, toModern)
		if rest == "" {
			return with
		}
		return with + " " + rest
	}
	switch {
	case d.noSlave && hasKeywords(kw, "START", "SLAVE"):
		return translation{query: swap(2, "START REPLICA", true)}
	case d.noSlave && hasKeywords(kw, "STOP", "SLAVE"):
		return translation{query: swap(2, "STOP REPLICA", true)}
	case d.noSlave && hasKeywords(kw, "RESET", "SLAVE"):
		return translation{query: swap(2, "RESET REPLICA", true)}
	case d.noSlave && hasKeywords(kw, "CHANGE", "MASTER"):
		return translation{query: swap(2, "CHANGE REPLICATION SOURCE", true)}
	case d.noSlave && hasKeywords(kw, "SHOW", "SLAVE", "STATUS"):
		return translation{query: swap(3, "SHOW REPLICA STATUS", true), rename: toSlaveColumn}
	case d.noSlave && hasKeywords(kw, "SHOW", "SLAVE", "HOSTS"):
		return translation{query: swap(3, "SHOW REPLICAS", true), rename: toSlaveColumn}
	case d.noSlave && hasKeywords(kw, "SHOW", "MASTER", "STATUS"):
		return translation{query: swap(3, "SHOW BINARY LOG STATUS", true)}
	case d.noSlave && hasKeywords(kw, "SHOW", "MASTER", "LOGS"):
		return translation{query: swap(3, "SHOW BINARY LOGS", true)}
	case d.modernResetOnly && hasKeywords(kw, "RESET", "MASTER"):
		return translation{query: swap(2, "RESET BINARY LOGS AND GTIDS", true)}

	case d.noReplica && hasKeywords(kw, "START", "REPLICA"):
		return translation{query: swap(2, "START SLAVE", false)}
	case d.noReplica && hasKeywords(kw, "STOP", "REPLICA"):
		return translation{query: swap(2, "STOP SLAVE", false)}
	case d.noReplica && hasKeywords(kw, "RESET", "REPLICA"):
		return translation{query: swap(2, "RESET SLAVE", false)}
	case d.noReplica && hasKeywords(kw, "CHANGE", "REPLICATION", "SOURCE"):
		return translation{query: swap(3, "CHANGE MASTER", false)}
	case d.noReplica && hasKeywords(kw, "SHOW", "REPLICA", "STATUS"):
		return translation{query: swap(3, "SHOW SLAVE STATUS", false), rename: toReplicaColumn}
	case d.noReplica && hasKeywords(kw, "SHOW", "REPLICAS"):
		return translation{query: swap(2, "SHOW SLAVE HOSTS", false), rename: toReplicaColumn}
	case d.noBinlogStatus && hasKeywords(kw, "SHOW", "BINARY", "LOG", "STATUS"):
		return translation{query: swap(4, "SHOW MASTER STATUS", false)}
	case d.noBinlogStatus && hasKeywords(kw, "RESET", "BINARY", "LOGS", "AND", "GTIDS"):
		return translation{query: swap(5, "RESET MASTER", false)}
	}
	return translation{query: q}
}

// afterWords returns q after its first n keyword words.
func afterWords(q string, n int) string {
	i := 0
	for w := 0; w < n; w++ {
		for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
			i++
		}
		for i < len(q) && isKeywordChar(q[i]) {
			i++
		}
	}
	return strings.TrimSpace(q[i:])
}

// renameReplicationOptions renames the MASTER_* options of CHANGE MASTER /
// START SLAVE UNTIL to SOURCE_* (toModern) or back, outside quoted text.
func renameReplicationOptions(q string, toModern bool) string {
	var b strings.Builder
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := quotedEnd(q, i)
			b.WriteString(q[i : j+1])
			i = j + 1
		case isKeywordChar(c):
			j := i
			for j < len(q) && isKeywordChar(q[j]) {
				j++
			}
			b.WriteString(renameOption(q[i:j], toModern))
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// renameOption renames one option word.
func renameOption(w string, toModern bool) string {
	u := strings.ToUpper(w)
	if toModern {
		switch {
		case u == "GET_MASTER_PUBLIC_KEY":
			return "GET_SOURCE_PUBLIC_KEY"
		case strings.HasPrefix(u, "MASTER_"):
			return "SOURCE_" + w[len("MASTER_"):]
		}
		return w
	}
	switch {
	case u == "GET_SOURCE_PUBLIC_KEY":
		return "GET_MASTER_PUBLIC_KEY"
	case strings.HasPrefix(u, "SOURCE_"):
		return "MASTER_" + w[len("SOURCE_"):]
	}
	return w
}

// toSlaveColumn maps a SHOW REPLICA STATUS / SHOW REPLICAS column name to
// its SHOW SLAVE STATUS / SHOW SLAVE HOSTS name (MySQL 8.0's).
func toSlaveColumn(c string) string {
	switch c {
	case "Get_Source_public_key":
		return "Get_master_public_key"
	case "Source_Id":
		return "Master_id"
	case "Server_Id":
		return "Server_id"
	}
	return replaceSegments(c, map[string]string{"Replica": "Slave", "Source": "Master"})
}

// toReplicaColumn is the reverse of toSlaveColumn.
func toReplicaColumn(c string) string {
	switch c {
	case "Get_master_public_key":
		return "Get_Source_public_key"
	case "Master_id":
		return "Source_Id"
	case "Server_id":
		return "Server_Id"
	}
	return replaceSegments(c, map[string]string{"Slave": "Replica", "Master": "Source"})
}

// replaceSegments replaces whole '_'-separated segments of a column name
// (so Replicate_Do_DB keeps its name).
func replaceSegments(c string, m map[string]string) string {
	parts := strings.Split(c, "_")
	for i, p := range parts {
		if r, ok := m[p]; ok {
			parts[i] = r
		}
	}
	return strings.Join(parts, "_")
}
