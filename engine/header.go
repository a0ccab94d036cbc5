package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// A header is the parameters and connections several playbooks share
// (the routers, the node account, SSH), written once:
//
//	# playbooks/lib/clusters.yaml
//	params:
//	  target_host: {type: string, required: true, config: target.host}
//	connections:
//	  target: {mysql: {host: "{{ target_host }}", ...}}
//
//	# a playbook
//	use: lib/clusters.yaml
//
// The using playbook gets the header's parameters and connections as its
// own (a name defined twice is an error naming both places). An include of
// a playbook that uses the same header passes those parameters on by
// itself, so a wrapper's with: or a --var reaches every playbook below it.

var headerKeys = []string{"description", "params", "connections"}

// parseUse reads `use:` (one path or a list) and merges each header.
func (l *loader) parseUse(pb *Playbook, n *yaml.Node) {
	f := pb.File
	d := deref(n)
	var items []*yaml.Node
	switch {
	case d != nil && d.Kind == yaml.ScalarNode:
		items = []*yaml.Node{d}
	case d != nil && d.Kind == yaml.SequenceNode:
		items = d.Content
	default:
		l.errorf(posOf(f, n), "use: is a header file, or a list of them, not %s", kindName(d))
		return
	}
	for _, it := range items {
		path, ok := l.str(f, it, "use")
		if !ok {
			continue
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(pb.File), path)
		}
		l.useHeader(pb, path, posOf(f, it))
	}
}

// useHeader parses a header (afresh for every playbook that uses it: its
// connections are compiled in that playbook's scope) and merges it.
func (l *loader) useHeader(pb *Playbook, path string, from Pos) {
	abs, err := absPath(path)
	if err != nil {
		l.errorf(from, "cannot resolve %s: %v", path, err)
		return
	}
	h := l.headers[abs]
	if h == nil {
		data, err := readBounded(path, true)
		if err != nil {
			l.errorf(from, "cannot read header: %v", err)
			return
		}
		h = &parsedHeader{data: data}
		if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&h.root); err != nil {
			l.errorf(yamlErrPos(path, err), "YAML: %s", yamlErrMsg(err))
			return
		}
		l.headers[abs] = h
	}
	data, root := h.data, &h.root
	l.sources[path] = data
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		l.errorf(Pos{File: path, Line: 1, Col: 1}, "empty header: it holds params: and connections:")
		return
	}
	sum := sha256.Sum256(data)
	hdr := &Playbook{File: path, Abs: abs, Hash: hex.EncodeToString(sum[:]), Name: filepath.Base(path),
		Conns: map[string]*Conn{}, Includes: map[string]*Playbook{}, Source: data}
	m := l.mapping(path, root.Content[0], "header", headerKeys)
	if m == nil {
		return
	}
	if n, ok := m.vals["params"]; ok {
		if pm := l.mapping(path, n, "params", nil); pm != nil {
			for _, name := range pm.keys {
				l.parseParam(hdr, name, pm.knodes[name], pm.vals[name])
			}
		}
	}
	if n, ok := m.vals["connections"]; ok {
		if cm := l.mapping(path, n, "connections", nil); cm != nil {
			for _, name := range cm.keys {
				l.parseConn(hdr, name, cm.knodes[name], cm.vals[name])
			}
		}
	}
	for _, p := range hdr.Params {
		if prev := findParam(pb, p.Name); prev != nil {
			l.errorf(prev.Pos, "parameter %q is also defined in %s (line %d), which this playbook uses: drop one", p.Name, baseName(path), p.Pos.Line)
			continue
		}
		p.From = abs
		pb.Params = append(pb.Params, p)
	}
	for _, name := range hdr.connOrder {
		c := hdr.Conns[name]
		if prev, dup := pb.Conns[name]; dup {
			l.errorf(prev.Pos, "connection %q is also defined in %s (line %d), which this playbook uses: drop one", name, baseName(path), c.Pos.Line)
			continue
		}
		c.owner = pb
		pb.Conns[name] = c
		pb.connOrder = append(pb.connOrder, name)
	}
	pb.Includes[abs] = hdr
	pb.uses = append(pb.uses, abs)
}

func findParam(pb *Playbook, name string) *Param {
	for _, p := range pb.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// usesHeader reports whether pb uses the header at abs.
func (pb *Playbook) usesHeader(abs string) bool {
	for _, u := range pb.uses {
		if u == abs {
			return true
		}
	}
	return false
}

// passHeaderParams adds to an include's values the includer's values of
// the parameters both take from the same header (unless with: sets them).
func passHeaderParams(includer, inc *Playbook, sc *scope, with map[string]any) {
	for _, p := range inc.Params {
		if p.From == "" || p.Removed != "" || !includer.usesHeader(p.From) {
			continue
		}
		if _, set := with[p.Name]; set {
			continue
		}
		if v, ok := sc.env().vars[p.Name]; ok {
			with[p.Name] = v
		}
	}
}

// parsedHeader is a header file read and parsed once per Load: every
// playbook of a run uses the same one, and parsing it again for each
// was a tenth of the time loading flashback-start took.
type parsedHeader struct {
	data []byte
	root yaml.Node
}
