package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// waitEvent is what a wait reports about a child.
type waitEvent uint8

const (
	waitEventExited waitEvent = iota
	waitEventStopped
	waitEventContinued
)

// waitResult is the child a wait found and what happened to it.
type waitResult struct {
	child *ThreadGroup
	event waitEvent
	// stopSignal is the signal that stopped the child, for
	// waitEventStopped.
	stopSignal int32
	// user and sys are the CPU time that reaping the child added to the
	// caller's RUSAGE_CHILDREN (childTimesOf), for wait4's rusage.
	user, sys int64
}

// waitOptions says which children and events a wait looks for.
type waitOptions struct {
	// pid selects children with wait4's encoding: >0 that process, -1
	// any, 0 the caller's process group, < -1 group -pid.
	pid int32
	// exited, stopped and continued select the events (WEXITED,
	// WUNTRACED/WSTOPPED, WCONTINUED).
	exited, stopped, continued bool
	// noHang returns at once when nothing is ready; noWait leaves the
	// event to be reported again (WNOWAIT).
	noHang, noWait bool
}

// waitFor finds a child matching o.pid with an event o asks for: an exit
// (the zombie is reaped unless o.noWait), a stop or a continue (consumed
// unless o.noWait). It blocks unless o.noHang (then it returns nil, nil).
// ECHILD if no child matches.
//
// Preconditions: called by the task goroutine.
func (t *Task) waitFor(o waitOptions) (*waitResult, error) {
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
			switch {
			case o.pid > 0 && c.tgid != o.pid,
				o.pid == 0 && pgid != myPgid,
				o.pid < -1 && pgid != -o.pid:
				c.mu.Unlock()
				continue
			}
			found = true
			r := waitResult{child: c}
			switch {
			case c.zombie:
				if !o.exited {
					c.mu.Unlock()
					continue
				}
				user, sys := childTimesOf(c)
				r.user, r.sys = user, sys
				c.mu.Unlock()
				if !o.noWait {
					t.tg.children = append(t.tg.children[:i], t.tg.children[i+1:]...)
					c.notifyExitLocked()
					t.tg.mu.Lock()
					t.tg.sigs.ChildUser += user
					t.tg.sigs.ChildSys += sys
					t.tg.mu.Unlock()
				}
				ts.mu.Unlock()
				return &r, nil
			case o.stopped && c.sigs.StopReport && !c.exiting:
				r.event, r.stopSignal = waitEventStopped, c.sigs.StopSignal
				if !o.noWait {
					c.sigs.StopReport = false
				}
			case o.continued && c.sigs.ContinueReport && !c.exiting:
				r.event = waitEventContinued
				if !o.noWait {
					c.sigs.ContinueReport = false
				}
			default:
				c.mu.Unlock()
				continue
			}
			c.mu.Unlock()
			ts.mu.Unlock()
			return &r, nil
		}
		if !found {
			ts.mu.Unlock()
			return nil, unix.ECHILD
		}
		if o.noHang {
			ts.mu.Unlock()
			return nil, nil
		}
		ch := t.tg.childEventLocked()
		ts.mu.Unlock()
		t.waitingChild.Store(true)
		err := t.block(ch)
		t.waitingChild.Store(false)
		if err != nil {
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

// status returns wait4's status word for r: the exit status, 0x7f with
// the stop signal for a stop, 0xffff for a continue.
func (r *waitResult) status() uint32 {
	switch r.event {
	case waitEventStopped:
		return uint32(r.stopSignal)<<8 | 0x7f
	case waitEventContinued:
		return 0xffff
	}
	return waitStatus(exitStatusOf(r.child))
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
	r, err := t.waitFor(waitOptions{
		pid:       a.Int(0),
		exited:    true,
		stopped:   opts&waitUntrace != 0,
		continued: opts&waitCont != 0,
		noHang:    opts&waitNoHang != 0,
	})
	if err != nil || r == nil {
		return 0, err
	}
	if a[1] != 0 {
		if err := t.copyOutUint32(a[1], r.status()); err != nil {
			return 0, err
		}
	}
	if a[3] != 0 {
		if err := t.copyOutRusage(a[3], r.user, r.sys); err != nil {
			return 0, err
		}
	}
	return uint64(r.child.tgid), nil
}

// waitid idtypes.
const (
	pAll  = 0
	pPID  = 1
	pPGID = 2
	// pPIDFD selects the process of a pidfd.
	pPIDFD = 3
)

// CLD_* si_code values.
const (
	cldExited    = 1
	cldKilled    = 2
	cldStopped   = 5
	cldContinued = 6
)

func sysWaitid(t *Task, a *sysArgs) (uint64, error) {
	idtype, id, infop, opts := a.Int(0), a.Int(1), a[2], uint32(a[3])
	if opts&^uint32(waitNoHang|waitExited|waitUntrace|waitCont|waitNoWait|waitNoThrd|waitAll|waitClone) != 0 ||
		opts&(waitExited|waitUntrace|waitCont) == 0 {
		return 0, unix.EINVAL
	}
	var pid int32
	pidfdNonblocking := false
	switch idtype {
	case pPIDFD:
		var err error
		if pid, pidfdNonblocking, err = t.pidfdWaitTarget(id); err != nil {
			return 0, err
		}
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
	r, err := t.waitFor(waitOptions{
		pid:       pid,
		exited:    opts&waitExited != 0,
		stopped:   opts&waitUntrace != 0,
		continued: opts&waitCont != 0,
		noHang:    opts&waitNoHang != 0 || pidfdNonblocking,
		noWait:    opts&waitNoWait != 0,
	})
	if err != nil {
		return 0, err
	}
	if r == nil && pidfdNonblocking && opts&waitNoHang == 0 {
		return 0, unix.EAGAIN
	}
	if infop == 0 {
		return 0, nil
	}
	var info [128]byte // siginfo_t
	if r != nil {
		c := r.child
		var code, status uint32
		switch r.event {
		case waitEventStopped:
			code, status = cldStopped, uint32(r.stopSignal)
		case waitEventContinued:
			code, status = cldContinued, uint32(unix.SIGCONT)
		default:
			st := exitStatusOf(c)
			code, status = cldExited, uint32(st.Code&0xff)
			if st.Signal != 0 {
				code, status = cldKilled, uint32(st.Signal)
			}
		}
		le := binary.LittleEndian
		le.PutUint32(info[0:], uint32(unix.SIGCHLD))
		le.PutUint32(info[8:], code)
		le.PutUint32(info[16:], uint32(c.tgid))
		c.mu.Lock()
		le.PutUint32(info[20:], c.leader.creds.UID)
		c.mu.Unlock()
		le.PutUint32(info[24:], status)
	}
	return 0, t.tg.mm.CopyOut(infop, info[:])
}
