package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// isExiting reports whether the process is exiting.
func (tg *ThreadGroup) isExiting() bool {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.exiting
}

// exitGroup makes every thread of the process exit with status, unless it
// is already exiting (the first status wins).
func (tg *ThreadGroup) exitGroup(status ExitStatus) {
	tg.mu.Lock()
	if tg.exiting {
		tg.mu.Unlock()
		return
	}
	tg.exiting = true
	tg.exitStatus = status
	tasks := append([]*Task(nil), tg.tasks...)
	tg.mu.Unlock()
	for _, t := range tasks {
		t.interrupt()
	}
}

// exit removes the task from its process and the PID namespace and frees
// what the last thread of a process owns.
//
// Preconditions: called by the task goroutine.
func (t *Task) exit() {
	t.startExecFree()
	t.dropStub()
	t.mu.Lock()
	ctx := t.ctx
	t.ctx = nil
	t.mu.Unlock()
	if ctx != nil {
		ctx.Release()
	}
	t.clearTIDOnExit()
	tg := t.tg
	tg.mu.Lock()
	for i, o := range tg.tasks {
		if o == t {
			tg.tasks = append(tg.tasks[:i], tg.tasks[i+1:]...)
			break
		}
	}
	last := len(tg.tasks) == 0
	t.exitCPUTimeLocked()
	if tg.sigs.execDone != nil {
		close(tg.sigs.execDone)
		tg.sigs.execDone = nil
	}
	if last && !tg.exiting {
		// The last thread left with exit(2): its code is the process's.
		tg.exiting = true
		tg.exitStatus = ExitStatus{Code: t.exitCode}
	}
	status := tg.exitStatus
	tg.mu.Unlock()

	ts := t.k.tasks
	ts.mu.Lock()
	if ts.tids[t.tid] == t {
		// (A thread that execs takes over the TID of the leader, which
		// may have left tg.tasks already but not yet this map.)
		delete(ts.tids, t.tid)
	}
	ts.mu.Unlock()

	if !last {
		return
	}
	if t.k.timings != nil && t.k.isInit(tg) {
		t.k.initExitTiming()
	}
	free := tg.release()
	if w := tg.parentWaiter(); w != nil {
		t.k.pins.handOver(t, w)
	}
	t.k.processExited(tg, status)
	if free != nil {
		// After the parent may have run on: it need not wait for this.
		free()
	}
}

// processExited makes tg a zombie for its parent to reap, hands its
// children to init and wakes a vfork parent. When init itself exits, every
// other process is killed, as when the init of a PID namespace dies, and
// the kernel's exit status is init's.
func (k *Kernel) processExited(tg *ThreadGroup, status ExitStatus) {
	k.sessionLeaderExited(tg)
	ts := k.tasks
	ts.mu.Lock()
	tg.vforkReleaseLocked()
	init := ts.init
	if tg != init && init != nil && !init.zombie {
		for _, c := range tg.children {
			c.parent = init
			if c.zombie && init.autoReapsLocked(c) {
				c.notifyExitLocked()
				continue
			}
			init.children = append(init.children, c)
			if c.zombie {
				init.notifyChildLocked()
			}
		}
		tg.children = nil
	}
	tg.zombie = true
	tg.notifyExitLocked()
	if p := tg.parent; p != nil {
		// As Linux's exit_notify: the exit signal is pending before any
		// wait can see the zombie (both under TaskSet.mu), so a parent
		// whose wait returned finds its SIGCHLD already there.
		k.signalParentOnExitLocked(tg)
		if p.autoReapsLocked(tg) {
			// Nobody will wait for it: it is reaped at once, and a
			// parent blocked in wait gets ECHILD once no child is left.
			p.removeChildLocked(tg)
		}
		p.notifyChildLocked()
	}
	var others []*Task
	isInit := tg == init || tg.parent == nil
	if isInit {
		for _, o := range ts.tids {
			others = append(others, o)
		}
	}
	ts.mu.Unlock()
	if isInit {
		for _, o := range others {
			o.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
		}
		k.initExited(status)
	}
}

// parentWaiter returns a task of tg's parent that is blocked waiting for
// a child, or nil.
func (tg *ThreadGroup) parentWaiter() *Task {
	ts := tg.k.tasks
	ts.mu.Lock()
	p := tg.parent
	ts.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.tasks {
		if o.waitingChild.Load() {
			return o
		}
	}
	return nil
}

// autoReapsLocked reports whether the process reaps its exiting child c
// by itself, as Linux does when the child's exit signal is SIGCHLD and the
// parent ignores SIGCHLD (SIG_IGN) or set SA_NOCLDWAIT.
//
// Preconditions: TaskSet.mu is held; tg.mu is not.
func (tg *ThreadGroup) autoReapsLocked(c *ThreadGroup) bool {
	if c.exitSignal != int32(unix.SIGCHLD) {
		return false
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	act := tg.sigs.Actions[unix.SIGCHLD-1]
	return act.Handler == sigIGN || act.Flags&saNocldwait != 0
}

// removeChildLocked forgets child c (reaped).
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) removeChildLocked(c *ThreadGroup) {
	for i, o := range tg.children {
		if o == c {
			tg.children = append(tg.children[:i], tg.children[i+1:]...)
			c.notifyExitLocked()
			return
		}
	}
}

// notifyChildLocked wakes the process's wait4 callers.
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) notifyChildLocked() {
	if tg.childEvent != nil {
		close(tg.childEvent)
		tg.childEvent = nil
	}
}

// childEventLocked returns the channel closed at the next child event.
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) childEventLocked() <-chan struct{} {
	if tg.childEvent == nil {
		tg.childEvent = make(chan struct{})
	}
	return tg.childEvent
}

// release frees what a process owns once its last thread is gone, except
// its memory, which the function it returns (nil if none) gives back (see
// MM.release).
func (tg *ThreadGroup) release() func() {
	tg.mu.Lock()
	tg.deletePosixTimersLocked()
	tg.mu.Unlock()
	tg.k.locks.releaseProcess(tg)
	tg.k.semExit(tg)
	tg.fdTable.ForEach(func(_ int32, f *vfs.File, _ vfs.FDFlags) { tg.flushQueues([]*vfs.File{f}) })
	tg.fdTable.Close()
	tg.k.shmMappingsChanged(tg.mm, tg.tgid, true)
	return tg.mm.release()
}

// isInit reports whether tg is the sandbox's init process.
func (k *Kernel) isInit(tg *ThreadGroup) bool {
	k.tasks.mu.Lock()
	defer k.tasks.mu.Unlock()
	return tg == k.tasks.init
}

// initExited records the init process's status; Wait returns it once
// every task goroutine is gone.
func (k *Kernel) initExited(status ExitStatus) {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	k.status = status
	k.done = true
}

// taskGoroutineExited accounts for a task goroutine that returned.
func (k *Kernel) taskGoroutineExited(*Task) { k.liveGoroutineDone() }

// freeLater runs free (memory an MM gave back: MM.release) on a goroutine
// of its own, counted as a live task goroutine that never stops, so that a
// pause (a save) and the kernel's end wait for it.
func (k *Kernel) freeLater(free func()) {
	k.stopMu.Lock()
	k.liveTasks++
	k.stopMu.Unlock()
	// S/R-SAFE: counted in liveTasks, so a pause waits until it is done;
	// it touches only the memory file, under its lock.
	go func() {
		defer k.liveGoroutineDone()
		free()
	}()
}

// liveGoroutineDone accounts for a goroutine counted in liveTasks that
// returned.
func (k *Kernel) liveGoroutineDone() {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	k.liveTasks--
	k.stopCond.Broadcast()
	if k.liveTasks == 0 && k.done {
		k.exitedTimingLocked()
		close(k.exited)
	}
}

// clearTIDOnExit implements CLONE_CHILD_CLEARTID / set_tid_address: the
// exiting thread's TID word is zeroed and one futex waiter woken, which is
// how pthread_join learns that a thread is gone.
//
// Preconditions: called by the task goroutine.
func (t *Task) clearTIDOnExit() {
	addr := t.clearChildTID
	if addr == 0 || t.tg.isExiting() {
		return
	}
	if err := t.copyOutUint32(addr, 0); err != nil {
		return
	}
	t.tg.futexes().wake(addr, 1, futexBitsetMatchAny)
}
