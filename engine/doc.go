// Package engine loads flow playbooks, validates all of them before anything
// runs, plans them, and executes their typed steps with guard expressions.
//
// The stages are: Load (YAML with positions, strict keys, includes) →
// Compile (expressions and templates against a typed environment; lint) →
// Plan/dry run (render every statement and command; verdicts) → Run
// (execute with guards, bounded polling, rescue/always, parallel groups).
//
// Step types live in package steps; each registers itself with Register.
// steptype.go is their contract: the step type, its spec, every optional
// interface and the lifecycle that calls them.
package engine
