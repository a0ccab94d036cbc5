package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/flowdba/flow/engine"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newStepsCmd) }

// newStepsCmd is `flow steps`: the step-type reference, printed from the
// registry this binary was built with, so it always matches what the
// loader accepts (the README's table is checked against it).
func newStepsCmd(st *streams) *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "steps",
		Short: "List the step types with their fields and whether they change state (--markdown for docs)",
		Long: `List every step type this binary knows: what it does, whether it changes state
(a dry run executes only the steps that do not), whether re-running it after an
interruption is safe, and its fields with their form and meaning; then the common
keys a step takes besides its type (when, pre, register, …).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := engine.Reference()
			if err != nil {
				return err
			}
			if markdown {
				return writeStepsMarkdown(st.out, ref, engine.CommonKeyDocs())
			}
			return writeStepsText(st.out, ref, engine.CommonKeyDocs())
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the reference as Markdown (a section and a field table per type)")
	return cmd
}

// writeStepsText prints the reference for a terminal.
func writeStepsText(w io.Writer, ref []engine.StepDoc, common []engine.CommonKeyDoc) error {
	var b strings.Builder
	for i, d := range ref {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: %s\n", d.Name, d.Summary)
		fmt.Fprintf(&b, "  changes state: %s; safe to re-run: %s\n", d.Changes, word(d.Idempotent))
		if d.FreeForm != "" {
			fmt.Fprintf(&b, "  fields: a %s\n", d.FreeForm)
		}
		width := 0
		for _, f := range d.Fields {
			width = max(width, len(f.Name))
		}
		for _, f := range d.Fields {
			req := ""
			if f.Required {
				req = ", required"
			}
			fmt.Fprintf(&b, "  %-*s  (%s%s) %s\n", width, f.Name, f.Kind, req, f.Doc)
		}
	}
	b.WriteString("\ncommon keys, on any step besides its type:\n")
	width := 0
	for _, k := range common {
		width = max(width, len(k.Name))
	}
	for _, k := range common {
		where := ""
		if k.Only != "" {
			where = ", " + k.Only + " only"
		}
		fmt.Fprintf(&b, "  %-*s  (%s%s) %s\n", width, k.Name, k.Kind, where, k.Doc)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeStepsMarkdown prints the reference as Markdown: a table of the
// types, a section per type with its fields, then the common keys.
func writeStepsMarkdown(w io.Writer, ref []engine.StepDoc, common []engine.CommonKeyDoc) error {
	var b strings.Builder
	b.WriteString("| type | changes state | safe to re-run | what it does |\n|---|---|---|---|\n")
	for _, d := range ref {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Name, mdCell(d.Changes), word(d.Idempotent), mdCell(d.Summary))
	}
	for _, d := range ref {
		fmt.Fprintf(&b, "\n### `%s`\n\n%s.\n\nChanges state: %s.\n", d.Name, mdCell(d.Summary), mdCell(d.Changes))
		if d.FreeForm != "" {
			fmt.Fprintf(&b, "\nFields: a %s.\n", mdCell(d.FreeForm))
		}
		if len(d.Fields) == 0 {
			continue
		}
		b.WriteString("\n| field | form | required | meaning |\n|---|---|---|---|\n")
		for _, f := range d.Fields {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, mdCell(f.Kind), word(f.Required), mdCell(f.Doc))
		}
	}
	b.WriteString("\n### Common keys\n\n| key | form | on | meaning |\n|---|---|---|---|\n")
	for _, k := range common {
		on := "every step"
		if k.Only != "" {
			on = k.Only + " only"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Name, mdCell(k.Kind), on, mdCell(k.Doc))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdCell makes text safe inside a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// word is "yes" or "no".
func word(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
