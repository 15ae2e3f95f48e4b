package kernel

import (
	"fmt"

	"snapshotter/platform"
)

// fork returns a copy of mm in the new address space as, for a child
// process, without copying memory where it can share it:
//
//   - private anonymous memory is shared copy-on-write: both sides map the
//     same pages without write permission (MemoryFile.shared counts the
//     owners) and the first write on either side copies (mm_cow.go);
//   - COW vmas of cached host files map the same cached pages;
//   - shared vmas map the same pages, written by both;
//   - private copies of file pages (data segments, written file pages) are
//     copied, by the host kernel (copyFileRange), extent by extent of data:
//     they hold their file's pages too, which COW vmas of files cannot
//     express.
//
// Preconditions: mm.mu is not held. fork takes it for writing, as it makes
// the parent's private memory copy-on-write.
func (mm *MM) fork(as platform.AddressSpace) (*MM, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	c := &MM{
		mf:       mm.mf,
		as:       as,
		minAddr:  mm.minAddr,
		maxAddr:  mm.maxAddr,
		mmapTop:  mm.mmapTop,
		stackTop: mm.stackTop,
		args:     mm.args,
		brkStart: mm.brkStart,
		brk:      mm.brk,
		users:    1,
		vmas:     make([]vma, 0, len(mm.vmas)),
	}
	for i := range mm.vmas {
		if err := mm.forkVMALocked(c, &mm.vmas[i]); err != nil {
			c.Release()
			return nil, err
		}
	}
	mm.coalesceLocked(0, len(mm.vmas))
	return c, nil
}

// forkVMALocked gives the child c its copy of the parent's vma v.
//
// Preconditions: mm.mu is held for writing; c is not shared yet.
func (mm *MM) forkVMALocked(c *MM, v *vma) error {
	child := *v
	switch {
	case v.File != nil && v.COW:
		mm.mf.files.ref(v.File, v.FileOff, v.length())
	case v.File == nil:
		// Shared memory stays shared; private memory becomes
		// copy-on-write in both.
		mm.mf.Share(v.fileRange())
		if v.Private && !v.COW {
			v.COW = true
			if err := mm.mapIntoLocked(v, false); err != nil {
				mm.mf.ReleaseRange(v.fileRange())
				return err
			}
			child.COW = true
		}
	default:
		fr, err := mm.mf.Allocate(v.length())
		if err != nil {
			return fmt.Errorf("fork: copy [%#x, %#x): %w", v.Start, v.End, err)
		}
		err = mm.mf.forEachData(v.fileRange(), func(d fileRange) error {
			return mm.mf.copyRange(fr.Start+(d.Start-v.Off), d)
		})
		if err != nil {
			mm.mf.Free(fr)
			return err
		}
		child.Off = fr.Start
		mm.mf.files.ref(v.File, v.FileOff, v.length())
	}
	c.vmas = append(c.vmas, child)
	return c.mapIntoLocked(&c.vmas[len(c.vmas)-1], false)
}
