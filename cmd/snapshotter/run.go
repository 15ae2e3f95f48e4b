package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"snapshotter/kernel"
	"snapshotter/runner"
)

func init() { registerCommand("run", newRunCmd) }

// runFlags are the flags of snap run. Other command files may add flags to
// the same command through runFlagHooks.
type runFlags struct {
	rootfs   string
	debug    bool
	platform string
	// pids and memory are the sandbox limits as given; see limits.
	pids   int
	memory string
	// tmpfs are the --tmpfs mount points.
	tmpfs []string
	// readOnly keeps the root read-only (--read-only).
	readOnly bool
	// volumes are the -v HOST:PATH[:ro] bind mounts.
	volumes []string
	net     networkFlags
	// timings is snap run's --timings (foreground only).
	timings bool
}

// startFlags are the flags of snap run that shape the program's start:
// where it starts and with which environment.
type startFlags struct {
	cwd      string
	env      []string
	clearEnv bool
}

// runFlagHooks lets other files (detached mode) extend snap run: each hook
// registers its flags on cmd and may return a function that takes over the
// command's execution (return nil to leave it to the foreground run).
var runFlagHooks []func(cmd *cobra.Command, g *globalFlags, f *runFlags, s *startFlags) func(args []string) (bool, error)

func newRunCmd(g *globalFlags) *cobra.Command {
	f := &runFlags{}
	s := &startFlags{}
	var takeovers []func(args []string) (bool, error)
	cmd := &cobra.Command{
		Use:   "run [flags] -- PROG [ARG...]",
		Short: "Run a program in a new sandbox in the foreground",
		Long: `run starts PROG in a new sandbox. The program's stdio is snap's own and
snap exits with the program's exit status, or 128+N if signal N killed it.
The root is the host filesystem (or --rootfs DIR) under a writable
overlay whose changes live in the sandbox's memory (the host is never
written; --read-only keeps the root read-only); /dev/shm, /run, /tmp when
the root's /tmp is empty, and each --tmpfs PATH are writable memory
filesystems. What is written to either is saved with the sandbox. The program
starts in snap's working directory (the root's / with --rootfs, or --cwd)
with snap's environment (none with --clear-env), plus each --env K=V.
A saved image holds the environment like the rest of the program's memory.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d := cmd.Flags().Lookup("detach"); f.timings && d != nil && d.Value.String() == "true" {
				return errors.New("--timings is for a foreground run")
			}
			for _, t := range takeovers {
				if done, err := t(args); done || err != nil {
					return err
				}
			}
			limits, err := f.limits(cmd)
			if err != nil {
				return err
			}
			ms, err := f.net.mappings(cmd)
			if err != nil {
				return err
			}
			return runForeground(f, s, limits, ms, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	addRunFlags(cmd, f)
	addStartFlags(cmd, s)
	cmd.Flags().BoolVar(&f.timings, "timings", false, "write on stderr, once the program has exited, how long each step of the start and run took and what the sandbox counted (system calls, ptrace stops, injected host system calls, file cache misses)")
	for _, h := range runFlagHooks {
		if t := h(cmd, g, f, s); t != nil {
			takeovers = append(takeovers, t)
		}
	}
	return cmd
}

// addRunFlags registers the foreground flags of snap run.
func addRunFlags(cmd *cobra.Command, f *runFlags) {
	cmd.Flags().StringVar(&f.rootfs, "rootfs", "/", "host directory the program sees as / (the lower layer of the writable overlay; never written)")
	cmd.Flags().StringArrayVarP(&f.volumes, "volume", "v", nil, "mount host directory HOST at PATH, HOST:PATH or HOST:PATH:ro (repeatable); the program writes there to the host, and an image records only HOST, which must exist at restore (on restore: HOST:PATH mounts HOST where PATH was)")
	cmd.Flags().BoolVar(&f.readOnly, "read-only", false, "keep the root read-only (writes outside memory filesystems fail with EROFS) instead of a writable overlay")
	cmd.Flags().BoolVar(&f.debug, "debug", false, "log unimplemented syscalls and faults to stderr")
	cmd.Flags().StringVar(&f.platform, "platform", "ptrace", "execution platform")
	cmd.Flags().IntVar(&f.pids, "pids", 0, fmt.Sprintf("most tasks (threads of all processes) at once; fork and clone beyond it fail with EAGAIN (default %d; on restore: the saved limit)", kernel.DefaultTasks))
	cmd.Flags().StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount an empty memory filesystem at PATH, or PATH:size=SIZE (default 256M; repeatable; /dev/shm and /run always have one); what the program writes there is saved with it")
	addNetworkFlags(cmd, &f.net)
	cmd.Flags().StringVar(&f.memory, "memory", "", "most memory the program's mappings may hold, e.g. 512M, 2G or unlimited; mmap, brk, mremap and fork beyond it fail with ENOMEM (default unlimited; on restore: the saved limit)")
}

// limits returns the limits the flags give: zero fields for flags not
// given (the defaults, or on restore the saved limits).
func (f *runFlags) limits(cmd *cobra.Command) (kernel.Limits, error) {
	var l kernel.Limits
	if cmd.Flags().Changed("pids") {
		if f.pids < 1 || f.pids > kernel.MaxTasks {
			return l, fmt.Errorf("--pids %d: give a number of tasks from 1 to %d", f.pids, kernel.MaxTasks)
		}
		l.Tasks = f.pids
	}
	if cmd.Flags().Changed("memory") {
		m, err := kernel.ParseMemoryLimit(f.memory)
		if err != nil {
			return l, fmt.Errorf("--memory: %w", err)
		}
		l.Memory = m
	}
	return l, nil
}

// limitArgs returns the limit and mount flags given on cmd, to pass them
// on to a detached sentry.
func limitArgs(cmd *cobra.Command, f *runFlags) []string {
	var args []string
	if cmd.Flags().Changed("pids") {
		args = append(args, "--pids", strconv.Itoa(f.pids))
	}
	if cmd.Flags().Changed("memory") {
		args = append(args, "--memory", f.memory)
	}
	for _, p := range f.tmpfs {
		args = append(args, "--tmpfs", p)
	}
	if f.readOnly {
		args = append(args, "--read-only")
	}
	for _, v := range f.volumes {
		args = append(args, "--volume", v)
	}
	return append(args, f.net.args(cmd)...)
}

// addStartFlags registers the flags that shape the program's start (snap
// run, and the sentry of run -d, which gets them from the launcher).
func addStartFlags(cmd *cobra.Command, s *startFlags) {
	cmd.Flags().StringVar(&s.cwd, "cwd", "", "initial working directory inside the sandbox root (default: snap's own, or / with --rootfs)")
	cmd.Flags().StringArrayVar(&s.env, "env", nil, "set K=V in the program's environment (repeatable)")
	cmd.Flags().BoolVar(&s.clearEnv, "clear-env", false, "start with an empty environment instead of snap's (--env still applies)")
}

// startOptions turns the start flags into the kernel's start options for
// argv: the environment, and the working directory (required to exist
// when --cwd names it).
func (s *startFlags) startOptions(rootfs string, argv []string) (kernel.StartOptions, error) {
	env, err := runner.StartEnv(os.Environ(), s.clearEnv, s.env)
	if err != nil {
		return kernel.StartOptions{}, err
	}
	return kernel.StartOptions{Argv: argv, Env: env, Cwd: initialCwd(rootfs, s.cwd), RequireCwd: s.cwd != ""}, nil
}

// runForeground runs argv in a sandbox with snap's stdio and returns an
// exitError carrying the program's status.
func runForeground(f *runFlags, s *startFlags, limits kernel.Limits, ms []kernel.PortMapping, argv []string) error {
	o, err := s.startOptions(f.rootfs, argv)
	if err != nil {
		return err
	}
	var tm *kernel.Timings
	if f.timings {
		tm = new(kernel.Timings)
		tm.Since(runner.StepCommand, mainStart)
	}
	// Caught from before the start: the program may run (and its caller
	// signal snap) before Start returns. Caught before New: the first
	// signal.Notify starts Go's signal machinery (about half a
	// millisecond), which then overlaps the platform's making if it is
	// not done yet.
	sigs := catchSignals()
	k, err := kernel.New(kernel.Config{Platform: f.platform, Root: f.rootfs, Debug: f.debug, Limits: limits, Tmpfs: f.tmpfs, ReadOnly: f.readOnly, Binds: f.volumes, Timings: tm, Network: f.net.network})
	if err != nil {
		sigs.stop()
		return err
	}
	defer func() {
		released := time.Now()
		counts := k.Counts()
		k.Release()
		if tm != nil {
			tm.Since(stepRelease, released)
			for _, l := range runner.StepLines("run", tm.Steps()) {
				fmt.Fprintln(os.Stderr, l)
			}
			for _, c := range counts {
				fmt.Fprintf(os.Stderr, "run count %-22s %d\n", c.Name, c.Value)
			}
		}
	}()
	if err := k.Publish(ms); err != nil {
		sigs.stop()
		return err
	}
	if err := k.Start(o); err != nil {
		sigs.stop()
		return startError(argv[0], err)
	}
	stop := sigs.forward(k)
	defer stop()
	if st := k.Wait().ShellCode(); st != 0 {
		return &exitError{st}
	}
	return nil
}

// stepRelease is the last step of `snap run --timings`: releasing the
// kernel (its platform, the stubs left, the memory file).
const stepRelease = "release"

// startError phrases a failure to start the program like a shell does, and
// uses the shell's statuses: 127 not found, 126 not executable. A --cwd
// that cannot be entered is a usage error (status 1).
func startError(prog string, err error) error {
	if errors.Is(err, kernel.ErrBadCwd) {
		return fmt.Errorf("--cwd: %w", err)
	}
	code := 126
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		code = 127
	}
	fmt.Fprintf(os.Stderr, "snap: run %s: %v\n", prog, err)
	return &exitError{code}
}

// initialCwd returns the working directory the program starts in, a path
// inside the root: cwd if absolute; otherwise cwd relative to the default,
// which is snap's own working directory when the root is the host's /,
// else the root of --rootfs.
func initialCwd(rootfs, cwd string) string {
	if path.IsAbs(cwd) {
		return path.Clean(cwd)
	}
	def := "/"
	if filepath.Clean(rootfs) == "/" {
		if wd, err := os.Getwd(); err == nil {
			def = wd
		}
	}
	return path.Join(def, cwd)
}

// caughtSignals are the terminating signals snap receives (Ctrl-C, kill, a
// closed terminal), caught instead of killing snap, so that they can go to
// the sandbox's init process, as a shell's child would receive them.
type caughtSignals chan os.Signal

// catchSignals starts catching the terminating signals; they wait (a few)
// until forward.
func catchSignals() caughtSignals {
	ch := make(caughtSignals, 4)
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	return ch
}

// stop stops catching.
func (ch caughtSignals) stop() { signal.Stop(ch) }

// forward passes the caught signals, those that came already first, to
// k's init process. It returns a function that stops catching and
// forwarding.
func (ch caughtSignals) forward(k *kernel.Kernel) func() {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				k.SignalInit(int(s.(unix.Signal)))
			case <-done:
				return
			}
		}
	}()
	return func() {
		ch.stop()
		close(done)
	}
}
