package vfs

import "golang.org/x/sys/unix"

// Impl is a kind of file implemented by another package of the sentry
// (the sockets of package socket), so that it gets a File like every other
// kind: a place in FDTables, dup, close-on-exec, fork, poll, select and
// epoll through Readiness and Watch, and a saved reference.
//
// Methods are called without File.mu held. Blocking methods take the cancel
// channel of the calling task and return ErrInterrupted when it is closed
// before anything was transferred, as pipes do (see "Blocking and
// interruption" in the package doc); they honour f's O_NONBLOCK
// (f.Nonblocking) with EAGAIN. Failures are unix.Errno values.
//
// The Impl is saved through File: its concrete type must be savable.
type Impl interface {
	// Read implements read(2) on the file.
	Read(f *File, cancel <-chan struct{}, dst []byte) (int, error)
	// Write implements write(2) on the file.
	Write(f *File, cancel <-chan struct{}, src []byte) (int, error)
	// Stat describes the file for fstat(2).
	Stat(f *File) (Stat, error)
	// Ioctl serves the requests IoctlArgSize knows; ENOTTY for others.
	Ioctl(f *File, cmd uint32, arg []byte) (int, error)
	// Readiness and Watch are File.Readiness and File.Watch.
	Readiness(f *File, mask uint32) uint32
	Watch(f *File, mask uint32) (<-chan struct{}, func())
	// LinkName is what readlink of /proc/self/fd/N shows.
	LinkName() string
	// FileType is the S_IF* type.
	FileType() uint32
	// Release is called once, when the File's last reference goes.
	Release()
}

// ImplSeeker is an Impl whose file has a position, which lseek(2) moves
// and pread(2) reads at; the others fail both with ESPIPE.
type ImplSeeker interface {
	Impl
	// Seek implements lseek(2); whence is SEEK_SET to SEEK_HOLE.
	Seek(f *File, off int64, whence int) (int64, error)
	// ReadAt implements pread(2) (off >= 0).
	ReadAt(f *File, dst []byte, off int64) (int, error)
}

// ImplSetAttr is an Impl whose attributes fchmod, fchown and futimens
// change; the others accept them without a change.
type ImplSetAttr interface {
	Impl
	// SetAttr changes the attributes as a says, checking a.Creds.
	SetAttr(f *File, a *SetAttr) error
}

// implFile adapts an Impl to the package's file kinds.
//
// +stateify savable
type implFile struct {
	noImpl
	// impl is the file's implementation; immutable.
	impl Impl
}

// NewImplFile returns a new File with one reference, implemented by impl.
// flags are the access mode and status flags (O_RDWR|O_NONBLOCK...).
func NewImplFile(flags uint32, impl Impl) *File {
	return newFile(flags, &implFile{impl: impl})
}

// Impl returns the implementation of a File made by NewImplFile, or nil.
func (f *File) Impl() Impl {
	if i, ok := f.impl.(*implFile); ok {
		return i.impl
	}
	return nil
}

// Nonblocking reports whether f has O_NONBLOCK.
func (f *File) Nonblocking() bool { return f.nonblocking() }

func (i *implFile) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		if s, ok := i.impl.(ImplSeeker); ok {
			return s.ReadAt(f, dst, off)
		}
		return 0, unix.ESPIPE
	}
	return i.impl.Read(f, cancel, dst)
}

func (i *implFile) seek(f *File, off int64, whence int) (int64, error) {
	if s, ok := i.impl.(ImplSeeker); ok {
		return s.Seek(f, off, whence)
	}
	return 0, unix.ESPIPE
}

func (i *implFile) write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return i.impl.Write(f, cancel, src)
}

func (i *implFile) stat(f *File) (Stat, error) { return i.impl.Stat(f) }

func (i *implFile) ioctl(f *File, cmd uint32, arg []byte) (int, error) {
	return i.impl.Ioctl(f, cmd, arg)
}

func (i *implFile) readiness(f *File, mask uint32) uint32 { return i.impl.Readiness(f, mask) }

func (i *implFile) watch(f *File, mask uint32) (<-chan struct{}, func()) {
	return i.impl.Watch(f, mask)
}

func (i *implFile) release() { i.impl.Release() }
