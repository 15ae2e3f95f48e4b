package vfs

import (
	"golang.org/x/sys/unix"
)

// Named pipes and socket files in a tmpfs (mknod(2), bind(2) of a Unix
// socket to a path).
//
// A FIFO node holds a pipe (the sentry's, saved with its buffered bytes)
// that every open of the node shares. As on Linux, an open for reading
// waits for a writer and an open for writing waits for a reader unless
// O_NONBLOCK is set (then a write-only open without a reader is ENXIO); an
// open for both never waits. The wait is the kernel's (File.WaitFifo), so
// that a signal or a save can end it.
//
// A socket node made by bind holds the bound socket, found again by
// FS.LookupSocket for connect and sendto; one made by mknod holds none
// (connect is refused). The socket stays the node's after it closes, as a
// socket file stays on Linux.

// BoundSocket is a socket bound to a path (a *socket.Socket); savable.
type BoundSocket interface{}

// fifoFile is an open description of a named pipe: a read end, a write
// end or both (O_RDWR) of the node's pipe.
//
// +stateify savable
type fifoFile struct {
	noImpl
	// r and w are the ends this description holds (nil if not open for
	// reading or writing); immutable.
	r *pipeReader
	w *pipeWriter
	// node is the FIFO; immutable.
	node *tmpNode
	// path is the guest path it was opened by; immutable.
	path string
	// start are the pipe's open counts (pipe.opens) when this
	// description opened, so that WaitFifo notices a peer that came and
	// went; immutable.
	start [2]uint64
}

// openFifoLocked opens FIFO node n with open(2) flags: ENXIO for a
// non-blocking write-only open without a reader.
//
// Preconditions: n.fs.mu is held.
func (t *tmpfs) openFifoLocked(n *tmpNode, p string, flags uint32) (*File, error) {
	if n.fifo == nil {
		n.fifo = &pipe{ino: n.ino, capacity: PipeSize, changed: make(chan struct{})}
	}
	pp := n.fifo
	pp.mu.Lock()
	defer pp.mu.Unlock()
	acc := flags & unix.O_ACCMODE
	if acc == unix.O_WRONLY && flags&unix.O_NONBLOCK != 0 && pp.readers == 0 {
		return nil, unix.ENXIO
	}
	f := &fifoFile{node: n, path: p, start: pp.opens}
	if acc != unix.O_WRONLY {
		f.r = &pipeReader{pipe: pp}
		pp.readers++
		pp.opens[0]++
	}
	if acc != unix.O_RDONLY {
		f.w = &pipeWriter{pipe: pp}
		pp.writers++
		pp.opens[1]++
	}
	pp.notifyLocked()
	n.opens++
	return newFile(flags, f), nil
}

// WaitFifo waits, for a blocking open of a named pipe for reading only or
// writing only, until the other end has been opened (ErrInterrupted if
// cancel fires first). Other files return at once.
func (f *File) WaitFifo(cancel <-chan struct{}) error {
	ff, ok := f.impl.(*fifoFile)
	if !ok || f.nonblocking() || (ff.r != nil && ff.w != nil) {
		return nil
	}
	p := ff.node.fifo
	for {
		p.mu.Lock()
		if ff.r != nil && (p.writers > 0 || p.opens[1] != ff.start[1]) ||
			ff.w != nil && (p.readers > 0 || p.opens[0] != ff.start[0]) {
			p.mu.Unlock()
			return nil
		}
		ch := p.waitChanLocked()
		p.mu.Unlock()
		if err := wait(cancel, ch); err != nil {
			return err
		}
	}
}

func (f *fifoFile) read(file *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if f.r == nil {
		return 0, unix.EBADF
	}
	return f.r.read(file, cancel, dst, off)
}

func (f *fifoFile) write(file *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if f.w == nil {
		return 0, unix.EBADF
	}
	return f.w.write(file, cancel, src, off)
}

func (f *fifoFile) seek(*File, int64, int) (int64, error) { return 0, unix.ESPIPE }

func (f *fifoFile) stat(*File) (Stat, error) {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	return f.node.statLocked(), nil
}

func (f *fifoFile) ioctl(file *File, cmd uint32, arg []byte) (int, error) {
	if f.r == nil {
		return (&pipeReader{pipe: f.node.fifo}).ioctl(file, cmd, arg)
	}
	return f.r.ioctl(file, cmd, arg)
}

func (f *fifoFile) readiness(file *File, mask uint32) uint32 {
	var ev uint32
	if f.r != nil {
		ev |= f.r.readiness(file, mask)
	}
	if f.w != nil {
		ev |= f.w.readiness(file, mask)
	}
	return ev
}

func (f *fifoFile) watch(*File, uint32) (<-chan struct{}, func()) {
	p := f.node.fifo
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitChanLocked(), func() {}
}

func (f *fifoFile) guestPath() string { return f.path }

func (f *fifoFile) release() {
	if f.r != nil {
		f.r.release()
	}
	if f.w != nil {
		f.w.release()
	}
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	f.node.opens--
}

// bindSocket makes the socket file rest for s, owned by o: EADDRINUSE if
// rest exists.
func (t *tmpfs) bindSocket(m *Mount, rest string, mode uint32, o Owner, s BoundSocket) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.createLocked(o.Creds, m, rest)
	if err == unix.EEXIST {
		return unix.EADDRINUSE
	}
	if err != nil {
		return err
	}
	n := t.newOwnedLocked(w.dir, unix.S_IFSOCK|mode&0o7777, o)
	n.sock = s
	t.linkLocked(w.dir, w.name, n)
	return nil
}

// lookupSocket returns the socket bound at rest: EACCES if c may not
// write the file (checked first, as unix_find_bsd does), ECONNREFUSED for
// a file that holds none.
func (t *tmpfs) lookupSocket(c *Creds, m *Mount, rest string) (BoundSocket, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.walkAsLocked(c, m, rest, true, false, false)
	if err != nil {
		return nil, err
	}
	if !c.permits(w.node, mayWrite) {
		return nil, unix.EACCES
	}
	if w.node.fileType() != unix.S_IFSOCK || w.node.sock == nil {
		return nil, unix.ECONNREFUSED
	}
	return w.node.sock, nil
}

// BindSocket makes the socket file at p (relative to dir) for s, as
// bind(2) of a Unix socket to a path: in a tmpfs, or the overlay root's
// upper layer, the node holds s; on other filesystems it is mknod's answer
// (EROFS on the read-only root, EPERM in a volume).
// A file that exists is EADDRINUSE.
func (fs *FS) BindSocket(o Owner, dir *File, p string, mode uint32, s BoundSocket) error {
	err := fs.do(dir, p, func(m *Mount, p string) error { return m.fs.bindSocket(m, p, mode, o, s) })
	if err == unix.EEXIST {
		return unix.EADDRINUSE
	}
	return err
}

// LookupSocket returns the socket bound at p (relative to dir) for
// connect(2) and sendto(2) by a caller with credentials c (nil: no
// checks): ENOENT if nothing is there, EACCES without search permission on
// the way or write permission on the file, ECONNREFUSED if no socket of
// the sandbox is bound there (a host socket is never reached).
func (fs *FS) LookupSocket(c *Creds, dir *File, p string) (BoundSocket, error) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return nil, err
	}
	return resolve(fs, full, func(m *Mount, p string) (BoundSocket, error) { return m.fs.lookupSocket(c, m, p) })
}

// noSocket is lookupSocket of a filesystem that keeps no sockets: the
// lookup's error (search permission checked for c), or ECONNREFUSED (a
// host socket is never reached).
func noSocket(c *Creds, fs Filesystem, m *Mount, p string) (BoundSocket, error) {
	if _, err := fs.stat(c, m, p, true); err != nil {
		return nil, err
	}
	return nil, unix.ECONNREFUSED
}
