package vfs

import (
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Pages is where a tmpfs keeps file data, one page (4096 bytes) per
// allocation: the kernel's MemoryFile, so that the data is saved, loaded
// and compressed with the application's memory and counts against its
// limit. A fresh page reads as zero.
//
//   - AllocatePages returns the offset of n new bytes (a multiple of the
//     page size), or an error when memory is exhausted (the write then
//     fails with ENOSPC).
//   - FreePages drops the filesystem's hold on n bytes at off, which it
//     allocated (part of one allocation, or of several that lie next to
//     each other); they are freed
//     once no shared mapping holds them either.
//   - PageBytes returns the sentry's view of allocated bytes; it stays
//     valid until they are freed.
//
// Implementations are savable (the tmpfs saves a reference) and safe for
// concurrent use.
type Pages interface {
	AllocatePages(n uint64) (uint64, error)
	FreePages(off, n uint64)
	PageBytes(off, n uint64) ([]byte, error)
}

// pageSize is the unit in which a tmpfs allocates and counts file data.
const pageSize = 4096

// heapPages is the Pages of a tmpfs that was given none (vfs used without
// a kernel, as in its tests): pages in Go memory, saved in the state
// stream.
//
// +stateify savable
type heapPages struct {
	// mu protects pages and next. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pages are the allocated pages by offset.
	pages map[uint64][]byte
	// next is the offset of the next allocation.
	next uint64
}

func (h *heapPages) AllocatePages(n uint64) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pages == nil {
		h.pages = map[uint64][]byte{}
	}
	off := h.next
	h.next += n
	for p := off; p < off+n; p += pageSize {
		h.pages[p] = make([]byte, pageSize)
	}
	return off, nil
}

func (h *heapPages) FreePages(off, n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := off; p < off+n; p += pageSize {
		delete(h.pages, p)
	}
}

func (h *heapPages) PageBytes(off, n uint64) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.pages[off]
	if !ok || uint64(len(b)) < n {
		return nil, unix.EFAULT
	}
	return b[:n], nil
}

// pagesLocked returns the filesystem's Pages.
//
// Preconditions: t.mu is held.
func (t *tmpfs) pagesLocked() Pages {
	if t.pages == nil {
		t.pages = &heapPages{}
	}
	return t.pages
}

// pageLocked returns page i of regular file n, allocating it if alloc
// (ENOSPC past the size limit or when memory is exhausted). It returns
// nil for a page that is a hole when !alloc.
//
// Preconditions: t.mu is held.
func (t *tmpfs) pageLocked(n *tmpNode, i uint64, alloc bool) ([]byte, error) {
	off, ok := n.pages[i]
	if !ok {
		if !alloc {
			return nil, nil
		}
		if t.used+pageSize > t.limit {
			return nil, unix.ENOSPC
		}
		var err error
		if off, err = t.newPageLocked(); err != nil {
			return nil, unix.ENOSPC
		}
		if n.pages == nil {
			n.pages = map[uint64]uint64{}
		}
		n.pages[i] = off
		t.used += pageSize
	}
	b, err := t.pagesLocked().PageBytes(off, pageSize)
	if err != nil {
		return nil, unix.EIO
	}
	return b, nil
}

// freePageLocked releases page i of n if it is allocated.
//
// Preconditions: t.mu is held.
func (t *tmpfs) freePageLocked(n *tmpNode, i uint64) {
	if off, ok := n.pages[i]; ok {
		delete(n.pages, i)
		t.used -= pageSize
		n.taken++
		if n.copies > 0 {
			n.held = append(n.held, off)
			return
		}
		t.releaseLocked(n, []uint64{off})
	}
}

// freePagesFromLocked releases every page of n from index first on.
//
// Preconditions: t.mu is held.
func (t *tmpfs) freePagesFromLocked(n *tmpNode, first uint64) {
	var offs []uint64
	for i, off := range n.pages {
		if i >= first {
			offs = append(offs, off)
			delete(n.pages, i)
		}
	}
	if len(offs) == 0 {
		return
	}
	t.used -= uint64(len(offs)) * pageSize
	n.taken++
	if n.copies > 0 {
		n.held = append(n.held, offs...)
		return
	}
	t.releaseLocked(n, offs)
}

// spareMax is the most pages a tmpfs keeps spare (tmpfs.spare); to make
// room, all but the spareKeep newest are given back at once.
const (
	spareMax  = 64
	spareKeep = 16
)

// spareFill is how many pages a tmpfs that keeps spare pages takes from
// the Pages at once when it has none spare: the first for the file that
// needs one, the others spare, all faulted in with one call.
const spareFill = 16

// newPageLocked returns the offset of a page for a file: a spare one if
// there is one, else a new one of the Pages. Either reads as zero.
//
// Preconditions: t.mu is held.
func (t *tmpfs) newPageLocked() (uint64, error) {
	if k := len(t.spare); k > 0 {
		off := t.spare[k-1]
		t.spare = t.spare[:k-1]
		return off, nil
	}
	p := t.pagesLocked()
	if t.keepSpare {
		if base, err := p.AllocatePages(spareFill * pageSize); err == nil {
			if _, heap := p.(*heapPages); !heap {
				if b, err := p.PageBytes(base, spareFill*pageSize); err == nil {
					_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE) // an optimization only
				}
			}
			// Taken from the end: the next files get the next pages.
			for off := base + (spareFill-1)*pageSize; off > base; off -= pageSize {
				t.spare = append(t.spare, off)
			}
			return base, nil
		}
	}
	return p.AllocatePages(pageSize)
}

// releaseLocked gives back the pages at offs, which file n held: as
// spare pages, cleared, as far as there is room and nothing else can hold
// them (the tmpfs keeps spare pages and n was never mapped shared), the
// others to the Pages. Spare pages that must make room go back to the
// Pages together, neighbours in one run: removing many small files one
// after another costs a few calls, not one per file.
//
// Preconditions: t.mu is held; no copy of n runs (n.copies is 0).
func (t *tmpfs) releaseLocked(n *tmpNode, offs []uint64) {
	if !t.keepSpare || n.mapped {
		t.freeOffsLocked(offs)
		return
	}
	if len(t.spare)+len(offs) > spareMax && len(t.spare) > spareKeep {
		old := len(t.spare) - spareKeep
		t.freeOffsLocked(t.spare[:old])
		t.spare = append(t.spare[:0], t.spare[old:]...)
	}
	p := t.pagesLocked()
	var rest []uint64
	for k, off := range offs {
		if len(t.spare) == spareMax {
			rest = append(rest, offs[k:]...)
			break
		}
		b, err := p.PageBytes(off, pageSize)
		if err != nil {
			rest = append(rest, off)
			continue
		}
		clear(b)
		t.spare = append(t.spare, off)
	}
	if len(rest) > 0 {
		t.freeOffsLocked(rest)
	}
}

// freeOffsLocked gives back the pages at offs, which no file holds any
// more. Pages that lie next to each other in the Pages are given back as
// one run: a file written in order frees in a few calls, not one per page
// (each of which punches a hole in the memory file and inserts into its
// free list).
//
// Preconditions: t.mu is held.
func (t *tmpfs) freeOffsLocked(offs []uint64) {
	slices.Sort(offs)
	p := t.pagesLocked()
	start, end := offs[0], offs[0]+pageSize
	for _, off := range offs[1:] {
		if off != end {
			p.FreePages(start, end-start)
			start = off
		}
		end = off + pageSize
	}
	p.FreePages(start, end-start)
}

// zeroLocked makes [off, end) of n read as zero: whole pages are freed,
// the parts of others cleared.
//
// Preconditions: t.mu is held.
func (t *tmpfs) zeroLocked(n *tmpNode, off, end int64) {
	for pos := off; pos < end; {
		i := uint64(pos / pageSize)
		in := pos % pageSize
		next := min(end, int64(i+1)*pageSize)
		if in == 0 && next-pos == pageSize {
			t.freePageLocked(n, i)
		} else if b, _ := t.pageLocked(n, i, false); b != nil {
			clear(b[in : in+next-pos])
		}
		pos = next
	}
}

// writeLocked copies src to n at off, allocating pages; it returns how
// many bytes it wrote before an error (ENOSPC).
//
// Preconditions: t.mu is held.
func (t *tmpfs) writeLocked(n *tmpNode, src []byte, off int64) (int, error) {
	for done := 0; done < len(src); {
		pos := off + int64(done)
		in := pos % pageSize
		m := min(len(src)-done, int(pageSize-in))
		b, err := t.pageLocked(n, uint64(pos/pageSize), true)
		if err != nil {
			return done, err
		}
		copy(b[in:], src[done:done+m])
		done += m
	}
	return len(src), nil
}

// clearLocked makes [off, end) of n read as zero without giving back any
// page: the file's pages stay the ones its shared mappings map.
//
// Preconditions: t.mu is held.
func (t *tmpfs) clearLocked(n *tmpNode, off, end int64) {
	for pos := off; pos < end; {
		i := uint64(pos / pageSize)
		in := pos % pageSize
		next := min(end, int64(i+1)*pageSize)
		if b, _ := t.pageLocked(n, i, false); b != nil {
			clear(b[in : in+next-pos])
		}
		pos = next
	}
}

// growLocked prepares n to grow to size bytes: the bytes from its current
// size on read as zero. Only a file with shared mappings needs it (they
// may have written past the end of the file, which Linux answers with
// SIGBUS); others keep the bytes past their size zero.
//
// Preconditions: t.mu is held.
func (t *tmpfs) growLocked(n *tmpNode, size int64) {
	if n.mapped && size > n.size {
		t.clearLocked(n, n.size, size)
	}
}
