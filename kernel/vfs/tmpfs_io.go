package vfs

import (
	"golang.org/x/sys/unix"
)

// A tmpfs file's read and write copy straight between the caller's memory
// (an IOSeq: the application's, or a Go slice) and the file's pages, once
// per byte. The copy runs without the filesystem's lock held: copying to or
// from application memory may fault in a shared mapping of a tmpfs file,
// which takes that lock (MapRuns). So the pages are looked up (and a
// write's holes allocated) under the lock, copied outside it, and the
// file's size updated under it again. While a copy runs (tmpNode.copies),
// the pages that truncate or a punched hole take from the file are kept
// (tmpNode.held) and freed once it ends; a write that finds its pages were
// taken (tmpNode.taken moved) writes its bytes again, under the lock, as if
// it came after. Writes to one file are serialized (tmpNode.writeMu), as
// Linux serializes them with the inode's lock.

// ioSeg is a piece of a direct copy: the sentry's view of file bytes that
// lie one after another in the Pages, or a hole of n bytes (b nil).
type ioSeg struct {
	b []byte
	n int
}

// populateMin is the shortest piece of a write whose pages are populated
// (MADV_POPULATE_WRITE) before the copy; shorter ones fault in the few
// pages they need.
const populateMin = 16 * pageSize

// zeroPage is what a hole reads as.
var zeroPage [pageSize]byte

// segsLocked returns the pieces that hold [off, off+count) of regular file
// n, pages that lie one after another in the Pages in one piece. With
// alloc, the holes are allocated first, as many pages as the filesystem's
// size and memory allow: the pieces then cover the first count bytes, or
// fewer (ENOSPC when not one fits).
//
// Preconditions: t.mu is held.
func (t *tmpfs) segsLocked(n *tmpNode, off int64, count int, alloc bool) ([]ioSeg, int, error) {
	first := uint64(off / pageSize)
	last := uint64((off + int64(count) + pageSize - 1) / pageSize)
	if alloc {
		got, err := t.fillHolesUpToLocked(n, first, last)
		if got == first {
			return nil, 0, err
		}
		if got < last {
			count = int(int64(got)*pageSize - off)
			last = got
		}
	}
	_, heap := t.pagesLocked().(*heapPages)
	type piece struct {
		off  uint64 // in the Pages
		n    int
		hole bool
	}
	var ps []piece
	for done := 0; done < count; {
		pos := off + int64(done)
		i, in := uint64(pos/pageSize), uint64(pos%pageSize)
		m := min(count-done, int(pageSize-in))
		p, ok := n.pages[i]
		k := len(ps) - 1
		switch {
		case !ok && k >= 0 && ps[k].hole:
			ps[k].n += m
		case !ok:
			ps = append(ps, piece{n: m, hole: true})
		case !heap && k >= 0 && !ps[k].hole && ps[k].off+uint64(ps[k].n) == p+in:
			ps[k].n += m
		default:
			ps = append(ps, piece{off: p + in, n: m})
		}
		done += m
	}
	segs := make([]ioSeg, len(ps))
	for j, pc := range ps {
		segs[j].n = pc.n
		if pc.hole {
			continue
		}
		in := pc.off % pageSize
		b, err := t.pagesLocked().PageBytes(pc.off-in, in+uint64(pc.n))
		if err != nil {
			return nil, 0, unix.EIO
		}
		segs[j].b = b[in:]
	}
	return segs, count, nil
}

// fillHolesUpToLocked allocates the missing pages of n in [first, last),
// in order, each run of neighbouring holes in one allocation, as far as
// the filesystem's size and memory allow. It returns the index of the
// first page it could not allocate (last if none) and, then, ENOSPC.
//
// Preconditions: t.mu is held.
func (t *tmpfs) fillHolesUpToLocked(n *tmpNode, first, last uint64) (uint64, error) {
	for from := first; ; {
		i, j := n.holeRun(from, last)
		if i == last {
			return last, nil
		}
		if t.used > t.limit {
			return i, unix.ENOSPC
		}
		j = min(j, i+(t.limit-t.used)/pageSize)
		if j == i {
			return i, unix.ENOSPC
		}
		if err := t.allocRunLocked(n, i, j); err != nil {
			return i, unix.ENOSPC
		}
		from = j
	}
}

// endCopyLocked ends a copy that began by incrementing n.copies; the last
// one frees the pages held for it.
//
// Preconditions: t.mu is held.
func (t *tmpfs) endCopyLocked(n *tmpNode) {
	n.copies--
	if n.copies == 0 && len(n.held) > 0 {
		held := n.held
		n.held = nil
		t.freeOffsLocked(held)
	}
}

// readSeqAt reads regular file n from off into dst and returns the count.
func (f *tmpfsFile) readSeqAt(dst IOSeq, off int64) (int, error) {
	t := f.node.fs
	n := f.node
	t.mu.Lock()
	if off >= n.size || dst.Len() == 0 {
		t.mu.Unlock()
		return 0, nil
	}
	count := int(min(int64(dst.Len()), n.size-off))
	segs, _, err := t.segsLocked(n, off, count, false)
	if err != nil {
		t.mu.Unlock()
		return 0, err
	}
	n.atime = nowTimespec()
	n.copies++
	t.mu.Unlock()

	done := 0
	for _, s := range segs {
		if s.b != nil {
			err = dst.CopyOut(done, s.b)
		} else {
			for z := 0; z < s.n && err == nil; z += pageSize {
				err = dst.CopyOut(done+z, zeroPage[:min(pageSize, s.n-z)])
			}
		}
		if err != nil {
			break
		}
		done += s.n
	}

	t.mu.Lock()
	t.endCopyLocked(n)
	t.mu.Unlock()
	if done == 0 && err != nil {
		return 0, err
	}
	return done, nil
}

// writeSeqAt writes src to regular file n at off (at the end with
// appendMode) and returns the count and the offset after the last byte
// written.
func (f *tmpfsFile) writeSeqAt(src IOSeq, off int64, appendMode bool) (int, int64, error) {
	t := f.node.fs
	n := f.node
	n.writeMu.Lock()
	defer n.writeMu.Unlock()

	t.mu.Lock()
	if appendMode {
		off = n.size
	}
	if src.Len() == 0 {
		t.mu.Unlock()
		return 0, off, nil
	}
	end := off + int64(src.Len())
	if end < off {
		t.mu.Unlock()
		return 0, off, unix.EFBIG
	}
	if n.seals&(sealWrite|sealFutureWrite) != 0 || (n.seals&sealGrow != 0 && end > n.size) {
		t.mu.Unlock()
		return 0, off, unix.EPERM
	}
	if off > n.size {
		t.growLocked(n, off)
	}
	segs, count, err := t.segsLocked(n, off, src.Len(), true)
	if count == 0 {
		t.mu.Unlock()
		return 0, off, err
	}
	taken := n.taken
	n.copies++
	_, heap := t.pagesLocked().(*heapPages)
	t.mu.Unlock()

	done := 0
	var cerr error
	for _, s := range segs {
		if !heap && len(s.b) >= populateMin {
			// Fault the pages in with one system call, not one
			// fault per page during the copy.
			_ = unix.Madvise(s.b, unix.MADV_POPULATE_WRITE)
		}
		if cerr = src.CopyIn(done, s.b); cerr != nil {
			break
		}
		done += s.n
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if n.taken != taken && done > 0 {
		// Pages were taken from the file during the copy: write the
		// bytes again into the file's pages now, after the cut.
		buf := make([]byte, 0, done)
		for _, s := range segs {
			buf = append(buf, s.b[:min(len(s.b), done-len(buf))]...)
		}
		done, _ = t.writeLocked(n, buf, off)
	}
	if done < count && off+int64(count) > n.size {
		// A failed copy may have left bytes past the new end: clear them,
		// as bytes past the end read as zero.
		t.clearLocked(n, max(n.size, off+int64(done)), off+int64(count))
	}
	t.endCopyLocked(n)
	if done == 0 {
		if cerr != nil {
			return 0, off, cerr
		}
		return 0, off, err
	}
	if e := off + int64(done); e > n.size {
		n.size = e
	}
	now := nowTimespec()
	n.mtime, n.ctime = now, now
	return done, off + int64(done), nil
}
