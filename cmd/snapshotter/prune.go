package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
	"snapshotter/storage"
)

func init() { registerCommand("prune", newPruneCmd) }

// defaultPruneAge is how old a leftover must be for snap prune to remove
// it by default: far longer than any save takes.
const defaultPruneAge = time.Hour

func newPruneCmd(g *globalFlags) *cobra.Command {
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "prune [--older-than D]",
		Short: "Remove what killed or failed saves and deleted images left in a store (--store)",
		Long: `prune removes, from the --store store, what saves that never finished left
behind: staging directories of a file store, incomplete multipart uploads and
blobs no manifest names in an S3 store; and memory chunks that no image
references any more (their images were deleted, or their save failed). Only
leftovers older than --older-than (default 1h) are removed, so that a save in
progress is not disturbed; a published image and its chunks are never
touched. It also removes, from the state directory, the copies of images'
memory that restores keep (snap restore) and have not used for
--older-than. Each removed item's URI or path is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan < 0 {
				return fmt.Errorf("prune: --older-than %v is negative: %w", olderThan, storage.ErrInvalidArgument)
			}
			cached, err := runner.StateDir{Root: g.stateDir}.RestoreCache(0).Prune(olderThan)
			for _, p := range cached {
				fmt.Fprintln(cmd.OutOrStdout(), "removed", p)
			}
			if err != nil {
				return err
			}
			s, err := storage.Open(cmd.Context(), g.store)
			if err != nil {
				return err
			}
			removed, err := s.Prune(cmd.Context(), olderThan)
			for _, r := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), "removed", r)
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", defaultPruneAge, "remove only leftovers older than this")
	return cmd
}
