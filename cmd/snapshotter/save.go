package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"snapshotter/runner"
	"snapshotter/storage"
)

func init() { registerCommand("save", newSaveCmd) }

func newSaveCmd(g *globalFlags) *cobra.Command {
	var (
		to           string
		leaveRunning bool
		compression  string
		level        int
		signKey      string
		timeout      time.Duration
		parent       string
		track        bool
		recompress   bool
	)
	cmd := &cobra.Command{
		Use:   "save ID [--to URI] [--parent URI] [--leave-running [--track]] [--compression s2|zstd] [--level N] [--sign KEYFILE] [--timeout D] [--recompress]",
		Short: "Checkpoint a running sandbox to an image; print its URI",
		Long: `save freezes sandbox ID, writes its kernel state and memory to an image and
prints the image URI on the last line. --to is a URI (file:///dir/NAME,
/dir/NAME, s3://bucket/prefix/NAME) or a bare NAME in the --store store; the
default is ID-DATE in the --store store. Without --leave-running the sandbox
stops once the image is committed. A failed save leaves the sandbox running.
--compression picks the memory codec: s2 (the default; --level 1 fast,
2 better (default), 3 best) or zstd (--level 1 (default) to 22).
--sign KEYFILE signs the image with an ed25519 private key (PEM, PKCS #8, as
made by snap keygen or openssl genpkey -algorithm ed25519), for
restore --verify. --timeout D (default 60s) bounds the whole save: past it
the save is abandoned, nothing is published and the sandbox runs on.
--parent URI names an earlier save of this same sandbox in the same store:
the image records it (snap inspect shows what the two share), and, as in
every save, memory chunks the store already holds are not stored again, so
a save after a first one stores only what changed. The image is complete
on its own: restoring it does not read the parent. A --leave-running save
with --track (or with --parent) keeps recording the pages the sandbox
writes, so that the next save with --parent naming it reads and stores
only those; otherwise recording stops once the save has read the memory,
and such a next save reads all of it (it says so on stderr).
--recompress starts snap recompress on the image once it is saved, in the
background: the save is as fast as its codec (S2), and the image becomes
zstd with entropy coding, smaller, a few seconds later (not with --sign,
--parent or --track, whose images are not rewritten).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked here too, so that a bad value never reaches the sandbox.
			if err := storage.ParseCodec(compression, level); err != nil {
				return fmt.Errorf("save %s: %w", args[0], err)
			}
			if track && !leaveRunning {
				return fmt.Errorf("save %s: --track needs --leave-running (the sandbox stops otherwise): %w", args[0], storage.ErrInvalidArgument)
			}
			if recompress && (signKey != "" || parent != "" || track) {
				return fmt.Errorf("save %s: --recompress with --sign, --parent or --track: those images are not rewritten: %w", args[0], storage.ErrInvalidArgument)
			}
			if timeout <= 0 {
				return fmt.Errorf("save %s: --timeout %v is not positive: %w", args[0], timeout, storage.ErrInvalidArgument)
			}
			var key []byte
			if signKey != "" {
				k, err := storage.ReadPrivateKey(signKey)
				if err != nil {
					return fmt.Errorf("save %s: --sign: %w", args[0], err)
				}
				key = k
			}
			bar := newProgressBar(os.Stderr)
			uri, err := runner.Save(cmd.Context(), runner.StateDir{Root: g.stateDir}, args[0],
				runner.SaveRequest{To: to, Store: g.store, LeaveRunning: leaveRunning, Compression: compression, Level: level, SignKey: key, Timeout: timeout, Parent: parent, Track: track}, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), uri)
			if recompress {
				return spawnRecompress(g, uri)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "image URI or name (default: ID-DATE in the --store store)")
	cmd.Flags().BoolVar(&leaveRunning, "leave-running", false, "keep the sandbox running after the save")
	cmd.Flags().StringVar(&compression, "compression", storage.DefaultCodec, "memory codec: s2 or zstd")
	cmd.Flags().IntVar(&level, "level", 0, "codec level (0: the codec's default; s2 1-3, zstd 1-22)")
	cmd.Flags().StringVar(&signKey, "sign", "", "sign the image with this ed25519 private key file (PEM)")
	cmd.Flags().StringVar(&parent, "parent", "", "an earlier image of this sandbox, in the same store, to save against")
	cmd.Flags().BoolVar(&track, "track", false, "with --leave-running: keep recording written pages, so that a save with --parent naming this image stores only them")
	cmd.Flags().BoolVar(&recompress, "recompress", false, "rewrite the image as zstd with entropy coding in the background once saved (snap recompress)")
	cmd.Flags().DurationVar(&timeout, "timeout", runner.DefaultSaveTimeout, "abandon the save (the sandbox runs on) if it takes longer")
	return cmd
}

// progressBar draws save progress on a terminal; elsewhere it is silent.
type progressBar struct {
	w     io.Writer
	drawn bool
}

func newProgressBar(f *os.File) *progressBar {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return &progressBar{}
	}
	return &progressBar{w: f}
}

func (b *progressBar) update(p runner.Progress) {
	if p.Note != "" {
		b.finish()
		b.drawn = false
		fmt.Fprintf(os.Stderr, "snap: %s\n", p.Note)
		return
	}
	if b.w == nil {
		return
	}
	const width = 30
	line := fmt.Sprintf("%-7s", p.Phase)
	if p.Total > 0 {
		n := int(p.Done * width / p.Total)
		line += fmt.Sprintf(" [%-*s] %6.1f/%.1f MiB", width, string(repeat('#', n)), float64(p.Done)/(1<<20), float64(p.Total)/(1<<20))
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
	b.drawn = true
}

func (b *progressBar) finish() {
	if b.w != nil && b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}

func repeat(c byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = c
	}
	return out
}
