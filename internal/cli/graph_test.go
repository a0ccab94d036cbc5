package cli

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
)

// ensureDot returns Graphviz's dot, installing Debian's graphviz package
// when it is missing and the test runs as root. It fails when dot cannot
// be had (it skips only under -short: make unit runs no external tools).
func ensureDot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Graphviz's dot: not run by -short (make unit); make test runs it")
	}
	if p, err := exec.LookPath("dot"); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Fatal("Graphviz's dot is missing: install it (apt-get install graphviz) as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	lock := "-oDPkg::Lock::Timeout=300" // another install may hold dpkg's lock
	for _, args := range [][]string{
		{"apt-get", lock, "update", "-qq"},
		{"apt-get", lock, "install", "-y", "-qq", "--no-install-recommends", "graphviz"},
	} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("installing graphviz for the dot rendering test: %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p, err := exec.LookPath("dot")
	if err != nil {
		t.Fatalf("apt-get installed graphviz, but dot is not on PATH: %v", err)
	}
	return p
}

// graphShape is what flow graph should draw for a playbook: one node per
// step that is not a group (an include is one node; an empty group shows
// an "(empty)" node), one cluster per group, in rescue and always too.
type graphShape struct {
	nodes    int
	clusters int
	names    []string // the names of the steps drawn as nodes
}

func shapeOf(steps []*engine.Step, g *graphShape) {
	for _, s := range steps {
		if s.Type == "group" {
			g.clusters++
			if len(s.Steps) == 0 {
				g.nodes++
			}
			shapeOf(s.Steps, g)
		} else {
			g.nodes++
			g.names = append(g.names, strings.ReplaceAll(s.Name, `"`, `'`))
		}
		shapeOf(s.Rescue, g)
		shapeOf(s.Always, g)
	}
}

// svgGroup is a <g> element of Graphviz's SVG output (or the <svg> root).
type svgGroup struct {
	Class  string     `xml:"class,attr"`
	Title  string     `xml:"title"`
	Texts  []string   `xml:"text"`
	Groups []svgGroup `xml:"g"`
}

func (g svgGroup) walk(f func(svgGroup)) {
	f(g)
	for _, c := range g.Groups {
		c.walk(f)
	}
}

// TestGraphDotRenders: `flow graph --format dot` of every shipped playbook
// renders with Graphviz's dot, and the SVG has one node per step (labelled
// with the step's name), one cluster per group and every edge.
func TestGraphDotRenders(t *testing.T) {
	dot := ensureDot(t)
	for _, p := range shippedPlaybooks(t) {
		code, out, errOut := runFlow("graph", "--format", "dot", p)
		if code != 0 {
			t.Fatalf("flow graph --format dot %s: exit %d: %s", p, code, errOut)
		}
		var svg, stderr bytes.Buffer
		cmd := exec.Command(dot, "-Tsvg")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(out), &svg, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("flow graph --format dot %s | dot -Tsvg: %v\n%s\ninput:\n%s", p, err, stderr.String(), out)
		}
		var root svgGroup
		if err := xml.Unmarshal(svg.Bytes(), &root); err != nil {
			t.Fatalf("%s: dot's SVG does not parse: %v", p, err)
		}
		pb, diags := engine.Load(p)
		if pb == nil {
			t.Fatalf("%s: %v", p, diags)
		}
		var want graphShape
		shapeOf(pb.Steps, &want)
		nodes, clusters, edges := 0, 0, 0
		ids := map[string]bool{}
		firstLines := map[string]int{}
		root.walk(func(g svgGroup) {
			switch g.Class {
			case "node":
				nodes++
				ids[g.Title] = true
				if len(g.Texts) > 0 {
					firstLines[g.Texts[0]]++
				}
			case "cluster":
				clusters++
			case "edge":
				edges++
			}
		})
		if nodes != want.nodes || len(ids) != nodes {
			t.Errorf("%s: the SVG has %d nodes (%d distinct), want one per step: %d", p, nodes, len(ids), want.nodes)
		}
		if clusters != want.clusters {
			t.Errorf("%s: the SVG has %d clusters, want one per group: %d", p, clusters, want.clusters)
		}
		for _, n := range want.names {
			if firstLines[n] == 0 {
				t.Errorf("%s: no node of the SVG is labelled %q", p, n)
			}
			firstLines[n]--
		}
		if wantEdges := strings.Count(out, " -> "); edges != wantEdges || (edges == 0 && want.nodes > 1) {
			t.Errorf("%s: the SVG has %d edges, the dot source %d", p, edges, wantEdges)
		}
	}
}

// Mermaid flowchart lines flow graph writes.
var (
	mmNode     = regexp.MustCompile(`^ *(s[0-9]+)(\["[^"]*"\]|\[\["[^"]*"\]\])$`)
	mmSubgraph = regexp.MustCompile(`^ *subgraph (s[0-9]+)\["[^"]*"\]$`)
	mmEnd      = regexp.MustCompile(`^ *end$`)
	mmEdge     = regexp.MustCompile(`^ *(s[0-9]+) (?:-->|-\.->\|[A-Za-z ]+\|) (s[0-9]+)$`)
)

// TestGraphMermaidWellFormed: `flow graph --format mermaid` is a flowchart
// whose every line is a node, a subgraph, its end or an edge; subgraphs
// balance; ids are unique; every edge joins defined nodes; one node per
// step.
func TestGraphMermaidWellFormed(t *testing.T) {
	for _, p := range shippedPlaybooks(t) {
		code, out, errOut := runFlow("graph", "--format", "mermaid", p)
		if code != 0 {
			t.Fatalf("flow graph --format mermaid %s: exit %d: %s", p, code, errOut)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if lines[0] != "flowchart TD" {
			t.Fatalf("%s: the first line is %q, want flowchart TD", p, lines[0])
		}
		defined := map[string]bool{}
		nodes, depth := 0, 0
		type edge struct {
			line     int
			from, to string
		}
		var edges []edge
		for i, l := range lines[1:] {
			var id string
			switch {
			case mmNode.MatchString(l):
				id = mmNode.FindStringSubmatch(l)[1]
				nodes++
			case mmSubgraph.MatchString(l):
				id = mmSubgraph.FindStringSubmatch(l)[1]
				depth++
			case mmEnd.MatchString(l):
				if depth--; depth < 0 {
					t.Errorf("%s:%d: `end` without a subgraph", p, i+2)
				}
			case mmEdge.MatchString(l):
				m := mmEdge.FindStringSubmatch(l)
				edges = append(edges, edge{i + 2, m[1], m[2]})
			default:
				t.Errorf("%s:%d: not a mermaid node, subgraph, end or edge: %q", p, i+2, l)
			}
			if id != "" {
				if defined[id] {
					t.Errorf("%s:%d: id %s defined twice", p, i+2, id)
				}
				defined[id] = true
			}
		}
		if depth != 0 {
			t.Errorf("%s: %d subgraph(s) not closed with end", p, depth)
		}
		for _, e := range edges {
			if !defined[e.from] || !defined[e.to] {
				t.Errorf("%s:%d: the edge %s → %s names an undefined node", p, e.line, e.from, e.to)
			}
		}
		pb, diags := engine.Load(p)
		if pb == nil {
			t.Fatalf("%s: %v", p, diags)
		}
		var want graphShape
		shapeOf(pb.Steps, &want)
		if nodes != want.nodes {
			t.Errorf("%s: %d mermaid nodes, want one per step: %d", p, nodes, want.nodes)
		}
		if len(edges) == 0 && want.nodes > 1 {
			t.Errorf("%s: %d nodes and no edges", p, want.nodes)
		}
	}
}
