package steps

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/sqlkind"
)

// SQLStep runs one SQL statement on a MySQL connection (a node or a DBScale
// router). `query:` is read-only and returns rows; `exec:` changes state.
type SQLStep struct {
	engine.MySQLTarget `yaml:",inline"`
	// Query is a read-only statement whose rows are the step's output.
	Query *engine.SQL `yaml:"query"`
	// Exec is a state-changing statement.
	Exec *engine.SQL `yaml:"exec"`
	// Check is a read-only query that tells whether Exec already took
	// effect (used when resuming an interrupted run); it returns rows when
	// the change is in place.
	CheckQuery *engine.SQL `yaml:"check"`
	// Session holds statements run first on the same connection (SET
	// SESSION …), e.g. to raise a timeout for this statement only.
	Session []*engine.SQL `yaml:"session"`
}

// sqlOutput is the type of a sql step's output.
var sqlOutput = types.Map{
	"rows":          types.Array(types.Map{types.Extra: types.Any}),
	"row":           types.Map{types.Extra: types.Any},
	"count":         types.Int,
	"columns":       types.Array(types.String),
	"rows_affected": types.Int,
	"target":        types.String,
}

func init() {
	engine.Register(engine.StepType{
		Name:    "sql",
		Summary: "run a SQL statement: `query:` (read-only, rows into the output) or `exec:` (changes state)",
		Changes: "`exec:` yes, `query:` no",
		New:     func() engine.StepSpec { return &SQLStep{} },
		Output:  sqlOutput,
	})
}

// Mutates reports whether the statement is an exec.
func (s *SQLStep) Mutates() bool { return s.Exec != nil }

// Check validates the statement: one of query/exec, one statement, and a
// query that really only reads.
func (s *SQLStep) Check(c *engine.Check) {
	switch {
	case s.Query == nil && s.Exec == nil:
		c.Errorf(c.StepPos(), "sql step %q needs `query:` (read-only) or `exec:` (changes state)", c.StepName())
		return
	case s.Query != nil && s.Exec != nil:
		c.Errorf(c.StepPos(), "sql step %q has both `query:` and `exec:`: use two steps", c.StepName())
		return
	}
	t := s.Query
	if t == nil {
		t = s.Exec
	}
	if sqlkind.SplitsStatements(t.Raw) {
		c.Errorf(t.Pos, "one statement per sql step: split %q into several steps", oneLine(t.Raw))
	}
	if s.Query != nil && sqlkind.Classify(s.Query.Raw) == sqlkind.Write {
		c.Errorf(s.Query.Pos, "`query:` is read-only, but %q changes state (or flow cannot tell that it does not): use `exec:`", firstWords(s.Query.Raw))
	}
	if s.Exec != nil && sqlkind.Classify(s.Exec.Raw) == sqlkind.Read {
		c.Warnf(s.Exec.Pos, "`exec:` %q only reads: use `query:` so a dry run executes it", firstWords(s.Exec.Raw))
	}
	if s.CheckQuery != nil && sqlkind.Classify(s.CheckQuery.Raw) == sqlkind.Write {
		c.Errorf(s.CheckQuery.Pos, "`check:` must be a read-only query")
	}
	for _, st := range s.Session {
		if w := sqlkind.Words(st.Raw, 2); len(w) < 2 || w[0] != "SET" || w[1] == "GLOBAL" || w[1] == "PERSIST" {
			c.Errorf(st.Pos, "`session:` statements must be SET SESSION/SET @@session… statements")
		}
	}
}

func (s *SQLStep) statement() *engine.SQL {
	if s.Exec != nil {
		return s.Exec
	}
	return s.Query
}

// Render shows the statement and its target.
func (s *SQLStep) Render(r *engine.Render) ([]engine.Action, error) {
	target := r.MySQLTarget(&s.MySQLTarget)
	var lines []string
	for _, st := range s.Session {
		lines = append(lines, r.SQL(st)+";")
	}
	lines = append(lines, r.SQL(s.statement()))
	return []engine.Action{{Target: target, Text: strings.Join(lines, "\n")}}, nil
}

// Run executes the statement.
func (s *SQLStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect: %v (is the server up, and are the credentials in the config right?)", target, err)
	}
	defer conn.Close()
	for _, st := range s.Session {
		q, shown, err := x.SQL(st)
		if err != nil {
			return nil, err
		}
		x.Sent(target, shown)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", target, shown, err)
		}
	}
	q, shown, err := x.SQL(s.statement())
	if err != nil {
		return nil, err
	}
	defer killOnCancel(ctx, x, db, conn, target, q)()
	x.Sent(target, shown)
	out := map[string]any{"target": target, "rows": []any{}, "row": map[string]any{}, "count": 0, "columns": []any{}, "rows_affected": 0}
	if s.Exec != nil {
		res, err := conn.ExecContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("%s: `%s`: %v", target, shown, err)
		}
		n, _ := res.RowsAffected()
		out["rows_affected"] = int(n)
		return out, nil
	}
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: `%s`: %v", target, shown, err)
	}
	defer rows.Close()
	list, cols, err := ScanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: `%s`: %v", target, shown, err)
	}
	out["rows"] = list
	out["count"] = len(list)
	colsAny := make([]any, len(cols))
	for i, c := range cols {
		colsAny[i] = c
	}
	out["columns"] = colsAny
	if len(list) > 0 {
		out["row"] = list[0]
	}
	return out, nil
}

// killOnCancel arranges that a statement cut short by the run's
// cancellation (Ctrl-C, SIGTERM, a step timeout) is killed on the server
// too — the driver gives up on it at once and closes its connection, which
// leaves it running there — with KILL QUERY from another connection.
// DBScale admin commands are the router's own and are left alone, as is a
// server that does not tell its connection id. The returned function,
// deferred right after the statement is set up, sends the kill when the
// context ended, before the step returns.
func killOnCancel(ctx context.Context, x *engine.Exec, db *sql.DB, conn *sql.Conn, target, stmt string) func() {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(stmt)), "dbscale") {
		return func() {}
	}
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil || id <= 0 {
		return func() {}
	}
	return func() {
		if ctx.Err() == nil {
			return
		}
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		q := fmt.Sprintf("KILL QUERY %d", id)
		if _, err := db.ExecContext(kctx, q); err != nil {
			x.Debugf("%s: `%s` after the step was cancelled: %s", target, q, err)
			return
		}
		x.Warnf("%s: the step was cancelled: its statement was killed on the server (%s)", target, q)
	}
}

// ScanRows reads every row into maps of column name to value: text as
// string, integers as int, decimals and floats as float64, NULL as nil.
func ScanRows(rows *sql.Rows) ([]any, []string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	ctypes, _ := rows.ColumnTypes()
	var out []any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			dbType := ""
			if ctypes != nil && i < len(ctypes) {
				dbType = ctypes[i].DatabaseTypeName()
			}
			m[c] = convertValue(vals[i], dbType)
		}
		out = append(out, m)
	}
	if out == nil {
		out = []any{}
	}
	return out, cols, rows.Err()
}

func convertValue(v any, dbType string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		s := string(x)
		switch dbType {
		case "INT", "BIGINT", "TINYINT", "SMALLINT", "MEDIUMINT", "UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED TINYINT", "UNSIGNED SMALLINT", "YEAR":
			if i, err := strconv.Atoi(s); err == nil {
				return i
			}
		case "DECIMAL", "FLOAT", "DOUBLE":
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return f
			}
		}
		return s
	case int64:
		return int(x)
	case uint64:
		return int(x)
	case int32:
		return int(x)
	case float32:
		return float64(x)
	}
	return v
}

// Resume judges an `exec:` statement an earlier attempt started and did not
// finish, or that failed:
//
//   - it failed with a MySQL server error (the error names "Error NNNN"
//     after the statement): the server rejected it, and a rejected
//     statement does not apply (autocommit; InnoDB rolls the statement
//     back; DDL is atomic), so it runs again. Not so for errors that
//     interrupt a statement while it runs (server shutdown, KILL, a failed
//     commit), for a step that sent it more than once (retries: an earlier
//     try may have applied), nor for DBScale commands, which fan out to
//     routers and backends and may have applied on some;
//   - it has a `check:` query: rows mean the statement took effect (the
//     step is done; its output holds the check's rows, rows_affected 0),
//     no row means it did not (it runs again);
//   - its form is idempotent (sqlkind.Idempotent): it runs again;
//   - otherwise flow cannot tell and the operator is asked, told which
//     kind of statement it is.
//
// Whether the statement was sent at all is not judged from the journal's
// statements: a later resume that refused the step records none.
func (s *SQLStep) Resume(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (engine.ResumeDecision, map[string]any, string, error) {
	if s.Exec == nil {
		return engine.ResumeRerun, nil, "a query only reads", nil
	}
	if code, ok := s.rejected(rec); ok {
		return engine.ResumeRerun, nil, fmt.Sprintf("the server rejected the statement (MySQL error %d), so it did not apply", code), nil
	}
	if s.CheckQuery != nil {
		out, err := s.check(ctx, x)
		if err != nil {
			return engine.ResumeUnsure, nil, "", err
		}
		if n := out["count"].(int); n > 0 {
			return engine.ResumeDone, out, fmt.Sprintf("its `check:` query returns %d row(s): the statement took effect", n), nil
		}
		return engine.ResumeRerun, nil, "its `check:` query returns no row: the statement did not take effect", nil
	}
	stmt := s.Exec.Raw
	if q, _, err := x.SQL(s.Exec); err == nil {
		stmt = q // values inlined as literals, as sent; never logged
	}
	ok, why := sqlkind.Idempotent(stmt)
	if ok {
		return engine.ResumeRerun, nil, why, nil
	}
	return engine.ResumeUnsure, nil, why + "; a `check:` query returning rows once it took effect would let flow tell", nil
}

// mysqlErrorRE finds a go-sql-driver server error after the statement in
// a sql step's error: "`STATEMENT`: Error 1062 (23000): …".
var mysqlErrorRE = regexp.MustCompile("^`: Error (\\d+)(?: \\([0-9A-Z]{5}\\))?: ")

// interruptingErrors are server errors that can end a statement that was
// already changing things: it may have applied, in part or whole.
var interruptingErrors = map[int]bool{
	1053: true, // ER_SERVER_SHUTDOWN
	1180: true, // ER_ERROR_DURING_COMMIT
	1181: true, // ER_ERROR_DURING_ROLLBACK
	1196: true, // ER_WARNING_NOT_COMPLETE_ROLLBACK (non-transactional tables changed)
	1317: true, // ER_QUERY_INTERRUPTED (KILL QUERY)
	1927: true, // ER_CONNECTION_KILLED
	3169: true, // ER_SESSION_WAS_KILLED
}

// rejected reports whether the earlier attempt failed because the server
// refused its one try of the statement (see Resume), and the error code.
func (s *SQLStep) rejected(rec *engine.StepRecord) (int, bool) {
	if rec.Status != engine.StepFailed || len(rec.Sent) != len(s.Session)+1 {
		return 0, false
	}
	target, text, ok := strings.Cut(rec.Sent[len(rec.Sent)-1], ": ")
	if !ok {
		return 0, false
	}
	if w := sqlkind.Words(text, 1); len(w) > 0 && w[0] == "DBSCALE" {
		return 0, false
	}
	// the error must be the statement's own, as Run words it
	i := strings.Index(rec.Error, target+": `"+text+"`: Error ")
	if i < 0 {
		return 0, false
	}
	m := mysqlErrorRE.FindStringSubmatch(rec.Error[i+len(target)+len(text)+3:])
	if m == nil {
		return 0, false
	}
	code, _ := strconv.Atoi(m[1])
	if code <= 0 || interruptingErrors[code] {
		return 0, false
	}
	return code, true
}

// check runs the `check:` query on the step's target and returns the
// step's output with its rows.
func (s *SQLStep) check(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	q, shown, err := x.SQL(s.CheckQuery)
	if err != nil {
		return nil, err
	}
	x.Debugf("%s   (resume check)", shown)
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: the `check:` query `%s`: %v", target, shown, err)
	}
	defer rows.Close()
	list, cols, err := ScanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: the `check:` query `%s`: %v", target, shown, err)
	}
	colsAny := make([]any, len(cols))
	for i, c := range cols {
		colsAny[i] = c
	}
	out := map[string]any{"target": target, "rows": list, "row": map[string]any{}, "count": len(list), "columns": colsAny, "rows_affected": 0}
	if len(list) > 0 {
		out["row"] = list[0]
	}
	return out, nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 4 {
		f = append(f[:4], "…")
	}
	return strings.Join(f, " ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
