package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand("receive", newReceiveCmd) }

func newReceiveCmd(g *globalFlags) *cobra.Command {
	var (
		d         detachFlags
		f         runFlags
		listen    string
		tokenFile string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "receive --listen HOST:PORT [--token-file F] [-d] [--timeout D]",
		Short: "Wait for one sandbox that snap migrate sends, and run it",
		Long: `receive listens on --listen (port 0 picks one; "listening on ADDR" is
written on stderr), takes the first snap migrate that proves it holds the
token in --token-file, restores the sandbox it sends and runs it: in the
foreground (the program's stdio is snap's, snap exits with its status) or,
with -d, detached like restore -d (the sandbox ID is printed once it
runs). --timeout (default 10m) bounds the wait for a source.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.check(); err != nil {
				return err
			}
			if listen == "" {
				return errors.New("receive: --listen HOST:PORT is required")
			}
			token, err := readToken(tokenFile)
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			limits, err := f.limits(cmd)
			if err != nil {
				return err
			}
			if d.detach {
				sentryArgs := append([]string{"--platform", f.platform, "--receive", listen, "--receive-timeout", timeout.String()}, limitArgs(cmd, &f)...)
				if tokenFile != "" {
					abs, err := filepath.Abs(tokenFile)
					if err != nil {
						return fmt.Errorf("receive: --token-file: %w", err)
					}
					sentryArgs = append(sentryArgs, "--token-file", abs)
				}
				if root := restoreRoot(cmd, &f); root != "" {
					sentryArgs = append(sentryArgs, "--rootfs", root)
				}
				if f.debug {
					sentryArgs = append(sentryArgs, "--debug")
				}
				m, err := runner.Launch(runner.LaunchOptions{
					StateDir: runner.StateDir{Root: g.stateDir}, ID: d.id,
					Stdin: d.stdin, Stdout: d.stdout, Stderr: d.stderr,
					RestoredFrom: "tcp://" + listen, SentryArgs: sentryArgs,
					Timeout:   timeout + time.Minute,
					Listening: func(addr string) { fmt.Fprintf(os.Stderr, "listening on %s\n", addr) },
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), m.ID)
				return nil
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
			ctx := cmd.Context()
			sb, _, err := receive(ctx, ln, token, timeout, runner.KernelOptions{
				Platform: f.platform, Rootfs: restoreRoot(cmd, &f), Debug: f.debug, Log: log.Writer(), Version: version,
				Limits: limits,
			}, nil)
			if err != nil {
				return err
			}
			defer sb.Release()
			if code := sb.Wait().ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	d.register(cmd)
	addRunFlags(cmd, &f)
	cmd.Flags().StringVar(&listen, "listen", "", "address to wait on (HOST:PORT)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the token shared with the source")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for a source")
	return cmd
}
