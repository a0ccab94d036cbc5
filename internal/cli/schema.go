package cli

import (
	"github.com/flowdba/flow/engine"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newSchemaCmd) }

// newSchemaCmd is `flow schema`: the playbook JSON Schema, generated from
// the registered step types, for editors and validators.
func newSchemaCmd(st *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema (draft 2020-12) of playbook files, for editors",
		Long: `Print the JSON Schema (draft 2020-12) of playbook files, generated from the step
types this binary knows. Editors that run the YAML language server (VS Code's YAML
extension, Neovim, …) validate and complete a playbook whose first line names it:

  # yaml-language-server: $schema=../schema/playbook.schema.json

The repository keeps the output as schema/playbook.schema.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := engine.Schema()
			if err != nil {
				return err
			}
			_, err = st.out.Write(b)
			return err
		},
	}
}
