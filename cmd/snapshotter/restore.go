package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/kernel"
	"snapshotter/runner"
	"snapshotter/storage"
)

func init() { registerCommand("restore", newRestoreCmd) }

func newRestoreCmd(g *globalFlags) *cobra.Command {
	var (
		d       detachFlags
		f       runFlags
		verify  string
		timings bool
		lazy    bool
		noWS    bool
		noCache bool
	)
	cmd := &cobra.Command{
		Use:   "restore URI [-d] [--id ID] [--stdout FILE] [--stderr FILE] [--verify KEYFILE] [--lazy [--no-working-set]]",
		Short: "Bring a saved sandbox back, in the foreground or detached",
		Long: `restore loads the image at URI (file:///dir/NAME, /dir/NAME, s3://bucket/NAME,
or a NAME in the --store store) into a fresh sentry and continues its
program where it was saved. In the foreground the program's stdio is snap's
and snap exits with its status; with -d it runs in the background like
run -d and the sandbox ID is printed. One image can be restored many times,
also at once. --verify KEYFILE (an ed25519 public key, PEM) refuses an image
that is not signed by that key or was altered since, before anything runs.
--timings writes on stderr, once the program has run again, how long each
step of the restore took (a detached sentry always writes them to its sentry.log).
--lazy starts the program before its memory is loaded: a page comes in on
first touch while the rest loads in the background. The first lazy restore
of an image records the chunks the program touched first as the image's
working set; later lazy restores load it before the program starts
(--no-working-set ignores it).
A restore, foreground or -d (not --lazy), keeps a decompressed copy of the image's
memory in the state directory: a later restore of the same image runs over
it, sharing its pages, instead of loading the memory again. The copies take
at most SNAP_RESTORE_CACHE bytes (default 2G; 0 keeps none), the least
recently used going first; snap prune removes those unused for its
--older-than; --no-cache neither uses nor makes one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.check(); err != nil {
				return err
			}
			uri := args[0]
			if err := checkRestoreMounts(cmd); err != nil {
				return err
			}
			if noWS && !lazy {
				return fmt.Errorf("restore %s: --no-working-set is for a lazy restore (--lazy)", uri)
			}
			if timings && d.detach {
				return fmt.Errorf("restore %s: --timings is for a foreground restore; a detached one writes them to its sentry.log", uri)
			}
			limits, err := f.limits(cmd)
			if err != nil {
				return err
			}
			ms, err := f.net.mappings(cmd)
			if err != nil {
				return err
			}
			cache, err := restoreCache(g, noCache || lazy)
			if err != nil {
				return fmt.Errorf("restore %s: %w", uri, err)
			}
			key, err := readVerifyKey(verify)
			if err != nil {
				return fmt.Errorf("restore %s: %w", uri, err)
			}
			if d.detach {
				sentryArgs, err := restoreSentryArgs(cmd, &f, g, verify)
				if err != nil {
					return fmt.Errorf("restore %s: %w", uri, err)
				}
				sentryArgs = append(sentryArgs, "--restore", uri)
				if lazy {
					sentryArgs = append(sentryArgs, "--lazy")
				}
				if noWS {
					sentryArgs = append(sentryArgs, "--no-working-set")
				}
				if noCache {
					sentryArgs = append(sentryArgs, "--no-cache")
				}
				m, err := runner.Launch(runner.LaunchOptions{
					StateDir: runner.StateDir{Root: g.stateDir}, ID: d.id,
					Stdin: d.stdin, Stdout: d.stdout, Stderr: d.stderr,
					RestoredFrom: uri, SentryArgs: sentryArgs,
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), m.ID)
				return nil
			}
			var tm *kernel.Timings
			if timings {
				tm = startTimings(time.Time{})
			}
			sb, _, err := runner.RestoreKernel(cmd.Context(), runner.KernelOptions{
				Platform: f.platform, Rootfs: restoreRoot(cmd, &f), Debug: f.debug, Log: log.Writer(), Version: version,
				Limits:    limits,
				Binds:     f.volumes,
				Publish:   ms,
				Network:   f.net.mode(cmd),
				VerifyKey: key,
				Timings:   tm,
				Lazy:      lazy, NoWorkingSet: noWS,
				Cache: cache,
			}, uri, g.store)
			if err != nil {
				return err
			}
			defer sb.Release()
			printed := make(chan struct{})
			go func() {
				defer close(printed)
				if timings {
					sb.WaitRan()
					for _, l := range runner.TimingLines(tm.Steps()) {
						fmt.Fprintln(os.Stderr, l)
					}
					if st, ok := sb.WaitLoaded(); ok {
						fmt.Fprintln(os.Stderr, runner.LazyLine(st))
					}
				}
			}()
			st := sb.Wait()
			<-printed
			if l, ok := sb.BaseLine(); ok && timings {
				fmt.Fprintln(os.Stderr, l)
			}
			if code := st.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	d.register(cmd)
	addRunFlags(cmd, &f)
	cmd.Flags().StringVar(&verify, "verify", "", "require the image to be signed by this ed25519 public key file (PEM)")
	cmd.Flags().BoolVar(&timings, "timings", false, "write how long each step of the restore took on stderr (foreground only)")
	cmd.Flags().BoolVar(&lazy, "lazy", false, "start the program before its memory is loaded (pages load on first touch and in the background)")
	cmd.Flags().BoolVar(&noWS, "no-working-set", false, "with --lazy: ignore the image's working set")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "load the memory from the image, without the state directory's copy of it (nor making one)")
	return cmd
}

// startTimings returns the timings of a restore with snap's own start
// recorded: from the process's start (started, or if zero the start time
// the host kernel gives) to main, and from main until now. A start time
// that cannot be read leaves its step out.
func startTimings(started time.Time) *kernel.Timings {
	tm := new(kernel.Timings)
	if started.IsZero() {
		started, _ = runner.ProcessStart()
	}
	if !started.IsZero() {
		tm.Add(runner.StepProcessStart, started, mainStart)
	}
	tm.Since(runner.StepCommand, mainStart)
	return tm
}

// restoreCacheEnv bounds the restore cache (runner.RestoreCache): a size
// as --memory takes it, or 0 for none.
const restoreCacheEnv = "SNAP_RESTORE_CACHE"

// restoreCache returns the restore cache of the state directory, bounded
// by $SNAP_RESTORE_CACHE; none if off.
func restoreCache(g *globalFlags, off bool) (runner.RestoreCache, error) {
	v := os.Getenv(restoreCacheEnv)
	if off || v == "0" {
		return runner.RestoreCache{}, nil
	}
	max := uint64(runner.DefaultRestoreCacheMax)
	if v != "" {
		n, err := kernel.ParseMemoryLimit(v)
		if err != nil {
			return runner.RestoreCache{}, fmt.Errorf("%s: %w", restoreCacheEnv, err)
		}
		max = n
	}
	return runner.StateDir{Root: g.stateDir}.RestoreCache(max), nil
}

// readVerifyKey reads --verify's public key file; "" means no check.
func readVerifyKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, nil
	}
	k, err := storage.ReadPublicKey(path)
	if err != nil {
		return nil, fmt.Errorf("--verify: %w", err)
	}
	return k, nil
}

// restoreRoot is --rootfs if given: a restore otherwise reopens the root
// it was saved with.
func restoreRoot(cmd *cobra.Command, f *runFlags) string {
	if cmd.Flags().Changed("rootfs") {
		return f.rootfs
	}
	return ""
}

// checkRestoreMounts refuses the run flags that would change the mounts of
// a restored sandbox, which has those it was saved with (-v remaps a
// volume instead).
func checkRestoreMounts(cmd *cobra.Command) error {
	if cmd.Flags().Changed("tmpfs") {
		return errors.New("--tmpfs: a restored sandbox has the mounts it was saved with")
	}
	if cmd.Flags().Changed("read-only") {
		return errors.New("--read-only: a restored sandbox has the root it was saved with")
	}
	return nil
}

// restoreSentryArgs returns the arguments of a sentry that restores an
// image with the flags of snap restore (or pool create) given: platform,
// limits, volumes and ports, the verify key by its absolute path (the
// sentry reads it again, from its own directory), root, store and debug.
// The caller adds --restore or --pool.
func restoreSentryArgs(cmd *cobra.Command, f *runFlags, g *globalFlags, verify string) ([]string, error) {
	args := append([]string{"--platform", f.platform}, limitArgs(cmd, f)...)
	if verify != "" {
		abs, err := filepath.Abs(verify)
		if err != nil {
			return nil, fmt.Errorf("--verify: %w", err)
		}
		args = append(args, "--verify", abs)
	}
	if root := restoreRoot(cmd, f); root != "" {
		args = append(args, "--rootfs", root)
	}
	if g.store != "" {
		args = append(args, "--store", g.store)
	}
	if f.debug {
		args = append(args, "--debug")
	}
	return args, nil
}
