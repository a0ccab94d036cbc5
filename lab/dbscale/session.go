package dbscale

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// maxPendingSets bounds the session SETs remembered before a backend
// connection exists.
const maxPendingSets = 64

// session is the state of one client connection; it implements the
// go-mysql server.Handler.
type session struct {
	r     *Router
	user  string
	admin bool
	// authed is set once the login succeeded.
	authed bool
	// db is the current schema.
	db string

	// be is the connection to the catalog master, opened on first use.
	be        BackendConn
	beDialect dialect
	// pendingSets are session SETs answered locally before be existed; they
	// are replayed when it opens.
	pendingSets []string
	// opts are option values set with dbscale set session.
	opts map[string]string
	// needStopSlave is set once a replication statement went through in
	// slave-dbscale-mode; the first one refused after the mode was switched
	// off sends STOP SLAVE first (dbscale.md A13).
	needStopSlave bool
}

func newSession(r *Router) *session {
	return &session{r: r, opts: map[string]string{}}
}

// authenticated is called once the login succeeded.
func (s *session) authenticated(user string) error {
	s.user, s.admin, s.authed = user, s.r.admins[user], true
	if s.db != "" {
		if _, err := s.backendConn(); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) close() {
	if s.be != nil {
		s.be.Close()
		s.be = nil
	}
}

// backendConn returns the session's connection to the catalog master,
// opening it (with the current schema) if needed.
func (s *session) backendConn() (BackendConn, error) {
	if s.be != nil {
		return s.be, nil
	}
	st := s.r.snapshot()
	cat := st.catalog()
	m := st.masterOf(cat)
	if m == nil {
		return nil, newErr(CodeBackend, "the catalog datasource has no master")
	}
	ep := s.r.endpoint(m)
	ep.DB = s.db
	ep.Timeout = max(ep.Timeout, 5*time.Second)
	conn, err := s.r.backend.Connect(s.r.ctx, ep)
	if err != nil {
		return nil, asMyError(err, fmt.Sprintf("cannot connect to %s (master of %s)", m.Name, cat.Name))
	}
	for _, q := range s.pendingSets {
		if _, err := conn.Execute(q); err != nil && !isMySQLError(err) {
			conn.Close()
			return nil, asMyError(err, "lost the connection to "+m.Name)
		}
	}
	s.pendingSets = nil
	s.be = conn
	s.beDialect = dialectOf(conn.ServerVersion())
	return conn, nil
}

// isMySQLError reports whether err is a statement error (the connection
// still works).
func isMySQLError(err error) bool {
	var me *mysql.MyError
	return err != nil && errors.As(err, &me)
}

// forward runs q on the catalog master with the session's connection and
// returns its answer unchanged. A broken connection is dropped (the next
// statement reconnects) and reported as CodeBackend.
func (s *session) forward(q string) (*mysql.Result, error) {
	be, err := s.backendConn()
	if err != nil {
		return nil, err
	}
	res, err := be.Execute(q)
	if err != nil {
		if !isMySQLError(err) {
			s.be.Close()
			s.be = nil
			s.r.logf("dbscale: lost the backend connection of user %s: %v", s.user, err)
		}
		return nil, asMyError(err, "lost the connection to the catalog master")
	}
	return cleanOK(res), nil
}

// cleanOK keeps only the status flags of a backend OK that make sense to
// relay.
func cleanOK(res *mysql.Result) *mysql.Result {
	if res != nil {
		res.Status &= mysql.SERVER_STATUS_IN_TRANS | mysql.SERVER_STATUS_AUTOCOMMIT
		res.SessionTracking = nil
		res.StatusMessage = ""
	}
	return res
}

// UseDB handles COM_INIT_DB (and the schema of the handshake).
func (s *session) UseDB(db string) error {
	if !s.authed {
		s.db = db // applied once logged in
		return nil
	}
	be, err := s.backendConn()
	if err != nil {
		return err
	}
	if err := be.UseDB(db); err != nil {
		if !isMySQLError(err) {
			s.be.Close()
			s.be = nil
		}
		return asMyError(err, "lost the connection to the catalog master")
	}
	s.db = db
	return nil
}

// HandleQuery handles COM_QUERY.
func (s *session) HandleQuery(q string) (*mysql.Result, error) {
	res, err := s.r.handleQuery(s, q)
	if err != nil {
		return nil, err // a *mysql.MyError, never wrapped
	}
	return res, nil
}

// HandleFieldList handles COM_FIELD_LIST by asking the catalog master.
func (s *session) HandleFieldList(table, wildcard string) ([]*mysql.Field, error) {
	be, err := s.backendConn()
	if err != nil {
		return nil, err
	}
	fl, ok := be.(interface {
		FieldList(table, wildcard string) ([]*mysql.Field, error)
	})
	if !ok {
		return nil, newErr(mysql.ER_UNKNOWN_COM_ERROR, "COM_FIELD_LIST is not supported")
	}
	fs, err := fl.FieldList(table, wildcard)
	if err != nil {
		return nil, asMyError(err, "lost the connection to the catalog master")
	}
	return fs, nil
}

// HandleStmtPrepare handles COM_STMT_PREPARE minimally: the statement is
// kept as text and its '?' counted; nothing reaches the backend until it is
// executed. Clients should prefer client-side interpolation
// (interpolateParams=true): see README.md.
func (s *session) HandleStmtPrepare(q string) (int, int, any, error) {
	return countPlaceholders(q), 0, q, nil
}

// HandleStmtExecute interpolates the arguments into the statement text and
// runs it like COM_QUERY; a result set is re-encoded for the binary
// protocol. The server package wraps errors returned here, so they reach the
// client as error 1105 with the original code in the message.
func (s *session) HandleStmtExecute(ctx any, q string, args []any) (*mysql.Result, error) {
	text, err := interpolate(q, args)
	if err != nil {
		return nil, err
	}
	res, err := s.r.handleQuery(s, text)
	if err != nil {
		return nil, err
	}
	return toBinaryResult(res), nil
}

// HandleStmtClose handles COM_STMT_CLOSE.
func (s *session) HandleStmtClose(any) error { return nil }

// HandleOtherCommand answers COM_SET_OPTION and COM_RESET_CONNECTION with
// OK and refuses everything else.
func (s *session) HandleOtherCommand(cmd byte, _ []byte) error {
	switch cmd {
	case mysql.COM_SET_OPTION:
		return nil
	case mysql.COM_RESET_CONNECTION:
		s.opts = map[string]string{}
		s.pendingSets = nil
		if s.be != nil {
			s.be.Close()
			s.be = nil
		}
		return nil
	}
	return newErr(mysql.ER_UNKNOWN_COM_ERROR, "Unknown command %d", cmd)
}

// sessionSet answers a session SET: relayed to the backend when the
// session has one (an unknown variable, e.g. a driver parameter sent as
// SET, is ignored), remembered for later otherwise.
func (s *session) sessionSet(q string) (*mysql.Result, error) {
	if s.be == nil {
		if len(s.pendingSets) < maxPendingSets {
			s.pendingSets = append(s.pendingSets, q)
		}
		return nil, nil
	}
	_, err := s.be.Execute(q)
	if err == nil {
		return nil, nil
	}
	if !isMySQLError(err) {
		s.be.Close()
		s.be = nil
		s.pendingSets = append(s.pendingSets, q)
		return nil, nil
	}
	me := asMyError(err, "")
	if me.Code == mysql.ER_UNKNOWN_SYSTEM_VARIABLE {
		return nil, nil
	}
	return nil, me
}

// effectiveOption is the session's value of an option (session over
// global).
func (s *session) effectiveOption(key string) string {
	if v, ok := s.opts[key]; ok {
		return v
	}
	return s.r.option(key)
}

// adminReadTimeout bounds the wait for a dataserver's answer to an admin
// or replication-control statement. It exceeds the 60 s MySQL's STOP
// REPLICA may take on a multi-threaded replica whose relay log ends in the
// middle of a transaction (the receiver was stopped first): the
// coordinator waits that long for the rest of the group before it gives
// up on it.
const adminReadTimeout = 2 * time.Minute

// transient opens a short-lived connection to a dataserver for an admin
// action.
func (r *Router) transient(ctx context.Context, m *dataServer) (BackendConn, error) {
	ep := r.endpoint(m)
	ep.ReadTimeout = adminReadTimeout
	conn, err := r.backend.Connect(ctx, ep)
	if err != nil {
		return nil, asMyError(err, "cannot connect to "+m.Name)
	}
	return conn, nil
}

// countPlaceholders counts the '?' outside quotes and comments.
func countPlaceholders(q string) int {
	n := 0
	scanSQL(q, func(i int) { n++ })
	return n
}

// interpolate replaces each '?' outside quotes and comments by the SQL
// literal of the next argument (as bound by COM_STMT_EXECUTE).
func interpolate(q string, args []any) (string, error) {
	var pos []int
	scanSQL(q, func(i int) { pos = append(pos, i) })
	if len(pos) != len(args) {
		return "", newErr(mysql.ER_WRONG_ARGUMENTS, "statement has %d placeholders but %d arguments", len(pos), len(args))
	}
	var b strings.Builder
	last := 0
	for k, i := range pos {
		b.WriteString(q[last:i])
		lit, err := sqlLiteral(args[k])
		if err != nil {
			return "", err
		}
		b.WriteString(lit)
		last = i + 1
	}
	b.WriteString(q[last:])
	return b.String(), nil
}

// sqlLiteral renders one bound argument.
func sqlLiteral(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "NULL", nil
	case int8:
		return strconv.FormatInt(int64(x), 10), nil
	case int16:
		return strconv.FormatInt(int64(x), 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint8:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float32:
		return formatFloat(float64(x)), nil
	case float64:
		return formatFloat(x), nil
	case mysql.TypedBytes:
		return quoteString(string(x.Bytes)), nil
	case []byte:
		return "X'" + hex.EncodeToString(x) + "'", nil
	case string:
		return quoteString(x), nil
	}
	return "", newErr(mysql.ER_WRONG_ARGUMENTS, "unsupported argument type %T", v)
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "NULL"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// scanSQL calls at(i) for every '?' of q outside quoted text and comments.
func scanSQL(q string, at func(i int)) {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = quotedEnd(q, i)
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return
			}
			i += 2 + end + 1
		case c == '#' || c == '-' && strings.HasPrefix(q[i:], "-- "):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				return
			}
			i += end
		case c == '?':
			at(i)
		}
	}
}

// quotedEnd returns the index of the quote closing the literal that starts
// at q[i] (len(q)-1 if it is not closed).
func quotedEnd(q string, i int) int {
	c := q[i]
	for j := i + 1; j < len(q); j++ {
		switch {
		case q[j] == '\\' && c != '`':
			j++
		case q[j] == c && j+1 < len(q) && q[j+1] == c:
			j++
		case q[j] == c:
			return j
		}
	}
	return len(q) - 1
}
