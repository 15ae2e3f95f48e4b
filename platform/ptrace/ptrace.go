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
// no other descriptor is open. After exec the platform injects munmap calls
// that remove everything but the stub page (stack, vdso, vvar), sets
// SIGCHLD to SIG_IGN so that the host reaps the stub's children, and names
// it "snap-stub". The stub page lies above MaxUserAddress, so application
// mappings never touch it. See stub_amd64.go for the layout and the code.
// New starts one stub to learn the host's XSAVE layout and keeps it as a
// spare for the first address space. From the second address space on,
// NewAddressSpace takes the spare and starts the next one in the
// background, so an exec or a fork does not wait for a fork and exec of a
// stub (about 1 ms); a sandbox that never forks or execs makes no spare.
//
// An address space (addressSpace) is one stub process: its first thread
// (the "stub leader") plus the stub threads below, which share its memory.
// MapFile and Unmap inject mmap(MAP_SHARED|MAP_FIXED, 3, off) and munmap
// into it and record the mapping (faults use the record). A precommitted
// range is populated by MAP_POPULATE if read-only and by
// madvise(MADV_POPULATE_WRITE) if writable: MAP_POPULATE maps shared pages
// for reading only, and every first write would still fault.
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
//     calls Switch, the master injects clone(CLONE_VM) into the stub leader;
//     the child (a process sharing the stub's memory) sleeps in pause, and
//     the calling OS thread seizes it (PTRACE_SEIZE with PTRACE_O_EXITKILL
//     and PTRACE_O_TRACESYSGOOD) and interrupts it. The stub thread is
//     cached in the address space by the caller's OS thread id, so a Context
//     works from any OS thread and an address space serves any number of
//     them.
//   - Callers: NewAddressSpace, MapFile, Unmap and every Release may be
//     called from any goroutine. MapFile and Unmap inject their system call
//     into the stub thread that the calling OS thread traces (creating it if
//     needed, as Switch would): the OS thread that maps memory is nearly
//     always the one that runs the application. That costs one round trip
//     to the stub (about 40 µs here) instead of two more hand-offs through
//     the master (85 µs idle, milliseconds on a loaded host). The master
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
// what the stub thread already holds) and the XSAVE area
// (PTRACE_SETREGSET NT_X86_XSTATE; skipped likewise, it is the expensive
// one), resumes with PTRACE_SYSEMU, waits for that thread only and reads the
// registers and the XSAVE area back. A system call therefore costs one
// resume, one wait and three register transfers. Stops are classified:
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
// anything else a read (see faultAccess). Orig_rax is written as -1 so that the host never restarts a
// system call on the application's behalf. An XSAVE area the host refuses
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
// AddressSpace.Release kills (SIGKILL, through a pidfd so that a reused pid
// is never hit) and reaps the stub threads and then the stub leader.
// Platform.Release releases every address space, then stops the master. If
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
	"runtime"
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
	// ErrWrongAddressSpace means Switch got an address space that this
	// platform did not make.
	ErrWrongAddressSpace = errors.New("ptrace: foreign address space")
)

func init() {
	platform.Register("ptrace", New)
}

// stubFDInStub is the descriptor number of the memory file in every stub.
const stubFDInStub = 3

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

	mu       sync.Mutex
	released bool                       // protected by mu
	spaces   map[*addressSpace]struct{} // protected by mu
	// spare is a ready stub (first the one New started to probe the host),
	// handed to the next NewAddressSpace, which starts a new spare in the
	// background; 0 if none. Protected by mu.
	spare     int
	spareRegs platform.Registers // protected by mu
	// created counts NewAddressSpace calls; refillPending is set while a
	// refill runs. Both protected by mu.
	created       int
	refillPending bool
	// refilling counts the goroutines starting a spare.
	refilling sync.WaitGroup
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
		master: startMaster(),
		memFD:  memFD,
		stubFD: stubFD,
		spaces: make(map[*addressSpace]struct{}),
	}
	// Start one stub to learn the XSAVE layout; this also proves that ptrace
	// works here.
	if err := p.master.call(p.probe); err != nil {
		p.Release()
		return nil, fmt.Errorf("ptrace: new platform: %w", err)
	}
	return p, nil
}

// writeStub writes the stub executable and returns a read-only descriptor
// of it (execve refuses files open for writing): a sealed memfd, or, where
// executable memfds are forbidden (vm.memfd_noexec=2), an unlinked file in
// a temporary directory.
func writeStub() (int, error) {
	img := buildStubImage()
	fd, err := writeStubMemfd(img)
	if err == nil {
		return fd, nil
	}
	for _, dir := range []string{os.TempDir(), "/dev/shm"} {
		if fd, ferr := writeStubFile(dir, img); ferr == nil {
			return fd, nil
		}
	}
	return -1, err
}

func writeStubMemfd(img []byte) (int, error) {
	fd, err := unix.MemfdCreate(stubFileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL { // kernels before 6.3 lack MFD_EXEC
		fd, err = unix.MemfdCreate(stubFileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, fmt.Errorf("memfd_create for stub: %w", err)
	}
	defer unix.Close(fd)
	if n, err := unix.Pwrite(fd, img, 0); err != nil || n != len(img) {
		return -1, fmt.Errorf("write stub image (%d of %d bytes): %w", n, len(img), err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return -1, fmt.Errorf("seal stub image: %w", err)
	}
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("reopen stub image read-only: %w", err)
	}
	return ro, nil
}

// writeStubFile writes img to a new file in dir, opens it read-only and
// unlinks it.
func writeStubFile(dir string, img []byte) (int, error) {
	f, err := os.CreateTemp(dir, stubFileName+"-*")
	if err != nil {
		return -1, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(img); err != nil {
		return -1, err
	}
	if err := f.Chmod(0o500); err != nil {
		return -1, err
	}
	if err := f.Close(); err != nil {
		return -1, err
	}
	return unix.Open(f.Name(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// probe starts one stub to record the XSAVE size and initial state, and
// keeps it as the spare for the first address space.
//
// Preconditions: runs on the master thread, before New returns.
func (p *Platform) probe() error {
	pid, regs, err := p.spawnStub()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	n, err := getFP(pid, buf)
	if err != nil {
		killAndReap(pid)
		return fmt.Errorf("read XSAVE area of stub %d: %w", pid, err)
	}
	if n < xsaveHeaderOffset+64 {
		killAndReap(pid)
		return fmt.Errorf("read XSAVE area of stub %d: only %d bytes", pid, n)
	}
	p.fpSize = n
	p.initFP = append([]byte(nil), buf[:n]...)
	p.mu.Lock()
	p.spare, p.spareRegs = pid, regs
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
		a.pid, a.leaderRegs = p.spare, p.spareRegs
		p.spare = 0
		p.spaces[a] = struct{}{}
		p.startRefillLocked()
		p.mu.Unlock()
		return a, nil
	}
	p.startRefillLocked()
	p.mu.Unlock()

	err := p.master.call(func() error {
		pid, regs, err := p.spawnStub()
		if err != nil {
			return err
		}
		a.pid, a.leaderRegs = pid, regs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ptrace: new address space: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		killAndReap(a.pid)
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
	err := p.master.call(func() error {
		var err error
		pid, regs, err = p.spawnStub()
		return err
	})
	if err != nil {
		return // the next NewAddressSpace starts its own and reports why
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released || p.spare != 0 {
		killAndReap(pid)
		return
	}
	p.spare, p.spareRegs = pid, regs
}

// NewContext implements platform.Platform.
func (p *Platform) NewContext() (platform.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil, fmt.Errorf("ptrace: new context: %w", ErrReleased)
	}
	return &context{p: p}, nil
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
	spare := p.spare
	p.spare = 0
	p.mu.Unlock()

	for a := range spaces {
		a.release()
	}
	// A refill that finishes now sees released and kills its stub.
	p.refilling.Wait()
	if spare != 0 {
		killAndReap(spare)
	}
	p.master.stop()
	unix.Close(p.memFD)
	unix.Close(p.stubFD)
}

// forget drops a released address space from the platform's set.
func (p *Platform) forget(a *addressSpace) {
	p.mu.Lock()
	delete(p.spaces, a)
	p.mu.Unlock()
}

// spawnStub starts a stub process, waits for its exec stop and strips its
// address space down to the stub page. It returns the stub's pid and its
// registers at the exec stop.
//
// Preconditions: runs on the master thread.
func (p *Platform) spawnStub() (int, platform.Registers, error) {
	var regs platform.Registers
	none := ^uintptr(0)
	argv0 := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), p.stubFD)
	pid, err := forkExecStub(argv0, []uintptr{none, none, none, uintptr(p.memFD)})
	if err != nil {
		return 0, regs, fmt.Errorf("start stub: %w", err)
	}
	ws, err := wait4(pid)
	if err != nil {
		killAndReap(pid)
		return 0, regs, fmt.Errorf("wait for stub %d exec: %w", pid, err)
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		killAndReap(pid)
		return 0, regs, fmt.Errorf("stub %d after exec: status %#x: %w", pid, uint32(ws), ErrStubDied)
	}
	if err := ptraceRaw(unix.PTRACE_SETOPTIONS, pid, 0, unix.PTRACE_O_EXITKILL); err != nil {
		killAndReap(pid)
		return 0, regs, fmt.Errorf("set ptrace options of stub %d: %w", pid, err)
	}
	if err := getRegs(pid, &regs); err != nil {
		killAndReap(pid)
		return 0, regs, fmt.Errorf("read registers of stub %d: %w", pid, err)
	}
	steps := []struct {
		what string
		nr   uint64
		args [6]uint64
	}{
		{"unmap below stub", sysMunmap, [6]uint64{0, stubBase}},
		{"unmap above stub", sysMunmap, [6]uint64{stubBase + pageSize, taskEnd - (stubBase + pageSize)}},
		{"ignore SIGCHLD", sysRtSigaction, [6]uint64{uint64(unix.SIGCHLD), stubBase + stubSigactOff, 0, 8}},
		{"set name", sysPrctl, [6]uint64{unix.PR_SET_NAME, stubBase + stubNameOff}},
	}
	for _, s := range steps {
		if _, err := inject(pid, &regs, stubSyscallEntry, s.nr, s.args, 0); err != nil {
			killAndReap(pid)
			return 0, regs, fmt.Errorf("stub %d: %s: %w", pid, s.what, err)
		}
	}
	return pid, regs, nil
}

// inject makes the stopped stub leader pid execute system call nr with
// args from entry (stubSyscallEntry or stubCloneEntry) and r15 set to r15,
// and waits until it stops again. base holds valid segment registers.
//
// Preconditions: runs on the tracer of pid (the master thread).
func inject(pid int, base *platform.Registers, entry, nr uint64, args [6]uint64, r15 uint64) (uint64, error) {
	regs := *base
	regs.Rip = entry
	regs.Rax = nr
	regs.OrigRax = ^uint64(0)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = args[0], args[1], args[2], args[3], args[4], args[5]
	regs.R15 = r15
	if err := setRegs(pid, &regs); err != nil {
		return 0, fmt.Errorf("inject syscall %d: set registers: %w", nr, err)
	}
	if err := ptraceRaw(unix.PTRACE_CONT, pid, 0, 0); err != nil {
		return 0, fmt.Errorf("inject syscall %d: continue: %w", nr, err)
	}
	for {
		ws, err := wait4(pid)
		if err != nil {
			return 0, fmt.Errorf("inject syscall %d: wait: %w", nr, err)
		}
		if !ws.Stopped() {
			return 0, fmt.Errorf("inject syscall %d: status %#x: %w", nr, uint32(ws), ErrStubDied)
		}
		if ws.StopSignal() == unix.SIGTRAP {
			break
		}
		// Some other signal (SIGCHLD from a dying stub thread...):
		// suppress it and keep going.
		if err := ptraceRaw(unix.PTRACE_CONT, pid, 0, 0); err != nil {
			return 0, fmt.Errorf("inject syscall %d: continue after signal %v: %w", nr, ws.StopSignal(), err)
		}
	}
	if err := getRegs(pid, &regs); err != nil {
		return 0, fmt.Errorf("inject syscall %d: read registers: %w", nr, err)
	}
	if r := int64(regs.Rax); r < 0 && r > -4096 {
		return 0, unix.Errno(-r)
	}
	return regs.Rax, nil
}

// killAndReap kills pid with SIGKILL and waits until it is gone. It is a
// no-op for a pid that is not a child or tracee of this process.
func killAndReap(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	for {
		ws, err := wait4(pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// master runs functions on one OS thread that it never gives back to the
// Go scheduler; see the package doc.
type master struct {
	reqs   chan func()
	quit   chan struct{}
	exited chan struct{}
}

func startMaster() *master {
	m := &master{reqs: make(chan func()), quit: make(chan struct{}), exited: make(chan struct{})}
	go m.loop()
	return m
}

func (m *master) loop() {
	// Never unlocked: when this goroutine returns, the runtime ends the OS
	// thread, and any stub still alive gets its parent-death SIGKILL.
	runtime.LockOSThread()
	defer close(m.exited)
	for {
		select {
		case f := <-m.reqs:
			f()
		case <-m.quit:
			return
		}
	}
}

// call runs f on the master thread and returns its error.
func (m *master) call(f func() error) error {
	errc := make(chan error, 1)
	select {
	case m.reqs <- func() { errc <- f() }:
		return <-errc
	case <-m.exited:
		return ErrReleased
	}
}

func (m *master) stop() {
	close(m.quit)
	<-m.exited
}
