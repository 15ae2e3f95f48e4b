package vfs

import "golang.org/x/sys/unix"

// What splice, tee and vmsplice need of a pipe beyond read and write: to
// look at its buffered bytes without taking them, to drop bytes once they
// have been delivered elsewhere, and to wait for room. Data is copied, never
// moved between buffers, so a pipe's saved state stays its buffered bytes.

// IsPipe reports whether f is either end of a pipe.
func (f *File) IsPipe() bool { return f.pipe() != nil }

// SamePipe reports whether f and o are ends of one pipe.
func (f *File) SamePipe(o *File) bool { return f.pipe() != nil && f.pipe() == o.pipe() }

// PipePeek copies up to len(dst) buffered bytes of the pipe f reads from
// without consuming them. Like read, it waits for data while a writer is
// left (EAGAIN instead if nonblock or f is non-blocking) and returns 0 at
// end of file. EBADF if f is not a pipe's read end.
func (f *File) PipePeek(cancel <-chan struct{}, dst []byte, nonblock bool) (int, error) {
	r, ok := f.impl.(*pipeReader)
	if !ok {
		return 0, unix.EBADF
	}
	return r.pipe.readWait(f, cancel, dst, nonblock, false)
}

// PipeDiscard drops the first n buffered bytes of the pipe f reads from
// (at most what is buffered), as a read of them would.
func (f *File) PipeDiscard(n int) {
	r, ok := f.impl.(*pipeReader)
	if !ok {
		return
	}
	p := r.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, p.size)
	if n <= 0 {
		return
	}
	p.dropLocked(n)
}

// PipeRoom waits until the pipe f writes to has free space and returns how
// much: EPIPE when no reader is left, EAGAIN instead of waiting if nonblock
// or f is non-blocking. EBADF if f is not a pipe's write end.
func (f *File) PipeRoom(cancel <-chan struct{}, nonblock bool) (int, error) {
	w, ok := f.impl.(*pipeWriter)
	if !ok {
		return 0, unix.EBADF
	}
	p := w.pipe
	for {
		p.mu.Lock()
		if p.readers == 0 {
			p.mu.Unlock()
			return 0, unix.EPIPE
		}
		if free := p.capacity - p.size; free > 0 {
			p.mu.Unlock()
			return free, nil
		}
		if err := p.unlockAndWait(f, cancel, nonblock); err != nil {
			return 0, err
		}
	}
}

// IsPipeReader and IsPipeWriter report which end of a pipe f is.
func (f *File) IsPipeReader() bool { _, ok := f.impl.(*pipeReader); return ok }

// IsPipeWriter reports whether f is a pipe's write end.
func (f *File) IsPipeWriter() bool { _, ok := f.impl.(*pipeWriter); return ok }
