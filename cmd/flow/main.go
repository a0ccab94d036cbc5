// Command flow runs declarative YAML playbooks of typed steps against MySQL
// clusters behind the DBScale router. See the README for the CLI.
package main

import (
	"os"

	"github.com/flowdba/flow/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
