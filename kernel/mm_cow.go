package kernel

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Copy-on-write. A COW vma maps pages it does not own alone: the file
// cache's (vma.mapsCache, mm_filecache.go), or private pages shared with
// the other side of a fork (anonymous memory, or private copies of file
// pages; MemoryFile.shared counts their owners). The platform maps them
// without write permission, and the first write, by the application (a
// write fault) or by the sentry (CopyOut and friends), gives the written
// pages a memory file range of the vma's own holding a copy, mapped with
// the vma's permissions. Pages shared by a fork whose other owners are gone
// (the child exited or exec'd) are taken over without a copy.

// cowWindow is how much one write fault on memory shared by a fork copies
// (aligned, within the vma): after a fork, writes come in runs (a heap, a
// stack), and each fault through the platform costs far more than copying
// a few pages.
const cowWindow = 16 * pageSize

// releaseVMALocked gives back what v holds: its counts on cached file pages
// and the range it owns.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) releaseVMALocked(v *vma) {
	if v.Special || v.Beyond {
		return // the kernel's pages (the vDSO), or none
	}
	if v.File != nil {
		mm.mf.files.release(mm.mf, v.File, v.FileOff, v.length())
		if v.mapsCache() {
			return
		}
	}
	mm.mf.ReleaseRange(v.fileRange())
}

// breakCOWLocked makes the page at addr, in a COW vma, writable: a
// private copy of it (of the cowWindow around it, for memory shared by a
// fork), or the whole vma if its pages have no other owner left.
//
// Preconditions: mm.mu is held for writing; addr is page aligned and lies
// in a COW vma.
func (mm *MM) breakCOWLocked(addr uint64) error {
	start, end := addr, addr+pageSize
	if v := mm.vmaAtLocked(addr); v != nil && !v.mapsCache() {
		if mm.mf.soleOwner(v.fileRange()) {
			v.COW = false
			return mm.mapIntoLocked(v, false)
		}
		start = max(v.Start, addr&^(cowWindow-1))
		end = min(v.End, start+cowWindow)
	}
	i, j := mm.isolateLocked(start, end)
	if j != i+1 {
		return fmt.Errorf("copy-on-write fault at %#x: no mapping: %w", addr, ErrBadAddress)
	}
	return mm.privatizeLocked(&mm.vmas[i])
}

// privatizeLocked copies the pages v maps into a fresh range, makes v own
// it and maps it with v's permissions. Pages shared by a fork drop v's
// share of the old range (taken over without a copy if no one else owns
// it).
//
// Preconditions: mm.mu is held for writing; v is COW.
func (mm *MM) privatizeLocked(v *vma) error {
	if !v.mapsCache() && mm.mf.soleOwner(v.fileRange()) {
		v.COW = false
		return mm.mapIntoLocked(v, false)
	}
	fr, over, err := mm.mf.allocateForCopy(v.length())
	if err != nil {
		return fmt.Errorf("copy-on-write of [%#x, %#x): %w", v.Start, v.End, err)
	}
	src, cached := v.fileRange(), v.mapsCache()
	if err := mm.mf.copyInto(fr.Start, src, over); err != nil {
		mm.mf.Free(fr)
		return fmt.Errorf("copy-on-write of [%#x, %#x): %w", v.Start, v.End, err)
	}
	if h := cowCopiedHook.Load(); h != nil {
		(*h)()
	}
	// The copy is mapped before v's share of the old pages is given
	// back. The other owners may have let go of them since soleOwner
	// said they were there (a fork's child that execs or exits does so
	// on its own goroutine, under its own MM's lock), and then giving
	// back frees them: their memory is punched out and may be handed to
	// another process at once, while the platform still maps them here
	// and the process's other threads (or a vfork child) read them
	// until the copy is mapped. They would read zeros: a Python thread
	// reading objects beside a buffer the sentry was writing jumped to
	// address 0. For the same reason a failed mapping (the host's limit
	// on mappings, see unmapLocked) keeps v on the old pages, which the
	// platform still maps, and gives back the copy instead.
	v.Off, v.COW = fr.Start, false
	if err := mm.mapIntoLocked(v, false); err != nil {
		v.Off, v.COW = src.Start, true
		mm.mf.Free(fr)
		return err
	}
	if !cached {
		mm.mf.ReleaseRange(src)
	}
	return nil
}

// cowCopiedHook, if set, is called by privatizeLocked between the copy of
// a vma's pages and their mapping: a test lets the pages' other owner go
// there.
var cowCopiedHook atomic.Pointer[func()]

// hasCOWLocked reports whether a COW vma overlaps [addr, addr+length).
//
// Preconditions: mm.mu is held.
func (mm *MM) hasCOWLocked(addr, length uint64) bool {
	end := addr + length
	for k := mm.findLocked(addr); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		if mm.vmas[k].COW {
			return true
		}
	}
	return false
}

// breakCOWRangeLocked privatizes the COW pages in [addr, addr+length) of
// vmas that allow want.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) breakCOWRangeLocked(addr, length uint64, want perms) error {
	start := pageRoundDown(addr)
	end, ok := pageRoundUp(addr + length)
	if !ok || end <= start {
		return nil
	}
	for k := mm.findLocked(start); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		v := mm.vmas[k]
		if !v.COW || !v.Perms.allows(want) {
			continue
		}
		i, j := mm.isolateLocked(max(start, v.Start), min(end, v.End))
		for ; i < j; i++ {
			if err := mm.privatizeLocked(&mm.vmas[i]); err != nil {
				return err
			}
		}
		k = j - 1
	}
	return nil
}

// forWrite is forEachLocked for a write into application memory: COW
// pages in the range are privatized first, and shared file pages not
// allocated yet are allocated. It takes mm.mu for reading, or for writing
// when there is something to copy or allocate.
func (mm *MM) forWrite(addr, length uint64, want perms, fn func(b []byte) error) error {
	if mm.mf.dirty.on.Load() {
		inner := fn
		fn = func(b []byte) error {
			mm.mf.willWrite(mm.mf.rangeOf(b))
			return inner(b)
		}
	}
	if err := mm.freshenForWrite(addr, length); err != nil {
		return err
	}
	mm.mu.RLock()
	if !mm.hasCOWLocked(addr, length) && !mm.unbackedLocked(addr, length) {
		defer mm.mu.RUnlock()
		return mm.forEachLocked(addr, length, want, fn)
	}
	mm.mu.RUnlock()
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.backRangeLocked(addr, length)
	if err := mm.breakCOWRangeLocked(addr, length, want); err != nil {
		return err
	}
	return mm.forEachLocked(addr, length, want, fn)
}

// dropPrivatePagesLocked gives back the private pages in [start, end) of
// file mappings and of anonymous memory shared after a fork, which the
// decommit of MADV_DONTNEED cannot touch: the first map the file's pages
// again (MADV_DONTNEED on a private file mapping reads the file again, as
// on Linux), the second fresh zero pages.
//
// Preconditions: mm.mu is held for writing; vmas cover [start, end).
func (mm *MM) dropPrivatePagesLocked(start, end uint64) error {
	for k := mm.findLocked(start); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		v := mm.vmas[k]
		if !v.Private || v.mapsCache() || (v.File == nil && !v.COW) {
			continue // the file's pages, or anonymous memory of its own
		}
		i, j := mm.isolateLocked(max(start, v.Start), min(end, v.End))
		for n := i; n < j; n++ {
			w := &mm.vmas[n]
			old, oldCOW := w.fileRange(), w.COW
			var fresh fileRange
			if w.File == nil {
				fr, err := mm.mf.Allocate(w.length())
				if err != nil {
					return unix.ENOMEM
				}
				fresh = fr
				w.Off, w.COW = fr.Start, false
			} else {
				w.Off, w.COW = w.File.Base+w.FileOff, true
			}
			// The old pages are given back once the platform no
			// longer maps them (see privatizeLocked): a failed
			// mapping keeps them.
			if err := mm.mapIntoLocked(w, false); err != nil {
				w.Off, w.COW = old.Start, oldCOW
				mm.mf.Free(fresh)
				return err
			}
			mm.mf.ReleaseRange(old)
		}
		mm.coalesceLocked(i, j)
		k = mm.findLocked(min(end, v.End)) - 1
	}
	return nil
}

// cachedPages are the file cache pages of a mapping being made, held
// (cachedFile.Refs) from before MAP_FIXED unmaps what the mapping replaces,
// which often maps the same pages (ld.so reserves a library's whole span
// with one mapping, then maps each segment over it).
type cachedPages struct {
	cf *cachedFile
	// n is how many bytes of the mapping the cache holds: the file's
	// pages; the rest is past the end of the file.
	n uint64
}

// acquireCachedLocked takes the file cache pages of the mapping o of length
// bytes, reading those not cached yet. It returns nil if the file is not
// cacheable (the caller copies it instead).
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) acquireCachedLocked(o *MMapOpts, length uint64) (*cachedPages, error) {
	c, ok := o.File.(cacheableContents)
	if !ok {
		return nil, nil
	}
	key, ok := c.cacheKey()
	if !ok {
		return nil, nil
	}
	n := cachedLength(key, o.Offset, length)
	if n == 0 {
		return nil, nil
	}
	cf, err := mm.mf.files.acquire(mm.mf, key, o.File, o.Offset, n)
	if err != nil {
		return nil, err
	}
	return &cachedPages{cf, n}, nil
}

// extendCachedLocked maps [last.End, end) to the host file pages that
// follow those last maps, as mmapCachedLocked maps a new mapping of them
// (anonymous memory past the end of the file). It reports false, doing
// nothing, if last maps no cached file or the cache can neither read those
// pages (no source: a file cached before a restore) nor holds them all.
//
// Preconditions: mm.mu is held for writing; [last.End, end) is free.
func (mm *MM) extendCachedLocked(last vma, end uint64) (bool, error) {
	cf := last.File
	if cf == nil {
		return false, nil
	}
	off := last.FileOff + last.length()
	n := cachedLength(cf.Key, off, end-last.End)
	if n == 0 {
		return false, nil
	}
	// last holds its own pages, so cf stays cached meanwhile.
	if ok, err := mm.mf.files.extend(mm.mf, cf, off, n); !ok {
		return err != nil, err
	}
	o := MMapOpts{Perms: last.Perms, Private: last.Private, Name: last.Name, Offset: off}
	return true, mm.mmapCachedLocked(last.End, end-last.End, &o, last.MaxPerms, &cachedPages{cf, n})
}

// releaseCached gives back pages taken by acquireCachedLocked that no vma
// took over.
func (mm *MM) releaseCached(cp *cachedPages, o *MMapOpts) {
	mm.mf.files.release(mm.mf, cp.cf, o.Offset, cp.n)
}

// mmapCachedLocked maps [addr, addr+length) to the file o.File, whose
// pages cp holds; the new vma takes over cp's counts, also on failure
// (they are given back then). Pages past the end of the file are anonymous
// memory (Linux raises SIGBUS there; they read as zero here, as before). A
// writable private mapping gets its private copy at once: such mappings
// (data segments) are written soon and mostly, and one copy by the host
// costs less than a write fault per page.
//
// Preconditions: mm.mu is held for writing; [addr, addr+length) is free.
func (mm *MM) mmapCachedLocked(addr, length uint64, o *MMapOpts, maxPerms perms, cp *cachedPages) error {
	n := cp.n
	v := vma{Start: addr, End: addr + n, Off: cp.cf.Base + o.Offset, Perms: o.Perms, MaxPerms: maxPerms,
		Private: o.Private, Name: o.Name, File: cp.cf, FileOff: o.Offset, COW: true}
	fail := func(err error) error {
		mm.releaseVMALocked(&v)
		return err
	}
	if o.Private && o.Perms.allows(permWrite) {
		fr, over, err := mm.mf.allocateForCopy(n)
		if err != nil {
			return fail(unix.ENOMEM)
		}
		err = mm.mf.copyInto(fr.Start, v.fileRange(), over)
		v.Off, v.COW = fr.Start, false
		if err != nil {
			return fail(err)
		}
	}
	if n < length {
		fr, err := mm.mf.Allocate(length - n)
		if err != nil {
			return fail(unix.ENOMEM)
		}
		tail := vma{Start: addr + n, End: addr + length, Off: fr.Start, Perms: o.Perms, MaxPerms: maxPerms,
			Private: o.Private, Name: o.Name}
		if err := mm.insertLocked(tail, o.Precommit); err != nil {
			mm.mf.Free(fr)
			return fail(err)
		}
	}
	if err := mm.insertLocked(v, o.Precommit); err != nil {
		if n < length {
			_ = mm.unmapLocked(addr+n, addr+length)
		}
		return fail(err)
	}
	return nil
}
