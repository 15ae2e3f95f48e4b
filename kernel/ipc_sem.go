package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// System V semaphore sets: semget, semop, semtimedop and semctl with
// Linux's default limits. A process's SEM_UNDO adjustments are kept in the
// set, per process, and applied when the process exits; fork does not
// inherit them.

// Semaphore limits (Linux's defaults) and constants (linux/sem.h).
const (
	semMSL     = 32000 // semaphores per set
	semOPM     = 500   // operations per semop
	semVMX     = 32767 // largest value
	semUndo    = 0x1000
	semGetPID  = 11
	semGetVal  = 12
	semGetAll  = 13
	semGetNcnt = 14
	semGetZcnt = 15
	semSetVal  = 16
	semSetAll  = 17
	// semidDsSize is sizeof(struct semid64_ds).
	semidDsSize = 104
	sembufSize  = 6
)

// semSet is one semaphore set.
//
// +stateify savable
type semSet struct {
	Perm ipcPerm
	Sems []semaphore
	// Otime is the last semop's time (seconds).
	Otime int64
	// Undo are the SEM_UNDO adjustments of processes that have some.
	Undo []semUndoEntry
}

func (s *semSet) perm() *ipcPerm { return &s.Perm }

// semaphore is one semaphore of a set.
//
// +stateify savable
type semaphore struct {
	Val int32
	// PID is the process of the last operation.
	PID int32
	// ncnt and zcnt count the tasks waiting for an increase and for zero.
	// Not saved: waiters are interrupted by a save and count themselves
	// again when they retry.
	ncnt int32 `state:"nosave"`
	zcnt int32 `state:"nosave"`
}

// semUndoEntry is one process's adjustments to a set.
//
// +stateify savable
type semUndoEntry struct {
	TG  *ThreadGroup
	Adj []int32
}

func sysSemget(t *Task, a *sysArgs) (uint64, error) {
	key, nsems, flags := a.Int(0), a.Int(1), uint32(a[2])
	if nsems < 0 || nsems > semMSL {
		return 0, unix.EINVAL
	}
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ipcGet(t, ns, &ns.semIDs, semMNI, ns.sems, key, flags, func(s *semSet) error {
		if int(nsems) > len(s.Sems) {
			return unix.EINVAL
		}
		return nil
	}, func(p ipcPerm) (*semSet, error) {
		if nsems == 0 {
			return nil, unix.EINVAL
		}
		if ns.semaphores()+int(nsems) > semMNS {
			return nil, unix.ENOSPC
		}
		return &semSet{Perm: p, Sems: make([]semaphore, nsems)}, nil
	})
}

// sembuf is one struct sembuf.
type sembuf struct {
	num       uint16
	op, flags int16
}

func sysSemop(t *Task, a *sysArgs) (uint64, error) {
	return t.semop(a.Int(0), a[1], a[2], -1)
}

func sysSemtimedop(t *Task, a *sysArgs) (uint64, error) {
	timeout := int64(-1)
	if a[3] != 0 {
		d, err := t.copyInTimespec(a[3])
		if err != nil {
			return 0, err
		}
		timeout = d
	}
	return t.semop(a.Int(0), a[1], a[2], timeout)
}

// semop applies the operations at addr atomically, waiting (up to timeout
// nanoseconds; -1: no limit) until they can all be applied.
func (t *Task) semop(id int32, addr, n uint64, timeout int64) (uint64, error) {
	if n < 1 || int64(n) < 0 {
		return 0, unix.EINVAL
	}
	if n > semOPM {
		return 0, unix.E2BIG
	}
	raw := make([]byte, n*sembufSize)
	if err := t.tg.mm.CopyIn(addr, raw); err != nil {
		return 0, err
	}
	ops := make([]sembuf, n)
	alter, undo := false, false
	for i := range ops {
		b := raw[i*sembufSize:]
		ops[i] = sembuf{binary.LittleEndian.Uint16(b), int16(binary.LittleEndian.Uint16(b[2:])), int16(binary.LittleEndian.Uint16(b[4:]))}
		alter = alter || ops[i].op != 0
		undo = undo || ops[i].flags&semUndo != 0
	}
	deadline := int64(-1)
	if timeout >= 0 {
		deadline = saturatingAdd(t.k.monotonicNow(), timeout)
	}
	ns := t.k.ipc()
	for first := true; ; first = false {
		ns.mu.Lock()
		s, err := ipcLookup(ns.sems, id)
		if err != nil {
			ns.mu.Unlock()
			if !first {
				return 0, unix.EIDRM
			}
			return 0, err
		}
		for _, op := range ops {
			if int(op.num) >= len(s.Sems) {
				ns.mu.Unlock()
				return 0, unix.EFBIG
			}
		}
		want := uint32(4)
		if alter {
			want = 2
		}
		if !t.ipcAccess(&s.Perm, want) {
			ns.mu.Unlock()
			return 0, unix.EACCES
		}
		blocker, err := s.tryOps(t, ops)
		if err != nil {
			ns.mu.Unlock()
			return 0, err
		}
		if blocker < 0 {
			s.Otime = t.k.realtimeNow() / nsPerSec
			ns.notifyLocked()
			ns.mu.Unlock()
			return 0, nil
		}
		op := ops[blocker]
		if op.flags&ipcNowait != 0 {
			ns.mu.Unlock()
			return 0, unix.EAGAIN
		}
		sem := &s.Sems[op.num]
		cnt := &sem.ncnt
		if op.op == 0 {
			cnt = &sem.zcnt
		}
		*cnt++
		ch := ns.changedLocked()
		ns.mu.Unlock()
		timedOut, err := false, error(nil)
		if deadline < 0 {
			err = t.block(ch)
		} else {
			timedOut, err = t.blockUntil(ch, deadline)
		}
		ns.mu.Lock()
		if cur, lerr := ipcLookup(ns.sems, id); lerr == nil && cur == s {
			*cnt--
		}
		ns.mu.Unlock()
		if err != nil {
			return 0, errRestartNoHand // EINTR with a handler, as Linux
		}
		if timedOut {
			return 0, unix.EAGAIN
		}
	}
}

// tryOps applies ops if they can all be applied now and returns -1, or
// returns the index of the first operation that must wait. ERANGE if an
// operation would take a value (or an undo adjustment) out of range.
//
// Preconditions: the namespace's mu is held.
func (s *semSet) tryOps(t *Task, ops []sembuf) (int, error) {
	vals := make([]int32, len(s.Sems))
	for i := range s.Sems {
		vals[i] = s.Sems[i].Val
	}
	for i, op := range ops {
		v := vals[op.num] + int32(op.op)
		switch {
		case op.op == 0 && vals[op.num] != 0, v < 0:
			return i, nil
		case v > semVMX:
			return 0, unix.ERANGE
		}
		vals[op.num] = v
	}
	var adj []int32
	for _, op := range ops {
		if op.flags&semUndo != 0 && op.op != 0 {
			if adj == nil {
				adj = s.undoOf(t.tg)
			}
			next := adj[op.num] - int32(op.op)
			if next < -semVMX-1 || next > semVMX {
				return 0, unix.ERANGE
			}
			adj[op.num] = next
		}
	}
	for i := range s.Sems {
		s.Sems[i].Val = vals[i]
	}
	for _, op := range ops {
		s.Sems[op.num].PID = t.tg.tgid
	}
	return -1, nil
}

// undoOf returns the process's adjustments to the set, adding them.
func (s *semSet) undoOf(tg *ThreadGroup) []int32 {
	for _, u := range s.Undo {
		if u.TG == tg {
			return u.Adj
		}
	}
	adj := make([]int32, len(s.Sems))
	s.Undo = append(s.Undo, semUndoEntry{TG: tg, Adj: adj})
	return adj
}

// semExit applies and forgets the exiting process's SEM_UNDO adjustments,
// each value kept within 0 and semVMX, as Linux's exit_sem.
func (k *Kernel) semExit(tg *ThreadGroup) {
	k.ipcMu.Lock()
	ns := k.ipcNS
	k.ipcMu.Unlock()
	if ns == nil {
		return
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	changed := false
	for _, s := range ns.sems {
		for i, u := range s.Undo {
			if u.TG != tg {
				continue
			}
			for j, d := range u.Adj {
				if d != 0 {
					s.Sems[j].Val = min(max(s.Sems[j].Val+d, 0), semVMX)
					s.Sems[j].PID = tg.tgid
					changed = true
				}
			}
			s.Undo = append(s.Undo[:i], s.Undo[i+1:]...)
			break
		}
	}
	if changed {
		ns.notifyLocked()
	}
}

func sysSemctl(t *Task, a *sysArgs) (uint64, error) {
	id, num, cmd, arg := a.Int(0), a.Int(1), a.Int(2)&^ipc64, a[3]
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	switch cmd {
	case ipcInfo, semInfoCmd:
		return t.semInfo(ns, cmd, arg)
	case semStatCmd, semStatAnyCmd:
		s, err := ipcStatAt(t, ns.sems, id, cmd == semStatAnyCmd)
		if err != nil {
			return 0, err
		}
		return uint64(s.Perm.ID), t.tg.mm.CopyOut(arg, s.statBytes())
	}
	s, err := ipcLookup(ns.sems, id)
	if err != nil {
		return 0, err
	}
	switch cmd {
	case ipcRmid, ipcSet:
		if !t.ipcOwner(&s.Perm) {
			return 0, unix.EPERM
		}
		if cmd == ipcRmid {
			delete(ns.sems, id%ipcMNI)
		} else {
			b := make([]byte, semidDsSize)
			if err := t.tg.mm.CopyIn(arg, b); err != nil {
				return 0, err
			}
			setPerm(&s.Perm, b)
			s.Perm.Ctime = t.k.realtimeNow() / nsPerSec
		}
		ns.notifyLocked()
		return 0, nil
	case ipcStat:
		if !t.ipcAccess(&s.Perm, 4) {
			return 0, unix.EACCES
		}
		return 0, t.tg.mm.CopyOut(arg, s.statBytes())
	case semGetAll, semSetAll:
		return t.semAll(ns, s, cmd == semSetAll, arg)
	case semGetPID, semGetVal, semGetNcnt, semGetZcnt, semSetVal:
	default:
		return 0, unix.EINVAL
	}
	if num < 0 || int(num) >= len(s.Sems) {
		return 0, unix.EINVAL
	}
	sem := &s.Sems[num]
	if cmd == semSetVal {
		v := int32(arg)
		if v < 0 || v > semVMX {
			return 0, unix.ERANGE
		}
		if !t.ipcAccess(&s.Perm, 2) {
			return 0, unix.EACCES
		}
		sem.Val, sem.PID = v, t.tg.tgid
		for _, u := range s.Undo {
			u.Adj[num] = 0
		}
		s.Perm.Ctime = t.k.realtimeNow() / nsPerSec
		ns.notifyLocked()
		return 0, nil
	}
	if !t.ipcAccess(&s.Perm, 4) {
		return 0, unix.EACCES
	}
	switch cmd {
	case semGetPID:
		return uint64(sem.PID), nil
	case semGetVal:
		return uint64(sem.Val), nil
	case semGetNcnt:
		return uint64(sem.ncnt), nil
	}
	return uint64(sem.zcnt), nil
}

// statBytes is the set's struct semid64_ds.
func (s *semSet) statBytes() []byte {
	b := make([]byte, semidDsSize)
	putPerm(b, &s.Perm)
	le := binary.LittleEndian
	le.PutUint64(b[48:], uint64(s.Otime))
	le.PutUint64(b[64:], uint64(s.Perm.Ctime))
	le.PutUint64(b[80:], uint64(len(s.Sems)))
	return b
}

// semAll implements GETALL and SETALL (an array of unsigned short).
//
// Preconditions: ns.mu is held.
func (t *Task) semAll(ns *ipcNamespace, s *semSet, set bool, addr uint64) (uint64, error) {
	b := make([]byte, 2*len(s.Sems))
	if !set {
		if !t.ipcAccess(&s.Perm, 4) {
			return 0, unix.EACCES
		}
		for i := range s.Sems {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(s.Sems[i].Val))
		}
		return 0, t.tg.mm.CopyOut(addr, b)
	}
	if !t.ipcAccess(&s.Perm, 2) {
		return 0, unix.EACCES
	}
	if err := t.tg.mm.CopyIn(addr, b); err != nil {
		return 0, err
	}
	for i := range s.Sems {
		if binary.LittleEndian.Uint16(b[2*i:]) > semVMX {
			return 0, unix.ERANGE
		}
	}
	for i := range s.Sems {
		s.Sems[i].Val, s.Sems[i].PID = int32(binary.LittleEndian.Uint16(b[2*i:])), t.tg.tgid
	}
	for _, u := range s.Undo {
		clear(u.Adj)
	}
	s.Perm.Ctime = t.k.realtimeNow() / nsPerSec
	ns.notifyLocked()
	return 0, nil
}
