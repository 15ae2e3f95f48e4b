package kernel

import "golang.org/x/sys/unix"

// CPU time: the one measure of a thread's and a process's user and system
// time, which every CPU clock reads (clock_gettime and clock_getres on
// CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID and the clock IDs of
// clock_getcpuclockid and pthread_getcpuclockid), and getrusage, times,
// wait4's rusage, /proc/PID/stat, /proc/stat, the interval timers
// ITIMER_VIRTUAL and ITIMER_PROF and the POSIX timers on CPU clocks
// (sys_cputime.go). Nothing is measured per Switch or per system call: the
// times are read from host CPU clocks when asked.
//
// User time. On a platform whose contexts run the application in host
// processes of their own (platform.StubClocked; the ptrace platform), a
// task goroutine is locked to its OS thread for its life and the platform
// keeps one stub thread per (address space, OS thread) pair, so a stub
// thread serves exactly one task while that task stays in one address
// space. A stub thread is a host process of its own, so its process CPU
// clock is the task's user time in that address space, counted from the
// moment Switch first runs the application there (which the platform
// reports with the clock's value then: the mappings it made in the stub
// before, MAP_POPULATE loading a restored image's pages among them, are
// not the application's). It also counts the few mappings the platform
// injects later on the task's behalf. A thread's user time is UserDone
// (what its earlier stubs gave, up to ruMark on the current one) plus what
// the current stub's clock moved since ruMark. The current stub is folded
// into UserDone when the platform reports another one, when the address
// space is about to go away (execve, exit), and for a save, since a stub
// does not outlive any of them. On a platform without stub processes there
// is no user time.
//
// System time is the sentry's work for the task: the CPU time of the OS
// thread its task goroutine is locked to. That thread serves the task's
// system calls and faults and runs its Switches (the tracer's side of
// ptrace); while the task waits (for the application in ptrace, for a
// futex, a pipe, a sleep) the thread sleeps and its clock stands still, and
// no other goroutine ever runs on it. A thread's system time is SysDone
// plus what the clock of OS thread sysTID moved since sysMark, read there
// or from any other thread of the sentry by its thread CPU clock ID. The
// task goroutine starts counting when it starts (a restored task's goroutine
// too, so the restore's own work is not the task's), and folds the clock
// into SysDone when it exits, before its thread goes away; a save folds it
// too.
//
// A process's time is the sum over its live threads plus what its exited
// threads had (ExitedUser, SysTime), added when a thread exits;
// RUSAGE_CHILDREN is what its reaped children (and their reaped children)
// had, added at reap. Every value is saved (UserDone, SysDone and the
// process sums) and continues from the saved value after a restore, on new
// stubs and threads.

// noteStub is the platform's report (platform.StubClocked) that Switch is
// about to run the application on host process pid, whose CPU clock shows
// cpu: the stub before it is folded into UserDone, and pid's clock counts
// from cpu.
//
// Preconditions: called by the task goroutine (within Switch).
func (t *Task) noteStub(pid int, cpu int64) {
	t.tg.mu.Lock()
	t.foldUserLocked()
	t.sig.ruStub, t.sig.ruMark = pid, cpu
	t.tg.mu.Unlock()
	if mf := t.k.mf; mf != nil {
		if l := mf.lazyLoader(); l != nil {
			l.noteStub(pid, cpu)
		}
	}
}

// dropStub folds the current stub into UserDone and forgets it, before
// its address space goes away.
//
// Preconditions: called by the task goroutine; tg.mu is not held.
func (t *Task) dropStub() {
	t.tg.mu.Lock()
	t.foldUserLocked()
	t.sig.ruStub, t.sig.ruMark = 0, 0
	t.tg.mu.Unlock()
}

// foldUserLocked adds what the current stub's clock moved since ruMark to
// UserDone.
//
// Preconditions: tg.mu is held; called by the task goroutine, or while it
// is parked.
func (t *Task) foldUserLocked() {
	if t.sig.ruStub == 0 {
		return
	}
	if now := processCPUNow(t.sig.ruStub); now > t.sig.ruMark {
		t.sig.UserDone += now - t.sig.ruMark
		t.sig.ruMark = now
	}
}

// startSysTime starts counting the task's system time on the calling OS
// thread.
//
// Preconditions: called by the task goroutine, locked to its OS thread,
// before anything reads the task's time from another thread.
func (t *Task) startSysTime() {
	tid, now := unix.Gettid(), threadCPUNow()
	t.tg.mu.Lock()
	t.sig.sysTID, t.sig.sysMark = tid, now
	t.tg.mu.Unlock()
}

// stopSysTimeLocked folds the task's system time into SysDone and stops
// counting it, before the task goroutine's OS thread goes away (after
// which its thread ID may name another thread).
//
// Preconditions: tg.mu is held; called by the task goroutine.
func (t *Task) stopSysTimeLocked() {
	t.foldSysLocked()
	t.sig.sysTID, t.sig.sysMark = 0, 0
}

// foldSysLocked adds what the task goroutine's OS thread clock moved since
// sysMark to SysDone.
//
// Preconditions: tg.mu is held.
func (t *Task) foldSysLocked() {
	if t.sig.sysTID == 0 {
		return
	}
	if now := sentryThreadCPUNow(t.sig.sysTID); now > t.sig.sysMark {
		t.sig.SysDone += now - t.sig.sysMark
		t.sig.sysMark = now
	}
}

// userTimeLocked returns the thread's user time in nanoseconds.
//
// Preconditions: tg.mu is held.
func (t *Task) userTimeLocked() int64 {
	u := t.sig.UserDone
	if t.sig.ruStub != 0 {
		if now := processCPUNow(t.sig.ruStub); now > t.sig.ruMark {
			u += now - t.sig.ruMark
		}
	}
	return u
}

// sysTimeLocked returns the thread's system time in nanoseconds.
//
// Preconditions: tg.mu is held.
func (t *Task) sysTimeLocked() int64 {
	s := t.sig.SysDone
	if t.sig.sysTID != 0 {
		if now := sentryThreadCPUNow(t.sig.sysTID); now > t.sig.sysMark {
			s += now - t.sig.sysMark
		}
	}
	return s
}

// cpuTimeLocked returns the thread's CPU clock: its user plus system
// time, in nanoseconds, or what an image from before measured if that is
// more.
//
// Preconditions: tg.mu is held.
func (t *Task) cpuTimeLocked() int64 {
	return max(t.userTimeLocked()+t.sysTimeLocked(), t.sig.CPUTime)
}

// cpuTimesLocked returns the process's user and system time in
// nanoseconds: its live threads' and its exited threads'. UserTime is
// what an image from before measured while a CPU timer was armed, and
// counts if it is more.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) cpuTimesLocked() (user, sys int64) {
	user, sys = tg.sigs.ExitedUser, tg.sigs.SysTime
	for _, t := range tg.tasks {
		user += t.userTimeLocked()
		sys += t.sysTimeLocked()
	}
	return max(user, tg.sigs.UserTime), sys
}

// cpuTimeLocked returns the process's CPU clock: its user plus system
// time, in nanoseconds.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) cpuTimeLocked() int64 {
	user, sys := tg.cpuTimesLocked()
	return user + sys
}

// exitCPUTimeLocked adds the exiting thread's time to its process's.
//
// Preconditions: tg.mu is held; called by the task goroutine, after
// dropStub.
func (t *Task) exitCPUTimeLocked() {
	t.stopSysTimeLocked()
	t.tg.sigs.ExitedUser += t.sig.UserDone
	t.tg.sigs.SysTime += t.sig.SysDone
}

// childTimesOf returns what reaping zombie c adds to its parent's
// RUSAGE_CHILDREN (and reports in wait4's rusage): its own user and system
// time and its children's.
//
// Preconditions: c.mu is held.
func childTimesOf(c *ThreadGroup) (user, sys int64) {
	user, sys = c.cpuTimesLocked()
	return user + c.sigs.ChildUser, sys + c.sigs.ChildSys
}

// foldCPUTimes folds every task's current stub and OS thread clock into
// its UserDone and SysDone, for a save: the restored tasks run on new
// stubs and threads.
//
// Preconditions: the kernel is paused.
func (k *Kernel) foldCPUTimes() {
	ts := k.tasks
	ts.mu.Lock()
	tasks := make([]*Task, 0, len(ts.tids))
	for _, t := range ts.tids {
		tasks = append(tasks, t)
	}
	ts.mu.Unlock()
	for _, t := range tasks {
		t.tg.mu.Lock()
		t.foldUserLocked()
		t.foldSysLocked()
		t.tg.mu.Unlock()
	}
}
