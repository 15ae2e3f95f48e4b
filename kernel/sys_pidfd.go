package kernel

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// A pidfd is a descriptor that refers to a process of the sandbox (never a
// thread: PIDFD_THREAD is EINVAL). It is made by pidfd_open or by
// clone(CLONE_PIDFD), signals its process (pidfd_send_signal), copies a
// descriptor out of it (pidfd_getfd), selects it in waitid(P_PIDFD), and
// polls readable once the process has exited (with POLLHUP too once it has
// been reaped). It keeps the ThreadGroup, which a save writes like any
// other, zombie or reaped.

// pidfdNonblock is PIDFD_NONBLOCK (O_NONBLOCK).
const pidfdNonblock = unix.O_NONBLOCK

// pollRdnorm is POLLRDNORM.
const pollRdnorm = 0x40

// capSysPtrace is CAP_SYS_PTRACE.
const capSysPtrace = 19

// pidFD is a pidfd's kernel object.
//
// +stateify savable
type pidFD struct {
	// mu protects tg.
	mu sync.Mutex `state:"nosave"`
	// tg is the process. Set once, before the descriptor is returned
	// (clone(CLONE_PIDFD) installs the descriptor, then makes the child).
	// Protected by mu.
	tg *ThreadGroup
}

func (p *pidFD) process() *ThreadGroup {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tg
}

func (p *pidFD) read(*Task, []byte, bool) (int, error)  { return 0, unix.EINVAL }
func (p *pidFD) write(*Task, []byte, bool) (int, error) { return 0, unix.EINVAL }

// readiness implements poll: POLLIN once the process has exited, POLLHUP
// as well once it has been reaped, as Linux's pidfd_poll.
func (p *pidFD) readiness(mask uint32) uint32 {
	tg := p.process()
	if tg == nil {
		return 0
	}
	ts := tg.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var r uint32
	if tg.zombie {
		r = unix.POLLIN | pollRdnorm
		if tg.reapedLocked() {
			r |= unix.POLLHUP
		}
	}
	return r & (mask | unix.POLLHUP)
}

func (p *pidFD) changed() <-chan struct{} {
	tg := p.process()
	if tg == nil {
		return nil
	}
	ts := tg.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if tg.exitEvent == nil {
		tg.exitEvent = make(chan struct{})
	}
	return tg.exitEvent
}

// reapedLocked reports whether a zombie has been reaped (its parent no
// longer lists it).
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) reapedLocked() bool {
	if !tg.zombie {
		return false
	}
	p := tg.parent
	if p == nil {
		return false
	}
	for _, c := range p.children {
		if c == tg {
			return false
		}
	}
	return true
}

// notifyExitLocked wakes the pollers of the process's pidfds: it exited or
// was reaped.
//
// Preconditions: TaskSet.mu is held.
func (tg *ThreadGroup) notifyExitLocked() {
	if tg.exitEvent != nil {
		close(tg.exitEvent)
		tg.exitEvent = nil
	}
}

// pidfdOf returns the pidfd behind descriptor fd and whether the
// descriptor is non-blocking: EBADF for a bad descriptor or one that is
// not a pidfd.
func (t *Task) pidfdOf(fd int32) (*pidFD, bool, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, false, err
	}
	defer f.DecRef()
	p, ok := t.tg.specialOf(f).(*pidFD)
	if !ok || p.process() == nil {
		return nil, false, unix.EBADF
	}
	return p, f.StatusFlags()&unix.O_NONBLOCK != 0, nil
}

// signalTarget returns what pidfd_send_signal's descriptor names: a
// pidfd, or, as on Linux, a /proc/<pid> directory of the sandbox's /proc
// (ESRCH once that process is gone).
func (t *Task) signalTarget(fd int32) (*pidFD, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, err
	}
	defer f.DecRef()
	if p, ok := t.tg.specialOf(f).(*pidFD); ok && p.process() != nil {
		return p, nil
	}
	rest, ok := strings.CutPrefix(f.Path(), "/proc/")
	pid, perr := strconv.ParseInt(rest, 10, 32)
	if !ok || perr != nil || pid <= 0 || !f.IsDir() {
		return nil, unix.EBADF
	}
	tg, err := t.processHoldingPID(int32(pid))
	if err != nil {
		return nil, unix.ESRCH
	}
	return &pidFD{tg: tg}, nil
}

// processHoldingPID returns the process whose pid is pid, as long as the
// pid is taken: live, exiting or a zombie not yet reaped (pidfd_open, kill
// of a zombie). ESRCH if there is none, ENOENT if pid is a thread other
// than a process's leader.
func (t *Task) processHoldingPID(pid int32) (*ThreadGroup, error) {
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if o, ok := ts.tids[pid]; ok {
		if o.tg.tgid != pid {
			return nil, unix.ENOENT
		}
		return o.tg, nil
	}
	// A zombie's threads are gone from tids; its parent still lists it
	// until it is reaped. So does a process whose last thread has left
	// tids but which is not marked a zombie yet (the exit takes TaskSet.mu
	// twice): its pid is still taken, as on Linux until the release.
	for _, o := range ts.tids {
		for _, c := range o.tg.children {
			if c.tgid == pid {
				return c, nil
			}
		}
	}
	return nil, unix.ESRCH
}

func sysPidfdOpen(t *Task, a *sysArgs) (uint64, error) {
	pid, flags := a.Int(0), uint32(a[1])
	if flags&^uint32(pidfdNonblock) != 0 || pid <= 0 {
		return 0, unix.EINVAL
	}
	tg, err := t.processHoldingPID(pid)
	if err != nil {
		return 0, err
	}
	return t.installSpecial(&pidFD{tg: tg}, unix.O_CLOEXEC|flags)
}

// pidfd_send_signal's scopes (PIDFD_SIGNAL_*): the process's leader
// thread, the process (the default) or its process group.
const (
	pidfdSignalThread       = 1 << 0
	pidfdSignalThreadGroup  = 1 << 1
	pidfdSignalProcessGroup = 1 << 2
)

func sysPidfdSendSignal(t *Task, a *sysArgs) (uint64, error) {
	fd, sig, infop, flags := a.Int(0), a.Int(1), a[2], uint32(a[3])
	switch flags {
	case 0, pidfdSignalThread, pidfdSignalThreadGroup, pidfdSignalProcessGroup:
	default:
		return 0, unix.EINVAL
	}
	p, err := t.signalTarget(fd)
	if err != nil {
		return 0, err
	}
	if sig != 0 && !validSigno(sig) {
		return 0, unix.EINVAL
	}
	tg := p.process()
	info := t.senderInfo(sig, siUser)
	if infop != 0 {
		raw := make([]byte, siginfoLen)
		if err := t.tg.mm.CopyIn(infop, raw); err != nil {
			return 0, err
		}
		if int32(binary.LittleEndian.Uint32(raw[0:])) != sig {
			return 0, unix.EINVAL
		}
		code := int32(binary.LittleEndian.Uint32(raw[8:]))
		if tg != t.tg && (code >= 0 || code == siTkill) {
			return 0, unix.EPERM
		}
		info = sigInfo{Signo: sig, Code: code, Raw: raw}
	}
	ts := t.k.tasks
	ts.mu.Lock()
	reaped := tg.reapedLocked()
	ts.mu.Unlock()
	if reaped {
		return 0, unix.ESRCH
	}
	tg.mu.Lock()
	leader, pgid := tg.leader, tg.pgid
	live := len(tg.tasks) > 0 && !tg.exiting
	tg.mu.Unlock()
	if sig == 0 || !live {
		return 0, nil // a zombie takes no signal, but it is there
	}
	switch flags {
	case pidfdSignalThread:
		tg.sendSignal(info, leader)
	case pidfdSignalProcessGroup:
		for _, o := range t.k.threadGroups() {
			o.mu.Lock()
			in := o.pgid == pgid
			o.mu.Unlock()
			if in {
				o.sendSignal(info, nil)
			}
		}
	default:
		tg.sendSignal(info, nil)
	}
	return 0, nil
}

func sysPidfdGetfd(t *Task, a *sysArgs) (uint64, error) {
	fd, targetFD, flags := a.Int(0), a.Int(1), uint32(a[2])
	if flags != 0 {
		return 0, unix.EINVAL
	}
	p, _, err := t.pidfdOf(fd)
	if err != nil {
		return 0, err
	}
	tg := p.process()
	tg.mu.Lock()
	if len(tg.tasks) == 0 || tg.exiting {
		tg.mu.Unlock()
		return 0, unix.ESRCH
	}
	target := tg.tasks[0].creds
	tg.mu.Unlock()
	if tg != t.tg && !t.mayAccess(&target) {
		return 0, unix.EPERM
	}
	f, _, err := tg.fdTable.Get(targetFD)
	if err != nil {
		return 0, unix.EBADF
	}
	defer f.DecRef()
	if obj := tg.specialOf(f); obj != nil && tg != t.tg && t.tg.specialOf(f) == nil {
		t.tg.mu.Lock()
		t.tg.specials = append(t.tg.specials, special{Carrier: f, Obj: obj})
		t.tg.mu.Unlock()
	}
	nfd, err := t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: true})
	if err != nil {
		return 0, err
	}
	return uint64(nfd), nil
}

// mayAccess is Linux's ptrace access rule (PTRACE_MODE_ATTACH_REALCREDS)
// in its simplest form: the caller's real user and group IDs are all of
// the target's user and group IDs, or the caller has CAP_SYS_PTRACE.
func (t *Task) mayAccess(target *credentials) bool {
	t.tg.mu.Lock()
	c := t.creds
	t.tg.mu.Unlock()
	if c.capable(capSysPtrace) {
		return true
	}
	same := func(id, a, b, d uint32) bool { return id == a && id == b && id == d }
	return same(c.UID, target.UID, target.EUID, target.SUID) && same(c.GID, target.GID, target.EGID, target.SGID)
}

// pidfdWaitTarget resolves waitid(P_PIDFD, fd): the process's ID, and
// whether the pidfd is non-blocking (then a wait that finds nothing is
// EAGAIN).
func (t *Task) pidfdWaitTarget(fd int32) (int32, bool, error) {
	p, nonblock, err := t.pidfdOf(fd)
	if err != nil {
		return 0, false, err
	}
	return p.process().tgid, nonblock, nil
}
