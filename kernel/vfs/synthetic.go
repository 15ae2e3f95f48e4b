package vfs

import (
	"hash/fnv"
	"sync"

	"golang.org/x/sys/unix"
)

// syntheticFile is a read-only regular file whose contents the kernel
// generated when it was opened, such as /proc/self/maps. (Linux generates
// such files on the first read; a snapshot at open is the same for a
// program that opens and reads them at once.)
//
// +stateify savable
type syntheticFile struct {
	noImpl
	// path is the guest path it was opened by; immutable.
	path string
	// data is the contents; immutable.
	data []byte
	// w, if not nil, takes what is written to the file (/proc/PID/comm);
	// immutable.
	w SyntheticWriter

	// mu protects off. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// off is the file offset.
	off int64
}

// NewSynthetic returns a File opened read-only on contents data that the
// kernel generated for path (for example /proc/self/maps). It reads,
// seeks and stats like a procfs file: a regular file of size 0, mode 0444,
// that (the sandbox being root) opens for writing too, where writes fail
// with EINVAL.
func NewSynthetic(path string, data []byte, flags uint32) (*File, error) {
	if flags&unix.O_DIRECTORY != 0 {
		return nil, unix.ENOTDIR
	}
	if flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return nil, unix.EEXIST
	}
	return newFile(flags|oLargefile, &syntheticFile{path: path, data: data}), nil
}

// SyntheticWriter takes the bytes a write(2) gives a synthetic file that
// accepts writes, such as /proc/PID/comm, and returns how many it took or
// an errno. Implementations are savable.
type SyntheticWriter interface {
	WriteSynthetic(p []byte) (int, error)
}

// NewSyntheticWritable is NewSynthetic for a file whose writes go to w.
func NewSyntheticWritable(path string, data []byte, flags uint32, w SyntheticWriter) (*File, error) {
	f, err := NewSynthetic(path, data, flags)
	if err == nil {
		f.impl.(*syntheticFile).w = w
	}
	return f, err
}

func (s *syntheticFile) read(_ *File, _ <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return s.readAt(dst, off), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.readAt(dst, s.off)
	s.off += int64(n)
	return n, nil
}

func (s *syntheticFile) readAt(dst []byte, off int64) int {
	if off >= int64(len(s.data)) {
		return 0
	}
	return copy(dst, s.data[off:])
}

func (s *syntheticFile) write(_ *File, _ <-chan struct{}, p []byte, _ int64) (int, error) {
	if s.w == nil {
		return 0, unix.EINVAL
	}
	return s.w.WriteSynthetic(p)
}

// seek allows any non-negative offset; SEEK_END is relative to size 0, as
// procfs reports it.
func (s *syntheticFile) seek(_ *File, off int64, whence int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := seekOffset(s.off, 0, off, whence)
	if err != nil {
		return 0, err
	}
	s.off = n
	return n, nil
}

// seekOffset is lseek's arithmetic for a file at offset cur whose size is
// size: off bytes from the start (SEEK_SET), from cur (SEEK_CUR) or from
// the end (SEEK_END). Any other whence, or an offset below 0, is EINVAL.
func seekOffset(cur, size, off int64, whence int) (int64, error) {
	var n int64
	switch whence {
	case unix.SEEK_SET:
		n = off
	case unix.SEEK_CUR:
		n = cur + off
	case unix.SEEK_END:
		n = size + off
	default:
		return 0, unix.EINVAL
	}
	if n < 0 {
		return 0, unix.EINVAL
	}
	return n, nil
}

// seekNoHoles is seekOffset for a file that has no holes: SEEK_DATA finds
// data at off and SEEK_HOLE the hole at the end, for an off inside the
// file (ENXIO past it).
func seekNoHoles(cur, size, off int64, whence int) (int64, error) {
	switch whence {
	case unix.SEEK_DATA:
		if off < 0 || off >= size {
			return 0, unix.ENXIO
		}
		return off, nil
	case unix.SEEK_HOLE:
		if off < 0 || off >= size {
			return 0, unix.ENXIO
		}
		return size, nil
	}
	return seekOffset(cur, size, off, whence)
}

func (s *syntheticFile) stat(*File) (Stat, error) {
	mode := uint32(unix.S_IFREG | 0o444)
	if s.w != nil {
		mode |= 0o200
	}
	h := fnv.New64a()
	h.Write([]byte(s.path))
	return Stat{
		Mask:    unix.STATX_BASIC_STATS,
		Blksize: 1024,
		Nlink:   1,
		Mode:    mode,
		Ino:     h.Sum64() >> 1,
		// The device of the sentry directory the file is in (/proc's).
		DevMinor: sentryMounts[sentryMountOf(s.path)].minor,
	}, nil
}

func (s *syntheticFile) guestPath() string { return s.path }
