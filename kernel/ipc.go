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
	// seq makes IDs unique over time: an object's ID is its seq times
	// ipcMNI plus its index. Protected by mu.
	seq uint16
	// shms are the System V shared memory segments by index (ipc_shm.go).
	// Protected by mu.
	shms map[int32]*shmSegment
	// mqs are the POSIX message queues by name. Protected by mu.
	mqs map[string]*mqueue
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

// ipcFreeIndex returns the lowest index not in used, or -1 if all ipcMNI
// are taken.
func ipcFreeIndex[V any](used map[int32]V) int32 {
	for i := int32(0); i < ipcMNI; i++ {
		if _, ok := used[i]; !ok {
			return i
		}
	}
	return -1
}

// nextPerm completes p for a new object at index: its sequence number and
// ID.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) nextPerm(p *ipcPerm, index int32, now int64) {
	// Below 0xffff, so that seq*ipcMNI+index stays a positive int32.
	ns.seq = (ns.seq + 1) % 0xffff
	p.Seq = ns.seq
	p.ID = int32(ns.seq)*ipcMNI + index
	p.Ctime = now
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

// ipcGet implements the shared part of semget and msgget: the object of
// key (IPC_PRIVATE: always a new one), made by create when missing and
// IPC_CREAT is given. check vets an existing object.
//
// Preconditions: ns.mu is held.
func ipcGet[V interface{ perm() *ipcPerm }](t *Task, ns *ipcNamespace, objs map[int32]V, key int32, flags uint32,
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
	index := ipcFreeIndex(objs)
	if index < 0 {
		return 0, unix.ENOSPC
	}
	p := t.newPerm(key, flags)
	ns.nextPerm(&p, index, t.k.realtimeNow()/nsPerSec)
	o, err := create(p)
	if err != nil {
		return 0, err
	}
	objs[index] = o
	return uint64(p.ID), nil
}
