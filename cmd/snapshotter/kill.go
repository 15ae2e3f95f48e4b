package main

import (
	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand("kill", newKillCmd) }

func newKillCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kill ID [SIGNAL]",
		Short: "Send a signal (default TERM) to a sandbox's init process",
		Long: `kill sends SIGNAL to the init process of sandbox ID, through the sandbox's
kernel. SIGNAL is a number (9), a name (KILL, SIGKILL) or RTMIN+N; the
default is TERM.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := 15
			if len(args) == 2 {
				var err error
				if sig, err = runner.ParseSignal(args[1]); err != nil {
					return err
				}
			}
			return runner.Kill(cmd.Context(), runner.StateDir{Root: g.stateDir}, args[0], sig)
		},
	}
}
