package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowdba/flow/report"
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newReportCmd)
}

func newReportCmd(st *streams) *cobra.Command {
	var dir, out string
	c := &cobra.Command{
		Use:   "report RUN",
		Short: "Write a self-contained HTML report of one run: parameters, steps, statements and a timeline",
		Long: `Write an HTML report of one run from its journal: who ran which playbook where,
its parameters (secrets masked), every step with its target, the statements and
commands it sent, its outcome and duration, and a timeline (an SVG Gantt chart of
the steps, grouped by host and parallel item) that shows where the run spent its
time. The page is one file with nothing to load from elsewhere.
RUN is a run id as 'flow runs' lists it, a unique prefix of one, or "last".
Without --out the page is written to standard output.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := loadRun(dir, args[0])
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				return report.Write(st.out, run)
			}
			var b bytes.Buffer
			if err := report.Write(&b, run); err != nil {
				return err
			}
			if err := writeFileAtomic(out, b.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(st.out, "report of run %s (%s, %s, %d steps) written to %s\n", run.RunID, orDash(run.Name), run.Status, len(run.Steps), out)
			return nil
		},
	}
	stateDirFlag(c, &dir)
	c.Flags().StringVarP(&out, "out", "o", "", "write the report to this file (default: standard output)")
	return c
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, so a reader never sees half a report. The file is the owner's
// alone (0600): a report names hosts, accounts and every statement sent.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, 0o600)
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("writing the report to %s: %v", path, err)
	}
	return nil
}
