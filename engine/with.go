package engine

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"
)

// plainWith checks a plain `with:` value: it must convert to the included
// parameter's type (as --var would), and it must not be a playbook written
// for the old `with:`, where every value was an expression. Such a value is
// refused with the exact rewrite rather than silently read as text: `'"my.cnf"'`
// would become the seven characters "my.cnf" with its quotes, and
// `disk_threshold` the word instead of the variable.
func (c *compiler) plainWith(k string, v *Value, p *Param, sc *typeEnv) {
	if v.node != nil && v.node.Kind == yaml.ScalarNode && v.Raw != "" {
		if rewrite, why := oldWithForm(k, v, p, sc); rewrite != "" {
			mark := len(c.l.diags)
			c.errorf(v.Pos, "with.%s: %s", k, why)
			c.l.explain(mark, "`with:` takes plain values, as --var and the config file do; an expression goes inside {{ }} (a lone {{ expr }} keeps its type)",
				"write "+rewrite)
			return
		}
	}
	if _, err := convertParam(p.Type, v.lit); err != nil {
		c.errorf(v.Pos, "with.%s: parameter %q of %s is a %s: %v", k, p.Name, baseName(p.Pos.File), p.Type, err)
	}
}

// oldWithForm tells whether a plain scalar reads as an expression under the
// old `with:` with a meaning other than its plain one; it returns the line
// that keeps the old meaning and why.
func oldWithForm(k string, v *Value, p *Param, sc *typeEnv) (rewrite, why string) {
	src := strings.TrimSpace(v.Raw)
	if _, err := compileProgram(src, sc.env()); err != nil {
		return "", "" // not an expression: a plain value it is
	}
	// a constant (no names of the playbook): the same value both ways is fine
	if prog, err := expr.Compile(src, expr.Env(map[string]any{})); err == nil {
		old, err := expr.Run(prog, map[string]any{})
		if err != nil {
			return "", ""
		}
		oldV, err1 := convertParam(p.Type, old)
		newV, err2 := convertParam(p.Type, v.lit)
		if err1 == nil && err2 == nil && reflect.DeepEqual(oldV, newV) {
			return "", ""
		}
		if err1 != nil {
			return "", "" // the old form did not fit the parameter either
		}
		return k + ": " + yamlScalar(oldV), fmt.Sprintf("`%s` is an expression, the form of `with:` before plain values (its value is %s)", src, yamlScalar(oldV))
	}
	return k + ": " + yamlScalar("{{ "+src+" }}"), fmt.Sprintf("`%s` reads names of this playbook as an expression, the form of `with:` before plain values", src)
}

// yamlScalar renders a value as one YAML scalar, quoted only when needed.
func yamlScalar(v any) string {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(string(out), "\n")
}
