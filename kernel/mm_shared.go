package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Shared mappings of tmpfs files and memfds (vma.Shm): each vma maps a run
// of the file's own pages, which lie together in the memory file, as one
// more owner of them; the pages of the mapping past the end of the file
// (rounded up to a page) are Beyond vmas that nothing backs, where a touch
// raises SIGBUS. A truncate that cuts a mapped file short turns the
// mappings' pages past the new end into Beyond vmas in every address space
// (fileShrunk); a file that grows again maps its pages there at the next
// touch (faultBeyondLocked).

// busAdrErr is SIGBUS's si_code for an access past the end of a mapped
// file (BUS_ADRERR).
const busAdrErr = 2

// mmapSharedLocked maps o.Shared's own pages for length bytes from
// o.Offset. Errors are errnos.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) mmapSharedLocked(o *MMapOpts, length uint64) (uint64, error) {
	if o.Offset+length < o.Offset {
		return 0, unix.EOVERFLOW
	}
	file, runs, mayWrite, err := o.Shared.MapShared(o.Offset, length, o.Perms.allows(permWrite))
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
// pages), then one Beyond vma for what the runs do not reach.
//
// Preconditions: mm.mu is held for writing; [addr, addr+length) is free.
func (mm *MM) insertRunsLocked(proto vma, addr, fileOff, length uint64, runs []vfs.PageRun, precommit bool) error {
	done := uint64(0)
	for _, r := range runs {
		fr := fileRange{r.Off, r.Off + r.Length}
		mm.mf.Share(fr)
		v := proto
		v.Start = addr + r.FileOff - fileOff
		v.End, v.Off, v.FileOff, v.Beyond = v.Start+r.Length, r.Off, r.FileOff, false
		if err := mm.insertLocked(v, precommit); err != nil {
			mm.mf.ReleaseRange(fr)
			return err
		}
		done = r.FileOff + r.Length - fileOff
	}
	if done < length {
		v := proto
		v.Start, v.End, v.Off, v.FileOff, v.Beyond = addr+done, addr+length, 0, fileOff+done, true
		return mm.insertLocked(v, false)
	}
	return nil
}

// extendSharedLocked grows the shared mapping whose last vma is last
// (last.Shm set) to end, as mremap does on Linux: over the file's pages
// that follow last's, and Beyond vmas past the end of the file. (SQLite's
// memory-mapped I/O grows its mapping of a database file so.)
//
// Preconditions: mm.mu is held for writing; [last.End, end) is free.
func (mm *MM) extendSharedLocked(last vma, end uint64) error {
	fileOff, length := last.FileOff+last.length(), end-last.End
	runs, err := last.Shm.MapRuns(fileOff, length)
	if err != nil {
		return unix.ENOMEM
	}
	return mm.insertRunsLocked(last, last.End, fileOff, length, runs, false)
}

// faultBeyondLocked handles a touch of the page at addr of Beyond vma v:
// SIGBUS (ErrBusError) if it is still past the end of the file, else the
// vma's pages that the file now holds are mapped.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) faultBeyondLocked(v *vma, addr uint64) error {
	runs, err := v.Shm.MapRuns(v.FileOff, v.length())
	if err != nil {
		return fmt.Errorf("fault at %#x: map the file's pages: %w", addr, err)
	}
	n := uint64(0)
	if k := len(runs); k > 0 {
		n = runs[k-1].FileOff + runs[k-1].Length - v.FileOff
	}
	if v.FileOff+(addr-v.Start) >= v.FileOff+n {
		return fmt.Errorf("fault at %#x: past the end of the mapped file: %w", addr, ErrBusError)
	}
	proto, start, fileOff, length := *v, v.Start, v.FileOff, v.length()
	i, j := mm.isolateLocked(start, start+length)
	mm.vmas = append(mm.vmas[:i], mm.vmas[j:]...)
	return mm.insertRunsLocked(proto, start, fileOff, length, runs, false)
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
