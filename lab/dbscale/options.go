package dbscale

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// optionKind says which values an option takes and how they print.
type optionKind int

const (
	kindString optionKind = iota
	kindInt               // a signed integer
	kindBool01            // 0/1 (also accepts true/false/on/off), prints 0 or 1
	kindBoolTF            // prints TRUE or FALSE (accepts the same inputs)
)

// optionDef is a built-in option and its default.
type optionDef struct {
	kind optionKind
	def  string
}

// builtinOptions are the dynamic options the emulator knows, by normalised
// name (lower case, '_'), with DBScale's defaults (dbscale.md B, D8, D9).
var builtinOptions = map[string]optionDef{
	"enable_read_only":                       {kindBool01, "0"},
	"reinforce_enable_read_only":             {kindBool01, "0"},
	"slave_dbscale_mode":                     {kindBool01, "0"},
	"enable_disaster_mode":                   {kindBool01, "0"},
	"transparent_mode":                       {kindBool01, "0"},
	"enable_slave_dbscale_server":            {kindBool01, "1"},
	"max_replication_delay":                  {kindInt, "30"},
	"max_replication_delay_potential_master": {kindInt, "10000000"},
	"max_slave_retrived_gtid_delay":          {kindInt, "1000000"},
	"max_connect_by_result_num":              {kindInt, "1000000"},
	"multiple_mode":                          {kindBool01, "1"},
	"auto_master_failover_flashback":         {kindBool01, "1"},
	"enable_super_readonly_on_slave":         {kindBoolTF, "TRUE"},
	"semi_sync_on":                           {kindBool01, "1"},
	"flashback_retry_count":                  {kindInt, "6"},
	"flashback_allow_two_servers":            {kindBoolTF, "FALSE"},
	"use_partial_parse":                      {kindBool01, "1"},
	"session_init_charset":                   {kindString, ""},
	"log_level":                              {kindString, "INFO"},
}

// normaliseOption maps any spelling of an option name to its key: lower
// case, '-' replaced by '_', surrounding spaces removed.
func normaliseOption(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// displayName prints an option name with hyphens, as DBScale does.
func displayName(name string) string {
	return strings.ReplaceAll(normaliseOption(name), "_", "-")
}

// builtinOption looks a name up among the built-in options.
func builtinOption(name string) (optionDef, bool) {
	d, ok := builtinOptions[normaliseOption(name)]
	return d, ok
}

// normalise checks v against the kind and returns the stored form.
func (k optionKind) normalise(v string) (string, error) {
	v = strings.TrimSpace(v)
	switch k {
	case kindInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not an integer", v)
		}
		return strconv.FormatInt(n, 10), nil
	case kindBool01, kindBoolTF:
		var on bool
		switch strings.ToLower(v) {
		case "1", "true", "on", "yes":
			on = true
		case "0", "false", "off", "no":
		default:
			return "", fmt.Errorf("%q is not a boolean (0/1/true/false/on/off)", v)
		}
		if k == kindBoolTF {
			if on {
				return "TRUE", nil
			}
			return "FALSE", nil
		}
		if on {
			return "1", nil
		}
		return "0", nil
	}
	return v, nil
}

// optionIsOn reads a stored option value as a boolean.
func optionIsOn(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "on", "yes":
		return true
	}
	return false
}

// defaultOptions returns the built-in defaults overlaid with cfg's options.
// Unknown names in cfg become string options.
func defaultOptions(cfg map[string]string) map[string]string {
	out := make(map[string]string, len(builtinOptions)+len(cfg))
	for k, d := range builtinOptions {
		out[k] = d.def
	}
	for k, v := range cfg {
		key := normaliseOption(k)
		if d, ok := builtinOptions[key]; ok {
			if nv, err := d.kind.normalise(v); err == nil {
				v = nv
			}
		}
		out[key] = v
	}
	return out
}

// optionKindOf returns the kind of a known option (string for options added
// by the config).
func optionKindOf(key string) optionKind {
	if d, ok := builtinOptions[key]; ok {
		return d.kind
	}
	return kindString
}

// sortedKeys returns the map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
