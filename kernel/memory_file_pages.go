package kernel

// The memory file as vfs.Pages: a tmpfs keeps its file data in pages of
// the memory file, so that it is saved, loaded and compressed with the
// application's memory and counts against the memory limit.

// AllocatePages allocates n bytes (whole pages) and returns their offset.
func (f *MemoryFile) AllocatePages(n uint64) (uint64, error) {
	r, err := f.Allocate(n)
	return r.Start, err
}

// FreePages frees the n bytes at off that AllocatePages returned.
func (f *MemoryFile) FreePages(off, n uint64) { f.Free(fileRange{Start: off, End: off + n}) }

// PageBytes returns the sentry's view of n allocated bytes at off. The
// caller may write them: while dirty tracking is on they count as written.
func (f *MemoryFile) PageBytes(off, n uint64) ([]byte, error) {
	b, err := f.Bytes(off, n)
	if err == nil {
		f.willWrite(fileRange{off, off + n})
	}
	return b, err
}
