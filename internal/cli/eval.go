package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/flowdba/flow/engine"
	"github.com/spf13/cobra"
)

func newEvalCmd(st *streams) *cobra.Command {
	var vars []string
	c := &cobra.Command{
		Use:   "eval EXPR",
		Short: "Evaluate a guard expression (JSON for lists and maps) to try it before putting it in a playbook",
		Example: `  flow eval 'gtid_contains("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:3-5")'
  flow eval --var usage=52 --var limit=45 'usage <= limit'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := map[string]any{}
			for _, kv := range vars {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return engine.Invalid(fmt.Errorf("--var %q: use --var KEY=VALUE", kv))
				}
				var x any
				if err := json.Unmarshal([]byte(v), &x); err != nil {
					x = v
				}
				if f, ok := x.(float64); ok && f == float64(int(f)) {
					x = int(f)
				}
				env[k] = x
			}
			out, err := engine.Eval(args[0], env)
			if err != nil {
				return engine.Invalid(fmt.Errorf("expression: %v", err))
			}
			switch out.(type) {
			case string:
				fmt.Fprintln(st.out, out)
			default:
				b, err := json.Marshal(out)
				if err != nil {
					fmt.Fprintln(st.out, out)
					return nil
				}
				fmt.Fprintln(st.out, string(b))
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&vars, "var", nil, "define a variable: --var KEY=VALUE (VALUE parsed as JSON when it is JSON)")
	return c
}
