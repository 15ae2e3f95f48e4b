package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// Restoring over a base: the members of a cold-start pool restore from one
// decompressed copy of their image's memory, the base (a file the pool
// made once: the saved memory file's bytes at the same offsets, zero pages
// as holes), and each member's memory file starts as a copy-on-write view
// of it. It is a lazy load (memory_lazy.go) whose chunks are the base's
// data, in baseChunk pieces, with two differences:
//
//   - a chunk that is not loaded (copied) yet is mapped into the stubs
//     from the base itself, without write permission
//     (platform.BaseAddressSpace): reads are served by the base's pages,
//     shared by every member, and the first write faults into the sentry,
//     which copies the chunk into the memory file and maps it there
//     writable (MM.handleFault, as a first touch of a lazy restore);
//   - nothing loads in the background by itself: a chunk is copied when
//     it is written, or touched by the sentry itself (every MemoryFile
//     access loads what it covers first), or named by CopyBase and
//     CopyBaseAhead (a taken pool member copies what a member taken
//     before wrote, the first now and the rest ahead of the program, each
//     group mapped and prefaulted into the stubs as it is copied), and a
//     save copies everything first (MemoryFile.waitLoaded), after which
//     the sandbox no longer uses the base.
//
// Only private vmas map the base (not the vDSO's, not shared memory): the
// sentry writes the pages of shared memory and of the vDSO's parameter
// page while stubs map them, which would not see the writes in the base.
// Their chunks are copied when they are mapped. A private page is written
// by its own process's stub (a fault: the chunk is copied and mapped from
// the memory file) or by the sentry on that process's behalf (MM.forWrite
// and the futex updates copy it and map it the same way first: baseFresh
// records which chunks every vma of an address space maps copied); pages
// of a private vma that fork shares are written by nobody before a copy
// on write moves the writer elsewhere. A chunk the sentry copies to read
// it stays mapped from the base where it was, with the same bytes, until
// its process writes it. Another process writing a private page of this
// one (process_vm_writev) goes through forWrite too.
//
// The base's pages stay alive while a stub maps them or a sentry holds its
// descriptor, so a member keeps working after its pool was removed.

// baseChunk is how much of the base one write copies: as much as one
// copy-on-write fault of fork copies (mm_cow.go), for the same reason
// (writes come in runs, and a fault costs far more than a few pages).
const baseChunk = 64 << 10

// MemoryBase makes a restore's memory a copy-on-write view of a base file
// (RestoreOptions.Base).
type MemoryBase struct {
	// FD is a read-only descriptor of the base: the saved memory file,
	// Size bytes, zero pages as holes. The caller keeps it; the kernel and
	// its platform hold duplicates for as long as they need them.
	FD int
	// Size is the saved memory's size (the image's memory size); the
	// base file must be at least that long.
	Size uint64
	// Populate has the stubs map the base's pages at once (a pool member
	// restored ahead of its take) rather than on first touch (a restore
	// whose program runs at once: platform.BaseMapper).
	Populate bool
	// Unpopulated are chunks of the base, numbered as BaseCopied numbers
	// them, whose pages Populate leaves to the first touch: a pool
	// member's take copies them before its program runs (the chunks a
	// member taken before wrote first), so that its stubs never read
	// them from the base. Indices out of range are ignored.
	Unpopulated []int
	// Copy are chunks of the base, numbered as BaseCopied numbers them,
	// to copy into the memory file before the program runs, as CopyBase
	// would after Restore, but while the state decodes (a restore from
	// the restore cache copies those the restore before it wrote first).
	// Indices out of range are ignored.
	Copy []int
}

// ErrNoBase means a restore over a base was asked of a platform that
// cannot map one.
var ErrNoBase = errors.New("the platform cannot map a base file")

// baseLoad copies chunks of the base into the memory file.
type baseLoad struct {
	// fd is the kernel's duplicate of the base; closed by close.
	fd     int
	chunks []LazyChunk
	// populate is MemoryBase.Populate, and unpopulated the bits of the
	// chunks of MemoryBase.Unpopulated. Immutable.
	populate    bool
	unpopulated []uint64
	// closeOnce closes fd once the load has ended.
	closeOnce sync.Once

	// pipesMu protects pipes and closed.
	pipesMu sync.Mutex
	// pipes are the pipes of earlier loads (spliceFrom), kept for the
	// next ones: a load runs on every write fault. None is kept once
	// closed.
	pipes  [][2]int
	closed bool
}

// getPipe returns a pipe for spliceFrom, kept or new.
func (bl *baseLoad) getPipe() ([2]int, error) {
	bl.pipesMu.Lock()
	if k := len(bl.pipes); k > 0 {
		p := bl.pipes[k-1]
		bl.pipes = bl.pipes[:k-1]
		bl.pipesMu.Unlock()
		return p, nil
	}
	bl.pipesMu.Unlock()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return p, err
	}
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, baseRunMax) // fewer rounds if allowed
	return p, nil
}

// putPipe keeps p, empty, for the next load, or closes it (the load
// ended, or p may hold bytes of a failed splice).
func (bl *baseLoad) putPipe(p [2]int, clean bool) {
	bl.pipesMu.Lock()
	defer bl.pipesMu.Unlock()
	if !clean || bl.closed || len(bl.pipes) >= maxKeptPipes {
		unix.Close(p[0])
		unix.Close(p[1])
		return
	}
	bl.pipes = append(bl.pipes, p)
}

// maxKeptPipes bounds the pipes a base load keeps (one per load running
// at once: faults of several tasks, a copy ahead).
const maxKeptPipes = 4

// newBaseLoad duplicates b.FD and lists the base's chunks: every
// baseChunk-aligned piece of [0, b.Size) that holds data.
func newBaseLoad(b *MemoryBase) (*baseLoad, error) {
	if b.Size%pageSize != 0 || b.Size == 0 || b.Size > MaxMemorySize {
		return nil, fmt.Errorf("%w: base size %#x zero, not page aligned or beyond %#x", ErrBadState, b.Size, uint64(MaxMemorySize))
	}
	var st unix.Stat_t
	if err := unix.Fstat(b.FD, &st); err != nil {
		return nil, fmt.Errorf("base file: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Size) < b.Size {
		return nil, fmt.Errorf("%w: base file is not a regular file of at least %d bytes", ErrBadState, b.Size)
	}
	fd, err := unix.FcntlInt(uintptr(b.FD), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("base file: dup: %w", err)
	}
	bl := &baseLoad{fd: fd, populate: b.Populate}
	for pos := uint64(0); pos < b.Size; {
		data, err := unix.Seek(fd, int64(pos), unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			bl.close()
			return nil, fmt.Errorf("base file SEEK_DATA at %#x: %w", pos, err)
		}
		if uint64(data) >= b.Size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			bl.close()
			return nil, fmt.Errorf("base file SEEK_HOLE at %#x: %w", data, err)
		}
		end := min(uint64(hole), b.Size)
		for c := uint64(data) &^ (baseChunk - 1); c < end; c += baseChunk {
			if n := len(bl.chunks); n > 0 && bl.chunks[n-1].Off == c {
				continue // the data before this extent began the chunk
			}
			bl.chunks = append(bl.chunks, LazyChunk{Off: c, Len: min(baseChunk, b.Size-c)})
		}
		pos = max(end, pos+pageSize)
	}
	for _, i := range b.Unpopulated {
		if i >= 0 && i < len(bl.chunks) {
			setBits(&bl.unpopulated, uint64(i), 1)
		}
	}
	return bl, nil
}

// memory describes the load to newLazyLoad.
func (bl *baseLoad) memory() *LazyMemory {
	return &LazyMemory{Chunks: bl.chunks, Load: bl.load, Done: func(LazyStats) { bl.close() }}
}

// baseRunMax is the most bytes load copies with one read and one write:
// neighbouring chunks (a save's, a take's recorded ones) go together.
const baseRunMax = 1 << 20

// load copies chunks idx (ascending) from the base into w.
func (bl *baseLoad) load(ctx context.Context, idx []int, w *MemoryLoader, loaded func(int)) error {
	for k := 0; k < len(idx); {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := bl.chunks[idx[k]].Off
		end := start + bl.chunks[idx[k]].Len
		j := k + 1
		for ; j < len(idx) && idx[j] == idx[j-1]+1; j++ {
			c := bl.chunks[idx[j]]
			if c.Off != end || c.Off+c.Len-start > baseRunMax {
				break
			}
			end = c.Off + c.Len
		}
		if err := bl.splice(w, start, end); err != nil {
			// Through a buffer then (the same bytes again).
			b := make([]byte, end-start)
			if err := preadFull(bl.fd, b, int64(start)); err != nil {
				return fmt.Errorf("read base at %#x: %w", start, err)
			}
			if err := w.WriteRuns(func(yield func(uint64, []byte) bool) { yield(start, b) }); err != nil {
				return err
			}
		}
		for ; k < j; k++ {
			loaded(idx[k])
		}
	}
	return nil
}

// splice copies [start, end) of the base into the memory file through w
// (spliceFrom), with a pipe kept from an earlier load if there is one.
func (bl *baseLoad) splice(w *MemoryLoader, start, end uint64) error {
	p, err := bl.getPipe()
	if err != nil {
		return err
	}
	err = w.spliceFrom(bl.fd, p, start, end)
	bl.putPipe(p, err == nil)
	return err
}

// spliceFrom copies [start, end) of file fd into the same range of the
// memory file through pipe p, empty (splice(2)): the host kernel copies
// the file's pages straight into the memory file's, with no buffer of the
// sentry's between them (which costs its pages, and a copy). An error
// may leave part of the range written, and bytes in the pipe; the caller
// writes the range again.
func (l *MemoryLoader) spliceFrom(fd int, p [2]int, start, end uint64) error {
	if l.aborted.Load() {
		return errLoadAborted
	}
	if end < start || end > l.size {
		return fmt.Errorf("%w: memory range [%#x, %#x) beyond the memory file's %#x bytes", ErrBadState, start, end, l.size)
	}
	in, out := int64(start), int64(start)
	for in < int64(end) {
		n, err := unix.Splice(fd, &in, p[1], nil, int(int64(end)-in), unix.SPLICE_F_MOVE)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		for n > 0 {
			m, err := unix.Splice(p[0], nil, l.f.fd, &out, int(n), unix.SPLICE_F_MOVE)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if m == 0 {
				return io.ErrShortWrite
			}
			n -= m
		}
	}
	return nil
}

// close closes the kernel's descriptor of the base, once, and the pipes
// kept.
func (bl *baseLoad) close() {
	bl.closeOnce.Do(func() { unix.Close(bl.fd) })
	bl.pipesMu.Lock()
	defer bl.pipesMu.Unlock()
	bl.closed = true
	for _, p := range bl.pipes {
		unix.Close(p[0])
		unix.Close(p[1])
	}
	bl.pipes = nil
}

// preadFull reads len(b) bytes at off of fd.
func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// startBase makes the fresh memory file a view of the base
// (RestoreOptions.Base): sized as the saved memory, nothing copied.
func (r *restorer) startBase() error {
	defer r.tm.Since(StepStartBase, time.Now())
	b := r.o.Base
	if b.Size > uint64(len(r.mf.mapping)) {
		return fmt.Errorf("%w: base of %d bytes beyond the %d-byte reservation", ErrBadState, b.Size, len(r.mf.mapping))
	}
	if err := unix.Ftruncate(r.mf.fd, int64(b.Size)); err != nil {
		return fmt.Errorf("size memory file to %d bytes: %w", b.Size, err)
	}
	bl, err := newBaseLoad(b)
	if err != nil {
		return err
	}
	r.loader = &MemoryLoader{f: r.mf, size: b.Size}
	l, err := newLazyLoad(bl.memory(), r.loader)
	if err != nil {
		bl.close()
		return err
	}
	l.base = bl
	r.lazy = l
	if len(b.Copy) > 0 {
		r.baseCopied = make(chan error, 1)
		idx := append([]int(nil), b.Copy...)
		// S/R-SAFE: writes the fresh memory file only; the kernel does
		// not exist yet, and attach waits for the copy
		// (waitBaseCopy).
		tm, start := r.tm, time.Now()
		go func() {
			err := l.copyChunks(idx)
			tm.Since(StepCopyBase, start)
			r.baseCopied <- err
		}()
	}
	return nil
}

// waitBaseCopy waits for the copy of RestoreOptions.Base.Copy, which
// attach needs done: the address spaces then map those chunks from the
// memory file.
func (r *restorer) waitBaseCopy() error {
	if r.baseCopied == nil {
		return nil
	}
	err := <-r.baseCopied
	r.baseCopied = nil
	if err != nil {
		return fmt.Errorf("copy chunks of the base: %w", err)
	}
	return nil
}

// copyChunks copies what of chunks idx of base load l is not copied yet
// into the memory file.
func (l *lazyLoad) copyChunks(idx []int) error {
	_, err := l.copyChunksIdx(idx)
	return err
}

// copyChunksIdx is copyChunks, also returning idx sorted.
func (l *lazyLoad) copyChunksIdx(idx []int) ([]int, error) {
	idx = append([]int(nil), idx...)
	sort.Ints(idx)
	var todo []int
	for _, i := range idx {
		if i >= 0 && i < len(l.chunks) && l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading) {
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 {
		if err := l.lm.Load(l.ctx, todo, l.w, func(i int) { l.loaded(i, loadEager) }); err != nil {
			l.fail(err)
			return idx, fmt.Errorf("copy %d chunks of the base: %w", len(todo), err)
		}
	}
	return idx, nil
}

// setBase gives the platform the base file, before any address space maps
// it.
func (r *restorer) setBase() error {
	bm, ok := r.p.(platform.BaseMapper)
	if !ok {
		return fmt.Errorf("restore over a base: %w", ErrNoBase)
	}
	return bm.SetBaseFile(r.lazy.base.fd, r.o.Base.Populate)
}

// mapBaseLocked maps [addr, addr+length), memory file offset off, from
// base load bl's base, without write permission, populated as bl says.
// The unpopulated chunks' pieces are mapped again, unpopulated, after the
// whole range: mapped first, a piece would be populated anyway by the
// host's fault-around of its neighbours' populate (the host merges the
// neighbouring mappings of one file into one, and maps up to 64 KiB
// around each page it faults in), while a mapping made over it afterwards
// drops what that put there.
//
// Preconditions: mm.mu is held for writing; mm.as is not nil.
func (mm *MM) mapBaseLocked(bl *baseLoad, addr, off, length uint64, at platform.AccessType) error {
	bas, ok := mm.as.(platform.BaseAddressSpace)
	if !ok {
		return fmt.Errorf("map base: %w", ErrNoBase)
	}
	at.Write = false
	if err := bas.MapBase(addr, off, length, at, bl.populate); err != nil {
		return err
	}
	for end := off + length; off < end; {
		next, populate := bl.populateRun(off, end)
		if !populate && bl.populate {
			if err := bas.MapBase(addr, off, next-off, at, false); err != nil {
				return err
			}
		}
		addr, off = addr+(next-off), next
	}
	return nil
}

// populateRun returns the end of the piece of [off, end) from off on
// that is populated alike, and whether it is populated.
func (bl *baseLoad) populateRun(off, end uint64) (uint64, bool) {
	if !bl.populate || len(bl.unpopulated) == 0 {
		return end, bl.populate
	}
	// skip reports whether the chunk at o (baseChunk-aligned) is one of
	// the unpopulated ones.
	skip := func(o uint64) bool {
		i := sort.Search(len(bl.chunks), func(k int) bool { return bl.chunks[k].Off >= o })
		return i < len(bl.chunks) && bl.chunks[i].Off == o && testBit(bl.unpopulated, uint64(i))
	}
	first := skip(off &^ (baseChunk - 1))
	next := min(end, off&^(baseChunk-1)+baseChunk)
	for next < end && skip(next) == first {
		next = min(end, next+baseChunk)
	}
	return next, !first
}

// mapsBase reports whether v may map chunks from a base: private memory
// that only its processes' stubs write.
func (v *vma) mapsBase() bool { return v.Private && !v.Special && !v.Beyond && v.Shm == nil }

// freshenLocked copies the chunks of a base load l under [addr,
// addr+length) of this address space, where they are not copied and
// mapped from the memory file yet, and maps them from it in every vma of
// the address space that maps them.
//
// Preconditions: mm.mu is held for writing; l.base is not nil.
func (mm *MM) freshenLocked(l *lazyLoad, addr, length uint64) error {
	var err error
	mm.forEachStaleChunkLocked(l, addr, length, func(i int) bool {
		if err = l.ensureChunk(i); err != nil {
			return false
		}
		if err = mm.remapChunkLocked(l.chunks[i]); err != nil {
			return false
		}
		setBits(&mm.baseFresh, uint64(i), 1)
		return true
	})
	return err
}

// forEachStaleChunkLocked calls fn with the index of each chunk of base
// load l under [addr, addr+length) of this address space that is not
// copied yet (not in mm.baseFresh), until fn returns false.
//
// Preconditions: mm.mu is held; l.base is not nil.
func (mm *MM) forEachStaleChunkLocked(l *lazyLoad, addr, length uint64, fn func(i int) bool) {
	end := addr + length
	for k := mm.findLocked(addr); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		v := &mm.vmas[k]
		if !v.mapsBase() {
			continue
		}
		lo := v.Off + (max(addr, v.Start) - v.Start)
		hi := v.Off + (min(end, v.End) - v.Start)
		for i := l.find(lo); i < len(l.chunks) && l.chunks[i].Off < hi; i++ {
			if !testBit(mm.baseFresh, uint64(i)) && !fn(i) {
				return
			}
		}
	}
}

// remapChunkLocked maps c, loaded, from the memory file wherever a vma of
// the address space maps it.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) remapChunkLocked(c LazyChunk) error {
	if mm.as == nil {
		return nil
	}
	return mm.eachBaseMappingLocked(c, func(v *vma, addr, off, length uint64) error {
		at := v.Perms.access()
		if v.COW || mm.mf.dirty.on.Load() {
			at.Write = false
		}
		mm.gen++
		if err := mm.as.MapFile(addr, off, length, at, false); err != nil {
			return fmt.Errorf("map copied base [%#x, %#x): %w", off, off+length, err)
		}
		return nil
	})
}

// eachBaseMappingLocked calls fn for each part of chunk c that a vma of
// the address space maps from the base (readable or writable): the vma,
// the part's address, its offset in the memory file and its length, until
// fn returns an error, which it returns.
//
// Preconditions: mm.mu is held.
func (mm *MM) eachBaseMappingLocked(c LazyChunk, fn func(v *vma, addr, off, length uint64) error) error {
	cEnd := c.Off + c.Len
	for k := range mm.vmas {
		v := &mm.vmas[k]
		vEnd := v.Off + v.length()
		if !v.mapsBase() || v.Perms == 0 || v.Off >= cEnd || vEnd <= c.Off {
			continue
		}
		lo, hi := max(v.Off, c.Off), min(vEnd, cEnd)
		if err := fn(v, v.Start+(lo-v.Off), lo, hi-lo); err != nil {
			return err
		}
	}
	return nil
}

// needsFreshLocked reports whether the sentry must copy chunks of a base
// before it writes [addr, addr+length) (freshenLocked).
//
// Preconditions: mm.mu is held; l.base is not nil.
func (mm *MM) needsFreshLocked(l *lazyLoad, addr, length uint64) bool {
	stale := false
	mm.forEachStaleChunkLocked(l, addr, length, func(int) bool {
		stale = true
		return false
	})
	return stale
}

// freshenForWrite copies and maps from the memory file the chunks of a
// base under [addr, addr+length) before the sentry writes there, so that
// the process's stub sees the write.
func (mm *MM) freshenForWrite(addr, length uint64) error {
	l := mm.mf.lazyLoader()
	if l == nil || l.base == nil {
		return nil
	}
	mm.mu.RLock()
	need := mm.needsFreshLocked(l, addr, length)
	mm.mu.RUnlock()
	if !need {
		return nil
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	return mm.freshenLocked(l, addr, length)
}

// waitLoaded loads whatever a lazy restore, or one over a base, has not
// loaded yet (MemoryFile.waitLoaded). Over a base, every address space
// is then mapped from the memory file before it returns: a save that
// write-protects memory next (dirty tracking) must not find a mapping of
// the base, which cannot be made writable again.
//
// Preconditions: no MM's mu is held.
func (k *Kernel) waitLoaded() error {
	l := k.mf.lazyLoader()
	if err := k.mf.waitLoaded(); err != nil || l == nil || l.base == nil {
		return err
	}
	for _, mm := range k.mms() {
		mm.mu.Lock()
		for i := range mm.vmas {
			if err := mm.mapIntoLocked(&mm.vmas[i], false); err != nil {
				mm.mu.Unlock()
				return fmt.Errorf("map memory copied from the base: %w", err)
			}
		}
		mm.baseFresh = nil
		mm.mu.Unlock()
	}
	return nil
}

// mapNow makes the mappings of the restored address spaces that the
// platform queued until their first run, so that the base's pages are
// mapped before the program runs rather than when it first does (and,
// with Base.Populate, populated, as a restore's prefault maps the loaded
// pages). The chunks of RestoreOptions.Base.Copy, which attach mapped
// from the memory file, are recorded as such (baseFresh); their pages are
// left to the program's first touch, which would cost what a prefault
// here costs, before it runs.
func (r *restorer) mapNow() {
	l := r.lazy
	var copied []int
	for _, i := range r.o.Base.Copy {
		if i >= 0 && i < len(l.chunks) && l.state[i].Load() == chunkLoaded {
			copied = append(copied, i)
		}
	}
	for mm := range r.mms {
		mm.mu.Lock()
		if has, ok := mm.as.(hostAddressSpace); ok {
			has.HostPID() // makes what is queued first
		}
		for _, i := range copied {
			setBits(&mm.baseFresh, uint64(i), 1)
		}
		mm.mu.Unlock()
	}
}

// ensureDropped prepares [start, end) for a decommit: what a lazy load has
// not loaded is loaded first (ensureLoaded), except, over a base, the
// chunks the range covers whole, which are marked loaded without a copy:
// they will read as zero, and nothing maps them from the base (their last
// owner let them go, or MADV_DONTNEED remapped them first).
func (f *MemoryFile) ensureDropped(start, end uint64) error {
	l := f.lazy.Load()
	if l == nil || l.base == nil {
		return f.ensureLoaded(start, end)
	}
	for i := l.find(start); i < len(l.chunks) && l.chunks[i].Off < end; i++ {
		c := l.chunks[i]
		if c.Off >= start && c.Off+c.Len <= end && l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading) {
			l.loaded(i, loadDropped)
			continue
		}
		if err := l.ensureChunk(i); err != nil {
			return err
		}
	}
	return nil
}

// BaseCopied returns the chunks of a restore over a base that were copied
// because they were touched (not by CopyBase), in the order they were
// first touched, also once the load has ended (everything copied, or the
// program gone); nil if the kernel was not restored over a base.
func (k *Kernel) BaseCopied() []int {
	l := k.baseLoad.Load()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	out := append([]int(nil), l.stats.OnDemand...)
	l.mu.Unlock()
	return out
}

// BaseStats returns, for a restore over a base, how many chunks the base
// has (Chunks), how many were copied ahead of the program's writes
// (Eager: Base.Copy, CopyBase, CopyBaseAhead) and which on a write or the
// sentry's own access (OnDemand, in that order); false if the kernel was
// not restored over a base.
func (k *Kernel) BaseStats() (LazyStats, bool) {
	l := k.baseLoad.Load()
	if l == nil {
		return LazyStats{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.OnDemand = append([]int(nil), l.stats.OnDemand...)
	return st, true
}

// CopyBase copies chunks idx (BaseCopied of an earlier sandbox of the same
// base) into the memory file and maps them from it in every address
// space, at once rather than one write fault each: a pool member does it
// when it is taken, with the chunks a member taken before wrote first.
// Indices out of range are ignored. Mappings made before the program
// first runs cost it no extra stop (the platform batches them, and the
// program's first run makes them): they are not prefaulted, which would
// make them at once, from another thread than the task's, a handoff that
// the program would wait for; its first touch of each page is a host
// fault instead.
func (k *Kernel) CopyBase(idx []int) error {
	l := k.mf.lazyLoader()
	if l == nil || l.base == nil {
		return nil
	}
	return k.copyBase(l, idx, false)
}

// PrimeBase copies chunks idx of the base into the memory file now, maps
// them from it in every address space and prefaults them into the stubs,
// as CopyBase does at a take but with the mapping changes made at once:
// a pool member primed while it waits (runner's primed member) holds the
// chunks that a take would copy first, so that its take copies and maps
// nothing before the program runs. Indices out of range are ignored.
func (k *Kernel) PrimeBase(idx []int) error {
	l := k.mf.lazyLoader()
	if l == nil || l.base == nil {
		return nil
	}
	return k.copyBase(l, idx, true)
}

// UnpopulateBase drops from the stubs' page tables the base's pages of
// chunks idx where an address space maps them from the base (mapped
// again, unpopulated, as MemoryBase.Unpopulated would have mapped them):
// a pool member restored before its pool recorded the chunks its take
// copies first holds them no longer than one restored after. Chunks
// copied already, or out of range, are left as they are.
func (k *Kernel) UnpopulateBase(idx []int) error {
	l := k.mf.lazyLoader()
	if l == nil || l.base == nil {
		return nil
	}
	var drop []int
	for _, i := range idx {
		if i >= 0 && i < len(l.chunks) {
			drop = append(drop, i)
		}
	}
	sort.Ints(drop)
	for _, mm := range k.mms() {
		if err := mm.unpopulateBase(l, drop); err != nil {
			return err
		}
	}
	return nil
}

// unpopulateBase maps chunks idx (ascending) that are not copied from the
// base again, unpopulated, wherever a vma of the address space maps them,
// as one batch of mapping changes made now. A chunk's state is read under
// mm.mu, which a copy takes to map the chunk from the memory file after
// it marked it copied: a chunk found not copied is mapped from the base
// here, or afterwards from the memory file.
func (mm *MM) unpopulateBase(l *lazyLoad, idx []int) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	bas, ok := mm.as.(platform.BaseAddressSpace)
	if !ok || len(idx) == 0 {
		return nil
	}
	b, batch := mm.as.(platform.Batcher)
	if batch {
		b.BeginBatch()
	}
	var err error
	for _, i := range idx {
		if l.state[i].Load() != chunkUnloaded {
			continue
		}
		err = mm.eachBaseMappingLocked(l.chunks[i], func(v *vma, addr, off, length uint64) error {
			at := v.Perms.access()
			at.Write = false
			return bas.MapBase(addr, off, length, at, false)
		})
		if err != nil {
			break
		}
	}
	if batch {
		if berr := b.EndBatch(); err == nil {
			err = berr
		}
	}
	if has, ok := mm.as.(hostAddressSpace); ok && err == nil {
		has.HostPID() // makes the queued changes now, not at the first run
	}
	return err
}

// baseAheadGroup is how many chunks a copy ahead (CopyBaseAhead) copies
// and maps at a time: each group's mappings change in one stop of the
// stub, and the program's next writes wait for no more than one group.
const baseAheadGroup = 8

// CopyBaseAhead copies chunks idx of the base, in the order given, on a
// goroutine of its own while the program runs, a few at a time, mapping
// each group from the memory file in every address space as it is
// copied: a taken pool member does it with the chunks a member taken
// before wrote, in the order it wrote them, so that the program finds
// them copied rather than faulting on each. A chunk the program touches
// first is copied by its fault as before (and skipped here). It returns
// at once, with a channel closed when the copy has ended; the copy stops
// early if the kernel is released.
func (k *Kernel) CopyBaseAhead(idx []int) <-chan struct{} {
	done := make(chan struct{})
	l := k.mf.lazyLoader()
	if l == nil || l.base == nil || len(idx) == 0 {
		close(done)
		return done
	}
	idx = append([]int(nil), idx...)
	// S/R-SAFE: copies chunks of the base into the memory file as a
	// write fault would (each chunk once, under its load state) and maps
	// them under each MM's mu; a save loads every chunk first
	// (waitLoaded), after which what is left here finds them loaded and
	// only maps them again, as write-protected as dirty tracking wants.
	go func() {
		defer close(done)
		for len(idx) > 0 && l.ctx.Err() == nil {
			n := min(len(idx), baseAheadGroup)
			if err := k.copyBase(l, idx[:n], true); err != nil {
				return // the load failed (the sandbox is killed) or ended
			}
			idx = idx[n:]
		}
	}()
	return done
}

// copyBase copies what of chunks idx of base load l is not copied yet and
// maps them all from the memory file in every address space, neighbouring
// chunks together, as one batch of mapping changes per address space,
// prefaulted into the stubs if prefault.
func (k *Kernel) copyBase(l *lazyLoad, idx []int, prefault bool) error {
	idx, err := l.copyChunksIdx(idx)
	if err != nil {
		return err
	}
	var done []int
	for _, i := range idx {
		if i >= 0 && i < len(l.chunks) && l.state[i].Load() == chunkLoaded {
			done = append(done, i)
		}
	}
	for _, mm := range k.mms() {
		if err := mm.remapChunks(l, done, prefault); err != nil {
			return err
		}
	}
	return nil
}

// remapChunks maps chunks done (ascending), copied from the base, from the
// memory file wherever the address space maps them, neighbouring chunks
// together, as one batch of mapping changes (prefaulted if prefault), and
// records them as copied for it. Chunks it has mapped from the memory file
// already (a primed pool member's, CopyBase at its take) are left as they
// are: no mapping change, no stop of the stub.
func (mm *MM) remapChunks(l *lazyLoad, done []int, prefault bool) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	var runs []LazyChunk
	for _, i := range done {
		if testBit(mm.baseFresh, uint64(i)) {
			continue
		}
		c := l.chunks[i]
		if n := len(runs); n > 0 && runs[n-1].Off+runs[n-1].Len == c.Off {
			runs[n-1].Len += c.Len
		} else {
			runs = append(runs, c)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	b, batch := mm.as.(platform.Batcher)
	if batch {
		b.BeginBatch()
	}
	var err error
	for _, r := range runs {
		if err = mm.remapChunkLocked(r); err != nil {
			break
		}
	}
	if batch {
		if berr := b.EndBatch(); err == nil {
			err = berr
		}
	}
	if err != nil {
		return err
	}
	for _, i := range done {
		setBits(&mm.baseFresh, uint64(i), 1)
	}
	if prefault {
		mm.prefaultChunksLocked(runs)
	}
	return nil
}

// prefaultChunksLocked maps the pages of runs of the memory file, where
// the address space maps them, into the stub's page tables now (a read of
// a byte of each page from the stub, which maps a shared page writable),
// so that the program's first touch of each costs no host fault, as a
// restore's prefault does for the memory it loaded. Best effort.
//
// Preconditions: mm.mu is held.
func (mm *MM) prefaultChunksLocked(runs []LazyChunk) {
	has, ok := mm.as.(hostAddressSpace)
	if !ok || len(runs) == 0 {
		return
	}
	var (
		remote [prefaultBatch]unix.RemoteIovec
		sink   [prefaultBatch]byte
		n      int
	)
	pid := has.HostPID() // makes the mappings still queued first
	flush := func() {
		local := []unix.Iovec{{Base: &sink[0]}}
		local[0].SetLen(n)
		unix.ProcessVMReadv(pid, local, remote[:n], 0)
		n = 0
	}
	for _, r := range runs {
		cEnd := r.Off + r.Len
		for k := range mm.vmas {
			v := &mm.vmas[k]
			vEnd := v.Off + v.length()
			if !v.mapsBase() || !v.Perms.allows(permRead) || v.Off >= cEnd || vEnd <= r.Off {
				continue
			}
			lo, hi := max(v.Off, r.Off), min(vEnd, cEnd)
			for a := v.Start + (lo - v.Off); a < v.Start+(hi-v.Off); a += pageSize {
				remote[n] = unix.RemoteIovec{Base: uintptr(a), Len: 1}
				if n++; n == len(remote) {
					flush()
				}
			}
		}
	}
	if n > 0 {
		flush()
	}
}
