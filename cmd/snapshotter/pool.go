package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/cmd/snapshotter/internal/fasttake"
	"snapshotter/kernel"
	"snapshotter/runner"
)

func init() { registerCommand("pool", newPoolCmd) }

func newPoolCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Keep sandboxes of an image restored and waiting, to start them in milliseconds",
		Long: `A pool keeps SIZE sandboxes restored from one image with their program
parked: memory loaded, platform ready, nothing running. pool take hands one
its stdio and resumes it, and a replacement is restored in the background.
There is no daemon: a pool is a directory of the state directory, and its
members are sandboxes like any other (snap ps, save, kill, wait).`,
	}
	cmd.AddCommand(newPoolCreateCmd(g), newPoolTakeCmd(g), newPoolLsCmd(g), newPoolRmCmd(g), newPoolReplenishCmd(g))
	return cmd
}

func newPoolCreateCmd(g *globalFlags) *cobra.Command {
	var (
		f       runFlags
		image   string
		size    int
		verify  string
		private bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME --image URI --size N [--memory SIZE] [--pids N] [--verify KEYFILE] [--private-memory]",
		Short: "Create a pool of N sandboxes restored from an image, waiting to be taken",
		Long: `create restores SIZE members of the image at URI (as snap restore does:
file:///dir/NAME, /dir/NAME, s3://bucket/NAME, or a NAME in the --store store)
and returns once they all wait. --memory and --pids replace the saved limits
of every member, --verify requires the image to be signed by that key.
The members share one copy of the image's memory, each copying a piece of
it when it first writes there; --private-memory gives each its own copy
instead (more memory, faster takes).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := runner.ValidatePoolName(name); err != nil {
				return err
			}
			if image == "" {
				return fmt.Errorf("create pool %s: --image is required", name)
			}
			if size < 1 || size > runner.MaxPoolSize {
				return fmt.Errorf("create pool %s: --size %d, want 1 to %d", name, size, runner.MaxPoolSize)
			}
			if err := checkRestoreMounts(cmd); err != nil {
				return err
			}
			if cmd.Flags().Changed("publish") {
				// Every member of one image would claim the same host
				// ports.
				return fmt.Errorf("create pool %s: -p: pool members publish no ports until taken (snap pool take -p)", name)
			}
			if _, err := f.limits(cmd); err != nil {
				return err
			}
			key, err := readVerifyKey(verify)
			if err != nil {
				return fmt.Errorf("create pool %s: %w", name, err)
			}
			// The image is checked once here, so that a bad URI is one
			// line before anything is made, and recorded by its full URI,
			// which replenishers started elsewhere resolve alike.
			img, err := runner.OpenImage(cmd.Context(), image, g.store, key)
			if err != nil {
				return fmt.Errorf("create pool %s: %w", name, err)
			}
			image = img.URI()
			img.Close()
			sentryArgs, err := restoreSentryArgs(cmd, &f, g, verify)
			if err != nil {
				return fmt.Errorf("create pool %s: %w", name, err)
			}
			if private {
				sentryArgs = append(sentryArgs, "--private-memory")
			}
			return runner.CreatePool(cmd.Context(), runner.PoolOptions{
				StateDir: runner.StateDir{Root: g.stateDir}, Name: name, Image: image, Size: size,
				SentryArgs: sentryArgs,
			})
		},
	}
	addRunFlags(cmd, &f)
	cmd.Flags().StringVar(&image, "image", "", "image URI or name the members are restored from")
	cmd.Flags().IntVar(&size, "size", 0, "how many members wait (1 to 1000)")
	cmd.Flags().StringVar(&verify, "verify", "", "require the image to be signed by this ed25519 public key file (PEM)")
	cmd.Flags().BoolVar(&private, "private-memory", false, "give each member its own copy of the image's memory rather than one shared copy")
	return cmd
}

func newPoolTakeCmd(g *globalFlags) *cobra.Command {
	var (
		detach, wait          bool
		stdin, stdout, stderr string
		publish               []string
	)
	cmd := &cobra.Command{
		Use:   "take NAME [--stdin FILE] [--stdout FILE] [--stderr FILE] [-d] [--wait] [-p [HOSTADDR:]HOSTPORT:PORT]...",
		Short: "Take a waiting sandbox from a pool and resume it",
		Long: `take claims one waiting member of the pool, gives it its stdio and resumes
it; a replacement is restored in the background. In the foreground the
program's stdio is snap's (or the files given) and snap exits with its
status; with -d the sandbox ID is printed and the program runs on in the
background (stdio /dev/null unless given). An empty pool is an error, or
with --wait, waited for. -p publishes a port of the member on the host
when it is taken; a host port in use fails the take and leaves the member
in the pool.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			sd := runner.StateDir{Root: g.stateDir}
			var sigs chan os.Signal
			if !detach {
				// From before the take: a signal that comes while the
				// program starts is passed on to it too.
				sigs = make(chan os.Signal, 4)
				signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
				defer signal.Stop(sigs)
			}
			ms := make([]kernel.PortMapping, 0, len(publish))
			for _, v := range publish {
				m, err := kernel.ParsePortMapping(v)
				if err != nil {
					return fmt.Errorf("-p: %w", err)
				}
				ms = append(ms, m)
			}
			id := fasttake.Taken() // never with -p: fasttake leaves it here
			if id == "" {
				var err error
				if id, err = takeMember(cmd, sd, name, detach, wait, [3]string{stdin, stdout, stderr}, ms); err != nil {
					return err
				}
			}
			if detach {
				fmt.Fprintln(cmd.OutOrStdout(), id)
				return nil
			}
			return waitForeground(cmd, sd, id, sigs)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "print the sandbox ID and return; the program runs on")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for a member if none waits now")
	cmd.Flags().StringVar(&stdin, "stdin", "", "file for the program's stdin (default: snap's, or /dev/null with -d)")
	cmd.Flags().StringVar(&stdout, "stdout", "", "file the program's stdout is appended to (default: snap's, or /dev/null with -d)")
	cmd.Flags().StringVar(&stderr, "stderr", "", "file the program's stderr is appended to (default: snap's, or /dev/null with -d)")
	cmd.Flags().StringArrayVarP(&publish, "publish", "p", nil, "publish the member's TCP port PORT on the host as [HOSTADDR:]HOSTPORT:PORT (HOSTADDR 127.0.0.1 by default; repeatable)")
	return cmd
}

// takeMember opens the stdio files and takes a member of pool name,
// starting a replenisher if the pool is short.
func takeMember(cmd *cobra.Command, sd runner.StateDir, name string, detach, wait bool, paths [3]string, publish []kernel.PortMapping) (string, error) {
	stdio, err := openTakeStdio(paths, detach)
	if err != nil {
		return "", err
	}
	defer func() {
		for _, f := range stdio {
			if f != os.Stdin && f != os.Stdout && f != os.Stderr {
				f.Close()
			}
		}
	}()
	replenish := func() {
		if err := runner.SpawnReplenisher(sd, name, ""); err != nil {
			fmt.Fprintf(os.Stderr, "snap: %v\n", err)
		}
	}
	// A member taken starts the replenisher itself.
	return runner.TakeFromPool(cmd.Context(), sd, name, runner.TakeOptions{
		Stdio: stdio, Wait: wait, Short: replenish, Publish: publish,
	})
}

// openTakeStdio opens the take's stdio: the files given (stdin read,
// stdout and stderr appended to and created if need be), else snap's own
// in the foreground or /dev/null detached.
func openTakeStdio(paths [3]string, detach bool) ([3]*os.File, error) {
	var files [3]*os.File
	for i, p := range paths {
		var err error
		switch {
		case p == "" && !detach:
			files[i] = []*os.File{os.Stdin, os.Stdout, os.Stderr}[i]
			continue
		case p == "":
			p = os.DevNull
		}
		flag := os.O_WRONLY | os.O_CREATE | os.O_APPEND
		if i == 0 {
			flag = os.O_RDONLY
		}
		if files[i], err = os.OpenFile(p, flag, 0o644); err != nil {
			for _, f := range files[:i] {
				if f != os.Stdin && f != os.Stdout && f != os.Stderr {
					f.Close()
				}
			}
			return files, fmt.Errorf("open %s for the sandbox: %w", p, err)
		}
	}
	return files, nil
}

// waitForeground waits for sandbox id's program and returns its status as
// snap's; the signals that come on sigs are passed on to it.
func waitForeground(cmd *cobra.Command, sd runner.StateDir, id string, sigs chan os.Signal) error {
	go func() {
		for s := range sigs {
			runner.Kill(cmd.Context(), sd, id, int(s.(syscall.Signal)))
		}
	}()
	st, err := runner.Wait(cmd.Context(), sd, id)
	if err != nil {
		return err
	}
	if code := st.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func newPoolLsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List pools: image, size, waiting members, and when and why replacing members last failed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pools, err := runner.ListPools(runner.StateDir{Root: g.stateDir})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tIMAGE\tSIZE\tWAITING\tERROR")
			for _, p := range pools {
				// The last replenishment's error, from when it failed
				// until one fills the pool.
				failed := p.Error
				if p.ErrorAt != nil {
					failed = p.ErrorAt.UTC().Format(time.RFC3339) + " " + failed
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", p.Name, p.Image, p.Size, p.Waiting, failed)
			}
			return w.Flush()
		},
	}
}

func newPoolRmCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a pool and end its waiting members (taken ones live on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runner.RemovePool(cmd.Context(), runner.StateDir{Root: g.stateDir}, args[0])
		},
	}
}

// newPoolReplenishCmd is the hidden command a take starts in the
// background: it restores members until the pool is full, and exits.
func newPoolReplenishCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:    "replenish NAME",
		Short:  "Restore members until the pool is full (internal; started by take)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runner.Replenish(cmd.Context(), runner.StateDir{Root: g.stateDir}, args[0], "")
		},
	}
}
