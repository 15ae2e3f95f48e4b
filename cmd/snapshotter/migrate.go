package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand("migrate", newMigrateCmd) }

func newMigrateCmd(g *globalFlags) *cobra.Command {
	var (
		tokenFile   string
		via         string
		maxDowntime time.Duration
		timeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate ID tcp://HOST:PORT [--token-file F] [--max-downtime D] [--timeout D] | migrate ID --via STORE",
		Short: "Move a running sandbox to a snap receive, pausing it only briefly",
		Long: `migrate copies sandbox ID's memory to the target (snap receive) while it
runs, round after round of what it dirtied, then pauses it, sends the last
dirty pages and its kernel state, and the target resumes it. snap migrate
ends once the target says the sandbox runs there; any failure before the
target is told to run it leaves it running here. A connection lost after
that is followed by asking the target again: the sandbox then runs in one
place only (if the target cannot be asked for 30s, it stays paused here
and a later save or migration of it asks again). Both sides prove they hold the token in
--token-file (it is never sent). --max-downtime (default 50ms) is the pause
aimed at; --timeout (default 10m) bounds the whole migration.
--via STORE (a store URI: file:///dir, s3://bucket/prefix) moves it
through that store instead: a chain of images, each against the previous,
all but the last saved while it runs, the last one stopping it; the last
image's URI is printed for the target's snap restore.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if (via == "") != (len(args) == 2) {
				return fmt.Errorf("migrate %s: give either a tcp://HOST:PORT target or --via STORE", id)
			}
			if via != "" {
				bar := newProgressBar(os.Stderr)
				uri, err := runner.MigrateVia(cmd.Context(), runner.StateDir{Root: g.stateDir}, id, via, timeout, bar.update)
				bar.finish()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), uri)
				return nil
			}
			target := args[1]
			token, err := readToken(tokenFile)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", id, err)
			}
			if maxDowntime < 0 || timeout <= 0 {
				return fmt.Errorf("migrate %s: --max-downtime and --timeout must be positive", id)
			}
			bar := newProgressBar(os.Stderr)
			uri, err := runner.Save(cmd.Context(), runner.StateDir{Root: g.stateDir}, id,
				runner.SaveRequest{Migrate: target, Token: token, MaxDowntime: maxDowntime, Timeout: timeout}, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), uri)
			return nil
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the token shared with the target")
	cmd.Flags().StringVar(&via, "via", "", "move the sandbox through this image store instead (prints the image to restore)")
	cmd.Flags().DurationVar(&maxDowntime, "max-downtime", runner.DefaultMaxDowntime, "pause to aim at")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "abandon the migration (the sandbox runs on here) if it takes longer")
	return cmd
}

// readToken reads a migration token file (surrounding white space is not
// part of the token); "" means no token.
func readToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("--token-file %s is empty", path)
	}
	return b, nil
}
