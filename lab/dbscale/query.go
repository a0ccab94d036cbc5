package dbscale

import (
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// handleQuery answers one statement of a session: dbscale commands here,
// the router's rules for the rest, everything else forwarded to the
// catalog master. Errors are always *mysql.MyError.
func (r *Router) handleQuery(s *session, q string) (*mysql.Result, error) {
	text := trimStatement(q)
	hint, body := splitLeadingComments(text)
	if body == "" {
		return nil, newErr(mysql.ER_EMPTY_QUERY, "Query was empty")
	}
	if kw := keywords(body, 1); len(kw) == 1 && kw[0] == "DBSCALE" {
		return r.admin(s, body)
	}
	class, kw := classify(body)
	switch class {
	case classVersionComment:
		t := &table{cols: []string{"@@version_comment"}, rows: [][]string{{"GreatDB Router (DBScale emulator)"}}}
		return t.result(), nil
	case classSet:
		if isSessionSet(body) {
			return s.sessionSet(text)
		}
	case classUse:
		res, err := s.forward(text)
		if err == nil {
			s.db = strings.Trim(afterWords(body, 1), "`'\" ")
		}
		return res, err
	case classWrite:
		if optionIsOn(r.option("enable_read_only")) {
			return nil, newErr(CodeReadOnly, msgReadOnly)
		}
	case classReplControl:
		return r.replicationControl(s, hint, body, kw)
	case classReplStatus:
		return r.replicationStatus(s, hint, body, kw)
	}
	if hasKeywords(kw, "RESET", "MASTER") || hasKeywords(kw, "RESET", "BINARY") {
		if _, err := s.backendConn(); err != nil {
			return nil, err
		}
		return s.forward(translate(body, kw, s.beDialect).query)
	}
	return s.forward(text)
}

// replicationTargets returns the masters a replication statement goes to:
// the hinted datasource's, or every replication datasource's (the catalog
// first).
func (r *Router) replicationTargets(hint string) ([]*dataServer, error) {
	st := r.snapshot()
	if hint != "" {
		ds := st.source(hint)
		if ds == nil || ds.Type != typeReplication {
			return nil, newErr(CodeDataSource, "DataSource '%s' is not a replication datasource", hint)
		}
		return []*dataServer{st.masterOf(ds)}, nil
	}
	var out []*dataServer
	for _, ds := range st.replicationSources() {
		if m := st.masterOf(ds); m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// replicationControl handles START/STOP/RESET SLAVE, CHANGE MASTER and SHOW
// BINARY LOGS (and their REPLICA/SOURCE spellings): in slave-dbscale-mode
// they go, translated for the backend, to the master of every replication
// datasource (or of the hinted one); otherwise they fail with 9001.
func (r *Router) replicationControl(s *session, hint, body string, kw []string) (*mysql.Result, error) {
	if !optionIsOn(r.option("slave_dbscale_mode")) {
		if s.needStopSlave {
			s.needStopSlave = false
			if targets, err := r.replicationTargets(""); err == nil {
				r.runOnMasters(targets, "STOP SLAVE", []string{"STOP", "SLAVE"})
			}
		}
		return nil, newErr(CodeSlaveModeOff, msgSlaveModeOff)
	}
	targets, err := r.replicationTargets(hint)
	if err != nil {
		return nil, err
	}
	s.needStopSlave = true
	return r.runOnMasters(targets, body, kw)
}

// runOnMasters runs a replication statement on each master (translated
// for each) and returns the first master's answer, or the first error.
func (r *Router) runOnMasters(targets []*dataServer, body string, kw []string) (*mysql.Result, error) {
	var first *mysql.Result
	var firstErr error
	for i, m := range targets {
		res, err := func() (*mysql.Result, error) {
			conn, err := r.transient(r.ctx, m)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			t := translate(body, kw, dialectOf(conn.ServerVersion()))
			res, err := conn.Execute(t.query)
			if err != nil {
				return nil, asMyError(err, "lost the connection to "+m.Name)
			}
			if t.rename != nil {
				renameColumns(res, t.rename)
			}
			return cleanOK(res), nil
		}()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if i == 0 {
			first = res
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return first, nil
}

// replicationStatus answers SHOW SLAVE/REPLICA STATUS, SHOW MASTER/BINARY
// LOG STATUS and SHOW SLAVE HOSTS/REPLICAS from the catalog master (through
// the session's connection) or the hinted datasource's master, translated
// for the backend with the column names of the spelling the client used.
func (r *Router) replicationStatus(s *session, hint, body string, kw []string) (*mysql.Result, error) {
	if hint != "" {
		targets, err := r.replicationTargets(hint)
		if err != nil {
			return nil, err
		}
		return r.runOnMasters(targets, body, kw)
	}
	if _, err := s.backendConn(); err != nil {
		return nil, err
	}
	t := translate(body, kw, s.beDialect)
	res, err := s.forward(t.query)
	if err == nil && t.rename != nil {
		renameColumns(res, t.rename)
	}
	return res, err
}
