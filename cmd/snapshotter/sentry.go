package main

import (
	"log"
	"os"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { subcommands = append(subcommands, newSentryCmd) }

// newSentryCmd is the hidden command a detached sandbox runs as:
// `snap sentry --state-dir D --id ID --ready-fd 3 [run flags] -- PROG ARGS`
// (started by runner.Launch; see docs/CONTROL_PROTOCOL.md).
func newSentryCmd(g *globalFlags) *cobra.Command {
	var (
		id, readyFD string
		f           runFlags
	)
	cmd := &cobra.Command{
		Use:    runner.SentryCommand + " --id ID [flags] -- PROG [ARG...]",
		Short:  "Run a detached sandbox's sentry (internal; started by run -d and restore -d)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fd, err := runner.ParseReadyFD(readyFD)
			if err != nil {
				return err
			}
			sd := runner.StateDir{Root: g.stateDir}
			st, err := runner.RunSentry(runner.SentryOptions{StateDir: sd, ID: id, ReadyFD: fd},
				func(m *runner.Metadata) (runner.Sandbox, error) {
					return runner.StartKernel(runner.KernelOptions{
						Platform: f.platform, Rootfs: f.rootfs, Debug: f.debug, Log: log.Writer(),
						Argv: args, Env: os.Environ(), ID: id,
					})
				})
			if err != nil {
				return err
			}
			if code := st.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&id, "id", "", "sandbox ID (its directory is reserved by the launcher)")
	cmd.Flags().StringVar(&readyFD, "ready-fd", "", "descriptor of the launcher's readiness pipe")
	addRunFlags(cmd, &f)
	return cmd
}
