package vfs

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	// PipeSize is the capacity of a new pipe's buffer (Linux's default).
	PipeSize = 64 << 10
	// pipeBuf is PIPE_BUF: writes up to this size are atomic.
	pipeBuf = 4096
	// pipeMaxSize is the largest capacity F_SETPIPE_SZ gives (Linux's
	// default /proc/sys/fs/pipe-max-size, for a caller without
	// CAP_SYS_RESOURCE).
	pipeMaxSize = 1 << 20
	// pipePage is the unit pipe capacities are made of.
	pipePage = 4096
)

// pipe is the buffer shared by the two ends of a pipe.
//
// +stateify savable
type pipe struct {
	// mu protects every field below. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// buf is a ring of capacity bytes allocated on first write; head is
	// the index of the first buffered byte and size the number of
	// buffered bytes. Saved as the buffered bytes only (saveBuf/loadBuf).
	buf  []byte `state:".([]byte)"`
	head int
	size int
	// capacity is the buffer size: PipeSize, or what F_SETPIPE_SZ set.
	// Images made before it was kept load 0, read as PipeSize.
	capacity int
	// ino is the inode number fstat reports; immutable.
	ino uint64
	// readers and writers count the open Files of each end.
	readers int
	writers int
	// opens count the opens of each end of a named pipe (readers,
	// writers) ever made, so that an open waiting for the other end
	// notices one that came and went (File.WaitFifo).
	opens [2]uint64
	// changed is closed (and replaced) whenever data, space or an end's
	// state changes; waiters select on it. Rebuilt after restore: no one
	// waits at save time.
	changed chan struct{} `state:"nosave"`
	// watched is set when a waiter holds changed, so that changes nobody
	// waits for do not replace it. Not saved: nobody waits at save time.
	watched bool `state:"nosave"`
}

// NewPipe returns the read and write ends of a new pipe (pipe2(2)). flags
// may hold O_NONBLOCK (set on both ends); O_CLOEXEC is the FDTable's.
func NewPipe(flags uint32) (r, w *File) {
	p := &pipe{ino: pipeIno.Add(1), readers: 1, writers: 1, capacity: PipeSize, changed: make(chan struct{})}
	nb := flags & unix.O_NONBLOCK
	r = newFile(unix.O_RDONLY|nb, &pipeReader{pipe: p})
	w = newFile(unix.O_WRONLY|nb, &pipeWriter{pipe: p})
	return r, w
}

// notifyLocked wakes every waiter. Preconditions: p.mu is held.
func (p *pipe) notifyLocked() {
	if !p.watched {
		return // nobody holds the channel: keep it (no allocation)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.watched = false
}

// waitChanLocked returns the channel the next change closes. Preconditions:
// p.mu is held.
func (p *pipe) waitChanLocked() <-chan struct{} {
	p.watched = true
	return p.changed
}

// unlockAndWait releases p.mu and waits for the pipe to change: EAGAIN
// instead if nonblock or f is non-blocking, or the error that ended the
// wait.
//
// Preconditions: p.mu is held; it is released on return.
func (p *pipe) unlockAndWait(f *File, cancel <-chan struct{}, nonblock bool) error {
	ch := p.waitChanLocked()
	p.mu.Unlock()
	if nonblock || f.nonblocking() {
		return unix.EAGAIN
	}
	return wait(cancel, ch)
}

// saveBuf returns the buffered bytes in order. Invoked by stateify.
func (p *pipe) saveBuf() []byte {
	out := make([]byte, p.size)
	if p.size > 0 {
		n := copy(out, p.buf[p.head:])
		copy(out[n:], p.buf[:p.size-n])
	}
	return out
}

// loadBuf keeps the buffered bytes until afterLoad knows the capacity.
// Invoked by stateify.
func (p *pipe) loadBuf(_ context.Context, data []byte) {
	p.buf = data
}

// afterLoad rebuilds the ring from the saved bytes and the wait channel,
// and keeps new pipes from reusing the restored pipe's inode number. A
// capacity that F_SETPIPE_SZ could not have set is the default, and bytes
// past the capacity are dropped. Invoked by stateify.
func (p *pipe) afterLoad(context.Context) {
	p.changed = make(chan struct{})
	for {
		cur := pipeIno.Load()
		if cur >= p.ino || pipeIno.CompareAndSwap(cur, p.ino) {
			break
		}
	}
	if c := p.capacity; c < pipePage || c > pipeMaxSize || c&(c-1) != 0 {
		p.capacity = PipeSize
	}
	data := p.buf
	p.head, p.size, p.buf = 0, min(len(data), p.capacity), nil
	if p.size > 0 {
		p.buf = make([]byte, p.capacity)
		copy(p.buf, data[:p.size])
	}
}

// setCapacity implements F_SETPIPE_SZ: the capacity becomes size rounded
// up to a power of two pages. EINVAL past 2 GiB, EPERM past pipeMaxSize,
// EBUSY if the bytes already buffered would not fit.
func (p *pipe) setCapacity(size uint32) (int, error) {
	if size > 1<<31 {
		return 0, unix.EINVAL
	}
	c := pipePage
	for c < int(size) {
		c <<= 1
	}
	if c > pipeMaxSize {
		return 0, unix.EPERM
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.size > c {
		return 0, unix.EBUSY
	}
	if p.buf != nil {
		nb := make([]byte, c)
		n := copy(nb, p.buf[p.head:min(p.head+p.size, len(p.buf))])
		copy(nb[n:p.size], p.buf)
		p.buf, p.head = nb, 0
	}
	p.capacity = c
	p.notifyLocked()
	return c, nil
}

// PipeCapacity implements F_GETPIPE_SZ: EBADF if f is not a pipe.
func (f *File) PipeCapacity() (int, error) {
	p := f.pipe()
	if p == nil {
		return 0, unix.EBADF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capacity, nil
}

// SetPipeCapacity implements F_SETPIPE_SZ on either end of a pipe and
// returns the new capacity: EBADF if f is not a pipe.
func (f *File) SetPipeCapacity(size uint32) (int, error) {
	p := f.pipe()
	if p == nil {
		return 0, unix.EBADF
	}
	return p.setCapacity(size)
}

// pipe returns the pipe behind f, or nil.
func (f *File) pipe() *pipe {
	switch impl := f.impl.(type) {
	case *pipeReader:
		return impl.pipe
	case *pipeWriter:
		return impl.pipe
	case *fifoFile:
		return impl.node.fifo
	}
	return nil
}

// wait blocks until ch is closed or cancel fires.
func wait(cancel <-chan struct{}, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-cancel:
		return ErrInterrupted
	}
}

// pipeReader is a pipe's read end.
//
// +stateify savable
type pipeReader struct {
	noImpl
	// pipe is shared with the write end; immutable.
	pipe *pipe
}

func (r *pipeReader) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return r.pipe.readWait(f, cancel, dst, false, true)
}

// readWait copies up to len(dst) buffered bytes into dst, dropping them
// from the pipe if take. It waits for data while a writer is left (EAGAIN
// instead if nonblock or f is non-blocking) and returns 0 at end of file.
// read takes the bytes; splice and tee peek at them.
func (p *pipe) readWait(f *File, cancel <-chan struct{}, dst []byte, nonblock, take bool) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		p.mu.Lock()
		if p.size > 0 {
			n := min(len(dst), p.size)
			c := copy(dst[:n], p.buf[p.head:])
			copy(dst[c:n], p.buf)
			if take {
				p.dropLocked(n)
			}
			p.mu.Unlock()
			return n, nil
		}
		if p.writers == 0 {
			p.mu.Unlock()
			return 0, nil
		}
		if err := p.unlockAndWait(f, cancel, nonblock); err != nil {
			return 0, err
		}
	}
}

// dropLocked drops the first n buffered bytes (0 < n <= p.size) and wakes
// the waiters.
//
// Preconditions: p.mu is held.
func (p *pipe) dropLocked(n int) {
	p.head = (p.head + n) % p.capacity
	p.size -= n
	if p.size == 0 {
		p.head = 0
	}
	p.notifyLocked()
}

func (r *pipeReader) readiness(_ *File, mask uint32) uint32 {
	p := r.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	var ev uint32
	if p.size > 0 {
		ev |= unix.POLLIN | pollRdNorm
	}
	if p.writers == 0 {
		ev |= unix.POLLHUP
	}
	return ev & (mask | unix.POLLHUP)
}

func (r *pipeReader) watch(*File, uint32) (<-chan struct{}, func()) {
	r.pipe.mu.Lock()
	defer r.pipe.mu.Unlock()
	return r.pipe.waitChanLocked(), func() {}
}

func (r *pipeReader) stat(*File) (Stat, error) { return pipeStat(r.pipe), nil }

func (r *pipeReader) ioctl(_ *File, cmd uint32, arg []byte) (int, error) {
	if cmd != fionread {
		return 0, unix.ENOTTY
	}
	r.pipe.mu.Lock()
	defer r.pipe.mu.Unlock()
	putLE32(arg, uint32(r.pipe.size))
	return 0, nil
}

func (r *pipeReader) release() {
	p := r.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers--
	p.notifyLocked()
}

// pipeWriter is a pipe's write end.
//
// +stateify savable
type pipeWriter struct {
	noImpl
	// pipe is shared with the read end; immutable.
	pipe *pipe
}

// write implements Linux's pipe_write: writes of at most PIPE_BUF bytes are
// atomic; larger ones may be split. EPIPE when no reader is left (the
// kernel then sends SIGPIPE).
func (w *pipeWriter) write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	if len(src) == 0 {
		// Linux returns before looking at readers.
		return 0, nil
	}
	p := w.pipe
	total := 0
	for {
		p.mu.Lock()
		if p.readers == 0 {
			p.mu.Unlock()
			if total > 0 {
				return total, nil
			}
			return 0, unix.EPIPE
		}
		free := p.capacity - p.size
		rest := len(src) - total
		if rest == 0 {
			p.mu.Unlock()
			return total, nil
		}
		if free > 0 && (rest > pipeBuf || free >= rest) {
			if p.buf == nil {
				p.buf = make([]byte, p.capacity)
			}
			n := min(free, rest)
			tail := (p.head + p.size) % p.capacity
			c := copy(p.buf[tail:], src[total:total+n])
			copy(p.buf, src[total+c:total+n])
			p.size += n
			total += n
			p.notifyLocked()
			p.mu.Unlock()
			continue
		}
		if err := p.unlockAndWait(f, cancel, false); err != nil {
			return partial(total, err)
		}
	}
}

func (w *pipeWriter) readiness(_ *File, mask uint32) uint32 {
	p := w.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	var ev uint32
	if p.capacity-p.size >= pipeBuf {
		ev |= unix.POLLOUT | pollWrNorm
	}
	if p.readers == 0 {
		ev |= unix.POLLERR
	}
	return ev & (mask | unix.POLLERR)
}

func (w *pipeWriter) watch(*File, uint32) (<-chan struct{}, func()) {
	w.pipe.mu.Lock()
	defer w.pipe.mu.Unlock()
	return w.pipe.waitChanLocked(), func() {}
}

func (w *pipeWriter) stat(*File) (Stat, error) { return pipeStat(w.pipe), nil }

func (w *pipeWriter) release() {
	p := w.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writers--
	p.notifyLocked()
}

// pipeIno numbers pipes, as pipefs does.
var pipeIno atomic.Uint64

// pipeStat describes a pipe like Linux's pipefs: a FIFO with its own inode
// number and size 0 (FIONREAD tells how much is buffered).
func pipeStat(p *pipe) Stat {
	return Stat{
		Mask:     unix.STATX_BASIC_STATS,
		Blksize:  4096,
		Nlink:    1,
		Mode:     unix.S_IFIFO | 0o600,
		DevMinor: 12,
		Ino:      p.ino,
	}
}
