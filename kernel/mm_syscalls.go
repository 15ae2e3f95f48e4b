package kernel

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// FileContents is what a file-backed mapping reads its contents from. The
// pages of host files are read into the file cache (mm_filecache.go) and
// shared; those of other files (memfds) are copied into the mapping at mmap
// time. Either way the memory file plus the kernel objects are the whole
// state.
type FileContents interface {
	ReadAt(p []byte, off int64) (int, error)
}

// SharedSource is a file whose own pages a shared mapping maps
// (vfs.File.MapShared).
type SharedSource interface {
	MapShared(off, length uint64, write, populate bool) (vfs.SharedFile, []vfs.PageRun, bool, error)
}

// MMapOpts are the arguments of an mmap.
type MMapOpts struct {
	// Addr is the hint, or the exact address with Fixed.
	Addr   uint64
	Length uint64
	Perms  perms
	// Private is MAP_PRIVATE (copy-on-write semantics for files).
	Private bool
	// Fixed replaces what is at Addr (MAP_FIXED); NoReplace fails with
	// EEXIST instead (MAP_FIXED_NOREPLACE).
	Fixed, NoReplace bool
	// Precommit populates the pages now (MAP_POPULATE).
	Precommit bool
	// File, if not nil, provides the contents from Offset on; the rest of
	// the last page and anything past the end of the file read as zero.
	File   FileContents
	Offset uint64
	// FileWritable says whether the file was opened for writing; a shared
	// mapping of a read-only file can never become writable.
	FileWritable bool
	Name         string
	// Shared, if not nil, is the tmpfs file or memfd a shared mapping maps
	// from Offset on: its own pages, not a copy.
	Shared SharedSource
	// Existing, when not empty, is the memory file range to map instead
	// of fresh memory: it gains the mapping as one more owner (a System V
	// shared memory segment attached by shmat). Length must be its length.
	Existing fileRange
}

// MMap creates a mapping and returns its address. Errors are errnos.
func (mm *MM) MMap(o MMapOpts) (uint64, error) {
	if o.Length == 0 {
		return 0, unix.EINVAL
	}
	length, ok := pageRoundUp(o.Length)
	if !ok || length > mm.maxAddr {
		return 0, unix.ENOMEM
	}
	if o.File != nil && o.Offset&pageMask != 0 {
		return 0, unix.EINVAL
	}
	maxPerms := permAll
	if o.File != nil && !o.Private && !o.FileWritable {
		maxPerms &^= permWrite
		if o.Perms&permWrite != 0 {
			return 0, unix.EACCES
		}
	}

	mm.mu.Lock()
	defer mm.mu.Unlock()
	if o.Shared != nil {
		return mm.mmapSharedLocked(&o, length)
	}
	var cached *cachedPages
	if o.File != nil {
		var err error
		if cached, err = mm.acquireCachedLocked(&o, length); err != nil {
			return 0, err
		}
	}
	if cached == nil && o.Existing.End == o.Existing.Start && mm.replacesLocked(&o, length) {
		return mm.mmapReplacingLocked(&o, length, maxPerms)
	}
	addr, err := mm.placeLocked(&o, length)
	if err != nil {
		if cached != nil {
			mm.releaseCached(cached, &o)
		}
		return 0, err
	}
	if cached != nil {
		if err := mm.mmapCachedLocked(addr, length, &o, maxPerms, cached); err != nil {
			return 0, err
		}
		return addr, nil
	}
	if o.Existing.End > o.Existing.Start {
		return mm.mapExistingLocked(addr, length, o, maxPerms)
	}
	return addr, mm.mmapFreshLocked(addr, length, &o, maxPerms)
}

// mmapFreshLocked maps new memory (filled from o.File if set) at addr,
// where nothing is mapped. Errors are errnos.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) mmapFreshLocked(addr, length uint64, o *MMapOpts, maxPerms perms) error {
	fr, err := mm.mf.Allocate(length)
	if err != nil {
		return unix.ENOMEM
	}
	if o.File != nil {
		if err := fillFromFile(mm.mf, fr, o.File, o.Offset); err != nil {
			mm.mf.Free(fr)
			return err
		}
	}
	v := vma{Start: addr, End: addr + length, Off: fr.Start, Perms: o.Perms, MaxPerms: maxPerms, Private: o.Private, Name: o.Name}
	if err := mm.insertLocked(v, o.Precommit); err != nil {
		mm.mf.Free(fr)
		return err
	}
	return nil
}

// replacesLocked reports whether o, a MAP_FIXED mmap of new memory, lands
// on mappings that mmapReplacingLocked may replace without unmapping them
// from the platform address space first: the new mapping is made over the
// whole range at once (no lazy restore maps it page by page).
//
// Preconditions: mm.mu is held.
func (mm *MM) replacesLocked(o *MMapOpts, length uint64) bool {
	if !o.Fixed || o.NoReplace || o.Addr&pageMask != 0 || mm.as == nil || mm.mf.lazyLoader() != nil {
		return false
	}
	end := o.Addr + length
	if end < o.Addr || o.Addr < mm.minAddr || end > mm.maxAddr {
		return false // placeLocked says why
	}
	return !mm.isFreeLocked(o.Addr, end)
}

// mmapReplacingLocked is MMap's MAP_FIXED of new memory over existing
// mappings (replacesLocked): the old vmas leave the list, the new mapping
// replaces theirs in the platform address space (a fixed mapping there
// replaces what it overlaps: one mapping change, not an unmap and a map,
// each a round trip to a ptrace stub), and only then is their memory
// given back, so that no thread of the process can reach freed memory
// through the old mapping meanwhile. If the new mapping fails, the range
// is unmapped, as placeLocked would have. Errors are errnos.
//
// Preconditions: mm.mu is held for writing; replacesLocked(o, length).
func (mm *MM) mmapReplacingLocked(o *MMapOpts, length uint64, maxPerms perms) (uint64, error) {
	addr, end := o.Addr, o.Addr+length
	i, j := mm.isolateLocked(addr, end)
	old := append([]vma(nil), mm.vmas[i:j]...)
	mm.vmas = append(mm.vmas[:i], mm.vmas[j:]...)
	err := mm.mmapFreshLocked(addr, length, o, maxPerms)
	if err != nil {
		mm.gen++
		if uerr := mm.as.Unmap(addr, length); uerr != nil {
			// The platform may still map the old vmas' memory (see
			// unmapLocked): they stay, and keep it.
			mm.vmas = slices.Insert(mm.vmas, i, old...)
			return 0, fmt.Errorf("unmap [%#x, %#x) after a failed mmap: %w: %w", addr, end, ErrAddressSpace, uerr)
		}
	}
	for k := range old {
		mm.releaseVMALocked(&old[k])
	}
	if err != nil {
		return 0, err
	}
	return addr, nil
}

// placeLocked returns where the mapping o of length bytes goes, unmapping
// what it replaces (MAP_FIXED). Errors are errnos.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) placeLocked(o *MMapOpts, length uint64) (uint64, error) {
	var addr uint64
	switch {
	case o.Fixed || o.NoReplace:
		if o.Addr&pageMask != 0 {
			return 0, unix.EINVAL
		}
		addr = o.Addr
		end := addr + length
		if end < addr || addr < mm.minAddr || end > mm.maxAddr {
			return 0, unix.ENOMEM
		}
		if !mm.isFreeLocked(addr, end) {
			if o.NoReplace {
				return 0, unix.EEXIST
			}
			if err := mm.unmapLocked(addr, end); err != nil {
				return 0, err
			}
		}
	default:
		hint := pageRoundDown(o.Addr)
		if hint != 0 && hint+length > hint && mm.isFreeLocked(hint, hint+length) {
			addr = hint
		} else {
			var err error
			if addr, err = mm.findGapLocked(length); err != nil {
				return 0, err
			}
		}
	}
	return addr, nil
}

// mapExistingLocked maps o.Existing at addr as one more owner of its pages.
//
// Preconditions: mm.mu is held; [addr, addr+length) is free.
func (mm *MM) mapExistingLocked(addr, length uint64, o MMapOpts, maxPerms perms) (uint64, error) {
	fr := o.Existing
	if fr.End-fr.Start != length {
		return 0, unix.EINVAL
	}
	mm.mf.Share(fr)
	v := vma{Start: addr, End: addr + length, Off: fr.Start, Perms: o.Perms, MaxPerms: maxPerms, Name: o.Name}
	if err := mm.insertLocked(v, o.Precommit); err != nil {
		mm.mf.ReleaseRange(fr)
		return 0, err
	}
	return addr, nil
}

// Munmap removes the mappings in [addr, addr+length).
func (mm *MM) Munmap(addr, length uint64) error {
	if addr&pageMask != 0 || length == 0 {
		return unix.EINVAL
	}
	length, ok := pageRoundUp(length)
	if !ok || addr+length < addr {
		return unix.EINVAL
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	return mm.unmapLocked(addr, addr+length)
}

// Mprotect changes the permissions of [addr, addr+length), which must be
// fully mapped.
func (mm *MM) Mprotect(addr, length uint64, p perms) error {
	if addr&pageMask != 0 {
		return unix.EINVAL
	}
	length, ok := pageRoundUp(length)
	end := addr + length
	if !ok || end < addr {
		return unix.ENOMEM
	}
	if length == 0 {
		return nil
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if !mm.coveredLocked(addr, end) {
		return unix.ENOMEM
	}
	for k := mm.findLocked(addr); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		if !mm.vmas[k].MaxPerms.allows(p) {
			return unix.EACCES
		}
	}
	i, j := mm.isolateLocked(addr, end)
	for k := i; k < j; k++ {
		v := &mm.vmas[k]
		if v.Perms == p {
			continue
		}
		v.Perms = p
		if err := mm.mapIntoLocked(v, false); err != nil {
			return err
		}
	}
	mm.coalesceLocked(i, j)
	return nil
}

// coveredLocked reports whether vmas cover [start, end) without holes.
//
// Preconditions: mm.mu is held.
func (mm *MM) coveredLocked(start, end uint64) bool {
	pos := start
	for k := mm.findLocked(start); k < len(mm.vmas) && pos < end; k++ {
		if mm.vmas[k].Start > pos {
			return false
		}
		pos = mm.vmas[k].End
	}
	return pos >= end
}

// Mremap flags (linux/mman.h).
const (
	mremapMayMove   = 1
	mremapFixed     = 2
	mremapDontUnmap = 4
)

// Mremap resizes and possibly moves the mapping at [oldAddr,
// oldAddr+oldSize) and returns its new address.
func (mm *MM) Mremap(oldAddr, oldSize, newSize uint64, flags int, newAddr uint64) (uint64, error) {
	if oldAddr&pageMask != 0 || flags&^(mremapMayMove|mremapFixed|mremapDontUnmap) != 0 {
		return 0, unix.EINVAL
	}
	if flags&mremapFixed != 0 && (flags&mremapMayMove == 0 || newAddr&pageMask != 0) {
		return 0, unix.EINVAL
	}
	if flags&mremapDontUnmap != 0 {
		return 0, unix.EINVAL
	}
	oldSize, ok1 := pageRoundUp(oldSize)
	newSize, ok2 := pageRoundUp(newSize)
	if !ok1 || !ok2 || newSize == 0 || oldSize == 0 {
		// oldSize 0 duplicates a shared mapping in Linux; not supported.
		return 0, unix.EINVAL
	}
	oldEnd := oldAddr + oldSize
	if oldEnd < oldAddr {
		return 0, unix.EINVAL
	}

	mm.mu.Lock()
	defer mm.mu.Unlock()
	v := mm.vmaAtLocked(oldAddr)
	if v == nil || !mm.coveredLocked(oldAddr, oldEnd) {
		return 0, unix.EFAULT
	}
	if newSize > oldSize && mm.vmaAtLocked(oldEnd-1).Special {
		// Linux's vDSO mappings cannot grow either (VM_DONTEXPAND).
		return 0, unix.EFAULT
	}

	if flags&mremapFixed == 0 {
		if newSize <= oldSize {
			if err := mm.unmapLocked(oldAddr+newSize, oldEnd); err != nil {
				return 0, err
			}
			return oldAddr, nil
		}
		// Grow in place if the pages after the old range are free.
		last := mm.vmaAtLocked(oldEnd - 1)
		if oldEnd == last.End && mm.isFreeLocked(oldEnd, oldAddr+newSize) {
			if err := mm.extendLocked(*last, oldAddr+newSize); err != nil {
				return 0, err
			}
			return oldAddr, nil
		}
		if flags&mremapMayMove == 0 {
			return 0, unix.ENOMEM
		}
	}

	// Move: pick the destination, carry the old vmas over (their memory
	// file ranges move with them, nothing is copied), then extend.
	var dst uint64
	if flags&mremapFixed != 0 {
		dst = newAddr
		dstEnd := dst + newSize
		if dstEnd < dst || dst < mm.minAddr || dstEnd > mm.maxAddr {
			return 0, unix.EINVAL
		}
		if dst < oldEnd && oldAddr < dstEnd {
			return 0, unix.EINVAL
		}
		if err := mm.unmapLocked(dst, dstEnd); err != nil {
			return 0, err
		}
	} else {
		var err error
		if dst, err = mm.findGapLocked(newSize); err != nil {
			return 0, err
		}
	}
	keep := min(oldSize, newSize)
	if err := mm.unmapLocked(oldAddr+keep, oldEnd); err != nil {
		return 0, err
	}
	i, j := mm.isolateLocked(oldAddr, oldAddr+keep)
	moved := append([]vma(nil), mm.vmas[i:j]...)
	mm.vmas = append(mm.vmas[:i], mm.vmas[j:]...)
	if mm.as != nil {
		if err := mm.as.Unmap(oldAddr, keep); err != nil {
			return 0, fmt.Errorf("unmap moved range: %w: %w", ErrAddressSpace, err)
		}
	}
	for _, mv := range moved {
		mv.Start = mv.Start - oldAddr + dst
		mv.End = mv.End - oldAddr + dst
		if err := mm.insertLocked(mv, false); err != nil {
			return 0, err
		}
	}
	if newSize > keep {
		last := *mm.vmaAtLocked(dst + keep - 1)
		if err := mm.extendLocked(last, dst+newSize); err != nil {
			return 0, err
		}
	}
	return dst, nil
}

// extendLocked maps fresh memory in [last.End, end) with last's attributes,
// merging into last when the memory file allows. A shared mapping of a
// tmpfs file or memfd grows over the file's next pages instead, and a
// mapping of a host file over the file's next pages as an mmap of them
// would map them.
//
// Preconditions: mm.mu is held for writing; [last.End, end) is free.
func (mm *MM) extendLocked(last vma, end uint64) error {
	if last.Shm != nil {
		return mm.extendSharedLocked(last, end)
	}
	if ok, err := mm.extendCachedLocked(last, end); ok || err != nil {
		return err
	}
	fr, err := mm.mf.Allocate(end - last.End)
	if err != nil {
		return unix.ENOMEM
	}
	ext := last
	ext.Start, ext.End, ext.Off = last.End, end, fr.Start
	// Past a file mapping the new pages are anonymous.
	ext.File, ext.FileOff, ext.COW, ext.Shm = nil, 0, false, nil
	if err := mm.insertLocked(ext, false); err != nil {
		mm.mf.Free(fr)
		return err
	}
	return nil
}

// Brk sets the program break to addr if possible and returns the break in
// effect afterwards (Linux semantics: failure returns the old break).
func (mm *MM) Brk(addr uint64) uint64 {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if addr < mm.brkStart {
		return mm.brk
	}
	oldEnd, _ := pageRoundUp(mm.brk)
	newEnd, ok := pageRoundUp(addr)
	if !ok {
		return mm.brk
	}
	switch {
	case newEnd > oldEnd:
		if !mm.isFreeLocked(oldEnd, newEnd) || newEnd > mm.mmapTop {
			return mm.brk
		}
		fr, err := mm.mf.Allocate(newEnd - oldEnd)
		if err != nil {
			return mm.brk
		}
		v := vma{Start: oldEnd, End: newEnd, Off: fr.Start, Perms: permRead | permWrite, MaxPerms: permAll, Private: true, Name: "[heap]"}
		if err := mm.insertLocked(v, false); err != nil {
			mm.mf.Free(fr)
			return mm.brk
		}
	case newEnd < oldEnd:
		if err := mm.unmapLocked(newEnd, oldEnd); err != nil {
			return mm.brk
		}
	}
	mm.brk = addr
	return addr
}

// setBrkStart places the heap at addr (page aligned up), before any brk.
func (mm *MM) setBrkStart(addr uint64) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	a, _ := pageRoundUp(addr)
	mm.brkStart, mm.brk = a, a
}

// Madvise advice values the MM acts on.
const (
	madvDontNeed = 4
	madvFree     = 8
	madvRemove   = 9
)

// Madvise applies advice to [addr, addr+length). MADV_DONTNEED, MADV_FREE
// and MADV_REMOVE zero the private anonymous mappings in the range (their
// memory is given back) and make private file mappings map the file's
// pages again; shared mappings keep their contents, as with Linux's shared
// memory (except MADV_REMOVE, which punches the hole into anonymous shared
// memory). Every other advice is accepted and ignored.
func (mm *MM) Madvise(addr, length uint64, advice int) error {
	if addr&pageMask != 0 {
		return unix.EINVAL
	}
	length, ok := pageRoundUp(length)
	end := addr + length
	if !ok || end < addr {
		return unix.EINVAL
	}
	if length == 0 {
		return nil
	}
	switch advice {
	case madvDontNeed, madvFree, madvRemove:
	default:
		return nil
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if !mm.coveredLocked(addr, end) {
		return unix.ENOMEM
	}
	if l := mm.mf.lazyLoader(); l != nil && l.base != nil {
		// The stub must stop mapping the base's pages there before they
		// read as zero (memory_base.go).
		if err := mm.freshenLocked(l, addr, length); err != nil {
			return err
		}
	}
	for k := mm.findLocked(addr); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		v := &mm.vmas[k]
		if v.Special || v.Beyond || (!v.Private && advice != madvRemove) || v.File != nil || v.COW {
			continue
		}
		s, e := max(v.Start, addr), min(v.End, end)
		mm.mf.Decommit(fileRange{v.Off + (s - v.Start), v.Off + (e - v.Start)})
	}
	// Private file pages read the file again, anonymous pages shared with
	// a forked process become fresh zero pages; cached file pages
	// themselves are never given back while mapped.
	return mm.dropPrivatePagesLocked(addr, end)
}
