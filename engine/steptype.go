package engine

// The contract between the engine and a step type: what a step type file
// in package steps registers, the spec it decodes into, and every optional
// interface the engine looks for. Nothing else of the engine is a step
// author's concern, apart from the values it hands over (Exec when a step
// runs, Render when one is listed, Check when one is compiled: api.go)
// and the field types it compiles (Expr, Text, SQL, Shell, Value,
// MySQLTarget, SSHTarget).

import (
	"context"

	"github.com/expr-lang/expr/types"
)

// StepType describes a registered step type. A step type is one file in
// package steps that calls Register from its init with a StepType whose New
// returns a fresh StepSpec; the engine drives each step of that type
// through the stages below, and calls an optional interface's method only
// when the spec implements it.
//
// When a playbook is loaded: 1) New is called for each step of the type,
// and must have no side effects. 2) The mapping under the type's key is
// decoded into the spec: key by key by the spec's yaml tags, strictly
// (unknown keys and wrong types are positioned errors; what is missing is
// Check's to say); or by the spec's own UnmarshalYAML (yaml.Unmarshaler), which
// then should implement SchemaShaper so the JSON Schema knows the form;
// or, for a spec that is a map, into variable names. 3) The engine
// compiles the spec's fields of the engine's field types against the
// typed expression environment (a secret may not reach a log), then calls
// Checker.Check for what field types cannot say (one of two fields, a
// range). A Setter declares the variables the step defines, a SecretSetter
// which of them hold secrets. Nothing has run yet: a playbook that fails
// here changes nothing.
//
// When a playbook is planned or dry-run: 4) Mutates says whether the step
// changes state; Render describes what it would execute, with the values
// not yet known shown symbolically. A dry run executes read-only steps
// for real (Run) and only lists the others; a plan executes nothing
// (except a Setter whose inputs are known).
//
// When a playbook runs: 5) Run executes the step; its map is the step's
// output, of the type StepType.Output declares. Run logs and journals
// through Exec (Sent before each statement, Note for what a resumed run
// needs, Progress for long waits) and may keep a resource until the run
// ends with Exec.Hold. Retries, timeouts, guards, confirmation and rescue
// are the engine's, from the common keys: Run does one attempt.
//
// When an interrupted run is resumed (flow resume): 6) a Recomputed step
// is run again instead of restored from the journal. For an interrupted
// state-changing step, Joiner.Join first waits, bounded, for work that
// outlived flow; then the step's `resume:` key decides if it has one,
// else Resumer.Resume judges whether the step took effect (ResumeDone),
// should run again (ResumeRerun) or cannot be told (ResumeUnsure: the
// operator decides, flow resume --rerun or --done).
type StepType struct {
	// Name is the key that selects the type in a step (`sql:`, `ssh:` …).
	Name string
	// Summary is a one-line description for help and the schema.
	Summary string
	// New returns a fresh spec to decode into.
	New func() StepSpec
	// Output is the type of the step's registered output, for the typed
	// expression environment. Nil means "any map".
	Output types.Map
	// Idempotent says re-running the step after an interruption is safe,
	// for the reference `flow steps` prints (a resume asks Resumer).
	Idempotent bool
	// Changes says when the step changes state, for the reference `flow
	// steps` prints, where its fields decide (e.g. "exec: yes; query: no").
	// Empty: the type always or never does, as Mutates of a fresh spec says.
	Changes string
}

// StepSpec is the type-specific part of a step, decoded from the mapping
// under the step type's key. Fields of type *Expr, *Text, *SQL, *Shell,
// *Value and Target are compiled by the engine; Check does the rest.
type StepSpec interface {
	// Mutates reports whether running the step changes state. Read-only
	// steps are the ones a dry run executes.
	Mutates() bool
	// Render describes what the step would execute, for plan and dry run.
	Render(r *Render) ([]Action, error)
	// Run executes the step; the returned map is its registered output.
	Run(ctx context.Context, x *Exec) (map[string]any, error)
}

// Checker is implemented by specs with validation beyond field types. In
// the engine's Go, "check" means only this: a step type's compile-time
// validation (the resume key's `check:` step is ResumeSpec.Probe, a
// guard is evaluated by evalGuard, the sql step's `check:` query is its
// CheckQuery).
type Checker interface {
	Check(c *Check)
}

// Action is one thing a step would do: a statement or command and where.
type Action struct {
	Target string // e.g. "mysql standby_router (127.0.0.2:16310)"
	Text   string // rendered, secrets masked, unknown values symbolic
}

// Setter is implemented by specs that define variables (the set step).
type Setter interface {
	// SetsVars returns the names of the variables the step defines.
	SetsVars() []string
}

// SecretSetter is implemented by a Setter whose variables may hold
// secrets (their expressions read or generate one): they are masked
// wherever they appear, and the compiler keeps them from logs.
type SecretSetter interface {
	// SecretVars returns the names of the variables that hold secrets.
	SecretVars() []string
}

// ResumeDecision is what a step type concludes about an interrupted run
// of one of its steps.
type ResumeDecision int

// Resume decisions.
const (
	// ResumeUnsure: flow cannot tell; the operator must check.
	ResumeUnsure ResumeDecision = iota
	// ResumeRerun: the step did not take effect, or running it again is
	// harmless: run it.
	ResumeRerun
	// ResumeDone: the step took effect (or the work it started, found still
	// running, was joined and finished): do not run it again.
	ResumeDone
)

// Resumer is implemented by step types that can judge, when a run is
// resumed, whether an interrupted run of one of their steps took effect:
// by checking the system (clone_status, a check query), by joining work
// still in progress, or because the step is idempotent. out is the step's
// output when the decision is ResumeDone; why says how it decided.
type Resumer interface {
	Resume(ctx context.Context, x *Exec, rec *StepRecord) (d ResumeDecision, out map[string]any, why string, err error)
}

// Joiner is implemented by step types whose work can outlive flow (a
// clone runs inside the recipient mysqld; a remote command keeps running
// when flow dies): when a run is resumed, Join waits, bounded, for such
// work of an interrupted step to end before anything else is decided.
// joined says there was work to wait for; why says what was waited for.
type Joiner interface {
	Join(ctx context.Context, x *Exec, rec *StepRecord) (joined bool, why string, err error)
}

// Recomputed is implemented by step types without side effects or I/O
// (set, assert, log): a resumed run computes them again instead of
// restoring their output from the journal.
type Recomputed interface {
	Recompute() bool
}

// SchemaShaper is implemented by a step spec, or a type used in one, whose
// YAML form its own UnmarshalYAML decides (reflection cannot see it): it
// returns the JSON Schema of that form. Schema refers to the shared
// definitions by "#/$defs/NAME" (expression, text, sql, shell, value,
// duration, name, steps).
type SchemaShaper interface {
	JSONSchema() map[string]any
}
