package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"golang.org/x/sys/unix"

	"snapshotter/stateify"
)

// The kernel state blob of an image is a small header followed by the
// stateify stream of the Kernel:
//
//	+----------+-------+-------+----------------+----------------+-----------------+
//	| "SNAPKRNL" | major | minor | monotonic (ns) | realtime (ns)  | stateify stream |
//	|  8 bytes   | u16le | u16le | i64le          | i64le          | (own header)    |
//	+----------+-------+-------+----------------+----------------+-----------------+
//
// monotonic is the kernel's CLOCK_MONOTONIC at the save: a restored kernel
// continues from it (never backward). realtime is informational. Restore
// loads the same major version and a minor version up to stateMinor
// (ErrIncompatibleVersion otherwise), before anything else is decoded.
//
// Minor versions: 1.0 the first; 1.1 each thread has its own credentials
// (Task.creds; 1.0 saved one set per process, see adoptLegacyCreds).
const (
	stateMagic = "SNAPKRNL"
	stateMajor = 1
	stateMinor = 1
	// minorThreadCreds is the first minor version with per-thread
	// credentials.
	minorThreadCreds = 1
	stateHeaderSize  = 8 + 2 + 2 + 8 + 8
)

// Errors of save and restore.
var (
	// ErrBadState means the state blob is not a kernel state (bad magic,
	// truncated header) or does not fit the image it came with.
	ErrBadState = errors.New("invalid kernel state")
	// ErrIncompatibleVersion means the state blob was written in a kernel
	// state format this build cannot load: another major version, or a
	// newer minor version than its own (an older minor loads).
	ErrIncompatibleVersion = errors.New("incompatible kernel state version")
	// ErrNotPaused means a save was attempted on a kernel that is not
	// paused.
	ErrNotPaused = errors.New("kernel is not paused")
)

// SaveState writes the kernel state blob to w.
//
// Preconditions: the kernel is paused (Pause), so that nothing changes
// while the object graph is walked.
func (k *Kernel) SaveState(ctx context.Context, w io.Writer) error {
	if !k.Paused() {
		return fmt.Errorf("save kernel state: %w", ErrNotPaused)
	}
	if k.pub != nil {
		// Connections from outside are closed at a save (reset both
		// ways); Unpause serves new ones again.
		k.pub.freeze()
	}
	k.foldCPUTimes()
	var hdr [stateHeaderSize]byte
	copy(hdr[:8], stateMagic)
	binary.LittleEndian.PutUint16(hdr[8:], stateMajor)
	binary.LittleEndian.PutUint16(hdr[10:], stateMinor)
	binary.LittleEndian.PutUint64(hdr[12:], uint64(k.monotonicNow()))
	binary.LittleEndian.PutUint64(hdr[20:], uint64(k.realtimeNow()))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("save kernel state: %w", err)
	}
	if err := stateify.Save(ctx, w, k); err != nil {
		return fmt.Errorf("save kernel state: %w", err)
	}
	return nil
}

// MemoryRange is a range of the memory file and the sentry's view of it.
type MemoryRange struct {
	Off  uint64
	Data []byte
}

// MemoryRanges returns the parts of the memory file that may hold non-zero
// data, in ascending order, with the sentry's view of each (aliasing
// application memory): the allocated ranges less the pages the host file
// does not have (never written, or decommitted). Reading such a hole
// through the mapping would allocate a page for nothing; the present pages
// are found with one mincore per range instead. Long runs get their page
// tables populated in bulk (MADV_POPULATE_READ); short ones are served by
// the host's fault-around. Zero pages among the present ones still need to
// be skipped by the image writer.
//
// Preconditions: the kernel is paused, and stays paused while the slices
// are used.
func (k *Kernel) MemoryRanges() ([]MemoryRange, error) {
	if !k.Paused() {
		return nil, fmt.Errorf("read memory file: %w", ErrNotPaused)
	}
	// A lazily restored sandbox is saved once all its memory is here.
	if err := k.waitLoaded(); err != nil {
		return nil, err
	}
	var out []MemoryRange
	var vec []byte
	for _, r := range k.mf.Allocated() {
		b, err := k.mf.Bytes(r.Start, r.Length())
		if err != nil {
			return nil, fmt.Errorf("read memory file range [%#x, %#x): %w", r.Start, r.End, err)
		}
		pages := len(b) / pageSize
		if cap(vec) < pages {
			vec = make([]byte, pages)
		}
		vec = vec[:pages]
		if err := mincore(b, vec); err != nil {
			// Without residency information every page is a candidate.
			out = append(out, MemoryRange{Off: r.Start, Data: b})
			continue
		}
		for i := 0; i < pages; {
			if vec[i]&1 == 0 {
				i++
				continue
			}
			j := i + 1
			for j < pages && vec[j]&1 != 0 {
				j++
			}
			run := b[i*pageSize : j*pageSize]
			if j-i >= populateMinPages {
				_ = unix.Madvise(run, unix.MADV_POPULATE_READ) // an optimization only
			}
			out = append(out, MemoryRange{Off: r.Start + uint64(i*pageSize), Data: run})
			i = j
		}
	}
	return out, nil
}

// populateMinPages is the shortest run of pages worth a MADV_POPULATE_READ
// (shorter runs cost less through fault-around).
const populateMinPages = 256

// Discard ends a paused kernel after a save without running any more
// application code: every process exits as if killed by SIGKILL, and the
// pause is released so that the task goroutines can exit. Wait returns
// afterwards.
//
// Preconditions: the kernel is paused by the caller.
func (k *Kernel) Discard() {
	seen := map[*ThreadGroup]bool{}
	for _, t := range k.tasks.all() {
		if !seen[t.tg] {
			seen[t.tg] = true
			t.tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
		}
	}
	k.Unpause()
}

// MemoryReader reads the memory file with pread(2): holes read as zeros
// without allocating pages, present pages are copied without faulting the
// sentry's mapping in page by page. With AllocatedMemory it is the fast
// way to stream memory into an image.
type MemoryReader struct{ mf *MemoryFile }

// ReadAt implements io.ReaderAt.
func (r MemoryReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(r.mf.fd, p[n:], off+int64(n))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return n, fmt.Errorf("read memory file at %#x: %w", off+int64(n), err)
		}
		if m == 0 {
			return n, io.ErrUnexpectedEOF
		}
		n += m
	}
	return n, nil
}

// SavedMemory returns the parts of the memory file a save must read, as
// (offset, length) pairs in ascending order, and a reader for them: the
// allocated ranges less their holes (pages the host file does not have:
// never written, or decommitted) of at least minHole bytes. Shorter holes
// stay inside the ranges: the reader returns them as zeros for the price of
// a copy, cheaper than a read call per run of pages. The holes are found
// with SEEK_DATA/SEEK_HOLE, at most two calls per minHole-aligned block
// holding data and one per long hole (a mincore of every page costs about
// 19 ms per GiB; this about 2 ms with 1 MiB blocks); nothing is faulted in.
// Zero pages among the data still need to be skipped by the image writer.
//
// Preconditions: the kernel is paused, and stays paused while the reader
// is used.
func (k *Kernel) SavedMemory(minHole uint64) ([][2]uint64, SavedMemoryReader, error) {
	if !k.Paused() {
		return nil, SavedMemoryReader{}, fmt.Errorf("read memory file: %w", ErrNotPaused)
	}
	// A lazily restored sandbox is saved once all its memory is here.
	if err := k.waitLoaded(); err != nil {
		return nil, SavedMemoryReader{}, err
	}
	var extents []fileRange
	out, err := k.mf.dataRanges(k.mf.Allocated(), minHole, &extents)
	if err != nil {
		return nil, SavedMemoryReader{}, err
	}
	return out, SavedMemoryReader{MemoryReader: MemoryReader{k.mf}, extents: extents}, nil
}

// SavedMemoryReader is SavedMemory's reader: a MemoryReader that can also
// hand out the sentry's view of a part of the memory file known to hold
// data throughout (one of the extents SEEK_DATA/SEEK_HOLE found), so that
// a save reads those pages in place instead of copying them out. Parts
// that may hold holes are left to ReadAt: a hole read through the mapping
// would allocate a page of the memory file for nothing.
type SavedMemoryReader struct {
	MemoryReader
	// extents are the data extents, in ascending order. Immutable.
	extents []fileRange
}

// View returns the sentry's view of the n bytes at off, or nil if they
// may include a hole. The view's page tables are populated in one call
// (MADV_POPULATE_READ) when it is long enough to pay.
//
// Preconditions: the kernel is paused, and stays paused while the view is
// used.
func (r SavedMemoryReader) View(off int64, n int) []byte {
	if off < 0 || n <= 0 {
		return nil
	}
	start, end := uint64(off), uint64(off)+uint64(n)
	i := sort.Search(len(r.extents), func(i int) bool { return r.extents[i].End > start })
	if i == len(r.extents) || r.extents[i].Start > start || r.extents[i].End < end {
		return nil
	}
	return r.populatedView(fileRange{start, end})
}

// SavedMemoryHead returns the allocated ranges of the memory file below
// limit, as (offset, length) pairs in ascending order, and a reader for
// them that needs no walk for holes first: a save reads them while
// SavedMemory's walk of the whole file, which runs before any other byte
// can be read, goes on. Its View shows a part only when mincore finds
// every page of it in the memory file (a page present cannot turn into a
// hole while the kernel is paused, and one swapped out since is read back
// by the access); elsewhere the caller preads, and holes read as zeros
// without being allocated.
//
// Preconditions: the kernel is paused, and stays paused while the reader
// is used.
func (k *Kernel) SavedMemoryHead(limit uint64) ([][2]uint64, ResidentReader, error) {
	alloc, mr, err := k.AllocatedMemory()
	if err != nil {
		return nil, ResidentReader{}, err
	}
	var out [][2]uint64
	for _, r := range alloc {
		if r[0] >= limit {
			break
		}
		out = append(out, [2]uint64{r[0], min(r[1], limit-r[0])})
	}
	return out, ResidentReader{mr}, nil
}

// ResidentReader is SavedMemoryHead's reader: a MemoryReader that hands
// out the sentry's view of a part of the memory file whose pages are all
// present (mincore), so that a save reads them in place.
type ResidentReader struct {
	MemoryReader
}

// View returns the sentry's view of the n bytes at off, or nil if a page
// of them is not in the memory file (a hole, or swapped out). The view's
// page tables are populated in one call when it is long enough to pay.
//
// Preconditions: the kernel is paused, and stays paused while the view is
// used.
func (r ResidentReader) View(off int64, n int) []byte {
	if off < 0 || n <= 0 || off%pageSize != 0 || n%pageSize != 0 || uint64(off)+uint64(n) > uint64(len(r.mf.mapping)) {
		return nil
	}
	fr := fileRange{uint64(off), uint64(off) + uint64(n)}
	vec := make([]byte, n/pageSize)
	if mincore(r.mf.slice(fr), vec) != nil {
		return nil
	}
	for _, v := range vec {
		if v&1 == 0 {
			return nil
		}
	}
	return r.populatedView(fr)
}

// populatedView returns the sentry's view of fr, its page tables populated
// in one call (MADV_POPULATE_READ) when it is long enough to pay.
//
// Preconditions: fr holds no hole of the memory file, and the kernel is
// paused and stays paused while the view is used.
func (r MemoryReader) populatedView(fr fileRange) []byte {
	b := r.mf.slice(fr)
	if fr.Length() >= populateMinPages*pageSize {
		_ = unix.Madvise(b, unix.MADV_POPULATE_READ) // an optimization only
	}
	return b
}

// TrackedMemoryRanges is SavedMemory's ranges (without a reader) found while the
// sandbox runs: a page that turns into data or into a hole during the
// call may or may not be in them, so a caller needs dirty tracking on
// from before the call to learn of such pages (a migration's first
// round, whose later rounds send every page written since).
func (k *Kernel) TrackedMemoryRanges(minHole uint64) ([][2]uint64, error) {
	if !k.mf.dirty.on.Load() {
		return nil, fmt.Errorf("memory ranges while running: %w", ErrNotTracking)
	}
	return k.mf.dataRanges(k.mf.Allocated(), minHole, nil)
}

// dataRanges returns the parts of ranges that hold data, less holes of at
// least minHole bytes (see SavedMemory), as (offset, length) pairs. With
// extents non-nil, it also appends to it the parts of them known to hold
// no hole at all (each SEEK_DATA up to the next SEEK_HOLE), in order.
func (f *MemoryFile) dataRanges(ranges []fileRange, minHole uint64, extents *[]fileRange) ([][2]uint64, error) {
	minHole = max(minHole&^(pageSize-1), pageSize)
	var out [][2]uint64
	for _, r := range ranges {
		var runStart, runEnd uint64
		inRun := false
		for pos := r.Start; pos < r.End; {
			d, err := unix.Seek(f.fd, int64(pos), unix.SEEK_DATA)
			if err == unix.ENXIO {
				break // only holes up to the end of the file
			}
			if err != nil {
				return nil, fmt.Errorf("memory file SEEK_DATA at %#x: %w", pos, err)
			}
			data := uint64(d) &^ (pageSize - 1)
			if data >= r.End {
				break
			}
			if inRun && data-runEnd >= minHole {
				out = append(out, [2]uint64{runStart, runEnd - runStart})
				inRun = false
			}
			if !inRun {
				runStart, inRun = data, true
			}
			h, err := unix.Seek(f.fd, int64(data), unix.SEEK_HOLE)
			if err != nil {
				return nil, fmt.Errorf("memory file SEEK_HOLE at %#x: %w", data, err)
			}
			hole := (uint64(h) + pageSize - 1) &^ (pageSize - 1)
			if extents != nil {
				*extents = appendExtent(*extents, fileRange{data, min(hole, r.End)})
			}
			// The rest of data's block is taken whole, holes and all:
			// any hole inside it is shorter than minHole.
			blockEnd := (data/minHole + 1) * minHole
			runEnd = min(max(hole, blockEnd), r.End)
			pos = runEnd
		}
		if inRun {
			out = append(out, [2]uint64{runStart, runEnd - runStart})
		}
	}
	return out, nil
}

// AllocatedMemory returns the allocated ranges of the memory file as
// (offset, length) pairs in ascending order, and a reader for them.
//
// Preconditions: the kernel is paused, and stays paused while the reader
// is used.
func (k *Kernel) AllocatedMemory() ([][2]uint64, MemoryReader, error) {
	if !k.Paused() {
		return nil, MemoryReader{}, fmt.Errorf("read memory file: %w", ErrNotPaused)
	}
	// A lazily restored sandbox is saved once all its memory is here.
	if err := k.waitLoaded(); err != nil {
		return nil, MemoryReader{}, err
	}
	var out [][2]uint64
	for _, r := range k.mf.Allocated() {
		out = append(out, [2]uint64{r.Start, r.Length()})
	}
	return out, MemoryReader{k.mf}, nil
}

// appendExtent appends r to rs, merged into the last range if they touch.
func appendExtent(rs []fileRange, r fileRange) []fileRange {
	if n := len(rs); n > 0 && rs[n-1].End == r.Start {
		rs[n-1].End = r.End
		return rs
	}
	return append(rs, r)
}
