package kernel

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Freed pages kept for copies. A copy inside the memory file (a fork's
// eager copies, a copy-on-write window, a data segment copied from the
// file cache) into fresh pages costs the host far more than the bytes
// copied: each destination page is allocated (and, through a mapping,
// cleared) by the host, and punched out again when it is freed; the fork
// and exec loop frees and copies the same few hundred KiB an iteration.
// Free therefore keeps up to keepFreedMax bytes of the pages it frees that
// hold data, of ranges up to keepRangeMax, as they are: not decommitted.
// They stay in the free list, and a record of them (kept) says that they
// may hold old data. A copy that writes every byte of its destination
// takes its range from them (or one that starts with them, holes after:
// allocateForCopy) and overwrites it (copyOver): through the sentry's
// mapping where the source has pages, with pread where it has holes,
// which reads them as zeros without allocating them. The destination's
// pages are then already there, and mapped in the sentry too when a copy
// wrote them before. Allocate prefers free ranges without kept pages, and
// decommits the kept pages of a range it does hand out, so that a fresh
// allocation still reads as zero.
//
// Kept pages are free memory to everything else: the limit (Limits.Memory)
// does not count them, a save neither writes them (Allocated excludes
// them) nor records them (the free list holds them; a restored file's free
// ranges are holes). A lazy restore keeps none, since its loader may
// still write what a range held in the image; nor does Free while dirty
// tracking is on: a page sent to a migration's target (or an incremental
// image) before it was freed must be decommitted, a write that the next
// round sends as zeros, for the target's free pages to read as zero. (A
// background free that started before tracking did is over before the
// first round reads Allocated, which waits for it.) Pages kept before
// tracking started were free at its start, never sent, and are written
// (willWrite) or decommitted when they are allocated again.

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

// keepScanPages is how many pages Free looks at with one mincore, from
// the next page of data (SEEK_DATA) of a freed range, and keepScans how
// many times at most, for pages to keep: beyond, a range is decommitted
// unseen.
const (
	keepScanPages = 64
	keepScans     = 16
)

// keepRangeMax is the longest freed range Free keeps pages of. Longer ones
// (a stack, a heap) are mostly decommitted, and pages kept in them would
// leave their ranges no fit for Allocate's next range that long (the next
// program's stack), which would take them back (decommit them).
const keepRangeMax = 1 << 20

// reserveKept returns the runs of pages of the freed range r that Free
// keeps, and counts them as kept: if r is no longer than keepRangeMax,
// those of its pages that hold data (a run of holes would make a copy
// over it allocate its pages, as into fresh ones), as long as there is
// room. Holes are skipped with SEEK_DATA (a freed stack
// is mostly holes), data pages found with mincore on the sentry's
// mapping, keepScanPages at a time.
func (f *MemoryFile) reserveKept(r fileRange) []fileRange {
	if r.Length() > keepRangeMax {
		return nil
	}
	f.mu.Lock()
	room := uint64(0)
	if f.lazy.Load() == nil && !f.dirty.on.Load() && f.keptBytes < f.keepMax {
		// Counted at once, and no more than r may use, so that frees
		// at the same time share the room.
		room = min(f.keepMax-f.keptBytes, r.Length()&^pageMask)
		f.keptBytes += room
	}
	f.mu.Unlock()
	if room == 0 {
		return nil
	}
	var runs []fileRange
	var vec [keepScanPages]byte
	used := uint64(0)
scan:
	for pos, scans := r.Start, 0; pos < r.End && scans < keepScans; scans++ {
		data, err := unix.Seek(f.fd, int64(pos), unix.SEEK_DATA)
		if err != nil || uint64(data) >= r.End {
			break // ENXIO: only holes to the end of the file
		}
		pos = pageRoundDown(uint64(data))
		n := min((r.End-pos)/pageSize, keepScanPages)
		if err := mincore(f.slice(fileRange{pos, pos + n*pageSize}), vec[:n]); err != nil {
			break // keep what was found
		}
		for i := range n {
			if vec[i]&1 == 0 {
				continue
			}
			p := pos + i*pageSize
			if k := len(runs); k > 0 && runs[k-1].End == p {
				runs[k-1].End += pageSize
			} else {
				runs = append(runs, fileRange{p, p + pageSize})
			}
			if used += pageSize; used == room {
				break scan
			}
		}
		pos += n * pageSize
	}
	f.mu.Lock()
	f.keptBytes -= room - used
	f.mu.Unlock()
	return runs
}

// keepLocked records r, a free run of pages counted by reserveKept, as kept,
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

// takeKeptLocked allocates a range of length bytes over kept pages, if
// the limit allows it: the first run of kept pages that long, or else the
// first free range that long that starts with a run of kept pages (the
// rest holes, which the copy allocates).
//
// Preconditions: f.mu is held; length is a positive multiple of pageSize.
func (f *MemoryFile) takeKeptLocked(length uint64) (fileRange, bool) {
	if f.lazy.Load() != nil || len(f.kept) == 0 {
		return fileRange{}, false
	}
	if _, over := f.overLimitLocked(length); over {
		return fileRange{}, false // Allocate waits for memory being freed, or fails
	}
	take := func(r fileRange) (fileRange, bool) {
		f.carveLocked(r)
		f.unkeepLocked(r) // overwritten, not decommitted
		return r, true
	}
	for _, k := range f.kept {
		if k.Length() >= length {
			return take(fileRange{k.Start, k.Start + length})
		}
	}
	for _, k := range f.kept {
		i := sort.Search(len(f.free), func(i int) bool { return f.free[i].End > k.Start })
		if r := (fileRange{k.Start, k.Start + length}); r.End <= f.free[i].End {
			return take(r)
		}
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
// allocated range of the same length, disjoint, that may hold any data.
// Runs of src's pages that the file has (mincore on the sentry's mapping)
// are copied through the mapping; the others with pread from the file
// into the mapping of dst, which reads holes as zeros without allocating
// them in src (and pages swapped out as they were).
func (f *MemoryFile) copyOver(dst uint64, src fileRange) error {
	if err := f.ensureLoaded(src.Start, src.End); err != nil {
		return err
	}
	to, err := f.Bytes(dst, src.Length())
	if err != nil {
		return err
	}
	f.willWrite(fileRange{dst, dst + src.Length()})
	from := f.slice(src)
	var vec [copyOverScanPages]byte
	for pos := uint64(0); pos < src.Length(); {
		n := min((src.Length()-pos)/pageSize, copyOverScanPages)
		if mincore(from[pos:pos+n*pageSize], vec[:n]) != nil {
			clear(vec[:n]) // pread them all
		}
		for i := uint64(0); i < n; {
			j := i + 1
			for j < n && vec[j]&1 == vec[i]&1 {
				j++
			}
			run := fileRange{src.Start + pos + i*pageSize, src.Start + pos + j*pageSize}
			if vec[i]&1 != 0 {
				copy(to[run.Start-src.Start:], f.slice(run))
			} else if err := f.preadInto(to[run.Start-src.Start:run.End-src.Start], run.Start); err != nil {
				return fmt.Errorf("memory file copy [%#x, %#x) over %#x: %w", src.Start, src.End, dst, err)
			}
			i = j
		}
		pos += n * pageSize
	}
	return nil
}

// copyOverScanPages is how many pages of its source copyOver looks at with
// one mincore.
const copyOverScanPages = 256

// preadInto fills b with the file's bytes from off.
func (f *MemoryFile) preadInto(b []byte, off uint64) error {
	for done := 0; done < len(b); {
		n, err := unix.Pread(f.fd, b[done:], int64(off)+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("stopped short at %#x: %w", off+uint64(done), unix.EIO)
		}
		done += n
	}
	return nil
}
