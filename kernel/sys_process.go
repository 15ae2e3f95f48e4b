package kernel

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

func sysGetpid(t *Task, _ *sysArgs) (uint64, error) { return uint64(t.tg.tgid), nil }

func sysGettid(t *Task, _ *sysArgs) (uint64, error) { return uint64(t.tid), nil }

// sysExit ends the calling thread; the process ends with it if it was the
// last one (see Task.exit).
func sysExit(t *Task, a *sysArgs) (uint64, error) {
	t.exitRequested = true
	t.exitCode = int(a[0] & 0xff)
	return 0, nil
}

// sysExitGroup ends every thread of the process.
func sysExitGroup(t *Task, a *sysArgs) (uint64, error) {
	t.tg.exitGroup(ExitStatus{Code: int(a[0] & 0xff)})
	return 0, nil
}

func sysGetppid(t *Task, _ *sysArgs) (uint64, error) {
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.tg.parent == nil {
		return 0, nil
	}
	return uint64(t.tg.parent.tgid), nil
}

// credGetter makes a handler that returns one of the calling thread's IDs
// (only its own task goroutine changes them, so no lock is needed).
func credGetter(f func(credentials) uint32) syscallFn {
	return func(t *Task, _ *sysArgs) (uint64, error) {
		return uint64(f(t.creds)), nil
	}
}

func sysGetresid(f func(credentials) [3]uint32) syscallFn {
	return func(t *Task, a *sysArgs) (uint64, error) {
		for i, id := range f(t.creds) {
			if err := t.copyOutUint32(a[i], id); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}
}

// processByPID returns the process with the given ID (0: the caller's) or
// the process of the thread with that ID, as Linux's lookups by pid do: a
// zombie not yet reaped is found too. ESRCH if there is none, as for a
// negative ID.
func (t *Task) processByPID(pid int32) (*ThreadGroup, error) {
	if pid == 0 || pid == t.tg.tgid {
		return t.tg, nil
	}
	if pid < 0 {
		return nil, unix.ESRCH
	}
	tg, err := t.processHoldingPID(pid)
	if errors.Is(err, unix.ENOENT) {
		ts := t.k.tasks
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if o, ok := ts.tids[pid]; ok {
			return o.tg, nil
		}
		return nil, unix.ESRCH
	}
	return tg, err
}

func sysGetpgrp(t *Task, _ *sysArgs) (uint64, error) {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return uint64(t.tg.pgid), nil
}

func sysGetpgid(t *Task, a *sysArgs) (uint64, error) {
	tg, err := t.processByPID(a.Int(0))
	if err != nil {
		return 0, err
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return uint64(tg.pgid), nil
}

func sysSetpgid(t *Task, a *sysArgs) (uint64, error) {
	pid, pgid := a.Int(0), a.Int(1)
	if pid == 0 {
		pid = t.tg.tgid
	}
	if pgid == 0 {
		pgid = pid
	}
	if pgid < 0 {
		return 0, unix.EINVAL
	}
	tg, err := t.processByPID(pid)
	if err != nil {
		return 0, err
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.sid == tg.tgid {
		return 0, unix.EPERM // a session leader cannot change its group
	}
	tg.pgid = pgid
	return 0, nil
}

func sysGetsid(t *Task, a *sysArgs) (uint64, error) {
	tg, err := t.processByPID(a.Int(0))
	if err != nil {
		return 0, err
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return uint64(tg.sid), nil
}

func sysSetsid(t *Task, _ *sysArgs) (uint64, error) {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.pgid == tg.tgid {
		return 0, unix.EPERM // already a process group leader
	}
	tg.pgid, tg.sid = tg.tgid, tg.tgid
	tg.noCtty = false
	return uint64(tg.sid), nil
}

func sysSetTidAddress(t *Task, a *sysArgs) (uint64, error) {
	t.clearChildTID = a[0]
	return uint64(t.tid), nil
}

// robustListHeadSize is sizeof(struct robust_list_head) on x86-64.
const robustListHeadSize = 24

func sysSetRobustList(t *Task, a *sysArgs) (uint64, error) {
	if a[1] != robustListHeadSize {
		return 0, unix.EINVAL
	}
	t.robustList = a[0]
	return 0, nil
}

// arch_prctl codes (asm/prctl.h).
const (
	archSetGS = 0x1001
	archSetFS = 0x1002
	archGetFS = 0x1003
	archGetGS = 0x1004
)

func sysArchPrctl(t *Task, a *sysArgs) (uint64, error) {
	switch a[0] {
	case archSetFS:
		if a[1] >= 1<<47 {
			return 0, unix.EPERM
		}
		t.regs.FsBase = a[1]
	case archSetGS:
		if a[1] >= 1<<47 {
			return 0, unix.EPERM
		}
		t.regs.GsBase = a[1]
	case archGetFS:
		return 0, t.copyOutUint64(a[1], t.regs.FsBase)
	case archGetGS:
		return 0, t.copyOutUint64(a[1], t.regs.GsBase)
	default:
		return 0, unix.EINVAL
	}
	return 0, nil
}

// prctl options (linux/prctl.h).
const (
	prSetPdeathsig      = 1
	prGetPdeathsig      = 2
	prCapbsetRead       = 23
	prSetChildSubreaper = 36
	prSetNoNewPrivs     = 38
	prGetNoNewPrivs     = 39
	prGetDumpable       = 3
	prSetDumpable       = 4
	prSetName           = 15
	prGetName           = 16
	prSetTimerslack     = 29
	prGetTimerslack     = 30
	taskCommLen         = 16
)

func sysPrctl(t *Task, a *sysArgs) (uint64, error) {
	switch a[0] {
	case prSetName:
		buf := make([]byte, taskCommLen)
		// The name may end anywhere before 16 bytes; read what is
		// readable byte by byte at the end of a mapping.
		n := 0
		for ; n < taskCommLen-1; n++ {
			if err := t.tg.mm.CopyIn(a[1]+uint64(n), buf[n:n+1]); err != nil {
				return 0, err
			}
			if buf[n] == 0 {
				break
			}
		}
		t.mu.Lock()
		t.name = string(buf[:n])
		t.mu.Unlock()
		return 0, nil
	case prGetName:
		buf := make([]byte, taskCommLen)
		t.mu.Lock()
		copy(buf, t.name)
		t.mu.Unlock()
		return 0, t.tg.mm.CopyOut(a[1], buf)
	case prSetTimerslack:
		t.setTimerSlack(a[1])
		return 0, nil
	case prGetTimerslack:
		return t.timerSlack(), nil
	case prGetDumpable:
		return 1, nil
	case prSetPdeathsig, prSetChildSubreaper:
		return 0, nil // accepted; without effect in the sandbox
	case prGetPdeathsig:
		return 0, t.copyOutUint32(a[1], 0)
	case prSetDumpable:
		if a[1] > 1 {
			return 0, unix.EINVAL
		}
		return 0, nil
	default:
		if r, ok, err := t.prctlCreds(a); ok {
			return r, err
		}
		return 0, unix.EINVAL
	}
}

func sysUmask(t *Task, a *sysArgs) (uint64, error) {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	old := t.tg.umask
	t.tg.umask = uint32(a[0]) & 0o777
	return uint64(old), nil
}

// copyOutUint32 writes v at addr (nothing if addr is 0).
func (t *Task) copyOutUint32(addr uint64, v uint32) error {
	if addr == 0 {
		return nil
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return t.tg.mm.CopyOut(addr, b[:])
}

// copyOutUint64 writes v at addr.
func (t *Task) copyOutUint64(addr uint64, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return t.tg.mm.CopyOut(addr, b[:])
}

// copyInUint32 reads a uint32 at addr.
func (t *Task) copyInUint32(addr uint64) (uint32, error) {
	var b [4]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}
