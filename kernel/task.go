package kernel

import (
	"sync"
	"sync/atomic"
	"time"

	"snapshotter/kernel/vfs"
	"snapshotter/platform"
)

// registers is the application register file as the kernel saves it. Its
// fields are exactly those of platform.Registers, so the two convert into
// each other for free: platform.Registers(r).
//
// +stateify savable
type registers struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8 uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax               uint64
	Rip, Cs, Eflags, Rsp, Ss                       uint64
	FsBase, GsBase                                 uint64
	Ds, Es, Fs, Gs                                 uint64
}

// x86-64 user segment selectors and the initial flags (IF and the always-one
// bit).
const (
	userCS        = 0x33
	userSS        = 0x2b
	initialEflags = 0x202
)

// TaskSet is the sandbox's PID namespace.
//
// +stateify savable
type TaskSet struct {
	// mu protects tids and nextTID.
	mu sync.Mutex `state:"nosave"`
	// tids maps a thread ID to its live task. Protected by mu.
	tids map[int32]*Task
	// nextTID is the next thread ID to hand out; the first is 1.
	// Protected by mu.
	nextTID int32
	// init is the sandbox's first process (PID 1), which adopts orphans.
	// Set once by Kernel.Start; immutable afterwards.
	init *ThreadGroup
}

func newTaskSet() *TaskSet { return &TaskSet{tids: map[int32]*Task{}, nextTID: 1} }

// ThreadGroup is a process.
//
// +stateify savable
type ThreadGroup struct {
	k *Kernel

	// tgid is the process ID: the thread ID of the leader. Immutable.
	tgid int32
	// leader is the thread whose thread ID is the process ID: the first
	// thread, or the last one to call execve (sys_exec.go). Changed only
	// by that execve, when it is the only thread left, holding mu.
	leader *Task
	// parent is the parent process, nil for init; orphans are adopted by
	// init. Protected by TaskSet.mu.
	parent *ThreadGroup
	// children are the child processes not yet reaped by wait. Protected
	// by TaskSet.mu.
	children []*ThreadGroup
	// zombie is set when the last thread has exited and the parent has
	// not reaped the process yet. Protected by TaskSet.mu.
	zombie bool
	// childEvent is closed (and replaced) when a child becomes a zombie,
	// waking wait4. Not saved: a restored kernel makes it on demand.
	// Protected by TaskSet.mu.
	childEvent chan struct{} `state:"nosave"`
	// vforkReleased is set when the process execs or exits, which ends
	// the wait of a parent that made it with vfork (runVforkWait).
	// Protected by TaskSet.mu.
	vforkReleased bool
	// vforkDone is made on demand by a waiting vfork parent and closed
	// when vforkReleased is set. Not saved: a restored parent re-checks
	// vforkReleased and makes a new one. Protected by TaskSet.mu.
	vforkDone chan struct{} `state:"nosave"`
	// exitEvent is made on demand by a pidfd's poller and closed when the
	// process becomes a zombie or is reaped (sys_pidfd.go). Not saved:
	// pollers make a new one after a restore. Protected by TaskSet.mu.
	exitEvent chan struct{} `state:"nosave"`
	// exitSignal is the signal the parent gets when the process exits
	// (clone's low byte; SIGCHLD for fork). Immutable.
	exitSignal int32
	// started is the kernel's CLOCK_MONOTONIC when the process was made
	// (/proc/PID/stat's starttime; 0 in images from before it was kept).
	// Immutable.
	started int64

	// mm is the address space. Replaced by execve once its caller is the
	// only thread left, under mu: the process's own threads read it
	// without the lock (nothing else changes it), other processes (procfs)
	// read it under mu.
	mm *MM
	// fdTable is the descriptor table. Immutable.
	fdTable *vfs.FDTable
	// fs is the root and working directory. Immutable.
	fs *vfs.FS

	// mu protects the fields below.
	mu sync.Mutex `state:"nosave"`
	// tasks are the live threads. Protected by mu.
	tasks []*Task
	// exiting is set by exit_group or a fatal signal; every thread then
	// exits. Protected by mu.
	exiting bool
	// exitStatus is the process's status once exiting. Protected by mu.
	exitStatus ExitStatus
	// pgid and sid are the process group and session IDs. Protected by mu.
	pgid, sid int32
	// noCtty is set when the process, not its session's leader, gave up
	// the session's controlling terminal with TIOCNOTTY: it has none from
	// then on (nor do children it forks) until setsid. Protected by mu.
	noCtty bool
	// specials are the kernel-implemented files (eventfd, epoll) behind
	// some descriptors; see special.go. Protected by mu.
	specials []special
	// exe is the guest path of the running program (/proc/self/exe).
	// Protected by mu.
	exe string
	// umask is the file mode creation mask. Protected by mu.
	umask uint32
	// limits are the resource limits, indexed by RLIMIT_*. Protected by mu.
	limits [rlimitCount]rlimit
	// creds are the process's IDs as images saved them before each thread
	// had credentials of its own (Task.creds); the field keeps that saved
	// name so that such images load. Set only by loading an old image and
	// cleared by Restore (adoptLegacyCreds); the kernel never reads it.
	// Exclusive to the restoring goroutine.
	creds credentials
	// futex holds the FUTEX_WAIT waiters, created on first use. Not saved:
	// waiters are interrupted by a save and restart their wait.
	// Protected by mu.
	futex *futexTable `state:"nosave"`
	// sigs is the process's signal state (task_signals.go). Protected by mu.
	sigs tgSignals
	// membarrier holds the membarrier commands the process registered for
	// (MEMBARRIER_CMD_REGISTER_* bits); execve clears it. Protected by mu.
	membarrier uint32
}

// Task is a thread. Its task goroutine (Task.run) executes application code
// and syscalls on its behalf.
//
// Ownership words used below: a field "exclusive to the task goroutine" is
// only read and written by the task goroutine while it runs (or by a saver
// while the kernel is stopped); "protected by X" means X must be held to
// access it; "immutable" fields do not change after the task starts.
//
// +stateify savable
type Task struct {
	k  *Kernel
	tg *ThreadGroup

	// tid is the thread ID. Immutable, except that execve in a thread
	// other than the leader gives it the process ID (holding TaskSet.mu,
	// when it is the only thread left).
	tid int32

	// runState is what the task goroutine executes next; nil once the
	// task has exited. Exclusive to the task goroutine.
	runState taskRunState

	// regs and fp are the application's registers and XSAVE area. fp is
	// out of date while scratch.FPInContext is set (the last Switch left
	// the state in the platform context): read it with fpState, replace it
	// with setFPState. Exclusive to the task goroutine.
	regs registers
	fp   []byte

	// haveSyscallReturn is true when regs.Rax holds the result of the last
	// syscall (so a restart errno there is meaningful). Exclusive to the
	// task goroutine.
	haveSyscallReturn bool

	// restart is what restart_syscall resumes after an
	// ERESTART_RESTARTBLOCK. Exclusive to the task goroutine.
	restart restartBlock

	// lastFault is the address of the last fault the MM fixed without a
	// syscall since, lastFaultAccess its access and lastFaultGen the MM's
	// mapping generation after the fix; the same fault twice in a row with
	// no mapping changed in between is treated as genuine, in case the
	// platform reported a write as a read. (A copy-on-write page that a
	// fork write-protects again right after another thread's write made
	// it writable can fault with a stale access first.) They are saved,
	// and a restore's new address space counts as a mapping change
	// (attachAddressSpace). Exclusive to the task goroutine.
	lastFault       uint64
	lastFaultAccess perms
	lastFaultGen    uint64

	// vforkChild is the child a CLONE_VFORK clone just made; doSyscall
	// moves the task to runVforkWait for it. Set and cleared within one
	// syscall, so never seen by a save. Exclusive to the task goroutine.
	vforkChild *ThreadGroup `state:"nosave"`

	// exitRequested is set when the thread alone exits (exit(2) with other
	// threads left), exitCode is its code. Exclusive to the task goroutine.
	exitRequested bool
	exitCode      int

	// clearChildTID is set_tid_address's argument and robustList
	// set_robust_list's. Exclusive to the task goroutine.
	clearChildTID uint64
	robustList    uint64

	// ctx is the platform context. It is a host object bound to the task
	// goroutine's OS thread; afterLoad-time code asks the new platform for
	// a new one when the task goroutine starts.
	ctx platform.Context `state:"nosave"`

	// scratch, scratchInfo, scratchAccess and scratchArgs are what Switch
	// and the syscall handlers are handed; keeping them in the Task saves
	// heap allocations per syscall. Staging copies only, so not saved.
	// Exclusive to the task goroutine.
	scratch       platform.State      `state:"nosave"`
	scratchInfo   platform.SignalInfo `state:"nosave"`
	scratchAccess platform.AccessType `state:"nosave"`
	scratchArgs   sysArgs             `state:"nosave"`

	// pinCPU is the CPU the kernel wants the task's threads on (cpu+1,
	// pinNone or pinAny; see cpu_pin.go), set by cpuPins under its mutex
	// and read by the task goroutine; pinApplied is what the task
	// goroutine last passed to its context. Host state: not saved.
	pinCPU     atomic.Int32 `state:"nosave"`
	pinApplied int32        `state:"nosave"`
	// hostTID is the host thread id of the task goroutine's OS thread
	// (0 before it starts), and waitingChild is set while the task
	// blocks in a wait for a child: an exiting child then hands it its
	// CPU (cpuPins.handOver). Both accessed atomically; host state, not
	// saved.
	hostTID      atomic.Int32 `state:"nosave"`
	waitingChild atomic.Bool  `state:"nosave"`
	// execFree gives back the memory of the image an execve replaced
	// (MM.release), or is nil: it is started on a goroutine of its own
	// (Kernel.freeLater) after the task's next Switch, or before the task
	// parks for a pause, blocks in a job control stop or exits
	// (startExecFree). Exclusive to the task goroutine; never pending
	// while the task is parked, so not saved.
	execFree func() `state:"nosave"`
	// pinFloating, pinSwitches and pinSince drive the periodic unpinned
	// Switch (see repinInterval). Exclusive to the task goroutine; not
	// saved.
	pinFloating bool      `state:"nosave"`
	pinSwitches int       `state:"nosave"`
	pinSince    time.Time `state:"nosave"`
	// handOffApplied is what the task goroutine last passed to its
	// context's HandOffP (see Kernel.lazyHandOff). Exclusive to the task
	// goroutine; host state, not saved.
	handOffApplied bool `state:"nosave"`

	// mu protects the interrupt fields, name and sched.
	mu sync.Mutex `state:"nosave"`
	// cancel is closed by interrupt; nil when none was handed out since
	// the last interrupt. Protected by mu. Not saved: a restored task
	// starts uninterrupted and re-checks everything.
	cancel chan struct{} `state:"nosave"`
	// interruptPending records an interrupt not yet consumed by the run
	// loop, so a block that starts after it returns at once. Protected by
	// mu.
	interruptPending bool `state:"nosave"`
	// name is the thread name (comm), at most 15 bytes. Protected by mu.
	name string
	// sched are the thread's scheduling attributes, personality and
	// memory policy (sys_sched.go). Protected by mu.
	sched schedAttrs
	// creds are the thread's identity (creds.go). Written by the task
	// goroutine holding tg.mu, which may read them without it; others
	// read them holding tg.mu. Protected by tg.mu.
	creds credentials
	// sig is the thread's signal state (task_signals.go). Protected by
	// tg.mu.
	sig taskSignals
}
