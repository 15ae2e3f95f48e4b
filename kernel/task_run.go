package kernel

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// taskRunState is one state of the task goroutine's state machine (see the
// package doc). Implementations are pointers to savable structs: a saved
// task resumes in the state it was stopped in. Every state struct has at
// least one byte (a blank field if it has no data): stateify tells objects
// apart by address, and zero-size values would all share one.
type taskRunState interface {
	// execute runs the state and returns the next one, or nil when the
	// task goroutine must exit.
	//
	// Preconditions: called by the task goroutine.
	execute(*Task) taskRunState
}

// start launches the task goroutine.
func (t *Task) start() {
	t.k.stopMu.Lock()
	t.k.liveTasks++
	t.k.stopMu.Unlock()
	// S/R-SAFE: the task goroutine only mutates kernel state between stop
	// checks; a save happens while it is parked in checkStop, and a
	// restore starts a new task goroutine from the saved runState.
	go t.run()
}

// run is the task goroutine.
func (t *Task) run() {
	// ptrace ties the application thread to this OS thread. The thread is
	// unlocked only by releaseThread, when the task has exited and the
	// platform says nothing of it is tied to the thread any more; else,
	// when the goroutine exits, Go destroys it, and with it any ptrace
	// relationship left behind.
	runtime.LockOSThread()
	t.hostTID.Store(int32(unix.Gettid()))
	setTimerSlack()
	defer t.k.taskGoroutineExited(t)
	defer t.releaseThread()
	if t.ctx == nil {
		ctx, err := t.k.platform.NewContext()
		if err != nil {
			fmt.Fprintf(t.k.log, "snap: task %d: create platform context: %v\n", t.tid, err)
			t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
			t.runState = &runExit{}
		} else {
			t.mu.Lock()
			t.ctx = ctx
			t.mu.Unlock()
		}
	}
	if sc, ok := t.ctx.(platform.StubClocked); ok {
		sc.NotifyStub(t.noteStub)
	}
	t.startSysTime()
	t.k.pins.add(t, currentCPU())
	defer t.k.pins.remove(t)
	for t.runState != nil {
		t.checkStop()
		t.runState = t.runState.execute(t)
	}
}

// releaseThread hands the task goroutine's OS thread back to the Go runtime
// once the task has exited (its context released) and the platform agrees
// (platform.ThreadReleaser), so that the next task goroutine need not wait
// for a new thread, nor the parent woken by this exit for two hand-offs.
//
// Preconditions: called by the task goroutine, last.
func (t *Task) releaseThread() {
	if t.runState != nil || t.ctx != nil {
		return
	}
	if r, ok := t.k.platform.(platform.ThreadReleaser); ok && r.ReleaseThread() {
		runtime.UnlockOSThread()
	}
}

// startExecFree starts giving back the memory of the image an execve
// replaced, if that is still to do (see execFree).
//
// Preconditions: called by the task goroutine.
func (t *Task) startExecFree() {
	if f := t.execFree; f != nil {
		t.execFree = nil
		t.k.freeLater(f)
	}
}

// runApp switches to the application and handles why it came back.
//
// +stateify savable
type runApp struct {
	_ byte
}

// stateApp is the runApp every task shares: the state has no data, and
// sharing it saves an allocation per syscall. A restored kernel gets one
// loaded copy, which works the same.
var stateApp = &runApp{}

func (*runApp) execute(t *Task) taskRunState {
	// Consume interrupts first: anything that interrupts after this point
	// is seen by the checks below or makes Switch return at once.
	t.clearInterrupt()
	if t.tg.isExiting() {
		return &runExit{}
	}
	if next := t.handlePendingSignals(); next != nil {
		return next
	}
	t.restartSyscallIfNeeded()
	if t.k.stopRequested() {
		return stateApp
	}

	t.applyPin()
	t.applyHandOff()
	t.scratch.Regs = platform.Registers(t.regs)
	t.scratch.FP = t.fp
	t.scratchInfo = platform.SignalInfo{}
	t.scratchAccess = platform.AccessType{}
	err := t.ctx.Switch(t.tg.mm.as, &t.scratch, &t.scratchInfo, &t.scratchAccess)
	if t.execFree != nil {
		t.startExecFree() // the Switch unmapped the old image from a kept stub
	}
	if f := t.k.firstSwitch.Load(); f != nil && t.k.firstSwitch.CompareAndSwap(f, nil) {
		(*f)()
	}
	if l := t.k.lazyKick.Load(); l != nil && t.k.lazyKick.CompareAndSwap(l, nil) {
		l.kick()
	}
	info, access := t.scratchInfo, t.scratchAccess
	t.regs = registers(t.scratch.Regs)
	t.fp = t.scratch.FP
	switch {
	case err == nil:
		t.lastFault = 0
		return t.doSyscall()
	case errors.Is(err, platform.ErrInterrupted):
		return stateApp
	case errors.Is(err, platform.ErrFault):
		// The same fault (address and access) again with no mapping
		// changed since, by this fault's handling or by another thread
		// (a fork makes pages copy-on-write again), is genuine.
		mm := t.tg.mm
		t.k.counts.faults.Add(1)
		acc := accessBits(access)
		var ferr error
		code := info.Code
		if info.Addr != t.lastFault || t.lastFault == 0 || acc != t.lastFaultAccess || mm.generation() != t.lastFaultGen {
			var gen uint64
			gen, ferr = mm.handleFault(info.Addr, access)
			if errorsIsAny(ferr, ErrMemoryLoad, ErrLoadCancelled) {
				// A lazy restore could not load the page: the sandbox
				// is being killed (lazyFailed says why).
				t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
				return &runExit{}
			}
			if ferr == nil {
				t.lastFault = info.Addr
				if t.lastFault == 0 {
					t.lastFault = 1 // a fixed fault at address 0 still counts
				}
				t.lastFaultGen, t.lastFaultAccess = gen, acc
				if h := faultFixedHook.Load(); h != nil {
					(*h)(t)
				}
				return stateApp
			}
			if errorsIsAny(ferr, ErrNoMemory, unix.ENOMEM) {
				// The page needed memory past --memory (a
				// copy-on-write copy): the process is killed, as
				// Linux's OOM killer does when a cgroup's memory
				// runs out at a fault.
				fmt.Fprintf(t.k.log, "snap: process %d: out of memory at a page fault (--memory %d bytes): killed\n", t.tg.tgid, t.k.limits.Memory)
				t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
				return &runExit{}
			}
		}
		t.lastFault = 0
		if errors.Is(ferr, ErrBusError) {
			info.Signo, info.Code = int32(unix.SIGBUS), busAdrErr
		}
		if info.Signo == 0 {
			info.Signo = int32(unix.SIGSEGV)
		}
		t.logFault(&info, code, access, ferr)
		return t.deliverSyncSignal(&info)
	case errors.Is(err, platform.ErrSignal):
		t.k.debugf("task %d: synchronous signal %d at rip %#x", t.tid, info.Signo, t.regs.Rip)
		return t.deliverSyncSignal(&info)
	default:
		fmt.Fprintf(t.k.log, "snap: task %d: platform failure, killing the sandbox: %v\n", t.tid, err)
		t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
		return &runExit{}
	}
}

// logFault logs a fault that raises signal info.Signo: its address, the
// access and si_code the platform reported (code), the instruction, the
// vma there and why the MM did not fix it (ferr; nil when the same fault
// came again with no mapping changed since it was fixed, which is genuine
// only if the platform's mapping is what the vma says). A genuine fault is
// the program's (logged with --debug); a failure to map memory the vma
// allows is the sentry's, and is always logged.
//
// Preconditions: called by the task goroutine.
func (t *Task) logFault(info *platform.SignalInfo, code int32, access platform.AccessType, ferr error) {
	why := "the same fault again, no mapping changed since it was fixed"
	if ferr != nil {
		why = ferr.Error()
	}
	t.mu.Lock()
	name := t.name
	t.mu.Unlock()
	msg := fmt.Sprintf("task %d (pid %d, %s): fault at %#x (%v access, si_code %d) at rip %#x in %s: %s: signal %d",
		t.tid, t.tg.tgid, name, info.Addr, access, code, t.regs.Rip, t.tg.mm.describeAt(info.Addr), why, info.Signo)
	if ferr != nil && !errorsIsAny(ferr, ErrBadAddress, ErrBusError) {
		fmt.Fprintf(t.k.log, "snap: %s (a failure of the sentry)\n", msg)
		return
	}
	t.k.debugf("%s", msg)
}

// fpState returns the application's floating point state (XSAVE area;
// nil is the initial state), first reading it from the platform context if
// the last Switch left it there. If that fails, the state is lost: the
// sandbox is killed like on any platform failure, and the caller gets the
// stale state to finish with.
//
// Preconditions: called by the task goroutine.
func (t *Task) fpState() []byte {
	if !t.scratch.FPInContext {
		return t.fp
	}
	t.scratch.FP = t.fp
	err := t.ctx.FetchFP(&t.scratch)
	t.fp = t.scratch.FP
	if err != nil {
		t.scratch.FPInContext = false
		fmt.Fprintf(t.k.log, "snap: task %d: platform failure, killing the sandbox: %v\n", t.tid, err)
		t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
	}
	return t.fp
}

// setFPState replaces the application's floating point state; the next
// Switch loads it.
//
// Preconditions: called by the task goroutine.
func (t *Task) setFPState(fp []byte) {
	t.fp = fp
	t.scratch.FPInContext = false
}

// runExit tears the task down.
//
// +stateify savable
type runExit struct {
	_ byte
}

func (*runExit) execute(t *Task) taskRunState {
	t.exit()
	return nil
}

// faultFixedHook, if set, is called by a task goroutine whose MM has just
// fixed a fault, before it runs the application again: a test stops the
// kernel there, the task's last fault recorded and the faulting
// instruction next to run.
var faultFixedHook atomic.Pointer[func(*Task)]

// accessBits packs a fault's access type as PROT_* bits.
func accessBits(at platform.AccessType) perms {
	var p perms
	if at.Read {
		p |= permRead
	}
	if at.Write {
		p |= permWrite
	}
	if at.Execute {
		p |= permExec
	}
	return p
}
