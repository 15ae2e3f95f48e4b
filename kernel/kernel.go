// Package kernel is the sentry: a user-space Linux kernel that runs
// unmodified x86-64 Linux programs on a platform (platform/ptrace) and keeps
// every piece of their state in its own Go objects, so that the whole
// sandbox can be saved and restored.
//
// # Objects
//
//   - Kernel is the root: the platform, the MemoryFile that holds all
//     application memory, the TaskSet, the clocks and the filesystem root.
//   - TaskSet is the PID namespace: a map from thread ID to Task. The first
//     task of a sandbox is PID 1 (the sandbox's init); thread IDs are
//     allocated upward from there and are never reused while the sandbox
//     runs, which keeps saved images unambiguous. When init exits, every
//     other process is killed and the kernel's exit status is init's.
//   - ThreadGroup is a process: its threads, its MM, FD table, filesystem
//     context, limits and exit status, its parent and the
//     children it has not reaped (fork, wait4). A process whose last thread
//     exited is a zombie until its parent reaps it; orphans go to init.
//     execve ends the other threads of the process, then replaces its MM.
//   - Task is a thread, with its own credentials (creds.go). Each task has
//     one task goroutine that executes it: application code through
//     platform.Context.Switch, and syscalls.
//   - MM is an address space (vmas, brk) mirrored into a
//     platform.AddressSpace; MemoryFile is the memfd behind it.
//   - The vDSO and its parameter page (vdso_clock.go) are kernel pages in
//     the MemoryFile that every MM maps; the sandbox's clocks are read
//     from that page by the vDSO and by the sentry alike.
//
// # Run states
//
// A task goroutine runs a state machine whose states are savable values
// (type taskRunState). Each state's execute returns the next state, or nil
// when the task goroutine must exit:
//
//	runApp ----------> runApp           (syscall handled, fault fixed, interrupted)
//	   |   \---------> runExit          (exit, exit_group, killed by a signal)
//	   |
//	runExit ---------> nil              (thread gone)
//
// Before every execute, the loop checks for an external stop (Pause before
// a save): a stopped task sits at the top of the loop with a consistent
// register file. runApp first calls t.handlePendingSignals (the signal
// code's hook, task_signals*.go), then rewinds a syscall that must restart,
// then switches to the application.
//
// # Blocking
//
// Everything a task goroutine waits for is interruptible, so that a signal
// or a stop can always reach it:
//
//   - t.block(ch) waits for ch or an interrupt; t.blockUntil(deadline) also
//     returns at a kernel-monotonic deadline. An interrupt makes them
//     return errInterrupted.
//   - t.cancelChan() is the channel handed to vfs operations that block
//     (pipe and terminal reads); it is closed when the task is interrupted.
//   - t.interrupt() (any goroutine) wakes the task: it closes the current
//     cancel channel, records the interrupt so a block that starts later
//     returns at once, and interrupts the platform context so a Switch in
//     progress returns. Interrupts may be spurious; everything re-checks.
//
// A syscall that is interrupted before it completes returns one of the
// restart errnos: ERESTARTSYS (restart unless a handler without SA_RESTART
// runs), ERESTARTNOINTR (always restart), ERESTARTNOHAND (restart unless a
// handler runs) or ERESTART_RESTARTBLOCK (restart through restart_syscall
// with t.restart, used by nanosleep to keep its remaining time). If no
// handler runs, runApp rewinds the registers so the syscall executes again;
// the signal code converts these errnos to EINTR when a handler runs.
//
// # Locking
//
// Lock order (outer to inner):
//
//	TaskSet.mu
//	  ThreadGroup.mu
//	    Task.mu
//	MM.mu
//	  MemoryFile.releaseMu (read: users of the sentry's mapping outside
//	  a syscall, such as the restore prefault; write: Release)
//	  fileCache.mu (the host file pages in the memory file)
//	    MemoryFile.mu
//
// Kernel.stopMu, fileLocks.mu, Kernel.ipcMu, the vfs locks and the lock of
// package socket are leaves relative to the above; ipcNamespace.mu is one
// but for MemoryFile.mu, which shmget takes under it; the clock's update
// runs under Kernel.stopMu and takes the process-wide tscCal.mu (a leaf)
// inside it (vdso_clock.go). dirtyTracker.mu (the memory file's dirty
// tracking, memory_file_dirty.go) is a leaf below everything: every
// writer of the memory file takes it, under whatever it holds, and it
// takes nothing. Kernel.asyncMu (O_ASYNC's watchers, sys_async.go) is a
// leaf relative to the above and takes a vfs File's lock inside it.
package kernel

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/kernel

import (
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
	"snapshotter/platform"
	"snapshotter/platform/prewarm"
)

// Config configures a new Kernel.
type Config struct {
	// Platform is the registered platform name; "ptrace" if empty.
	Platform string
	// Root is the host directory the application sees as "/"; "/" if
	// empty. It is the lower layer of a writable overlay whose upper
	// layer is in memory, or with ReadOnly visible read-only.
	Root string
	// ReadOnly keeps the root read-only (no overlay; writes get EROFS).
	ReadOnly bool
	// Binds are the host directories to mount: "HOST:PATH" or
	// "HOST:PATH:ro" (snap run -v). On Restore they remap the saved bind
	// mounts at PATH to HOST (the saved host directories otherwise).
	Binds []string
	// Stdin, Stdout and Stderr back descriptors 0, 1 and 2; the process's
	// own if nil.
	Stdin, Stdout, Stderr *os.File
	// Debug names unsupported and unknown syscalls (once per number and
	// process) and logs other diagnostics to Log.
	Debug bool
	// Log receives debug output; os.Stderr if nil.
	Log io.Writer
	// Hostname is the UTS node name; "snapshotter" if empty.
	Hostname string
	// Limits bound the sandbox (zero fields: the defaults). On Restore,
	// the non-zero fields replace the saved limits.
	Limits Limits
	// NoCPUPinning lets the host place every thread wherever it likes
	// instead of pinning each task's threads to a CPU of its own while
	// there are no more tasks than CPUs (see cpu_pin.go).
	NoCPUPinning bool
	// Timings, if not nil, records how long the steps of New and Start
	// and the program's run took (StepNewKernel...). Not used by Restore,
	// which has its own (RestoreOptions.Timings).
	Timings *Timings
	// Network is the network mode (NetworkSandbox if empty). Not used by
	// Restore: a restored sandbox has its saved mode (SetNetwork).
	Network string
	// Tmpfs are the empty tmpfs mounts to add to the default /dev/shm and
	// /run: "PATH" or "PATH:size=SIZE" (SIZE as ParseMemoryLimit takes
	// it; a default mount point gets the size). Not used by Restore: a
	// restored sandbox has its saved mounts.
	Tmpfs []string
}

// mountTmpfs mounts the tmpfs that spec ("PATH" or "PATH:size=SIZE")
// describes.
func mountTmpfs(mt *vfs.MountTable, spec string) error {
	point, opts, _ := strings.Cut(spec, ":")
	var size uint64
	if opts != "" {
		v, ok := strings.CutPrefix(opts, "size=")
		if !ok {
			return fmt.Errorf("tmpfs %q: %w: the only option is size=SIZE", spec, vfs.ErrBadMountPoint)
		}
		n, err := ParseMemoryLimit(v)
		if err != nil {
			return fmt.Errorf("tmpfs %q: %w", spec, err)
		}
		size = n
	}
	return mt.MountTmpfs(point, size)
}

// mountAll builds the mount table cfg asks for: the --tmpfs mounts, the
// overlay root unless ReadOnly, and a tmpfs at /tmp when the root's /tmp
// is empty.
func mountAll(root *vfs.Root, cfg Config) error {
	mt := root.Mounts()
	for _, spec := range cfg.Tmpfs {
		if err := mountTmpfs(mt, spec); err != nil {
			return err
		}
	}
	for _, spec := range cfg.Binds {
		b, err := ParseBind(spec)
		if err != nil {
			return err
		}
		if err := mt.MountBind(b.Host, b.Point, b.ReadOnly); err != nil {
			return err
		}
	}
	if cfg.ReadOnly {
		return nil
	}
	size := writableSize(cfg.Limits)
	if err := mt.MountOverlay(size); err != nil {
		return err
	}
	_, err := mt.MountTmpIfEmpty(root, size)
	return err
}

// Bind is a bind mount as snap run -v gives it.
type Bind struct {
	Host, Point string
	ReadOnly    bool
}

// ParseBind parses "HOST:PATH" or "HOST:PATH:ro"; errors wrap
// vfs.ErrBadMountPoint.
func ParseBind(spec string) (Bind, error) {
	parts := strings.Split(spec, ":")
	b := Bind{}
	switch {
	case len(parts) == 3 && parts[2] == "ro":
		b.ReadOnly = true
	case len(parts) == 3 && parts[2] == "rw", len(parts) == 2:
	default:
		return b, fmt.Errorf("volume %q: %w: want HOST:PATH or HOST:PATH:ro", spec, vfs.ErrBadMountPoint)
	}
	b.Host, b.Point = parts[0], parts[1]
	if b.Host == "" || !strings.HasPrefix(b.Point, "/") {
		return b, fmt.Errorf("volume %q: %w: want HOST:PATH with PATH absolute", spec, vfs.ErrBadMountPoint)
	}
	return b, nil
}

// writableSize is the size of the overlay's upper layer and of the /tmp
// tmpfs: the memory limit if there is one (their data counts against it
// anyway), else half the host's memory, as Linux's tmpfs.
func writableSize(l Limits) uint64 {
	if l.Memory != 0 {
		return l.Memory
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return vfs.DefaultTmpfsSize
	}
	return uint64(si.Totalram) * uint64(si.Unit) / 2
}

// ExitStatus is how the sandbox's init process ended: an exit code, or the
// signal that killed it.
//
// +stateify savable
type ExitStatus struct {
	Code   int
	Signal int
}

// ShellCode returns the status as a shell reports it: the exit code, or
// 128+N when signal N killed the process.
func (e ExitStatus) ShellCode() int {
	if e.Signal != 0 {
		return 128 + e.Signal
	}
	return e.Code & 0xff
}

// String describes the status for messages.
func (e ExitStatus) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d", e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Kernel is one sandbox's kernel.
//
// +stateify savable
type Kernel struct {
	// platform is a host object; a restore makes a new one.
	platform platform.Platform `state:"nosave"`

	// mf holds all application memory. Immutable.
	mf *MemoryFile

	// tasks is the PID namespace. Immutable.
	tasks *TaskSet

	// root is the filesystem root shared by all processes. Immutable.
	root *vfs.Root

	// monotonicOffset is added to the host's CLOCK_MONOTONIC to get the
	// kernel's, so that after a restore on another host the kernel's clock
	// continues from where it was saved (with a TSC clock, what the clock
	// follows; see vdso_clock.go). Immutable between restores.
	monotonicOffset int64

	// locks are the advisory file locks (file_locks.go). Immutable.
	locks *fileLocks
	// sharedFutex holds the waiters of futexes in shared memory, keyed by
	// memory file offset (futexKey); made on first use under
	// sharedFutexOnce. Not saved, as the per-process tables: a save
	// interrupts the waits, which restart after the restore.
	sharedFutexOnce sync.Once   `state:"nosave"`
	sharedFutex     *futexTable `state:"nosave"`
	// vdso is where the parameter page and the vDSO image are in the
	// memory file. Immutable.
	vdso vdsoPages
	// clock reads and keeps the parameter page. It points into the
	// sentry's mapping of the memory file, a host object: a restore makes
	// a new one over the restored page. Immutable after New or Restore.
	clock *sandboxClock `state:"nosave"`

	// ipcMu protects ipcNS. Not saved: nothing holds it at save time.
	ipcMu sync.Mutex `state:"nosave"`
	// ipcNS is the IPC namespace (ipc.go), made with the kernel (the
	// mqueue filesystem at /dev/mqueue shows its queues); nil in images
	// from before that of a sandbox that never used System V IPC or POSIX
	// message queues, until a restore mounts /dev/mqueue. Protected by
	// ipcMu.
	ipcNS *ipcNamespace

	// unixNames is the abstract namespace of Unix sockets and the port
	// table of the loopback network. Immutable.
	unixNames *socket.Names
	// published are the port mappings (publish.go). Immutable after
	// Publish, which runs before the program starts or resumes.
	published []PortMapping
	// pub serves them, or is nil. Not saved: host listeners and
	// connections (a restore publishes again). Immutable after Publish.
	pub *publisher `state:"nosave"`
	// network is the network mode: NetworkSandbox ("" in an image from
	// before network modes), NetworkNone or NetworkHost. Immutable after
	// New, Restore and SetNetwork.
	network string

	// hostname is the UTS node name. Immutable.
	hostname string

	// limits bound the sandbox, defaults filled in. Immutable after New or
	// Restore (a restore may override the saved ones).
	limits Limits

	// debug and log are per-run options, given again on restore.
	debug bool      `state:"nosave"`
	log   io.Writer `state:"nosave"`
	// pins assigns host CPUs to task goroutines, or is nil if they are not
	// pinned (a per-run option, like debug). Immutable after New or
	// Restore.
	pins *cpuPins `state:"nosave"`
	// cpus are the sandbox's CPUs: those the sentry may run on, read
	// before any of its threads is pinned. Host state, read again by a
	// restore. Immutable after New or Restore.
	cpus hostCPUs `state:"nosave"`

	// firstSwitch, if set, is called once, by the first task goroutine
	// whose application returns to the sentry after Resume
	// (OnFirstSwitch). Not saved: it times one restore. Accessed
	// atomically.
	firstSwitch atomic.Pointer[func()] `state:"nosave"`
	// lazyKick, set by a lazy restore whose background loader waits for
	// the program to run (lazyLoad.attach), is taken by the first task
	// goroutine whose application returns to the sentry, which lets the
	// loader start (lazyLoad.kick). Not saved: it belongs to one
	// restore. Accessed atomically.
	lazyKick atomic.Pointer[lazyLoad] `state:"nosave"`
	// lazyHandOff is set while a lazy restore's background loader
	// streams (lazyLoad.handOffP): task goroutines then give their P
	// back while their application runs (pHandOffer). Not saved: it
	// belongs to one restore. Accessed atomically.
	lazyHandOff atomic.Bool `state:"nosave"`
	// baseLoad is the load of a restore over a base (lazyLoad.attach),
	// kept after it ended (the program's exit drops what it had not
	// copied) so that BaseCopied still reports what was copied. Not
	// saved: it belongs to one restore. Accessed atomically.
	baseLoad atomic.Pointer[lazyLoad] `state:"nosave"`

	// unimplMu protects unimplLogged.
	unimplMu sync.Mutex `state:"nosave"`
	// unimplLogged records which processes called which syscalls without
	// a handler (each is logged once). Protected by unimplMu; a restored
	// kernel logs them again.
	unimplLogged map[unsupportedKey]bool `state:"nosave"`

	// asyncMu protects asyncs.
	asyncMu sync.Mutex `state:"nosave"`
	// asyncs maps each open file description with O_ASYNC set to the
	// channel that stops its watcher (sys_async.go). Not saved: a restore
	// starts the watchers again from the files' flags (rearmAsync).
	// Protected by asyncMu.
	asyncs map[*vfs.File]chan struct{} `state:"nosave"`

	// stopMu protects the stop fields and the exit fields below.
	stopMu sync.Mutex `state:"nosave"`
	// stopCond is signalled when stopCount or stoppedTasks change.
	stopCond *sync.Cond `state:"nosave"`
	// stopCount is the number of outstanding external stop requests (a
	// stop is not saved: a save happens while stopped and a restored
	// kernel starts running). Protected by stopMu.
	stopCount int `state:"nosave"`
	// stoppedTasks counts task goroutines parked by a stop. Protected by
	// stopMu.
	stoppedTasks int `state:"nosave"`
	// liveTasks counts task goroutines that have started and not exited.
	// Protected by stopMu.
	liveTasks int `state:"nosave"`

	// exited is closed when the init process has exited and all task
	// goroutines are gone; status says how it ended. Protected by stopMu.
	exited chan struct{} `state:"nosave"`
	status ExitStatus
	done   bool

	// counts are for Counts: diagnostics of this run, not state.
	counts kernelCounts `state:"nosave"`
	// timings, if not nil, records the steps of a start (Config.Timings).
	// Not saved: it times one run. Immutable after New.
	timings *Timings `state:"nosave"`
	// runStart and exitStart are when the init process started running
	// and began to exit, with timings on. Not saved, like timings.
	// Protected by stopMu.
	runStart, exitStart time.Time `state:"nosave"`
}

// New creates a kernel: a memory file, a platform and the filesystem root.
// It takes the memory file and platform that Prewarm made, if any, for the
// same platform.
func New(cfg Config) (*Kernel, error) {
	name, ctor, err := cfg.platformConstructor()
	if err != nil {
		return nil, err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	defer cfg.Timings.Since(StepNewKernel, time.Now())
	waitStart := time.Now()
	mf, p := takePrewarmed(name)
	cfg.Timings.Since(StepWaitPlatform, waitStart)
	rootDir := cfg.Root
	if rootDir == "" {
		rootDir = "/"
	}
	root, err := vfs.OpenRoot(rootDir)
	if err != nil {
		if p != nil {
			p.Release()
			mf.Release()
		}
		return nil, fmt.Errorf("open root %s: %w", rootDir, err)
	}
	if err := mountAll(root, cfg); err != nil {
		root.Close()
		if p != nil {
			p.Release()
			mf.Release()
		}
		return nil, err
	}
	if p == nil {
		mf, p, err = newMemoryAndPlatform(name, ctor)
		if err != nil {
			root.Close()
			return nil, err
		}
	}
	root.Mounts().SetPages(mf)
	k := &Kernel{
		platform:  p,
		mf:        mf,
		tasks:     newTaskSet(),
		root:      root,
		locks:     newFileLocks(),
		unixNames: socket.NewNames(),
		network:   cfg.Network,
		hostname:  cfg.Hostname,
		limits:    cfg.Limits.withDefaults(),
		debug:     cfg.Debug,
		log:       cfg.Log,
		pins:      newCPUPins(cfg.NoCPUPinning),
		cpus:      readHostCPUs(),
		exited:    make(chan struct{}),
		timings:   cfg.Timings,
	}
	if k.hostname == "" {
		k.hostname = "snapshotter"
	}
	if k.log == nil {
		k.log = os.Stderr
	}
	k.stopCond = sync.NewCond(&k.stopMu)
	k.unimplLogged = map[unsupportedKey]bool{}
	mf.onShrink = k.sharedFileShrunk
	root.Mounts().SetJobControl(jobControl{k})
	root.Mounts().SetSigioSender(k)
	root.Mounts().MountMqueue(k.ipc())
	k.applyLimits()
	if err := k.setupVDSO(); err != nil {
		k.Release()
		return nil, err
	}
	if err := k.startClock(math.MinInt64); err != nil {
		k.Release()
		return nil, err
	}
	return k, nil
}

// newMemoryAndPlatform creates a memory file and a platform for it.
func newMemoryAndPlatform(name string, ctor platform.Constructor) (*MemoryFile, platform.Platform, error) {
	mf, err := NewMemoryFile(prewarm.MemoryFileName)
	if err != nil {
		return nil, nil, err
	}
	p, err := ctor(platform.Options{MemoryFD: mf.FD()})
	if err != nil {
		mf.Release()
		return nil, nil, fmt.Errorf("create %s platform: %w", name, err)
	}
	return mf, p, nil
}

// Prewarm starts making, in the background, the memory file and the
// platform that the next New (or Restore) for the named platform needs
// (package platform/prewarm, which a command can also call itself, before
// this package is initialised). New takes them, or, if New fails or runs
// for another platform, releases them. A call while the last one's
// platform is not taken yet does nothing.
func Prewarm(name string) { prewarm.Start(name) }

// takePrewarmed returns the memory file and platform Prewarm made for
// platform name, waiting for them if needed, or nils if there are none
// (none made, already taken, failed, or made for another platform, which
// is released). If the memory file cannot be mapped, both are released.
func takePrewarmed(name string) (*MemoryFile, platform.Platform) {
	fd, p := prewarm.Take(name)
	if p == nil {
		return nil, nil
	}
	mf, err := newMemoryFileFromFD(fd)
	if err != nil {
		p.Release()
		unix.Close(fd)
		return nil, nil
	}
	return mf, p
}

// Release frees the kernel's host resources. The kernel must have exited
// (Wait returned) or never started a program.
func (k *Kernel) Release() {
	if k.pub != nil {
		k.pub.close()
	}
	k.stopClock()
	if k.platform != nil {
		k.platform.Release()
		k.platform = nil
	}
	if k.mf != nil {
		k.mf.Release()
	}
	if k.root != nil {
		k.root.Close()
	}
}

// debugf logs when debugging is on.
func (k *Kernel) debugf(format string, args ...any) {
	if k.debug {
		fmt.Fprintf(k.log, "snap: "+format+"\n", args...)
	}
}

// monotonicNow returns the kernel's CLOCK_MONOTONIC in nanoseconds: the
// vDSO's (vdso_clock.go), or the host's plus monotonicOffset without a TSC
// clock.
func (k *Kernel) monotonicNow() int64 {
	if c := k.clock; c != nil && c.tsc {
		mono, _ := c.read()
		return mono
	}
	return hostMonotonic() + k.monotonicOffset
}

// hostClock pairs one reading of the host's CLOCK_MONOTONIC with the Go
// clock's monotonic reading taken at the same moment (the midpoint of two
// Go readings around the system call).
type hostClock struct {
	host int64     // CLOCK_MONOTONIC, nanoseconds
	at   time.Time // carries a monotonic reading
	// slack bounds the error of the pairing: half the time between the
	// two Go readings.
	slack time.Duration
}

var (
	hostClockOnce sync.Once
	hostClockBase hostClock
)

// hostMonotonic returns the host's CLOCK_MONOTONIC in nanoseconds. It is
// on every syscall's path (interval timers are checked before each return
// to the application): x/sys's ClockGettime is a real system call (about
// 2 µs in this VM), while Go's clock reads the same CLOCK_MONOTONIC
// through the vDSO (about 0.1 µs). So the host clock is read once, and
// later readings add the Go clock's monotonic time since then; both count
// CLOCK_MONOTONIC, so they do not drift apart.
func hostMonotonic() int64 { return hostMonotonicAt(time.Now()) }

// hostMonotonicAt returns the host's CLOCK_MONOTONIC at now, a reading of
// the Go clock.
func hostMonotonicAt(now time.Time) int64 {
	hostClockOnce.Do(func() {
		// Keep the tightest of a few pairings: a preemption between the
		// readings would widen the error.
		for i := 0; i < 3; i++ {
			var ts unix.Timespec
			before := time.Now()
			unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
			after := time.Now()
			half := after.Sub(before) / 2
			if i == 0 || half < hostClockBase.slack {
				hostClockBase = hostClock{host: ts.Nano(), at: before.Add(half), slack: half}
			}
		}
	})
	return hostClockBase.host + int64(now.Sub(hostClockBase.at))
}

// realtimeNow returns CLOCK_REALTIME in nanoseconds: the vDSO's, which
// follows the host's, or the host's itself without a TSC clock.
func (k *Kernel) realtimeNow() int64 {
	if c := k.clock; c != nil && c.tsc {
		_, rt := c.read()
		return rt
	}
	return time.Now().UnixNano()
}

// Wait blocks until the init process has exited and every task goroutine
// is gone, and returns how the init process ended.
func (k *Kernel) Wait() ExitStatus {
	<-k.exited
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	return k.status
}

// Exited returns a channel closed when Wait would return.
func (k *Kernel) Exited() <-chan struct{} { return k.exited }

// randomBytes fills b from the host's CSPRNG. crypto/rand.Read never
// returns an error (it aborts the process if the host has no entropy).
func randomBytes(b []byte) { rand.Read(b) }

// platformConstructor looks up the configured platform, "ptrace" by
// default, and returns its name with it.
func (cfg *Config) platformConstructor() (string, platform.Constructor, error) {
	name := cfg.Platform
	if name == "" {
		name = "ptrace"
	}
	ctor, err := platform.Lookup(name)
	return name, ctor, err
}
