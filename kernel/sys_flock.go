package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// flock operations (sys/file.h).
const (
	lockSH = 1
	lockEX = 2
	lockNB = 4
	lockUN = 8
)

// sysFlock implements flock(fd, op) on the sandbox's lock table
// (file_locks.go). A blocking request waits until the lock is free or a
// signal or a save interrupts it (ERESTARTSYS).
func sysFlock(t *Task, a *sysArgs) (uint64, error) {
	op := a.Int(1)
	nonblock := op&lockNB != 0
	op &^= lockNB
	if op != lockSH && op != lockEX && op != lockUN {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if f.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	key, err := f.LockKey()
	if err != nil {
		return 0, err
	}
	locks := t.k.locks
	if op == lockUN {
		locks.flockUnlock(key, f)
		return 0, nil
	}
	f.SetLockReleaser(locks)
	for {
		ch, ok := locks.tryFlock(key, f, op == lockEX)
		if ok {
			return 0, nil
		}
		if nonblock {
			return 0, unix.EWOULDBLOCK
		}
		if err := t.block(ch); err != nil {
			return 0, err
		}
	}
}

// flockSize is sizeof(struct flock) on x86-64: l_type and l_whence (16
// bits each), l_start and l_len (64 bits, from offset 8), l_pid (32 bits,
// offset 24), padding.
const flockSize = 32

// Record lock types (fcntl.h).
const (
	fRdlck = 0
	fWrlck = 1
	fUnlck = 2
)

// fcntlLock implements fcntl's F_GETLK, F_SETLK and F_SETLKW (POSIX locks,
// owned by the process) and their F_OFD_ forms (owned by f).
func (t *Task) fcntlLock(f *vfs.File, cmd int, addr uint64) error {
	var b [flockSize]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return err
	}
	le := binary.LittleEndian
	typ, whence := int16(le.Uint16(b[0:])), int16(le.Uint16(b[2:]))
	start, length, pid := int64(le.Uint64(b[8:])), int64(le.Uint64(b[16:])), int32(le.Uint32(b[24:]))
	owner := lockOwner{Process: t.tg}
	ofd := cmd == unix.F_OFD_GETLK || cmd == unix.F_OFD_SETLK || cmd == unix.F_OFD_SETLKW
	if ofd {
		if pid != 0 {
			return unix.EINVAL
		}
		owner = lockOwner{File: f}
	}
	if f.StatusFlags()&unix.O_PATH != 0 {
		return unix.EBADF
	}
	first, last, err := lockRange(f, whence, start, length)
	if err != nil {
		return err
	}
	key, err := f.LockKey()
	if err != nil {
		return err
	}
	locks := t.k.locks
	if cmd == unix.F_GETLK || cmd == unix.F_OFD_GETLK {
		if typ != fRdlck && typ != fWrlck {
			return unix.EINVAL
		}
		r, ok := locks.recordConflict(key, owner, typ == fWrlck, first, last)
		if !ok {
			le.PutUint16(b[0:], fUnlck)
			return t.tg.mm.CopyOut(addr, b[:])
		}
		le.PutUint16(b[0:], fRdlck)
		if r.Write {
			le.PutUint16(b[0:], fWrlck)
		}
		le.PutUint16(b[2:], unix.SEEK_SET)
		le.PutUint64(b[8:], r.Start)
		le.PutUint64(b[16:], 0)
		if r.End != maxOffset {
			le.PutUint64(b[16:], r.End-r.Start+1)
		}
		le.PutUint32(b[24:], uint32(r.Owner.pid()))
		return t.tg.mm.CopyOut(addr, b[:])
	}
	acc := f.StatusFlags() & unix.O_ACCMODE
	switch typ {
	case fRdlck:
		if acc == unix.O_WRONLY {
			return unix.EBADF
		}
	case fWrlck:
		if acc == unix.O_RDONLY {
			return unix.EBADF
		}
	case fUnlck:
	default:
		return unix.EINVAL
	}
	if ofd {
		f.SetLockReleaser(locks)
	}
	wait := cmd == unix.F_SETLKW || cmd == unix.F_OFD_SETLKW
	for {
		ch, err := locks.trySetRecord(key, owner, typ == fUnlck, typ == fWrlck, wait, first, last)
		if err != nil || ch == nil {
			return err
		}
		if !wait {
			return unix.EAGAIN
		}
		if err := t.block(ch); err != nil {
			if owner.Process != nil {
				locks.stopWaiting(owner.Process)
			}
			return err
		}
	}
}

// lockRange converts a struct flock's l_whence, l_start and l_len into the
// first and last byte, as Linux's flock_to_posix_lock: l_len 0 means to
// the end of the file however it grows, a negative l_len the bytes before
// l_start.
func lockRange(f *vfs.File, whence int16, start, length int64) (first, last uint64, err error) {
	var base int64
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base, _ = f.Seek(0, unix.SEEK_CUR) // 0 for files without an offset, as f_pos
	case unix.SEEK_END:
		st, err := f.Stat()
		if err != nil {
			return 0, 0, err
		}
		base = int64(st.Size)
	default:
		return 0, 0, unix.EINVAL
	}
	if start > 0 && base > maxOffset-start {
		return 0, 0, unix.EOVERFLOW
	}
	s := base + start
	if s < 0 {
		return 0, 0, unix.EINVAL
	}
	switch {
	case length > 0:
		if length-1 > maxOffset-s {
			return 0, 0, unix.EOVERFLOW
		}
		return uint64(s), uint64(s + length - 1), nil
	case length < 0:
		if s+length < 0 {
			return 0, 0, unix.EINVAL
		}
		return uint64(s + length), uint64(s - 1), nil
	}
	return uint64(s), maxOffset, nil
}

// dropRecordLocks releases the process's POSIX locks on the files of
// closed descriptors: closing any descriptor of a file drops them, as in
// Linux.
func (tg *ThreadGroup) dropRecordLocks(closed []*vfs.File) {
	locks := tg.k.locks
	if len(closed) == 0 || !locks.holdsRecords(tg) {
		return
	}
	for _, f := range closed {
		if key, err := f.LockKey(); err == nil {
			locks.releaseRecords(tg, key)
		}
	}
}

// filesIn returns new references to the files of the descriptors keep
// selects; the caller drops them.
func (tg *ThreadGroup) filesIn(keep func(fd int32, flags vfs.FDFlags) bool) []*vfs.File {
	var out []*vfs.File
	tg.fdTable.ForEach(func(fd int32, f *vfs.File, fl vfs.FDFlags) {
		if keep(fd, fl) {
			f.IncRef()
			out = append(out, f)
		}
	})
	return out
}

// closingFiles runs op, which closes the descriptors keep selects unless
// it fails (false), and then drops the process's POSIX locks on their
// files and its message queue notifications registered on them (as a
// close(2) does: closeFD).
func (tg *ThreadGroup) closingFiles(keep func(fd int32, flags vfs.FDFlags) bool, op func() bool) {
	var files, queues []*vfs.File
	if tg.k.locks.holdsRecords(tg) {
		files = tg.filesIn(keep)
	}
	tg.fdTable.ForEach(func(fd int32, f *vfs.File, fl vfs.FDFlags) {
		if _, ok := f.Impl().(*mqFile); ok && keep(fd, fl) {
			f.IncRef()
			queues = append(queues, f)
		}
	})
	if op() {
		tg.dropRecordLocks(files)
		tg.flushQueues(queues)
	}
	for _, f := range append(files, queues...) {
		f.DecRef()
	}
}

// flushQueues drops the process's message queue notifications on the
// queues of files (Linux's mqueue_flush_file, at each close of a
// descriptor).
func (tg *ThreadGroup) flushQueues(files []*vfs.File) {
	for _, f := range files {
		if m, ok := f.Impl().(*mqFile); ok {
			m.M.flush(tg)
		}
	}
}

// closeOnExec closes the close-on-exec descriptors for execve.
func (tg *ThreadGroup) closeOnExec() {
	tg.closingFiles(func(_ int32, fl vfs.FDFlags) bool { return fl.CloseOnExec }, func() bool {
		tg.fdTable.CloseOnExec()
		return true
	})
}
