package kernel

// External stops park every task goroutine at the top of its run loop, at
// a clean boundary: registers consistent, any interrupted syscall already
// rewound for restart. A task parked after an interrupted syscall has Rip at
// the syscall instruction and Rax set to the syscall number (OrigRax) or to
// SYS_restart_syscall with t.restart describing the rest (nanosleep's
// deadline); a task parked in user mode has the registers the platform
// returned (OrigRax may be -1). Either way, resuming is a plain Switch. Kernel.Pause (kernel_pause.go) is built on these:
// requestStop + waitStopped, then releaseStop to resume.

// checkStop parks the task goroutine while a stop is requested.
//
// Preconditions: called by the task goroutine at the top of its loop.
func (t *Task) checkStop() {
	k := t.k
	if !k.stopRequested() {
		return
	}
	// A save must not find the replaced image's memory still allocated
	// (the pause waits for the freeing goroutine).
	t.startExecFree()
	// Whoever stopped the tasks may save them, from another goroutine: the
	// floating point state must be in the Task, not only in the stub
	// thread that just this goroutine's OS thread can read.
	t.fpState()
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	if k.stopCount == 0 {
		return
	}
	k.stoppedTasks++
	k.stopCond.Broadcast()
	for k.stopCount > 0 {
		k.stopCond.Wait()
	}
	k.stoppedTasks--
}

// stopRequested reports whether a stop is requested, so runApp goes back
// to the loop top instead of entering the application.
func (k *Kernel) stopRequested() bool {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	return k.stopCount > 0
}

// requestStop asks every task goroutine to stop and interrupts them.
func (k *Kernel) requestStop() {
	k.stopMu.Lock()
	k.stopCount++
	k.stopMu.Unlock()
	for _, t := range k.tasks.all() {
		t.interrupt()
	}
}

// waitStopped blocks until every live task goroutine is parked. A task
// goroutine that exits meanwhile counts as stopped.
func (k *Kernel) waitStopped() {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	for k.stoppedTasks < k.liveTasks {
		k.stopCond.Wait()
	}
}

// releaseStop undoes one requestStop; tasks resume when none remain.
func (k *Kernel) releaseStop() {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	if k.stopCount > 0 {
		k.stopCount--
	}
	k.stopCond.Broadcast()
}

// all returns the live tasks.
func (ts *TaskSet) all() []*Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]*Task, 0, len(ts.tids))
	for _, t := range ts.tids {
		out = append(out, t)
	}
	return out
}
