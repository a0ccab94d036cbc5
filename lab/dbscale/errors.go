package dbscale

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// MySQL error codes the emulator answers with. Codes below 9000 are MySQL's
// own; 9001 is DBScale's (slave-dbscale-mode off); the other 9xxx codes are
// the emulator's choice, since DBScale's real codes are not public.
const (
	// CodeParse: an unknown or malformed dbscale command (MySQL's
	// ER_PARSE_ERROR, SQLSTATE 42000).
	CodeParse = 1064
	// CodeEmptyQuery: an empty statement (ER_EMPTY_QUERY).
	CodeEmptyQuery = 1065
	// CodeBadField: a WHERE filter names a column the result set lacks
	// (ER_BAD_FIELD_ERROR).
	CodeBadField = 1054
	// CodeAccess: a non-admin user ran an admin command
	// (ER_SPECIFIC_ACCESS_DENIED_ERROR, SQLSTATE 42000).
	CodeAccess = 1227
	// CodeReadOnly: DML or DDL while enable-read-only is on
	// (ER_OPTION_PREVENTS_STATEMENT).
	CodeReadOnly = 1290
	// CodeUnknownOption: dbscale set/show of an option that does not exist
	// (ER_UNKNOWN_SYSTEM_VARIABLE).
	CodeUnknownOption = 1193
	// CodeBadOptionValue: a value an option cannot take
	// (ER_WRONG_VALUE_FOR_VAR, SQLSTATE 42000).
	CodeBadOptionValue = 1231
	// CodeSlaveModeOff: a replication statement while slave-dbscale-mode is
	// off (DBScale's own code and text).
	CodeSlaveModeOff = 9001
	// CodeDataSource: a datasource is unknown, exists already or is in use;
	// an unknown datasource type; no datasource of a type.
	CodeDataSource = 9002
	// CodeDataServer: a dataserver is unknown, exists already, is still used
	// by a datasource, or cannot be disabled (the master).
	CodeDataServer = 9003
	// CodeDynamicArgs: bad arguments to a dynamic add (missing field,
	// connection-pool numbers, group id, a non-loopback host).
	CodeDynamicArgs = 9004
	// CodeOptionRule: an option that can only be set in some state
	// (slave-dbscale-mode needs enable-disaster-mode).
	CodeOptionRule = 9005
	// CodeDRLink: the standby router refused the replication set-up of a DR
	// link.
	CodeDRLink = 9006
	// CodeNotMultiple: request cluster info outside multiple-dbscale mode.
	CodeNotMultiple = 9007
	// CodeBackend: the MySQL node a statement must go to is unreachable or the
	// backend connection was lost.
	CodeBackend = 9008
)

// Texts taken from DBScale (dbscale.md, part A and B).
const (
	msgAdminOnly     = "Current User does not have the privilege to execute current command, only root/dbscale/dbscale_internal_user can."
	msgSetAdminOnly  = "Current User does not have the privilege of dynamic configuration."
	msgSlaveModeOff  = "'slave-dbscale-mode' is off, dbscale is denied to be a slave"
	msgSlaveModeRule = `Option "slave-dbscale-mode" can only be set when "enable-disaster-mode" is open.`
	msgUnknownDSType = "Unknown DataSource type."
	msgNoDSOfType    = "No DataSource of the type."
	msgNotMultiple   = "the command is only support in multiple dbscale mode"
	msgReadOnly      = "The DBScale router is running with enable-read-only=1 so it cannot execute this statement"
)

// newErr builds the *mysql.MyError the server package sends as is (it uses a
// type assertion, so it must never be wrapped).
func newErr(code uint16, format string, args ...any) *mysql.MyError {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return mysql.NewError(code, msg)
}

// asMyError returns err as a *mysql.MyError for the client: a MySQL error
// anywhere in its chain as it is, anything else (a lost connection, a dial
// error) as CodeBackend with context prepended.
func asMyError(err error, context string) *mysql.MyError {
	if err == nil {
		return nil
	}
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me
	}
	return newErr(CodeBackend, "%s: %v", context, err)
}

// redact replaces every non-empty secret in s by ***.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}
