// Package config reads flow's configuration: an INI file (the old tool's
// flashback.ini), overridden by environment variables. Values may contain '#'
// and ';' (passwords do): only whole-line comments are comments.
package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/flowdba/flow/engine/secret"
	"gopkg.in/ini.v1"
)

// Config is a set of "section.key" values.
type Config struct {
	// Path is the file the values came from ("" when none).
	Path   string
	values map[string]string
	source map[string]string // where each value came from, for error messages
}

// Empty returns a Config with no file, still reading the environment.
func Empty() *Config {
	return &Config{values: map[string]string{}, source: map[string]string{}}
}

// Load reads an INI file. Section and key names are case-insensitive;
// '-' and '_' in key names are the same.
func Load(path string) (*Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{
		IgnoreInlineComment:         true,
		AllowPythonMultilineValues:  false,
		SpaceBeforeInlineComment:    true,
		UnescapeValueDoubleQuotes:   true,
		UnescapeValueCommentSymbols: true,
	}, path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %v (fix the file: it must be INI, `[section]` then `key = value` lines)", path, err)
	}
	c := Empty()
	c.Path = path
	for _, sec := range f.Sections() {
		for _, k := range sec.Keys() {
			name := Key(sec.Name(), k.Name())
			if sec.Name() == ini.DefaultSection {
				name = Key("", k.Name())
			}
			c.values[name] = k.Value()
			c.source[name] = fmt.Sprintf("%s [%s] %s", path, sec.Name(), k.Name())
		}
	}
	return c, nil
}

// Key normalises a section and key into "section.key".
func Key(section, key string) string {
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if section == "" {
		return k
	}
	return strings.ToLower(section) + "." + k
}

// EnvName is the environment variable that overrides "section.key":
// FLOW_SECTION_KEY, upper-cased, with '.', '-' as '_'.
func EnvName(key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "FLOW_" + strings.ToUpper(r.Replace(key))
}

// Lookup returns the value of "section.key": the environment variable
// EnvName(key) wins over the file.
func (c *Config) Lookup(key string) (value, from string, ok bool) {
	key = normalise(key)
	if v, ok := os.LookupEnv(EnvName(key)); ok {
		return v, "environment " + EnvName(key), true
	}
	if c == nil {
		return "", "", false
	}
	v, ok := c.values[key]
	return v, c.source[key], ok
}

func normalise(key string) string {
	if i := strings.IndexByte(key, '.'); i >= 0 {
		return Key(key[:i], key[i+1:])
	}
	return Key("", key)
}

// Keys lists the file's keys, sorted.
func (c *Config) Keys() []string {
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Secrets returns every value whose key names a secret, for masking.
func (c *Config) Secrets() []string {
	var out []string
	for k, v := range c.values {
		if secret.LooksSecret(k) {
			out = append(out, v)
		}
	}
	for _, kv := range os.Environ() {
		if i := strings.IndexByte(kv, '='); i > 0 && strings.HasPrefix(kv, "FLOW_") && secret.LooksSecret(kv[:i]) {
			out = append(out, kv[i+1:])
		}
	}
	return out
}
