package vfs

import (
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// settableFlags are the status flags F_SETFL may change (Linux's SETFL_MASK
// without O_DIRECT, which the sentry does not honour).
const settableFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_NOATIME

// keptFlags are the open(2) flags a File remembers and F_GETFL reports:
// the access mode, the status flags, and O_PATH/O_DIRECTORY-like markers
// that Linux also reports.
const keptFlags = unix.O_ACCMODE | settableFlags | unix.O_PATH | unix.O_DIRECT | oLargefile

// oLargefile is the x86-64 kernel's O_LARGEFILE (x/sys/unix defines it as
// 0 on amd64, as glibc does). Linux sets it on every file opened by path
// on 64-bit kernels, and F_GETFL reports it.
const oLargefile = 0x8000

// fileImpl is one kind of file. Methods that do not apply return the errno
// Linux returns for that kind (noImpl supplies the defaults). They are
// called without File.mu held unless the name ends in Locked.
type fileImpl interface {
	// read reads at off, or at and advancing the file offset if off < 0.
	read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error)
	// write writes at off, or at the file offset (or end, with O_APPEND)
	// if off < 0.
	write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error)
	seek(f *File, off int64, whence int) (int64, error)
	stat(f *File) (Stat, error)
	getdents64(f *File, dst []byte) (int, error)
	ioctl(f *File, cmd uint32, arg []byte) (int, error)
	readiness(f *File, mask uint32) uint32
	// watch returns a channel closed when readiness may have changed, and a
	// function that stops watching.
	watch(f *File, mask uint32) (<-chan struct{}, func())
	// guestPath is the file's guest path, or "" if it has none.
	guestPath() string
	release()
}

// File is an open file description. A File is created by FS.OpenAt, NewPipe,
// NewStdio or OpenDevice with one reference, which the caller owns.
//
// +stateify savable
type File struct {
	// refs is the reference count; accessed atomically.
	refs atomic.Int64

	// flags holds the access mode and status flags (O_APPEND, O_NONBLOCK,
	// ...); accessed atomically; writes also hold mu.
	flags atomic.Uint32

	// mu serializes operations that use or move the file offset and flag
	// updates. Not saved: no operation is in progress at save time.
	mu sync.Mutex `state:"nosave"`

	// impl is the kind of file; immutable.
	impl fileImpl

	// locker, if set, is told when the last reference goes, so that the
	// locks this description owns are dropped (SetLockReleaser).
	// Protected by mu.
	locker LockReleaser

	// notifier receives the events of a file opened by path (IN_OPEN,
	// IN_MODIFY, ...); nil for other files. Immutable once the open
	// returns.
	notifier *Notifier

	// sigio is who the file signals and with which signal (F_SETOWN,
	// F_SETSIG); accessed atomically.
	sigio fileSigio

	// released is closed when the last reference goes (Released); made
	// on demand. Not saved: the kernel's O_ASYNC watchers that wait on
	// it are started again after a restore. Protected by mu.
	released chan struct{} `state:"nosave"`
}

func newFile(flags uint32, impl fileImpl) *File {
	f := &File{impl: impl}
	f.refs.Store(1)
	f.flags.Store(flags & keptFlags)
	return f
}

// IncRef takes a reference to f.
func (f *File) IncRef() {
	if f.refs.Add(1) <= 1 {
		panic("vfs: IncRef on a released File")
	}
}

// DecRef drops a reference; the last one releases the locks the file
// owns and its host resources (host descriptors, pipe end counts).
func (f *File) DecRef() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		f.mu.Lock()
		l := f.locker
		if f.released != nil {
			close(f.released)
		}
		f.mu.Unlock()
		if l != nil {
			l.ReleaseLocks(f)
		}
		f.notifyClose()
		f.impl.release()
		f.notifier.flushGone()
	case n < 0:
		panic("vfs: DecRef on a released File")
	}
}

// Released returns a channel closed when f's last reference goes.
func (f *File) Released() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released == nil {
		f.released = make(chan struct{})
		if f.refs.Load() <= 0 {
			close(f.released)
		}
	}
	return f.released
}

// StatusFlags returns the flags F_GETFL reports: access mode and status
// flags.
func (f *File) StatusFlags() uint32 { return f.flags.Load() }

// SetStatusFlags implements F_SETFL: only O_APPEND, O_NONBLOCK, O_ASYNC and
// O_NOATIME change; other bits are ignored, as in Linux.
func (f *File) SetStatusFlags(flags uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.flags.Load()
	f.flags.Store(old&^settableFlags | flags&settableFlags)
}

func (f *File) nonblocking() bool { return f.flags.Load()&unix.O_NONBLOCK != 0 }

func (f *File) accMode() uint32 { return f.flags.Load() & unix.O_ACCMODE }

func (f *File) isPath() bool { return f.flags.Load()&unix.O_PATH != 0 }

func (f *File) readable() bool {
	m := f.accMode()
	return !f.isPath() && (m == unix.O_RDONLY || m == unix.O_RDWR)
}

func (f *File) writable() bool {
	m := f.accMode()
	return !f.isPath() && (m == unix.O_WRONLY || m == unix.O_RDWR)
}

// Read reads into dst at the file offset and advances it (read(2)). It may
// block on pipes and host stdio until cancel is closed (ErrInterrupted).
// A return of 0, nil is end of file.
func (f *File) Read(cancel <-chan struct{}, dst []byte) (int, error) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	n, err := f.impl.read(f, cancel, dst, -1)
	if n > 0 {
		f.notify(InAccess)
	}
	return n, err
}

// Write writes src at the file offset, or at the end with O_APPEND
// (write(2)). It may block like Read.
func (f *File) Write(cancel <-chan struct{}, src []byte) (int, error) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	n, err := f.impl.write(f, cancel, src, -1)
	if n > 0 {
		f.notify(InModify)
	}
	return n, err
}

// PRead reads at offset off without using the file offset (pread64(2)).
// Pipes and stdio terminals fail with ESPIPE.
func (f *File) PRead(dst []byte, off int64) (int, error) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	n, err := f.impl.read(f, nil, dst, off)
	if n > 0 {
		f.notify(InAccess)
	}
	return n, err
}

// PWrite writes at offset off (pwrite64(2)).
func (f *File) PWrite(src []byte, off int64) (int, error) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	n, err := f.impl.write(f, nil, src, off)
	if n > 0 {
		f.notify(InModify)
	}
	return n, err
}

// Seek implements lseek(2) with SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA and
// SEEK_HOLE; it returns the new offset.
func (f *File) Seek(off int64, whence int) (int64, error) {
	if f.isPath() {
		return 0, unix.EBADF
	}
	return f.impl.seek(f, off, whence)
}

// Stat returns the file's attributes (fstat(2), statx(2) with AT_EMPTY_PATH).
func (f *File) Stat() (Stat, error) { return f.impl.stat(f) }

// Getdents64 fills dst with linux_dirent64 records from the directory
// offset on and advances it (getdents64(2)). It returns 0 at the end of the
// directory, EINVAL if dst cannot hold the next record, ENOTDIR for other
// files.
func (f *File) Getdents64(dst []byte) (int, error) {
	if f.isPath() {
		return 0, unix.EBADF
	}
	n, err := f.impl.getdents64(f, dst)
	if err == nil {
		f.notify(InAccess)
	}
	return n, err
}

// Ioctl performs ioctl request cmd. arg must be at least IoctlArgSize(cmd)
// bytes: the kernel copies the argument in before the call and out after it
// (see IoctlArgSize). Unknown requests fail with ENOTTY.
func (f *File) Ioctl(cmd uint32, arg []byte) (int, error) {
	if f.isPath() {
		return 0, unix.EBADF
	}
	n, _, _ := IoctlArgSize(cmd)
	if len(arg) < n {
		return 0, unix.EFAULT
	}
	switch cmd {
	case fionbio:
		f.mu.Lock()
		defer f.mu.Unlock()
		fl := f.flags.Load() &^ unix.O_NONBLOCK
		if le32(arg) != 0 {
			fl |= unix.O_NONBLOCK
		}
		f.flags.Store(fl)
		return 0, nil
	}
	return f.impl.ioctl(f, cmd, arg)
}

// Readiness returns the subset of mask (POLLIN, POLLOUT, ...) that is ready
// now, plus POLLERR/POLLHUP which are always reported. It never blocks.
func (f *File) Readiness(mask uint32) uint32 {
	if f.isPath() {
		return unix.POLLNVAL
	}
	return f.impl.readiness(f, mask)
}

// Watch returns a channel that is closed when f's readiness for mask may
// have changed, and a stop function the caller must call when it no longer
// waits. A nil channel means readiness never changes (regular files and
// devices are always ready). The kernel's poll checks Readiness, then waits on Watch channels of
// all its files (and its own interrupt), then checks again.
func (f *File) Watch(mask uint32) (<-chan struct{}, func()) { return f.impl.watch(f, mask) }

// Path returns the guest path of a host-backed file or directory, or the
// device path of a sentry device; "" for pipes and stdio.
func (f *File) Path() string { return f.impl.guestPath() }

// LinkName returns what readlink of /proc/self/fd/N shows for f, so that
// the kernel can answer it (with FS.FDAlias): the guest path of host files
// and devices, "pipe:[ino]" for pipes, and for stdio the host descriptor's
// name as the runner gave it (e.g. "/dev/stdout").
func (f *File) LinkName() string {
	switch impl := f.impl.(type) {
	case *pipeReader:
		return "pipe:[" + strconv.FormatUint(impl.pipe.ino, 10) + "]"
	case *pipeWriter:
		return "pipe:[" + strconv.FormatUint(impl.pipe.ino, 10) + "]"
	case *stdioFile:
		if impl.host == nil {
			return "/dev/null"
		}
		return impl.host.Name()
	case *implFile:
		return impl.impl.LinkName()
	default:
		return f.Path()
	}
}

// FileType returns f's S_IF* file type without a host system call (the
// type at open for host files; S_IFIFO for pipes; the host descriptor's
// type for stdio, S_IFCHR when unbound).
func (f *File) FileType() uint32 {
	switch impl := f.impl.(type) {
	case *hostFile:
		return impl.mode & unix.S_IFMT
	case *syntheticFile:
		return unix.S_IFREG
	case *pipeReader, *pipeWriter, *fifoFile:
		return unix.S_IFIFO
	case *stdioFile:
		return impl.fileType()
	case *devDir:
		return unix.S_IFDIR
	case *synthDir:
		return impl.mode & unix.S_IFMT
	case *tmpfsFile:
		return impl.node.fileType()
	case *implFile:
		return impl.impl.FileType()
	default:
		return unix.S_IFCHR
	}
}

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.FileType() == unix.S_IFDIR }

// noImpl holds the default behaviour of a file kind.
//
// +stateify savable
type noImpl struct{}

func (noImpl) read(*File, <-chan struct{}, []byte, int64) (int, error)  { return 0, unix.EINVAL }
func (noImpl) write(*File, <-chan struct{}, []byte, int64) (int, error) { return 0, unix.EINVAL }
func (noImpl) seek(*File, int64, int) (int64, error)                    { return 0, unix.ESPIPE }
func (noImpl) getdents64(*File, []byte) (int, error)                    { return 0, unix.ENOTDIR }
func (noImpl) ioctl(*File, uint32, []byte) (int, error)                 { return 0, unix.ENOTTY }
func (noImpl) readiness(_ *File, mask uint32) uint32 {
	return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm)
}
func (noImpl) watch(*File, uint32) (<-chan struct{}, func()) { return nil, func() {} }
func (noImpl) guestPath() string                             { return "" }
func (noImpl) release()                                      {}

// closedChan is returned by watch for files that are always ready.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
