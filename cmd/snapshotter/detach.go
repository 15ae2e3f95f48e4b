package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { runFlagHooks = append(runFlagHooks, addDetachFlags) }

// detachFlags are the flags of a detached sandbox (run -d, restore -d).
type detachFlags struct {
	detach                bool
	id                    string
	stdin, stdout, stderr string
}

func (d *detachFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&d.detach, "detach", "d", false, "run in the background; print the sandbox ID")
	cmd.Flags().StringVar(&d.id, "id", "", "sandbox ID (with -d; default: random)")
	cmd.Flags().StringVar(&d.stdin, "stdin", "", "file for the program's stdin (with -d; default /dev/null)")
	cmd.Flags().StringVar(&d.stdout, "stdout", "", "file the program's stdout is appended to (with -d; default /dev/null)")
	cmd.Flags().StringVar(&d.stderr, "stderr", "", "file the program's stderr is appended to (with -d; default /dev/null)")
}

// check rejects detached-only flags without -d.
func (d *detachFlags) check() error {
	if !d.detach && (d.id != "" || d.stdin != "" || d.stdout != "" || d.stderr != "") {
		return errors.New("--id, --stdin, --stdout and --stderr need -d")
	}
	return nil
}

// addDetachFlags extends snap run with -d (runFlagHooks in run.go).
func addDetachFlags(cmd *cobra.Command, g *globalFlags, f *runFlags, s *startFlags) func(args []string) (bool, error) {
	d := &detachFlags{}
	d.register(cmd)
	return func(argv []string) (bool, error) {
		if err := d.check(); err != nil {
			return true, err
		}
		if !d.detach {
			return false, nil
		}
		// Refuse a bad --env or limit before anything is reserved.
		if _, err := runner.StartEnv(nil, true, s.env); err != nil {
			return true, err
		}
		if _, err := f.limits(cmd); err != nil {
			return true, err
		}
		if _, err := f.net.mappings(cmd); err != nil {
			return true, err
		}
		sentryArgs := append([]string{"--rootfs", f.rootfs, "--platform", f.platform}, limitArgs(cmd, f)...)
		if f.debug {
			sentryArgs = append(sentryArgs, "--debug")
		}
		// The sentry starts in this process's working directory and
		// environment, and gets the start flags as given.
		if s.cwd != "" {
			sentryArgs = append(sentryArgs, "--cwd", s.cwd)
		}
		for _, kv := range s.env {
			sentryArgs = append(sentryArgs, "--env", kv)
		}
		if s.clearEnv {
			sentryArgs = append(sentryArgs, "--clear-env")
		}
		sentryArgs = append(append(sentryArgs, "--"), argv...)
		m, err := runner.Launch(runner.LaunchOptions{
			StateDir: runner.StateDir{Root: g.stateDir},
			ID:       d.id,
			Stdin:    d.stdin, Stdout: d.stdout, Stderr: d.stderr,
			Program: argv[0], Argv: argv,
			SentryArgs: sentryArgs,
		})
		if err != nil {
			return true, err
		}
		fmt.Fprintln(cmd.OutOrStdout(), m.ID)
		return true, nil
	}
}
