package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/flowdba/flow/engine"
	"github.com/spf13/cobra"
)

func newGraphCmd(st *streams) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "graph PLAYBOOK",
		Short: "Print the playbook's steps as a graph (Graphviz dot or Mermaid)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pb, err := loadPlaybook(st, args[0])
			if err != nil {
				return err
			}
			switch format {
			case "dot":
				writeDot(st.out, pb)
			case "mermaid":
				writeMermaid(st.out, pb)
			default:
				return engine.Invalid(fmt.Errorf("--format %q: use dot or mermaid", format))
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "dot", "dot or mermaid")
	return c
}

// graphNode is a step laid out for a graph.
type graphNode struct {
	id    string
	label string
	shape string
}

type grapher struct {
	n     int
	lines []string
	edges []string
	dot   bool
}

func (g *grapher) next() string { g.n++; return fmt.Sprintf("s%d", g.n) }

func label(s *engine.Step) string {
	l := s.Name
	if s.Type == "include" {
		l += "\\n(include " + s.Include.Path + ")"
	} else if s.Type != "group" {
		l += "\\n[" + s.Type + "]"
	}
	if s.When != nil {
		l += "\\nwhen: " + s.When.Src
	}
	return strings.ReplaceAll(l, `"`, `'`)
}

// seq lays out a list of steps; it returns the first and last node ids.
func (g *grapher) seq(steps []*engine.Step, indent string) (string, string) {
	first, prev := "", ""
	for _, s := range steps {
		in, out := g.step(s, indent)
		if first == "" {
			first = in
		}
		if prev != "" {
			g.edge(prev, out2in(prev), in, "")
		}
		prev = out
	}
	return first, prev
}

func out2in(s string) string { return s }

func (g *grapher) edge(from, _ string, to, style string) {
	if g.dot {
		attr := ""
		if style != "" {
			attr = fmt.Sprintf(` [style=dashed, label="%s"]`, style)
		}
		g.edges = append(g.edges, fmt.Sprintf("  %s -> %s%s;", from, to, attr))
		return
	}
	if style != "" {
		g.edges = append(g.edges, fmt.Sprintf("  %s -.->|%s| %s", from, style, to))
		return
	}
	g.edges = append(g.edges, fmt.Sprintf("  %s --> %s", from, to))
}

func (g *grapher) step(s *engine.Step, indent string) (string, string) {
	var in, out string
	if s.Type == "group" {
		id := g.next()
		title := s.Name
		if s.ForEach != nil {
			title += fmt.Sprintf(" (for each %s, parallel %d)", s.ForEach.Src, max(1, s.Parallel))
		}
		title = strings.ReplaceAll(title, `"`, `'`)
		if g.dot {
			g.lines = append(g.lines, fmt.Sprintf("%ssubgraph cluster_%s {", indent, id), fmt.Sprintf(`%s  label="%s";`, indent, title))
		} else {
			g.lines = append(g.lines, fmt.Sprintf(`%ssubgraph %s["%s"]`, indent, id, title))
		}
		in, out = g.seq(s.Steps, indent+"  ")
		if in == "" {
			in = g.node(indent+"  ", "(empty)", "")
			out = in
		}
		if g.dot {
			g.lines = append(g.lines, indent+"}")
		} else {
			g.lines = append(g.lines, indent+"end")
		}
	} else {
		shape := "box"
		if s.Mutates() {
			shape = "box3d"
		}
		in = g.node(indent, label(s), shape)
		out = in
	}
	if len(s.Rescue) > 0 {
		rin, _ := g.seq(s.Rescue, indent)
		if rin != "" {
			g.edge(out, "", rin, "rescue")
		}
	}
	if len(s.Always) > 0 {
		ain, _ := g.seq(s.Always, indent)
		if ain != "" {
			g.edge(out, "", ain, "always")
		}
	}
	return in, out
}

func (g *grapher) node(indent, label, shape string) string {
	id := g.next()
	if g.dot {
		g.lines = append(g.lines, fmt.Sprintf(`%s%s [label="%s", shape=%s];`, indent, id, label, orDefault(shape, "box")))
	} else {
		l := strings.ReplaceAll(label, `\n`, "<br/>")
		if shape == "box3d" {
			g.lines = append(g.lines, fmt.Sprintf(`%s%s[["%s"]]`, indent, id, l))
		} else {
			g.lines = append(g.lines, fmt.Sprintf(`%s%s["%s"]`, indent, id, l))
		}
	}
	return id
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func writeDot(w io.Writer, pb *engine.Playbook) {
	g := &grapher{dot: true}
	g.seq(pb.Steps, "  ")
	fmt.Fprintf(w, "digraph %q {\n  rankdir=TB;\n  node [fontsize=11];\n", pb.Name)
	for _, l := range g.lines {
		fmt.Fprintln(w, l)
	}
	for _, e := range g.edges {
		fmt.Fprintln(w, e)
	}
	fmt.Fprintln(w, "}")
}

func writeMermaid(w io.Writer, pb *engine.Playbook) {
	g := &grapher{}
	g.seq(pb.Steps, "  ")
	fmt.Fprintln(w, "flowchart TD")
	for _, l := range g.lines {
		fmt.Fprintln(w, l)
	}
	for _, e := range g.edges {
		fmt.Fprintln(w, e)
	}
}
