package kernel

import "snapshotter/platform"

// This file holds the kernel's signal hooks until the signal code
// (task_signals.go and friends) replaces it: that change deletes this
// file and defines the same methods:
//
//	handlePendingSignals  runApp, just before returning to the application
//	deliverSyncSignal     runApp, for faults and other synchronous signals
//	sendSignalToSelf      SIGPIPE after a write to a broken pipe
//	signalsOnExec         execve
//	signalsOnNewTask      clone (threads) and fork
//	signalParentOnExit    a process became a zombie (SIGCHLD)
//
// What the signal code can rely on: t.interrupt() wakes a task from any
// goroutine (blocked syscalls return errInterrupted and become restart
// errnos; a Switch in progress returns); t.syscallRestartErrno() tells
// whether the last syscall was interrupted (convert it to EINTR in the
// registers when a handler runs; runApp rewinds it otherwise); a handler
// that sets all registers itself (rt_sigreturn) returns errNoSyscallReturn;
// syscalls are added with registerSyscall in an init function.

// handlePendingSignals is called by runApp just before the task returns to
// the application. It delivers pending signals (setting up handler frames
// in t.regs, converting a pending syscall restart errno to EINTR when a
// handler runs) and returns a non-nil state when the task must not return
// to the application (runExit for a fatal signal).
//
// Preconditions: called by the task goroutine.
func (t *Task) handlePendingSignals() taskRunState { return nil }

// deliverSyncSignal handles a synchronous signal the application raised
// (a fault that the MM could not fix, SIGILL, SIGFPE, SIGTRAP...). Without
// signal handling every such signal kills the process.
//
// Preconditions: called by the task goroutine.
func (t *Task) deliverSyncSignal(info *platform.SignalInfo) taskRunState {
	t.tg.exitGroup(ExitStatus{Signal: int(info.Signo)})
	return &runExit{}
}

// sendSignalToSelf sends signal sig to the task's own process, as the
// kernel does for SIGPIPE after a write to a broken pipe. Without signal
// handling every such signal takes its default action, which for the
// signals the kernel sends itself is to terminate the process.
//
// Preconditions: called by the task goroutine.
func (t *Task) sendSignalToSelf(sig int) {
	t.tg.exitGroup(ExitStatus{Signal: sig})
}

// signalsOnExec resets what execve resets: handled signals go back to
// their default action, the alternate signal stack is dropped; the mask and
// pending signals stay.
//
// Preconditions: called by the task goroutine.
func (t *Task) signalsOnExec() {}

// signalsOnNewTask gives a new task the signal state it inherits from its
// creator t: a new thread (newProcess false) shares the process's
// handlers and copies t's mask; a forked process copies the handlers and
// t's mask, with nothing pending.
//
// Preconditions: called by t's task goroutine before nt starts.
func (t *Task) signalsOnNewTask(nt *Task, newProcess bool) {}

// signalParentOnExit notifies the parent of a process that has just become
// a zombie (SIGCHLD, or the exit signal clone asked for: tg.exitSignal).
// wait4 is woken separately.
//
// Preconditions: TaskSet.mu is not held.
func (k *Kernel) signalParentOnExit(tg *ThreadGroup) {}
