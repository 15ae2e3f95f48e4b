package vfs

import (
	"context"
	"math"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// memfdNameMax is the longest name memfd_create accepts (NAME_MAX less
// the "memfd:" prefix).
const memfdNameMax = 249

// Memfd flags (linux/memfd.h) NewMemfd accepts; MFD_CLOEXEC is the
// FDTable's business and MFD_HUGETLB is not supported.
const (
	mfdAllowSealing = 0x2
	mfdNoexecSeal   = 0x8
	mfdExec         = 0x10
)

// Seals (linux/fcntl.h).
const (
	sealSeal        = 0x1
	sealShrink      = 0x2
	sealGrow        = 0x4
	sealWrite       = 0x8
	sealFutureWrite = 0x10
	sealExec        = 0x20
	sealsKnown      = 0x3f
)

// memfdMinor is the device minor number stat reports for memfds: Linux's
// internal shmem mount.
const memfdMinor = 1

// memfdIno numbers memfds, which share a device: each has a tmpfs of its
// own, whose one file takes the next number.
var memfdIno atomic.Uint64

// afterLoad keeps new memfds from reusing a restored memfd's inode number.
// Invoked by stateify.
func (t *tmpfs) afterLoad(context.Context) {
	if t.minor != memfdMinor {
		return
	}
	for {
		cur := memfdIno.Load()
		if cur >= t.nextIno || memfdIno.CompareAndSwap(cur, t.nextIno) {
			return
		}
	}
}

// NewMemfd implements memfd_create(2): a new anonymous regular file of
// size 0, open read-write. It is an unlinked file of a tmpfs of its own
// whose data lives in pages (the kernel's memory file, nil for Go memory),
// so that its contents are saved with the sandbox and a shared mapping can
// map its pages. flags may hold MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL and
// MFD_EXEC (MFD_CLOEXEC is the caller's to apply); name is at most 249
// bytes. The file belongs to o.
func NewMemfd(pages Pages, o Owner, name string, flags uint32) (*File, error) {
	if len(name) > memfdNameMax || flags&^uint32(mfdAllowSealing|mfdNoexecSeal|mfdExec) != 0 ||
		flags&(mfdNoexecSeal|mfdExec) == mfdNoexecSeal|mfdExec {
		return nil, unix.EINVAL
	}
	t := newTmpfs(math.MaxUint64, memfdMinor)
	t.pages = pages
	t.nextIno = memfdIno.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	mode := uint32(unix.S_IFREG | 0o777)
	seals := uint32(sealSeal)
	switch {
	case flags&mfdNoexecSeal != 0:
		mode, seals = unix.S_IFREG|0o666, sealExec
	case flags&mfdAllowSealing != 0:
		seals = 0
	}
	n := t.newNodeLocked(mode, o.UID, o.GID)
	n.seals = seals
	n.opens++
	return newFile(unix.O_RDWR|oLargefile, &tmpfsFile{node: n, path: "/memfd:" + name, memfd: true}), nil
}

// Truncate sets the size of a memfd (ftruncate(2)). As on Linux, it is
// EINVAL for a negative size and for a description that is not a regular
// file open for writing (pipes, devices, host files, which open read-only);
// EPERM if a seal forbids it. A tmpfs file is resized; other writable
// regular files (stdio bound to a host file) keep SetAttr's answer.
func (f *File) Truncate(size int64) error {
	if size < 0 || f.FileType() != unix.S_IFREG || !f.writable() {
		return unix.EINVAL
	}
	switch impl := f.impl.(type) {
	case *tmpfsFile:
		err := impl.truncate(size)
		if err == nil {
			f.notify(InModify)
		}
		return err
	case *hostFile:
		if impl.bind != nil {
			err := unix.Ftruncate(impl.fd, size)
			if err == nil {
				f.notify(InModify)
			}
			return err
		}
	}
	return f.SetAttr(nil)
}

// fallocate mode bits (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocKnown     = 0xff
)

// Fallocate implements fallocate(2) with Linux's checks in Linux's order:
// EINVAL for a bad range, EOPNOTSUPP for an unknown mode, EBADF unless open
// for writing, ESPIPE on a pipe, EISDIR, ENODEV for anything but a regular
// file. A memfd allocates through its host memfd, a tmpfs file in its
// filesystem (ENOSPC when full); the other regular files (stdio bound to a
// host file) are EOPNOTSUPP.
func (f *File) Fallocate(mode uint32, off, length int64) error {
	if off < 0 || length <= 0 {
		return unix.EINVAL
	}
	if mode&^fallocKnown != 0 || mode&(fallocPunchHole|fallocKeepSize) == fallocPunchHole {
		return unix.EOPNOTSUPP
	}
	if !f.writable() {
		return unix.EBADF
	}
	switch f.FileType() {
	case unix.S_IFIFO:
		return unix.ESPIPE
	case unix.S_IFDIR:
		return unix.EISDIR
	case unix.S_IFREG:
	default:
		return unix.ENODEV
	}
	if off+length < 0 {
		return unix.EFBIG
	}
	switch impl := f.impl.(type) {
	case *tmpfsFile:
		err := impl.fallocate(mode, off, length)
		if err == nil {
			f.notify(InModify)
		}
		return err
	case *hostFile:
		if impl.bind != nil {
			err := unix.Fallocate(impl.fd, mode, off, length)
			if err == nil {
				f.notify(InModify)
			}
			return err
		}
	}
	return unix.EOPNOTSUPP
}

// Readahead implements readahead(2)'s checks, the only part that shows:
// EBADF unless open for reading, EINVAL unless a regular file.
func (f *File) Readahead() error {
	if !f.readable() {
		return unix.EBADF
	}
	if f.FileType() != unix.S_IFREG {
		return unix.EINVAL
	}
	return nil
}

// Seals implements fcntl F_ADD_SEALS (add != 0) and F_GET_SEALS on a
// memfd or tmpfs file, as Linux's memfd_add_seals: EINVAL for other files
// and unknown seals, EPERM unless open for writing or when F_SEAL_SEAL is
// set (a tmpfs file and a memfd made without MFD_ALLOW_SEALING have it from
// the start), EBUSY for F_SEAL_WRITE while writableMapped reports a
// writable shared mapping of the file (nil: none).
func (f *File) Seals(add uint32, get bool, writableMapped func(SharedFile) bool) (uint32, error) {
	m, ok := f.impl.(*tmpfsFile)
	if !ok || m.node.fileType() != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	// Asked before t.mu is taken: the kernel looks at its address spaces,
	// whose locks come before the filesystem's.
	busy := !get && add&sealWrite != 0 && writableMapped != nil && writableMapped(m.node)
	t := m.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	if get {
		return m.node.seals, nil
	}
	if add&^sealsKnown != 0 {
		return 0, unix.EINVAL
	}
	if !f.writable() || m.node.seals&sealSeal != 0 {
		return 0, unix.EPERM
	}
	if busy && m.node.seals&sealWrite == 0 {
		return 0, unix.EBUSY
	}
	m.node.seals |= add
	return 0, nil
}

// IsMemfd reports whether f was made by memfd_create.
func (f *File) IsMemfd() bool {
	m, ok := f.impl.(*tmpfsFile)
	return ok && m.memfd
}
