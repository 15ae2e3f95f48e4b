package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A migration target fills a memory file round after round while the
// source runs, and restores the kernel over it (RestoreOptions.Memory).

// Grow makes the file at least size bytes (page aligned, within the
// reservation) for pages that WriteAt then stores.
func (f *MemoryFile) Grow(size uint64) error {
	if size%pageSize != 0 || size > uint64(len(f.mapping)) {
		return fmt.Errorf("memory file size %#x not page aligned or beyond the %d-byte reservation: %w", size, len(f.mapping), ErrBadState)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if size <= f.size {
		return nil
	}
	if err := unix.Ftruncate(f.fd, int64(size)); err != nil {
		return fmt.Errorf("grow memory file to %d bytes: %w", size, err)
	}
	f.size = size
	return nil
}

// WriteAt stores b at offset off (page aligned, within Grow's size) with
// pwrite: pages the host does not have yet are filled without being
// mapped.
func (f *MemoryFile) WriteAt(b []byte, off uint64) error {
	f.mu.Lock()
	size := f.size
	f.mu.Unlock()
	if off%pageSize != 0 || off+uint64(len(b)) > size || off+uint64(len(b)) < off {
		return fmt.Errorf("memory range [%#x, +%#x) outside the %#x-byte file: %w", off, len(b), size, ErrBadState)
	}
	return f.writeAt(b, off)
}
