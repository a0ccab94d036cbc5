package engine

import (
	"time"

	"github.com/expr-lang/expr/types"
)

// Playbook is a loaded playbook file.
type Playbook struct {
	// File is the path as given (used in messages); Abs its absolute path.
	File, Abs string
	// Hash is the SHA-256 of the file's bytes, hex.
	Hash        string
	Name        string
	Description string
	Params      []*Param
	Vars        []*Var
	Conns       map[string]*Conn
	connOrder   []string
	Steps       []*Step
	// Includes are the playbooks this one includes, by absolute path.
	Includes map[string]*Playbook
	// Source is the file's text.
	Source []byte
	// outputT types what an include of this playbook registers (set by
	// compile).
	outputT types.Map
	// uses are the headers (absolute paths) whose parameters and
	// connections this playbook takes.
	uses []string
}

// Param is a typed playbook parameter.
type Param struct {
	Name     string
	Type     string // string, int, bool, float, list, map, duration
	Required bool
	Default  any
	Help     string
	Secret   bool
	// Config is the "section.key" of the config file this parameter reads.
	Config string
	// From is the header (absolute path) the parameter comes from, if any.
	From string
	// Removed says what replaces a parameter the playbook no longer has:
	// a wrapper or a command line that still passes it is refused with it.
	Removed string
	Pos     Pos
}

// Var is a playbook variable computed at the start of a run.
type Var struct {
	Name  string
	Value *Value
	Pos   Pos
}

// Conn is a named connection: a MySQL endpoint or an SSH host. Its fields
// are templates evaluated where a step uses it, so a connection can be a
// pattern (a node's host comes from the step's `host:`).
type Conn struct {
	Name   string
	Kind   string // "mysql" or "ssh"
	Fields map[string]*Value
	Pos    Pos
	owner  *Playbook
}

func (c *Conn) pb() *Playbook { return c.owner }

// connFields lists the keys each connection kind accepts.
var connFields = map[string][]string{
	"mysql": {"host", "port", "user", "password", "database", "via", "tunnel_to", "connect_timeout"},
	"ssh":   {"host", "port", "user", "key_file", "password", "known_hosts", "connect_timeout"},
}

// Guard is a precondition or postcondition.
type Guard struct {
	That    *Expr
	Message *Text
}

// Step is one step of a playbook: a typed action, a group or an include.
type Step struct {
	ID       string
	Name     string
	Pos      Pos
	Playbook *Playbook
	// Type is the step type name ("sql", "ssh", …, "group", "include").
	Type string
	Spec StepSpec

	When     *Expr
	Pre      []*Guard
	Post     []*Guard
	Register string
	Retries  int
	Until    *Expr
	Interval time.Duration
	Timeout  time.Duration
	// IntervalT and TimeoutT are an interval or timeout written as a
	// template ({{ wait_timeout }}), evaluated when the step runs.
	IntervalT, TimeoutT *Value
	Effect              map[string]*Expr
	// Confirm is the word the operator types at this confirmation point
	// (a state-changing step, or a group or include: asked before its
	// first step); ConfirmMessage says what will happen and where.
	Confirm        *Text
	ConfirmMessage *Text
	// Hint says what the operator should check or do when the step fails;
	// it is added to the step's error (not to a guard's refusal, whose
	// message says that already).
	Hint   *Text
	Rescue []*Step
	Always []*Step
	// IgnoreErrors logs a failure as a warning and goes on (best-effort
	// cleanup in rescue sections).
	IgnoreErrors bool
	// Undo are the steps `flow rollback` runs to undo this one once it
	// finished (they see `result`, the step's output).
	Undo []*Step
	// NoReturn marks the point of no return: once this step started, `flow
	// rollback` refuses with this message (which says what restores instead).
	NoReturn *Text
	// Resume says how a resumed run tells whether an interrupted run of
	// this step took effect (nil: the step type decides, or the operator).
	Resume *ResumeSpec

	// group
	Steps    []*Step
	ForEach  *Expr
	As       string
	Parallel int
	// ParallelT is parallel: written as a template ({{ parallel }}, an int
	// parameter), evaluated when the group runs.
	ParallelT *Value

	// include
	Include *Include
	// SkippedBy is set when a site's `extend: [{skip: …}]` skips the step.
	SkippedBy *Skip

	// compiled name template
	nameT *Text
}

// Include runs another playbook inline.
type Include struct {
	Path string
	// With are the values passed to the included playbook's parameters:
	// plain values as on --var, or {{ expressions }} (a lone one keeps its
	// type).
	With     map[string]*Value
	withKeys []string
	Playbook *Playbook
	// Extend are the site's changes to the included playbook; Playbook is
	// then a parse of its own, changed.
	Extend []*Extension
	// fresh says Playbook is this include's own parse (changed by an
	// extension that reaches into it).
	fresh bool
}

// Mutates reports whether the step (or anything inside it) changes state.
func (s *Step) Mutates() bool {
	if s.SkippedBy != nil {
		return false
	}
	switch s.Type {
	case "group":
		for _, c := range s.Steps {
			if c.Mutates() {
				return true
			}
		}
		return false
	case "include":
		for _, c := range s.Include.Playbook.Steps {
			if c.Mutates() {
				return true
			}
		}
		return false
	}
	return s.Spec != nil && s.Spec.Mutates()
}
