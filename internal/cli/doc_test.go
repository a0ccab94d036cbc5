package cli

import (
	"go/parser"
	"go/token"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPackageDocListsEveryCommand: the package doc names every command and
// lab subcommand the root command has (cobra's completion included), so a
// newcomer reading it finds them all.
func TestPackageDocListsEveryCommand(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "cli.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	root := newRoot(&streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(sub.Name()) + `\b`).MatchString(doc) {
				t.Errorf("the package doc does not name the command %q", sub.CommandPath())
			}
			if sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(root)
}
