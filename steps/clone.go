package steps

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/quote"
	"github.com/flowdba/flow/event"
	"github.com/go-sql-driver/mysql"
)

// CloneStep clones a donor into a recipient with the MySQL clone plugin
// (CLONE INSTANCE FROM …), replacing the recipient's data.
//
// On the recipient (`on:`) it installs the clone plugin when
// INFORMATION_SCHEMA.PLUGINS lacks it, sets the clone variables the step
// gives and clone_valid_donor_list, and runs CLONE INSTANCE with the donor's
// account; the password travels only inside that statement and is shown as
// ****** everywhere else. The recipient then restarts (its supervisor,
// mysqld_safe or systemd, starts it again): the step polls, bounded by
// `restart_timeout`, until the recipient answers and
// performance_schema.clone_status says Completed (or Failed, whose error it
// quotes). Without a supervisor the restart fails with MySQL error 3707 and
// the recipient shuts down: the step fails at once saying so.
//
// The recipient comes back with the donor's data, accounts included: the
// connection's user and password must exist on the donor too.
//
// With `data_directory:` the snapshot goes into that new directory instead
// (CLONE INSTANCE … DATA DIRECTORY, MySQL 8.0.17+): the recipient keeps its
// own data and keeps serving, nothing restarts, and the directory holds a
// complete data directory of the donor as of the clone's consistent point
// (clone_status GTID_EXECUTED, in the output), ready for a mysqld to start
// on. The directory must not exist; its parent must, writable by the
// recipient's mysqld.
//
// Output: state, bytes (data copied), seconds (the whole clone, restart
// included, as clone_status reports it), copy_seconds (the copy stages),
// mb_per_s (bytes / copy_seconds, in MiB/s), gtid_executed and binlog
// position of the clone, source, stages (per-stage progress), target.
//
// Before it sends CLONE INSTANCE the step notes in the journal the
// recipient, the donor and the recipient's clock, so that a resumed run
// finds that clone in the recipient's performance_schema.clone_status: it
// waits for a clone still in progress (Join), takes a completed clone from
// this donor as done, and clones again after a failed one (Resume).
type CloneStep struct {
	engine.MySQLTarget `yaml:",inline"`
	// DonorHost and DonorPort are the donor's address as the recipient
	// reaches it.
	DonorHost *engine.Value `yaml:"donor_host"`
	DonorPort *engine.Value `yaml:"donor_port"`
	// DonorUser is an account on the donor with BACKUP_ADMIN.
	DonorUser *engine.Value `yaml:"donor_user"`
	// DonorPassword is its password: a secret, never logged or shown.
	DonorPassword *engine.Value `yaml:"donor_password" flow:"secret"`
	// BufferSize sets clone_buffer_size (bytes; 32M-style suffixes allowed).
	BufferSize *engine.Value `yaml:"buffer_size"`
	// MaxConcurrency sets clone_max_concurrency.
	MaxConcurrency *engine.Value `yaml:"max_concurrency"`
	// Autotune sets clone_autotune_concurrency.
	Autotune *engine.Value `yaml:"autotune"`
	// RestartTimeout bounds the wait for the recipient to come back after
	// the clone (default 5m).
	RestartTimeout *engine.Value `yaml:"restart_timeout"`
	// Timeout bounds the whole step (default 6h).
	Timeout *engine.Value `yaml:"timeout"`
	// Progress is how often copy progress is logged (default 5s).
	Progress *engine.Value `yaml:"progress"`
	// DataDirectory, when given, is the absolute path of a new directory
	// on the recipient that receives the snapshot; the recipient's own data
	// stays and it does not restart.
	DataDirectory *engine.Value `yaml:"data_directory"`
}

// Defaults of clone.
const (
	cloneRestartTimeout = 5 * time.Minute
	cloneTimeout        = 6 * time.Hour
	cloneProgress       = 5 * time.Second
	clonePoll           = 500 * time.Millisecond
)

var cloneOutput = types.Map{
	"state": types.String, "bytes": types.Int, "seconds": types.Float64, "copy_seconds": types.Float64,
	"mb_per_s": types.Float64, "gtid_executed": types.String, "binlog_file": types.String,
	"binlog_position": types.Int, "source": types.String, "target": types.String,
	"stages": types.Array(types.Map{types.Extra: types.Any}),
}

func init() {
	engine.Register(engine.StepType{
		Name:    "clone",
		Summary: "clone a donor into a recipient with the MySQL clone plugin (replacing its data and waiting until it is back with clone_status Completed, or into a new folder of the running recipient with data_directory)",
		New:     func() engine.StepSpec { return &CloneStep{} },
		Output:  cloneOutput,
		// not idempotent: running it again clones again; resuming relies on
		// clone_status
		Idempotent: false,
	})
}

// Mutates is true: the recipient's data is replaced.
func (s *CloneStep) Mutates() bool { return true }

// Check requires the donor fields and validates literal values.
func (s *CloneStep) Check(c *engine.Check) {
	for _, f := range []struct {
		name string
		v    *engine.Value
	}{{"donor_host", s.DonorHost}, {"donor_port", s.DonorPort}, {"donor_user", s.DonorUser}, {"donor_password", s.DonorPassword}} {
		if f.v == nil {
			c.Errorf(c.StepPos(), "clone step %q needs `%s:`", c.StepName(), f.name)
		}
	}
	if v := s.DonorPort; v != nil && !strings.Contains(v.Raw, "{{") {
		if p, err := strconv.Atoi(v.Raw); err != nil || p <= 0 || p > 65535 {
			c.Errorf(v.Pos, "`donor_port: %s` is not a TCP port", v.Raw)
		}
	}
	if v := s.BufferSize; v != nil && !strings.Contains(v.Raw, "{{") {
		if _, err := parseBytes(v.Raw); err != nil {
			c.Errorf(v.Pos, "`buffer_size: %s`: %v", v.Raw, err)
		}
	}
	if v := s.MaxConcurrency; v != nil && !strings.Contains(v.Raw, "{{") {
		if n, err := strconv.Atoi(v.Raw); err != nil || n < 1 {
			c.Errorf(v.Pos, "`max_concurrency: %s` must be a whole number of threads (1 or more)", v.Raw)
		}
	}
	if v := s.Autotune; v != nil && !strings.Contains(v.Raw, "{{") {
		if _, err := parseBool(v.Raw); err != nil {
			c.Errorf(v.Pos, "`autotune: %s`: %v", v.Raw, err)
		}
	}
	if v := s.DataDirectory; v != nil && !strings.Contains(v.Raw, "{{") && !strings.HasPrefix(v.Raw, "/") {
		c.Errorf(v.Pos, "`data_directory: %s` must be an absolute path (a new directory on the recipient)", v.Raw)
	}
	checkDuration(c, "restart_timeout", s.RestartTimeout)
	checkDuration(c, "timeout", s.Timeout)
	checkDuration(c, "progress", s.Progress)
}

// cloneParams are the evaluated fields.
type cloneParams struct {
	host, user, password string
	port                 int
	set                  []string // SET GLOBAL statements for the clone variables
	restart, timeout     time.Duration
	progress             time.Duration
	dataDir              string // "" = replace the recipient's data
}

func (p *cloneParams) statement(password string) string {
	q := fmt.Sprintf("CLONE INSTANCE FROM %s@%s:%d IDENTIFIED BY %s", quote.SQLString(p.user), quote.SQLString(p.host), p.port, quote.SQLString(password))
	if p.dataDir != "" {
		q += " DATA DIRECTORY = " + quote.SQLString(p.dataDir)
	}
	return q
}

func (p *cloneParams) donor() string { return net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

// partial says what an aborted clone leaves behind.
func (p *cloneParams) partial() string {
	if p.dataDir != "" {
		// MySQL leaves the partial copy in the folder, and a clone into an
		// existing folder fails (1007)
		return fmt.Sprintf("the recipient's own data is untouched, but %s holds a partial copy: remove it (rm -rf %s on the recipient's host) before the clone runs again", p.dataDir, p.dataDir)
	}
	return "the recipient may hold partial data until it is cloned again"
}

// Render shows the statements, the password masked.
func (s *CloneStep) Render(r *engine.Render) ([]engine.Action, error) {
	lit := func(v *engine.Value) string {
		out := r.Value(v)
		if strings.HasPrefix(out, "{{") {
			return out
		}
		return quote.SQLString(out)
	}
	host, port, user := r.Value(s.DonorHost), r.Value(s.DonorPort), lit(s.DonorUser)
	lines := []string{
		"INSTALL PLUGIN clone SONAME 'mysql_clone.so'   -- only if INFORMATION_SCHEMA.PLUGINS has no 'clone'",
	}
	if s.BufferSize != nil {
		v := r.Value(s.BufferSize)
		if n, err := parseBytes(v); err == nil {
			v = strconv.FormatInt(n, 10)
		}
		lines = append(lines, "SET GLOBAL clone_buffer_size = "+v)
	}
	if s.MaxConcurrency != nil {
		lines = append(lines, "SET GLOBAL clone_max_concurrency = "+r.Value(s.MaxConcurrency))
	}
	if s.Autotune != nil {
		v := r.Value(s.Autotune)
		if b, err := parseBool(v); err == nil {
			v = map[bool]string{true: "ON", false: "OFF"}[b]
		}
		lines = append(lines, "SET GLOBAL clone_autotune_concurrency = "+v)
	}
	donor := host + ":" + port
	if !strings.HasPrefix(host, "{{") && !strings.HasPrefix(port, "{{") {
		donor = quote.SQLString(donor)
	}
	clone := fmt.Sprintf("CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY '******'", user, lit(s.DonorHost), port)
	after := fmt.Sprintf("-- the recipient restarts: wait up to %s for it, then for performance_schema.clone_status STATE = 'Completed' (step timeout %s)",
		renderDuration(r, s.RestartTimeout, cloneRestartTimeout), renderDuration(r, s.Timeout, cloneTimeout))
	if s.DataDirectory != nil {
		clone += " DATA DIRECTORY = " + lit(s.DataDirectory)
		after = fmt.Sprintf("-- the recipient keeps its data and keeps serving; then performance_schema.clone_status STATE = 'Completed' (step timeout %s)",
			renderDuration(r, s.Timeout, cloneTimeout))
	}
	lines = append(lines, "SET GLOBAL clone_valid_donor_list = "+donor, clone, after)
	return []engine.Action{{Target: r.MySQLTarget(&s.MySQLTarget), Text: strings.Join(lines, "\n")}}, nil
}

// params evaluates the fields.
func (s *CloneStep) params(x *engine.Exec) (*cloneParams, error) {
	p := &cloneParams{}
	str := func(field string, v *engine.Value) (string, error) {
		val, err := x.Value(v)
		if err != nil {
			return "", err
		}
		if val == nil {
			return "", fmt.Errorf("`%s:` is empty", field)
		}
		out := fmt.Sprint(val)
		if out == "" {
			return "", fmt.Errorf("`%s:` is empty", field)
		}
		return out, nil
	}
	// the password first, so that it is masked in any later message
	pw, err := x.Value(s.DonorPassword)
	if err != nil {
		return nil, errors.New("`donor_password:` cannot be evaluated") // the error could quote it
	}
	if pw == nil || fmt.Sprint(pw) == "" {
		return nil, errors.New("`donor_password:` is empty")
	}
	p.password = fmt.Sprint(pw)
	x.AddSecret(p.password)
	if p.host, err = str("donor_host", s.DonorHost); err != nil {
		return nil, err
	}
	if p.user, err = str("donor_user", s.DonorUser); err != nil {
		return nil, err
	}
	port, err := str("donor_port", s.DonorPort)
	if err != nil {
		return nil, err
	}
	if p.port, err = strconv.Atoi(port); err != nil || p.port <= 0 || p.port > 65535 {
		return nil, fmt.Errorf("`donor_port: %s` is not a TCP port", port)
	}
	if s.BufferSize != nil {
		v, err := str("buffer_size", s.BufferSize)
		if err != nil {
			return nil, err
		}
		n, err := parseBytes(v)
		if err != nil {
			return nil, fmt.Errorf("`buffer_size: %s`: %v", v, err)
		}
		p.set = append(p.set, fmt.Sprintf("SET GLOBAL clone_buffer_size = %d", n))
	}
	if s.MaxConcurrency != nil {
		v, err := str("max_concurrency", s.MaxConcurrency)
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("`max_concurrency: %s` must be a whole number of threads (1 or more)", v)
		}
		p.set = append(p.set, fmt.Sprintf("SET GLOBAL clone_max_concurrency = %d", n))
	}
	if s.Autotune != nil {
		v, err := str("autotune", s.Autotune)
		if err != nil {
			return nil, err
		}
		b, err := parseBool(v)
		if err != nil {
			return nil, fmt.Errorf("`autotune: %s`: %v", v, err)
		}
		p.set = append(p.set, "SET GLOBAL clone_autotune_concurrency = "+map[bool]string{true: "ON", false: "OFF"}[b])
	}
	p.set = append(p.set, "SET GLOBAL clone_valid_donor_list = "+quote.SQLString(p.donor()))
	if s.DataDirectory != nil {
		if p.dataDir, err = str("data_directory", s.DataDirectory); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(p.dataDir, "/") {
			return nil, fmt.Errorf("`data_directory: %s` must be an absolute path (a new directory on the recipient)", p.dataDir)
		}
	}
	if p.restart, err = durationValue(x, "restart_timeout", s.RestartTimeout, cloneRestartTimeout); err != nil {
		return nil, err
	}
	if p.timeout, err = durationValue(x, "timeout", s.Timeout, cloneTimeout); err != nil {
		return nil, err
	}
	if p.progress, err = durationValue(x, "progress", s.Progress, cloneProgress); err != nil {
		return nil, err
	}
	return p, nil
}

// Statements of the clone step.
const (
	qClonePlugin   = "SELECT PLUGIN_STATUS FROM INFORMATION_SCHEMA.PLUGINS WHERE PLUGIN_NAME = 'clone'"
	qInstallClone  = "INSTALL PLUGIN clone SONAME 'mysql_clone.so'"
	qCloneSince    = "SELECT NOW(3) - INTERVAL 1 SECOND, CONNECTION_ID()"
	qCloneStatus   = "SELECT STATE, ERROR_NO, ERROR_MESSAGE, IFNULL(SOURCE, ''), IFNULL(BINLOG_FILE, ''), IFNULL(BINLOG_POSITION, 0), IFNULL(GTID_EXECUTED, ''), TIMESTAMPDIFF(MICROSECOND, BEGIN_TIME, IFNULL(END_TIME, NOW(3))) FROM performance_schema.clone_status WHERE BEGIN_TIME >= "
	qCloneProgress = "SELECT STAGE, STATE, IFNULL(DATA, 0), IFNULL(ESTIMATE, 0), IFNULL(TIMESTAMPDIFF(MICROSECOND, BEGIN_TIME, IFNULL(END_TIME, NOW(6))), 0) FROM performance_schema.clone_progress"
)

// cloneRun is one execution of the step.
type cloneRun struct {
	x      *engine.Exec
	db     *sql.DB
	target string
	p      *cloneParams
	since  string // recipient clock, before the clone (minus a second: clone_status keeps milliseconds)
}

// Run clones.
func (s *CloneStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	p, err := s.params(x)
	if err != nil {
		return nil, err
	}
	parent := ctx
	if dl, ok := parent.Deadline(); ok && time.Until(dl) < p.timeout {
		p.timeout = time.Until(dl).Round(time.Millisecond) // the step's own `timeout:` is shorter
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(target, "("+p.donor()+")") {
		return nil, fmt.Errorf("%s: the donor %s is the recipient itself", target, p.donor())
	}
	cr := &cloneRun{x: x, db: db, target: target, p: p}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect: %s", target, x.Mask(err.Error()))
	}
	defer conn.Close()
	exec := func(q string) error {
		x.Debugf("%s", q)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: `%s`: %s", target, q, x.Mask(err.Error()))
		}
		return nil
	}
	// 1. the plugin
	x.Debugf("%s", qClonePlugin)
	var status string
	switch err := conn.QueryRowContext(ctx, qClonePlugin).Scan(&status); {
	case errors.Is(err, sql.ErrNoRows):
		x.Infof("%s: the clone plugin is not installed: installing it", target)
		if err := exec(qInstallClone); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("%s: `%s`: %s", target, qClonePlugin, x.Mask(err.Error()))
	case status != "ACTIVE":
		return nil, fmt.Errorf("%s: the clone plugin is installed but %s (INFORMATION_SCHEMA.PLUGINS): fix it (see the error log) before cloning", target, status)
	}
	// 2. the variables
	for _, q := range p.set {
		if err := exec(q); err != nil {
			return nil, err
		}
	}
	// 3. where the clone starts, on the recipient's clock
	var connID int64
	x.Debugf("%s", qCloneSince)
	if err := conn.QueryRowContext(ctx, qCloneSince).Scan(&cr.since, &connID); err != nil {
		return nil, fmt.Errorf("%s: `%s`: %s", target, qCloneSince, x.Mask(err.Error()))
	}
	// 4. the clone, with progress logged from another connection; the
	// journal learns first which clone a resumed run must look for
	display := p.statement("******")
	x.Note(map[string]any{"recipient": target, "donor": p.donor(), "since": cr.since})
	if p.dataDir != "" {
		x.Infof("%s: cloning from %s into %s (the recipient keeps its data and keeps serving)", target, p.donor(), p.dataDir)
	} else {
		x.Infof("%s: cloning from %s (the recipient's data will be replaced)", target, p.donor())
	}
	x.Event(event.CloneStarted, map[string]any{"target": target, "donor": p.donor()})
	x.Sent(target, display)
	start := time.Now()
	stop := cr.viewProgress(ctx, cr.watch(ctx))
	_, cerr := conn.ExecContext(ctx, p.statement(p.password))
	stop()
	took := time.Since(start)
	if cerr == nil && p.dataDir != "" {
		return cr.finished(ctx, conn, took)
	}
	if cerr == nil {
		x.Infof("%s: CLONE INSTANCE returned after %s: the recipient restarts with the cloned data", target, took.Round(time.Millisecond))
		return cr.awaitRestart(ctx, parent)
	}
	var me *mysql.MySQLError
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		cr.kill(connID)
		return nil, fmt.Errorf("%s: interrupted during the clone from %s (%v): the clone was aborted (KILL QUERY %d); %s", target, p.donor(), parent.Err(), connID, p.partial())
	case ctx.Err() != nil:
		cr.kill(connID)
		return nil, fmt.Errorf("%s: the clone from %s did not finish within %s (timeout): it was aborted (KILL QUERY %d); %s; raise `timeout:` and clone again", target, p.donor(), shortDuration(p.timeout), connID, p.partial())
	case errors.As(cerr, &me) && me.Number == 1007 && p.dataDir != "":
		return nil, fmt.Errorf("%s: `%s`: %s: the folder is left from an earlier clone (an aborted clone leaves its partial copy): remove it on the recipient's host (rm -rf %s), then resume the run",
			target, display, x.Mask(cerr.Error()), p.dataDir)
	case errors.As(cerr, &me) && me.Number == 3707:
		return nil, fmt.Errorf("%s: the clone from %s copied the data, but the recipient has no supervisor (mysqld_safe/systemd) to restart it: `%s`: %s; the recipient shuts down: start it by hand (e.g. mysqld_safe --defaults-file=…) and it comes up with the cloned data",
			target, p.donor(), display, strings.TrimSuffix(x.Mask(cerr.Error()), "."))
	case lostConnection(cerr) && p.dataDir != "":
		return nil, fmt.Errorf("%s: the connection was lost during the clone from %s into %s (%s): resume the run: it reads performance_schema.clone_status and clones again unless that clone completed",
			target, p.donor(), p.dataDir, x.Mask(cerr.Error()))
	case lostConnection(cerr):
		// the server closed our connection: it is restarting
		x.Infof("%s: the connection closed after %s (%s): the recipient is restarting", target, took.Round(time.Millisecond), x.Mask(cerr.Error()))
		return cr.awaitRestart(ctx, parent)
	case errors.As(cerr, &me):
		msg := fmt.Sprintf("%s: the clone from donor %s failed after %s: `%s`: %s", target, p.donor(), took.Round(time.Millisecond), display, x.Mask(cerr.Error()))
		if st, err := cr.status(ctx, conn); err == nil && st != nil && st.state == "Failed" {
			msg += fmt.Sprintf(" (performance_schema.clone_status: Failed, error %d: %s)", st.errNo, x.Mask(st.errMsg))
		}
		msg += fmt.Sprintf("; check that the donor %s answers and has the clone plugin, then resume the run (the clone is done again)", p.donor())
		return nil, errors.New(msg)
	}
	return nil, fmt.Errorf("%s: `%s`: %s", target, display, x.Mask(cerr.Error()))
}

// lostConnection reports whether err says the connection went away.
func lostConnection(err error) bool {
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1053, 2006, 2013: // shutdown in progress, server gone, lost connection
			return true
		}
	}
	return false
}

// busyServer reports whether err is the server refusing a new connection
// for now (too many connections, in all or for the user): a recipient
// that has just restarted after a clone can say so while the sessions of
// the previous instance are still being torn down, so the polls for its
// outcome wait on it like on a server that does not answer yet.
func busyServer(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1040 || me.Number == 1203)
}

// kill aborts the clone statement from another connection.
func (cr *cloneRun) kill(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := fmt.Sprintf("KILL QUERY %d", id)
	cr.x.Debugf("%s", q)
	if _, err := cr.db.ExecContext(ctx, q); err != nil {
		cr.x.Warnf("%s: `%s`: %s", cr.target, q, cr.x.Mask(err.Error()))
	}
}

// cloneStatus is the row of performance_schema.clone_status.
type cloneStatus struct {
	state, errMsg, source, binlogFile, gtids string
	errNo, binlogPos, micros                 int64
}

// status reads clone_status for this clone (nil when there is no row yet).
func (cr *cloneRun) status(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (*cloneStatus, error) {
	st := &cloneStatus{}
	err := q.QueryRowContext(ctx, qCloneStatus+quote.SQLString(cr.since)).Scan(&st.state, &st.errNo, &st.errMsg, &st.source, &st.binlogFile, &st.binlogPos, &st.gtids, &st.micros)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// watch logs the copy progress every p.progress until stop is called.
func (cr *cloneRun) watch(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		var lastBytes int64
		last := start
		logged := false
		t := time.NewTicker(cr.p.progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			qctx, cancel := context.WithTimeout(ctx, cr.p.progress)
			if !logged {
				cr.x.Debugf("%s   (repeated every %s during the clone)", qCloneProgress, cr.p.progress)
				logged = true
			}
			stages, err := cr.progress(qctx, cr.db)
			cancel()
			if err != nil {
				continue // the recipient may be restarting; the outcome is checked after the statement
			}
			var data, estimate int64
			current := "starting"
			for _, st := range stages {
				data += st.data
				estimate += st.estimate
				if st.state == "In Progress" {
					current = strings.ToLower(st.stage)
				}
			}
			now := time.Now()
			rate := float64(data-lastBytes) / now.Sub(last).Seconds() / mib
			lastBytes, last = data, now
			pct := 0.0
			if estimate > 0 {
				pct = 100 * float64(data) / float64(estimate)
			}
			cr.x.Infof("%s: clone %s: %.0f%% (%s of %s), %.1f MiB/s, %s elapsed", cr.target, current, pct, humanBytes(data), humanBytes(estimate), rate, roundDuration(now.Sub(start)))
			cr.x.Event(event.CloneProgress, map[string]any{"target": cr.target, "stage": current, "bytes": data, "estimate": estimate, "mb_per_s": rate})
		}
	}()
	return func() { close(done); wg.Wait() }
}

const mib = 1 << 20

// cloneStage is one row of performance_schema.clone_progress.
type cloneStage struct {
	stage, state         string
	data, estimate, usec int64
}

func (cr *cloneRun) progress(ctx context.Context, db *sql.DB) ([]cloneStage, error) {
	rows, err := db.QueryContext(ctx, qCloneProgress)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []cloneStage
	for rows.Next() {
		var st cloneStage
		if err := rows.Scan(&st.stage, &st.state, &st.data, &st.estimate, &st.usec); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// finished reads the outcome of a clone into a data directory: the
// statement returned, so clone_status is final.
func (cr *cloneRun) finished(ctx context.Context, conn *sql.Conn, took time.Duration) (map[string]any, error) {
	x, target := cr.x, cr.target
	x.Infof("%s: CLONE INSTANCE returned after %s: the snapshot is in %s", target, took.Round(time.Millisecond), cr.p.dataDir)
	x.Debugf("%s", qCloneStatus+quote.SQLString(cr.since))
	st, err := cr.status(ctx, conn)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: after the clone into %s: `%s`: %s", target, cr.p.dataDir, qCloneStatus+quote.SQLString(cr.since), x.Mask(err.Error()))
	case st == nil:
		return nil, fmt.Errorf("%s: CLONE INSTANCE into %s returned, but performance_schema.clone_status shows no clone started after %s: check the recipient's error log", target, cr.p.dataDir, cr.since)
	case st.state != "Completed":
		return nil, fmt.Errorf("%s: CLONE INSTANCE into %s returned, but performance_schema.clone_status says %s (error %d: %s)", target, cr.p.dataDir, st.state, st.errNo, x.Mask(st.errMsg))
	}
	return cr.report(ctx, st)
}

// awaitRestart polls until the recipient is back and clone_status is final.
func (cr *cloneRun) awaitRestart(ctx, parent context.Context) (map[string]any, error) {
	x, target := cr.x, cr.target
	rctx, cancel := context.WithTimeout(ctx, cr.p.restart)
	defer cancel()
	start := time.Now()
	interval := x.Interval(clonePoll)
	x.Infof("%s: waiting up to %s for the recipient to restart and report the clone's outcome", target, shortDuration(cr.p.restart))
	q := qCloneStatus + quote.SQLString(cr.since)
	x.Debugf("%s   (repeated every %s until the recipient answers)", q, interval)
	var lastWhy string
	reinstalled := false
	for {
		actx, acancel := context.WithTimeout(rctx, 10*time.Second)
		st, err := cr.status(actx, cr.db)
		acancel()
		var me *mysql.MySQLError
		switch {
		case err == nil && st == nil:
			lastWhy = "the recipient answers, but performance_schema.clone_status has no clone started after " + cr.since
		case err == nil && st.state == "Completed":
			x.Infof("%s: back after %s; clone_status: Completed", target, time.Since(start).Round(time.Millisecond))
			return cr.report(rctx, st)
		case err == nil && st.state == "Failed":
			return nil, fmt.Errorf("%s: the clone from %s failed (performance_schema.clone_status): error %d: %s", target, cr.p.donor(), st.errNo, x.Mask(st.errMsg))
		case err == nil:
			lastWhy = "performance_schema.clone_status is " + st.state
		case errors.As(err, &me) && me.Number == 1045:
			return nil, fmt.Errorf("%s: the recipient restarted with the donor's data, accounts included, and now refuses the connection's user (%s): use an account that exists with the same password on the donor", target, x.Mask(err.Error()))
		case errors.As(err, &me) && me.Number == 1146 && !reinstalled:
			// the donor's mysql.plugin does not list the clone plugin (it
			// loads it from its option file), so the restarted recipient
			// has none; installing it again writes no GTID
			x.Infof("%s: back, but the cloned data does not load the clone plugin: installing it again to read clone_status", target)
			x.Debugf("%s", qInstallClone)
			if _, err := cr.db.ExecContext(rctx, qInstallClone); err != nil {
				return nil, fmt.Errorf("%s: back after the clone, but `%s` failed (%s), so flow cannot read performance_schema.clone_status: check the clone's outcome in the error log", target, qInstallClone, x.Mask(err.Error()))
			}
			reinstalled = true
			continue
		case errors.As(err, &me) && !lostConnection(err) && !busyServer(err):
			return nil, fmt.Errorf("%s: after the clone: `%s`: %s", target, q, x.Mask(err.Error()))
		default:
			lastWhy = "the recipient does not answer yet: " + x.Mask(err.Error())
		}
		t := time.NewTimer(interval)
		select {
		case <-rctx.Done():
			t.Stop()
			if errors.Is(parent.Err(), context.Canceled) {
				return nil, fmt.Errorf("%s: interrupted while waiting for the recipient to restart after the clone: %v", target, parent.Err())
			}
			return nil, fmt.Errorf("%s: the recipient did not come back with a finished clone within %s (restart_timeout) after the clone from %s: %s; check its error log (is a supervisor, mysqld_safe or systemd, running it?)",
				target, shortDuration(cr.p.restart), cr.p.donor(), lastWhy)
		case <-t.C:
		}
	}
}

// report reads clone_progress and builds the output.
func (cr *cloneRun) report(ctx context.Context, st *cloneStatus) (map[string]any, error) {
	x := cr.x
	x.Debugf("%s", qCloneProgress)
	stages, err := cr.progress(ctx, cr.db)
	if err != nil {
		return nil, fmt.Errorf("%s: `%s`: %s", cr.target, qCloneProgress, x.Mask(err.Error()))
	}
	var bytes, copyUsec int64
	list := make([]any, 0, len(stages))
	for _, s := range stages {
		bytes += s.data
		if s.data > 0 || strings.HasSuffix(s.stage, "COPY") {
			copyUsec += s.usec
		}
		list = append(list, map[string]any{"stage": s.stage, "state": s.state, "bytes": int(s.data), "estimate": int(s.estimate), "seconds": float64(s.usec) / 1e6})
	}
	secs := float64(st.micros) / 1e6
	copySecs := float64(copyUsec) / 1e6
	rate := 0.0
	if copySecs > 0 {
		rate = float64(bytes) / copySecs / mib
	}
	gtids := flatGTID(st.gtids)
	x.Infof("%s: cloned %s from %s in %.1fs (copy %.2fs, %.1f MiB/s); the recipient's gtid_executed is now %s", cr.target, humanBytes(bytes), st.source, secs, copySecs, rate, clipGTID(gtids, 200))
	x.Event(event.CloneFinished, map[string]any{"target": cr.target, "donor": cr.p.donor(), "state": st.state, "bytes": bytes, "seconds": secs, "copy_seconds": copySecs, "mb_per_s": rate})
	return map[string]any{
		"state": st.state, "bytes": int(bytes), "seconds": secs, "copy_seconds": copySecs, "mb_per_s": rate,
		"gtid_executed": gtids, "binlog_file": st.binlogFile, "binlog_position": int(st.binlogPos),
		"source": st.source, "target": cr.target, "stages": list,
	}, nil
}

// parseBytes reads a byte count: 33554432, 32M, 1G, 512K.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, s = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, errors.New("not a size: write bytes, or a number with K, M or G")
	}
	return v * mult, nil
}

// parseBool reads true/false/on/off/yes/no/1/0.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "yes", "1":
		return true, nil
	case "false", "off", "no", "0":
		return false, nil
	}
	return false, errors.New("not a boolean: write true or false")
}

// humanBytes renders a byte count in binary units.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Resuming clone steps.

// cloneJoinLog is how often a resumed run logs its wait for a clone.
const cloneJoinLog = 30 * time.Second

// resumeRun prepares a cloneRun for the clone an earlier attempt noted.
// It returns nil when the attempt noted none (it stopped before sending
// CLONE INSTANCE), and nil with a reason when that clone was into another
// recipient than the one the step now targets.
func (s *CloneStep) resumeRun(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (*cloneRun, string, error) {
	since, _ := rec.Notes["since"].(string)
	if since == "" {
		return nil, "", nil
	}
	recipient, _ := rec.Notes["recipient"].(string)
	p, err := s.params(x)
	if err != nil {
		return nil, "", err
	}
	db, target, err := x.MySQL(ctx, &s.MySQLTarget)
	if err != nil {
		return nil, "", err
	}
	if recipient != "" && recipient != target {
		return nil, fmt.Sprintf("the earlier attempt cloned into %s, but the step now clones into %s", recipient, target), nil
	}
	return &cloneRun{x: x, db: db, target: target, p: p, since: since}, "", nil
}

// Join waits for the clone an earlier attempt started, when the
// recipient's clone_status still says In Progress or the recipient does
// not answer (it restarts at the end of a clone): see settle.
func (s *CloneStep) Join(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (bool, string, error) {
	cr, _, err := s.resumeRun(ctx, x, rec)
	if err != nil || cr == nil {
		return false, "", err
	}
	st, waited, err := cr.settle(ctx)
	if err != nil || !waited {
		return false, "", err
	}
	state := "shows no clone"
	if st != nil {
		state = "says " + st.state
	}
	return true, fmt.Sprintf("the clone into %s from %s was still running; performance_schema.clone_status now %s", cr.target, cr.p.donor(), state), nil
}

// Resume judges the clone an earlier attempt started by the recipient's
// performance_schema.clone_status (the rows since the noted time): Completed
// from this step's donor is done (the output is the one the step gives
// after a clone); Failed, Not Started, another donor, or no clone at all
// (also when the attempt stopped before sending CLONE INSTANCE) means it
// did not take effect and the step runs again.
func (s *CloneStep) Resume(ctx context.Context, x *engine.Exec, rec *engine.StepRecord) (engine.ResumeDecision, map[string]any, string, error) {
	cr, other, err := s.resumeRun(ctx, x, rec)
	switch {
	case err != nil:
		return engine.ResumeUnsure, nil, "", err
	case other != "":
		return engine.ResumeUnsure, nil, other, nil
	case cr == nil:
		return engine.ResumeRerun, nil, "the earlier attempt stopped before it sent CLONE INSTANCE", nil
	}
	st, _, err := cr.settle(ctx)
	if err != nil {
		return engine.ResumeUnsure, nil, "", err
	}
	where := fmt.Sprintf("performance_schema.clone_status on %s", cr.target)
	switch {
	case st == nil:
		return engine.ResumeRerun, nil, fmt.Sprintf("%s shows no clone started after %s: CLONE INSTANCE did not start", where, cr.since), nil
	case st.state == "Completed" && sameDonor(st.source, cr.p.donor()):
		out, err := cr.report(ctx, st)
		if err != nil {
			return engine.ResumeUnsure, nil, "", err
		}
		return engine.ResumeDone, out, fmt.Sprintf("%s says Completed, cloned from %s", where, st.source), nil
	case st.state == "Completed":
		return engine.ResumeRerun, nil, fmt.Sprintf("%s says Completed, but cloned from %s, not from this step's donor %s", where, st.source, cr.p.donor()), nil
	case st.state == "Failed":
		return engine.ResumeRerun, nil, fmt.Sprintf("%s says Failed (error %d: %s)", where, st.errNo, x.Mask(st.errMsg)), nil
	}
	return engine.ResumeRerun, nil, fmt.Sprintf("%s says %s", where, st.state), nil
}

// sameDonor compares clone_status's SOURCE ("host:port") with a donor.
func sameDonor(source, donor string) bool {
	split := func(a string) (string, string) {
		i := strings.LastIndexByte(a, ':')
		if i < 0 {
			return strings.ToLower(strings.Trim(a, "[]")), ""
		}
		return strings.ToLower(strings.Trim(a[:i], "[]")), a[i+1:]
	}
	h1, p1 := split(strings.TrimSpace(source))
	h2, p2 := split(strings.TrimSpace(donor))
	return h1 == h2 && p1 == p2
}

// settle polls clone_status for the clone started after cr.since until it
// is no longer In Progress, and returns its row (nil when there is none).
// It tolerates the recipient not answering (a clone restarts it) for up to
// restart_timeout at a stretch, installs the clone plugin again when the
// cloned data does not load it (as awaitRestart does), and waits at most
// the step's `timeout:` in all, logging the wait every 30 s. waited says
// it had to wait.
func (cr *cloneRun) settle(ctx context.Context) (*cloneStatus, bool, error) {
	x, target := cr.x, cr.target
	sctx, cancel := context.WithTimeout(ctx, cr.p.timeout)
	defer cancel()
	interval := x.Interval(clonePoll)
	q := qCloneStatus + quote.SQLString(cr.since)
	began := time.Now()
	lastLog := began
	var downSince time.Time
	waited, reinstalled := false, false
	for {
		actx, acancel := context.WithTimeout(sctx, 10*time.Second)
		st, err := cr.status(actx, cr.db)
		acancel()
		var me *mysql.MySQLError
		var why string
		switch {
		case err == nil && (st == nil || st.state != "In Progress"):
			if waited {
				x.Infof("%s: the clone an earlier attempt started is over after %s of waiting", target, roundDuration(time.Since(began)))
			}
			return st, waited, nil
		case err == nil:
			downSince = time.Time{}
			why = "performance_schema.clone_status says In Progress"
		case errors.As(err, &me) && me.Number == 1045:
			return nil, waited, fmt.Errorf("%s: the recipient refuses the connection's user (%s): after a clone it has the donor's accounts: use an account that exists with the same password on the donor", target, x.Mask(err.Error()))
		case errors.As(err, &me) && me.Number == 1146 && !reinstalled:
			x.Infof("%s: the cloned data does not load the clone plugin: installing it again to read clone_status", target)
			x.Debugf("%s", qInstallClone)
			if _, err := cr.db.ExecContext(sctx, qInstallClone); err != nil {
				return nil, waited, fmt.Errorf("%s: `%s` failed (%s), so flow cannot read performance_schema.clone_status: check the clone's outcome in the error log", target, qInstallClone, x.Mask(err.Error()))
			}
			reinstalled = true
			continue
		case errors.As(err, &me) && !lostConnection(err) && !busyServer(err):
			return nil, waited, fmt.Errorf("%s: `%s`: %s", target, q, x.Mask(err.Error()))
		default:
			if downSince.IsZero() {
				downSince = time.Now()
			}
			if time.Since(downSince) > cr.p.restart {
				return nil, waited, fmt.Errorf("%s: the recipient has not answered for %s (restart_timeout), so flow cannot read the outcome of the clone an earlier attempt started from %s: %s; check its error log (is a supervisor, mysqld_safe or systemd, running it?)",
					target, shortDuration(cr.p.restart), cr.p.donor(), x.Mask(err.Error()))
			}
			why = "the recipient does not answer (a clone restarts it): " + x.Mask(err.Error())
		}
		now := time.Now()
		if !waited {
			waited = true
			lastLog = now
			x.Infof("%s: waiting for the clone from %s an earlier attempt started (%s)", target, cr.p.donor(), why)
			x.Debugf("%s   (repeated every %s)", q, interval)
		} else if now.Sub(lastLog) >= cloneJoinLog {
			lastLog = now
			x.Infof("%s: still waiting for the clone from %s an earlier attempt started, %s so far (%s)", target, cr.p.donor(), roundDuration(now.Sub(began)), why)
		}
		t := time.NewTimer(interval)
		select {
		case <-sctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, waited, fmt.Errorf("%s: interrupted while waiting for the clone an earlier attempt started: %v", target, ctx.Err())
			}
			return nil, waited, fmt.Errorf("%s: the clone from %s an earlier attempt started was not over within %s (timeout): %s", target, cr.p.donor(), shortDuration(cr.p.timeout), why)
		case <-t.C:
		}
	}
}
