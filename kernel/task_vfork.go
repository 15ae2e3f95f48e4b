package kernel

// runVforkWait holds a task that made a child with CLONE_VFORK until the
// child execs or exits, as Linux's wait_for_vfork_done: with CLONE_VM the
// child runs on the parent's memory (its stack included), so the parent
// must not run application code before then. Signals sent meanwhile stay
// pending, except that one whose default action terminates the process
// (without a core dump) ends it at once, as Linux's complete_signal does;
// SIGKILL and a group exit end the task too. The wait returns to
// the loop top whenever the task is interrupted, so a stop for a save parks
// it there, and a restored task resumes in this state and waits again
// unless the child's release was saved.
//
// +stateify savable
type runVforkWait struct {
	// Child is the vfork child.
	Child *ThreadGroup
}

func (s *runVforkWait) execute(t *Task) taskRunState {
	// Interrupts are consumed before the checks they may announce, as in
	// runApp.
	t.clearInterrupt()
	if t.tg.isExiting() || t.otherThreadExecs() {
		// Another thread's execve ends this one, as Linux's de_thread
		// kills the other threads (a vfork wait is killable).
		return &runExit{}
	}
	if signo := t.fatalSignalPending(); signo != 0 {
		t.tg.exitGroup(ExitStatus{Signal: signo})
		return &runExit{}
	}
	done := t.k.tasks.vforkWaitChan(s.Child)
	if done == nil {
		return stateApp
	}
	if t.k.stopRequested() {
		return s
	}
	// Either way the state is checked again from the loop top.
	_ = t.block(done)
	return s
}

// vforkWaitChan returns a channel closed when c execs or exits, or nil if
// it already has.
func (ts *TaskSet) vforkWaitChan(c *ThreadGroup) <-chan struct{} {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if c.vforkReleased {
		return nil
	}
	if c.vforkDone == nil {
		c.vforkDone = make(chan struct{})
	}
	return c.vforkDone
}

// vforkReleaseLocked records that the process exec'd or exited, ending
// the wait of a vfork parent.
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) vforkReleaseLocked() {
	tg.vforkReleased = true
	if tg.vforkDone != nil {
		close(tg.vforkDone)
		tg.vforkDone = nil
	}
}

// fatalSignalPending returns a pending signal that t does not block and
// whose disposition is the default action of terminating the process
// without a core dump (which Linux delivers to a blocked task at once),
// or 0.
func (t *Task) fatalSignalPending() int {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	ready := (t.sig.Pending.Set | tg.sigs.Pending.Set) &^ t.sig.Mask
	for ready != 0 {
		signo := lowestSignal(ready)
		ready &^= sigBit(signo)
		if tg.sigs.Actions[signo-1].Handler != sigDFL {
			continue
		}
		if defaultActionOf(signo) == actTerminate {
			return signo
		}
	}
	return 0
}

// otherThreadExecs reports whether another thread of t's process is in
// execve, which ends t.
func (t *Task) otherThreadExecs() bool {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	e := tg.sigs.ExecTask
	return e != nil && e != t
}
