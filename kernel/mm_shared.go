package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Shared mappings of tmpfs files and memfds (vma.Shm): each vma maps a run
// of the file's own pages, which lie together in the memory file, as one
// more owner of them. The pages of the mapping that the file does not have
// (its holes, and what lies past the end of the file rounded up to a page)
// are Beyond vmas that nothing backs and the platform does not map. A touch
// of one (a fault, or the sentry's own access to the memory) allocates the
// file's pages of the shmFaultWindow around it, up to the end of the file,
// and maps them (backSharedLocked); past the end of the file it raises
// SIGBUS. So a sparse file mapped shared costs the memory of the pages
// touched, as on Linux. A truncate that cuts a mapped file short turns the
// mappings' pages past the new end into Beyond vmas in every address space
// (fileShrunk); a file that grows again maps its pages there at the next
// touch.

// busAdrErr is SIGBUS's si_code for an access past the end of a mapped
// file (BUS_ADRERR).
const busAdrErr = 2

// shmFaultWindow is how much of a file's holes one touch of a shared
// mapping allocates (aligned in the file, within the vma): pages are
// touched in runs, and each fault through the platform costs far more than
// a few zero pages. A touch of the page right after pages the mapping has
// (a mapping filled in order) allocates twice as many as those, up to
// shmFaultMax.
const (
	shmFaultWindow = 16 * pageSize
	shmFaultMax    = 2 << 20
)

// mmapSharedLocked maps o.Shared's own pages for length bytes from
// o.Offset. Errors are errnos.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) mmapSharedLocked(o *MMapOpts, length uint64) (uint64, error) {
	if o.Offset+length < o.Offset {
		return 0, unix.EOVERFLOW
	}
	file, runs, mayWrite, err := o.Shared.MapShared(o.Offset, length, o.Perms.allows(permWrite), o.Precommit)
	if err != nil {
		return 0, err
	}
	maxPerms := permAll
	if !o.FileWritable || !mayWrite {
		maxPerms &^= permWrite
	}
	if !maxPerms.allows(o.Perms) {
		return 0, unix.EACCES
	}
	addr, err := mm.placeLocked(o, length)
	if err != nil {
		return 0, err
	}
	proto := vma{Perms: o.Perms, MaxPerms: maxPerms, Name: o.Name, Shm: file}
	if err := mm.insertRunsLocked(proto, addr, o.Offset, length, runs, o.Precommit); err != nil {
		mm.unmapLocked(addr, addr+length)
		return 0, err
	}
	return addr, nil
}

// insertRunsLocked inserts, at addr, vmas like proto for the file bytes
// [fileOff, fileOff+length): one per run (each one more owner of its
// pages), and a Beyond vma for each gap the runs leave (holes of the file,
// and what lies past its end).
//
// Preconditions: mm.mu is held for writing; [addr, addr+length) is free;
// runs are in order and within [fileOff, fileOff+length).
func (mm *MM) insertRunsLocked(proto vma, addr, fileOff, length uint64, runs []vfs.PageRun, precommit bool) error {
	pos := fileOff
	gap := func(to uint64) error {
		if to <= pos {
			return nil
		}
		v := proto
		v.Start, v.End, v.Off, v.FileOff, v.Beyond = addr+(pos-fileOff), addr+(to-fileOff), 0, pos, true
		pos = to
		return mm.insertLocked(v, false)
	}
	for _, r := range runs {
		if err := gap(r.FileOff); err != nil {
			return err
		}
		fr := fileRange{r.Off, r.Off + r.Length}
		mm.mf.Share(fr)
		v := proto
		v.Start = addr + (r.FileOff - fileOff)
		v.End, v.Off, v.FileOff, v.Beyond = v.Start+r.Length, r.Off, r.FileOff, false
		if err := mm.insertLocked(v, precommit); err != nil {
			mm.mf.ReleaseRange(fr)
			return err
		}
		pos = r.FileOff + r.Length
	}
	return gap(fileOff + length)
}

// extendSharedLocked grows the shared mapping whose last vma is last
// (last.Shm set) to end, as mremap does on Linux: over the file's pages
// that follow last's, Beyond vmas over its holes and past its end (a
// touch then allocates them as for any shared mapping). SQLite's
// memory-mapped I/O grows its mapping of a database file so.
//
// Preconditions: mm.mu is held for writing; [last.End, end) is free.
func (mm *MM) extendSharedLocked(last vma, end uint64) error {
	fileOff, length := last.FileOff+last.length(), end-last.End
	runs, err := last.Shm.MapRuns(fileOff, length, false)
	if err != nil {
		return unix.ENOMEM
	}
	return mm.insertRunsLocked(last, last.End, fileOff, length, runs, false)
}

// faultBeyondLocked handles a touch of the page at addr of Beyond vma v:
// the file's pages of the shmFaultWindow around it are allocated and
// mapped, then SIGBUS (ErrBusError) if the page is past the end of the
// file (or the filesystem is full, as Linux's tmpfs answers a fault it
// cannot allocate for).
//
// Preconditions: mm.mu is held for writing; addr is page aligned.
func (mm *MM) faultBeyondLocked(v *vma, addr uint64) error {
	fo := v.FileOff + (addr - v.Start)
	ws := max(fo&^(shmFaultWindow-1), v.FileOff)
	we := min(fo&^(shmFaultWindow-1)+shmFaultWindow, v.FileOff+v.length())
	if n := mm.sequentialLocked(v, addr); n > 0 {
		ws, we = fo, min(fo+min(2*n, shmFaultMax), v.FileOff+v.length())
	}
	start := v.Start + (ws - v.FileOff)
	if err := mm.backSharedLocked(start, start+(we-ws)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("fault at %#x: %w: %w", addr, err, ErrBusError)
		}
		return fmt.Errorf("fault at %#x: %w", addr, err)
	}
	if w := mm.vmaAtLocked(addr); w == nil || w.Beyond {
		return fmt.Errorf("fault at %#x: past the end of the mapped file: %w", addr, ErrBusError)
	}
	return nil
}

// sequentialLocked returns the length of the vma before Beyond vma v if
// addr is v's first page and that vma maps the file's pages just before
// (a touch that continues a run), else 0.
//
// Preconditions: mm.mu is held.
func (mm *MM) sequentialLocked(v *vma, addr uint64) uint64 {
	i := mm.findLocked(addr)
	if addr != v.Start || i == 0 {
		return 0
	}
	p := &mm.vmas[i-1]
	if p.End != v.Start || p.Beyond || p.Shm != v.Shm || p.FileOff+p.length() != v.FileOff {
		return 0
	}
	return p.length()
}

// backSharedLocked allocates the file's pages for [start, end), which one
// Beyond vma holds, and maps them in its place; what lies past the end of
// the file stays Beyond. Errors: ENOSPC, ENOMEM (vfs.SharedFile.MapRuns),
// or the platform's.
//
// Preconditions: mm.mu is held for writing; start and end are page
// aligned.
func (mm *MM) backSharedLocked(start, end uint64) error {
	i, j := mm.isolateLocked(start, end)
	if j != i+1 || !mm.vmas[i].Beyond {
		return fmt.Errorf("back [%#x, %#x): %w", start, end, ErrBadAddress)
	}
	w := mm.vmas[i]
	runs, err := w.Shm.MapRuns(w.FileOff, w.length(), true)
	if err != nil {
		return fmt.Errorf("allocate the mapped file's pages: %w", err)
	}
	mm.vmas = append(mm.vmas[:i], mm.vmas[i+1:]...)
	return mm.insertRunsLocked(w, w.Start, w.FileOff, w.length(), runs, false)
}

// unbackedLocked reports whether [addr, addr+length) overlaps a Beyond
// vma of a shared file mapping.
//
// Preconditions: mm.mu is held.
func (mm *MM) unbackedLocked(addr, length uint64) bool {
	end := addr + length
	for k := mm.findLocked(addr); k < len(mm.vmas) && mm.vmas[k].Start < end; k++ {
		if mm.vmas[k].Beyond {
			return true
		}
	}
	return false
}

// backRangeLocked gives the Beyond vmas in [addr, addr+length) the file's
// pages before the sentry reads or writes them, as a touch by the
// application would. It is best effort: what stays Beyond (past the end
// of the file, or memory exhausted) is refused by forEachLocked.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) backRangeLocked(addr, length uint64) {
	start := pageRoundDown(addr)
	end, ok := pageRoundUp(addr + length)
	if !ok || end <= start {
		return
	}
	for pos := start; pos < end; {
		k := mm.findLocked(pos)
		if k >= len(mm.vmas) || mm.vmas[k].Start >= end {
			return
		}
		v := mm.vmas[k]
		s, e := max(pos, v.Start), min(end, v.End)
		if v.Beyond {
			_ = mm.backSharedLocked(s, e)
		}
		pos = e
	}
}

// fileShrunk makes the pages of every shared mapping of f past size
// (rounded up to a page) Beyond: they give back their pages and a touch
// raises SIGBUS.
func (mm *MM) fileShrunk(f vfs.SharedFile, size int64) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	eof, _ := pageRoundUp(uint64(size))
	for k := 0; k < len(mm.vmas); k++ {
		v := mm.vmas[k]
		if v.Shm != f || v.Beyond || v.FileOff+v.length() <= eof {
			continue
		}
		cut := v.Start
		if v.FileOff < eof {
			cut += eof - v.FileOff
		}
		i, j := mm.isolateLocked(cut, v.End)
		for n := i; n < j; n++ {
			w := &mm.vmas[n]
			fr := w.fileRange()
			w.Beyond = true
			if err := mm.mapIntoLocked(w, false); err != nil {
				// Still mapped in the platform: the vma keeps its
				// pages (and the application reads them instead of
				// getting SIGBUS) rather than leave freed pages
				// mapped.
				w.Beyond = false
				continue
			}
			mm.mf.ReleaseRange(fr)
			w.Off = 0
		}
		k = j - 1
	}
}

// FileShrunk implements vfs.ShrinkNotifier: it tells every address space
// of the sandbox (fileShrunk). The kernel sets onShrink.
func (f *MemoryFile) FileShrunk(sf vfs.SharedFile, size int64) {
	if fn := f.onShrink; fn != nil {
		fn(sf, size)
	}
}

// sharedFileShrunk tells every address space that f was cut to size.
func (k *Kernel) sharedFileShrunk(f vfs.SharedFile, size int64) {
	seen := map[*MM]bool{}
	for _, t := range k.tasks.all() {
		mm := procMM(t.tg)
		if mm == nil || seen[mm] {
			continue
		}
		seen[mm] = true
		mm.fileShrunk(f, size)
	}
}

// backRange is backRangeLocked for callers that hold no lock: it takes
// mm.mu for writing only if the range has something to allocate.
func (mm *MM) backRange(addr, length uint64) {
	mm.mu.RLock()
	unbacked := mm.unbackedLocked(addr, length)
	mm.mu.RUnlock()
	if !unbacked {
		return
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.backRangeLocked(addr, length)
}
