package kernel

import (
	"fmt"

	"snapshotter/platform"
)

// fork returns a copy of mm in the new address space as, for a child
// process, without copying memory:
//
//   - private memory is shared copy-on-write: both sides map the same pages
//     without write permission (MemoryFile.shared counts the owners) and
//     the first write on either side copies (mm_cow.go); private copies of
//     file pages (data segments) also keep their counts on the file's
//     cached pages;
//   - vmas that map cached host file pages map the same pages;
//   - shared vmas map the same pages, written by both.
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
	// The parent's private vmas are remapped without write permission in
	// one batch (the child's mappings are one anyway: it has not run).
	// Its other threads may write through the old mappings until the
	// batch ends, which is while the fork is under way: the child then
	// sees those writes, as it may on Linux.
	if b, ok := mm.as.(platform.Batcher); ok {
		b.BeginBatch()
	}
	var err error
	for i := range mm.vmas {
		if err = mm.forkVMALocked(c, &mm.vmas[i]); err != nil {
			break
		}
	}
	if b, ok := mm.as.(platform.Batcher); ok {
		if berr := b.EndBatch(); err == nil && berr != nil {
			err = fmt.Errorf("remap the parent's private memory copy-on-write: %w", berr)
		}
	}
	if err != nil {
		c.Release()
		return nil, err
	}
	mm.coalesceLocked(0, len(mm.vmas))
	return c, nil
}

// forkVMALocked gives the child c its copy of the parent's vma v.
//
// Preconditions: mm.mu is held for writing; c is not shared yet.
func (mm *MM) forkVMALocked(c *MM, v *vma) error {
	child := *v
	if v.Special || v.Beyond {
		// The kernel's pages: the child maps the same ones. (Past the
		// end of a file: none.)
		c.vmas = append(c.vmas, child)
		return c.mapIntoLocked(&c.vmas[len(c.vmas)-1], false)
	}
	if v.File != nil {
		mm.mf.files.ref(v.File, v.FileOff, v.length())
		if v.mapsCache() {
			c.vmas = append(c.vmas, child)
			return c.mapIntoLocked(&c.vmas[len(c.vmas)-1], false)
		}
	}
	// Shared memory stays shared; private memory becomes copy-on-write
	// in both.
	mm.mf.Share(v.fileRange())
	if v.Private && !v.COW {
		v.COW = true
		if err := mm.mapIntoLocked(v, false); err != nil {
			mm.mf.ReleaseRange(v.fileRange())
			if v.File != nil {
				mm.mf.files.release(mm.mf, v.File, v.FileOff, v.length())
			}
			return err
		}
		child.COW = true
	}
	c.vmas = append(c.vmas, child)
	return c.mapIntoLocked(&c.vmas[len(c.vmas)-1], false)
}
