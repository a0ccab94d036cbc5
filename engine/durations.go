package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A step's timeout: and interval: are durations a DBA writes (30s, 5m), or
// a template naming one ({{ wait_timeout }}, a duration parameter), so a
// site sets a bound once as a parameter instead of editing every step.

// durationOrTemplate reads a duration literal, or keeps a {{ }} template.
func (l *loader) durationOrTemplate(file string, n *yaml.Node, what string) (time.Duration, *Value) {
	if d := deref(n); d != nil && d.Kind == yaml.ScalarNode && strings.Contains(d.Value, "{{") {
		return 0, l.value(file, n, what)
	}
	return l.duration(file, n, what), nil
}

// compileDuration compiles a templated timeout or interval.
func (c *compiler) compileDuration(v *Value, sc *typeEnv, what string) {
	if v == nil {
		return
	}
	c.compileTemplate(&v.Template, kindValue, sc)
	if v.secret {
		c.errorf(v.Pos, "%s: a duration cannot come from a secret", what)
	}
}

// compileParallel compiles a templated parallel:.
func (c *compiler) compileParallel(v *Value, sc *typeEnv) {
	if v == nil {
		return
	}
	c.compileTemplate(&v.Template, kindValue, sc)
	if v.secret {
		c.errorf(v.Pos, "parallel: a degree of parallelism cannot come from a secret")
	}
}

// groupParallel is how many items of a for_each group run at once in this
// run: its literal parallel:, or its template evaluated (a preview that
// cannot know it runs them one at a time).
func groupParallel(s *Step, env *evalEnv) (int, error) {
	if s.ParallelT == nil {
		return max(s.Parallel, 1), nil
	}
	v, unknown, err := s.ParallelT.value(env)
	if err != nil {
		return 0, fmt.Errorf("%s: parallel: %w", s.ParallelT.Pos, err)
	}
	if unknown {
		return 1, nil
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		n = int(x)
		if float64(n) != x {
			n = 0
		}
	case string:
		if n, err = strconv.Atoi(strings.TrimSpace(x)); err != nil {
			n = 0
		}
	}
	if n < 1 || n > 256 {
		return 0, fmt.Errorf("%s: parallel: %v is not a whole number from 1 to 256", s.ParallelT.Pos, v)
	}
	return n, nil
}

// hasTimeout reports whether the step is bounded by a timeout.
func (s *Step) hasTimeout() bool { return s.Timeout > 0 || s.TimeoutT != nil }

// timeout is the step's timeout in this run (0: none).
func (x *Exec) timeout() (time.Duration, error) {
	return stepDuration(x.step.Timeout, x.step.TimeoutT, x.env, "timeout")
}

// interval is the step's interval in this run (0: the default).
func (x *Exec) interval() (time.Duration, error) {
	return stepDuration(x.step.Interval, x.step.IntervalT, x.env, "interval")
}

// stepDuration evaluates a templated duration: a duration parameter, or
// text such as "90s".
func stepDuration(lit time.Duration, t *Value, env *evalEnv, what string) (time.Duration, error) {
	if t == nil {
		return lit, nil
	}
	v, unknown, err := t.value(env)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", t.Pos, what, err)
	}
	if unknown {
		return 0, nil // a preview: the bound is not known yet
	}
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		d, err = time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %q is not a duration such as 500ms, 30s or 5m", t.Pos, what, x)
		}
	default:
		return 0, fmt.Errorf("%s: %s: %v (%T) is not a duration such as 500ms, 30s or 5m", t.Pos, what, v, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %s must be positive, not %s", t.Pos, what, d)
	}
	return d, nil
}
