package vfs

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrMemfdNotSavable means a save found a memfd_create file open: its
// contents are not part of an image yet.
var ErrMemfdNotSavable = errors.New("a memfd_create file is open; saving its contents is not supported yet")

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

// memfdInode is the anonymous memory file behind one memfd_create call,
// shared by the descriptions that reopen it (/proc/self/fd/N).
//
// +stateify savable
type memfdInode struct {
	// name is the name given to memfd_create; immutable.
	name string
	// refs counts the memfdFiles using the inode; accessed atomically.
	refs atomic.Int64
	// fd is the host memfd holding the contents. Host descriptors are not
	// saved; a save refuses memfds (memfdFile.beforeSave).
	fd int `state:"nosave"`
}

// memfdFile is an open description of a memfd: the host memfd does the
// reads, writes, truncation and seals; the offset is the description's.
//
// +stateify savable
type memfdFile struct {
	noImpl
	// ino is the memory file; immutable.
	ino *memfdInode
	// mu protects off. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// off is the file offset.
	off int64
}

// NewMemfd implements memfd_create(2): a new anonymous regular file of
// size 0, open read-write, backed by a host memfd. flags may hold
// MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL and MFD_EXEC (MFD_CLOEXEC is the
// caller's to apply); name is at most 249 bytes.
func NewMemfd(name string, flags uint32) (*File, error) {
	if len(name) > memfdNameMax || flags&^uint32(mfdAllowSealing|mfdNoexecSeal|mfdExec) != 0 {
		return nil, unix.EINVAL
	}
	fd, err := unix.MemfdCreate(name, int(flags)|unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create %q on the host: %w", name, err)
	}
	ino := &memfdInode{name: name, fd: fd}
	ino.refs.Store(1)
	return newFile(unix.O_RDWR|oLargefile, &memfdFile{ino: ino}), nil
}

// reopen returns a new description of the same memfd (offset 0).
func (m *memfdFile) reopen(flags uint32) *File {
	m.ino.refs.Add(1)
	return newFile(flags&(unix.O_ACCMODE|unix.O_APPEND|unix.O_NONBLOCK)|oLargefile, &memfdFile{ino: m.ino})
}

func (m *memfdFile) release() {
	if m.ino.refs.Add(-1) == 0 {
		unix.Close(m.ino.fd)
		m.ino.fd = -1
	}
}

// beforeSave refuses the save: a memfd's contents live in a host memfd that
// images do not hold yet. Invoked by stateify, which turns the panic into
// the save's error.
func (m *memfdFile) beforeSave() {
	panic(fmt.Errorf("memfd %q: %w", m.ino.name, ErrMemfdNotSavable))
}

func (m *memfdFile) read(_ *File, _ <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return preadFull(m.ino.fd, dst, off)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := preadFull(m.ino.fd, dst, m.off)
	m.off += int64(n)
	return n, err
}

func (m *memfdFile) write(f *File, _ <-chan struct{}, src []byte, off int64) (int, error) {
	if off >= 0 {
		return retryEINTR(func() (int, error) { return unix.Pwrite(m.ino.fd, src, off) })
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f.flags.Load()&unix.O_APPEND != 0 {
		st, err := hostStat(m.ino.fd)
		if err != nil {
			return 0, err
		}
		m.off = int64(st.Size)
	}
	n, err := retryEINTR(func() (int, error) { return unix.Pwrite(m.ino.fd, src, m.off) })
	if n > 0 {
		m.off += int64(n)
	}
	return n, err
}

func (m *memfdFile) seek(_ *File, off int64, whence int) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := seekHostFD(m.ino.fd, m.off, off, whence)
	if err != nil {
		return 0, err
	}
	m.off = n
	return n, nil
}

func (m *memfdFile) stat(*File) (Stat, error) { return hostStat(m.ino.fd) }

func (m *memfdFile) guestPath() string { return "/memfd:" + m.ino.name + " (deleted)" }

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
	case *memfdFile:
		return unix.Ftruncate(impl.ino.fd, size)
	case *tmpfsFile:
		err := impl.truncate(size)
		if err == nil {
			f.notify(InModify)
		}
		return err
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
	case *memfdFile:
		return unix.Fallocate(impl.ino.fd, mode, off, length)
	case *tmpfsFile:
		err := impl.fallocate(mode, off, length)
		if err == nil {
			f.notify(InModify)
		}
		return err
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

// Seals implements fcntl F_ADD_SEALS (add != 0) and F_GET_SEALS on a memfd
// through its host memfd: EINVAL for other files, EPERM without
// MFD_ALLOW_SEALING or when F_SEAL_SEAL is set.
func (f *File) Seals(add uint32, get bool) (uint32, error) {
	m, ok := f.impl.(*memfdFile)
	if !ok {
		return 0, unix.EINVAL
	}
	if get {
		r, err := unix.FcntlInt(uintptr(m.ino.fd), unix.F_GET_SEALS, 0)
		return uint32(r), err
	}
	if !f.writable() {
		return 0, unix.EPERM
	}
	_, err := unix.FcntlInt(uintptr(m.ino.fd), unix.F_ADD_SEALS, int(add))
	return 0, err
}

// IsMemfd reports whether f was made by memfd_create.
func (f *File) IsMemfd() bool {
	_, ok := f.impl.(*memfdFile)
	return ok
}
