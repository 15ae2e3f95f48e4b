package kernel

// CPU time for getrusage and times, measured without a cost per Switch.
//
// On a platform whose context reports the host process that runs the
// application (StubPID; the ptrace platform), a task goroutine is locked
// to its OS thread for its life and the platform keeps one stub thread
// per (address space, OS thread) pair: a stub thread serves exactly one
// task while that task stays in one address space. A stub thread is a
// host process of its own, created (or cloned in advance, then asleep) for
// that pair, so its process CPU clock (processCPUNow) is the task's user
// time in that address space. It also counts the few mappings the
// platform injects later on the task's behalf.
//
// So a thread's user time is UserDone (what its earlier stubs gave, up to
// ruMark on the current one) plus what the current stub's clock moved
// since ruMark, read when asked. A new stub counts from the end of its
// first Switch: that Switch maps the whole address space after a fork, an
// execve or a restore (MAP_POPULATE, which after a restore also loads the
// pages), not the application's work. The application's own time in that
// Switch, up to its first system call, is lost, and until that call other
// processes do not see the thread's time move. The task goroutine notes a new stub
// after each Switch (a comparison of two integers), and folds the
// current stub into UserDone when the address space is about to go away
// (execve, exit) and for a save, since a stub does not outlive any of
// them. A process's user time is the sum over its live threads plus
// ExitedUser, added when a thread exits; RUSAGE_CHILDREN is what its
// reaped children (and their reaped children) had, added at reap.
//
// System time (the sentry's work for the task) is not cheap to measure:
// it is tgSignals.SysTime, which sys_cputime.go measures only while
// ITIMER_PROF or a POSIX timer on the process CPU clock is armed, and 0
// otherwise. On a platform without stub processes, user time is likewise
// tgSignals.UserTime, measured only while a CPU timer is armed.

// noteStub records the stub that ran the last Switch, folding the one
// before it if it changed.
//
// Preconditions: called by the task goroutine.
func (t *Task) noteStub(p stubPIDer) {
	pid := p.StubPID()
	if pid == 0 || pid == t.sig.ruStub {
		return
	}
	t.tg.mu.Lock()
	t.foldUserLocked()
	t.sig.ruStub, t.sig.ruMark = pid, processCPUNow(pid)
	t.tg.mu.Unlock()
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

// userTimeLocked returns the process's user time in nanoseconds: its
// threads', or the time measured while a CPU timer was armed if that is
// more (a platform without stub processes).
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) userTimeLocked() int64 {
	u := tg.sigs.ExitedUser
	for _, t := range tg.tasks {
		u += t.userTimeLocked()
	}
	return max(u, tg.sigs.UserTime)
}

// childTimesOf returns what reaping zombie c adds to its parent's
// RUSAGE_CHILDREN: its own user and system time and its children's.
//
// Preconditions: c.mu is held.
func childTimesOf(c *ThreadGroup) (user, sys int64) {
	return max(c.sigs.ExitedUser, c.sigs.UserTime) + c.sigs.ChildUser, c.sigs.SysTime + c.sigs.ChildSys
}

// foldUserTimes folds every task's current stub into its UserDone, for a
// save: the restored tasks run on new stubs.
//
// Preconditions: the kernel is paused.
func (k *Kernel) foldUserTimes() {
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
		t.tg.mu.Unlock()
	}
}
