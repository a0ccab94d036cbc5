package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowdba/flow/engine/plain"
	"gopkg.in/yaml.v3"
)

var topKeys = []string{"name", "description", "params", "vars", "connections", "steps", "definitions"}
var paramKeys = []string{"type", "required", "default", "help", "secret", "config"}
var paramTypes = map[string]bool{"string": true, "int": true, "bool": true, "float": true, "list": true, "map": true, "duration": true}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var idRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// loader holds the state of one Load call (all files it reads).
type loader struct {
	diags   Diags
	loaded  map[string]*Playbook
	loading []string // absolute paths, for include cycles
	// merged and steps count the work aliases can multiply (keys merged by
	// `<<`, steps parsed), so an alias bomb fails fast instead of hanging.
	merged, steps int
	bombed        bool
	// depth is the nesting of parseStep calls; top the position of the
	// top-level step being parsed (where an alias bomb is reported).
	depth int
	top   Pos
	// sources are the text of the files read, by the path diagnostics
	// name, for the snippet a diagnostic shows.
	sources map[string][]byte
	// removed are the names steps a site skips or replaces would define,
	// with what removed them (for the hint of an expression that reads one).
	removed map[string]string
}

// Bounds on what aliases can expand to in one Load.
const (
	maxMergedKeys = 100000
	maxSteps      = 20000
)

// bomb reports an alias bomb once per Load.
func (l *loader) bomb(p Pos, what string) {
	if !l.bombed {
		l.bombed = true
		l.errorf(p, "%s: aliases expand to too much (an alias bomb?): write the content out or use fewer aliases", what)
	}
}

func (l *loader) errorf(p Pos, format string, args ...any) {
	l.diags = append(l.diags, Diag{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) warnf(p Pos, format string, args ...any) {
	l.diags = append(l.diags, Diag{Pos: p, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// maxFileSize bounds what a playbook file may be.
const maxFileSize = 4 << 20

// Load reads, validates and compiles a playbook and everything it includes.
// Every problem found is returned at once as Diags (errors and warnings); a
// playbook with errors is returned as nil.
func Load(path string) (*Playbook, Diags) {
	l := &loader{loaded: map[string]*Playbook{}, sources: map[string][]byte{}}
	pb := l.load(path, Pos{File: path})
	if pb != nil && len(l.diags.Errors()) == 0 {
		l.compileIncludesFirst(pb, map[*Playbook]bool{})
	}
	l.attachSources()
	if len(l.diags.Errors()) > 0 {
		return nil, l.diags.sorted()
	}
	return pb, l.diags.Warnings()
}

func (l *loader) load(path string, from Pos) *Playbook {
	abs, err := absPath(path)
	if err != nil {
		l.errorf(from, "cannot resolve %s: %v", path, err)
		return nil
	}
	for _, a := range l.loading {
		if a == abs {
			chain := append(append([]string(nil), l.loading...), abs)
			for i := range chain {
				chain[i] = filepath.Base(chain[i])
			}
			l.errorf(from, "include cycle: %s (remove one of these includes)", strings.Join(chain, " → "))
			return nil
		}
	}
	if pb, ok := l.loaded[abs]; ok {
		return pb
	}
	data, err := readBounded(path, len(l.loading) > 0)
	if err != nil {
		l.errorf(from, "cannot read playbook: %v", err)
		return nil
	}
	file := path
	if len(data) > maxFileSize {
		l.errorf(Pos{File: file, Line: 1, Col: 1}, "the file is larger than %d bytes, the most a playbook may be", maxFileSize)
		return nil
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		line := 1 + bytes.Count(data[:firstInvalid(data)], []byte("\n"))
		l.errorf(Pos{File: file, Line: line, Col: 1}, "not a text file: a playbook must be UTF-8 YAML")
		return nil
	}
	l.sources[file] = data
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			l.errorf(Pos{File: file, Line: 1, Col: 1}, "empty playbook: it needs at least `name:` and `steps:`")
			return nil
		}
		l.errorf(yamlErrPos(file, err), "YAML: %s", yamlErrMsg(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errorf(posOf(file, &extra), "a playbook file holds one YAML document; remove the `---` and what follows")
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		l.errorf(Pos{File: file, Line: 1, Col: 1}, "empty playbook: it needs at least `name:` and `steps:`")
		return nil
	}
	top := root.Content[0]
	sum := sha256.Sum256(data)
	pb := &Playbook{File: file, Abs: abs, Hash: hex.EncodeToString(sum[:]), Conns: map[string]*Conn{},
		Includes: map[string]*Playbook{}, Source: data}
	l.loaded[abs] = pb
	l.loading = append(l.loading, abs)
	defer func() { l.loading = l.loading[:len(l.loading)-1] }()
	l.parseTop(pb, top)
	return pb
}

// compileIncludesFirst compiles every playbook once, an included playbook
// before its includers, so an include's output is typed from it.
func (l *loader) compileIncludesFirst(pb *Playbook, done map[*Playbook]bool) {
	if done[pb] {
		return
	}
	done[pb] = true
	walkSteps(pb.Steps, func(s *Step) {
		if s.Include != nil && s.Include.Playbook != nil {
			l.compileIncludesFirst(s.Include.Playbook, done)
		}
	})
	l.compile(pb)
}

// absPath is the key a playbook is cached and hashed by.
func absPath(path string) (string, error) { return filepath.Abs(path) }

var errEOF = errors.New("EOF")

// readBounded reads at most maxFileSize+1 bytes of a playbook, so a huge
// file or a device such as /dev/zero cannot exhaust memory. An include must
// be a regular file: opening a FIFO would block.
func readBounded(path string, include bool) ([]byte, error) {
	if include {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] == 0 {
			return i
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)(?: column (\d+))?`)

func yamlErrPos(file string, err error) Pos {
	p := Pos{File: file, Line: 1, Col: 1}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			p.Col, _ = strconv.Atoi(m[2])
		}
	}
	return p
}

func yamlErrMsg(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = yamlLineRE.ReplaceAllString(s, "")
	s = strings.TrimLeft(s, ": ")
	if strings.Contains(s, "found character that cannot start any token") {
		s += " (tabs cannot indent YAML: use spaces)"
	}
	if strings.Contains(s, "excessive aliasing") {
		s += " (too many aliases: an alias bomb?)"
	}
	return s
}

// mapping is a YAML mapping with its keys resolved (merge keys applied).
type mapping struct {
	keys   []string
	vals   map[string]*yaml.Node
	knodes map[string]*yaml.Node
	// unknown are the keys refused as not allowed, with the index of the
	// diagnostic that says so (for a hint once the caller knows more).
	unknown []unknownKey
}

type unknownKey struct {
	key  string
	diag int
}

// mapping reads a mapping node, reporting duplicate and unknown keys.
// allowed == nil accepts any key.
func (l *loader) mapping(file string, n *yaml.Node, what string, allowed []string) *mapping {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return &mapping{vals: map[string]*yaml.Node{}, knodes: map[string]*yaml.Node{}}
		}
		l.errorf(posOf(file, n), "%s must be a mapping (key: value lines), not %s", what, kindName(n))
		return nil
	}
	m := &mapping{vals: map[string]*yaml.Node{}, knodes: map[string]*yaml.Node{}}
	l.mergeInto(file, m, n, what, allowed, 0, map[*yaml.Node]bool{})
	return m
}

// mergeInto adds n's keys to m, then those of the mappings n merges with
// `<<` (explicit keys win; the first merge wins over later ones). seen holds
// the mappings already merged: merging one twice adds nothing.
func (l *loader) mergeInto(file string, m *mapping, n *yaml.Node, what string, allowed []string, depth int, seen map[*yaml.Node]bool) {
	if depth > 8 {
		l.errorf(posOf(file, n), "merge keys nested too deep in %s", what)
		return
	}
	if seen[n] {
		return
	}
	seen[n] = true
	if depth > 0 {
		l.merged += len(n.Content) / 2
		if l.merged > maxMergedKeys {
			l.bomb(posOf(file, n), "merge keys in "+what)
			return
		}
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || (k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Style == 0) {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.errorf(posOf(file, k), "%s: keys must be plain strings", what)
			continue
		}
		if prev, dup := m.knodes[k.Value]; dup && prev.Line > 0 && depth == 0 {
			l.errorf(posOf(file, k), "%s: key %q is already defined at line %d", what, k.Value, prev.Line)
			continue
		} else if dup {
			continue // explicit keys override merged ones
		}
		if allowed != nil && !contains(allowed, k.Value) {
			m.unknown = append(m.unknown, unknownKey{k.Value, len(l.diags)})
			l.errorf(posOf(file, k), "%s: unknown key %q%s", what, k.Value, suggest(k.Value, allowed))
			continue
		}
		m.keys = append(m.keys, k.Value)
		m.vals[k.Value] = v
		m.knodes[k.Value] = k
	}
	for _, mv := range merges {
		mv = deref(mv)
		switch {
		case mv != nil && mv.Kind == yaml.MappingNode:
			l.mergeInto(file, m, mv, what, allowed, depth+1, seen)
		case mv != nil && mv.Kind == yaml.SequenceNode:
			for _, item := range mv.Content {
				if d := deref(item); d != nil && d.Kind == yaml.MappingNode {
					l.mergeInto(file, m, d, what, allowed, depth+1, seen)
				}
			}
		default:
			l.errorf(posOf(file, mv), "%s: `<<` must merge a mapping", what)
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the scalar %q", oneLine(n.Value))
	}
	return "something else"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest proposes the closest allowed key for a typo.
func suggest(s string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(s, a); d < bestD {
			best, bestD = a, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(allowed) <= 24 {
		sorted := append([]string(nil), allowed...)
		sort.Strings(sorted)
		return " (allowed: " + strings.Join(sorted, ", ") + ")"
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (l *loader) scalar(file string, n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		l.errorf(posOf(file, n), "%s must be a scalar, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) str(file string, n *yaml.Node, what string) (string, bool) {
	s, ok := l.scalar(file, n, what)
	if ok && deref(n).Tag != "!!str" {
		l.errorf(posOf(file, n), "%s must be a string, not %s", what, kindName(deref(n)))
		return "", false
	}
	return s, ok
}

func (l *loader) boolean(file string, n *yaml.Node, what string) bool {
	var b bool
	if d := deref(n); d == nil || d.Kind != yaml.ScalarNode || d.Tag != "!!bool" || d.Decode(&b) != nil {
		l.errorf(posOf(file, n), "%s must be true or false, not %s", what, kindName(d))
	}
	return b
}

func (l *loader) integer(file string, n *yaml.Node, what string, lo, hi int) int {
	var i int
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag != "!!int" || d.Decode(&i) != nil {
		l.errorf(posOf(file, n), "%s must be an integer, not %s", what, kindName(d))
		return 0
	}
	if i < lo || i > hi {
		l.errorf(posOf(file, n), "%s must be between %d and %d, not %d", what, lo, hi, i)
	}
	return i
}

func (l *loader) duration(file string, n *yaml.Node, what string) time.Duration {
	s, ok := l.scalar(file, n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.errorf(posOf(file, n), "%s must be a positive duration such as 500ms, 30s or 5m, not %q", what, s)
	}
	return d
}

func (l *loader) expr(file string, n *yaml.Node, what string) *Expr {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		l.errorf(posOf(file, n), "%s must be an expression, not %s", what, kindName(d))
		l.braceHint(len(l.diags)-1, file, d)
		return nil
	}
	return &Expr{Src: d.Value, node: d}
}

func (l *loader) text(file string, n *yaml.Node, what string) *Text {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		l.errorf(posOf(file, n), "%s must be a string, not %s", what, kindName(d))
		l.braceHint(len(l.diags)-1, file, d)
		return nil
	}
	t := &Text{}
	t.Raw, t.node, t.set = d.Value, d, true
	return t
}

// parseConfirm reads `confirm:`: the word to type, or a mapping of the
// word and the message the prompt shows (what will happen, where).
func (l *loader) parseConfirm(file string, n *yaml.Node) (word, message *Text) {
	if d := deref(n); d != nil && d.Kind == yaml.MappingNode {
		m := l.mapping(file, n, "confirm", []string{"word", "message"})
		if m == nil {
			return nil, nil
		}
		if wn, ok := m.vals["word"]; ok {
			word = l.text(file, wn, "confirm.word")
		} else {
			l.errorf(posOf(file, n), "confirm: needs `word:` (what the operator types), e.g. confirm: {word: \"{{ target_host }}\", message: …}")
		}
		if mn, ok := m.vals["message"]; ok {
			message = l.text(file, mn, "confirm.message")
		}
		return word, message
	}
	return l.text(file, n, "confirm"), nil
}

func (l *loader) value(file string, n *yaml.Node, what string) *Value {
	d := deref(n)
	v := &Value{}
	if d == nil || d.Kind != yaml.ScalarNode {
		if d != nil && (d.Kind == yaml.SequenceNode || d.Kind == yaml.MappingNode) {
			var x any
			if err := d.Decode(&x); err != nil {
				l.errorf(posOf(file, n), "%s: %v", what, err)
				return nil
			}
			v.lit, v.isLit, v.node, v.set, v.Raw = plain.Of(x), true, d, true, ""
			return v
		}
		l.errorf(posOf(file, n), "%s must be a value, not %s", what, kindName(d))
		return nil
	}
	if err := v.UnmarshalYAML(d); err != nil {
		l.errorf(posOf(file, n), "%s: %v", what, err)
		return nil
	}
	return v
}

func (l *loader) parseTop(pb *Playbook, top *yaml.Node) {
	f := pb.File
	m := l.mapping(f, top, "playbook", topKeys)
	if m == nil {
		return
	}
	if n, ok := m.vals["name"]; ok {
		pb.Name, _ = l.str(f, n, "name")
	} else {
		l.errorf(posOf(f, top), "playbook: missing `name:`")
	}
	if n, ok := m.vals["description"]; ok {
		pb.Description, _ = l.str(f, n, "description")
	}
	if n, ok := m.vals["params"]; ok {
		if pm := l.mapping(f, n, "params", nil); pm != nil {
			for _, name := range pm.keys {
				l.parseParam(pb, name, pm.knodes[name], pm.vals[name])
			}
		}
	}
	if n, ok := m.vals["vars"]; ok {
		if vm := l.mapping(f, n, "vars", nil); vm != nil {
			for _, name := range vm.keys {
				p := posOf(f, vm.knodes[name])
				if !nameRE.MatchString(name) {
					l.errorf(p, "variable name %q must match %s", name, nameRE)
					continue
				}
				if v := l.value(f, vm.vals[name], "vars."+name); v != nil {
					pb.Vars = append(pb.Vars, &Var{Name: name, Value: v, Pos: p})
				}
			}
		}
	}
	if n, ok := m.vals["connections"]; ok {
		if cm := l.mapping(f, n, "connections", nil); cm != nil {
			for _, name := range cm.keys {
				l.parseConn(pb, name, cm.knodes[name], cm.vals[name])
			}
		}
	}
	n, ok := m.vals["steps"]
	if !ok {
		l.errorf(posOf(f, top), "playbook: missing `steps:`")
		return
	}
	pb.Steps = l.parseSteps(pb, n, "steps")
}

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

func (l *loader) parseConn(pb *Playbook, name string, kn, n *yaml.Node) {
	f := pb.File
	p := posOf(f, kn)
	if !nameRE.MatchString(name) {
		l.errorf(p, "connection name %q must match %s", name, nameRE)
		return
	}
	m := l.mapping(f, n, "connections."+name, []string{"mysql", "ssh"})
	if m == nil {
		return
	}
	if len(m.keys) != 1 {
		l.errorf(p, "connection %q needs exactly one of `mysql:` or `ssh:`", name)
		return
	}
	kind := m.keys[0]
	fm := l.mapping(f, m.vals[kind], "connections."+name+"."+kind, connFields[kind])
	if fm == nil {
		return
	}
	c := &Conn{Name: name, Kind: kind, Fields: map[string]*Value{}, Pos: p, owner: pb}
	for _, k := range fm.keys {
		if v := l.value(f, fm.vals[k], "connections."+name+"."+k); v != nil {
			c.Fields[k] = v
		}
	}
	pb.Conns[name] = c
	pb.connOrder = append(pb.connOrder, name)
}

func (l *loader) parseSteps(pb *Playbook, n *yaml.Node, what string) []*Step {
	f := pb.File
	d := deref(n)
	if d == nil || d.Kind != yaml.SequenceNode {
		l.errorf(posOf(f, n), "%s must be a list of steps (lines starting with `- `), not %s", what, kindName(d))
		return nil
	}
	var out []*Step
	for i, item := range d.Content {
		if s := l.parseStep(pb, item, fmt.Sprintf("%s[%d]", what, i)); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) parseStep(pb *Playbook, n *yaml.Node, what string) *Step {
	f := pb.File
	d := deref(n)
	s := &Step{Pos: posOf(f, d), Playbook: pb, Interval: 0}
	if l.depth == 0 {
		l.top = posOf(f, n)
	}
	if l.steps++; l.steps > maxSteps {
		l.bomb(l.top, fmt.Sprintf("more than %d steps", maxSteps))
		return nil
	}
	l.depth++
	defer func() { l.depth-- }()
	if d == nil || d.Kind != yaml.MappingNode {
		l.errorf(posOf(f, n), "%s: a step must be a mapping, not %s", what, kindName(d))
		return nil
	}
	allowed := make([]string, 0, len(commonKeys)+len(registry))
	for k := range commonKeys {
		allowed = append(allowed, k)
	}
	allowed = append(allowed, typeNames()...)
	m := l.mapping(f, d, "step", allowed)
	if m == nil {
		return nil
	}
	l.stepKeyHints(m)
	var typeKeys []string
	for _, k := range m.keys {
		if !commonKeys[k] {
			typeKeys = append(typeKeys, k)
		}
	}
	_, hasSteps := m.vals["steps"]
	_, hasInclude := m.vals["include"]
	switch {
	case len(typeKeys) > 1:
		l.errorf(s.Pos, "%s: a step has one type, but this one has %s", what, strings.Join(typeKeys, " and "))
		return nil
	case len(typeKeys) == 1 && (hasSteps || hasInclude):
		l.errorf(s.Pos, "%s: `%s:` cannot be combined with `steps:` or `include:`", what, typeKeys[0])
		return nil
	case hasSteps && hasInclude:
		l.errorf(s.Pos, "%s: `steps:` and `include:` cannot be combined", what)
		return nil
	case len(typeKeys) == 1:
		s.Type = typeKeys[0]
	case hasSteps:
		s.Type = "group"
	case hasInclude:
		s.Type = "include"
	default:
		l.errorf(s.Pos, "%s: the step has no type: add one of %s, `steps:` (a group) or `include:`", what, strings.Join(typeNames(), ", "))
		return nil
	}
	for _, k := range m.keys {
		if key, common := commonKeyIndex[k]; !common {
			s.Spec = l.decodeSpec(pb, k, m.knodes[k], m.vals[k])
		} else if key.parse != nil {
			key.parse(l, s, m.vals[k])
		}
	}
	if en, ok := m.vals["extend"]; ok {
		if s.Include == nil {
			l.errorf(posOf(f, m.knodes["extend"]), "`extend:` only goes with `include:`")
		} else {
			s.Include.Extend = l.parseExtend(s, en)
		}
	}
	if wn, ok := m.vals["with"]; ok {
		if s.Include == nil {
			l.errorf(posOf(f, m.knodes["with"]), "`with:` only goes with `include:`")
		} else if wm := l.mapping(f, wn, "with", nil); wm != nil {
			for _, k := range wm.keys {
				s.Include.With[k] = l.value(f, wm.vals[k], "with."+k)
				s.Include.withKeys = append(s.Include.withKeys, k)
			}
		}
	}
	if s.Type != "group" {
		for _, k := range []string{"for_each", "as", "parallel"} {
			if kn, ok := m.knodes[k]; ok {
				l.errorf(posOf(f, kn), "`%s:` only goes with `steps:` (a group)", k)
			}
		}
	}
	if s.Type == "group" && s.ForEach == nil {
		for _, k := range []string{"as", "parallel"} {
			if kn, ok := m.knodes[k]; ok {
				l.errorf(posOf(f, kn), "`%s:` needs `for_each:`", k)
			}
		}
	}
	if s.Type == "group" || s.Type == "include" {
		for _, k := range []string{"undo", "resume"} {
			if kn, ok := m.knodes[k]; ok && !(k == "resume" && s.Type == "group" && s.Resume != nil && s.Resume.Mode == "restart") {
				l.errorf(posOf(f, kn), "`%s:` goes with a typed step (sql, ssh, …), not with a group or an include (a group takes only `resume: restart`)", k)
			}
		}
	} else if s.Resume != nil && s.Resume.Mode == "restart" {
		l.errorf(s.Resume.Pos, "`resume: restart` goes with a group (it starts the group over); a typed step takes rerun, ask or {check, done}")
	}
	if s.Until != nil && s.Retries == 0 && s.Timeout == 0 {
		l.errorf(s.Until.posIn(f), "`until:` needs a bound: add `retries:` or `timeout:`")
	}
	if s.Include != nil && s.Include.Path != "" {
		path := s.Include.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(pb.File), path)
		}
		load := l.load
		if s.Include.Extend != nil {
			load = func(path string, from Pos) *Playbook { return l.extendInclude(s, path, from) }
		}
		if inc := load(path, posOf(f, m.vals["include"])); inc != nil {
			s.Include.Playbook = inc
			pb.Includes[inc.Abs] = inc
		} else {
			return nil
		}
	}
	if s.Name == "" {
		switch {
		case s.ID != "":
			s.Name = s.ID
		default:
			s.Name = s.Type
		}
	}
	return s
}

func (e *Expr) posIn(file string) Pos { return posOf(file, e.node) }

// parseResume reads a step's `resume:`: rerun, ask, or {check: STEP, done: EXPR}.
func (l *loader) parseResume(pb *Playbook, n *yaml.Node) *ResumeSpec {
	f := pb.File
	d := deref(n)
	rs := &ResumeSpec{Pos: posOf(f, d)}
	if d != nil && d.Kind == yaml.ScalarNode {
		switch d.Value {
		case "rerun", "ask", "restart":
			rs.Mode = d.Value
			return rs
		}
		l.errorf(rs.Pos, "resume: %q is not one of rerun, ask, restart (a group), or a mapping {check: <read-only step>, done: <expression>}", d.Value)
		return nil
	}
	m := l.mapping(f, d, "resume", []string{"check", "done"})
	if m == nil {
		return nil
	}
	rs.Mode = "check"
	if cn, ok := m.vals["check"]; ok {
		rs.Check = l.parseStep(pb, cn, "resume.check")
	}
	if dn, ok := m.vals["done"]; ok {
		rs.Done = l.expr(f, dn, "resume.done")
	}
	if rs.Check == nil || rs.Done == nil {
		l.errorf(rs.Pos, "resume: needs both `check:` (a read-only step) and `done:` (an expression on its output `result`)")
		return nil
	}
	if rs.Check.Spec == nil || rs.Check.Type == "group" || rs.Check.Type == "include" {
		l.errorf(rs.Check.Pos, "resume.check: must be one typed read-only step (sql query, ssh with changes: false, …)")
		return nil
	}
	if rs.Check.Spec.Mutates() {
		l.errorf(rs.Check.Pos, "resume.check: must be read-only: it runs before flow knows whether to change anything")
		return nil
	}
	return rs
}

func (l *loader) parseGuards(f string, n *yaml.Node, what string) []*Guard {
	d := deref(n)
	items := []*yaml.Node{d}
	if d != nil && d.Kind == yaml.SequenceNode {
		items = d.Content
	}
	var out []*Guard
	for _, it := range items {
		it = deref(it)
		if it != nil && it.Kind == yaml.MappingNode {
			m := l.mapping(f, it, what, []string{"that", "message"})
			if m == nil {
				continue
			}
			g := &Guard{}
			if v, ok := m.vals["that"]; ok {
				g.That = l.expr(f, v, what+".that")
			} else {
				l.errorf(posOf(f, it), "%s: a guard needs `that:` (the expression that must hold)", what)
				continue
			}
			if v, ok := m.vals["message"]; ok {
				g.Message = l.text(f, v, what+".message")
			}
			out = append(out, g)
			continue
		}
		if e := l.expr(f, it, what); e != nil {
			out = append(out, &Guard{That: e})
		}
	}
	return out
}

// decodeSpec decodes a step type's mapping strictly into a fresh spec.
func (l *loader) decodeSpec(pb *Playbook, typ string, kn, n *yaml.Node) StepSpec {
	f := pb.File
	t, ok := LookupType(typ)
	if !ok {
		l.errorf(posOf(f, kn), "unknown step type %q%s", typ, suggest(typ, typeNames()))
		return nil
	}
	spec := t.New()
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode {
		l.errorf(posOf(f, n), "`%s:` must be a mapping of its fields, not %s", typ, kindName(d))
		return nil
	}
	if _, custom := spec.(yaml.Unmarshaler); custom {
		if err := d.Decode(spec); err != nil {
			l.specError(f, typ, d, err)
			return nil
		}
		return spec
	}
	if reflect.TypeOf(spec).Elem().Kind() == reflect.Map {
		m := l.mapping(f, d, typ, nil)
		if m == nil {
			return nil
		}
		for _, k := range m.keys {
			if !nameRE.MatchString(k) {
				l.errorf(posOf(f, m.knodes[k]), "%s: %q is not a valid variable name (%s)", typ, k, nameRE)
				return nil
			}
		}
		if err := d.Decode(spec); err != nil {
			l.specError(f, typ, d, err)
			return nil
		}
		return spec
	}
	fields := structFields(reflect.TypeOf(spec).Elem())
	byName := make(map[string]yamlField, len(fields))
	names := make([]string, 0, len(fields))
	for _, fd := range fields {
		if _, dup := byName[fd.Name]; !dup {
			byName[fd.Name] = fd
		}
		names = append(names, fd.Name)
	}
	m := l.mapping(f, d, typ, names)
	if m == nil {
		return nil
	}
	l.fieldKeyHints(typ, m)
	before := len(l.diags)
	// decode each key separately so errors carry their own positions
	rv := reflect.ValueOf(spec).Elem()
	for _, k := range m.keys {
		fd, ok := byName[k]
		if !ok {
			continue
		}
		fv := fd.in(rv)
		if err := m.vals[k].Decode(fv.Addr().Interface()); err != nil {
			l.specError(f, typ+"."+k, m.vals[k], err)
		}
	}
	if len(l.diags) > before {
		return nil
	}
	return spec
}

func (l *loader) specError(f, what string, n *yaml.Node, err error) {
	defer l.braceHint(len(l.diags), f, n)
	var pe *posError
	if errors.As(err, &pe) {
		l.errorf(posOf(f, pe.n), "%s: %s", what, pe.msg)
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			msg := yamlLineRE.ReplaceAllString(e, "")
			msg = strings.TrimLeft(msg, ": ")
			l.errorf(posOf(f, n), "%s: %s", what, msg)
		}
		return
	}
	l.errorf(posOf(f, n), "%s: %v", what, err)
}
