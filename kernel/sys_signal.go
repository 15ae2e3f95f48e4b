package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// sigsetSize is the only sigset_t size the kernel accepts.
const sigsetSize = 8

func validSigno(sig int32) bool { return sig >= 1 && sig <= numSignals }

func (t *Task) copyInSigset(addr uint64) (uint64, error) {
	var b [8]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (t *Task) copyOutSigset(addr, set uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], set)
	return t.tg.mm.CopyOut(addr, b[:])
}

func sysRtSigaction(t *Task, a *sysArgs) (uint64, error) {
	sig, newAddr, oldAddr := a.Int(0), a[1], a[2]
	if a[3] != sigsetSize {
		return 0, unix.EINVAL
	}
	if !validSigno(sig) {
		return 0, unix.EINVAL
	}
	var nb [32]byte
	var na sigAction
	if newAddr != 0 {
		if sig == int32(unix.SIGKILL) || sig == int32(unix.SIGSTOP) {
			return 0, unix.EINVAL
		}
		if err := t.tg.mm.CopyIn(newAddr, nb[:]); err != nil {
			return 0, err
		}
		le := binary.LittleEndian
		na = sigAction{Handler: le.Uint64(nb[0:]), Flags: le.Uint64(nb[8:]), Restorer: le.Uint64(nb[16:]), Mask: le.Uint64(nb[24:]) &^ unblockable}
	}
	tg := t.tg
	tg.mu.Lock()
	old := tg.sigs.Actions[sig-1]
	if newAddr != 0 {
		tg.sigs.Actions[sig-1] = na
		if tg.ignoredLocked(int(sig)) {
			// Setting a signal to be ignored discards it where pending.
			tg.sigs.Pending.discard(sigBit(int(sig)))
			for _, o := range tg.tasks {
				o.sig.Pending.discard(sigBit(int(sig)))
			}
		}
	}
	tg.mu.Unlock()
	if oldAddr != 0 {
		var ob [32]byte
		le := binary.LittleEndian
		le.PutUint64(ob[0:], old.Handler)
		le.PutUint64(ob[8:], old.Flags)
		le.PutUint64(ob[16:], old.Restorer)
		le.PutUint64(ob[24:], old.Mask)
		if err := t.tg.mm.CopyOut(oldAddr, ob[:]); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func sysRtSigprocmask(t *Task, a *sysArgs) (uint64, error) {
	how, setAddr, oldAddr := a.Int(0), a[1], a[2]
	if a[3] != sigsetSize {
		return 0, unix.EINVAL
	}
	var set uint64
	if setAddr != 0 {
		var err error
		if set, err = t.copyInSigset(setAddr); err != nil {
			return 0, err
		}
	}
	tg := t.tg
	tg.mu.Lock()
	old := t.sig.Mask
	if setAddr != 0 {
		switch how {
		case unix.SIG_BLOCK:
			t.sig.Mask |= set
		case unix.SIG_UNBLOCK:
			t.sig.Mask &^= set
		case unix.SIG_SETMASK:
			t.sig.Mask = set
		default:
			tg.mu.Unlock()
			return 0, unix.EINVAL
		}
		t.sig.Mask &^= unblockable
	}
	tg.mu.Unlock()
	if oldAddr != 0 {
		if err := t.copyOutSigset(oldAddr, old); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func sysRtSigpending(t *Task, a *sysArgs) (uint64, error) {
	if a[1] != sigsetSize {
		return 0, unix.EINVAL
	}
	tg := t.tg
	tg.mu.Lock()
	tg.checkItimersLocked(t.k.monotonicNow())
	set := (t.sig.Pending.Set | tg.sigs.Pending.Set) & t.sig.Mask
	tg.mu.Unlock()
	return 0, t.copyOutSigset(a[0], set)
}

func sysRtSigsuspend(t *Task, a *sysArgs) (uint64, error) {
	if a[1] != sigsetSize {
		return 0, unix.EINVAL
	}
	set, err := t.copyInSigset(a[0])
	if err != nil {
		return 0, err
	}
	tg := t.tg
	tg.mu.Lock()
	t.sig.SavedMask = t.sig.Mask
	t.sig.HaveSavedMask = true
	t.sig.Mask = set &^ unblockable
	ready := (t.sig.Pending.Set|tg.sigs.Pending.Set)&^t.sig.Mask != 0
	tg.mu.Unlock()
	if !ready {
		t.block(nil)
	}
	return 0, errRestartNoHand
}

func sysSigaltstack(t *Task, a *sysArgs) (uint64, error) {
	newAddr, oldAddr := a[0], a[1]
	tg := t.tg
	tg.mu.Lock()
	cur := t.sig
	tg.mu.Unlock()
	onAlt := cur.onAltStack(t.regs.Rsp)
	if newAddr != 0 {
		var b [24]byte
		if err := t.tg.mm.CopyIn(newAddr, b[:]); err != nil {
			return 0, err
		}
		le := binary.LittleEndian
		sp, flags, size := le.Uint64(b[0:]), int32(le.Uint32(b[8:])), le.Uint64(b[16:])
		if onAlt {
			return 0, unix.EPERM
		}
		switch {
		case flags&ssDisable != 0:
			sp, size, flags = 0, 0, ssDisable
		case uint32(flags)&^0x80000000 != 0 && flags != ssOnstack: // SS_AUTODISARM allowed
			return 0, unix.EINVAL
		case size < minSigstksz:
			return 0, unix.ENOMEM
		default:
			flags = 0
		}
		tg.mu.Lock()
		t.sig.AltSP, t.sig.AltSize, t.sig.AltFlags = sp, size, flags
		tg.mu.Unlock()
	}
	if oldAddr != 0 {
		var b [24]byte
		le := binary.LittleEndian
		le.PutUint64(b[0:], cur.AltSP)
		flags := cur.AltFlags
		if cur.AltSize == 0 && flags == 0 {
			flags = ssDisable
		}
		if onAlt {
			flags |= ssOnstack
		}
		le.PutUint32(b[8:], uint32(flags))
		le.PutUint64(b[16:], cur.AltSize)
		if err := t.tg.mm.CopyOut(oldAddr, b[:]); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// sysRtSigreturn restores the context a handler frame saved: registers,
// XSAVE area and signal mask.
func sysRtSigreturn(t *Task, _ *sysArgs) (uint64, error) {
	ucAddr := t.regs.Rsp // the handler's ret popped pretcode
	var uc [ucontextLen]byte
	if err := t.tg.mm.CopyIn(ucAddr, uc[:]); err != nil {
		t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGSEGV)})
		return 0, errNoSyscallReturn
	}
	le := binary.LittleEndian
	sc := uc[ucMcontextOff:]
	r := &t.regs
	r.R8, r.R9, r.R10, r.R11 = le.Uint64(sc[scR8:]), le.Uint64(sc[scR9:]), le.Uint64(sc[scR10:]), le.Uint64(sc[scR11:])
	r.R12, r.R13, r.R14, r.R15 = le.Uint64(sc[scR12:]), le.Uint64(sc[scR13:]), le.Uint64(sc[scR14:]), le.Uint64(sc[scR15:])
	r.Rdi, r.Rsi, r.Rbp, r.Rbx = le.Uint64(sc[scRdi:]), le.Uint64(sc[scRsi:]), le.Uint64(sc[scRbp:]), le.Uint64(sc[scRbx:])
	r.Rdx, r.Rax, r.Rcx, r.Rsp = le.Uint64(sc[scRdx:]), le.Uint64(sc[scRax:]), le.Uint64(sc[scRcx:]), le.Uint64(sc[scRsp:])
	r.Rip = le.Uint64(sc[scRip:])
	r.Eflags = (r.Eflags &^ fixEflags) | (le.Uint64(sc[scEflags:]) & fixEflags)
	r.Cs, r.Ss = userCS, userSS
	r.OrigRax = ^uint64(0)
	if fpAddr := le.Uint64(sc[scFpstate:]); fpAddr != 0 && len(t.fpState()) > 0 {
		fp := make([]byte, len(t.fp))
		if err := t.tg.mm.CopyIn(fpAddr, fp); err != nil {
			t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGSEGV)})
			return 0, errNoSyscallReturn
		}
		// Keep the XSAVE header's component bitmap (XCOMP_BV) and the
		// MXCSR's reserved bits valid, or the host would refuse the area.
		if len(fp) >= 576 {
			copy(fp[520:528], t.fp[520:528])
			le.PutUint64(fp[512:], le.Uint64(fp[512:])&(le.Uint64(t.fp[512:])|7))
		}
		le.PutUint32(fp[24:], le.Uint32(fp[24:])&0xffff)
		t.setFPState(fp)
	}
	mask := le.Uint64(uc[ucSigmaskOff:]) &^ unblockable
	t.tg.mu.Lock()
	t.sig.Mask = mask
	t.tg.mu.Unlock()
	return 0, errNoSyscallReturn
}

// senderInfo is the siginfo of a signal t sends with kill or tgkill.
func (t *Task) senderInfo(sig int32, code int32) sigInfo {
	return sigInfo{Signo: sig, Code: code, Pid: t.tg.tgid, UID: t.creds.UID}
}

// capKill is CAP_KILL.
const capKill = 5

// mayKill reports whether t may send sig to target, as Linux's
// check_kill_permission: always within its own process; otherwise when
// t's real or effective user ID is target's real or saved one, with
// CAP_KILL, or for SIGCONT within the same session.
func (t *Task) mayKill(target *Task, sig int32) bool {
	if target.tg == t.tg || t.creds.capable(capKill) {
		return true
	}
	c := &t.creds
	target.tg.mu.Lock()
	tc, tsid := target.creds, target.tg.sid
	target.tg.mu.Unlock()
	if c.EUID == tc.SUID || c.EUID == tc.UID || c.UID == tc.SUID || c.UID == tc.UID {
		return true
	}
	if sig != int32(unix.SIGCONT) {
		return false
	}
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return t.tg.sid == tsid
}

// processesFor returns the processes kill(pid) addresses.
func (t *Task) processesFor(pid int32) []*ThreadGroup {
	var out []*ThreadGroup
	callerPgid := int32(0)
	if pid == 0 {
		t.tg.mu.Lock()
		callerPgid = t.tg.pgid
		t.tg.mu.Unlock()
	}
	for _, tg := range t.k.threadGroups() {
		tg.mu.Lock()
		pgid, exiting := tg.pgid, tg.exiting
		tg.mu.Unlock()
		if exiting {
			continue
		}
		switch {
		case pid > 0 && tg.tgid == pid:
		case pid == 0 && pgid == callerPgid:
		case pid == -1 && tg.tgid != 1 && tg != t.tg:
		case pid < -1 && pgid == -pid:
		default:
			continue
		}
		out = append(out, tg)
	}
	return out
}

func sysKill(t *Task, a *sysArgs) (uint64, error) {
	pid, sig := a.Int(0), a.Int(1)
	if sig != 0 && !validSigno(sig) {
		return 0, unix.EINVAL
	}
	if pid == -1<<31 {
		return 0, unix.ESRCH
	}
	// kill(-1) signals every process but init and the caller, as Linux.
	tgs := t.processesFor(pid)
	if len(tgs) == 0 {
		if pid > 0 {
			if _, err := t.processHoldingPID(pid); err == nil {
				// A zombie, or a process whose exit is under way: its
				// pid is taken until it is reaped, and the signal goes
				// nowhere, as on Linux.
				return 0, nil
			}
		}
		return 0, unix.ESRCH
	}
	allowed := tgs[:0:0]
	for _, tg := range tgs {
		if t.mayKill(tg.leader, sig) {
			allowed = append(allowed, tg)
		}
	}
	if len(allowed) == 0 && pid != -1 {
		return 0, unix.EPERM // kill(-1) reports no EPERM, as Linux
	}
	if sig == 0 {
		return 0, nil
	}
	info := t.senderInfo(sig, siUser)
	for _, tg := range allowed {
		tg.sendSignal(info, nil)
	}
	return 0, nil
}

// signalThread sends sig to thread tid (of process tgid unless tgid is
// -1).
func (t *Task) signalThread(tgid, tid, sig int32) (uint64, error) {
	if tid <= 0 || (tgid != -1 && tgid <= 0) {
		return 0, unix.EINVAL
	}
	if sig != 0 && !validSigno(sig) {
		return 0, unix.EINVAL
	}
	target, err := t.taskByTID(tid)
	if err != nil {
		return 0, err
	}
	if tgid != -1 && target.tg.tgid != tgid {
		return 0, unix.ESRCH
	}
	if !t.mayKill(target, sig) {
		return 0, unix.EPERM
	}
	if sig == 0 {
		return 0, nil
	}
	target.tg.sendSignal(t.senderInfo(sig, siTkill), target)
	return 0, nil
}

func sysTgkill(t *Task, a *sysArgs) (uint64, error) {
	return t.signalThread(a.Int(0), a.Int(1), a.Int(2))
}

func sysTkill(t *Task, a *sysArgs) (uint64, error) {
	return t.signalThread(-1, a.Int(0), a.Int(1))
}

func sysRtSigqueueinfo(t *Task, a *sysArgs) (uint64, error) {
	pid, sig := a.Int(0), a.Int(1)
	if !validSigno(sig) {
		return 0, unix.EINVAL
	}
	raw := make([]byte, siginfoLen)
	if err := t.tg.mm.CopyIn(a[2], raw); err != nil {
		return 0, err
	}
	code := int32(binary.LittleEndian.Uint32(raw[8:]))
	if code >= 0 || code == siTkill {
		return 0, unix.EPERM
	}
	binary.LittleEndian.PutUint32(raw[0:], uint32(sig))
	tgs := t.processesFor(pid)
	if pid <= 0 || len(tgs) == 0 {
		return 0, unix.ESRCH
	}
	if !t.mayKill(tgs[0].leader, sig) {
		return 0, unix.EPERM
	}
	tgs[0].sendSignal(sigInfo{Signo: sig, Code: code, Raw: raw}, nil)
	return 0, nil
}

// Interval timers.
const (
	itimerReal    = 0
	itimerVirtual = 1
	itimerProf    = 2
	timevalLen    = 16
)

func (t *Task) copyInTimeval(addr uint64) (int64, error) {
	var b [timevalLen]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, err
	}
	sec := int64(binary.LittleEndian.Uint64(b[:]))
	usec := int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || usec < 0 || usec >= 1000000 {
		return 0, unix.EINVAL
	}
	if sec > maxTimespecSeconds {
		sec = maxTimespecSeconds
	}
	return sec*nsPerSec + usec*1000, nil
}

func putTimeval(b []byte, ns int64) {
	binary.LittleEndian.PutUint64(b, uint64(ns/nsPerSec))
	binary.LittleEndian.PutUint64(b[8:], uint64(ns%nsPerSec/1000))
}

// itimerValueLocked returns timer which's interval and remaining time.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) itimerValueLocked(which int, mono int64) (interval, value int64) {
	it := &tg.sigs.Itimers[which]
	if it.Expiry == 0 {
		return it.Interval, 0
	}
	value = it.Expiry - tg.itimerClockLocked(which, mono)
	if value <= 0 {
		value = 1000 // expired, not yet noticed: report 1 us like Linux
	}
	return it.Interval, value
}

// setItimerLocked arms (value > 0) or disarms timer which.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) setItimerLocked(which int, interval, value, mono int64) {
	it := &tg.sigs.Itimers[which]
	it.Interval = interval
	it.Expiry = 0
	if value > 0 {
		it.Expiry = saturatingAdd(tg.itimerClockLocked(which, mono), value)
	}
	tg.armItimerLocked(which, mono)
}

func sysGetitimer(t *Task, a *sysArgs) (uint64, error) {
	which := int(a.Int(0))
	if which < 0 || which >= numItimers {
		return 0, unix.EINVAL
	}
	tg := t.tg
	tg.mu.Lock()
	interval, value := tg.itimerValueLocked(which, t.k.monotonicNow())
	tg.mu.Unlock()
	var b [2 * timevalLen]byte
	putTimeval(b[:], interval)
	putTimeval(b[timevalLen:], value)
	return 0, t.tg.mm.CopyOut(a[1], b[:])
}

func sysSetitimer(t *Task, a *sysArgs) (uint64, error) {
	which := int(a.Int(0))
	if which < 0 || which >= numItimers {
		return 0, unix.EINVAL
	}
	var interval, value int64
	if a[1] != 0 {
		var err error
		if interval, err = t.copyInTimeval(a[1]); err != nil {
			return 0, err
		}
		if value, err = t.copyInTimeval(a[1] + timevalLen); err != nil {
			return 0, err
		}
	}
	tg := t.tg
	tg.mu.Lock()
	now := t.k.monotonicNow()
	oldInterval, oldValue := tg.itimerValueLocked(which, now)
	tg.setItimerLocked(which, interval, value, now)
	tg.mu.Unlock()
	if a[2] != 0 {
		var b [2 * timevalLen]byte
		putTimeval(b[:], oldInterval)
		putTimeval(b[timevalLen:], oldValue)
		if err := t.tg.mm.CopyOut(a[2], b[:]); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func sysAlarm(t *Task, a *sysArgs) (uint64, error) {
	secs := int64(uint32(a[0]))
	tg := t.tg
	tg.mu.Lock()
	now := t.k.monotonicNow()
	_, old := tg.itimerValueLocked(itimerReal, now)
	tg.setItimerLocked(itimerReal, 0, secs*nsPerSec, now)
	tg.mu.Unlock()
	// Round the remaining time to the nearest second, at least 1 if armed.
	left := (old + nsPerSec/2) / nsPerSec
	if old > 0 && left == 0 {
		left = 1
	}
	return uint64(left), nil
}

// dequeueFromSetLocked removes and returns a pending signal of set, thread
// queue first.
//
// Preconditions: tg.mu is held.
func (t *Task) dequeueFromSetLocked(set uint64) (sigInfo, bool) {
	for _, p := range []*sigPending{&t.sig.Pending, &t.tg.sigs.Pending} {
		ready := p.Set & set
		if ready == 0 {
			continue
		}
		return p.dequeue(lowestSignal(ready)), true
	}
	return sigInfo{}, false
}

func sysRtSigtimedwait(t *Task, a *sysArgs) (uint64, error) {
	if a[3] != sigsetSize {
		return 0, unix.EINVAL
	}
	set, err := t.copyInSigset(a[0])
	if err != nil {
		return 0, err
	}
	set &^= unblockable
	deadline := int64(-1)
	if a[2] != 0 {
		d, err := t.copyInTimespec(a[2])
		if err != nil {
			return 0, err
		}
		deadline = saturatingAdd(t.k.monotonicNow(), d)
	}
	tg := t.tg
	tg.mu.Lock()
	tg.checkItimersLocked(t.k.monotonicNow())
	info, ok := t.dequeueFromSetLocked(set)
	if !ok && deadline != -1 && deadline <= t.k.monotonicNow() {
		tg.mu.Unlock()
		return 0, unix.EAGAIN
	}
	for !ok {
		// Unblock the awaited signals while waiting, so that sending one
		// wakes this thread; it takes them from the queue itself.
		saved := t.sig.Mask
		t.sig.Mask &^= set
		t.sig.Awaited = set
		tg.mu.Unlock()
		// Either way an interrupt or the deadline ends the wait; the
		// queue says what happened.
		timedOut := false
		if deadline == -1 {
			_ = t.block(nil)
		} else {
			timedOut, _ = t.blockUntil(nil, deadline)
		}
		// What an interrupt announces is checked below; without this a
		// wait that goes on would return at once, again and again.
		t.clearInterrupt()
		tg.mu.Lock()
		t.sig.Mask = saved
		t.sig.Awaited = 0
		tg.checkItimersLocked(t.k.monotonicNow())
		info, ok = t.dequeueFromSetLocked(set)
		if !ok {
			deliverable := (t.sig.Pending.Set|tg.sigs.Pending.Set)&^t.sig.Mask != 0
			// Something the thread must handle outside the wait.
			elsewhere := tg.exiting || tg.sigs.ExecTask != nil || tg.sigs.Stopped
			tg.mu.Unlock()
			switch {
			case timedOut:
				return 0, unix.EAGAIN
			case deliverable:
				return 0, unix.EINTR
			case elsewhere || t.k.stopRequested():
				// Not a signal (an exit, an execve, a stop, a stop for a
				// save): wait again afterwards.
				return 0, errRestartNoIntr
			}
			// Only a CPU-time timer's poll, which may come more often
			// than the timeout: wait on to the same deadline (a restart
			// would start the timeout again).
			tg.mu.Lock()
		}
	}
	tg.mu.Unlock()
	if a[1] != 0 {
		b := make([]byte, siginfoLen)
		marshalSiginfo(b, info)
		if err := t.tg.mm.CopyOut(a[1], b); err != nil {
			return 0, err
		}
	}
	return uint64(info.Signo), nil
}
