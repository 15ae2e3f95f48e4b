package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

func sysFork(t *Task, _ *sysArgs) (uint64, error) {
	return t.fork(uint64(unix.SIGCHLD), 0, 0, 0, 0, nil)
}

func sysVfork(t *Task, _ *sysArgs) (uint64, error) {
	return t.fork(uint64(unix.SIGCHLD|unix.CLONE_VM|unix.CLONE_VFORK), 0, 0, 0, 0, nil)
}

// threadFlags are the clone flags that make a thread (what pthread_create
// and the Go runtime pass); all must be present.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD

// supportedCloneFlags may accompany threadFlags.
const supportedCloneFlags = threadFlags | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS |
	unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_DETACHED

// forkFlags may be given to clone for a new process.
const forkFlags = unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID |
	unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_SYSVSEM | unix.CLONE_PIDFD | 0xff

// sysClone implements clone(flags, newsp, parent_tid, child_tid, tls): new
// threads (CLONE_THREAD) and new processes (fork, vfork, posix_spawn).
func sysClone(t *Task, a *sysArgs) (uint64, error) {
	flags := a[0]
	if flags&unix.CLONE_PIDFD != 0 && flags&unix.CLONE_PARENT_SETTID != 0 {
		return 0, unix.EINVAL // both would use parent_tid
	}
	return t.clone(flags, a[1], a[2], a[3], a[4], a[2])
}

// clone makes a thread or a process for clone and clone3. flags carries
// the exit signal in its low byte; the pidfd of CLONE_PIDFD is stored at
// pidfdAddr.
func (t *Task) clone(flags, sp, parentTID, childTID, tls, pidfdAddr uint64) (uint64, error) {
	if flags&unix.CLONE_THREAD == 0 {
		if flags&^uint64(forkFlags) != 0 {
			return 0, unix.EINVAL
		}
		if flags&unix.CLONE_VM != 0 && flags&unix.CLONE_VFORK == 0 {
			return 0, unix.EINVAL // a process sharing memory without vfork
		}
		if flags&unix.CLONE_PIDFD != 0 {
			return t.forkWithPidfd(flags, sp, parentTID, childTID, tls, pidfdAddr)
		}
		return t.fork(flags, sp, parentTID, childTID, tls, nil)
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
	tg.repollCPUTimersLocked()
	tg.mu.Unlock()
	t.signalsOnNewTask(nt, false)
	nt.start()
	return uint64(nt.tid), nil
}

// forkWithPidfd is fork for clone(CLONE_PIDFD): a pidfd for the child is
// installed first and its number stored at pidfdAddr, so that a full
// descriptor table or a bad address fails the call before any child
// exists, as on Linux.
func (t *Task) forkWithPidfd(flags, sp, parentTID, childTID, tls, pidfdAddr uint64) (uint64, error) {
	p := &pidFD{}
	fd, err := t.installSpecial(p, unix.O_CLOEXEC)
	if err != nil {
		return 0, err
	}
	if err := t.copyOutUint32(pidfdAddr, uint32(fd)); err != nil {
		t.closeFD(int32(fd))
		return 0, err
	}
	tid, err := t.fork(flags, sp, parentTID, childTID, tls, p)
	if err != nil {
		t.closeFD(int32(fd))
	}
	return tid, err
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
//
// A non-nil pfd (clone(CLONE_PIDFD)) is given the child before it starts.
func (t *Task) fork(flags, sp, parentTID, childTID, tls uint64, pfd *pidFD) (uint64, error) {
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
		if mm, err = t.tg.mm.forkCopying(as, t.regs.Rsp, eagerCopyBudget); err != nil {
			as.Release()
			return 0, unix.ENOMEM
		}
		t.k.shmMappingsChanged(mm, t.tg.tgid, false)
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
		noCtty:     ptg.noCtty,
		umask:      ptg.umask,
		exe:        ptg.exe,
		specials:   append([]special(nil), ptg.specials...),
		limits:     ptg.limits,
		membarrier: ptg.membarrier,
		exitSignal: int32(flags & 0xff),
		started:    t.k.monotonicNow(),
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
		if free := ntg.release(); free != nil {
			free()
		}
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
	if pfd != nil {
		pfd.mu.Lock()
		pfd.tg = ntg
		pfd.mu.Unlock()
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

// clone3's struct clone_args: its first version's size and the size of
// the version this kernel knows (with set_tid, set_tid_size and cgroup).
const (
	cloneArgsSizeVer0 = 64
	cloneArgsSize     = 88
)

// clone3 flags beyond clone's, refused: CLONE_CLEAR_SIGHAND and
// CLONE_INTO_CGROUP.
const (
	cloneClearSighand = 1 << 32
	cloneIntoCgroup   = 1 << 33
)

// sysClone3 implements clone3(args, size) on top of clone: the stack is
// given as a base and a size, the exit signal in its own field and the
// pidfd at its own address. set_tid, CLONE_CLEAR_SIGHAND and
// CLONE_INTO_CGROUP are EINVAL.
func sysClone3(t *Task, a *sysArgs) (uint64, error) {
	addr, size := a[0], a[1]
	if size < cloneArgsSizeVer0 {
		return 0, unix.EINVAL
	}
	if size > pageSize {
		return 0, unix.E2BIG
	}
	buf := make([]byte, size)
	if err := t.tg.mm.CopyIn(addr, buf); err != nil {
		return 0, err
	}
	for _, b := range buf[min(size, cloneArgsSize):] {
		if b != 0 {
			return 0, unix.E2BIG // a newer field this kernel does not know
		}
	}
	buf = append(buf, make([]byte, cloneArgsSize)...)
	var f [11]uint64
	for i := range f {
		f[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize :=
		f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
	switch {
	case flags&0xff != 0, exitSignal&^0xff != 0,
		flags&(cloneClearSighand|cloneIntoCgroup) != 0,
		setTID != 0 || setTIDSize != 0,
		(stack == 0) != (stackSize == 0):
		return 0, unix.EINVAL
	case flags&unix.CLONE_THREAD != 0 && flags&unix.CLONE_PIDFD != 0:
		return 0, unix.EINVAL
	}
	sp := uint64(0)
	if stack != 0 {
		sp = stack + stackSize
	}
	return t.clone(flags|exitSignal, sp, parentTID, childTID, tls, pidfd)
}
