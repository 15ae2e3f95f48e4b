//go:build linux && amd64

// Package ptrace implements platform.Platform with PTRACE_SYSEMU: every
// application address space is a small stub process, and application
// threads run on threads of that stub that the sentry traces. Every system
// call the application makes stops the stub thread before the host kernel
// executes it (PTRACE_SYSEMU), and Switch returns to the sentry.
//
// # Stub processes
//
// The platform builds a static ELF of a few hundred bytes (buildStubImage):
// one r-x page at stubBase holding a syscall trampoline, and nothing else.
// It is written to a sealed memfd and executed (fork + execve of
// /proc/<sentry pid>/fd/<n>) with PTRACE_TRACEME, PR_SET_PDEATHSIG=SIGKILL
// and its own process group; the memory file is passed as descriptor 3 and
// no other descriptor is open. The exec also maps the scratch page that
// batches use (an anonymous PT_LOAD); after it the platform injects, in one
// batch, munmap calls that remove everything but those two pages (stack,
// vdso, vvar), SIG_IGN for SIGCHLD so that the host reaps the stub's
// children, and the name "snap-stub". The stub page lies above MaxUserAddress, so application
// mappings never touch it. See stub_amd64.go for the layout and the code.
// New starts one stub to learn the host's XSAVE layout and keeps it as a
// spare for the first address space. From the second address space on,
// NewAddressSpace takes the spare, and the address space's first Switch
// starts the next one in the background (not NewAddressSpace itself: a
// fork's child is about to start on the free CPU, and the refill's
// goroutine would run there first), so an exec or a fork does not wait
// for a fork and exec of a stub (about 1 ms); a sandbox that never forks
// or execs makes no spare.
//
// An address space (addressSpace) is one stub process: its first thread
// (the "stub leader") plus the stub threads below, which share its memory.
// MapFile and Unmap inject mmap(MAP_SHARED|MAP_FIXED, 3, off) and munmap
// into it and record the mapping (faults use the record). A precommitted
// range is populated by MAP_POPULATE if read-only and by
// madvise(MADV_POPULATE_WRITE) if writable: MAP_POPULATE maps shared pages
// for reading only, and every first write would still fault. Until the
// address space first runs application code nothing can observe its
// mappings, so MapFile and Unmap only queue their calls, and the first
// Switch makes them all in one stop: the stub has a scratch page above its
// code, the injector writes the calls' table there
// (process_vm_writev), and the stub's batch entry runs them (injectBatch).
// A fork's child, an exec and a restore map all their vmas that way. An
// exec of a process that nothing else shares keeps its stub (Renew): the
// new address space's calls are queued behind an munmap of the whole user
// range, the old address space's Release hands the stub over, and the
// first Switch makes that munmap and maps the new image in one batch; no
// stub is started for the exec and none torn down.
//
// Once it runs, an address space with one stub thread defers a mapping
// change made on that thread's tracer where the stub maps nothing yet: a
// read-only mmap of an unmapped range, and later changes inside such a
// range (addressSpace.deferred). The application cannot tell: a touch
// there faults in the stub, and Switch makes the deferred calls in one
// batch and runs the access again; the stub thread's second Switch since
// makes them if they map something readable (read soon, as a rule).
// Anything else that uses the stub makes them first (another stub
// thread's Switch, an injected call, HostPID, a write watch). ld.so maps a library in four read-only calls and one
// writable one before touching it: one stop instead of five. Writable
// mappings (a heap, a stack, a bss, TLS) are written at once as a rule
// and are made at once, as is the page of a fault being handled.
//
// # Thread model
//
// ptrace is per OS thread: only the thread that traces a task may issue
// ptrace requests for it. The platform therefore has three kinds of
// threads:
//
//   - The master: one goroutine per Platform, locked to its OS thread for
//     the platform's whole life. It forks every stub, so it traces every
//     stub leader and the stubs' parent-death signal fires only when the
//     platform goes away.
//   - Stub threads: for each (address space, sentry OS thread) pair that
//     calls Switch, the master injects clone(CLONE_VM|CLONE_FILES) into the stub leader;
//     the child (a process sharing the stub's memory) sleeps in pause, and
//     the calling OS thread seizes it (PTRACE_SEIZE with PTRACE_O_EXITKILL
//     and PTRACE_O_TRACESYSGOOD) and interrupts it. The stub thread is
//     cached in the address space by the caller's OS thread id, so a Context
//     works from any OS thread and an address space serves any number of
//     them. One stub thread per stub is cloned in advance, when the stub
//     starts (preThread): the first OS thread to need one only seizes it,
//     without a hand-off to the master.
//   - Callers: NewAddressSpace, MapFile, Unmap and every Release may be
//     called from any goroutine. MapFile and Unmap inject their system call
//     into the stub thread that the calling OS thread traces (creating it if
//     needed, as Switch would): the OS thread that maps memory is nearly
//     always the one that runs the application. That costs one round trip
//     to the stub (about 30 µs here) instead of two more hand-offs through
//     the master (95 µs or more; milliseconds on a loaded host). The master
//     injects into the stub leader only when that fails.
//
// Stub threads are separate processes (no CLONE_THREAD) so that the death
// of one sentry OS thread, which kills its tracees through EXITKILL, kills
// only its own stub threads and not the address space. A task goroutine
// that ends while locked ends its OS thread; its stub threads die with it
// and are forgotten the next time the address space creates a stub thread.
//
// # Switch
//
// Switch writes the registers (PTRACE_SETREGS; skipped when they equal
// what the stub thread already holds), resumes with PTRACE_SYSEMU, waits
// for that thread only and reads the registers back. The XSAVE area (FP,
// SSE, AVX state) stays in the stub thread: Switch sets
// State.FPInContext, the next Switch continues from it, and FetchFP reads
// it (PTRACE_GETREGSET NT_X86_XSTATE) only when the kernel needs it (a
// signal frame, sigreturn, clone, a save). A State whose FP the kernel
// replaced is loaded with PTRACE_SETREGSET. If another context runs on a
// stub thread that holds a context's state, it first moves that state
// into the owning context. A system call therefore costs one resume, one
// wait and two register transfers.
//
// A context can be pinned (PinCPU): Switch then keeps the stub thread and
// the calling OS thread on one CPU, which spares each system call two
// inter-processor wake-ups (see cpu.go; the kernel decides which CPU).
//
// Stops are classified:
//
//	SIGTRAP|0x80 (system call)              nil
//	SIGTRAP|0x80 after int $0x80/sysenter   ErrSignal (SIGSEGV, SI_KERNEL)
//	SIGSEGV, SIGBUS with an address (CPU)   ErrFault
//	SIGSEGV SI_KERNEL (general protection),
//	SIGILL, SIGFPE, SIGTRAP, SIGSYS (CPU)   ErrSignal
//	registers the host refuses to load
//	(kernel selector, non-canonical base)   ErrSignal (SIGSEGV, SI_KERNEL)
//	SIGSTOP while an interrupt is pending   ErrInterrupted
//	anything else (kill from the host,
//	a stale interrupt)                      suppressed, thread resumed
//
// The host does not report the page fault error code through ptrace, so
// the access of a fault is inferred from the recorded mapping: an access
// fault on a readable but not writable page is a write, a fault at the
// instruction pointer on a page not mapped executable is an execute,
// anything else a read (see faultAccess). Orig_rax is written as -1 so
// that the host never restarts a system call on the application's behalf.
// An XSAVE area the host refuses
// (an application's sigreturn can forge one) is masked as the hardware
// would (MXCSR reserved bits, unknown features) and loaded.
//
// Interrupt sets a flag that the next Switch consumes before running, and
// if a Switch is running sends SIGSTOP to its stub thread (tgkill). A
// SIGSTOP that arrives after its Switch already stopped stays pending on
// the stub thread and is dropped by a later Switch.
//
// Stops of traced processes normally send the tracer's process a SIGCHLD;
// New sets SA_NOCLDSTOP on the process's SIGCHLD action (keeping the Go
// runtime's handler), which removes a signal delivery and a sigreturn from
// every system call (about 20% of its cost here). Exits still raise
// SIGCHLD, so os/exec is unaffected.
//
// # Lifecycle and cleanup
//
// AddressSpace.Release kills the stub threads (SIGKILL, through a pidfd so
// that a reused pid is never hit) and the stub leader, and returns: a
// goroutine waits for them to exit and reaps them, the stub threads first
// (the host tears a process's memory down as it exits, which an exec or an
// exit of the application need not wait for). Platform.Release releases
// every address space, waits for those goroutines, then stops the master. If
// the sentry dies, even by SIGKILL, every stub dies with it: stub leaders by
// their parent-death signal (the master thread exits) and PTRACE_O_EXITKILL,
// stub threads by PTRACE_O_EXITKILL (their tracer exits) or by their own
// parent-death signal (the stub leader exits; a thread orphaned before it
// set that signal sees a changed parent pid and exits).
//
// # Limits
//
//   - x86-64 only, like a host without IA-32 emulation: int $0x80 and
//     sysenter (recognised because, unlike syscall, they leave rcx and r11
//     alone) are a general protection fault at the instruction (ErrSignal,
//     SIGSEGV), never a 64-bit system call with 32-bit numbers.
//   - Legacy vsyscall page calls (0xffffffffff600000), if the host emulates
//     them, run on the host without a stop (they only read the time).
package ptrace

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// Errors of this package. They describe platform failures, which the
// kernel treats as fatal for the task; Switch's normal outcomes are the
// platform package's sentinels.
var (
	// ErrReleased means the platform or address space was already released.
	ErrReleased = errors.New("ptrace: already released")
	// ErrStubDied means a stub process or thread exited unexpectedly.
	ErrStubDied = errors.New("ptrace: stub died")
	// ErrBadRange means MapFile or Unmap got an unaligned or out of range
	// address, offset or length.
	ErrBadRange = errors.New("ptrace: bad range")
	// ErrBaseSet means SetBaseFile was called twice (or after Release).
	ErrBaseSet = errors.New("ptrace: base file already set")
	// ErrNoBase means MapBase was called before SetBaseFile.
	ErrNoBase = errors.New("ptrace: no base file")
	// ErrRenewing means Switch got an address space made by Renew whose
	// predecessor was not released yet.
	ErrRenewing = errors.New("ptrace: address space still waits for the stub it renews")
	// ErrWrongAddressSpace means Switch got an address space that this
	// platform did not make.
	ErrWrongAddressSpace = errors.New("ptrace: foreign address space")
)

func init() {
	platform.Register("ptrace", New)
}

// stubFDInStub is the descriptor number of the memory file in every stub,
// and stubTableFDInStub that of its table page until its set-up closes it.
const (
	stubFDInStub      = 3
	stubTableFDInStub = 4
)

// stubFileName names the stub executable's memfd (or temporary file).
const stubFileName = "snap-ptrace-stub"

// Platform is the ptrace platform. It is safe for concurrent use.
type Platform struct {
	master *master

	// memFD is the platform's duplicate of the memory file; immutable.
	memFD int
	// stubFD is a read-only descriptor of the sealed stub executable;
	// immutable.
	stubFD int
	// fpSize is the size of the XSAVE area that PTRACE_GETREGSET returns on
	// this host, and initFP the XSAVE area of a freshly executed process;
	// both immutable after New.
	fpSize int
	initFP []byte
	// cpus is the sentry's CPU set when the platform was made, which
	// PinCPU(-1) restores; immutable.
	cpus unix.CPUSet

	mu       sync.Mutex
	released bool                       // protected by mu
	spaces   map[*addressSpace]struct{} // protected by mu
	// spare is a ready stub (first the one New started to probe the host),
	// handed to the next NewAddressSpace, which starts a new spare in the
	// background; 0 if none. Protected by mu.
	spare      int
	spareRegs  platform.Registers // protected by mu
	sparePre   preThread          // protected by mu
	spareTable stubTable          // protected by mu
	// created counts NewAddressSpace calls; refillPending is set while a
	// refill runs. Both protected by mu.
	created       int
	refillPending bool
	// refilling counts the goroutines starting a spare.
	refilling sync.WaitGroup
	// reaping counts the goroutines reaping the stub processes of released
	// address spaces (addressSpace.release).
	reaping sync.WaitGroup
	// renewMu protects the links between an address space and its heir
	// (Renew). Lock order: renewMu, then an address space's opMu.
	renewMu sync.Mutex

	// baseFD is the platform's duplicate of the base file
	// (SetBaseFile), 0 if none; basePopulate has MapBase populate its
	// mappings. Protected by mu.
	baseFD       int
	basePopulate bool

	// deferMappings lets an address space defer mapping changes that its
	// only stub thread cannot see yet (addressSpace.deferred); off with
	// SNAP_NO_DEFERRED_MAPPINGS=1 in the environment. Immutable.
	deferMappings bool

	// counts are for Counts.
	counts counts
}

var _ platform.Platform = (*Platform)(nil)

// New makes a ptrace platform for opts.MemoryFD. It fails if the host does
// not allow this process to trace its children.
func New(opts platform.Options) (platform.Platform, error) {
	return newPlatform(opts)
}

func newPlatform(opts platform.Options) (*Platform, error) {
	if opts.MemoryFD < 0 {
		return nil, fmt.Errorf("ptrace: new platform: memory fd %d is invalid", opts.MemoryFD)
	}
	if err := quietSIGCHLD(); err != nil {
		return nil, fmt.Errorf("ptrace: new platform: %w", err)
	}
	memFD, err := unix.FcntlInt(uintptr(opts.MemoryFD), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("ptrace: new platform: dup memory fd %d: %w", opts.MemoryFD, err)
	}
	stubFD, err := writeStub()
	if err != nil {
		unix.Close(memFD)
		return nil, fmt.Errorf("ptrace: new platform: %w", err)
	}
	p := &Platform{
		memFD:  memFD,
		stubFD: stubFD,
		spaces: make(map[*addressSpace]struct{}),

		deferMappings: os.Getenv("SNAP_NO_DEFERRED_MAPPINGS") != "1",
	}
	if err := unix.SchedGetaffinity(0, &p.cpus); err != nil {
		unix.Close(memFD)
		unix.Close(stubFD)
		return nil, fmt.Errorf("ptrace: new platform: read CPU affinity: %w", err)
	}
	// Start one stub to learn the XSAVE layout, as the master thread's
	// first act; this also proves that ptrace works here.
	m, err := startMaster(p.probe)
	p.master = m
	if err != nil {
		p.Release()
		return nil, fmt.Errorf("ptrace: new platform: %w", err)
	}
	return p, nil
}

// probe starts one stub to record the XSAVE size and initial state, and
// keeps it as the spare for the first address space.
//
// Preconditions: runs on the master thread, before New returns.
func (p *Platform) probe() error {
	pid, regs, pre, table, err := p.spawnStub()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	n, err := getFP(pid, buf)
	if err == nil && n < xsaveHeaderOffset+64 {
		err = fmt.Errorf("only %d bytes", n)
	}
	if err != nil {
		discardStub(pid, pre, table)
		return fmt.Errorf("read XSAVE area of stub %d: %w", pid, err)
	}
	p.fpSize = n
	p.initFP = append([]byte(nil), buf[:n]...)
	p.mu.Lock()
	p.spare, p.spareRegs, p.sparePre, p.spareTable = pid, regs, pre, table
	p.mu.Unlock()
	return nil
}

// MinUserAddress implements platform.Platform.
func (p *Platform) MinUserAddress() uint64 { return minUserAddress }

// MaxUserAddress implements platform.Platform.
func (p *Platform) MaxUserAddress() uint64 { return maxUserAddress }

// NewAddressSpace implements platform.Platform: it starts a stub process.
func (p *Platform) NewAddressSpace() (platform.AddressSpace, error) {
	a, err := p.newAddressSpace()
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (p *Platform) newAddressSpace() (*addressSpace, error) {
	a := &addressSpace{p: p, threads: make(map[int]*stubThread)}
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return nil, fmt.Errorf("ptrace: new address space: %w", ErrReleased)
	}
	// The first address space takes the probe stub. Spares are made only
	// from the second on: a sandbox that never forks or execs should not
	// pay for a stub it does not use.
	p.created++
	if p.spare != 0 {
		a.pid, a.leaderRegs, a.pre, a.table = p.spare, p.spareRegs, p.sparePre, p.spareTable
		p.spare, p.sparePre, p.spareTable = 0, preThread{}, nil
		p.spaces[a] = struct{}{}
		// The next spare is started by a's first Switch (refillAtStart),
		// not now: a fork's child, whose address space this is, is about
		// to start on the free CPU, and a refill started now would take
		// it first (its goroutine is the one a woken Go thread finds),
		// leaving the child to wait until its parent blocks.
		a.refillAtStart = p.created >= 2
		p.mu.Unlock()
		return a, nil
	}
	p.startRefillLocked()
	p.mu.Unlock()

	err := p.master.call(func() error {
		pid, regs, pre, table, err := p.spawnStub()
		if err != nil {
			return err
		}
		a.pid, a.leaderRegs, a.pre, a.table = pid, regs, pre, table
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ptrace: new address space: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		discardStub(a.pid, a.pre, a.table)
		return nil, fmt.Errorf("ptrace: new address space: %w", ErrReleased)
	}
	p.spaces[a] = struct{}{}
	return a, nil
}

// startRefillLocked starts making a spare stub in the background, unless
// this is the first address space or one is already on its way.
//
// Preconditions: p.mu is held; p is not released.
func (p *Platform) startRefillLocked() {
	if p.created < 2 || p.refillPending {
		return
	}
	p.refillPending = true
	p.refilling.Add(1)
	// S/R-SAFE: platform state only, no kernel state; Release waits for it.
	go p.refill()
}

// refillAfterStart starts the spare's refill that a's creation left to
// its first Switch (see newAddressSpace), unless a spare is there or on
// its way already.
func (p *Platform) refillAfterStart(a *addressSpace) {
	if !a.refillAtStart {
		return
	}
	a.refillAtStart = false
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.released && p.spare == 0 {
		p.startRefillLocked()
	}
}

// refill starts a stub to be the spare, so that the next NewAddressSpace
// (an exec, a fork) does not wait for a fork and exec of its own.
func (p *Platform) refill() {
	defer p.refilling.Done()
	defer func() {
		p.mu.Lock()
		p.refillPending = false
		p.mu.Unlock()
	}()
	var pid int
	var regs platform.Registers
	var pre preThread
	var table stubTable
	err := p.master.call(func() error {
		var err error
		pid, regs, pre, table, err = p.spawnStub()
		return err
	})
	if err != nil {
		return // the next NewAddressSpace starts its own and reports why
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released || p.spare != 0 {
		discardStub(pid, pre, table)
		return
	}
	p.spare, p.spareRegs, p.sparePre, p.spareTable = pid, regs, pre, table
}

// ReleaseThread implements platform.ThreadReleaser: the calling OS thread
// may go back to the Go runtime if it traces no stub thread of an address
// space that is not released (those of released ones were sent SIGKILL,
// and the reaper, which may wait for another thread's tracees, reaps
// them). Keeping the thread spares the next task goroutine a new OS thread,
// and the Go scheduler a hand-off: a goroutine locked to its thread that
// ends takes the thread down, and the goroutine it woke last (a parent in
// wait4) waits for an idle thread to be woken first, which then wakes the
// parent's. The thread's CPU affinity goes back to the sentry's.
//
// Preconditions: the caller is locked to its OS thread.
func (p *Platform) ReleaseThread() bool {
	tid := unix.Gettid()
	// renewMu: a hand-over to an exec's heir moves stub threads between
	// address spaces under it.
	p.renewMu.Lock()
	defer p.renewMu.Unlock()
	p.mu.Lock()
	spaces := make([]*addressSpace, 0, len(p.spaces))
	for a := range p.spaces {
		spaces = append(spaces, a)
	}
	p.mu.Unlock()
	for _, a := range spaces {
		a.mu.Lock()
		_, traced := a.threads[tid]
		a.mu.Unlock()
		if traced {
			return false
		}
	}
	set := p.cpus
	return unix.SchedSetaffinity(0, &set) == nil
}

// NewContext implements platform.Platform.
func (p *Platform) NewContext() (platform.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil, fmt.Errorf("ptrace: new context: %w", ErrReleased)
	}
	c := &context{p: p}
	c.cpu.Store(cpuUntouched)
	return c, nil
}

// Release implements platform.Platform: it kills and reaps every stub and
// stops the master thread.
func (p *Platform) Release() {
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return
	}
	p.released = true
	spaces := p.spaces
	p.spaces = nil
	spare, sparePre, spareTable := p.spare, p.sparePre, p.spareTable
	p.spare, p.sparePre, p.spareTable = 0, preThread{}, nil
	p.mu.Unlock()

	for a := range spaces {
		a.release()
	}
	// A refill that finishes now sees released and kills its stub.
	p.refilling.Wait()
	p.reaping.Wait()
	if spare != 0 {
		discardStub(spare, sparePre, spareTable)
	}
	p.master.stop()
	unix.Close(p.memFD)
	unix.Close(p.stubFD)
	p.mu.Lock()
	if p.baseFD > 0 {
		unix.Close(p.baseFD)
		p.baseFD = 0
	}
	p.mu.Unlock()
}

// forget drops a released address space from the platform's set.
func (p *Platform) forget(a *addressSpace) {
	p.mu.Lock()
	delete(p.spaces, a)
	p.mu.Unlock()
}
