package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"
)

// version is set at link time by the Makefile (-ldflags -X main.version=...).
var version = "dev"

// exitError carries a process exit status (for example a sandboxed program's)
// out of a command without printing anything.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globalFlags are the flags every command accepts (ARCHITECTURE.md, CLI contract).
type globalFlags struct {
	stateDir string
	store    string
}

// newRootCmd returns the command tree for a command line starting with
// first (snap's first argument). When first names a command (commands)
// the tree holds that command alone: building every command with its
// flags is most of what cobra costs, on the path of every command's start.
// Anything else (a global flag first, help, completion, an unknown
// command) gets the whole tree.
func newRootCmd(first string) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "snap",
		Short: "Run programs in a user-space Linux kernel that can be checkpointed and restored",
		Long: `snap runs unmodified x86-64 Linux programs inside snapshotter, a user-space
kernel (sentry) on the ptrace platform. A running sandbox can be saved to an
image in a local directory or in S3, and restored here or elsewhere, many times.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", envOr("SNAP_STATE_DIR", defaultStateDir()),
		"directory where running sandboxes keep their control socket and metadata (env SNAP_STATE_DIR)")
	root.PersistentFlags().StringVar(&g.store, "store", envOr("SNAP_STORE", ""),
		"image store URI: file:///dir, a bare path or s3://bucket/prefix (env SNAP_STORE; default $XDG_DATA_HOME/snap/images)")
	if add, ok := commands[first]; ok {
		// Without other commands there is nothing to complete; the
		// whole tree has the completion command.
		root.CompletionOptions.DisableDefaultCmd = true
		root.AddCommand(add(g))
		return root
	}
	for _, add := range commands {
		root.AddCommand(add(g))
	}
	return root
}

// commands are snap's commands by name (the first word of each one's
// Use), each registered by the file that defines it (registerCommand), so
// that command files owned by different packages' work do not edit one
// list. Cobra lists them sorted, whatever the map's order.
var commands = map[string]func(*globalFlags) *cobra.Command{
	"version": func(*globalFlags) *cobra.Command { return newVersionCmd() },
}

// registerCommand adds the command name, made by add, to snap; it is
// called from init.
func registerCommand(name string, add func(*globalFlags) *cobra.Command) {
	if _, dup := commands[name]; dup {
		panic("snap: command " + name + " registered twice")
	}
	commands[name] = add
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the snap version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "snap %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
		},
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "snap")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("snap-%d", os.Getuid()))
}
