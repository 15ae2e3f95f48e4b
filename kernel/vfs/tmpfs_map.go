package vfs

import (
	"slices"

	"golang.org/x/sys/unix"
)

// SharedFile is a file whose own pages a shared mapping (MAP_SHARED)
// maps: a tmpfs file or a memfd. The kernel keeps one in each vma of such
// a mapping, to show the file in /proc/PID/maps and to find the writable
// mappings of a file that F_SEAL_WRITE refuses to seal.
type SharedFile interface {
	// MapIdent returns the device minor number and inode number of the
	// file (its device major is 0).
	MapIdent() (minor uint32, ino uint64)
	// MapRuns is MapShared's work for a mapping that exists: the runs of
	// pages that hold [off, off+length) (page aligned), up to the end of
	// the file (rounded up to a page) and no further. Holes of the file
	// have none, unless alloc: then they are allocated first (a first
	// touch), and every page up to the end of the file is in a run.
	// Errors (alloc only): ENOSPC when the filesystem's size is reached,
	// ENOMEM when memory is exhausted.
	MapRuns(off, length uint64, alloc bool) ([]PageRun, error)
}

// ShrinkNotifier is implemented by the Pages of a filesystem whose shared
// mappings must hear that a file they map was cut short (truncate): the
// kernel's memory file, which tells every address space, so that the
// pages past the new end raise SIGBUS. It is called without the
// filesystem's lock held.
type ShrinkNotifier interface {
	FileShrunk(f SharedFile, size int64)
}

// MapIdent implements SharedFile.
func (n *tmpNode) MapIdent() (uint32, uint64) { return n.fs.minor, n.ino }

// MapRuns implements SharedFile.
func (n *tmpNode) MapRuns(off, length uint64, alloc bool) ([]PageRun, error) {
	t := n.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mapRunsLocked(n, off, length, alloc)
}

// mapRunsLocked returns the runs of pages that hold n's bytes [off,
// off+length) up to the end of the file, allocating its holes there first
// if alloc.
//
// Preconditions: t.mu is held.
func (t *tmpfs) mapRunsLocked(n *tmpNode, off, length uint64, alloc bool) ([]PageRun, error) {
	eof := (uint64(n.size) + pageSize - 1) / pageSize * pageSize
	first, last := off/pageSize, min(off+length, max(eof, off))/pageSize
	if alloc {
		if err := t.fillHolesLocked(n, first, last); err != nil {
			return nil, err
		}
	}
	n.mapped = true
	var runs []PageRun
	for _, i := range t.pageIndexesLocked(n, first, last) {
		p := n.pages[i]
		if k := len(runs) - 1; k >= 0 && runs[k].Off+runs[k].Length == p && runs[k].FileOff+runs[k].Length == i*pageSize {
			runs[k].Length += pageSize
			continue
		}
		runs = append(runs, PageRun{FileOff: i * pageSize, Off: p, Length: pageSize})
	}
	return runs, nil
}

// pageIndexesLocked returns the indexes of n's allocated pages in [first,
// last), in order. A range much larger than the file's allocation (a
// sparse file mapped whole) is answered from the allocated pages.
//
// Preconditions: t.mu is held.
func (t *tmpfs) pageIndexesLocked(n *tmpNode, first, last uint64) []uint64 {
	var idx []uint64
	if last <= first {
		return nil
	}
	if last-first <= 2*uint64(len(n.pages)) {
		for i := first; i < last; i++ {
			if _, ok := n.pages[i]; ok {
				idx = append(idx, i)
			}
		}
		return idx
	}
	for i := range n.pages {
		if i >= first && i < last {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return idx
}

// noteShrinkLocked records that mapped file n was cut to size, for
// unlockNotify to tell its mappings.
//
// Preconditions: t.mu is held.
func (t *tmpfs) noteShrinkLocked(n *tmpNode, size int64) {
	if _, ok := t.pages.(ShrinkNotifier); ok {
		t.shrunk = append(t.shrunk, shrink{n, size})
	}
}

// shrink is a file cut short while mapped, waiting for unlockNotify.
type shrink struct {
	n    *tmpNode
	size int64
}

// unlockNotify releases t.mu, then tells the Pages (ShrinkNotifier) of
// the mapped files cut short under it.
func (t *tmpfs) unlockNotify() {
	todo := t.shrunk
	t.shrunk = nil
	t.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	sn := t.pages.(ShrinkNotifier)
	for _, s := range todo {
		sn.FileShrunk(s.n, s.size)
	}
}

// PageRun is a run of a file's pages that lie one after another in the
// filesystem's Pages: Length bytes of the file from FileOff are the bytes
// of Pages from Off.
type PageRun struct {
	FileOff, Off, Length uint64
}

// MapShared prepares [off, off+length) of f (page aligned) for a shared
// mapping and returns the file, the runs of pages that hold the range up to
// the end of the file (rounded up to a page), in order, and whether the
// mapping may ever be writable. The file's holes have no pages (nor has
// the mapping past the end of the file): they are allocated at the
// mapping's first touch of them (MapRuns with alloc), or now if populate
// (MAP_POPULATE), holes next to each other in one run. From then on the
// file keeps its pages for as long as it exists (tmpNode.mapped); the
// caller adds its own count to each run (the pages outlive the file while
// mapped).
//
// Errors: ENODEV for anything but a tmpfs file or memfd, EPERM for a
// writable mapping of a file sealed against writes, ENOMEM when memory (or
// the filesystem's size) is exhausted.
func (f *File) MapShared(off, length uint64, write, populate bool) (SharedFile, []PageRun, bool, error) {
	m, ok := f.impl.(*tmpfsFile)
	if !ok || m.node.fileType() != unix.S_IFREG {
		return nil, nil, false, unix.ENODEV
	}
	t := m.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	n := m.node
	sealed := n.seals&(sealWrite|sealFutureWrite) != 0
	if write && sealed {
		return nil, nil, false, unix.EPERM
	}
	runs, err := t.mapRunsLocked(n, off, length, populate)
	if err != nil {
		return nil, nil, false, unix.ENOMEM
	}
	return n, runs, !sealed, nil
}

// fillHolesLocked allocates every missing page of n in [first, last),
// each run of neighbouring holes in one allocation. Errors: ENOSPC past the
// filesystem's size, ENOMEM when memory is exhausted.
//
// Preconditions: t.mu is held.
func (t *tmpfs) fillHolesLocked(n *tmpNode, first, last uint64) error {
	for from := first; ; {
		i, j := n.holeRun(from, last)
		if i == last {
			return nil
		}
		size := (j - i) * pageSize
		if t.used+size > t.limit || t.used+size < t.used {
			return unix.ENOSPC
		}
		if err := t.allocRunLocked(n, i, j); err != nil {
			return unix.ENOMEM
		}
		from = j
	}
}

// holeRun returns the first run of missing pages of n in [from, last):
// its first page and the one after it, or last, last if there is none.
func (n *tmpNode) holeRun(from, last uint64) (uint64, uint64) {
	i := from
	for i < last {
		if _, ok := n.pages[i]; !ok {
			break
		}
		i++
	}
	j := i
	for j < last {
		if _, ok := n.pages[j]; ok {
			break
		}
		j++
	}
	return i, j
}

// allocRunLocked gives n new pages [i, j), in one allocation, and counts
// them as used.
//
// Preconditions: t.mu is held; the pages are missing.
func (t *tmpfs) allocRunLocked(n *tmpNode, i, j uint64) error {
	size := (j - i) * pageSize
	var base uint64
	var err error
	if j-i == 1 {
		base, err = t.newPageLocked()
	} else {
		base, err = t.pagesLocked().AllocatePages(size)
	}
	if err != nil {
		return err
	}
	if n.pages == nil {
		n.pages = map[uint64]uint64{}
	}
	for k := i; k < j; k++ {
		n.pages[k] = base + (k-i)*pageSize
	}
	t.used += size
	return nil
}
