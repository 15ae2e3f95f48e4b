package kernel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mincore reports in vec (one byte per page of b) which pages of b's
// mapping are resident: for the memory file, which pages the host file
// has. len(vec) must be at least the number of pages in b.
func mincore(b, vec []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return e
	}
	return nil
}

// rangeOf returns the memory file range that b, a slice of the sentry's
// mapping (Bytes), views.
func (f *MemoryFile) rangeOf(b []byte) fileRange {
	if len(b) == 0 {
		return fileRange{}
	}
	off := uint64(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&f.mapping[0])))
	return fileRange{off, off + uint64(len(b))}
}
