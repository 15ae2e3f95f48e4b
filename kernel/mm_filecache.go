package kernel

import (
	"errors"
	"fmt"
	"io"
	"sync"
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
// a mapping needs it, and stays until no vma holds it (cachedFile.Refs),
// when its memory is given back (a hole again). Cache pages are never
// written: a private mapping maps them without write permission and copies
// a page into a range of its own on the first write (mm_cow.go), and a
// shared mapping of a host file is never writable (host files are opened
// read-only).
//
// The cache is kernel state, saved with the memory file. A restore does not
// read host files again for it: the saved pages are the truth for every
// mapping made before the save, as they are for any copy of a file in
// memory. A file that changed on the host since has another identity
// (size or mtime), so mappings made after the restore get a new entry with
// the new contents, and reopening a file whose identity changed fails the
// restore (vfs.ErrHostFileChanged) as before.

// maxCachedFileBytes bounds the size of a cached file: it reserves a
// memory file range of its size (which costs only address space in the
// memory file's reservation until pages are read). Larger files are
// copied into each mapping.
const maxCachedFileBytes = 1 << 30

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
	// Src is a file of this version (File.PageSource of the first one
	// mapped) that pages not cached yet are read from when a mapping
	// grows over them (mremap); the entry holds it until it is forgotten. Set by the first acquire
	// that has one; protected by fileCache.mu. Not saved: a restore
	// reopens no host file for the cache (see above), so a restored entry
	// has none until a new mmap of the file gives it one.
	Src *vfs.File `state:"nosave"`
}

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
	// files are the cached files, each with at least one page held.
	// Protected by mu.
	files []*cachedFile
	// index finds files by key; rebuilt from files on first use after a
	// restore. Protected by mu.
	index map[fileKey]*cachedFile `state:"nosave"`
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
// pages that are not cached yet, and returns the cached file. Read errors
// are returned as errnos.
func (c *fileCache) acquire(mf *MemoryFile, k fileKey, src FileContents, off, length uint64) (*cachedFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf := c.lookupLocked(k)
	if cf == nil {
		size, _ := pageRoundUp(k.Size)
		fr, err := mf.Allocate(size)
		if err != nil {
			return nil, unix.ENOMEM
		}
		cf = &cachedFile{Key: k, Base: fr.Start, Refs: make([]uint32, size/pageSize)}
		c.files = append(c.files, cf)
		c.index[k] = cf
	}
	if fc, ok := src.(fileContents); ok && cf.Src == nil {
		// Without one, growing mappings get anonymous pages (extend).
		cf.Src, _ = fc.f.PageSource()
	}
	first, last := off/pageSize, (off+length)/pageSize
	// Fill the missing pages run by run; on a failure nothing was taken.
	for p := first; p < last; {
		if cf.Refs[p] != 0 {
			p++
			continue
		}
		q := p
		for q < last && cf.Refs[q] == 0 {
			q++
		}
		c.counts.fills.Add(1)
		c.counts.bytes.Add((q - p) * pageSize)
		start := time.Now()
		err := fillCached(mf, cf.rangeOf(p*pageSize, (q-p)*pageSize), src, p*pageSize)
		c.counts.nanos.Add(uint64(time.Since(start)))
		if err != nil {
			for r := first; r < q; r++ {
				if cf.Refs[r] == 0 {
					mf.Decommit(cf.rangeOf(r*pageSize, pageSize))
				}
			}
			c.dropIfUnusedLocked(mf, cf)
			return nil, err
		}
		p = q
	}
	for p := first; p < last; p++ {
		if cf.Refs[p] == 0 {
			cf.Held++
		}
		cf.Refs[p]++
	}
	return cf, nil
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
// all have a count already, or else reading the missing ones from cf.Src.
// It reports false, taking nothing, if some are missing and cf has no
// source (a file cached before a restore). Read errors are errnos.
func (c *fileCache) extend(mf *MemoryFile, cf *cachedFile, off, length uint64) (bool, error) {
	c.mu.Lock()
	first, last := off/pageSize, (off+length)/pageSize
	held := true
	for p := first; p < last && held; p++ {
		held = cf.Refs[p] != 0
	}
	if held {
		for p := first; p < last; p++ {
			cf.Refs[p]++
		}
	}
	src := cf.Src
	c.mu.Unlock()
	if held {
		return true, nil
	}
	if src == nil {
		return false, nil
	}
	_, err := c.acquire(mf, cf.Key, fileContents{src}, off, length)
	return err == nil, err
}

// release drops one count on every page of the file's bytes [off,
// off+length). Pages left without a count are decommitted, and a cached
// file left without pages gives its whole range back to the memory file at
// once.
func (c *fileCache) release(mf *MemoryFile, cf *cachedFile, off, length uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var toFree []fileRange
	runs := c.releaseLocked(cf, off, length, nil)
	c.settleLocked(mf, cf, runs, &toFree)
	mf.FreeAll(toFree)
}

// releaseVMAs drops the counts of every file vma of vmas (an address space
// going away) and returns the ranges of the cached files left without
// pages, for the caller to free with the rest of the address space's
// memory (MemoryFile.FreeAll). Pages of files still cached elsewhere are
// decommitted here, one system call per run.
func (c *fileCache) releaseVMAs(mf *MemoryFile, vmas []vma) []fileRange {
	c.mu.Lock()
	defer c.mu.Unlock()
	runs := map[*cachedFile][]fileRange{}
	for i := range vmas {
		if v := &vmas[i]; v.File != nil {
			runs[v.File] = c.releaseLocked(v.File, v.FileOff, v.length(), runs[v.File])
		}
	}
	var toFree []fileRange
	for cf, r := range runs {
		c.settleLocked(mf, cf, r, &toFree)
	}
	return toFree
}

// releaseLocked drops one count on every page of the file's bytes [off,
// off+length) and appends the memory file ranges of the pages left without
// a count to runs.
//
// Preconditions: c.mu is held.
func (c *fileCache) releaseLocked(cf *cachedFile, off, length uint64, runs []fileRange) []fileRange {
	for p := off / pageSize; p < (off+length)/pageSize; p++ {
		if cf.Refs[p] == 0 {
			continue // never happens: a vma holds what it maps
		}
		cf.Refs[p]--
		if cf.Refs[p] != 0 {
			continue
		}
		cf.Held--
		pr := cf.rangeOf(p*pageSize, pageSize)
		if n := len(runs); n > 0 && runs[n-1].End == pr.Start {
			runs[n-1].End = pr.End
		} else {
			runs = append(runs, pr)
		}
	}
	return runs
}

// settleLocked gives back what cf no longer holds: its whole range (to
// toFree, for the caller to free) if it holds no page, else the pages of
// runs, decommitted now (a later acquire may fill them again once c.mu is
// released).
//
// Preconditions: c.mu is held.
func (c *fileCache) settleLocked(mf *MemoryFile, cf *cachedFile, runs []fileRange, toFree *[]fileRange) {
	if cf.Held == 0 {
		c.forgetLocked(cf)
		*toFree = append(*toFree, fileRange{cf.Base, cf.Base + uint64(len(cf.Refs))*pageSize})
		return
	}
	forEachMergedRun(runs, mf.Decommit)
}

// dropIfUnusedLocked forgets cf and frees its range if it holds no page.
//
// Preconditions: c.mu is held.
func (c *fileCache) dropIfUnusedLocked(mf *MemoryFile, cf *cachedFile) {
	if cf.Held != 0 {
		return
	}
	c.forgetLocked(cf)
	mf.Free(fileRange{cf.Base, cf.Base + uint64(len(cf.Refs))*pageSize})
}

// forgetLocked removes cf from the cache.
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
