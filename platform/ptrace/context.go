//go:build linux && amd64

package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// interruptSignal is what Interrupt sends to a running stub thread. The
// application cannot send host signals (its system calls never reach the
// host), so every SIGSTOP stop of a stub thread comes from Interrupt.
const interruptSignal = unix.SIGSTOP

// context implements platform.Context.
type context struct {
	p *Platform

	mu sync.Mutex
	// interrupted is set by Interrupt and consumed by Switch. Protected by
	// mu.
	interrupted bool
	// running is the stub thread Switch is running, or nil. Protected by
	// mu.
	running *stubThread
	// released is set by Release. Protected by mu.
	released bool

	// lastAS and last are the address space and stub thread of the last
	// Switch that ran the application. Switch tries last first, without
	// asking the host for the calling thread's id: a ptrace request
	// succeeds only from the stub thread's tracer, so a wrong guess (the
	// context moved to another OS thread, the stub thread is gone) costs
	// one failed request, and a right one (always, for a task goroutine
	// locked to its thread) saves a gettid per system call. Exclusive to
	// the goroutine using the context (see platform.Context).
	lastAS *addressSpace
	last   *stubThread

	// onStub is what NotifyStub set; reported is the stub thread it was
	// last called for (cputime.go), in reportedAS. Exclusive to the
	// goroutine using the context.
	onStub     func(pid int, cpu int64)
	reported   *stubThread
	reportedAS *addressSpace

	// fpIn is the stub thread that holds the floating point state of the
	// application thread this context last ran, when Switch left it there
	// (platform.State.FPInContext), or nil. If another context needs that
	// stub thread first, it moves the state into fpSaved, sets fpSavedOK
	// and clears fpIn. All three protected by mu.
	fpIn      *stubThread
	fpSaved   []byte
	fpSavedOK bool

	// cpu is the CPU that PinCPU asked for: a CPU number, cpuAny or
	// cpuUntouched.
	cpu atomic.Int32

	// handOff is what HandOffP set. Accessed atomically.
	handOff atomic.Bool
}

// HandOffP makes Switch, from its next wait for the application on, give
// the calling thread's P back to the Go scheduler for as long as the
// application runs (on), or keep it, as any system call does, until the
// runtime's monitor takes it (off, the default). Keeping it is cheaper
// when the sentry has spare Ps: the thread needs one again when the
// application stops. Handing it off lets goroutines that want every P (a
// lazy restore's background loader) have it while the application runs,
// rather than some milliseconds later each time. Safe to call from any
// goroutine.
func (c *context) HandOffP(on bool) { c.handOff.Store(on) }

var _ platform.Context = (*context)(nil)

// Interrupt implements platform.Context.
func (c *context) Interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interrupted = true
	if c.running != nil {
		// The stub thread is traced by a thread of ours and not yet reaped
		// while running is set, so its tid is still its own.
		_ = unix.Tgkill(c.running.tid, c.running.tid, interruptSignal)
	}
}

// Release implements platform.Context. The stub threads a context used
// belong to their address spaces (one per sentry OS thread) and are freed
// with them.
func (c *context) Release() {
	c.mu.Lock()
	c.released = true
	c.mu.Unlock()
}

// begin marks t as running unless an interrupt is pending.
func (c *context) begin(t *stubThread) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return fmt.Errorf("ptrace: switch: context %w", ErrReleased)
	}
	if c.interrupted {
		c.interrupted = false
		return platform.ErrInterrupted
	}
	c.running = t
	return nil
}

// end clears running. An interrupt that arrived after the stop stays
// pending for the next Switch.
func (c *context) end() {
	c.mu.Lock()
	c.running = nil
	c.mu.Unlock()
}

// Switch implements platform.Context.
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (c *context) Switch(as platform.AddressSpace, st *platform.State, info *platform.SignalInfo, access *platform.AccessType) error {
	a, ok := as.(*addressSpace)
	if !ok || a.p != c.p {
		return fmt.Errorf("ptrace: switch: %w", ErrWrongAddressSpace)
	}
	// The caller has locked its thread (see platform.Context); locking again
	// for the call costs nothing and keeps one Switch on one thread even if
	// it has not.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !a.ran.Load() {
		// The queued calls need a stub thread, which may be seized now
		// (a fork's child): pinned first, the tracer gets it on its own
		// CPU (seizeThread), and the seize and the batch do not wake a
		// thread on another, perhaps idle, CPU.
		c.pinTracer()
		if err := a.startRunning(); err != nil {
			return fmt.Errorf("ptrace: switch in stub %d: %w", a.pid, err)
		}
	}
	if st.FPInContext && (c.last == nil || c.lastAS != a) {
		// The state is in a stub thread of another address space, which
		// this Switch will not use.
		if err := c.FetchFP(st); err != nil {
			return fmt.Errorf("ptrace: switch: %w", err)
		}
	}
	if t := c.last; t != nil && c.lastAS == a && t.mu.TryLock() {
		// TryLock: if another context's Switch on t's tracer thread holds
		// it, this goroutine is not on that thread; do not wait for it.
		err := c.switchLocked(a, t, st, info, access)
		if !errors.Is(err, errNotTraced) {
			if errors.Is(err, ErrStubDied) {
				c.last = nil
				a.dropThread(t)
			}
			return err
		}
		// Not t's tracer (another OS thread), or t is gone: find the stub
		// thread by the calling thread's id, which tells the two apart.
		// A floating point state left in t can only be read by t's tracer:
		// if this is not it, the state is lost and FetchFP says so.
		if err := c.FetchFP(st); err != nil {
			return fmt.Errorf("ptrace: switch: %w", err)
		}
		c.last = nil
	}
	tid := unix.Gettid()
	for attempt := 0; ; attempt++ {
		t, err := a.threadFor(tid)
		if err != nil {
			return fmt.Errorf("ptrace: switch in stub %d: %w", a.pid, err)
		}
		t.mu.Lock()
		err = c.switchLocked(a, t, st, info, access)
		if errors.Is(err, errNotTraced) && attempt == 0 {
			// The cached stub thread is gone before it ran: an earlier OS
			// thread with this tid exited (which killed its tracees) or
			// someone killed it. Make a new one.
			a.dropThread(t)
			continue
		}
		if errors.Is(err, ErrStubDied) || errors.Is(err, errNotTraced) {
			a.dropThread(t)
			return err
		}
		c.lastAS, c.last = a, t
		return err
	}
}

// switchLocked runs the application on t until a stop Switch reports, and
// unlocks t.mu. It returns errNotTraced (wrapped) if the first ptrace
// request found t not traced by the calling thread: nothing ran.
//
// Preconditions: t.mu is held; the caller is locked to its OS thread.
func (c *context) switchLocked(a *addressSpace, t *stubThread, st *platform.State, info *platform.SignalInfo, access *platform.AccessType) error {
	defer t.mu.Unlock()
	if err := c.begin(t); err != nil {
		return err
	}
	defer c.end()
	if st.FPInContext && t.live != c {
		// Another context ran on t since and moved the state out.
		if !c.takeSavedFP(st) {
			return fmt.Errorf("ptrace: switch: floating point state of stub thread %d: %w", t.tid, errFPLost)
		}
	}
	if a.faultPage.Load() != 0 {
		a.faultPage.Store(0)
	}
	c.bindLocked(t)
	err := c.load(t, st)
	if err == nil && a.deferred.Load() {
		// load proved that this thread traces t: make what another
		// stub thread's tracer deferred before t runs, or what t's own
		// tracer did if it is time (which changes t's registers: load
		// them again).
		var flushed bool
		if flushed, err = a.flushDeferred(t, false); flushed && err == nil {
			err = c.load(t, st)
			if err == nil && c.takeInterrupt() {
				// Its SIGSTOP was swallowed by the injection.
				return platform.ErrInterrupted
			}
		}
	}
	if errors.Is(err, errBadRegs) {
		// Registers no CPU would run (a kernel-mode selector, a
		// non-canonical FS base): what the hardware raises for them is
		// a general protection fault.
		*info = platform.SignalInfo{Signo: int32(unix.SIGSEGV), Code: siKernel}
		err = fmt.Errorf("%w: %w", platform.ErrSignal, err)
	}
	if err == nil {
		c.p.counts.switches.Add(1)
		c.reportStub(a, t)
		err = c.run(a, t, st, info, access)
	}
	return err
}

// errBadRegs means the host refused the registers (PTRACE_SETREGS EIO).
var errBadRegs = errors.New("registers refused by the host")

// errNotTraced means the first ptrace request of a Switch found no stub
// thread traced by the calling thread (ESRCH): nothing ran yet.
var errNotTraced = errors.New("stub thread not traced by this thread")

// errFPLost means a floating point state that Switch left in a stub thread
// can no longer be read: the stub thread is gone.
var errFPLost = errors.New("floating point state left in a stub thread is lost")

// load writes st into the stopped stub thread t where it differs from what
// t holds.
func (c *context) load(t *stubThread, st *platform.State) error {
	want := st.Regs
	if want.Cs == 0 {
		want.Cs = userCS
	}
	if want.Ss == 0 {
		want.Ss = userSS
	}
	if t.regsValid && onlyRaxDiffers(&want, &t.regs) && !hostRestarts(want.Rax) {
		// The common case after a system call: its result. Orig_rax
		// keeps the call's number, which matters to the host only with
		// a restart code in rax.
		if err := setRax(t.tid, want.Rax); err != nil {
			t.regsValid, t.fpValid = false, false
			return fmt.Errorf("ptrace: set rax of stub thread %d: %w", t.tid, notTraced(err))
		}
		t.regs.Rax = want.Rax
	} else if !t.regsValid || !sameRegs(&want, &t.regs) {
		// Orig_rax = -1: the host must not restart a system call.
		want.OrigRax = ^uint64(0)
		if err := setRegs(t.tid, &want); err != nil {
			t.regsValid, t.fpValid = false, false
			if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w: %w", errBadRegs, err)
			}
			return fmt.Errorf("ptrace: set registers of stub thread %d: %w", t.tid, notTraced(err))
		}
		t.regs = want
	}
	if st.FPInContext {
		// t holds the state (switchLocked checked t.live == c).
		t.regsValid = true
		return nil
	}
	if o := t.live; o != nil && o != c {
		// t holds another context's state, which st.FP is about to
		// replace: keep it for that context.
		if err := o.evictFP(t); err != nil {
			t.regsValid, t.fpValid = false, false
			return fmt.Errorf("ptrace: %w", notTraced(err))
		}
	}
	t.live = nil
	fp := st.FP
	if fp == nil {
		fp = c.p.initFP
	} else if len(fp) != c.p.fpSize {
		fp = c.p.adaptFP(fp)
	}
	if !t.fpValid || !bytes.Equal(fp, t.fp) {
		err := setFP(t.tid, fp)
		if errors.Is(err, unix.EINVAL) {
			// The host refuses what real hardware would not load either
			// (reserved MXCSR bits, unknown features in the header): an
			// XSAVE area restored by the application's sigreturn can hold
			// anything. Load the nearest valid state, as the hardware's
			// masking would.
			fp = c.p.sanitizeFP(fp)
			err = setFP(t.tid, fp)
		}
		if err != nil {
			t.regsValid, t.fpValid = false, false
			return fmt.Errorf("ptrace: set XSAVE area of stub thread %d: %w", t.tid, notTraced(err))
		}
		t.fp = append(t.fp[:0], fp...)
	}
	t.regsValid, t.fpValid = true, true
	return nil
}

// notTraced turns ESRCH into errNotTraced (keeping both in the chain).
func notTraced(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %w", errNotTraced, err)
	}
	return err
}

// onlyRaxDiffers reports whether x and y differ in rax and nowhere else
// but orig_rax.
func onlyRaxDiffers(x, y *platform.Registers) bool {
	a, b := *x, *y
	if a.Rax == b.Rax {
		return false
	}
	a.Rax, a.OrigRax, b.Rax, b.OrigRax = 0, 0, 0, 0
	return a == b
}

// hostRestarts reports whether the host would restart a system call
// returning rax (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND,
// ERESTART_RESTARTBLOCK) if a signal came before the thread went back to
// user mode and orig_rax held a call's number.
func hostRestarts(rax uint64) bool {
	e := -int64(rax)
	return e >= 512 && e <= 516 && e != 515
}

// sameRegs compares register files ignoring orig_rax, which load always
// writes as -1 (but for the rax-only write above).
func sameRegs(x, y *platform.Registers) bool {
	a, b := *x, *y
	a.OrigRax, b.OrigRax = 0, 0
	return a == b
}

// save reads the registers of the stopped stub thread t into st and
// leaves the floating point state in t (st.FPInContext; see FetchFP).
func (c *context) save(t *stubThread, st *platform.State) error {
	if err := getRegs(t.tid, &st.Regs); err != nil {
		t.regsValid, t.fpValid = false, false
		return fmt.Errorf("read registers of stub thread %d: %w", t.tid, err)
	}
	t.regs = st.Regs
	t.regsValid = true
	// The application ran: t's state is newer than st.FP and t.fp.
	t.fpValid = false
	t.live = c
	st.FPInContext = true
	c.mu.Lock()
	c.fpIn, c.fpSavedOK = t, false
	c.mu.Unlock()
	return nil
}

// FetchFP implements platform.Context.
func (c *context) FetchFP(st *platform.State) error {
	if !st.FPInContext {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.mu.Lock()
	t := c.fpIn
	c.mu.Unlock()
	if t != nil {
		t.mu.Lock()
		if t.live == c {
			err := c.fetchFPLocked(t, st)
			t.mu.Unlock()
			return err
		}
		t.mu.Unlock()
	}
	// Moved out by another context that needed t (evictFP).
	if c.takeSavedFP(st) {
		return nil
	}
	return fmt.Errorf("ptrace: fetch floating point state: %w", errFPLost)
}

// fetchFPLocked reads the floating point state of c's application thread
// from t, which holds it, into st.
//
// Preconditions: t.mu is held; t.live == c; the caller is t's tracer.
func (c *context) fetchFPLocked(t *stubThread, st *platform.State) error {
	var err error
	if st.FP, err = t.takeLiveFP(st.FP, c.p.fpSize); err != nil {
		return fmt.Errorf("ptrace: %w: %w", errFPLost, err)
	}
	c.mu.Lock()
	c.fpIn = nil
	c.mu.Unlock()
	st.FPInContext = false
	return nil
}

// evictFP moves the floating point state of c's application thread out of
// t into c.fpSaved, so that another context can use t.
//
// Preconditions: t.mu is held; t.live == c; the caller is t's tracer.
func (c *context) evictFP(t *stubThread) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.fpSaved, err = t.takeLiveFP(c.fpSaved, c.p.fpSize); err != nil {
		return err
	}
	c.fpIn, c.fpSavedOK = nil, true
	return nil
}

// takeLiveFP reads the XSAVE area (size bytes) that t holds for the
// context that owns it (t.live) into buf, grown if needed and returned,
// and hands the state over: t no longer owns it for anyone, and t.fp
// records what t holds. On error nothing changes but buf.
//
// Preconditions: t.mu is held; the caller is t's tracer.
func (t *stubThread) takeLiveFP(buf []byte, size int) ([]byte, error) {
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := getFP(t.tid, buf); err != nil {
		return buf, fmt.Errorf("read XSAVE area of stub thread %d: %w", t.tid, err)
	}
	t.fp = append(t.fp[:0], buf...)
	t.fpValid = true
	t.live = nil
	return buf, nil
}

// takeSavedFP copies a state that evictFP moved out into st, if there is
// one.
func (c *context) takeSavedFP(st *platform.State) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fpSavedOK {
		return false
	}
	st.FP = append(st.FP[:0], c.fpSaved...)
	st.FPInContext = false
	c.fpSavedOK = false
	return true
}

// run resumes t with PTRACE_SYSEMU until a stop that Switch reports.
//
// Preconditions: t is stopped and holds st; the caller is t's tracer.
func (c *context) run(a *addressSpace, t *stubThread, st *platform.State, info *platform.SignalInfo, access *platform.AccessType) error {
	for first := true; ; first = false {
		if err := ptraceRaw(unix.PTRACE_SYSEMU, t.tid, 0, 0); err != nil {
			t.regsValid, t.fpValid = false, false
			if first {
				err = notTraced(err)
			}
			return fmt.Errorf("ptrace: resume stub thread %d: %w", t.tid, err)
		}
		wait := wait4
		if c.handOff.Load() {
			wait = wait4HandOff
		}
		ws, err := wait(t.tid)
		if err != nil {
			t.regsValid, t.fpValid = false, false
			return fmt.Errorf("ptrace: wait for stub thread %d: %w", t.tid, err)
		}
		if !ws.Stopped() {
			t.regsValid, t.fpValid = false, false
			return fmt.Errorf("ptrace: stub thread %d: status %#x: %w", t.tid, uint32(ws), ErrStubDied)
		}
		// t ran: what it holds is no longer what load wrote.
		t.regsValid, t.fpValid = false, false
		sig := ws.StopSignal()
		switch {
		case sig == unix.SIGTRAP|0x80:
			if err := c.save(t, st); err != nil {
				return err
			}
			if !viaSyscallInsn(&st.Regs) {
				// int $0x80 (or sysenter): a 32-bit system call, whose
				// numbers and arguments mean something else. Behave as a
				// host without IA-32 emulation: a general protection fault
				// at the instruction.
				st.Regs.Rip -= 2
				st.Regs.Rax = st.Regs.OrigRax
				st.Regs.OrigRax = ^uint64(0)
				*info = platform.SignalInfo{Signo: int32(unix.SIGSEGV), Code: siKernel}
				return platform.ErrSignal
			}
			return nil
		case sig == interruptSignal:
			c.mu.Lock()
			pending := c.interrupted
			c.interrupted = false
			c.mu.Unlock()
			if !pending {
				// Stale: sent by an Interrupt that a previous Switch
				// already reported. Resume as if nothing happened.
				continue
			}
			if err := c.save(t, st); err != nil {
				return err
			}
			return platform.ErrInterrupted
		case sig == unix.SIGTRAP && ws.TrapCause() > 0:
			// A ptrace event stop (PTRACE_EVENT_STOP): nothing to report.
			continue
		}
		si, err := getSigInfo(t.tid)
		if err != nil {
			return fmt.Errorf("ptrace: siginfo of stub thread %d: %w", t.tid, err)
		}
		// A positive si_code means the CPU raised it; kill and tgkill give
		// SI_USER (0) or negative codes.
		synchronous := si.code > 0
		// A general protection fault (privileged instruction, non-canonical
		// address) is SIGSEGV with SI_KERNEL and no address: a signal, not a
		// fault at an address.
		memFault := (sig == unix.SIGSEGV && si.code != siKernel) || (sig == unix.SIGBUS && si.addr != 0)
		switch {
		case synchronous && memFault && a.deferred.Load():
			// Maybe a touch of a range whose mapping is deferred: make
			// the deferred calls and run the access again, which faults
			// once more (and is reported) if the range was not theirs.
			interrupted, err := c.flushAtFault(a, t)
			if err != nil {
				return err
			}
			if interrupted {
				if err := c.save(t, st); err != nil {
					return err
				}
				return platform.ErrInterrupted
			}
			continue
		case synchronous && memFault:
			if err := c.save(t, st); err != nil {
				return err
			}
			a.faultPage.Store(si.addr&^(pageSize-1) + 1)
			*info = platform.SignalInfo{Signo: si.signo, Code: si.code, Addr: si.addr}
			*access = faultAccess(a, si, &st.Regs)
			return platform.ErrFault
		case synchronous && (sig == unix.SIGSEGV || sig == unix.SIGBUS || sig == unix.SIGILL ||
			sig == unix.SIGFPE || sig == unix.SIGTRAP || sig == unix.SIGSYS):
			if err := c.save(t, st); err != nil {
				return err
			}
			*info = platform.SignalInfo{Signo: si.signo, Code: si.code, Addr: si.addr}
			return platform.ErrSignal
		}
		// An asynchronous host signal (SIGCHLD, a stray kill...): the
		// application must not see it. PTRACE_SYSEMU with signal 0 drops it.
	}
}

// flushAtFault makes the deferred calls of a on t, stopped at a memory
// fault, and puts back t's registers, so that resuming t runs the faulting
// access again. It reports whether an interrupt arrived meanwhile (its
// SIGSTOP was swallowed by the injection).
//
// Preconditions: t.mu is held; the caller is t's tracer.
func (c *context) flushAtFault(a *addressSpace, t *stubThread) (bool, error) {
	var regs platform.Registers
	if err := getRegs(t.tid, &regs); err != nil {
		return false, fmt.Errorf("ptrace: read registers of stub thread %d: %w", t.tid, err)
	}
	if _, err := a.flushDeferred(t, true); err != nil {
		return false, fmt.Errorf("ptrace: stub thread %d: %w", t.tid, err)
	}
	if err := setRegs(t.tid, &regs); err != nil {
		return false, fmt.Errorf("ptrace: set registers of stub thread %d: %w", t.tid, err)
	}
	a.p.counts.deferredFaults.Add(1)
	return c.takeInterrupt(), nil
}

// takeInterrupt consumes a pending interrupt and reports whether there was
// one: an injection into the running stub thread swallows the SIGSTOP
// that Interrupt sends (runToTrap), so Switch checks after one.
func (c *context) takeInterrupt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	interrupted := c.interrupted
	c.interrupted = false
	return interrupted
}

// viaSyscallInsn reports whether the system call stop in r was entered with
// the syscall instruction, which leaves the return address in rcx and the
// flags in r11; int $0x80 and sysenter leave both alone.
func viaSyscallInsn(r *platform.Registers) bool {
	return r.Rcx == r.Rip && r.R11 == r.Eflags
}

// Signal codes (si_code) the platform interprets.
const (
	// segvAccErr is SEGV_ACCERR: the page is mapped but the access is not
	// allowed.
	segvAccErr = 2
	// siKernel is SI_KERNEL: raised by the kernel without a more precise
	// cause (for SIGSEGV, a general protection fault; for SIGTRAP, int3).
	siKernel = 0x80
)

// faultAccess infers the access that faulted. The host does not report the
// x86 page fault error code through ptrace, so the access is deduced from
// the recorded mapping: a fault at the instruction pointer on a page that
// is not mapped executable is an execute, an access fault on a readable but
// not writable page is a write, anything else is reported as a read. An
// instruction fetch that faults on the next page (an instruction straddling
// a page boundary) is reported as a read: telling it from a data access just
// after the instruction would need decoding the instruction, and the kernel
// maps a page with its VMA's permissions either way.
func faultAccess(a *addressSpace, si sigInfo, regs *platform.Registers) platform.AccessType {
	at, mapped := a.accessAt(si.addr)
	switch {
	case si.addr == regs.Rip && (!mapped || !at.Execute):
		return platform.AccessType{Execute: true}
	case si.signo == int32(unix.SIGSEGV) && si.code == segvAccErr && mapped && at.Read && !at.Write:
		return platform.AccessType{Write: true}
	default:
		return platform.Read
	}
}
