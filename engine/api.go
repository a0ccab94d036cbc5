package engine

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/flowdba/flow/event"
	"github.com/sirupsen/logrus"
)

func runExprProg(p *vm.Program, env map[string]any) (any, error) { return expr.Run(p, env) }

// Exec is what a running step sees: its rendered fields, its connections,
// its logger.
type Exec struct {
	r    *Runner
	step *Step
	sc   *scope
	env  *evalEnv
	log  *logrus.Entry
	w    *worker
	name string
	key  string
}

// Key identifies the step instance (its playbook positions and for_each
// items), as the journal records it.
func (x *Exec) Key() string { return x.key }

// Progress reports how far a long step got (a wait's rate and estimate, a
// clone's bytes) to the event stream and progress views as a
// step_progress event; the journal does not keep it.
func (x *Exec) Progress(fields map[string]any) {
	x.r.event(x.log, event.StepProgress, merge(stepFields(x.step, x.name, x.key), fields))
}

// Note records a durable fact about the running step in the journal (the
// pid of a remote command, the recipient of a clone) before it returns, so
// a resumed run can join or judge the work: see StepRecord.Notes.
func (x *Exec) Note(fields map[string]any) {
	x.r.event(x.log, event.StepNote, merge(stepFields(x.step, x.name, x.key), fields))
}

// Hold keeps c until the run ends (a server-side lock on its own
// connection); the runner closes it then. If c has an `Err() error`
// method, a non-nil error from it (the lock was lost) stops the run before
// its next step.
func (x *Exec) Hold(c io.Closer) {
	x.r.heldMu.Lock()
	defer x.r.heldMu.Unlock()
	x.r.held = append(x.r.held, c)
}

// RunID is the run's id.
func (x *Exec) RunID() string { return x.r.opts.RunID }

// ListedChanges is how many state-changing steps a dry run has listed (and
// not made) so far; 0 in a run. A step that reports the cluster's state in
// words (a log line) can say that those changes were not made.
func (x *Exec) ListedChanges() int {
	if x.r.opts.Mode != ModeDryRun {
		return 0
	}
	return x.r.Changes()
}

// StateDir is the run's state directory (Options.StateDir; "" when the
// caller gave none): where a step keeps a local file by default.
func (x *Exec) StateDir() string { return x.r.opts.StateDir }

// StepName is the step's rendered name.
func (x *Exec) StepName() string { return x.name }

// DryRun reports whether this is a dry run (only read-only steps run).
func (x *Exec) DryRun() bool { return x.r.opts.Mode == ModeDryRun }

// Log is the step's logger (playbook file:line, worker id).
func (x *Exec) Log() *logrus.Entry { return x.log }

// Debugf logs at DEBUG with secrets masked.
func (x *Exec) Debugf(format string, args ...any) {
	x.log.Debug(x.r.masker.Apply(fmt.Sprintf(format, args...)))
}

// Infof logs at INFO with secrets masked.
func (x *Exec) Infof(format string, args ...any) {
	x.log.Info(x.r.masker.Apply(fmt.Sprintf(format, args...)))
}

// Warnf logs at WARN with secrets masked.
func (x *Exec) Warnf(format string, args ...any) {
	x.log.Warn(x.r.masker.Apply(fmt.Sprintf(format, args...)))
}

// Event emits a step type's own event (package event names them) for
// tooling: the JSON log, observers, the journal.
func (x *Exec) Event(name string, fields map[string]any) {
	f := stepFields(x.step, x.name, x.key)
	for k, v := range fields {
		if s, ok := v.(string); ok {
			v = x.r.masker.Apply(s)
		}
		f[k] = v
	}
	x.r.event(x.log, name, f)
}

// Sent logs a statement or command exactly as sent (secrets masked) at
// DEBUG before it runs, and records it in the journal.
func (x *Exec) Sent(target, text string) {
	text = x.r.masker.Apply(text)
	x.log.Debug(text)
	x.r.event(x.log, event.Statement, merge(stepFields(x.step, x.name, x.key), logrus.Fields{"target": target, "text": text, "mutates": x.step.Mutates()}))
}

// AddSecret registers generated secrets so they are masked everywhere.
func (x *Exec) AddSecret(values ...string) { x.r.masker.Add(values...) }

// Mask masks known secrets in s.
func (x *Exec) Mask(s string) string { return x.r.masker.Apply(s) }

// env returns a fresh view of the variables (after earlier attempts' sets).
func (x *Exec) fresh() *evalEnv {
	x.env = x.sc.env()
	return x.env
}

// SQL renders a SQL template: the text to execute and the text to log.
func (x *Exec) SQL(t *SQL) (run, display string, err error) {
	if t == nil {
		return "", "", nil
	}
	env := x.fresh()
	if run, _, err = t.render(kindSQL, env, renderReal); err != nil {
		return "", "", err
	}
	display, _, err = t.render(kindSQL, env, renderDisplay)
	return run, x.r.masker.Apply(display), err
}

// Shell renders a shell command template.
func (x *Exec) Shell(t *Shell) (string, error) {
	if t == nil {
		return "", nil
	}
	s, _, err := t.render(kindShell, x.fresh(), renderReal)
	return s, err
}

// Text renders a text template (secrets allowed only where the field is
// marked secret; never log the result of such a field).
func (x *Exec) Text(t *Text) (string, error) {
	if t == nil {
		return "", nil
	}
	s, _, err := t.render(kindText, x.fresh(), renderReal)
	return s, err
}

// Value evaluates a value template.
func (x *Exec) Value(v *Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	out, _, err := v.value(x.fresh())
	return out, err
}

// Eval evaluates an expression in the step's scope.
func (x *Exec) Eval(e *Expr) (any, error) {
	if e == nil {
		return nil, nil
	}
	return runExpr(e, x.fresh().vars)
}

// Set defines a variable in the step's scope (the set step).
func (x *Exec) Set(name string, v any, secretValue bool) {
	if secretValue {
		if s, ok := v.(string); ok {
			x.r.masker.Add(s)
		}
	}
	x.sc.set(name, v, false)
}

// Seen renders the values an expression reads ("name=value, …").
func (x *Exec) Seen(e *Expr) string { return x.r.seen(e, x.fresh()) }

// Interval is the step's polling interval, or def when it sets none.
func (x *Exec) Interval(def time.Duration) time.Duration {
	if d, err := x.interval(); err == nil && d > 0 {
		return d
	}
	return def
}

// Refuse returns the error for an assertion that does not hold.
func (x *Exec) Refuse(e *Expr, message string) error {
	return &RefusedError{Pos: e.Pos, Step: x.name, Guard: oneLine(e.Src), Message: x.r.masker.Apply(message), Seen: x.Seen(e)}
}

// MySQL returns a database handle for the target and a label naming it.
func (x *Exec) MySQL(ctx context.Context, t *MySQLTarget) (*sql.DB, string, error) {
	env := x.fresh()
	ep, unk, err := resolve(t.target(), env)
	if err != nil {
		return nil, "", err
	}
	if unk {
		return nil, "", fmt.Errorf("the host of %s is not known", t.On)
	}
	db, err := x.r.mysqlDB(ctx, ep, env)
	if err != nil {
		return nil, ep.label(), fmt.Errorf("%s: %v", ep.label(), err)
	}
	return db, ep.label(), nil
}

// SSH returns an SSH client for the target and a label naming it.
func (x *Exec) SSH(ctx context.Context, t *SSHTarget) (SSHClient, string, error) {
	env := x.fresh()
	ep, unk, err := resolve(t.target(), env)
	if err != nil {
		return nil, "", err
	}
	if unk {
		return nil, "", fmt.Errorf("the host of %s is not known", t.On)
	}
	c, err := x.r.sshClient(ctx, ep)
	if err != nil {
		return nil, ep.label(), fmt.Errorf("%s: %v", ep.label(), err)
	}
	return c, ep.label(), nil
}

// Render renders a step's fields for plan and dry run: secrets masked,
// values not yet known shown as {{ expression }}.
type Render struct {
	r       *Runner
	env     *evalEnv
	step    *Step
	unknown bool
}

// StateDir is Exec.StateDir for a preview.
func (rd *Render) StateDir() string { return rd.r.opts.StateDir }

// Unknown reports whether something rendered depended on unknown values.
func (rd *Render) Unknown() bool { return rd.unknown }

// MarkUnknown records that the rendering depends on values only a run knows.
func (rd *Render) MarkUnknown() { rd.unknown = true }

func (rd *Render) tmpl(t *Template, kind tmplKind) string {
	if t == nil {
		return ""
	}
	s, unk, err := t.render(kind, rd.env, renderDisplay)
	if err != nil {
		rd.unknown = true
		return fmt.Sprintf("%s  [cannot render: %v]", t.Raw, err)
	}
	rd.unknown = rd.unknown || unk
	return rd.r.masker.Apply(s)
}

// SQL renders a SQL template.
func (rd *Render) SQL(t *SQL) string {
	if t == nil {
		return ""
	}
	return rd.tmpl(&t.Template, kindSQL)
}

// Shell renders a shell template.
func (rd *Render) Shell(t *Shell) string {
	if t == nil {
		return ""
	}
	return rd.tmpl(&t.Template, kindShell)
}

// Text renders a text template.
func (rd *Render) Text(t *Text) string {
	if t == nil {
		return ""
	}
	if t.secret {
		return "******"
	}
	return rd.tmpl(&t.Template, kindText)
}

// Value renders a value.
func (rd *Render) Value(v *Value) string {
	if v == nil {
		return ""
	}
	if v.secret {
		return "******"
	}
	x, unk, err := v.value(rd.env)
	if err != nil {
		rd.unknown = true
		return v.Raw
	}
	if unk {
		rd.unknown = true
		return "{{ " + fmt.Sprint(x.(Unknown).Why) + " }}"
	}
	return rd.r.masker.Apply(fmt.Sprint(x))
}

// Expr renders an expression: its value if known, else its source.
func (rd *Render) Expr(e *Expr) string {
	if e == nil {
		return ""
	}
	if rd.env.unknown(e) {
		rd.unknown = true
		return "{{ " + e.Src + " }}"
	}
	v, err := runExpr(e, rd.env.vars)
	if err != nil {
		rd.unknown = true
		return "{{ " + e.Src + " }}"
	}
	if e.secret {
		return "******"
	}
	return rd.r.masker.Apply(fmt.Sprint(v))
}

// MySQLTarget renders where a MySQL step runs.
func (rd *Render) MySQLTarget(t *MySQLTarget) string { return rd.target(t.target()) }

// SSHTarget renders where an SSH step runs.
func (rd *Render) SSHTarget(t *SSHTarget) string { return rd.target(t.target()) }

func (rd *Render) target(t *Target) string {
	ep, unk, err := resolve(t, rd.env)
	if err != nil {
		rd.unknown = true
		return t.On + " (" + err.Error() + ")"
	}
	if unk {
		rd.unknown = true
	}
	return ep.label()
}

// Check gives a step spec's Check method access to positions and
// diagnostics.
type Check struct {
	c    *compiler
	step *Step
}

// Errorf reports an error at p (use the field's Pos, or StepPos()).
func (k *Check) Errorf(p Pos, format string, args ...any) { k.c.errorf(p, format, args...) }

// Warnf reports a warning at p.
func (k *Check) Warnf(p Pos, format string, args ...any) { k.c.warnf(p, format, args...) }

// StepPos is the position of the step.
func (k *Check) StepPos() Pos { return k.step.Pos }

// StepName is the step's name.
func (k *Check) StepName() string { return k.step.Name }

// Registers reports whether the step stores its output somewhere.
func (k *Check) Registers() bool { return k.step.Register != "" || k.step.ID != "" }
