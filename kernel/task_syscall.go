package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// sysArgs are a syscall's six arguments (rdi, rsi, rdx, r10, r8, r9).
type sysArgs [6]uint64

// Int returns argument i as a C int.
func (a *sysArgs) Int(i int) int32 { return int32(a[i]) }

// syscallFn implements one syscall. It returns the result, or an error:
// a unix.Errno (returned to the application as -errno), one of the restart
// errnos, or any other error, which is logged with --debug and becomes the
// errno it wraps (EFAULT for ErrBadAddress, EIO otherwise). A handler that
// ends the process calls t.tg.exitGroup; doSyscall then moves to runExit.
type syscallFn func(t *Task, a *sysArgs) (uint64, error)

// errNoSyscallReturn is returned by a handler that has set the registers
// itself (rt_sigreturn, a future execve): doSyscall then leaves Rax alone
// and no syscall restart applies.
var errNoSyscallReturn = errors.New("syscall set the registers itself")

// Restart errnos (include/linux/errno.h). The application never sees them:
// runApp rewinds the syscall, or the signal code turns them into EINTR.
const (
	errRestartSys          = unix.Errno(512)
	errRestartNoIntr       = unix.Errno(513)
	errRestartNoHand       = unix.Errno(514)
	errRestartRestartBlock = unix.Errno(516)
)

// restartBlock is what restart_syscall resumes after a syscall returned
// ERESTART_RESTARTBLOCK. It is a plain value so that it saves without
// interfaces.
//
// +stateify savable
type restartBlock struct {
	// Kind selects the syscall that resumes; restartNone if none.
	Kind restartKind
	// Deadline is a kernel-monotonic time in nanoseconds.
	Deadline int64
	// RemAddr is where nanosleep writes the remaining time.
	RemAddr uint64
	// Addr and N are poll's descriptor array and its length, or
	// epoll_wait's event array and capacity.
	Addr, N uint64
	// FD is epoll_wait's epoll descriptor.
	FD int32
}

type restartKind uint8

const (
	restartNone restartKind = iota
	restartNanosleep
	restartPoll
	restartEpollWait
)

// doSyscall executes the syscall the application just made and returns the
// next run state.
//
// Preconditions: called by the task goroutine after Switch returned nil.
func (t *Task) doSyscall() taskRunState {
	nr := t.regs.OrigRax
	t.k.counts.countSyscall()
	a := &t.scratchArgs
	*a = sysArgs{t.regs.Rdi, t.regs.Rsi, t.regs.Rdx, t.regs.R10, t.regs.R8, t.regs.R9}
	var ret uint64
	var err error
	if nr < syscallTableSize && syscallTable[nr].fn != nil {
		ret, err = syscallTable[nr].fn(t, a)
	} else {
		err = t.unsupportedSyscall(nr)
	}
	switch {
	case err == errNoSyscallReturn:
		t.haveSyscallReturn = false
	case err != nil:
		t.regs.Rax = uint64(-int64(t.errnoOf(nr, err)))
		t.haveSyscallReturn = true
	default:
		t.regs.Rax = ret
		t.haveSyscallReturn = true
	}
	child := t.vforkChild
	t.vforkChild = nil
	if t.exitRequested || t.tg.isExiting() {
		return &runExit{}
	}
	if child != nil {
		return &runVforkWait{Child: child}
	}
	return stateApp
}

// errnoOf maps a syscall handler's error to an errno.
func (t *Task) errnoOf(nr uint64, err error) unix.Errno {
	sentryFailed := errors.Is(err, ErrAddressSpace)
	if sentryFailed {
		// The sentry failed, not the program: say so even without
		// --debug, as the program may die of it (ld.so does when an
		// mprotect fails).
		fmt.Fprintf(t.k.log, "snap: task %d: syscall %s: %v\n", t.tid, syscallName(nr), err)
	}
	var errno unix.Errno
	switch {
	case errors.Is(err, errInterrupted):
		return errRestartSys
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, ErrBadAddress):
		return unix.EFAULT
	case errors.Is(err, errNameTooLong):
		return unix.ENAMETOOLONG
	default:
		if !sentryFailed { // logged above
			t.k.debugf("task %d: syscall %s: %v", t.tid, syscallName(nr), err)
		}
		return unix.EIO
	}
}

// syscallName returns the name of syscall nr for messages.
func syscallName(nr uint64) string {
	if nr < syscallTableSize && syscallTable[nr].name != "" {
		return syscallTable[nr].name
	}
	return fmt.Sprintf("#%d", nr)
}

// unsupportedSyscall returns the errno of syscall nr, which has no handler
// (ENOSYS if it has no row either), and names it in the debug log once per
// number and process.
func (t *Task) unsupportedSyscall(nr uint64) error {
	errno := unix.ENOSYS
	what := "unknown"
	if nr < syscallTableSize && syscallTable[nr].level == supportUnsupported {
		e := &syscallTable[nr]
		errno, what = e.errno, "unsupported ("+e.note+")"
	}
	if t.k.debug && t.k.firstUnsupported(t.tg.tgid, nr) {
		t.k.debugf("pid %d: syscall %d (%s) %s: returning %s", t.tg.tgid, nr, syscallName(nr), what, errnoName(errno))
	}
	return errno
}

// firstUnsupported reports whether process tgid calls syscall nr without a
// handler for the first time.
func (k *Kernel) firstUnsupported(tgid int32, nr uint64) bool {
	key := unsupportedKey{tgid, nr}
	k.unimplMu.Lock()
	defer k.unimplMu.Unlock()
	if k.unimplLogged[key] {
		return false
	}
	k.unimplLogged[key] = true
	return true
}

// unsupportedKey identifies a logged unsupported syscall: a process and a
// syscall number.
type unsupportedKey struct {
	tgid int32
	nr   uint64
}

// errnoName returns the symbolic name of e ("ENOSYS"), or its number.
func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// syscallRestartErrno returns the restart errno in the last syscall's
// result, or 0.
//
// Preconditions: called by the task goroutine.
func (t *Task) syscallRestartErrno() unix.Errno {
	if !t.haveSyscallReturn {
		return 0
	}
	switch e := unix.Errno(-int64(t.regs.Rax)); e {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartRestartBlock:
		return e
	}
	return 0
}

// restartSyscallIfNeeded rewinds the registers so that an interrupted
// syscall executes again when the task returns to the application. The
// signal code runs first and converts the errno to EINTR if a handler
// runs instead.
//
// Preconditions: called by the task goroutine.
func (t *Task) restartSyscallIfNeeded() {
	e := t.syscallRestartErrno()
	t.haveSyscallReturn = false
	if e == 0 {
		return
	}
	t.regs.Rip -= 2 // length of the syscall instruction
	if e == errRestartRestartBlock {
		t.regs.Rax = unix.SYS_RESTART_SYSCALL
	} else {
		t.regs.Rax = t.regs.OrigRax
	}
}

// sysRestartSyscall resumes the syscall described by t.restart.
func sysRestartSyscall(t *Task, _ *sysArgs) (uint64, error) {
	rb := t.restart
	t.restart = restartBlock{}
	switch rb.Kind {
	case restartNanosleep:
		return t.sleepUntil(rb.Deadline, rb.RemAddr)
	case restartPoll:
		return t.pollUntil(rb.Addr, rb.N, rb.Deadline)
	case restartEpollWait:
		return t.epollWaitUntil(rb.FD, rb.Addr, int32(rb.N), rb.Deadline)
	default:
		return 0, unix.EINTR
	}
}
