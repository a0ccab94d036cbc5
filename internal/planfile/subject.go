package planfile

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/secret"
)

// Subject is what a plan is a plan of.
type Subject struct {
	Playbook PlaybookRef `json:"playbook"`
	// Params are the playbook's parameters as a run resolves them (--var,
	// FLOW_VAR_NAME, the config, the default), secret ones masked.
	Params map[string]string `json:"params"`
	Config ConfigRef         `json:"config"`
}

// PlaybookRef names a playbook and its contents.
type PlaybookRef struct {
	// File is the path as given, Abs the absolute one.
	File   string `json:"file"`
	Abs    string `json:"abs"`
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	// Includes are the SHA-256 of every playbook it includes (at any
	// depth), by absolute path.
	Includes map[string]string `json:"includes,omitempty"`
}

// ConfigRef names the config file and its values.
type ConfigRef struct {
	Path string `json:"path,omitempty"`
	// Values are the file's keys ("section.key") with their values as a
	// run reads them (FLOW_SECTION_KEY wins), secret ones masked. Secrets
	// are not compared: a changed password changes no statement a plan
	// shows.
	Values map[string]string `json:"values"`
}

// Describe returns the subject of a run: the playbook loaded from file,
// the config loaded from configPath ("" for none) and the --var settings.
func Describe(file string, pb *engine.Playbook, configPath string, cfg *config.Config, vars map[string]string) Subject {
	if cfg == nil {
		cfg = config.Empty()
	}
	m := &secret.Masker{}
	m.Add(cfg.Secrets()...)
	for _, p := range pb.Params {
		if v, ok := vars[p.Name]; ok && (p.Secret || secret.LooksSecret(p.Name)) {
			m.Add(v)
		}
	}
	s := Subject{
		Playbook: PlaybookRef{File: file, Abs: pb.Abs, Name: pb.Name, SHA256: pb.Hash, Includes: map[string]string{}},
		Params:   map[string]string{},
		Config:   ConfigRef{Path: configPath, Values: map[string]string{}},
	}
	var walk func(p *engine.Playbook)
	walk = func(p *engine.Playbook) {
		for abs, inc := range p.Includes {
			if _, seen := s.Playbook.Includes[abs]; seen {
				continue
			}
			s.Playbook.Includes[abs] = inc.Hash
			walk(inc)
		}
	}
	walk(pb)
	for _, p := range pb.Params {
		v := paramValue(p, vars, cfg)
		if v != "" && (p.Secret || secret.LooksSecret(p.Name)) {
			v = secret.Mask
		}
		s.Params[p.Name] = m.Apply(v)
	}
	for _, k := range cfg.Keys() {
		v, _, _ := cfg.Lookup(k)
		if secret.LooksSecret(k) {
			v = secret.Mask
		}
		s.Config.Values[k] = m.Apply(v)
	}
	return s
}

// paramValue resolves a parameter as the engine does: --var, then
// FLOW_VAR_NAME, then its config key, then its default.
func paramValue(p *engine.Param, vars map[string]string, cfg *config.Config) string {
	if v, ok := vars[p.Name]; ok {
		return v
	}
	if v, ok := os.LookupEnv("FLOW_VAR_" + strings.ToUpper(p.Name)); ok {
		return v
	}
	if p.Config != "" {
		if v, _, ok := cfg.Lookup(p.Config); ok {
			return v
		}
	}
	switch d := p.Default.(type) {
	case nil:
		return ""
	case string:
		return d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Sprint(d)
		}
		return string(b)
	}
}

// Fits checks that the plan was made for this run: the same flow version,
// playbooks, parameters and config, and no older than maxAge (0: any age)
// at now. The error (exit 2: nothing ran) lists every difference and says
// to make a new plan.
func (p *Plan) Fits(planPath string, now Subject, version string, maxAge time.Duration, at time.Time) error {
	var why []string
	if p.FlowVersion != version {
		why = append(why, fmt.Sprintf("it was made by flow %s; this is flow %s", p.FlowVersion, version))
	}
	pp, np := p.Playbook, now.Playbook
	if pp.SHA256 != np.SHA256 {
		why = append(why, fmt.Sprintf("the playbook changed: the plan is of %s (sha256 %s), this run is of %s (sha256 %s)",
			pp.File, short(pp.SHA256), np.File, short(np.SHA256)))
	}
	for _, abs := range unionKeys(pp.Includes, np.Includes) {
		ph, pok := pp.Includes[abs]
		nh, nok := np.Includes[abs]
		switch {
		case !pok:
			why = append(why, fmt.Sprintf("the playbook now includes %s, which the plan did not", abs))
		case !nok:
			why = append(why, fmt.Sprintf("the playbook no longer includes %s, which the plan did", abs))
		case ph != nh:
			why = append(why, fmt.Sprintf("the included playbook %s changed (sha256 %s, now %s)", abs, short(ph), short(nh)))
		}
	}
	for _, k := range unionKeys(p.Params, now.Params) {
		pv, pok := p.Params[k]
		nv, nok := now.Params[k]
		switch {
		case !pok:
			why = append(why, fmt.Sprintf("parameter %s is new (%q)", k, nv))
		case !nok:
			why = append(why, fmt.Sprintf("parameter %s is gone (it was %q)", k, pv))
		case pv != nv:
			why = append(why, fmt.Sprintf("parameter %s: planned %q, now %q", k, pv, nv))
		}
	}
	for _, k := range unionKeys(p.Config.Values, now.Config.Values) {
		pv, pok := p.Config.Values[k]
		nv, nok := now.Config.Values[k]
		switch {
		case !pok:
			why = append(why, fmt.Sprintf("config key %s is new (%q)", k, nv))
		case !nok:
			why = append(why, fmt.Sprintf("config key %s is gone (it was %q)", k, pv))
		case pv != nv:
			why = append(why, fmt.Sprintf("config key %s: planned %q, now %q", k, pv, nv))
		}
	}
	age := at.Sub(p.Created)
	if maxAge > 0 && age > maxAge {
		why = append(why, fmt.Sprintf("it is %s old (made %s), older than --plan-max-age %s", age.Round(time.Second), p.Created.Local().Format(time.RFC3339), maxAge))
	}
	if age < -time.Minute {
		why = append(why, fmt.Sprintf("it was made in the future (%s): check the clock", p.Created.Local().Format(time.RFC3339)))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("the plan %s does not fit this run:\n  - %s\nMake a new plan: %s", planPath, strings.Join(why, "\n  - "), p.Remake(planPath))
}

// Remake is the command line that makes a new plan like this one.
func (p *Plan) Remake(planPath string) string {
	c := "flow plan " + p.Playbook.File
	if p.Config.Path != "" {
		c += " -c " + p.Config.Path
	}
	return c + " [--var …] --out " + planPath
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func unionKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
