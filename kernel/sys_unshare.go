package kernel

import "golang.org/x/sys/unix"

// unshareFlags are the flags unshare(2) knows (Linux's check_unshare_flags).
const unshareFlags = unix.CLONE_THREAD | unix.CLONE_FS | unix.CLONE_NEWNS | unix.CLONE_SIGHAND |
	unix.CLONE_VM | unix.CLONE_FILES | unix.CLONE_SYSVSEM | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWNET | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// namespaceFlags create namespaces.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// sysUnshare implements unshare(flags) for a process whose threads share
// everything: with one thread (and no vfork child sharing its memory),
// unsharing the descriptor table, filesystem context, signal handlers,
// memory or System V semaphores changes nothing and succeeds; with more
// threads it is EINVAL, as Linux says for CLONE_THREAD, CLONE_SIGHAND and
// CLONE_VM (and for CLONE_FILES and CLONE_FS, which Linux could do: the
// sandbox cannot give one thread its own table yet). New namespaces are
// EPERM, as for a process without CAP_SYS_ADMIN where unprivileged user
// namespaces are disabled. Unknown flags are EINVAL.
func sysUnshare(t *Task, a *sysArgs) (uint64, error) {
	flags := a[0]
	if flags&unix.CLONE_NEWUSER != 0 {
		flags |= unix.CLONE_THREAD | unix.CLONE_FS
	}
	if flags&unix.CLONE_VM != 0 {
		flags |= unix.CLONE_SIGHAND
	}
	if flags&unix.CLONE_SIGHAND != 0 {
		flags |= unix.CLONE_THREAD
	}
	if flags&unix.CLONE_NEWNS != 0 {
		flags |= unix.CLONE_FS
	}
	if flags&^uint64(unshareFlags) != 0 {
		return 0, unix.EINVAL
	}
	if flags&(unix.CLONE_THREAD|unix.CLONE_SIGHAND|unix.CLONE_VM|unix.CLONE_FILES|unix.CLONE_FS) != 0 && !t.singleThreaded() {
		return 0, unix.EINVAL
	}
	if flags&namespaceFlags != 0 {
		return 0, unix.EPERM
	}
	return 0, nil
}

// singleThreaded reports whether t is the only thread of its process and
// no other process shares its memory.
func (t *Task) singleThreaded() bool {
	t.tg.mu.Lock()
	alone := len(t.tg.tasks) == 1
	t.tg.mu.Unlock()
	mm := t.tg.mm
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	return alone && mm.users <= 1
}
