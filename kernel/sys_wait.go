package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

func init() {
	registerSyscall(unix.SYS_WAIT4, "wait4", sysWait4)
	registerSyscall(unix.SYS_WAITID, "waitid", sysWaitid)
}

// waitFor finds a child matching pid (wait4's encoding: >0 that process,
// -1 any, 0 the caller's process group, < -1 group -pid) that has exited,
// and reaps it unless noReap. It blocks unless noHang (then it returns
// nil, nil). ECHILD if no child matches.
//
// Preconditions: called by the task goroutine.
func (t *Task) waitFor(pid int32, noHang, noReap bool) (*ThreadGroup, error) {
	ts := t.k.tasks
	t.tg.mu.Lock()
	myPgid := t.tg.pgid
	t.tg.mu.Unlock()
	for {
		ts.mu.Lock()
		found := false
		for i, c := range t.tg.children {
			c.mu.Lock()
			pgid := c.pgid
			c.mu.Unlock()
			switch {
			case pid > 0 && c.tgid != pid,
				pid == 0 && pgid != myPgid,
				pid < -1 && pgid != -pid:
				continue
			}
			found = true
			if !c.zombie {
				continue
			}
			if !noReap {
				t.tg.children = append(t.tg.children[:i], t.tg.children[i+1:]...)
			}
			ts.mu.Unlock()
			return c, nil
		}
		if !found {
			ts.mu.Unlock()
			return nil, unix.ECHILD
		}
		if noHang {
			ts.mu.Unlock()
			return nil, nil
		}
		ch := t.tg.childEventLocked()
		ts.mu.Unlock()
		if err := t.block(ch); err != nil {
			return nil, err
		}
	}
}

// waitStatus encodes an exit status as wait4's status word.
func waitStatus(s ExitStatus) uint32 {
	if s.Signal != 0 {
		return uint32(s.Signal) & 0x7f
	}
	return uint32(s.Code&0xff) << 8
}

// exitStatusOf returns a zombie's status.
func exitStatusOf(tg *ThreadGroup) ExitStatus {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.exitStatus
}

// wait options (linux/wait.h).
const (
	waitNoHang  = 1
	waitExited  = 4
	waitNoWait  = 0x01000000
	waitAll     = 0x40000000
	waitClone   = 0x80000000
	waitUntrace = 2
	waitCont    = 8
	waitNoThrd  = 0x20000000
)

func sysWait4(t *Task, a *sysArgs) (uint64, error) {
	opts := uint32(a[2])
	if opts&^uint32(waitNoHang|waitUntrace|waitCont|waitNoThrd|waitAll|waitClone) != 0 {
		return 0, unix.EINVAL
	}
	c, err := t.waitFor(a.Int(0), opts&waitNoHang != 0, false)
	if err != nil || c == nil {
		return 0, err
	}
	if a[1] != 0 {
		if err := t.copyOutUint32(a[1], waitStatus(exitStatusOf(c))); err != nil {
			return 0, err
		}
	}
	if a[3] != 0 {
		if err := t.tg.mm.ZeroOut(a[3], 144); err != nil { // struct rusage
			return 0, err
		}
	}
	return uint64(c.tgid), nil
}

// waitid idtypes.
const (
	pAll  = 0
	pPID  = 1
	pPGID = 2
)

// CLD_* si_code values.
const (
	cldExited = 1
	cldKilled = 2
)

func sysWaitid(t *Task, a *sysArgs) (uint64, error) {
	idtype, id, infop, opts := a.Int(0), a.Int(1), a[2], uint32(a[3])
	if opts&^uint32(waitNoHang|waitExited|waitUntrace|waitCont|waitNoWait|waitNoThrd|waitAll|waitClone) != 0 || opts&waitExited == 0 {
		return 0, unix.EINVAL
	}
	var pid int32
	switch idtype {
	case pAll:
		pid = -1
	case pPID:
		if id <= 0 {
			return 0, unix.EINVAL
		}
		pid = id
	case pPGID:
		if id < 0 {
			return 0, unix.EINVAL
		}
		pid = -id
		if id == 0 {
			pid = 0
		}
	default:
		return 0, unix.EINVAL
	}
	c, err := t.waitFor(pid, opts&waitNoHang != 0, opts&waitNoWait != 0)
	if err != nil {
		return 0, err
	}
	if infop == 0 {
		return 0, nil
	}
	var info [128]byte // siginfo_t
	if c != nil {
		st := exitStatusOf(c)
		le := binary.LittleEndian
		le.PutUint32(info[0:], uint32(unix.SIGCHLD))
		code, status := uint32(cldExited), uint32(st.Code&0xff)
		if st.Signal != 0 {
			code, status = cldKilled, uint32(st.Signal)
		}
		le.PutUint32(info[8:], code)
		le.PutUint32(info[16:], uint32(c.tgid))
		c.mu.Lock()
		le.PutUint32(info[20:], c.creds.UID)
		c.mu.Unlock()
		le.PutUint32(info[24:], status)
	}
	return 0, t.tg.mm.CopyOut(infop, info[:])
}
