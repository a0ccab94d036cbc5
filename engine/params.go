package engine

// Parameters: declared (parseParam), converted to their type (convertParam), bound at run start (bindParams).

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowdba/flow/engine/config"
	"github.com/flowdba/flow/engine/plain"
	"gopkg.in/yaml.v3"
)

// bindParams resolves a playbook's parameters: --var, then FLOW_VAR_NAME,
// then the config key (whose FLOW_SECTION_KEY variable wins over the file),
// then the default. with holds values an include passes.
func (r *Runner) bindParams(pb *Playbook, sc *scope, with map[string]any) error {
	var errs []string
	for _, p := range pb.Params {
		if p.Removed != "" {
			if err := removedGiven(r, p, with); err != "" {
				errs = append(errs, err)
			}
			continue
		}
		var (
			raw  any
			from string
			ok   bool
		)
		if v, has := with[p.Name]; has {
			if u, unknown := v.(Unknown); unknown {
				sc.set(p.Name, u, true) // a preview: known only in a real run
				continue
			}
			raw, from, ok = v, "include", true
		} else if v, has := r.opts.Vars[p.Name]; has {
			raw, from, ok = v, "--var", true
		} else if v, has := os.LookupEnv("FLOW_VAR_" + strings.ToUpper(p.Name)); has {
			raw, from, ok = v, "environment FLOW_VAR_"+strings.ToUpper(p.Name), true
		} else if p.Config != "" {
			if v, src, has := r.opts.Config.Lookup(p.Config); has {
				raw, from, ok = v, src, true
			}
		}
		if !ok {
			if p.Default != nil {
				if s, isStr := p.Default.(string); isStr && p.Secret {
					r.masker.Add(s)
				}
				sc.set(p.Name, p.Default, false)
				continue
			}
			if p.Required {
				hint := fmt.Sprintf("--var %s=…", p.Name)
				if p.Secret {
					// a secret never goes on the command line: ps shows it
					hint = "the environment variable FLOW_VAR_" + strings.ToUpper(p.Name)
				}
				if p.Config != "" {
					sec, key, _ := strings.Cut(p.Config, ".")
					hint += fmt.Sprintf(", `%s` under [%s] in the config file (-c, mode 0600), or %s", key, sec, config.EnvName(p.Config))
				}
				errs = append(errs, fmt.Sprintf("%s: parameter %q is required (%s): set it with %s", p.Pos, p.Name, p.Help, hint))
				continue
			}
			sc.set(p.Name, zeroOf(p.Type), false)
			continue
		}
		v, err := convertParam(p.Type, raw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: parameter %q from %s: %v", p.Pos, p.Name, from, err))
			continue
		}
		if p.Secret {
			if s, ok := v.(string); ok {
				r.masker.Add(s)
			}
		}
		sc.set(p.Name, v, false)
	}
	for name := range r.opts.Vars {
		if with == nil && !hasParam(pb, name) {
			errs = append(errs, fmt.Sprintf("--var %s: %s has no parameter %q%s", name, pb.File, name, suggest(name, paramNames(pb))))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	sc.set("run", map[string]any{"id": r.opts.RunID, "playbook": pb.Name, "operator": r.opts.Operator,
		"host": r.opts.Host, "dry_run": r.opts.Mode == ModeDryRun, "plan": r.opts.Mode == ModePlan,
		"started": r.started.Format(time.RFC3339), "file": pb.File}, false)
	for _, v := range pb.Vars {
		env := sc.env()
		x, unk, err := v.Value.value(env)
		if err != nil {
			return fmt.Errorf("%s: variable %q: %v", v.Pos, v.Name, err)
		}
		if v.Value.secret {
			if s, ok := x.(string); ok {
				r.masker.Add(s)
			}
		}
		sc.set(v.Name, x, unk)
	}
	return nil
}

func hasParam(pb *Playbook, name string) bool {
	for _, p := range pb.Params {
		if p.Name == name {
			return true
		}
	}
	return false
}

func zeroOf(t string) any {
	switch t {
	case "int":
		return 0
	case "bool":
		return false
	case "float":
		return 0.0
	case "list":
		return []any{}
	case "map":
		return map[string]any{}
	case "duration":
		return time.Duration(0)
	}
	return ""
}

var paramKeys = []string{"type", "required", "default", "help", "secret", "config", "removed"}

var paramTypes = map[string]bool{"string": true, "int": true, "bool": true, "float": true, "list": true, "map": true, "duration": true}

func (l *loader) parseParam(pb *Playbook, name string, kn, n *yaml.Node) {
	f := pb.File
	p := &Param{Name: name, Type: "string", Pos: posOf(f, kn)}
	if !nameRE.MatchString(name) {
		l.errorf(p.Pos, "parameter name %q must match %s", name, nameRE)
		return
	}
	m := l.mapping(f, n, "params."+name, paramKeys)
	if m == nil {
		return
	}
	if v, ok := m.vals["type"]; ok {
		p.Type, _ = l.str(f, v, "params."+name+".type")
		if !paramTypes[p.Type] {
			l.errorf(posOf(f, v), "params.%s.type: unknown type %q (use string, int, bool, float, list, map or duration)", name, p.Type)
		}
	}
	if v, ok := m.vals["required"]; ok {
		p.Required = l.boolean(f, v, "params."+name+".required")
	}
	if v, ok := m.vals["secret"]; ok {
		p.Secret = l.boolean(f, v, "params."+name+".secret")
	}
	if v, ok := m.vals["help"]; ok {
		p.Help, _ = l.str(f, v, "params."+name+".help")
	}
	if v, ok := m.vals["config"]; ok {
		p.Config, _ = l.str(f, v, "params."+name+".config")
	}
	if v, ok := m.vals["removed"]; ok {
		p.Removed, _ = l.str(f, v, "params."+name+".removed")
		if p.Removed == "" {
			l.errorf(posOf(f, v), "params.%s.removed: say what replaces the parameter (the message a wrapper that still passes it gets)", name)
		}
	}
	if v, ok := m.vals["default"]; ok {
		var x any
		if err := deref(v).Decode(&x); err != nil {
			l.errorf(posOf(f, v), "params.%s.default: %v", name, err)
		} else if conv, err := convertParam(p.Type, plain.Of(x)); err != nil {
			l.errorf(posOf(f, v), "params.%s.default: %v", name, err)
		} else {
			p.Default = conv
		}
		if p.Required {
			l.errorf(posOf(f, v), "params.%s: a required parameter cannot have a default", name)
		}
	}
	pb.Params = append(pb.Params, p)
}

// convertParam converts a value (from YAML, the config or --var) to a
// parameter's declared type.
func convertParam(typ string, x any) (any, error) {
	s, isStr := x.(string)
	switch typ {
	case "string":
		if isStr {
			return s, nil
		}
		switch x.(type) {
		case int, float64, bool:
			return fmt.Sprint(x), nil
		}
	case "int":
		switch v := x.(type) {
		case int:
			return v, nil
		case string:
			i, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not an integer", v)
			}
			return i, nil
		}
	case "float":
		switch v := x.(type) {
		case int:
			return float64(v), nil
		case float64:
			return v, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", v)
			}
			return f, nil
		}
	case "bool":
		switch v := x.(type) {
		case bool:
			return v, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", v)
			}
			return b, nil
		}
	case "duration":
		if d, ok := x.(time.Duration); ok {
			return d, nil // passed on by an include
		}
		if isStr {
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as 30s", s)
			}
			return d, nil
		}
	case "list":
		switch v := x.(type) {
		case []any:
			return v, nil
		case string:
			var out []any
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
			return out, nil
		}
	case "map":
		if v, ok := x.(map[string]any); ok {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%s is not a %s", describe(x), typ)
}

func describe(x any) string {
	if s, ok := x.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v (%T)", x, x)
}

// removedGiven reports a value given for a parameter the playbook removed
// (an include's with: is checked at load).
func removedGiven(r *Runner, p *Param, with map[string]any) string {
	from := ""
	if _, has := r.opts.Vars[p.Name]; has {
		from = "--var " + p.Name
	} else if _, has := os.LookupEnv("FLOW_VAR_" + strings.ToUpper(p.Name)); has {
		from = "the environment variable FLOW_VAR_" + strings.ToUpper(p.Name)
	}
	if from == "" {
		return ""
	}
	return fmt.Sprintf("%s: %s sets parameter %q, which this playbook no longer has: %s", p.Pos, from, p.Name, p.Removed)
}
