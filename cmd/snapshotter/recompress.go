package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"snapshotter/storage"
)

func init() { registerCommand("recompress", newRecompressCmd) }

func newRecompressCmd(g *globalFlags) *cobra.Command {
	var level int
	cmd := &cobra.Command{
		Use:   "recompress URI [--level N]",
		Short: "Rewrite an image's memory as zstd with entropy coding, in place",
		Long: `recompress rewrites image URI with its memory chunks in zstd at --level
(default 1) with Huffman-coded literals: the smallest images this snap writes
quickly, at several times the CPU of a save's S2. State, metadata and memory
are unchanged; the new image replaces the old one atomically, and only if the
image was not saved again meanwhile. The old chunks stay in the store until
snap prune. Images with a parent or a signature are refused. snap save
--recompress runs it in the background after the save.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := storage.ParseCodec(storage.CodecZstd, level); err != nil {
				return fmt.Errorf("recompress %s: %w", args[0], err)
			}
			m, err := storage.Recompress(cmd.Context(), args[0], g.store, storage.RecompressOptions{Level: level})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bytes of memory in %d bytes\n", args[0], m.MemorySize, m.StoredSize())
			return nil
		},
	}
	cmd.Flags().IntVar(&level, "level", 0, "zstd level, 1-22 (0: 1)")
	return cmd
}

// spawnRecompress starts `snap recompress uri` in its own session, with
// its standard streams on /dev/null (it outlives the save, and its outcome
// shows in the image: snap inspect). It is a bare fork and exec, not
// os/exec, which forks once more to probe for pidfd support: the save
// answers only once this returns.
func spawnRecompress(g *globalFlags, uri string) error {
	argv := []string{"/proc/self/exe", "--state-dir", g.stateDir}
	if g.store != "" {
		argv = append(argv, "--store", g.store)
	}
	argv = append(argv, "recompress", uri)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("start recompression of %s: %w", uri, err)
	}
	defer null.Close()
	fd := null.Fd()
	_, err = syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fmt.Errorf("start recompression of %s: %w", uri, err)
	}
	return nil
}
