package kernel

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

const (
	pageSize  = 4096
	pageShift = 12
	pageMask  = pageSize - 1

	// memoryFileReserve is how much virtual address space the sentry
	// reserves for its own view of the memory file. Only the file's size
	// is backed; the rest costs nothing (MAP_NORESERVE).
	memoryFileReserve = 64 << 30

	// memoryFileGrowth is the minimum step by which the file grows, so that
	// a run of small allocations does not call ftruncate every time.
	memoryFileGrowth = 16 << 20
)

// MaxMemorySize is the most memory a sandbox can have: the size of the
// memory file's reservation. A restore refuses an image holding more, and
// snap inspect checks images against it too.
const MaxMemorySize = memoryFileReserve

func pageRoundDown(x uint64) uint64 { return x &^ pageMask }

// pageRoundUp rounds x up to a page boundary; ok is false on overflow.
func pageRoundUp(x uint64) (uint64, bool) {
	r := (x + pageMask) &^ pageMask
	return r, r >= x
}

// fileRange is a half-open range [Start, End) of memory file offsets.
//
// +stateify savable
type fileRange struct {
	Start, End uint64
}

// Length returns the number of bytes in the range.
func (r fileRange) Length() uint64 { return r.End - r.Start }

// MemoryFile holds all application memory: one memfd with a page allocator.
// Address spaces map ranges of it (MAP_SHARED), and the sentry reads and
// writes application memory through its own mapping of the whole file.
//
// Allocation is first-fit over a sorted list of free ranges below the
// file's size; when nothing fits, the file grows with ftruncate. Freed
// ranges are decommitted (FALLOC_FL_PUNCH_HOLE) so they read as zero and
// cost no memory, but for a few pages kept for copies to overwrite
// (memory_file_reuse.go), which Allocate decommits before it hands them
// out: a fresh allocation always reads as zero.
//
// The sentry mapping is a fixed reservation of memoryFileReserve bytes of
// virtual address space made once; growing the file needs no remapping, so
// slices into the mapping stay valid for the MemoryFile's lifetime.
//
// +stateify savable
type MemoryFile struct {
	// fd is the memfd. It is a host descriptor: a restore creates a new
	// memfd and loads the saved ranges into it.
	fd int `state:"nosave"`

	// mapping is the sentry's view of the whole reservation. Host address,
	// rebuilt with the new memfd on restore.
	mapping []byte `state:"nosave"`

	// releaseMu is held for writing by Release, and for reading by a
	// goroutine that uses mapping without Release waiting for it (the
	// prefault after a restore), so that Release never unmaps under it.
	// Host synchronisation only, hence not saved.
	releaseMu sync.RWMutex `state:"nosave"`

	// mu protects size and free. Allocation happens from syscalls of any
	// task.
	mu sync.Mutex `state:"nosave"`

	// size is the file's length in bytes, a multiple of pageSize.
	// Protected by mu.
	size uint64

	// free is the sorted list of disjoint, non-adjacent free ranges below
	// size. Protected by mu.
	free []fileRange

	// kept is the sorted list of disjoint, non-adjacent runs of free
	// pages that were not decommitted when they were freed, for copies to
	// overwrite (memory_file_reuse.go); keptBytes is their total (and
	// what Free is about to add), at most keepMax (keepFreedMax; 0 keeps
	// none). Host state: a restored file's free ranges are holes, hence
	// not saved. Protected by mu.
	kept      []fileRange `state:"nosave"`
	keptBytes uint64      `state:"nosave"`
	keepMax   uint64      `state:"nosave"`

	// sharedRuns count the extra owners of pages, in runs of pages with
	// the same count (memory_file_shared.go): a shared mapping inherited
	// by fork, or private memory shared copy-on-write, is one range owned
	// by several vmas. A page is freed when its last owner lets it go.
	// Protected by mu.
	sharedRuns []sharedRun
	// shared is how images from before sharedRuns hold the same counts,
	// per page offset; afterLoad moves them into sharedRuns. Always nil
	// otherwise.
	shared map[uint64]uint32

	// freeing counts the memory of exited processes being given back
	// after their parent learnt of the exit (MM.release); Allocated, and
	// an allocation that would pass the limit, wait for it to be 0.
	// freed is signalled when it drops. Not saved: a save takes Allocated,
	// after every such free. Both protected by mu.
	freeing int       `state:"nosave"`
	freed   sync.Cond `state:"nosave"`

	// limit is the most bytes that may be allocated at once (Limits.Memory;
	// memoryFileReserve: none below the reservation). The kernel sets it
	// on New and Restore (it saves Limits itself). Protected by mu.
	limit uint64 `state:"nosave"`
	// onShrink tells the sandbox's address spaces that a file they may
	// map shared was cut short (FileShrunk). The kernel sets it on New and
	// Restore, before the sandbox runs; immutable after.
	onShrink func(vfs.SharedFile, int64) `state:"nosave"`
	// files is the cache of host file pages (mm_filecache.go). It lives
	// here because its pages are this file's and every MM that maps them
	// has the MemoryFile. It has a lock of its own.
	files fileCache

	// lazy is the lazy restore loading this file, nil once everything is
	// loaded (memory_lazy.go). A host-side load, hence not saved.
	lazy atomic.Pointer[lazyLoad] `state:"nosave"`

	// copies counts the copies inside the file, for diagnostics. Host
	// counts, hence not saved.
	copies copyCounts `state:"nosave"`

	// dirty records the pages written while dirty tracking is on
	// (memory_file_dirty.go). Host state: tracking restarts off after a
	// restore. It has a lock of its own.
	dirty dirtyTracker `state:"nosave"`
}

// setLimit sets the most bytes that may be allocated at once.
func (f *MemoryFile) setLimit(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = n
	if n >= memoryFileReserve {
		n = 0
	}
	f.files.limit.Store(n)
}

// allocatedLocked returns how many bytes are allocated for mappings (and
// the kernel): the file cache's ranges that hold only retained pages
// (mm_filecache.go) are not counted.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) allocatedLocked() uint64 {
	n := f.size
	for _, fr := range f.free {
		n -= fr.Length()
	}
	return n - min(n, f.files.idleBytes.Load())
}

// NewMemoryFile creates an empty memory file named name (the name shows in
// /proc/PID/maps and /proc/PID/fd of the sentry).
func NewMemoryFile(name string) (*MemoryFile, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create %q: %w", name, err)
	}
	f, err := newMemoryFileFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

// newMemoryFileFromFD returns a memory file over fd, a new empty memfd,
// which it owns from then on unless it fails.
func newMemoryFileFromFD(fd int) (*MemoryFile, error) {
	m, err := unix.Mmap(fd, 0, memoryFileReserve, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("map memory file (%d GiB reservation): %w", memoryFileReserve>>30, err)
	}
	return &MemoryFile{fd: fd, mapping: m, keepMax: keepFreedMax}, nil
}

// FD returns the memfd. It stays owned by the MemoryFile.
func (f *MemoryFile) FD() int { return f.fd }

// Size returns the file's current length.
func (f *MemoryFile) Size() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Release unmaps and closes the file. Nothing may use it afterwards.
func (f *MemoryFile) Release() {
	f.stopLazy()
	f.files.forgetRetained()
	f.releaseMu.Lock()
	defer f.releaseMu.Unlock()
	if f.mapping != nil {
		unix.Munmap(f.mapping)
		f.mapping = nil
	}
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

// Allocate returns a page-aligned range of length bytes (rounded up to
// pages) that reads as zero. It fails with ErrNoMemory when the reservation
// is exhausted or the allocation would pass the limit (setLimit).
//
// It takes the first free range that fits among those freed with their
// pages decommitted, then the first that fits at all: pages kept when they
// were freed (memory_file_reuse.go) are decommitted before it returns.
func (f *MemoryFile) Allocate(length uint64) (fileRange, error) {
	r, kept, err := f.allocate(length)
	for _, k := range kept {
		f.Decommit(k)
	}
	return r, err
}

// allocate is Allocate but for decommitting the pages kept in the range
// it returns, which it returns too.
func (f *MemoryFile) allocate(length uint64) (fileRange, []fileRange, error) {
	length, ok := pageRoundUp(length)
	if !ok || length == 0 {
		return fileRange{}, nil, fmt.Errorf("allocate %d bytes: %w", length, ErrNoMemory)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.waitLimitLocked(length); err != nil {
		return fileRange{}, nil, err
	}
	if r, ok := f.firstClearFitLocked(length); ok {
		f.carveLocked(r)
		return r, nil, nil
	}
	for _, fr := range f.free {
		if fr.Length() < length {
			continue
		}
		r := fileRange{fr.Start, fr.Start + length}
		f.carveLocked(r)
		return r, f.unkeepLocked(r), nil
	}
	// Nothing fits: grow. Use a trailing free range if there is one.
	start := f.size
	if n := len(f.free); n > 0 && f.free[n-1].End == f.size {
		start = f.free[n-1].Start
	}
	need := start + length
	if need > memoryFileReserve || need < start {
		return fileRange{}, nil, fmt.Errorf("allocate %d bytes with %d in use: %w", length, f.size, ErrNoMemory)
	}
	newSize := need
	if grow := f.size + memoryFileGrowth; newSize < grow {
		newSize = min(grow, uint64(memoryFileReserve))
	}
	if err := unix.Ftruncate(f.fd, int64(newSize)); err != nil {
		return fileRange{}, nil, fmt.Errorf("grow memory file to %d bytes: %w", newSize, err)
	}
	if n := len(f.free); n > 0 && f.free[n-1].End == f.size {
		f.free = f.free[:n-1]
	}
	if newSize > need {
		f.free = append(f.free, fileRange{need, newSize})
	}
	f.size = newSize
	r := fileRange{start, need}
	return r, f.unkeepLocked(r), nil
}

// takeIdle counts n more bytes as allocated: the range of a cached file
// that held only retained pages (fileCache.idleBytes), mapped again. It
// fails with ErrNoMemory, counting nothing, if that would pass the limit,
// as Allocate of the range would.
//
// Preconditions: fileCache.mu is held; n is the length of an idle file.
func (f *MemoryFile) takeIdle(n uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.waitLimitLocked(n); err != nil {
		return fmt.Errorf("map a cached file again: %w", err)
	}
	f.files.idleBytes.Add(-n)
	return nil
}

// waitLimitLocked returns nil if length more bytes may be allocated, after
// waiting for the memory being freed if they may not be yet, and
// ErrNoMemory if they may not be.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) waitLimitLocked(length uint64) error {
	used, over := f.overLimitLocked(length)
	for over && f.freeing > 0 {
		f.waitFreedLocked()
		used, over = f.overLimitLocked(length)
	}
	if over {
		return fmt.Errorf("allocate %d bytes with %d of the %d-byte limit in use: %w", length, used, f.limit, ErrNoMemory)
	}
	return nil
}

// overLimitLocked reports whether length more bytes would pass the limit
// (setLimit), with the bytes allocated now.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) overLimitLocked(length uint64) (uint64, bool) {
	if f.limit == 0 || f.limit >= memoryFileReserve {
		return 0, false
	}
	used := f.allocatedLocked()
	return used, used+length > f.limit || used+length < used
}

// carveLocked takes r, which lies within one free range, out of the free
// list.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) carveLocked(r fileRange) {
	i := sort.Search(len(f.free), func(i int) bool { return f.free[i].End > r.Start })
	fr := f.free[i]
	switch {
	case fr == r:
		f.free = append(f.free[:i], f.free[i+1:]...)
	case fr.Start == r.Start:
		f.free[i].Start = r.End
	case fr.End == r.End:
		f.free[i].End = r.Start
	default:
		f.free = slices.Insert(f.free, i+1, fileRange{r.End, fr.End})
		f.free[i].End = r.Start
	}
}

// Free returns r to the allocator and decommits its pages, but for up to
// keepFreedMax bytes of pages that hold data, kept for copies to
// overwrite (memory_file_reuse.go).
func (f *MemoryFile) Free(r fileRange) {
	if r.Length() == 0 {
		return
	}
	kept := f.reserveKept(r)
	pos := r.Start
	for _, k := range kept {
		f.Decommit(fileRange{pos, k.Start})
		pos = k.End
	}
	f.Decommit(fileRange{pos, r.End})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freeLocked(r)
	for _, k := range kept {
		f.keepLocked(k)
	}
}

// freeLocked adds r to the free list.
//
// Preconditions: f.mu is held; r is allocated.
func (f *MemoryFile) freeLocked(r fileRange) {
	i := sort.Search(len(f.free), func(i int) bool { return f.free[i].Start >= r.End })
	// Merge with the following range.
	if i < len(f.free) && f.free[i].Start == r.End {
		r.End = f.free[i].End
		f.free = append(f.free[:i], f.free[i+1:]...)
	}
	// Merge with the preceding range.
	if i > 0 && f.free[i-1].End == r.Start {
		f.free[i-1].End = r.End
		return
	}
	f.free = append(f.free, fileRange{})
	copy(f.free[i+1:], f.free[i:])
	f.free[i] = r
}

// Decommit makes r read as zero and releases its memory, keeping it
// allocated.
func (f *MemoryFile) Decommit(r fileRange) {
	if r.Length() == 0 {
		return
	}
	// A lazy restore must not write the pages later: they are loaded
	// first (over a base, chunks dropped whole need no copy). A failed
	// load kills the sandbox; the pages go anyway.
	_ = f.ensureDropped(r.Start, r.End)
	f.willWrite(r)
	// A failure leaves stale data readable; zero it by hand then.
	if err := unix.Fallocate(f.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(r.Start), int64(r.Length())); err != nil {
		clear(f.slice(r))
	}
}

// Allocated returns the allocated ranges in ascending order: the complement
// of the free list within the file. A save writes (the non-zero pages of)
// these ranges.
func (f *MemoryFile) Allocated() []fileRange {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.freeing > 0 {
		f.waitFreedLocked()
	}
	var out []fileRange
	var pos uint64
	for _, fr := range f.free {
		if fr.Start > pos {
			out = append(out, fileRange{pos, fr.Start})
		}
		pos = fr.End
	}
	if pos < f.size {
		out = append(out, fileRange{pos, f.size})
	}
	return out
}

// slice returns the sentry's view of r. r must be allocated.
func (f *MemoryFile) slice(r fileRange) []byte {
	return f.mapping[r.Start:r.End:r.End]
}

// Bytes returns the sentry's view of the allocated range [off, off+length).
// The slice aliases application memory: the application may change it
// concurrently.
func (f *MemoryFile) Bytes(off, length uint64) ([]byte, error) {
	f.mu.Lock()
	size := f.size
	f.mu.Unlock()
	end := off + length
	if end < off || end > size {
		return nil, fmt.Errorf("memory file range [%#x, %#x) beyond size %#x: %w", off, end, size, ErrBadAddress)
	}
	if err := f.ensureLoaded(off, end); err != nil {
		return nil, err
	}
	return f.slice(fileRange{off, end}), nil
}

// forEachData calls fn for each sub-range of r that may hold data (the
// file's non-hole extents, found with SEEK_DATA/SEEK_HOLE), in order.
// Holes read as zero and need no copying or saving.
func (f *MemoryFile) forEachData(r fileRange, fn func(fileRange) error) error {
	if err := f.ensureLoaded(r.Start, r.End); err != nil {
		return err
	}
	pos := r.Start
	for pos < r.End {
		data, err := unix.Seek(f.fd, int64(pos), unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only holes up to the end of the file
		}
		if err != nil {
			return fmt.Errorf("memory file SEEK_DATA at %#x: %w", pos, err)
		}
		if uint64(data) >= r.End {
			return nil
		}
		hole, err := unix.Seek(f.fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("memory file SEEK_HOLE at %#x: %w", data, err)
		}
		end := min(uint64(hole), r.End)
		if err := fn(fileRange{uint64(data), end}); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// copyScanMax is the longest range copyData copies hole by hole.
const copyScanMax = 1 << 20

// copyData copies the data of the allocated range src to dst (the same
// length, allocated, reading as zero, disjoint). Holes need no copy, but
// finding where one ends costs a scan of the file's pages up to the next
// hole, past the end of src when src ends in data (the pages around a
// private vma's are often dense: the file cache's, other vmas'), which for
// a short range costs more than copying its holes: a range of up to
// copyScanMax is copied whole from its first page of data on.
func (f *MemoryFile) copyData(dst uint64, src fileRange) error {
	if src.Length() > copyScanMax {
		return f.forEachData(src, func(d fileRange) error {
			return f.copyRange(dst+(d.Start-src.Start), d)
		})
	}
	if err := f.ensureLoaded(src.Start, src.End); err != nil {
		return err
	}
	data, err := unix.Seek(f.fd, int64(src.Start), unix.SEEK_DATA)
	if err == unix.ENXIO || (err == nil && uint64(data) >= src.End) {
		return nil // only holes
	}
	if err != nil {
		return fmt.Errorf("memory file SEEK_DATA at %#x: %w", src.Start, err)
	}
	from := pageRoundDown(uint64(data))
	return f.copyRange(dst+(from-src.Start), fileRange{from, src.End})
}

// copyRange copies the allocated range src to dst (same length, allocated,
// disjoint) inside the file with copy_file_range, so that the host copies
// the pages without faulting them into the sentry. A host that cannot
// (EXDEV, EINVAL, EOPNOTSUPP, ENOSYS: an old kernel) gets the rest copied
// through the sentry's mapping.
func (f *MemoryFile) copyRange(dst uint64, src fileRange) error {
	to, err := f.Bytes(dst, src.Length())
	if err != nil {
		return err
	}
	f.willWrite(fileRange{dst, dst + src.Length()})
	in, out := int64(src.Start), int64(dst)
	for left := int(src.Length()); left > 0; {
		n, err := unix.CopyFileRange(f.fd, &in, f.fd, &out, left, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EXDEV || err == unix.EINVAL || err == unix.EOPNOTSUPP || err == unix.ENOSYS {
			done := src.Length() - uint64(left)
			copy(to[done:], f.slice(fileRange{src.Start + done, src.End}))
			return nil
		}
		if err != nil {
			return fmt.Errorf("memory file copy [%#x, %#x) to %#x: %w", src.Start, src.End, dst, err)
		}
		if n == 0 {
			return fmt.Errorf("memory file copy [%#x, %#x) to %#x: stopped short at %#x: %w", src.Start, src.End, dst, in, unix.EIO)
		}
		left -= n
	}
	return nil
}

// writeAt writes b at offset off of the file with pwrite.
func (f *MemoryFile) writeAt(b []byte, off uint64) error {
	if err := f.ensureLoaded(off, off+uint64(len(b))); err != nil {
		return err
	}
	f.willWrite(fileRange{off, off + uint64(len(b))})
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %d bytes to the memory file at %#x: %w", len(b), off, err)
		}
		if n == 0 {
			return fmt.Errorf("write %d bytes to the memory file at %#x: %w", len(b), off, io.ErrShortWrite)
		}
		b, off = b[n:], off+uint64(n)
	}
	return nil
}

// ReleaseRange drops one owner of the pages of r and frees those that have no
// owner left. Ranges that were never shared go straight to Free.
func (f *MemoryFile) ReleaseRange(r fileRange) {
	var toFree []fileRange
	f.releaseRangeDeferred(r, &toFree)
	for _, fr := range toFree {
		f.Free(fr)
	}
}

// startFreeing records that memory will be given back soon (by
// doneFreeing), for Allocated and Allocate to wait for.
func (f *MemoryFile) startFreeing() {
	f.mu.Lock()
	f.freeing++
	f.mu.Unlock()
}

// doneFreeing frees rs (FreeAll) and ends what startFreeing began.
func (f *MemoryFile) doneFreeing(rs []fileRange) {
	f.FreeAll(rs)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freeing--
	if f.freed.L != nil {
		f.freed.Broadcast()
	}
}

// waitFreedLocked waits until freeing may have dropped.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) waitFreedLocked() {
	if f.freed.L == nil {
		f.freed.L = &f.mu
	}
	f.freed.Wait()
}

// FreeAll frees every range of rs (disjoint, allocated), merging
// neighbours first so that each run of them is decommitted with one
// system call.
func (f *MemoryFile) FreeAll(rs []fileRange) { forEachMergedRun(rs, f.Free) }

// forEachMergedRun sorts rs (disjoint ranges) and calls fn once for each
// run of neighbouring ranges, merged into one.
func forEachMergedRun(rs []fileRange, fn func(fileRange)) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	var run fileRange
	for _, r := range rs {
		if r.Length() == 0 {
			continue
		}
		if run.Length() != 0 && run.End == r.Start {
			run.End = r.End
			continue
		}
		if run.Length() != 0 {
			fn(run)
		}
		run = r
	}
	if run.Length() != 0 {
		fn(run)
	}
}

// rawWriteMax is the longest run written with a raw pwrite (one that does
// not go through the Go scheduler, see MemoryLoader.writeRun).
const rawWriteMax = 16 * pageSize

// mapBatch is the most runs written by one process_vm_writev call; Linux
// accepts up to IOV_MAX (1024) iovecs per side.
const mapBatch = 256

// MemoryLoader writes saved memory into the memory file of a kernel being
// restored (see RestoreOptions.LoadMemory).
//
// The bytes are copied by the host kernel, never through a user mapping
// (which on this machine kind costs a fault per page even when the page is
// populated), and only the pages written are allocated: whatever is not
// written stays a hole. A run is best written with one pwrite(2) into the
// memory file: the host fills fresh pages without zeroing them first and
// maps nothing. But the host writes to one file one at a time (shmem holds
// the inode's lock through each write, the page's allocation included):
// a second writer would wait, spinning on its CPU. So one WriteRuns call
// at a time writes with pwrite (it holds writeMu), one more waits for it
// (parked: its P decompresses the next chunks meanwhile), and a call made
// while one waits writes its short runs through the sentry's own mapping
// of the memory file with process_vm_writev (up to mapBatch runs a call;
// the host faults each page in, zeroed, and maps it: more work per page,
// but beside the other writer rather than after it), and its long runs
// with pwrite. BenchmarkMemoryLoader compares them.
type MemoryLoader struct {
	f    *MemoryFile
	size uint64

	// writeMu is held by the WriteRuns call that writes with pwrite;
	// waiting counts the calls that want it. Accessed atomically.
	writeMu sync.Mutex
	waiting atomic.Int32

	// pwriteOnly is set once process_vm_writev failed as a whole (seccomp,
	// an old kernel): later batches go to pwrite. Accessed atomically.
	pwriteOnly atomic.Bool

	// aborted is set when the restore failed elsewhere: writes stop with
	// errLoadAborted. Accessed atomically.
	aborted atomic.Bool
}

// mapBuf is one WriteRuns call's process_vm_writev batch. The range loop's
// body is a closure, so these arrays would otherwise be allocated on every
// call: pooled, they cost no fresh heap pages (each a fault on first
// touch).
type mapBuf struct {
	local  [mapBatch]unix.Iovec
	remote [mapBatch]unix.RemoteIovec
	offs   [mapBatch]uint64
	bufs   [mapBatch][]byte
}

var mapBufs = sync.Pool{New: func() any { return new(mapBuf) }}

// errLoadAborted is what WriteRuns returns once the restore it loads for
// has failed for another reason.
var errLoadAborted = errors.New("memory load aborted: the restore failed")

// abort makes the loader's writes fail from now on.
func (l *MemoryLoader) abort() { l.aborted.Store(true) }

// WriteRuns writes each run of runs, given as (memory file offset, bytes),
// into the memory file. Every run must lie within the saved memory file
// (ErrBadState otherwise). It may be called concurrently for disjoint
// ranges.
func (l *MemoryLoader) WriteRuns(runs iter.Seq2[uint64, []byte]) error {
	if l.aborted.Load() {
		return errLoadAborted
	}
	var err error
	if l.lockWriter() {
		err = l.writeRunsLocked(runs)
		l.writeMu.Unlock()
	} else {
		err = l.writeRunsMapped(runs)
	}
	// The raw writes held the P throughout: a task goroutine back from
	// its stub during a lazy load, waiting for a P, gets one now rather
	// than at the next preemption.
	runtime.Gosched()
	return err
}

// lockWriter takes writeMu if it is free, or waits for it if no other
// call waits already, and reports whether it did; else the caller writes
// through the mapping.
func (l *MemoryLoader) lockWriter() bool {
	if l.writeMu.TryLock() {
		return true
	}
	defer l.waiting.Add(-1)
	if l.waiting.Add(1) > 1 {
		return false
	}
	l.writeMu.Lock()
	return true
}

// checkRun returns ErrBadState unless [off, off+n) lies within the memory
// file.
func (l *MemoryLoader) checkRun(off uint64, n int) error {
	if end := off + uint64(n); end < off || end > l.size {
		return fmt.Errorf("%w: memory range [%#x, %#x) beyond the memory file's %#x bytes", ErrBadState, off, end, l.size)
	}
	return nil
}

// writeRunsLocked writes every run with pwrite.
//
// Preconditions: l.writeMu is held.
func (l *MemoryLoader) writeRunsLocked(runs iter.Seq2[uint64, []byte]) error {
	for off, data := range runs {
		if err := l.checkRun(off, len(data)); err != nil {
			return err
		}
		if err := l.writeRun(data, off); err != nil {
			return err
		}
	}
	return nil
}

// writeRun writes one run. A short run goes to the host without telling
// the Go scheduler (a raw system call): it is a few microseconds of CPU
// work per page, like a fault on a page of the sentry's own memory, which
// holds its P the same way, and the scheduler's bookkeeping around a
// system call would cost a sizable part of it again. A long run, or one
// the raw call did not write in full, goes through pwrite.
func (l *MemoryLoader) writeRun(b []byte, off uint64) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) <= rawWriteMax {
		n, errno := rawPwrite(l.f.fd, b, off)
		if errno == 0 && n == len(b) {
			return nil
		}
		if errno == 0 && n > 0 && n < len(b) {
			b, off = b[n:], off+uint64(n)
		}
	}
	return l.pwrite(b, int64(off))
}

// writeRunsMapped writes the short runs with process_vm_writev into the
// sentry's mapping, the long ones with pwrite: another WriteRuns call is
// using pwrite.
func (l *MemoryLoader) writeRunsMapped(runs iter.Seq2[uint64, []byte]) error {
	mb := mapBufs.Get().(*mapBuf)
	defer func() {
		clear(mb.local[:]) // drop the references to the callers' data
		clear(mb.bufs[:])
		mapBufs.Put(mb)
	}()
	local, remote, offs, bufs := &mb.local, &mb.remote, &mb.offs, &mb.bufs
	n := 0
	for off, data := range runs {
		if err := l.checkRun(off, len(data)); err != nil {
			return err
		}
		if len(data) == 0 {
			continue
		}
		if len(data) > rawWriteMax {
			if err := l.pwrite(data, int64(off)); err != nil {
				return err
			}
			continue
		}
		local[n].Base = &data[0]
		local[n].SetLen(len(data))
		remote[n] = unix.RemoteIovec{Base: addrOf(l.f.mapping, off), Len: len(data)}
		offs[n], bufs[n] = off, data
		n++
		if n == mapBatch {
			if err := l.flush(local[:n], remote[:n], offs[:n], bufs[:n]); err != nil {
				return err
			}
			n = 0
		}
	}
	if n > 0 {
		return l.flush(local[:n], remote[:n], offs[:n], bufs[:n])
	}
	return nil
}

// flush writes one batch: bufs[i] (also described by local[i]) goes to
// memory file offset offs[i] (remote[i] in the sentry's mapping).
func (l *MemoryLoader) flush(local []unix.Iovec, remote []unix.RemoteIovec, offs []uint64, bufs [][]byte) error {
	var done int
	if !l.pwriteOnly.Load() {
		var total int
		for _, b := range bufs {
			total += len(b)
		}
		n, err := unix.ProcessVMWritev(unix.Getpid(), local, remote, 0)
		if err != nil {
			l.pwriteOnly.Store(true)
			n = 0
		}
		if n == total {
			return nil
		}
		done = n // a partial write stops at a run boundary or inside one
	}
	// pwrite what process_vm_writev did not write.
	for i, b := range bufs {
		if done >= len(b) {
			done -= len(b)
			continue
		}
		if err := l.pwrite(b[done:], int64(offs[i])+int64(done)); err != nil {
			return err
		}
		done = 0
	}
	return nil
}

// pwrite writes b at memory file offset off.
func (l *MemoryLoader) pwrite(b []byte, off int64) error {
	for len(b) > 0 {
		w, err := unix.Pwrite(l.f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %d bytes of memory at offset %#x: %w", len(b), off, err)
		}
		if w == 0 {
			return fmt.Errorf("write %d bytes of memory at offset %#x: %w", len(b), off, io.ErrShortWrite)
		}
		b, off = b[w:], off+int64(w)
	}
	return nil
}
