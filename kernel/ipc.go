package kernel

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

// The sandbox's IPC namespace: System V semaphore sets (ipc_sem.go),
// message queues (ipc_msg.go) and shared memory (ipc_shm.go), and POSIX message queues (ipc_mq.go). It is
// the sandbox's alone (nothing reaches the host's) and is saved with the
// kernel: a semaphore keeps its value, a queue its messages and a process
// its SEM_UNDO adjustments. A task blocked in one of them waits on the
// namespace's changed channel and tries again; a save interrupts it and
// the restored syscall tries again.

// ipcNamespace holds every IPC object of the sandbox.
//
// +stateify savable
type ipcNamespace struct {
	// mu protects everything below. Only MemoryFile.mu (shmget) is taken
	// under it.
	mu sync.Mutex `state:"nosave"`
	// sems and msgs are the System V objects by index (the low 15 bits
	// of their ID). Protected by mu.
	sems map[int32]*semSet
	msgs map[int32]*msgQueue
	// seq is retired (one sequence for every kind, before semIDs,
	// msgIDs and shmIDs); kept so that older images load.
	seq uint16
	// semIDs, msgIDs and shmIDs allocate the indexes and sequence
	// numbers of each kind, as Linux's ipc_ids. Protected by mu.
	semIDs, msgIDs, shmIDs ipcIDs
	// shms are the System V shared memory segments by index (ipc_shm.go).
	// Protected by mu.
	shms map[int32]*shmSegment
	// mqs are the POSIX message queues by name. Protected by mu.
	mqs map[string]*mqueue
	// mqDir is the mqueue filesystem's directory's mode, owner and times,
	// nil until something changed them (ipc_mqfs.go). Protected by mu.
	mqDir *mqDirAttr
	// changed is closed (and replaced) when any object changes, waking
	// every waiter to try again. Not saved: no task waits at save time.
	// Protected by mu.
	changed chan struct{} `state:"nosave"`
}

func newIPCNamespace() *ipcNamespace {
	return &ipcNamespace{sems: map[int32]*semSet{}, msgs: map[int32]*msgQueue{}, shms: map[int32]*shmSegment{}, mqs: map[string]*mqueue{}}
}

// ipc returns the kernel's IPC namespace, made on first use (also for a
// kernel restored from an image that predates it).
func (k *Kernel) ipc() *ipcNamespace {
	k.ipcMu.Lock()
	defer k.ipcMu.Unlock()
	if k.ipcNS == nil {
		k.ipcNS = newIPCNamespace()
	}
	return k.ipcNS
}

// notifyLocked wakes every waiter.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) notifyLocked() {
	if ns.changed != nil {
		close(ns.changed)
		ns.changed = nil
	}
}

// changedLocked returns the channel the next change closes.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) changedLocked() <-chan struct{} {
	if ns.changed == nil {
		ns.changed = make(chan struct{})
	}
	return ns.changed
}

// System V IPC constants (linux/ipc.h).
const (
	ipcPrivate = 0
	ipcCreat   = 0o1000
	ipcExcl    = 0o2000
	ipcNowait  = 0o4000
	ipcRmid    = 0
	ipcSet     = 1
	ipcStat    = 2
	ipcInfo    = 3
	ipc64      = 0x100
	// ipcMNI is IPCMNI: indexes are below it, IDs are seq*ipcMNI+index.
	ipcMNI = 32768
)

// Capabilities the IPC code checks.
const (
	capDACOverride = 1
	capIPCOwner    = 15
	capSysAdmin    = 21
	capSysResource = 24
)

// ipcPerm is an object's struct ipc64_perm.
//
// +stateify savable
type ipcPerm struct {
	Key        int32
	UID, GID   uint32
	CUID, CGID uint32
	Mode       uint16
	Seq        uint16
	ID         int32
	Ctime      int64
}

// newPerm is the ownership of an object the caller creates with mode.
func (t *Task) newPerm(key int32, mode uint32) ipcPerm {
	c := t.creds
	return ipcPerm{Key: key, UID: c.EUID, GID: c.EGID, CUID: c.EUID, CGID: c.EGID, Mode: uint16(mode & 0o777)}
}

// ipcAccess is Linux's ipcperms: want holds 4 (read) and/or 2 (write); the
// class of the caller (owner, group, other) picks the mode bits granted.
func (t *Task) ipcAccess(p *ipcPerm, want uint32) bool {
	c := &t.creds
	granted := uint32(p.Mode)
	switch {
	case c.EUID == p.CUID || c.EUID == p.UID:
		granted >>= 6
	case c.inGroup(p.CGID) || c.inGroup(p.GID):
		granted >>= 3
	}
	return want&^granted&7 == 0 || c.capable(capIPCOwner)
}

// ipcOwner reports whether the caller may change or remove the object:
// its owner or creator, or CAP_SYS_ADMIN.
func (t *Task) ipcOwner(p *ipcPerm) bool {
	c := &t.creds
	return c.EUID == p.CUID || c.EUID == p.UID || c.capable(capSysAdmin)
}

// getFlagsWant turns a get call's mode bits into ipcAccess's want.
func getFlagsWant(flags uint32) uint32 {
	return (flags>>6 | flags>>3 | flags) & 7
}

// putPerm writes p as struct ipc64_perm.
func putPerm(b []byte, p *ipcPerm) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(p.Key))
	le.PutUint32(b[4:], p.UID)
	le.PutUint32(b[8:], p.GID)
	le.PutUint32(b[12:], p.CUID)
	le.PutUint32(b[16:], p.CGID)
	le.PutUint16(b[20:], p.Mode)
	le.PutUint16(b[24:], p.Seq)
}

// setPerm applies IPC_SET's uid, gid and mode from a struct ipc64_perm.
func setPerm(p *ipcPerm, b []byte) {
	le := binary.LittleEndian
	p.UID = le.Uint32(b[4:])
	p.GID = le.Uint32(b[8:])
	p.Mode = p.Mode&^0o777 | le.Uint16(b[20:])&0o777
}

// ipcIDs allocates the indexes of one kind of object as Linux's
// ipc_idr_alloc: cyclically, from the index after the last one given, over
// the first max(in use * 3/2, 64) indexes, the sequence number going up
// each time the allocation wraps.
//
// +stateify savable
type ipcIDs struct {
	// Seq is the sequence number of new objects.
	Seq uint16
	// Next is the index after the last one given (0 before the first).
	Next int32
}

// ipcMinCycle is Linux's ipc_min_cycle: the fewest indexes allocation
// cycles over; ipcSeqMax bounds sequence numbers (INT_MAX >> 15).
const (
	ipcMinCycle = 64
	ipcSeqMax   = 1<<16 - 1
)

// ipcAlloc returns a free index of used and its sequence number, or -1.
func ipcAlloc[V any](a *ipcIDs, used map[int32]V) (int32, uint16) {
	end := min(max(int32(len(used))*3/2, ipcMinCycle), ipcMNI)
	free := func(from int32) int32 {
		for i := from; i < end; i++ {
			if _, ok := used[i]; !ok {
				return i
			}
		}
		return -1
	}
	idx := free(a.Next)
	if idx < 0 && a.Next > 0 {
		idx = free(0)
	}
	if idx < 0 {
		return -1, 0
	}
	if idx <= a.Next-1 {
		a.Seq++
		if a.Seq >= ipcSeqMax {
			a.Seq = 0
		}
	}
	a.Next = idx + 1
	return idx, a.Seq
}

// ipcMaxIndex is what the IPC_INFO and *_INFO commands return: the
// highest index in use, 0 when there is none.
func ipcMaxIndex[V any](objs map[int32]V) uint64 {
	m := int32(0)
	for i := range objs {
		m = max(m, i)
	}
	return uint64(m)
}

// ipcAtIndex is the lookup of the *_STAT commands: the object at index
// idx (not an ID); EINVAL when there is none.
func ipcAtIndex[V any](objs map[int32]V, idx int32) (V, error) {
	o, ok := objs[idx]
	if !ok || idx < 0 {
		var zero V
		return zero, unix.EINVAL
	}
	return o, nil
}

// ipcLookup finds object id in objs; EINVAL when there is none (or the ID
// is stale).
func ipcLookup[V interface{ perm() *ipcPerm }](objs map[int32]V, id int32) (V, error) {
	var zero V
	if id < 0 {
		return zero, unix.EINVAL
	}
	o, ok := objs[id%ipcMNI]
	if !ok || o.perm().ID != id {
		return zero, unix.EINVAL
	}
	return o, nil
}

// ipcGet implements the shared part of semget, msgget and shmget: the
// object of key (IPC_PRIVATE: always a new one), made by create when
// missing and IPC_CREAT is given (ENOSPC once limit objects exist, an
// index and ID from ids). check vets an existing object.
//
// Preconditions: ns.mu is held.
func ipcGet[V interface{ perm() *ipcPerm }](t *Task, ns *ipcNamespace, ids *ipcIDs, limit int, objs map[int32]V, key int32, flags uint32,
	check func(V) error, create func(p ipcPerm) (V, error)) (uint64, error) {
	if key != ipcPrivate {
		for _, o := range objs {
			p := o.perm()
			if p.Key != key {
				continue
			}
			if flags&(ipcCreat|ipcExcl) == ipcCreat|ipcExcl {
				return 0, unix.EEXIST
			}
			if !t.ipcAccess(p, getFlagsWant(flags&0o777)) {
				return 0, unix.EACCES
			}
			if err := check(o); err != nil {
				return 0, err
			}
			return uint64(p.ID), nil
		}
		if flags&ipcCreat == 0 {
			return 0, unix.ENOENT
		}
	}
	if len(objs) >= limit {
		return 0, unix.ENOSPC
	}
	p := t.newPerm(key, flags)
	p.Ctime = t.k.realtimeNow() / nsPerSec
	o, err := create(p)
	if err != nil {
		return 0, err
	}
	// A free index exists: fewer than limit (at most ipcMNI) are in use.
	index, seq := ipcAlloc(ids, objs)
	o.perm().Seq = seq
	o.perm().ID = int32(seq)<<15 + index
	p.ID = o.perm().ID
	objs[index] = o
	return uint64(p.ID), nil
}
