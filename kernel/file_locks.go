package kernel

import (
	"cmp"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// fileLocks are the sandbox's advisory file locks:
//
//   - flock(2) locks, shared or exclusive on a whole file, owned by an
//     open file description and dropped when its last reference goes;
//   - POSIX record locks (fcntl F_SETLK), read or write on a byte range,
//     owned by a process and dropped when the process closes any
//     descriptor of the file, or exits;
//   - OFD record locks (F_OFD_SETLK), the same ranges owned by an open file
//     description, dropped with its last reference.
//
// Record locks of different owners conflict when they overlap and one of
// them is a write lock; a process's POSIX locks and its OFD locks are
// different owners. Locks live only in the sentry (the host's files are
// never locked), keyed by vfs.LockKey, and are saved with the kernel. A
// task waiting for a lock waits on changed and tries again; a save
// interrupts it (ERESTARTSYS) and the restored syscall tries again.
//
// +stateify savable
type fileLocks struct {
	// mu protects files and changed. It is a leaf: nothing else is
	// locked while it is held.
	mu sync.Mutex `state:"nosave"`
	// files are the files with at least one lock. Protected by mu.
	files []*lockedFile
	// changed is closed (and replaced) whenever a lock is released or
	// changed, waking every waiter to try again. Not saved: no task waits
	// at save time. Protected by mu.
	changed chan struct{} `state:"nosave"`
	// waiting are the POSIX lock requests of processes blocked in
	// F_SETLKW, for deadlock detection. Not saved: a save interrupts the
	// waits, which register again when they restart. Protected by mu.
	waiting map[*ThreadGroup]lockRequest `state:"nosave"`
}

// lockRequest is a record lock a process waits for.
type lockRequest struct {
	key        vfs.LockKey
	write      bool
	start, end uint64
}

// maxDeadlockSteps bounds the wait-for chain deadlock detection follows,
// as Linux's MAX_DEADLK_ITERATIONS.
const maxDeadlockSteps = 10

// lockedFile is one file's locks.
//
// +stateify savable
type lockedFile struct {
	Key     vfs.LockKey
	Flocks  []flockLock
	Records []recordLock
}

// flockLock is one flock(2) lock.
//
// +stateify savable
type flockLock struct {
	Owner     *vfs.File
	Exclusive bool
}

// maxOffset is the last byte a record lock can cover (OFFSET_MAX); a lock
// ending there extends to the end of the file, however it grows.
const maxOffset = 1<<63 - 1

// recordLock is one POSIX or OFD lock on the bytes Start..End (inclusive).
//
// +stateify savable
type recordLock struct {
	Owner      lockOwner
	Write      bool
	Start, End uint64
}

// lockOwner owns record locks: a process (POSIX locks) or an open file
// description (OFD locks); exactly one is set.
//
// +stateify savable
type lockOwner struct {
	Process *ThreadGroup
	File    *vfs.File
}

// pid is what F_GETLK reports as the owner: the process ID of a POSIX lock
// and -1 for an OFD lock.
func (o lockOwner) pid() int32 {
	if o.Process == nil {
		return -1
	}
	return o.Process.tgid
}

func newFileLocks() *fileLocks { return &fileLocks{} }

// fileLocked returns key's entry, made if create is set (nil otherwise).
//
// Preconditions: l.mu is held.
func (l *fileLocks) fileLocked(key vfs.LockKey, create bool) *lockedFile {
	for _, lf := range l.files {
		if lf.Key == key {
			return lf
		}
	}
	if !create {
		return nil
	}
	lf := &lockedFile{Key: key}
	l.files = append(l.files, lf)
	return lf
}

// notifyLocked wakes every waiter.
//
// Preconditions: l.mu is held.
func (l *fileLocks) notifyLocked() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// gcLocked drops the entries of files left without locks.
//
// Preconditions: l.mu is held.
func (l *fileLocks) gcLocked() {
	l.files = slices.DeleteFunc(l.files, func(lf *lockedFile) bool { return len(lf.Flocks) == 0 && len(lf.Records) == 0 })
}

// changedLocked returns the channel closed at the next change.
//
// Preconditions: l.mu is held.
func (l *fileLocks) changedLocked() <-chan struct{} {
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// tryFlock takes a flock lock on key for the description f, or returns a
// channel closed when it may be worth trying again. As in Linux, a lock of
// the other type that f already holds is released first, so a conversion
// that has to wait holds nothing meanwhile.
func (l *fileLocks) tryFlock(key vfs.LockKey, f *vfs.File, exclusive bool) (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.gcLocked()
	lf := l.fileLocked(key, true)
	for i, fl := range lf.Flocks {
		if fl.Owner == f {
			if fl.Exclusive == exclusive {
				return nil, true
			}
			lf.Flocks = slices.Delete(lf.Flocks, i, i+1)
			l.notifyLocked()
			break
		}
	}
	for _, fl := range lf.Flocks {
		if exclusive || fl.Exclusive {
			return l.changedLocked(), false
		}
	}
	lf.Flocks = append(lf.Flocks, flockLock{Owner: f, Exclusive: exclusive})
	return nil, true
}

// flockUnlock releases f's flock lock on key, if any.
func (l *fileLocks) flockUnlock(key vfs.LockKey, f *vfs.File) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.gcLocked()
	if lf := l.fileLocked(key, false); lf != nil {
		lf.Flocks = slices.DeleteFunc(lf.Flocks, func(fl flockLock) bool { return fl.Owner == f })
		l.notifyLocked()
	}
}

// overlaps reports whether r covers any byte of start..end.
func (r *recordLock) overlaps(start, end uint64) bool { return r.Start <= end && start <= r.End }

// conflictLocked returns the first lock of another owner that a lock of
// owner on start..end conflicts with, or nil.
//
// Preconditions: l.mu is held.
func (lf *lockedFile) conflictLocked(o lockOwner, write bool, start, end uint64) *recordLock {
	for i := range lf.Records {
		r := &lf.Records[i]
		if r.Owner != o && r.overlaps(start, end) && (write || r.Write) {
			return r
		}
	}
	return nil
}

// trySetRecord sets owner o's lock on start..end of key to a read lock, a
// write lock, or none (unlock). On a conflict it returns a channel closed
// when it may be worth trying again; if the caller is going to wait for it
// (wait), a POSIX owner is registered as waiting, and EDEADLK is returned
// instead if the owner of the conflicting lock waits, directly or through
// other processes, for a lock the caller holds. The owner's locks of the
// same type that overlap or touch the range merge with it; those of the
// other type lose the range (and may split in two), as in Linux.
func (l *fileLocks) trySetRecord(key vfs.LockKey, o lockOwner, unlock, write, wait bool, start, end uint64) (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.gcLocked()
	lf := l.fileLocked(key, !unlock)
	if lf == nil {
		return nil, nil
	}
	if !unlock {
		if c := lf.conflictLocked(o, write, start, end); c != nil {
			if wait && o.Process != nil {
				if l.deadlockLocked(o.Process, c) {
					delete(l.waiting, o.Process)
					return nil, unix.EDEADLK
				}
				if l.waiting == nil {
					l.waiting = map[*ThreadGroup]lockRequest{}
				}
				l.waiting[o.Process] = lockRequest{key: key, write: write, start: start, end: end}
			}
			return l.changedLocked(), nil
		}
	}
	if o.Process != nil {
		delete(l.waiting, o.Process)
	}
	ns, ne := start, end
	out := lf.Records[:0:0]
	for _, r := range lf.Records {
		switch {
		case r.Owner != o:
		case !unlock && r.Write == write && r.Start <= ne+1 && ns <= r.End+1:
			ns, ne = min(ns, r.Start), max(ne, r.End)
			continue
		case r.overlaps(start, end):
			if r.Start < start {
				left := r
				left.End = start - 1
				out = append(out, left)
			}
			if r.End > end {
				r.Start = end + 1
				out = append(out, r)
			}
			continue
		}
		out = append(out, r)
	}
	if !unlock {
		out = append(out, recordLock{Owner: o, Write: write, Start: ns, End: ne})
	}
	// Linux keeps an owner's locks in order of their start, and F_GETLK
	// reports the first conflict it meets.
	slices.SortStableFunc(out, func(a, b recordLock) int { return cmp.Compare(a.Start, b.Start) })
	lf.Records = out
	l.notifyLocked()
	return nil, nil
}

// deadlockLocked reports whether process p waiting for lock blocker would
// deadlock: blocker's owner waits for a lock whose owner waits ... for a
// lock p holds (Linux's posix_locks_deadlock; OFD locks end the chain).
//
// Preconditions: l.mu is held.
func (l *fileLocks) deadlockLocked(p *ThreadGroup, blocker *recordLock) bool {
	for i := 0; i < maxDeadlockSteps && blocker != nil; i++ {
		b := blocker.Owner.Process
		if b == nil {
			return false
		}
		if b == p {
			return true
		}
		req, ok := l.waiting[b]
		if !ok {
			return false
		}
		lf := l.fileLocked(req.key, false)
		if lf == nil {
			return false
		}
		blocker = lf.conflictLocked(lockOwner{Process: b}, req.write, req.start, req.end)
	}
	return false
}

// stopWaiting forgets that process p waits for a lock (its F_SETLKW was
// interrupted).
func (l *fileLocks) stopWaiting(p *ThreadGroup) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiting, p)
}

// recordConflict returns a copy of the lock F_GETLK reports for owner o
// asking for start..end of key, and whether there is one.
func (l *fileLocks) recordConflict(key vfs.LockKey, o lockOwner, write bool, start, end uint64) (recordLock, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lf := l.fileLocked(key, false); lf != nil {
		if r := lf.conflictLocked(o, write, start, end); r != nil {
			return *r, true
		}
	}
	return recordLock{}, false
}

// holdsRecords reports whether process tg holds any POSIX lock: closing a
// descriptor only needs the file's key when it does.
func (l *fileLocks) holdsRecords(tg *ThreadGroup) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lf := range l.files {
		for _, r := range lf.Records {
			if r.Owner.Process == tg {
				return true
			}
		}
	}
	return false
}

// releaseRecords drops the POSIX locks of process tg on key.
func (l *fileLocks) releaseRecords(tg *ThreadGroup, key vfs.LockKey) {
	l.releaseRecordsIf(tg, func(k vfs.LockKey) bool { return k == key })
}

// releaseProcess drops every POSIX lock of process tg, which is exiting.
func (l *fileLocks) releaseProcess(tg *ThreadGroup) {
	l.releaseRecordsIf(tg, func(vfs.LockKey) bool { return true })
	l.stopWaiting(tg)
}

func (l *fileLocks) releaseRecordsIf(tg *ThreadGroup, onFile func(vfs.LockKey) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.gcLocked()
	for _, lf := range l.files {
		if onFile(lf.Key) {
			lf.Records = slices.DeleteFunc(lf.Records, func(r recordLock) bool { return r.Owner.Process == tg })
		}
	}
	l.notifyLocked()
}

// ReleaseLocks drops the flock and OFD locks of the open file description
// f, whose last reference is going. Invoked by vfs.File.DecRef.
func (l *fileLocks) ReleaseLocks(f *vfs.File) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.gcLocked()
	for _, lf := range l.files {
		lf.Flocks = slices.DeleteFunc(lf.Flocks, func(fl flockLock) bool { return fl.Owner == f })
		lf.Records = slices.DeleteFunc(lf.Records, func(r recordLock) bool { return r.Owner.File == f })
	}
	l.notifyLocked()
}
