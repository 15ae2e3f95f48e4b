package kernel

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// Dirty tracking. While it is on, the memory file knows every page written
// since it was turned on (or since the last TakeDirty), whoever wrote it:
//
//   - the application, through its stubs' mappings: where the platform
//     watches writes (platform.WriteWatcher: userfaultfd write protection,
//     memory_file_watch.go), every page of every writable vma is
//     write-protected in the stubs' page tables, and the first write to
//     one (or, in a run of writes, a dirtyWindow) is reported to the
//     sentry (watchedWrite), which records it and lifts the protection;
//     elsewhere every writable vma is mapped without write permission
//     (mapIntoLocked), so that the first write faults into the sentry
//     (handleFaultLocked), which records the window and gives it back its
//     write permission;
//   - the sentry itself: each of its writes into the memory file (CopyOut
//     and friends, futex updates, copies on write, file cache fills, tmpfs
//     data, the vDSO clock, decommits) calls willWrite first.
//
// The stubs' mappings are protected rather than the sentry's own, which
// the application never writes through.
//
// Tracking is off by default and costs one atomic load per sentry write
// while off (nothing is watched or protected then). It is host state:
// nothing of it is saved, and a restored kernel starts with it off.
//
// A memory snapshot (StartMemorySnapshot) builds on it: the pages of the
// memory file at a pause, read while the sandbox runs again. A page is
// copied aside before its first write after the pause (copy before write),
// so the snapshot reads what the page held at the pause. The write
// protection a take needs can be done ahead of its pause, while the
// sandbox runs (PrepareTake), where writes are watched.

// dirtyWindow is how much one tracking write fault makes writable again
// (aligned, within the vma) when the write continues a run: the page
// before it was written already in this round. Writes come in runs, and
// each fault through the platform costs far more than recording a few
// more pages; a write with no dirty page before it makes its own page
// writable only, so scattered writes are recorded page by page (an
// incremental image or a migration round then carries what was written,
// not its neighbours).
const dirtyWindow = 4 * pageSize

// dirtyTracker is the memory file's record of written pages.
type dirtyTracker struct {
	// on is set while tracking. Accessed atomically; writes also hold mu.
	on atomic.Bool

	// mu protects everything below.
	mu sync.Mutex
	// bits has one bit per memory file page: written since the last reset
	// (or, in watched memory, since the page was last protected).
	bits []uint64
	// ahead has the pages written since the last reset that PrepareTake
	// protected again already: the next take returns them with bits.
	ahead []uint64
	// armed is set by PrepareTake and cleared when tracking stops: the
	// memory may be write-protected although tracking is off.
	armed bool
	// snap is the snapshot being read, or nil.
	snap *MemorySnapshot
	// lastProtect counts the last write-protection (protectAll).
	lastProtect ProtectStats
	// watchErr is the first reason an address space could not watch
	// writes (memory_file_watch.go), or nil.
	watchErr error
}

// set marks pages [first, first+n) in b, growing it as needed: whole
// words at once (a snapshot of all memory marks every page while paused).
func setBits(b *[]uint64, first, n uint64) {
	if n == 0 {
		return
	}
	need := int((first + n + 63) / 64)
	if need > len(*b) {
		*b = append(*b, make([]uint64, need-len(*b))...)
	}
	p, end := first, first+n
	for ; p < end && p%64 != 0; p++ {
		(*b)[p/64] |= 1 << (p % 64)
	}
	for ; p+64 <= end; p += 64 {
		(*b)[p/64] = ^uint64(0)
	}
	for ; p < end; p++ {
		(*b)[p/64] |= 1 << (p % 64)
	}
}

// testBit reports whether page p is set in b.
func testBit(b []uint64, p uint64) bool {
	return int(p/64) < len(b) && b[p/64]&(1<<(p%64)) != 0
}

// bitRuns returns the runs of set pages of b as file ranges, in order.
func bitRuns(b []uint64) []fileRange {
	var out []fileRange
	for i, w := range b {
		for w != 0 {
			tz := uint64(bits.TrailingZeros64(w))
			p := uint64(i)*64 + tz
			w &^= 1 << tz
			if n := len(out); n > 0 && out[n-1].End == p*pageSize {
				out[n-1].End += pageSize
			} else {
				out = append(out, fileRange{p * pageSize, (p + 1) * pageSize})
			}
		}
	}
	return out
}

// willWrite is called before the sentry writes into, or decommits, r of
// the memory file: while tracking, r's pages are recorded as dirty, and a
// snapshot gets a copy of those it has not read yet.
func (f *MemoryFile) willWrite(r fileRange) {
	if !f.dirty.on.Load() {
		return
	}
	f.recordWrite(r)
}

// recordWrite records r's pages as written, whether tracking is on or not
// (a write watched while PrepareTake's protection waits for its take),
// after a snapshot copied aside those it has not read yet.
func (f *MemoryFile) recordWrite(r fileRange) {
	if r.Length() == 0 {
		return
	}
	d := &f.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	first := r.Start / pageSize
	n := (r.End+pageSize-1)/pageSize - first
	if d.snap != nil {
		d.snap.preserveLocked(f, first, n)
	}
	setBits(&d.bits, first, n)
}

// isDirty reports whether the page at memory file offset off is in the
// current dirty set.
func (f *MemoryFile) isDirty(off uint64) bool {
	d := &f.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	return testBit(d.bits, off/pageSize)
}

// DirtyTracking reports whether dirty tracking is on.
func (k *Kernel) DirtyTracking() bool { return k.mf.dirty.on.Load() }

// StartDirtyTracking turns dirty tracking on with an empty dirty set, or,
// if it is on, empties the set: from now on every page written is
// recorded (TakeDirty).
//
// Preconditions: the kernel is paused.
func (k *Kernel) StartDirtyTracking() error {
	if !k.Paused() {
		return fmt.Errorf("start dirty tracking: %w", ErrNotPaused)
	}
	_, err := k.takeDirty(true)
	return err
}

// TakeDirty returns the memory file ranges written since tracking started
// or since the previous TakeDirty, in ascending order, and starts a new
// empty set. ErrNotTracking if tracking is off.
//
// Preconditions: the kernel is paused.
func (k *Kernel) TakeDirty() ([][2]uint64, error) {
	if !k.Paused() {
		return nil, fmt.Errorf("take dirty pages: %w", ErrNotPaused)
	}
	if !k.mf.dirty.on.Load() {
		return nil, fmt.Errorf("take dirty pages: %w", ErrNotTracking)
	}
	runs, err := k.takeDirty(false)
	if err != nil {
		return nil, err
	}
	out := make([][2]uint64, len(runs))
	for i, r := range runs {
		out[i] = [2]uint64{r.Start, r.Length()}
	}
	return out, nil
}

// takeDirty turns tracking on (start) or requires it on, swaps in an
// empty dirty set and write-protects every writable vma of every address
// space again, so that the next write to any page is recorded. It returns
// the old set.
//
// Preconditions: the kernel is paused.
func (k *Kernel) takeDirty(start bool) ([]fileRange, error) {
	d := &k.mf.dirty
	d.mu.Lock()
	again := d.bits
	old := d.ahead
	orBits(&old, again)
	d.bits, d.ahead = nil, nil
	d.on.Store(true)
	d.armed = false
	d.mu.Unlock()
	if err := k.protectAll(again); err != nil {
		k.StopDirtyTracking()
		return nil, fmt.Errorf("dirty tracking: %w", err)
	}
	if start {
		return nil, nil
	}
	return bitRuns(old), nil
}

// StopDirtyTracking turns tracking off and gives every writable vma its
// write permission back. It may be called whether or not the kernel is
// paused, and when tracking is off.
func (k *Kernel) StopDirtyTracking() {
	d := &k.mf.dirty
	d.mu.Lock()
	was := d.on.Load() || d.armed
	d.on.Store(false)
	d.armed = false
	d.bits, d.ahead = nil, nil
	d.snap = nil
	d.mu.Unlock()
	if !was {
		return
	}
	for _, mm := range k.mms() {
		mm.remapWritable()
	}
}

// ErrNotTracking means dirty pages were asked for while dirty tracking is
// off.
var ErrNotTracking = errors.New("dirty tracking is off")

// mms returns the address spaces of the kernel's processes, each once.
func (k *Kernel) mms() []*MM {
	seen := map[*MM]bool{}
	var out []*MM
	for _, tg := range k.threadGroups() {
		if mm := tg.mm; mm != nil && !seen[mm] {
			seen[mm] = true
			out = append(out, mm)
		}
	}
	return out
}

// ProtectStats counts the last write-protection of every address space
// (StartDirtyTracking, TakeDirty, StartMemorySnapshot): the writable vmas,
// the calls that protected them (adjacent vmas with the same access are
// one call) and the platform round trips those took (a platform that
// batches makes one per address space).
type ProtectStats struct {
	VMAs, Calls, RoundTrips int
	// Watching is set if some address space watched writes
	// (memory_file_watch.go); Pages counts the pages its calls protected
	// again in watched vmas, Whole the vmas it protected whole (which
	// costs a walk of their page tables).
	Watching     bool
	Pages, Whole int
	// Took is how long the protection took.
	Took time.Duration
}

// LastProtect returns the counts of the last write-protection.
func (k *Kernel) LastProtect() ProtectStats {
	d := &k.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastProtect
}

// protectAll write-protects the writable vmas of every address space,
// where writes are watched only the pages of again (written since they
// were last protected) and the vmas not watched yet.
func (k *Kernel) protectAll(again []uint64) error {
	var st ProtectStats
	t0 := time.Now()
	for _, mm := range k.mms() {
		if err := mm.writeProtect(again, &st); err != nil {
			return err
		}
	}
	st.Took = time.Since(t0)
	d := &k.mf.dirty
	d.mu.Lock()
	d.lastProtect = st
	d.mu.Unlock()
	return nil
}

// writeProtect protects every writable vma so that the next write to each
// page is recorded: in watched memory the pages of again and the vmas not
// watched yet (watchProtectLocked); every other writable vma is mapped
// without write permission, so that the next write to each page faults:
// adjacent vmas that get the same access in one call, and all calls in
// one batch where the platform batches (the tasks are paused: nothing
// runs in between).
func (mm *MM) writeProtect(again []uint64, st *ProtectStats) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	done, err := mm.watchProtectLocked(again, st)
	if err != nil {
		return err
	}
	return mm.eachWritableRunLocked(st, done, func(at platform.AccessType) platform.AccessType {
		at.Write = false
		return at
	})
}

// remapWritable stops watching writes and maps every writable vma with its
// permissions again, once tracking is off. Failures are left to the next
// fault, which maps the vma again.
func (mm *MM) remapWritable() {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if w, ok := mm.as.(platform.WriteWatcher); ok {
		w.UnwatchAll()
	}
	_ = mm.eachWritableRunLocked(&ProtectStats{}, nil, func(at platform.AccessType) platform.AccessType { return at })
}

// eachWritableRunLocked gives each run of adjacent writable, not COW vmas
// whose access (through access) is the same that access, one protect call
// per run, in one platform batch if the platform has them; the vmas whose
// skip is set are left alone (skip may be nil).
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) eachWritableRunLocked(st *ProtectStats, skip []bool, access func(platform.AccessType) platform.AccessType) error {
	b, batch := mm.as.(platform.Batcher)
	if batch {
		b.BeginBatch()
	}
	// Without Protector a run is mapped again, so its memory file
	// offsets must follow each other too.
	_, protector := mm.as.(platform.Protector)
	calls := st.Calls
	var err error
	var run struct {
		start, end, off uint64
		at              platform.AccessType
		open            bool
	}
	flush := func() {
		if run.open && err == nil {
			st.Calls++
			err = mm.protectLocked(run.start, run.end-run.start, run.off, run.at)
		}
		run.open = false
	}
	for i := range mm.vmas {
		v := &mm.vmas[i]
		if v.Perms&permWrite == 0 || v.COW || (skip != nil && skip[i]) {
			flush()
			continue
		}
		st.VMAs++
		at := access(v.Perms.access())
		if run.open && run.end == v.Start && run.at == at && (protector || run.off+(run.end-run.start) == v.Off) {
			run.end = v.End
			continue
		}
		flush()
		run.start, run.end, run.off, run.at, run.open = v.Start, v.End, v.Off, at, true
	}
	flush()
	if batch {
		if berr := b.EndBatch(); err == nil && berr != nil {
			err = fmt.Errorf("write protection: %w", berr)
		}
		if st.Calls > calls {
			st.RoundTrips++
		}
	} else {
		st.RoundTrips += st.Calls - calls
	}
	return err
}

// protectLocked gives [addr, addr+length), mapping the memory file at off,
// access at in the platform address space: with Protect where the platform
// has it, otherwise by mapping it again.
//
// Preconditions: mm.mu is held for writing; the range lies in one vma.
func (mm *MM) protectLocked(addr, length, off uint64, at platform.AccessType) error {
	if mm.as == nil {
		return nil
	}
	mm.gen++
	var err error
	if p, ok := mm.as.(platform.Protector); ok {
		err = p.Protect(addr, length, at)
	} else {
		err = mm.as.MapFile(addr, off, length, at, false)
	}
	if err != nil {
		return fmt.Errorf("protect [%#x, %#x) %v: %w", addr, addr+length, at, err)
	}
	return nil
}

// trackWriteLocked records a write fault at addr in v, a writable vma
// that is not COW, while tracking: addr's page, or the dirtyWindow from
// it (within v) when the page before it is dirty already, is recorded as
// written (a snapshot copies it first) and made writable.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) trackWriteLocked(v *vma, addr uint64) error {
	page := addr &^ (pageSize - 1)
	if w := mm.watcherLocked(); w != nil && watchable(v) {
		// Mapped without write permission while tracking: watched from
		// now on (protected page by page while nothing can write it),
		// and writable, but for the page written now.
		err := error(nil)
		if !w.Watched(v.Start, v.length()) {
			err = w.WriteProtect(v.Start, v.length())
		}
		if err == nil {
			off := v.Off + (page - v.Start)
			mm.mf.willWrite(fileRange{off, off + pageSize})
			_ = w.Unprotect(page, pageSize)
			return mm.protectLocked(v.Start, v.length(), v.Off, v.Perms.access())
		}
		// Left to write permission, as where nothing is watched.
	}
	start, end := page, page+pageSize
	if page > v.Start && mm.mf.isDirty(v.Off+(page-pageSize-v.Start)) {
		// A run: the window from this page on.
		end = min(v.End, page+dirtyWindow)
	}
	off := v.Off + (start - v.Start)
	mm.mf.willWrite(fileRange{off, off + (end - start)})
	return mm.protectLocked(start, end-start, off, v.Perms.access())
}

// MemorySnapshot is the memory file as it was at a pause, readable while
// the sandbox runs again: ReadAt returns what a page held at the pause,
// from the memory file if the page has not been written since, or from
// the copy taken before its first write. Only the ranges given to
// StartMemorySnapshot can be read.
type MemorySnapshot struct {
	mf *MemoryFile
	// alloc is the memory file's allocated ranges at the pause;
	// immutable.
	alloc []fileRange
	// pending has a bit per page of the snapshot not read yet and not
	// written since the pause; saved holds the pages written before they
	// were read. Both are protected by mf.dirty.mu.
	pending []uint64
	saved   map[uint64]*[pageSize]byte
	// copied counts the bytes copied aside so far. Protected by
	// mf.dirty.mu.
	copied uint64
}

// StartMemorySnapshot starts dirty tracking (or empties the dirty set, as
// TakeDirty does) and a snapshot of memory as it is now, over the ranges
// ((offset, length) pairs, page aligned) that pick returns: pick is given
// the pages written since tracking was last reset (nil if tracking was
// off), so that an incremental save can cover what changed only. The
// snapshot ends with Release; one at a time.
//
// Preconditions: the kernel is paused.
func (k *Kernel) StartMemorySnapshot(pick func(dirty [][2]uint64) [][2]uint64) (*MemorySnapshot, error) {
	if !k.Paused() {
		return nil, fmt.Errorf("memory snapshot: %w", ErrNotPaused)
	}
	// A lazily restored sandbox is saved once all its memory is here.
	if err := k.waitLoaded(); err != nil {
		return nil, err
	}
	was := k.mf.dirty.on.Load()
	runs, err := k.takeDirty(!was)
	if err != nil {
		return nil, err
	}
	var dirty [][2]uint64
	if was {
		dirty = make([][2]uint64, 0, len(runs))
		for _, r := range runs {
			dirty = append(dirty, [2]uint64{r.Start, r.Length()})
		}
	}
	s := &MemorySnapshot{mf: k.mf, alloc: k.mf.Allocated(), saved: map[uint64]*[pageSize]byte{}}
	for _, r := range pick(dirty) {
		setBits(&s.pending, r[0]/pageSize, r[1]/pageSize)
	}
	d := &k.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap != nil {
		return nil, fmt.Errorf("memory snapshot: %w", ErrSnapshotBusy)
	}
	d.snap = s
	return s, nil
}

// ErrSnapshotBusy means a memory snapshot was started while another one
// is being read.
var ErrSnapshotBusy = errors.New("a memory snapshot is already in progress")

// preserveLocked copies aside the pages [first, first+n) that the
// snapshot has not read yet, before they are written.
//
// Preconditions: f.dirty.mu is held.
func (s *MemorySnapshot) preserveLocked(f *MemoryFile, first, n uint64) {
	for p := first; p < first+n; p++ {
		if !testBit(s.pending, p) {
			continue
		}
		s.pending[p/64] &^= 1 << (p % 64)
		buf := new([pageSize]byte)
		if _, err := (MemoryReader{f}).ReadAt(buf[:], int64(p*pageSize)); err != nil {
			// The page cannot be read: the snapshot read will fail on it.
			continue
		}
		s.saved[p] = buf
		s.copied += pageSize
	}
}

// ReadAt implements io.ReaderAt over the memory at the pause; off and
// len(b) must be page aligned. Pages read are no longer copied before
// they are written.
func (s *MemorySnapshot) ReadAt(b []byte, off int64) (int, error) {
	if off%pageSize != 0 || len(b)%pageSize != 0 {
		return 0, fmt.Errorf("memory snapshot read [%#x, +%#x): not page aligned: %w", off, len(b), unix.EINVAL)
	}
	d := &s.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap != s {
		return 0, fmt.Errorf("memory snapshot read at %#x: %w", off, ErrSnapshotEnded)
	}
	// Runs of pending pages come from the file; saved pages from their
	// copies. A page that is neither was read before (or is outside the
	// snapshot): it is read from the file again, which is right only
	// for pages outside the snapshot, whose content does not matter.
	first := uint64(off) / pageSize
	for i := 0; i < len(b)/pageSize; {
		p := first + uint64(i)
		if c, ok := s.saved[p]; ok {
			copy(b[i*pageSize:], c[:])
			delete(s.saved, p)
			i++
			continue
		}
		j := i + 1
		for j < len(b)/pageSize {
			if _, ok := s.saved[first+uint64(j)]; ok {
				break
			}
			j++
		}
		if _, err := (MemoryReader{s.mf}).ReadAt(b[i*pageSize:j*pageSize], int64(p*pageSize)); err != nil {
			return i * pageSize, err
		}
		for q := p; q < first+uint64(j); q++ {
			if int(q/64) < len(s.pending) {
				s.pending[q/64] &^= 1 << (q % 64)
			}
		}
		i = j
	}
	return len(b), nil
}

// SavedRanges returns what a save of the snapshot reads, as SavedMemory
// does at a pause, but found while the sandbox runs again: the ranges
// allocated at the pause, less holes of at least minHole bytes, and with
// every page copied aside so far (a page decommitted since the pause is
// a hole now, but was copied aside first). A page that was a hole at the
// pause and written since is read as the zeros copied aside before the
// write. Only ranges the snapshot covers read as at the pause.
func (s *MemorySnapshot) SavedRanges(minHole uint64) ([][2]uint64, error) {
	out, err := s.mf.dataRanges(s.alloc, minHole, nil)
	if err != nil {
		return nil, err
	}
	d := &s.mf.dirty
	d.mu.Lock()
	var copied []uint64
	for p := range s.saved {
		copied = append(copied, p)
	}
	d.mu.Unlock()
	if len(copied) == 0 {
		return out, nil
	}
	var b []uint64
	for _, r := range out {
		setBits(&b, r[0]/pageSize, r[1]/pageSize)
	}
	for _, p := range copied {
		setBits(&b, p, 1)
	}
	runs := bitRuns(b)
	out = make([][2]uint64, len(runs))
	for i, r := range runs {
		out[i] = [2]uint64{r.Start, r.Length()}
	}
	return out, nil
}

// CopiedAside returns how many bytes of the snapshot were copied aside
// before a write so far.
func (s *MemorySnapshot) CopiedAside() uint64 {
	d := &s.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	return s.copied
}

// Release ends the snapshot; dirty tracking stays on.
func (s *MemorySnapshot) Release() {
	d := &s.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap == s {
		d.snap = nil
	}
	s.saved = nil
	s.pending = nil
}

// ErrSnapshotEnded means a memory snapshot was read after Release or after
// dirty tracking stopped.
var ErrSnapshotEnded = errors.New("memory snapshot ended")

// MemorySize returns the memory file's size: a migration target sizes its
// memory to it before the pages arrive.
func (k *Kernel) MemorySize() uint64 { return k.mf.Size() }

// MemoryReader returns a reader of the memory file as it is now (pread):
// a migration reads dirty pages through it while the program runs, and
// sends them again if they are dirtied meanwhile.
func (k *Kernel) MemoryReader() MemoryReader { return MemoryReader{k.mf} }
