package kernel

import (
	"golang.org/x/sys/unix"
)

func sysFork(t *Task, _ *sysArgs) (uint64, error) {
	return t.fork(uint64(unix.SIGCHLD), 0, 0, 0, 0)
}

func sysVfork(t *Task, _ *sysArgs) (uint64, error) {
	return t.fork(uint64(unix.SIGCHLD|unix.CLONE_VM|unix.CLONE_VFORK), 0, 0, 0, 0)
}

// threadFlags are the clone flags that make a thread (what pthread_create
// and the Go runtime pass); all must be present.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD

// supportedCloneFlags may accompany threadFlags.
const supportedCloneFlags = threadFlags | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS |
	unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_DETACHED

// forkFlags may be given to clone for a new process.
const forkFlags = unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID |
	unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_SYSVSEM | 0xff

// sysClone implements clone(flags, newsp, parent_tid, child_tid, tls): new
// threads (CLONE_THREAD) and new processes (fork, vfork, posix_spawn).
func sysClone(t *Task, a *sysArgs) (uint64, error) {
	flags, sp, parentTID, childTID, tls := a[0], a[1], a[2], a[3], a[4]
	if flags&unix.CLONE_THREAD == 0 {
		if flags&^uint64(forkFlags) != 0 {
			return 0, unix.EINVAL
		}
		if flags&unix.CLONE_VM != 0 && flags&unix.CLONE_VFORK == 0 {
			return 0, unix.EINVAL // a process sharing memory without vfork
		}
		return t.fork(flags, sp, parentTID, childTID, tls)
	}
	if flags&threadFlags != threadFlags || flags&^uint64(supportedCloneFlags|0xff) != 0 {
		return 0, unix.EINVAL
	}
	if flags&0xff != 0 {
		return 0, unix.EINVAL // a thread has no exit signal
	}
	nt, err := t.newThread()
	if err != nil {
		return 0, err
	}
	nt.setCloneRegs(flags, sp, tls, childTID)
	if flags&unix.CLONE_PARENT_SETTID != 0 {
		if err := t.copyOutUint32(parentTID, uint32(nt.tid)); err != nil {
			return 0, t.abandonThread(nt, err)
		}
	}
	if flags&unix.CLONE_CHILD_SETTID != 0 {
		if err := t.copyOutUint32(childTID, uint32(nt.tid)); err != nil {
			return 0, t.abandonThread(nt, err)
		}
	}
	tg := t.tg
	tg.mu.Lock()
	if tg.exiting || tg.sigs.ExecTask != nil {
		// Exiting, or another thread's execve is ending this one.
		tg.mu.Unlock()
		return 0, t.abandonThread(nt, errInterrupted)
	}
	tg.tasks = append(tg.tasks, nt)
	tg.mu.Unlock()
	t.signalsOnNewTask(nt, false)
	nt.start()
	return uint64(nt.tid), nil
}

// newThread makes a task in t's process that continues from t's registers
// after the clone syscall, and registers its thread ID.
//
// Preconditions: called by t's task goroutine.
func (t *Task) newThread() (*Task, error) {
	fp := t.fpState()
	sched := t.schedForClone()
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.nextTID <= 0 || !t.k.taskAllowedLocked() {
		return nil, unix.EAGAIN // thread IDs exhausted, or the task limit reached
	}
	t.mu.Lock()
	name := t.name
	t.mu.Unlock()
	nt := &Task{
		k:        t.k,
		tg:       t.tg,
		tid:      ts.nextTID,
		runState: stateApp,
		regs:     t.regs,
		fp:       append([]byte(nil), fp...),
		name:     name,
		sched:    sched,
		creds:    t.creds,
	}
	ts.nextTID++
	ts.tids[nt.tid] = nt
	return nt, nil
}

// abandonThread undoes newThread for a thread that never started and
// returns err.
func (t *Task) abandonThread(nt *Task, err error) error {
	ts := t.k.tasks
	ts.mu.Lock()
	delete(ts.tids, nt.tid)
	ts.mu.Unlock()
	return err
}

// fork makes a child process: a copy of its descriptor table and
// filesystem context, and one thread continuing from the caller's registers
// with 0 as the result. With CLONE_VM (only allowed with CLONE_VFORK) the
// child runs in the caller's address space until it execs or exits, as
// Linux's vfork; otherwise it gets a copy of the caller's memory in a new
// address space. With CLONE_VFORK the caller then waits (runVforkWait,
// after doSyscall) until the child execs or exits.
func (t *Task) fork(flags, sp, parentTID, childTID, tls uint64) (uint64, error) {
	if !t.k.taskAllowed() {
		return 0, unix.EAGAIN // before copying the memory for nothing
	}
	fp := t.fpState()
	var mm *MM
	if flags&unix.CLONE_VM != 0 {
		mm = t.tg.mm
		mm.addUser()
	} else {
		as, err := t.k.platform.NewAddressSpace()
		if err != nil {
			return 0, unix.EAGAIN
		}
		if mm, err = t.tg.mm.fork(as); err != nil {
			as.Release()
			return 0, unix.ENOMEM
		}
	}
	ptg := t.tg
	ptg.mu.Lock()
	ntg := &ThreadGroup{
		k:          t.k,
		mm:         mm,
		fdTable:    ptg.fdTable.Fork(),
		fs:         ptg.fs.Fork(),
		pgid:       ptg.pgid,
		sid:        ptg.sid,
		umask:      ptg.umask,
		exe:        ptg.exe,
		specials:   append([]special(nil), ptg.specials...),
		limits:     ptg.limits,
		membarrier: ptg.membarrier,
		exitSignal: int32(flags & 0xff),
	}
	ptg.mu.Unlock()

	t.mu.Lock()
	name := t.name
	t.mu.Unlock()
	nt := &Task{
		k:        t.k,
		tg:       ntg,
		runState: stateApp,
		regs:     t.regs,
		fp:       append([]byte(nil), fp...),
		name:     name,
		sched:    t.schedForClone(),
		creds:    t.creds,
	}
	nt.setCloneRegs(flags, sp, tls, childTID)

	ts := t.k.tasks
	ts.mu.Lock()
	if ts.nextTID <= 0 || ptg.isExiting() || !t.k.taskAllowedLocked() {
		ts.mu.Unlock()
		ntg.release()
		return 0, unix.EAGAIN
	}
	nt.tid = ts.nextTID
	ts.nextTID++
	ntg.tgid = nt.tid
	ntg.leader = nt
	ntg.tasks = []*Task{nt}
	ntg.parent = ptg
	ptg.children = append(ptg.children, ntg)
	ts.tids[nt.tid] = nt
	ts.mu.Unlock()

	if flags&unix.CLONE_CHILD_SETTID != 0 {
		var b [4]byte
		b[0], b[1], b[2], b[3] = byte(nt.tid), byte(nt.tid>>8), byte(nt.tid>>16), byte(nt.tid>>24)
		mm.CopyOut(childTID, b[:]) // a bad address only loses the notification, as in Linux
	}
	if flags&unix.CLONE_PARENT_SETTID != 0 {
		t.copyOutUint32(parentTID, uint32(nt.tid))
	}
	t.signalsOnNewTask(nt, true)
	nt.start()
	if flags&unix.CLONE_VFORK != 0 {
		t.vforkChild = ntg
	}
	return uint64(nt.tid), nil
}

// setCloneRegs gives a new thread or process its clone(2) return value (0),
// and the stack, TLS base and child TID address clone asked for.
func (nt *Task) setCloneRegs(flags, sp, tls, childTID uint64) {
	nt.regs.Rax = 0
	if sp != 0 {
		nt.regs.Rsp = sp
	}
	if flags&unix.CLONE_SETTLS != 0 {
		nt.regs.FsBase = tls
	}
	if flags&unix.CLONE_CHILD_CLEARTID != 0 {
		nt.clearChildTID = childTID
	}
}

// taskAllowed reports whether one more task stays within the task limit.
func (k *Kernel) taskAllowed() bool {
	k.tasks.mu.Lock()
	defer k.tasks.mu.Unlock()
	return k.taskAllowedLocked()
}

// taskAllowedLocked is taskAllowed with the TaskSet's mu held.
//
// Preconditions: k.tasks.mu is held.
func (k *Kernel) taskAllowedLocked() bool { return len(k.tasks.tids) < k.limits.Tasks }
