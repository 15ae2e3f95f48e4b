package kernel

// The memory file as vfs.Pages: a tmpfs keeps its file data in pages of
// the memory file, so that it is saved, loaded and compressed with the
// application's memory and counts against the memory limit.

// AllocatePages allocates n bytes (whole pages) and returns their offset.
func (f *MemoryFile) AllocatePages(n uint64) (uint64, error) {
	r, err := f.Allocate(n)
	return r.Start, err
}

// FreePages drops the filesystem's hold on n bytes at off (part of what
// AllocatePages returned); they are freed unless a shared mapping still
// holds them (MemoryFile.Share).
func (f *MemoryFile) FreePages(off, n uint64) { f.ReleaseRange(fileRange{Start: off, End: off + n}) }

// PageBytes returns the sentry's view of n allocated bytes at off. The
// caller may write them: while dirty tracking is on they count as written.
func (f *MemoryFile) PageBytes(off, n uint64) ([]byte, error) {
	b, err := f.Bytes(off, n)
	if err == nil {
		f.willWrite(fileRange{off, off + n})
	}
	return b, err
}

// InUse implements vfs.MemoryInUse: the bytes of the memory file
// allocated, as /proc/meminfo counts them.
func (f *MemoryFile) InUse() uint64 { return f.allocatedBytes() }

// allocatedBytes returns how many bytes of the memory file are allocated
// (/proc/meminfo).
func (f *MemoryFile) allocatedBytes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.allocatedLocked()
}
