package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The listing commands of semctl, msgctl and shmctl (what ipcs uses):
// IPC_INFO gives the limits, SEM_INFO/MSG_INFO/SHM_INFO what is in use,
// and SEM_STAT/MSG_STAT/SHM_STAT (and their _ANY forms, which skip the
// read permission check) take an index instead of an ID and return the
// object's ID. The INFO commands return the highest index in use.

// Count limits: Linux's defaults (kernel.sem, kernel.msgmni,
// kernel.shmmni, kernel.shmall; fs.mqueue.queues_max).
const (
	semMNI = 32000
	semMNS = semMNI * semMSL
	msgMNI = 32000
	shmMNI = 4096
	// shmAll is the most pages of all segments together (ULONG_MAX -
	// 2^24).
	shmAll        = shmMax
	mqQueuesMax   = 256
	semStatCmd    = 18
	semInfoCmd    = 19
	semStatAnyCmd = 20
	msgStatCmd    = 11
	msgInfoCmd    = 12
	msgStatAnyCmd = 13
	shmStatCmd    = 13
	shmInfoCmd    = 14
	shmStatAnyCmd = 15
	// Constants only IPC_INFO reports (linux/sem.h, linux/msg.h).
	semUSZ   = 20
	msgSSZ   = 16
	msgSeg   = 0xffff
	msgPool  = msgMNI * msgMNB / 1024
	shmMinSz = 1
)

// semaphores counts the semaphores of every set.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) semaphores() int {
	n := 0
	for _, s := range ns.sems {
		n += len(s.Sems)
	}
	return n
}

// shmPages counts the pages of every segment.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) shmPages() uint64 {
	var n uint64
	for _, s := range ns.shms {
		n += s.Range.Length() / pageSize
	}
	return n
}

// semInfo implements semctl IPC_INFO and SEM_INFO into struct seminfo.
//
// Preconditions: ns.mu is held.
func (t *Task) semInfo(ns *ipcNamespace, cmd int32, addr uint64) (uint64, error) {
	usz, aem := int32(semUSZ), int32(semVMX)
	if cmd == semInfoCmd {
		usz, aem = int32(len(ns.sems)), int32(ns.semaphores())
	}
	// semmap, semmni, semmns, semmnu, semmsl, semopm, semume, semusz,
	// semvmx, semaem.
	vals := []int32{semMNS, semMNI, semMNS, semMNS, semMSL, semOPM, semOPM, usz, semVMX, aem}
	return ipcMaxIndex(ns.sems), t.copyOutInt32s(addr, vals)
}

// msgInfo implements msgctl IPC_INFO and MSG_INFO into struct msginfo.
//
// Preconditions: ns.mu is held.
func (t *Task) msgInfo(ns *ipcNamespace, cmd int32, addr uint64) (uint64, error) {
	pool, mapv, tql := int32(msgPool), int32(msgMNB), int32(msgMNB)
	if cmd == msgInfoCmd {
		pool, mapv, tql = int32(len(ns.msgs)), 0, 0
		for _, q := range ns.msgs {
			mapv += int32(len(q.Msgs))
			tql += int32(q.Bytes)
		}
	}
	// msgpool, msgmap, msgmax, msgmnb, msgmni, msgssz, msgtql, msgseg.
	vals := []int32{pool, mapv, msgMax, msgMNB, msgMNI, msgSSZ, tql, msgSeg}
	return ipcMaxIndex(ns.msgs), t.copyOutInt32s(addr, vals)
}

// copyOutInt32s writes vals as consecutive ints.
func (t *Task) copyOutInt32s(addr uint64, vals []int32) error {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return t.tg.mm.CopyOut(addr, b)
}

// shmInfo implements shmctl IPC_INFO (struct shminfo64) and SHM_INFO
// (struct shm_info: resident pages are those the memory file holds).
//
// Preconditions: ns.mu is held.
func (t *Task) shmInfo(ns *ipcNamespace, cmd int32, addr uint64) (uint64, error) {
	le := binary.LittleEndian
	if cmd == ipcInfo {
		b := make([]byte, 72)
		for i, v := range []uint64{shmMax, shmMinSz, shmMNI, shmMNI, shmAll} {
			le.PutUint64(b[8*i:], v)
		}
		return ipcMaxIndex(ns.shms), t.tg.mm.CopyOut(addr, b)
	}
	var rss uint64
	for _, s := range ns.shms {
		t.k.mf.forEachData(s.Range, func(r fileRange) error {
			rss += r.Length() / pageSize
			return nil
		})
	}
	b := make([]byte, 48)
	le.PutUint32(b[0:], uint32(len(ns.shms)))
	le.PutUint64(b[8:], ns.shmPages())
	le.PutUint64(b[16:], rss)
	return ipcMaxIndex(ns.shms), t.tg.mm.CopyOut(addr, b)
}

// ipcStatAt is the lookup of SEM_STAT, MSG_STAT and SHM_STAT: the object
// at index idx, EACCES without read permission unless any (the _ANY
// forms).
func ipcStatAt[V interface{ perm() *ipcPerm }](t *Task, objs map[int32]V, idx int32, anyPerm bool) (V, error) {
	o, err := ipcAtIndex(objs, idx)
	if err == nil && !anyPerm && !t.ipcAccess(o.perm(), 4) {
		var zero V
		return zero, unix.EACCES
	}
	return o, err
}
