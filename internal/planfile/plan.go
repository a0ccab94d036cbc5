// Package planfile keeps a plan bound to its run, as `flow plan --out` and
// `flow run --plan` use it.
//
// A plan is made by a dry run (read-only steps run for real against the
// live systems, nothing changes): a Recorder, as the run's observer, keeps
// the output of every read-only step, and the run's verdicts give every
// state-changing step's rendered statements. The Plan, written as JSON
// (mode 0600, secrets masked), records what it is a plan of (Subject: the
// playbook's and its includes' SHA-256, the parameters, the config), when
// and by which flow it was made, the observations and the verdicts.
//
// A run bound to a plan first checks that the plan fits it (Plan.Fits: same
// flow version, playbooks, parameters and config, not older than a maximum
// age), then runs with a Binder, which compares, step by step:
//
//   - every read-only step's output with the plan's, until the run makes
//     its first change, under the rules of package drift (a GTID set may
//     grow, lag and positions may move, roles, read-only flags, UUIDs,
//     statuses and hosts must be equal), except for steps that act
//     otherwise in a dry run (DryRunDiffers: the lock step). What the run
//     reads after its first change is the effect of its own changes, which
//     the plan could not see: it is not compared;
//   - every state-changing step's rendered statements with the plan's,
//     where the plan knew them (verdict WILL RUN); GTID sets in them may
//     have grown. A change the plan said it would skip, or never saw, is
//     drift. Steps the plan marked UNKNOWN (they depend on values only a
//     run knows), and rescue sections (a failure no plan foresees), are
//     not bound.
//
// Drift refuses the run before the step, naming the step, the field, the
// planned and the live value, and what to do (make a new plan).
package planfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Format is the plan file format this package writes and reads.
const Format = 1

// Plan is a saved plan.
type Plan struct {
	Format int `json:"format"`
	// FlowVersion is the version of flow that made the plan.
	FlowVersion string `json:"flow_version"`
	// Created is when the plan's dry run started.
	Created time.Time `json:"created"`
	// RunID is the id of the dry run that made the plan (its journal).
	RunID string `json:"run_id"`
	Subject
	// Observations are the outputs of the read-only steps the dry run
	// executed, by step instance key, secrets masked.
	Observations map[string]Observation `json:"observations"`
	// Steps are the dry run's verdicts, in order, with the rendered
	// statements of the state-changing steps.
	Steps []Step `json:"steps"`
}

// Observation is what one read-only step saw.
type Observation struct {
	// Step is the step's rendered name, Type its step type.
	Step string `json:"step"`
	Type string `json:"type,omitempty"`
	// AfterChange says the dry run listed a state-changing step before
	// this one: a run reads the effect of that change here, so this
	// observation is not compared.
	AfterChange bool `json:"after_change,omitempty"`
	// Output is the step's output (its JSON form).
	Output any `json:"output"`
}

// Step is the plan's verdict on one step instance.
type Step struct {
	Key string `json:"key"`
	// Pos is "file.yaml:LINE".
	Pos     string `json:"pos"`
	Step    string `json:"step"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	Mutates bool   `json:"mutates"`
	// Actions are the rendered statements and commands (state-changing
	// steps), secrets masked.
	Actions []Action `json:"actions,omitempty"`
}

// Action is one statement or command and where it runs.
type Action struct {
	Target string `json:"target"`
	Text   string `json:"text"`
}

// Verdicts, as the engine words them.
const (
	WillRun  = "WILL RUN"
	WillSkip = "WILL SKIP"
	Unknown  = "UNKNOWN"
	Runs     = "RUNS"
)

// Counts returns how many read-only steps the plan observed, how many
// changes it knows (WILL RUN) and how many steps it left UNKNOWN.
func (p *Plan) Counts() (observed, changes, unknown int) {
	for _, s := range p.Steps {
		switch {
		case s.Verdict == Unknown:
			unknown++
		case s.Verdict == WillRun && s.Mutates:
			changes++
		}
	}
	return len(p.Observations), changes, unknown
}

// Write saves the plan to path (mode 0600), replacing a file there whole.
func (p *Plan) Write(path string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("plan %s: %v", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("plan %s: %v", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("plan %s: %v", path, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("plan %s: %v", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("plan %s: %v", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("plan %s: %v", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("plan %s: %v", path, err)
	}
	return nil
}

// Read loads a plan file.
func Read(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %v (make one with `flow plan PLAYBOOK --out %s`)", path, err, path)
	}
	var p Plan
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // numbers compare as the live ones do (drift.Normalize)
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan %s: not a plan file: %v", path, err)
	}
	if p.Format != Format {
		return nil, fmt.Errorf("plan %s: format %d, but this flow reads format %d: make a new plan", path, p.Format, Format)
	}
	if p.Observations == nil {
		p.Observations = map[string]Observation{}
	}
	return &p, nil
}
