package kernel

import (
	"errors"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

func sysExecve(t *Task, a *sysArgs) (uint64, error) {
	return t.execve(unix.AT_FDCWD, a[0], a[1], a[2], 0)
}

func sysExecveat(t *Task, a *sysArgs) (uint64, error) {
	return t.execve(a.Int(0), a[1], a[2], a[3], int(a.Int(4)))
}

// maxArgCount bounds argv and envp entries, as Linux's MAX_ARG_STRINGS.
const maxArgCount = 0x7fffffff

// copyInStrings reads a NULL-terminated array of string pointers at addr,
// charging the strings to *budget bytes (E2BIG when exhausted).
func (t *Task) copyInStrings(addr uint64, budget *int) ([]string, error) {
	var out []string
	if addr == 0 {
		return nil, nil
	}
	for i := uint64(0); ; i++ {
		if i >= maxArgCount {
			return nil, unix.E2BIG
		}
		var b [8]byte
		if err := t.tg.mm.CopyIn(addr+8*i, b[:]); err != nil {
			return nil, err
		}
		p := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if p == 0 {
			return out, nil
		}
		s, err := t.tg.mm.CopyInString(p, *budget)
		if errors.Is(err, errNameTooLong) {
			return nil, unix.E2BIG
		}
		if err != nil {
			return nil, err
		}
		*budget -= len(s) + 1
		if *budget < 0 {
			return nil, unix.E2BIG
		}
		out = append(out, s)
	}
}

// execve replaces the process image: a new address space with the program
// loaded, close-on-exec descriptors closed, signal dispositions reset. In a
// multi-threaded process the other threads end first and the caller takes
// over the process ID as its thread ID, as in Linux. A failure before that
// leaves the old image intact and returns the error.
func (t *Task) execve(dirfd int32, pathAddr, argvAddr, envpAddr uint64, flags int) (uint64, error) {
	if flags&^(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
		return 0, unix.EINVAL
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	budget := maxArgStrings
	argv, err := t.copyInStrings(argvAddr, &budget)
	if err != nil {
		return 0, err
	}
	envv, err := t.copyInStrings(envpAddr, &budget)
	if err != nil {
		return 0, err
	}
	tg := t.tg

	var f interface{ DecRef() }
	ef, err := openExecFileAt(tg.fs, procView{t}, dir, p, flags)
	if err != nil {
		return 0, execErrno(err)
	}
	f = ef
	defer f.DecRef()
	if len(argv) == 0 {
		argv = []string{""} // Linux passes an empty argv[0] for a NULL argv.
	}
	filename, inaccessible := t.execFilename(dirfd, p)
	img, err := resolveScripts(tg.fs, ef, filename, inaccessible, argv)
	if err != nil {
		return 0, execErrno(err)
	}
	defer img.file.DecRef()
	k := t.k
	as, err := t.execAddressSpace()
	if err != nil {
		return 0, unix.ENOMEM
	}
	mm, err := NewMM(k.mf, as, k.platform.MinUserAddress(), k.platform.MaxUserAddress())
	if err != nil {
		as.Release()
		return 0, unix.ENOMEM
	}
	creds, secure := t.creds.afterExec()
	regs, err := k.loadProgram(mm, tg.fs, img.file, img.path, filename, img.argv, envv, creds, secure)
	if err != nil {
		mm.Release()
		return 0, execErrno(err)
	}
	// The new image is ready: end the other threads (the point of no
	// return; an interruption restarts the whole execve).
	if err := t.becomeOnlyThread(); err != nil {
		mm.Release()
		return 0, err
	}

	tg.mu.Lock()
	old := tg.mm
	tg.mm = mm
	tg.membarrier = 0 // registrations belong to the address space
	t.creds = creds
	tg.mu.Unlock()
	t.k.shmMappingsChanged(old, tg.tgid, true)
	t.dropStub() // its stub goes with the old address space
	t.startExecFree()
	if free := old.release(); free != nil {
		if k.mf.lazyLoader() != nil {
			free() // a lazy restore loads what it frees first: not in the background
		} else {
			// Off the way back to the program, and after the next
			// Switch: a stub kept across the exec (platform.Renewer)
			// maps the old image until that Switch unmaps it, and
			// punching holes in pages a stub maps makes the host unmap
			// them page by page, contending with that unmap.
			t.execFree = free
		}
	}
	tg.closeOnExec()
	t.signalsOnExec()
	t.regs = regs
	t.setFPState(nil)
	t.clearChildTID = 0
	t.robustList = 0
	t.restart = restartBlock{}
	t.mu.Lock()
	t.name = commName(filename)
	t.mu.Unlock()
	tg.mu.Lock()
	tg.exe = exePath(tg.fs, img)
	tg.mu.Unlock()
	ts := k.tasks
	ts.mu.Lock()
	tg.vforkReleaseLocked()
	ts.mu.Unlock()
	return 0, errNoSyscallReturn
}

// execAddressSpace returns the platform address space for the new image of
// an execve: the old one's host resources renewed (platform.Renewer: the
// ptrace stub process, which then need not be made, nor the old one torn
// down) when nothing but this task uses the old address space, else a new
// one. Either way the old image keeps running until the old address space
// is released.
//
// Preconditions: called by the task goroutine.
func (t *Task) execAddressSpace() (platform.AddressSpace, error) {
	t.tg.mu.Lock()
	alone := len(t.tg.tasks) == 1
	t.tg.mu.Unlock()
	if alone {
		if as := t.tg.mm.renewAddressSpace(); as != nil {
			return as, nil
		}
	}
	return t.k.platform.NewAddressSpace()
}

// execErrno maps a program loading failure to execve's errno.
func execErrno(err error) error {
	var errno unix.Errno
	switch {
	case errors.Is(err, ErrNoExec):
		return unix.ENOEXEC
	case errors.Is(err, ErrArgListTooLong):
		return unix.E2BIG
	case errors.Is(err, ErrNoMemory):
		return unix.ENOMEM
	case errors.As(err, &errno):
		return errno
	default:
		return unix.EIO
	}
}

// becomeOnlyThread ends every other thread of the process for execve and
// waits until they are gone, then gives t the leader's thread ID (the
// process ID) if t is not the leader, as Linux's de_thread. It returns
// errRestartNoIntr when interrupted (a signal, a stop for a save), so that
// the execve runs again, and errInterrupted when the process is exiting or
// another thread is already in execve (this thread then ends).
//
// Preconditions: called by the task goroutine.
func (t *Task) becomeOnlyThread() error {
	tg := t.tg
	for {
		tg.mu.Lock()
		if tg.exiting || (tg.sigs.ExecTask != nil && tg.sigs.ExecTask != t) {
			tg.mu.Unlock()
			return errInterrupted
		}
		if len(tg.tasks) == 1 {
			tg.sigs.ExecTask = nil
			tg.mu.Unlock()
			break
		}
		tg.sigs.ExecTask = t
		if tg.sigs.execDone == nil {
			tg.sigs.execDone = make(chan struct{})
		}
		done := tg.sigs.execDone
		others := make([]*Task, 0, len(tg.tasks)-1)
		for _, o := range tg.tasks {
			if o != t {
				// Their thread-directed signals go with them.
				o.sig.Pending = sigPending{}
				others = append(others, o)
			}
		}
		tg.mu.Unlock()
		for _, o := range others {
			o.interrupt()
		}
		if err := t.block(done); err != nil {
			return errRestartNoIntr
		}
	}
	if tg.leader == t {
		return nil
	}
	ts := t.k.tasks
	ts.mu.Lock()
	delete(ts.tids, t.tid)
	t.tid = tg.tgid
	ts.tids[t.tid] = t
	ts.mu.Unlock()
	tg.mu.Lock()
	tg.leader = t
	tg.mu.Unlock()
	return nil
}
