package main

import (
	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand("wait", newWaitCmd) }

func newWaitCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a sandbox's program to end; exit with its status",
		Long: `wait blocks until the program of sandbox ID ends and exits with its exit
status (128+N if signal N killed it). If it ended already, the recorded
status is used. A sandbox that was saved and stopped, or whose sentry died,
is an error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := runner.Wait(cmd.Context(), runner.StateDir{Root: g.stateDir}, args[0])
			if err != nil {
				return err
			}
			if code := st.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}
