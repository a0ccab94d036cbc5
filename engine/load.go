package engine

// Loading: reading a playbook file, its top level and connections; Load is the entry point.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var topKeys = []string{"name", "description", "use", "params", "vars", "connections", "steps", "definitions"}

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
	// headers are the `use:` files parsed so far, by absolute path.
	headers map[string]*parsedHeader
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
	l := &loader{loaded: map[string]*Playbook{}, sources: map[string][]byte{}, headers: map[string]*parsedHeader{}}
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
	if n, ok := m.vals["use"]; ok {
		l.parseUse(pb, n)
	}
	n, ok := m.vals["steps"]
	if !ok {
		l.errorf(posOf(f, top), "playbook: missing `steps:`")
		return
	}
	pb.Steps = l.parseSteps(pb, n, "steps")
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
