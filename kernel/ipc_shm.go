package kernel

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// System V shared memory: shmget, shmat, shmdt and shmctl. A segment is a
// range of the memory file that it owns; each attachment is a shared
// mapping of that range and one more owner of its pages (MemoryFile.Share),
// as a fork of a shared mapping is. IPC_RMID drops the segment's own
// ownership and marks it SHM_DEST with the private key: the pages live as
// long as some process still has them attached, and the segment is
// forgotten once none has (checked by the next shm call). The memory file
// saves the pages like any other.

// Shared memory constants (linux/shm.h).
const (
	shmRdonly = 0o10000
	shmRnd    = 0o20000
	shmRemap  = 0o40000
	shmExec   = 0o100000
	shmLock   = 11
	shmUnlock = 12
	shmDest   = 0o1000
	// shmMax is SHMMAX's default (ULONG_MAX - 2^24).
	shmMax = ^uint64(0) - 1<<24
	// shmidDsSize is sizeof(struct shmid64_ds).
	shmidDsSize = 112
)

// shmSegment is one shared memory segment.
//
// +stateify savable
type shmSegment struct {
	Perm ipcPerm
	// Size is what shmget asked for; Range is the memory behind it
	// (whole pages).
	Size  uint64
	Range fileRange
	// Atime, Dtime: last shmat and shmdt (seconds); Cpid, Lpid: the
	// creator and the last process to attach or detach.
	Atime, Dtime int64
	Cpid, Lpid   int32
	// Dest is set by IPC_RMID: the segment no longer owns its memory.
	Dest bool
}

func (s *shmSegment) perm() *ipcPerm { return &s.Perm }

// name is what /proc/PID/maps shows for an attachment, as Linux.
func (s *shmSegment) name() string { return fmt.Sprintf("/SYSV%08x (deleted)", uint32(s.Perm.Key)) }

func sysShmget(t *Task, a *sysArgs) (uint64, error) {
	key, size, flags := a.Int(0), a[1], uint32(a[2])
	ns := t.k.ipc()
	ns.pruneShm(t.k)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.shms == nil {
		ns.shms = map[int32]*shmSegment{}
	}
	return ipcGet(t, ns, &ns.shmIDs, shmMNI, ns.shms, key, flags, func(s *shmSegment) error {
		if size > s.Size {
			return unix.EINVAL
		}
		return nil
	}, func(p ipcPerm) (*shmSegment, error) {
		pages, ok := pageRoundUp(size)
		if size < 1 || size > shmMax || !ok {
			return nil, unix.EINVAL
		}
		if ns.shmPages()+pages/pageSize > shmAll {
			return nil, unix.ENOSPC
		}
		fr, err := t.k.mf.Allocate(pages)
		if err != nil {
			return nil, unix.ENOMEM
		}
		return &shmSegment{Perm: p, Size: size, Range: fr, Cpid: t.tg.tgid}, nil
	})
}

func sysShmat(t *Task, a *sysArgs) (uint64, error) {
	id, addr, flags := a.Int(0), a[1], uint32(a[2])
	if flags&shmRnd != 0 {
		addr = pageRoundDown(addr)
	}
	if addr&pageMask != 0 || (flags&shmRemap != 0 && addr == 0) {
		return 0, unix.EINVAL
	}
	ns := t.k.ipc()
	ns.pruneShm(t.k)
	ns.mu.Lock()
	s, err := ipcLookup(ns.shms, id)
	if err != nil {
		ns.mu.Unlock()
		return 0, err
	}
	want, p := uint32(6), permRead|permWrite
	if flags&shmRdonly != 0 {
		want, p = 4, permRead
	}
	if flags&shmExec != 0 {
		p |= permExec
	}
	if !t.ipcAccess(&s.Perm, want) {
		ns.mu.Unlock()
		return 0, unix.EACCES
	}
	fr, name := s.Range, s.name()
	ns.mu.Unlock()
	o := MMapOpts{Addr: addr, Length: fr.End - fr.Start, Perms: p, Existing: fr, Name: name}
	if addr != 0 {
		o.Fixed, o.NoReplace = true, flags&shmRemap == 0
	}
	at, err := t.tg.mm.MMap(o)
	if err == unix.EEXIST {
		return 0, unix.EINVAL
	}
	if err != nil {
		return 0, err
	}
	ns.mu.Lock()
	if cur, lerr := ipcLookup(ns.shms, id); lerr == nil {
		cur.Atime, cur.Lpid = t.k.realtimeNow()/nsPerSec, t.tg.tgid
	}
	ns.mu.Unlock()
	return at, nil
}

// shmAttachedAt returns the segment whose attachment starts at addr in
// the caller's address space, and its length.
func (t *Task) shmAttachedAt(ns *ipcNamespace, addr uint64) (*shmSegment, uint64, bool) {
	mm := t.tg.mm
	mm.mu.RLock()
	v := mm.vmaAtLocked(addr)
	var off uint64
	ok := v != nil && v.Start == addr && !v.Private && !v.Beyond
	if ok {
		off = v.Off
	}
	mm.mu.RUnlock()
	if !ok {
		return nil, 0, false
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, s := range ns.shms {
		if s.Range.Start == off {
			return s, s.Range.End - s.Range.Start, true
		}
	}
	return nil, 0, false
}

func sysShmdt(t *Task, a *sysArgs) (uint64, error) {
	addr := a[0]
	if addr&pageMask != 0 {
		return 0, unix.EINVAL
	}
	ns := t.k.ipc()
	s, length, ok := t.shmAttachedAt(ns, addr)
	if !ok {
		return 0, unix.EINVAL
	}
	if err := t.tg.mm.Munmap(addr, length); err != nil {
		return 0, err
	}
	ns.mu.Lock()
	s.Dtime, s.Lpid = t.k.realtimeNow()/nsPerSec, t.tg.tgid
	ns.mu.Unlock()
	ns.pruneShm(t.k)
	return 0, nil
}

// pruneShm forgets the removed segments that nothing maps any more.
func (ns *ipcNamespace) pruneShm(k *Kernel) {
	ns.mu.Lock()
	var dest []*shmSegment
	for _, s := range ns.shms {
		if s.Dest {
			dest = append(dest, s)
		}
	}
	ns.mu.Unlock()
	for _, s := range dest {
		if k.shmAttachments(s.Range) > 0 {
			continue
		}
		ns.mu.Lock()
		if cur, ok := ns.shms[s.Perm.ID%ipcMNI]; ok && cur == s {
			delete(ns.shms, s.Perm.ID%ipcMNI)
		}
		ns.mu.Unlock()
	}
}

// shmAttachments counts the mappings of the segment's memory in the
// sandbox (shm_nattch): one per vma, as Linux counts them.
func (k *Kernel) shmAttachments(r fileRange) uint64 {
	var n uint64
	seen := map[*MM]bool{}
	for _, tg := range k.threadGroups() {
		tg.mu.Lock()
		mm := tg.mm
		tg.mu.Unlock()
		if mm == nil || seen[mm] {
			continue
		}
		seen[mm] = true
		mm.mu.RLock()
		for i := range mm.vmas {
			v := &mm.vmas[i]
			if !v.Private && !v.Beyond && v.Off < r.End && r.Start < v.Off+v.length() {
				n++
			}
		}
		mm.mu.RUnlock()
	}
	return n
}

// shmStat writes s's struct shmid64_ds at addr.
//
// Preconditions: ns.mu is held; shmStat releases it.
func (t *Task) shmStat(ns *ipcNamespace, s *shmSegment, addr uint64) error {
	b := make([]byte, shmidDsSize)
	putPerm(b, &s.Perm)
	le := binary.LittleEndian
	le.PutUint64(b[48:], s.Size)
	le.PutUint64(b[56:], uint64(s.Atime))
	le.PutUint64(b[64:], uint64(s.Dtime))
	le.PutUint64(b[72:], uint64(s.Perm.Ctime))
	le.PutUint32(b[80:], uint32(s.Cpid))
	le.PutUint32(b[84:], uint32(s.Lpid))
	r := s.Range
	ns.mu.Unlock()
	le.PutUint64(b[88:], t.k.shmAttachments(r))
	return t.tg.mm.CopyOut(addr, b)
}

func sysShmctl(t *Task, a *sysArgs) (uint64, error) {
	id, cmd, arg := a.Int(0), a.Int(1)&^ipc64, a[2]
	ns := t.k.ipc()
	ns.pruneShm(t.k)
	ns.mu.Lock()
	switch cmd {
	case ipcInfo, shmInfoCmd:
		defer ns.mu.Unlock()
		return t.shmInfo(ns, cmd, arg)
	case shmStatCmd, shmStatAnyCmd:
		s, err := ipcStatAt(t, ns.shms, id, cmd == shmStatAnyCmd)
		if err != nil {
			ns.mu.Unlock()
			return 0, err
		}
		return uint64(s.Perm.ID), t.shmStat(ns, s, arg)
	}
	s, err := ipcLookup(ns.shms, id)
	if err != nil {
		ns.mu.Unlock()
		return 0, err
	}
	switch cmd {
	case ipcStat:
		if !t.ipcAccess(&s.Perm, 4) {
			ns.mu.Unlock()
			return 0, unix.EACCES
		}
		return 0, t.shmStat(ns, s, arg)
	case ipcSet:
		defer ns.mu.Unlock()
		b := make([]byte, shmidDsSize)
		if err := t.tg.mm.CopyIn(arg, b); err != nil {
			return 0, err
		}
		if !t.ipcOwner(&s.Perm) {
			return 0, unix.EPERM
		}
		setPerm(&s.Perm, b)
		s.Perm.Ctime = t.k.realtimeNow() / nsPerSec
		return 0, nil
	case ipcRmid:
		if !t.ipcOwner(&s.Perm) {
			ns.mu.Unlock()
			return 0, unix.EPERM
		}
		if !s.Dest {
			s.Dest = true
			s.Perm.Key = ipcPrivate
			s.Perm.Mode |= shmDest
			t.k.mf.ReleaseRange(s.Range)
		}
		ns.mu.Unlock()
		ns.pruneShm(t.k)
		return 0, nil
	case shmLock, shmUnlock:
		defer ns.mu.Unlock()
		if !t.ipcOwner(&s.Perm) {
			return 0, unix.EPERM
		}
		return 0, nil
	}
	ns.mu.Unlock()
	return 0, unix.EINVAL
}

// shmMappingsChanged records that process tgid attached every System V
// segment mm maps (detach false: fork copied the mappings) or detached it
// (detach true: mm's last user exits or execs), as Linux's shm_open and
// shm_close of each mapping set the last pid and the attach or detach
// time (shmctl IPC_STAT, /proc/sysvipc/shm).
func (k *Kernel) shmMappingsChanged(mm *MM, tgid int32, detach bool) {
	k.ipcMu.Lock()
	ns := k.ipcNS
	k.ipcMu.Unlock()
	if ns == nil || mm == nil {
		return
	}
	if detach {
		mm.mu.RLock()
		last := mm.users <= 1
		mm.mu.RUnlock()
		if !last {
			return
		}
	}
	ns.mu.Lock()
	segs := make([]*shmSegment, 0, len(ns.shms))
	for _, s := range ns.shms {
		segs = append(segs, s)
	}
	ns.mu.Unlock()
	if len(segs) == 0 {
		return
	}
	var hit []*shmSegment
	mm.mu.RLock()
	for _, s := range segs {
		for i := range mm.vmas {
			v := &mm.vmas[i]
			if !v.Private && !v.Beyond && v.Off < s.Range.End && s.Range.Start < v.Off+v.length() {
				hit = append(hit, s)
				break
			}
		}
	}
	mm.mu.RUnlock()
	now := k.realtimeNow() / nsPerSec
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, s := range hit {
		if detach {
			s.Dtime, s.Lpid = now, tgid
		} else {
			s.Atime, s.Lpid = now, tgid
		}
	}
}
