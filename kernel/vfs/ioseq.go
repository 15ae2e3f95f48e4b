package vfs

import "golang.org/x/sys/unix"

// IOSeq is the memory one read fills or one write drains, as one run of
// bytes: the application's memory (the kernel's, possibly scattered over
// several iovecs) or a Go slice (Bytes). A file whose Impl is a SeqImpl
// copies straight between its own buffers and an IOSeq, so the bytes of a
// read or write are not staged in a buffer of the kernel's first.
type IOSeq interface {
	// Len is the number of bytes in the sequence.
	Len() int
	// CopyIn copies the sequence's bytes [off, off+len(dst)) into dst.
	CopyIn(off int, dst []byte) error
	// CopyOut copies src into the sequence at off.
	CopyOut(off int, src []byte) error
}

// Bytes is a Go slice as an IOSeq.
type Bytes []byte

// Len implements IOSeq.
func (b Bytes) Len() int { return len(b) }

// CopyIn implements IOSeq.
func (b Bytes) CopyIn(off int, dst []byte) error {
	copy(dst, b[off:])
	return nil
}

// CopyOut implements IOSeq.
func (b Bytes) CopyOut(off int, src []byte) error {
	copy(b[off:], src)
	return nil
}

// SeqImpl is an Impl that reads into and writes from an IOSeq directly.
// ReadSeq and WriteSeq behave as Read and Write; an error of the IOSeq
// (a bad application address) ends the call with the bytes moved so far,
// or with that error if there are none. DirectIO reports whether they
// copy without staging for this file (it may depend on what the file
// is, as for a socket of the host's network).
type SeqImpl interface {
	Impl
	ReadSeq(f *File, cancel <-chan struct{}, dst IOSeq) (int, error)
	WriteSeq(f *File, cancel <-chan struct{}, src IOSeq) (int, error)
	DirectIO() bool
}

// SeqIO returns f's implementation if it moves bytes without staging
// (f was made by NewImplFile from a SeqImpl whose DirectIO is true), or
// nil. The caller then reads and writes with ReadSeq and WriteSeq, in
// one call for any length.
func (f *File) SeqIO() SeqImpl {
	if s, ok := f.Impl().(SeqImpl); ok && s.DirectIO() {
		return s
	}
	return nil
}

// ReadSeq is Read into an IOSeq. Preconditions: f.SeqIO() != nil.
func (f *File) ReadSeq(cancel <-chan struct{}, dst IOSeq) (int, error) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	n, err := f.SeqIO().ReadSeq(f, cancel, dst)
	if n > 0 {
		f.notify(InAccess)
	}
	return n, err
}

// WriteSeq is Write from an IOSeq. Preconditions: f.SeqIO() != nil.
func (f *File) WriteSeq(cancel <-chan struct{}, src IOSeq) (int, error) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	n, err := f.SeqIO().WriteSeq(f, cancel, src)
	if n > 0 {
		f.notify(InModify)
	}
	return n, err
}

// seqAtImpl is an Impl that reads into and writes from an IOSeq at an
// offset (the file offset if off < 0), copying straight between it and
// the file's own memory: a tmpfs file or memfd.
type seqAtImpl interface {
	readSeq(dst IOSeq, off int64) (int, error)
	writeSeq(f *File, src IOSeq, off int64) (int, error)
}

// SeqAt reports whether f reads and writes an IOSeq at any offset
// without staging (ReadSeqAt, WriteSeqAt): a tmpfs file or memfd.
func (f *File) SeqAt() bool {
	_, ok := f.impl.(seqAtImpl)
	return ok
}

// ReadSeqAt is PRead into an IOSeq, or Read if off < 0.
// Preconditions: f.SeqAt().
func (f *File) ReadSeqAt(dst IOSeq, off int64) (int, error) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	n, err := f.impl.(seqAtImpl).readSeq(dst, off)
	if n > 0 {
		f.notify(InAccess)
	}
	return n, err
}

// WriteSeqAt is PWrite from an IOSeq, or Write if off < 0.
// Preconditions: f.SeqAt().
func (f *File) WriteSeqAt(src IOSeq, off int64) (int, error) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	n, err := f.impl.(seqAtImpl).writeSeq(f, src, off)
	if n > 0 {
		f.notify(InModify)
	}
	return n, err
}
