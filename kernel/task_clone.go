package kernel

import (
	"golang.org/x/sys/unix"
)

func init() {
	registerSyscall(unix.SYS_CLONE, "clone", sysClone)
	// clone3 is not implemented; libcs fall back to clone on ENOSYS.
	registerSyscall(unix.SYS_CLONE3, "clone3", func(*Task, *sysArgs) (uint64, error) { return 0, unix.ENOSYS })
}

// threadFlags are the clone flags that make a thread (what pthread_create
// and the Go runtime pass); all must be present.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD

// supportedCloneFlags may accompany threadFlags.
const supportedCloneFlags = threadFlags | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS |
	unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_DETACHED

// sysClone implements clone(flags, newsp, parent_tid, child_tid, tls) for
// new threads. New processes (fork, vfork) are not implemented yet and get
// ENOSYS, which a shell reports as a failed fork.
func sysClone(t *Task, a *sysArgs) (uint64, error) {
	flags, sp, parentTID, childTID, tls := a[0], a[1], a[2], a[3], a[4]
	if flags&threadFlags != threadFlags || flags&^uint64(supportedCloneFlags|0xff) != 0 {
		return 0, unix.ENOSYS
	}
	if flags&0xff != 0 {
		return 0, unix.EINVAL // a thread has no exit signal
	}
	nt, err := t.newThread()
	if err != nil {
		return 0, err
	}
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
	if tg.exiting {
		tg.mu.Unlock()
		return 0, t.abandonThread(nt, errInterrupted)
	}
	tg.tasks = append(tg.tasks, nt)
	tg.mu.Unlock()
	nt.start()
	return uint64(nt.tid), nil
}

// newThread makes a task in t's process that continues from t's registers
// after the clone syscall, and registers its thread ID.
//
// Preconditions: called by t's task goroutine.
func (t *Task) newThread() (*Task, error) {
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.nextTID <= 0 {
		return nil, unix.EAGAIN // thread IDs exhausted
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
		fp:       append([]byte(nil), t.fp...),
		name:     name,
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
