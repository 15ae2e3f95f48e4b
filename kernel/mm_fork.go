package kernel

import (
	"fmt"

	"snapshotter/platform"
)

// fork returns a copy of mm in the new address space as, for a child
// process, without copying memory (forkCopying, which a fork(2) uses,
// copies small vmas at once):
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
	return mm.forkCopying(as, 0, 0)
}

// Eager copies at fork. Copy-on-write costs a fault through the platform
// per written window on each side (a round trip to the sentry and an
// injected mapping), far more than copying a few pages, and the memory a
// process writes right after a fork is mostly small: its stack around the
// stack pointer, its data segments, a small heap. A fork's child therefore
// gets its own copy of each small writable private vma at once (and of
// the stack around the forking thread's stack pointer), which neither
// side then faults on: the parent keeps its mapping as it was.
const (
	// eagerCopyMax is the longest vma copied whole.
	eagerCopyMax = 4 * cowWindow
	// eagerStackBelow and eagerStackSpan place the stack window copied
	// around the stack pointer: from eagerStackBelow under it (where
	// the stack grows), eagerStackSpan long.
	eagerStackBelow = cowWindow / 2
	eagerStackSpan  = 2 * cowWindow
	// eagerCopyBudget bounds the bytes of address space one fork copies
	// eagerly (holes in them cost nothing but the range).
	eagerCopyBudget = 1 << 20
)

// forkCopying is fork, with up to budget bytes of small writable private
// vmas copied for the child at once instead of shared copy-on-write (see
// eagerCopyMax), and the window of the stack around sp (if not 0) among
// them. Other threads of the parent may write a copied vma while it is
// copied; the child then sees some of those writes, as with copy-on-write
// until the parent's mappings are write-protected.
//
// Preconditions: mm.mu is not held.
func (mm *MM) forkCopying(as platform.AddressSpace, sp, budget uint64) (*MM, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if mm.mf.lazyLoader() != nil {
		// A lazy restore's pages may still be in the image (or a base):
		// copy-on-write maps them wherever they are.
		budget = 0
	}
	if budget > 0 && sp != 0 {
		mm.isolateStackWindowLocked(sp)
	}
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
	// cowed are the vmas this fork made copy-on-write in the parent.
	var cowed []int
	for i := range mm.vmas {
		v := &mm.vmas[i]
		if eagerCopyable(v) && v.length() <= budget {
			var copied bool
			if copied, err = mm.forkCopyVMALocked(c, v); err != nil {
				break
			}
			if copied {
				budget -= v.length()
				continue
			}
		}
		wasCOW := v.COW
		err = mm.forkVMALocked(c, v)
		if v.COW && !wasCOW {
			cowed = append(cowed, i)
		}
		if err != nil {
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
		// With the child gone the parent owns its memory alone again,
		// and a failed remap (or a batch that stopped at a failure) may
		// have left it writable in the platform: marked copy-on-write,
		// the next fork would skip the remap and share pages the parent
		// still writes. Not copy-on-write, a vma the platform maps
		// without write permission only faults once more, and is mapped
		// writable then.
		for _, i := range cowed {
			mm.vmas[i].COW = false
		}
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

// eagerCopyable reports whether fork may give the child its own copy of v
// at once: a small private vma the process may write, of its own memory
// (not the file cache's pages, which copy-on-write shares until written).
func eagerCopyable(v *vma) bool {
	return v.Private && v.Perms.allows(permWrite) && !v.Special && !v.Beyond && v.Shm == nil &&
		!v.mapsCache() && v.length() <= eagerCopyMax
}

// isolateStackWindowLocked makes the window of eagerStackSpan around sp a
// vma of its own (splitting the vma that holds it, without changing any
// mapping) if that vma is writable and private and too long to be copied
// whole, so that fork copies that window eagerly.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) isolateStackWindowLocked(sp uint64) {
	v := mm.vmaAtLocked(pageRoundDown(sp))
	if v == nil || v.length() <= eagerCopyMax || !v.Private || !v.Perms.allows(permWrite) ||
		v.Special || v.Beyond || v.Shm != nil || v.mapsCache() {
		return
	}
	start := max(v.Start, pageRoundDown(sp)-min(pageRoundDown(sp), eagerStackBelow))
	end := min(v.End, start+eagerStackSpan)
	mm.isolateLocked(start, end)
}

// forkCopyVMALocked gives the child c a copy of the parent's vma v in a
// range of its own. It reports false, leaving c unchanged, if the memory
// for the copy cannot be allocated (the caller shares v copy-on-write
// instead), and the error if the copy failed.
//
// Preconditions: mm.mu is held for writing; c is not shared yet;
// eagerCopyable(v).
func (mm *MM) forkCopyVMALocked(c *MM, v *vma) (bool, error) {
	fr, over, err := mm.mf.allocateForCopy(v.length())
	if err != nil {
		return false, nil
	}
	if err := mm.mf.copyInto(fr.Start, v.fileRange(), over); err != nil {
		mm.mf.Free(fr)
		return false, fmt.Errorf("copy [%#x, %#x) for a fork's child: %w", v.Start, v.End, err)
	}
	if v.File != nil {
		mm.mf.files.ref(v.File, v.FileOff, v.length())
	}
	child := *v
	child.Off, child.COW = fr.Start, false
	c.vmas = append(c.vmas, child)
	return true, c.mapIntoLocked(&c.vmas[len(c.vmas)-1], false)
}
