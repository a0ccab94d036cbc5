package funcs

import (
	"fmt"
	"strings"

	"github.com/flowdba/flow/engine"
)

// optionKey is DBScale's own normalisation of option names: case does not
// matter and '-' is '_', so "transparent-mode" and "TRANSPARENT_MODE" name one
// option (the router lower-cases names and maps '-' to '_').
func optionKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// rowsOf accepts the rows of a sql step's output (a list of column maps).
func rowsOf(fn string, v any) ([]map[string]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []map[string]any:
		return x, nil
	case []any:
		out := make([]map[string]any, 0, len(x))
		for i, r := range x {
			m, ok := r.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: row %d is %T, not a row of columns; pass a sql step's .rows", fn, i, r)
			}
			out = append(out, m)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: %T is not a list of rows; pass a sql step's .rows", fn, v)
}

// options turns the rows of `dbscale show options` into one map keyed by the
// normalised option name, so a playbook reads an option without a filter.
func options(v any) (map[string]any, error) {
	rows, err := rowsOf("options", v)
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, len(rows))
	for i, r := range rows {
		name, ok := r["option_name"]
		if !ok {
			return nil, fmt.Errorf("options: row %d has no option_name column; pass the rows of `dbscale show options`", i)
		}
		m[optionKey(toString(name))] = r["value"]
	}
	return m, nil
}

// isOn reads the many ways a router or a server prints a switch.
func isOn(v any) (bool, error) {
	switch x := v.(type) {
	case nil:
		return false, nil
	case bool:
		return x, nil
	case int:
		return x != 0, nil
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	}
	switch strings.ToLower(strings.TrimSpace(toString(v))) {
	case "1", "on", "true", "yes", "enabled":
		return true, nil
	case "", "0", "off", "false", "no", "disabled", "null":
		return false, nil
	}
	return false, fmt.Errorf("is_on: %q is neither on (1, on, true, yes) nor off (0, off, false, no, empty)", toString(v))
}

// masters keeps the dataserver rows the router lists as Master_Online: the
// current master of each datasource.
func masters(v any) ([]any, error) {
	rows, err := rowsOf("masters", v)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, r := range rows {
		if toString(r["master-online-status"]) == "Master_Online" {
			out = append(out, r)
		}
	}
	return out, nil
}

// datasourceOf applies DBScale's naming of the nodes of a replication
// datasource, <datasource>_<n> (normal_0_1 is a node of normal_0).
func datasourceOf(name string) (string, error) {
	i := strings.LastIndex(name, "_")
	if i <= 0 || i == len(name)-1 {
		return "", fmt.Errorf("datasource_of: %q is not named <datasource>_<n>", name)
	}
	return name[:i], nil
}

func init() {
	engine.RegisterFunc(engine.FuncDef{Name: "options", Help: "options(rows): the rows of `dbscale show options` as a map by option name (lower case, - as _): options(r.rows).transparent_mode",
		Fn: func(p ...any) (any, error) { return options(p[0]) }, Types: []any{new(func(any) map[string]any)}})
	engine.RegisterFunc(engine.FuncDef{Name: "option", Help: "option(rows, name): one option's value from the rows of `dbscale show options`, name as DBScale matches it (case, - or _); nil when absent",
		Fn: func(p ...any) (any, error) {
			m, err := options(p[0])
			if err != nil {
				return nil, err
			}
			return m[optionKey(toString(p[1]))], nil
		},
		Types: []any{new(func(any, string) any)}})
	engine.RegisterFunc(engine.FuncDef{Name: "is_on", Help: "is_on(v): a switch as routers and servers print it: 1/on/true/yes → true, 0/off/false/no/empty/nil → false, anything else an error",
		Fn: func(p ...any) (any, error) { return isOn(p[0]) }, Types: []any{new(func(any) bool)}})
	engine.RegisterFunc(engine.FuncDef{Name: "masters", Help: "masters(rows): the rows of `dbscale show dataservers` whose master-online-status is Master_Online",
		Fn: func(p ...any) (any, error) { return masters(p[0]) }, Types: []any{new(func(any) []any)}})
	engine.RegisterFunc(engine.FuncDef{Name: "datasource_of", Help: "datasource_of(servername): the datasource a node belongs to by DBScale's naming: datasource_of(\"normal_0_1\") = \"normal_0\"",
		Fn: func(p ...any) (any, error) { return datasourceOf(toString(p[0])) }, Types: []any{new(func(string) string)}})
}
