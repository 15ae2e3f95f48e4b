package kernel

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Freed pages kept for copies. A copy inside the memory file (a fork's
// eager copies, a copy-on-write window, a data segment copied from the
// file cache) into fresh pages costs the host far more than the bytes
// copied: each destination page is allocated (and, through a mapping,
// cleared) by the host, and punched out again when it is freed; the
// fork and exec loop frees and copies the same few hundred KiB an
// iteration. Free therefore keeps up to keepFreedMax bytes of the pages
// it frees as they are, not decommitted: they stay in the free list, and
// a record of them (kept) says that they may hold old data. A copy that
// writes every byte of its destination takes its range from them
// (allocateForCopy) and overwrites their pages with pread through the
// sentry's mapping (copyOver), which reads the source's holes as zeros
// without allocating them, and writes pages that are already there
// (mapped in the sentry too, when a copy wrote them before). Allocate
// prefers free ranges that were decommitted, and decommits the kept pages
// of a range it does hand out, so that a fresh allocation still reads as
// zero.
//
// Kept pages are free memory to everything else: the limit (Limits.Memory)
// does not count them, a save neither writes them (Allocated excludes
// them) nor records them (the free list holds them; a restored file's free
// ranges are holes), and a lazy restore keeps none, since its loader may
// still write what a range held in the image.

// keepFreedMax is the most bytes of freed pages the memory file keeps for
// copies: a fork's eager copies (eagerCopyBudget) with room for the
// copy-on-write windows and data segments around it.
const keepFreedMax = 2 * eagerCopyBudget

// copyCounts count the copies inside the memory file (copyInto). Every
// field is accessed atomically.
type copyCounts struct {
	// bytes counts the bytes of source ranges copied, over those of
	// them copied over kept pages (the rest went to fresh ones).
	bytes, over atomic.Uint64
}

// reserveKept returns how many bytes from the start of a freed range of
// length bytes Free may keep, and counts them as kept.
func (f *MemoryFile) reserveKept(length uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lazy.Load() != nil || f.keptBytes >= f.keepMax {
		return 0
	}
	k := min(length, f.keepMax-f.keptBytes) &^ pageMask
	f.keptBytes += k
	return k
}

// keepLocked records r, a free range counted by reserveKept, as kept,
// merged with its neighbours.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) keepLocked(r fileRange) {
	i, _ := slices.BinarySearchFunc(f.kept, r.Start, func(k fileRange, s uint64) int { return cmp.Compare(k.Start, s) })
	if i < len(f.kept) && f.kept[i].Start == r.End {
		r.End = f.kept[i].End
		f.kept = slices.Delete(f.kept, i, i+1)
	}
	if i > 0 && f.kept[i-1].End == r.Start {
		f.kept[i-1].End = r.End
		return
	}
	f.kept = slices.Insert(f.kept, i, r)
}

// unkeepLocked forgets the kept pages in r and returns them, for the
// caller to decommit.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) unkeepLocked(r fileRange) []fileRange {
	var out []fileRange
	for i := 0; i < len(f.kept); {
		k := f.kept[i]
		if k.End <= r.Start || k.Start >= r.End {
			i++
			continue
		}
		o := fileRange{max(k.Start, r.Start), min(k.End, r.End)}
		out = append(out, o)
		f.keptBytes -= o.Length()
		var rest []fileRange
		if k.Start < o.Start {
			rest = append(rest, fileRange{k.Start, o.Start})
		}
		if o.End < k.End {
			rest = append(rest, fileRange{o.End, k.End})
		}
		f.kept = slices.Replace(f.kept, i, i+1, rest...)
		i += len(rest)
	}
	return out
}

// firstClearFitLocked returns the first range of length bytes in the free
// list that holds no kept pages, if there is one.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) firstClearFitLocked(length uint64) (fileRange, bool) {
	j := 0
	for _, fr := range f.free {
		pos := fr.Start
		for ; j < len(f.kept) && f.kept[j].Start < fr.End; j++ {
			if f.kept[j].Start >= pos+length {
				return fileRange{pos, pos + length}, true
			}
			pos = max(pos, f.kept[j].End)
		}
		if fr.End >= pos+length {
			return fileRange{pos, pos + length}, true
		}
	}
	return fileRange{}, false
}

// allocateForCopy returns a page-aligned range of length bytes (rounded up
// to pages) for a copy that writes every byte of it (copyInto), and
// whether it holds kept pages with old data (then the copy must be
// copyOver) rather than zeros. Its errors are Allocate's.
func (f *MemoryFile) allocateForCopy(length uint64) (fileRange, bool, error) {
	if n, ok := pageRoundUp(length); ok && n > 0 {
		f.mu.Lock()
		r, taken := f.takeKeptLocked(n)
		f.mu.Unlock()
		if taken {
			return r, true, nil
		}
	}
	r, err := f.Allocate(length)
	return r, false, err
}

// takeKeptLocked allocates the first length bytes of the first run of
// kept pages that long, if there is one and the limit allows it.
//
// Preconditions: f.mu is held; length is a positive multiple of pageSize.
func (f *MemoryFile) takeKeptLocked(length uint64) (fileRange, bool) {
	if f.lazy.Load() != nil {
		return fileRange{}, false
	}
	if used := f.allocatedLocked(); f.limit != 0 && f.limit < memoryFileReserve && (used+length > f.limit || used+length < used) {
		return fileRange{}, false // Allocate waits for memory being freed, or fails
	}
	for i, k := range f.kept {
		if k.Length() < length {
			continue
		}
		r := fileRange{k.Start, k.Start + length}
		if k.Length() == length {
			f.kept = slices.Delete(f.kept, i, i+1)
		} else {
			f.kept[i].Start = r.End
		}
		f.keptBytes -= length
		f.carveLocked(r)
		return r, true
	}
	return fileRange{}, false
}

// copyInto copies the data of the allocated range src to dst, a range of
// the same length from allocateForCopy (over reports whether it holds
// kept pages): copyOver if it does, copyData if it reads as zero.
func (f *MemoryFile) copyInto(dst uint64, src fileRange, over bool) error {
	f.copies.bytes.Add(src.Length())
	if !over {
		return f.copyData(dst, src)
	}
	f.copies.over.Add(src.Length())
	return f.copyOver(dst, src)
}

// copyOver writes the contents of the allocated range src over dst, an
// allocated range of the same length, disjoint, that may hold any data:
// with pread from the file into the sentry's mapping of dst, which reads
// src's holes as zeros without allocating them in src.
func (f *MemoryFile) copyOver(dst uint64, src fileRange) error {
	if err := f.ensureLoaded(src.Start, src.End); err != nil {
		return err
	}
	to, err := f.Bytes(dst, src.Length())
	if err != nil {
		return err
	}
	f.willWrite(fileRange{dst, dst + src.Length()})
	for done := 0; done < len(to); {
		n, err := unix.Pread(f.fd, to[done:], int64(src.Start)+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("memory file copy [%#x, %#x) over %#x: %w", src.Start, src.End, dst, err)
		}
		if n == 0 {
			return fmt.Errorf("memory file copy [%#x, %#x) over %#x: stopped short at %#x: %w", src.Start, src.End, dst, src.Start+uint64(done), unix.EIO)
		}
		done += n
	}
	return nil
}
