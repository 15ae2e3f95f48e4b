package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand("ps", newPsCmd) }

func newPsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ps",
		Short: "List sandboxes (running and ended) in the state directory",
		Long: `ps lists the sandboxes of the state directory: ID, sentry PID, status,
program, creation time and the image it was restored from. A sandbox whose
sentry vanished without recording an end is marked dead; one that a save is
writing out (and may hold paused) is marked saving.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := runner.StateDir{Root: g.stateDir}.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPID\tSTATUS\tPROGRAM\tCREATED\tRESTORED FROM")
			for _, m := range list {
				restored := m.RestoredFrom
				if restored == "" {
					restored = "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, psPID(m), psStatus(m), m.Program,
					m.Created.Local().Format(time.DateTime), restored)
			}
			return w.Flush()
		},
	}
}

func psPID(m *runner.Metadata) string {
	if runner.Ended(m.Status) || m.PID == 0 {
		return "-"
	}
	return strconv.Itoa(m.PID)
}

func psStatus(m *runner.Metadata) string {
	switch {
	case m.Status == runner.StatusExited && m.Exit != nil && m.Exit.Signal != 0:
		return fmt.Sprintf("killed(%d)", m.Exit.Signal)
	case m.Status == runner.StatusExited && m.Exit != nil:
		return fmt.Sprintf("exited(%d)", m.Exit.Code)
	case m.Status == runner.StatusRunning && m.Saving != "":
		return "saving" // possibly paused, for at most the save's --timeout
	}
	return m.Status
}
