package kernel

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// The file cache keeps one copy of the mapped pages of each host file in
// the memory file, so that every process that maps libc (or the same
// executable) maps the same pages instead of a copy of its own.
//
// A cached file reserves one range of the memory file for all its pages
// when it is first mapped; a page is read from the host file the first time
// a mapping needs it. A page that no vma holds any more (cachedFile.Refs)
// is retained: it keeps the file's contents, so that the next mapping of
// it (the next exec of the same program, the next process that reads
// /etc/ld.so.cache) reads nothing from the host. Retained pages are
// bounded (retainLimit): past the bound, the files released longest ago
// give theirs back first (a hole again; a file that holds no page for a
// vma gives its whole range back to the memory file), and a file whose
// retained pages alone pass the bound keeps none. Cache pages are never
// written: a private mapping maps them without write permission and copies
// a page into a range of its own on the first write (mm_cow.go), and a
// shared mapping of a host file is never writable (host files are opened
// read-only).
//
// Retained pages are no mapping's memory: the memory limit and
// /proc/meminfo do not count the ranges of files that hold only retained
// pages (fileCache.idleBytes) until a mapping takes one again (which fails
// as an allocation of its range would past the limit), so the host memory
// of a sandbox may pass its limit by at most the bound, which is an eighth
// of the limit for small limits.
//
// The cache is kernel state, saved with the memory file; a pause gives
// every retained page back first (dropRetained), so a saved cache holds
// exactly the pages of its vmas and an image (or a pool member restored
// from it) is no larger for the retention. A restore does not read host
// files again for the cache: the saved pages are the truth for every
// mapping made before the save, as they are for any copy of a file in
// memory. A file that changed on the host since has another identity
// (size or mtime), so mappings made after the restore get a new entry with
// the new contents (and the retained pages of the old version, which
// nothing can map any more, are given back then), and reopening a file
// whose identity changed fails the restore (vfs.ErrHostFileChanged) as
// before.

// maxCachedFileBytes bounds the size of a cached file: it reserves a
// memory file range of its size (which costs only address space in the
// memory file's reservation until pages are read). Larger files are
// copied into each mapping.
const maxCachedFileBytes = 1 << 30

// maxRetainedBytes bounds the retained pages of a memory file without a
// memory limit (retainLimit). An exec loop of small programs needs a few
// hundred KiB (the program and /etc/ld.so.cache: the shell holds ld.so and
// libc), a script of coreutils and similar a few MiB, an interpreter run
// again and again (its executable alone several MiB) more; a compiler's
// cc1 (tens of MiB) may not fit and is read again. The bound is kept
// about the memory of a small sandbox itself (its sentry and stubs) because
// retained pages cost the host as much as mapped ones, while the host's
// page cache already holds the files' bytes.
const maxRetainedBytes = 32 << 20

// retainLimit returns the bound on retained pages of a memory file with
// the memory limit limit (0: none): maxRetainedBytes, or an eighth of a
// smaller limit, so that retention never adds more than that to what the
// limit allows.
func retainLimit(limit uint64) uint64 {
	if limit == 0 {
		return maxRetainedBytes
	}
	return min(maxRetainedBytes, limit/8)
}

// fileKey identifies one version of a host file (vfs.HostFileID).
//
// +stateify savable
type fileKey struct {
	DevMajor, DevMinor uint32
	Ino, Size          uint64
	MtimeSec           int64
	MtimeNsec          uint32
}

func fileKeyOf(id vfs.HostFileID) fileKey {
	return fileKey{DevMajor: id.DevMajor, DevMinor: id.DevMinor, Ino: id.Ino, Size: id.Size,
		MtimeSec: id.Mtime.Sec, MtimeNsec: id.Mtime.Nsec}
}

// cacheableContents is implemented by FileContents whose pages the file
// cache may share: host regular files, which the sandbox cannot change.
type cacheableContents interface {
	FileContents
	// cacheKey returns the file's identity, or false if it must be
	// copied instead.
	cacheKey() (fileKey, bool)
}

// cachedFile is the memory file's copy of the mapped pages of one host file
// version.
//
// +stateify savable
type cachedFile struct {
	// Key is the file's identity. Immutable.
	Key fileKey
	// Base is the memory file offset of the file's first page: the entry
	// owns [Base, Base+len(Refs)*pageSize). Immutable.
	Base uint64
	// Refs counts, per page, the vmas that hold the page: those that map
	// it and private copies of it (which map it again after
	// MADV_DONTNEED). A page with a count holds the file's contents (zero
	// past the end of the file); a page without one is a hole. The length
	// is immutable; the counts are protected by fileCache.mu.
	Refs []uint32
	// Held is the number of pages with a count. Protected by fileCache.mu.
	Held int
	// kept has a bit per retained page: a page without a count that still
	// holds the file's contents. keptPages counts them; idle records that
	// the file has retained pages and no page with a count (its range is
	// in fileCache.idleBytes). Not saved: a pause gives retained pages
	// back, so a saved file has none. Protected by fileCache.mu.
	kept      []uint64 `state:"nosave"`
	keptPages int      `state:"nosave"`
	idle      bool     `state:"nosave"`
	// Src is a file of this version (File.PageSource of the first one
	// mapped) that pages not cached yet are read from when a mapping
	// grows over them (mremap); the entry holds it until it is forgotten. Set by the first acquire
	// that has one; protected by fileCache.mu. Not saved: a restore
	// reopens no host file for the cache (see above), so a restored entry
	// has none until a new mmap of the file gives it one.
	Src *vfs.File `state:"nosave"`
}

// keptAt reports whether page p is retained.
//
// Preconditions: fileCache.mu is held.
func (cf *cachedFile) keptAt(p uint64) bool { return testBit(cf.kept, p) }

// length returns the length of the file's memory file range.
func (cf *cachedFile) length() uint64 { return uint64(len(cf.Refs)) * pageSize }

// rangeOf returns the memory file range that holds the file's bytes
// [off, off+length).
func (cf *cachedFile) rangeOf(off, length uint64) fileRange {
	return fileRange{cf.Base + off, cf.Base + off + length}
}

// fileCache is the set of cached files of a memory file.
//
// +stateify savable
type fileCache struct {
	// mu protects everything below; it is taken inside MM.mu and outside
	// MemoryFile.mu. Not saved: held by no one at save time.
	mu sync.Mutex `state:"nosave"`
	// files are the cached files, each with at least one page held or
	// retained. Protected by mu.
	files []*cachedFile
	// index finds files by key; rebuilt from files on first use after a
	// restore. Protected by mu.
	index map[fileKey]*cachedFile `state:"nosave"`
	// retained are the files with retained pages, the one whose pages
	// were released longest ago first; retainedBytes is the memory of
	// their retained pages. Not saved: a pause gives them back
	// (dropRetained). Protected by mu.
	retained      []*cachedFile `state:"nosave"`
	retainedBytes uint64        `state:"nosave"`
	// idleBytes is the length of the ranges of the files with retained
	// pages and none with a count (cachedFile.idle): allocated memory that
	// no mapping holds, which MemoryFile.allocatedLocked does not count.
	// Not saved (none at a save, as retained). Written with mu held, read
	// atomically.
	idleBytes atomic.Uint64 `state:"nosave"`
	// limit is the memory file's memory limit (MemoryFile.setLimit; 0:
	// none), which bounds the retained pages (retainLimit). Set with the
	// limit, before the sandbox runs: host configuration, not state.
	// Accessed atomically.
	limit atomic.Uint64 `state:"nosave"`
	// counts are for Kernel.Counts: diagnostics of this run, not state.
	counts fileCacheCounts `state:"nosave"`
}

// lookupLocked returns the cached file with key k, or nil.
//
// Preconditions: c.mu is held.
func (c *fileCache) lookupLocked(k fileKey) *cachedFile {
	if c.index == nil {
		c.index = make(map[fileKey]*cachedFile, len(c.files))
		for _, cf := range c.files {
			c.index[cf.Key] = cf
		}
	}
	return c.index[k]
}

// cachedLength returns how many bytes of a mapping of length bytes at file
// offset off the file cache can hold: the file's pages, none for a file
// too large to cache.
func cachedLength(k fileKey, off, length uint64) uint64 {
	size, _ := pageRoundUp(k.Size)
	if k.Size > maxCachedFileBytes || off >= size {
		return 0
	}
	return min(length, size-off)
}

// acquire takes one count on every page of the file's bytes [off,
// off+length) (page aligned, within cachedLength), reading from src the
// pages that are neither held nor retained, and returns the cached file.
// Read errors are returned as errnos.
func (c *fileCache) acquire(mf *MemoryFile, k fileKey, src FileContents, off, length uint64) (*cachedFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf := c.lookupLocked(k)
	if cf == nil {
		c.evictVersionsLocked(mf, k)
		size, _ := pageRoundUp(k.Size)
		fr, err := mf.Allocate(size)
		if err != nil {
			return nil, unix.ENOMEM
		}
		cf = &cachedFile{Key: k, Base: fr.Start, Refs: make([]uint32, size/pageSize)}
		c.files = append(c.files, cf)
		c.index[k] = cf
	}
	if cf.idle {
		// Its range counts against the memory limit again.
		if err := mf.takeIdle(cf.length()); err != nil {
			return nil, unix.ENOMEM
		}
		cf.idle = false
	}
	if fc, ok := src.(fileContents); ok && cf.Src == nil {
		// Without one, growing mappings get anonymous pages (extend).
		cf.Src, _ = fc.f.PageSource()
	}
	first, last := off/pageSize, (off+length)/pageSize
	missing := func(p uint64) bool { return cf.Refs[p] == 0 && !cf.keptAt(p) }
	// Fill the missing pages run by run; on a failure nothing was taken.
	for p := first; p < last; {
		if !missing(p) {
			p++
			continue
		}
		q := p
		for q < last && missing(q) {
			q++
		}
		c.counts.fills.Add(1)
		c.counts.bytes.Add((q - p) * pageSize)
		start := time.Now()
		err := fillCached(mf, cf.rangeOf(p*pageSize, (q-p)*pageSize), src, p*pageSize)
		c.counts.nanos.Add(uint64(time.Since(start)))
		if err != nil {
			for r := first; r < q; r++ {
				if missing(r) {
					mf.Decommit(cf.rangeOf(r*pageSize, pageSize))
				}
			}
			c.dropIfUnusedLocked(mf, cf)
			return nil, err
		}
		p = q
	}
	c.takeLocked(cf, first, last)
	return cf, nil
}

// takeLocked takes one count on every page of [first, last), each held or
// retained.
//
// Preconditions: c.mu is held.
func (c *fileCache) takeLocked(cf *cachedFile, first, last uint64) {
	listed := cf.keptPages > 0
	for p := first; p < last; p++ {
		if cf.Refs[p] == 0 {
			cf.Held++
			if cf.keptAt(p) {
				cf.kept[p/64] &^= 1 << (p % 64)
				cf.keptPages--
				c.retainedBytes -= pageSize
			}
		}
		cf.Refs[p]++
	}
	if listed && cf.keptPages == 0 {
		c.unlistLocked(cf)
	}
	c.updateIdleLocked(cf)
}

// ref takes one more count on every page of the file's bytes [off,
// off+length), which are all held already (a vma being duplicated).
func (c *fileCache) ref(cf *cachedFile, off, length uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := off / pageSize; p < (off+length)/pageSize; p++ {
		cf.Refs[p]++
	}
}

// extend takes one count on every page of the file's bytes [off,
// off+length) for a mapping growing over them (mremap): from pages that
// are all held or retained already, or else reading the missing ones from
// cf.Src. It reports false, taking nothing, if some are missing and cf has
// no source (a file cached before a restore). Read errors are errnos.
func (c *fileCache) extend(mf *MemoryFile, cf *cachedFile, off, length uint64) (bool, error) {
	c.mu.Lock()
	first, last := off/pageSize, (off+length)/pageSize
	here := true
	for p := first; p < last && here; p++ {
		here = cf.Refs[p] != 0 || cf.keptAt(p)
	}
	if here {
		c.takeLocked(cf, first, last)
	}
	src := cf.Src
	c.mu.Unlock()
	if here {
		return true, nil
	}
	if src == nil {
		return false, nil
	}
	_, err := c.acquire(mf, cf.Key, fileContents{src}, off, length)
	return err == nil, err
}

// release drops one count on every page of the file's bytes [off,
// off+length). Pages left without a count are retained, and the files
// released longest ago give theirs back if that passes the bound.
func (c *fileCache) release(mf *MemoryFile, cf *cachedFile, off, length uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var toFree []fileRange
	c.releaseLocked(cf, off, length)
	c.settleLocked(mf, []*cachedFile{cf}, &toFree)
	mf.FreeAll(toFree)
}

// releaseVMAs drops the counts of every file vma of vmas (an address space
// going away) and returns the ranges of the cached files given back whole
// (retained pages past the bound, of files that hold no other page), for
// the caller to free with the rest of the address space's memory
// (MemoryFile.FreeAll). Retained pages of files still mapped elsewhere
// that pass the bound are decommitted here, one system call per run.
func (c *fileCache) releaseVMAs(mf *MemoryFile, vmas []vma) []fileRange {
	c.mu.Lock()
	defer c.mu.Unlock()
	var released []*cachedFile
	for i := range vmas {
		if v := &vmas[i]; v.File != nil {
			if !slices.Contains(released, v.File) {
				released = append(released, v.File)
			}
			c.releaseLocked(v.File, v.FileOff, v.length())
		}
	}
	var toFree []fileRange
	c.settleLocked(mf, released, &toFree)
	return toFree
}

// releaseLocked drops one count on every page of the file's bytes [off,
// off+length); pages left without a count are retained.
//
// Preconditions: c.mu is held.
func (c *fileCache) releaseLocked(cf *cachedFile, off, length uint64) {
	for p := off / pageSize; p < (off+length)/pageSize; p++ {
		if cf.Refs[p] == 0 {
			continue // never happens: a vma holds what it maps
		}
		cf.Refs[p]--
		if cf.Refs[p] != 0 {
			continue
		}
		cf.Held--
		setBits(&cf.kept, p, 1)
		cf.keptPages++
		c.retainedBytes += pageSize
	}
}

// settleLocked makes the files of released, whose counts just dropped, the
// most recently released ones with retained pages, then keeps the retained
// pages within the bound: a file whose retained pages alone pass it gives
// them back, then the files released longest ago give back theirs until
// the rest fit (evictLocked; whole ranges to toFree, for the caller to
// free).
//
// Preconditions: c.mu is held.
func (c *fileCache) settleLocked(mf *MemoryFile, released []*cachedFile, toFree *[]fileRange) {
	bound := retainLimit(c.limit.Load())
	for _, cf := range released {
		c.unlistLocked(cf)
		switch {
		case cf.keptPages == 0:
			continue
		case uint64(cf.keptPages)*pageSize > bound:
			c.evictLocked(mf, cf, toFree)
		default:
			c.retained = append(c.retained, cf)
			c.updateIdleLocked(cf)
		}
	}
	for c.retainedBytes > bound && len(c.retained) > 0 {
		c.evictLocked(mf, c.retained[0], toFree)
	}
}

// evictLocked gives back cf's retained pages: its whole range (to toFree)
// if it holds no other page, else each run of them, decommitted now.
//
// Preconditions: c.mu is held.
func (c *fileCache) evictLocked(mf *MemoryFile, cf *cachedFile, toFree *[]fileRange) {
	c.unlistLocked(cf)
	c.retainedBytes -= uint64(cf.keptPages) * pageSize
	runs := bitRuns(cf.kept)
	cf.kept, cf.keptPages = nil, 0
	c.updateIdleLocked(cf)
	if cf.Held == 0 {
		c.forgetLocked(cf)
		*toFree = append(*toFree, fileRange{cf.Base, cf.Base + cf.length()})
		return
	}
	for _, r := range runs {
		mf.Decommit(fileRange{cf.Base + r.Start, cf.Base + r.End})
	}
}

// evictVersionsLocked gives back the retained pages of the other versions
// of the file k is a version of (the same device and inode): the file
// changed on the host, and no new mapping can map the old contents.
//
// Preconditions: c.mu is held.
func (c *fileCache) evictVersionsLocked(mf *MemoryFile, k fileKey) {
	var toFree []fileRange
	for i := 0; i < len(c.retained); {
		cf := c.retained[i]
		if o := cf.Key; o.DevMajor != k.DevMajor || o.DevMinor != k.DevMinor || o.Ino != k.Ino {
			i++
			continue
		}
		c.evictLocked(mf, cf, &toFree) // removes cf from c.retained
	}
	mf.FreeAll(toFree)
}

// dropRetained gives back every retained page and returns their memory in
// bytes.
func (c *fileCache) dropRetained(mf *MemoryFile) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.retainedBytes
	var toFree []fileRange
	for len(c.retained) > 0 {
		c.evictLocked(mf, c.retained[0], &toFree)
	}
	mf.FreeAll(toFree)
	return n
}

// unlistLocked removes cf from c.retained if it is there.
//
// Preconditions: c.mu is held.
func (c *fileCache) unlistLocked(cf *cachedFile) {
	if i := slices.Index(c.retained, cf); i >= 0 {
		c.retained = slices.Delete(c.retained, i, i+1)
	}
}

// updateIdleLocked counts cf's range in c.idleBytes if it holds retained
// pages only, and no longer counts it otherwise (but acquire, which
// checks the memory limit first: MemoryFile.takeIdle).
//
// Preconditions: c.mu is held.
func (c *fileCache) updateIdleLocked(cf *cachedFile) {
	idle := cf.Held == 0 && cf.keptPages > 0
	if idle == cf.idle {
		return
	}
	cf.idle = idle
	if idle {
		c.idleBytes.Add(cf.length())
	} else {
		c.idleBytes.Add(-cf.length())
	}
}

// dropIfUnusedLocked forgets cf and frees its range if it holds no page.
//
// Preconditions: c.mu is held.
func (c *fileCache) dropIfUnusedLocked(mf *MemoryFile, cf *cachedFile) {
	if cf.Held != 0 || cf.keptPages != 0 {
		return
	}
	c.forgetLocked(cf)
	mf.Free(fileRange{cf.Base, cf.Base + cf.length()})
}

// forgetLocked removes cf, which holds no page, from the cache.
//
// Preconditions: c.mu is held.
func (c *fileCache) forgetLocked(cf *cachedFile) {
	for i, x := range c.files {
		if x == cf {
			c.files = append(c.files[:i], c.files[i+1:]...)
			break
		}
	}
	delete(c.index, cf.Key)
	if cf.Src != nil {
		cf.Src.DecRef()
		cf.Src = nil
	}
}

// forgetRetained forgets the retained pages without giving them back: the
// memory file is being released (MemoryFile.Release) and goes whole.
func (c *fileCache) forgetRetained() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retained, c.retainedBytes = nil, 0
}

// fillBufs are the staging buffers of fillCached.
var fillBufs = sync.Pool{New: func() any { return new([fillChunk]byte) }}

// fillChunk is how much of a file fillCached reads at once.
const fillChunk = 256 << 10

// fillCached copies the file's contents from off into the memory file range
// fr, which reads as zero; what lies past the end of the file stays zero
// (a hole). The bytes go through a staging buffer and pwrite: the host
// fills new memory file pages with them without zeroing them first and
// without mapping them into the sentry (populating the sentry's mapping
// and reading into it costs a page fault and a clear per page).
func fillCached(mf *MemoryFile, fr fileRange, f FileContents, off uint64) error {
	buf := fillBufs.Get().(*[fillChunk]byte)
	defer fillBufs.Put(buf)
	for done := uint64(0); done < fr.Length(); {
		b := buf[:min(fillChunk, fr.Length()-done)]
		n, err := f.ReadAt(b, int64(off+done))
		if err != nil && !errors.Is(err, io.EOF) {
			var errno unix.Errno
			if errors.As(err, &errno) {
				return errno
			}
			return fmt.Errorf("read mapped file at %d: %w", off+done, err)
		}
		if n > 0 {
			if err := mf.writeAt(b[:n], fr.Start+done); err != nil {
				return err
			}
		}
		if n < len(b) {
			return nil
		}
		done += uint64(n)
	}
	return nil
}

// fillFromFile copies the file's contents from off into the memory file
// range fr, which reads as zero; what lies past the end of the file stays
// zero.
func fillFromFile(mf *MemoryFile, fr fileRange, f FileContents, off uint64) error {
	dst, err := mf.Bytes(fr.Start, fr.Length())
	if err != nil {
		return err
	}
	mf.willWrite(fr)
	// Read in chunks, each prefaulted first: cheaper than faulting page by
	// page, and a chunk past the end of the file is never populated.
	const chunk = 256 << 10
	for done := 0; done < len(dst); {
		b := dst[done:min(done+chunk, len(dst))]
		populate(b)
		n, err := f.ReadAt(b, int64(off)+int64(done))
		done += n
		if errors.Is(err, io.EOF) || (err == nil && n < len(b)) {
			break
		}
		if err != nil {
			var errno unix.Errno
			if errors.As(err, &errno) {
				return errno
			}
			return fmt.Errorf("read mapped file at %d: %w", int64(off)+int64(done), err)
		}
	}
	return nil
}
