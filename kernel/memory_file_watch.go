package kernel

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"time"

	"snapshotter/platform"
)

// Write watching: dirty tracking without changing any mapping's access.
//
// Where the platform address space is a platform.WriteWatcher (ptrace on
// Linux 5.19 and later: userfaultfd write protection of the stubs'
// shared mappings), a writable vma is not mapped without write
// permission: its pages are write-protected one by one, a write to a
// protected page stops the writer in the host kernel, and the platform
// reports it to watchedWrite, which records the page (or a dirtyWindow
// from it), copies it aside for a memory snapshot, and lifts its
// protection. Protecting again after a take is then one call per run of
// pages written, in the pages' own page tables, with no mapping split or
// merged and no stop of the stub; and it can be done ahead of the pause
// that needs it (PrepareTake), while the sandbox runs, so that the pause
// protects only what was written since.
//
// A vma that is watched (platform.WriteWatcher.Watched) has had every
// page protected when it started to be watched, and each page since
// either is protected or is in the dirty set (or in ahead, protected
// again by PrepareTake): watchedWrite records a page before it lifts its
// protection, holding mm.mu for reading, and a take protects again what
// it took, per address space, holding mm.mu for writing, so that each
// page written was protected again or is in the next set. A vma mapped
// while tracking is on is mapped without write permission, as without
// watching: its first write faults into the sentry (trackWriteLocked),
// which watches it whole and gives it its write permission back. Memory
// that cannot be watched (a lazily restored or pool member's memory, a
// platform without it, SNAP_NO_UFFD=1) is tracked by write permission as
// before.

// noWatchEnv turns write watching off (tracking by write permission only).
const noWatchEnv = "SNAP_NO_UFFD"

// watchWrites is whether dirty tracking may watch writes; tests change it.
var watchWrites = os.Getenv(noWatchEnv) != "1"

// watcherLocked returns mm's platform address space as a write watcher
// ready to report writes to mm.watchedWrite, or nil if its writes cannot
// be watched.
//
// Preconditions: mm.mu is held.
func (mm *MM) watcherLocked() platform.WriteWatcher {
	if !watchWrites || mm.as == nil || mm.mf.lazyLoader() != nil {
		return nil
	}
	w, ok := mm.as.(platform.WriteWatcher)
	if _, protector := mm.as.(platform.Protector); !ok || !protector {
		// Without Protector, giving a watched vma its write permission
		// back would map it again, unwatched.
		return nil
	}
	if err := w.WatchWrites(mm.watchedWrite); err != nil {
		mm.mf.dirty.noteWatchErr(err)
		return nil
	}
	return w
}

// watchable reports whether v's writes are tracked by watching where mm
// can watch: a writable vma of pages it owns, mapped in the platform.
func watchable(v *vma) bool {
	return v.Perms&permWrite != 0 && !v.COW && !v.Beyond
}

// watchedWrite is called by the platform with the page addr of a write
// to a protected page of mm; the writer waits until the page's protection
// is lifted. The page, or the dirtyWindow from it if the page before it
// is dirty already, is recorded as written (a snapshot copies it aside
// first) and unprotected.
func (mm *MM) watchedWrite(addr uint64) {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	if mm.as == nil {
		return
	}
	w, ok := mm.as.(platform.WriteWatcher)
	if !ok {
		return
	}
	start, end := addr, addr+pageSize
	if v := mm.vmaAtLocked(addr); v != nil && !v.Beyond {
		if addr > v.Start && mm.mf.isDirty(v.Off+(addr-pageSize-v.Start)) {
			end = min(v.End, addr+dirtyWindow)
		}
		off := v.Off + (start - v.Start)
		mm.mf.recordWrite(fileRange{off, off + (end - start)})
	}
	if err := w.Unprotect(start, end-start); err != nil && end-start > pageSize {
		// Part of the window is mapped anew: the page itself, at least.
		_ = w.Unprotect(start, pageSize)
	}
}

// watchProtectLocked protects, in mm's watched vmas, the pages of again
// (memory file pages; written since they were last protected), and
// protects whole the watchable vmas not watched yet; it returns whether
// each vma is dealt with (nil if mm cannot watch). A vma that fails to be
// watched is left to the caller (to protect by write permission).
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) watchProtectLocked(again []uint64, st *ProtectStats) ([]bool, error) {
	w := mm.watcherLocked()
	if w == nil {
		return nil, nil
	}
	st.Watching = true
	done := make([]bool, len(mm.vmas))
	for i := range mm.vmas {
		v := &mm.vmas[i]
		if !watchable(v) {
			continue
		}
		st.VMAs++
		if w.Watched(v.Start, v.length()) {
			done[i] = true
			err := eachRunIn(again, v.Off/pageSize, v.length()/pageSize, func(p, n uint64) error {
				st.Calls++
				st.Pages += int(n)
				return w.WriteProtect(v.Start+(p*pageSize-v.Off), n*pageSize)
			})
			if err != nil {
				return nil, fmt.Errorf("protect written pages of [%#x, %#x): %w", v.Start, v.End, err)
			}
			continue
		}
		st.Calls++
		st.Whole++
		if err := w.WriteProtect(v.Start, v.length()); err == nil {
			done[i] = true
		}
	}
	return done, nil
}

// eachRunIn calls fn with each run of set pages [p, p+n) of b within
// [first, first+count), in order, skipping empty words whole.
func eachRunIn(b []uint64, first, count uint64, fn func(p, n uint64) error) error {
	end := min(first+count, uint64(len(b))*64)
	var runStart, runLen uint64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		err := fn(runStart, runLen)
		runLen = 0
		return err
	}
	for p := first; p < end; {
		w := b[p/64] >> (p % 64)
		if w == 0 {
			if err := flush(); err != nil {
				return err
			}
			p = (p/64 + 1) * 64
			continue
		}
		if w&1 == 0 {
			if err := flush(); err != nil {
				return err
			}
			p += uint64(bits.TrailingZeros64(w))
			continue
		}
		n := min(uint64(bits.TrailingZeros64(^w)), 64-p%64, end-p)
		if runLen > 0 && runStart+runLen == p {
			runLen += n
		} else {
			if err := flush(); err != nil {
				return err
			}
			runStart, runLen = p, n
		}
		p += n
	}
	return flush()
}

// PrepareTake readies the next memory snapshot or dirty set take
// (StartMemorySnapshot, StartDirtyTracking, TakeDirty) while the sandbox
// runs, so that the pause it needs is short: it protects now, in every
// address space that can watch writes, what the take would protect (every
// writable vma if tracking is off, the pages written since the last take
// if it is on); the take then protects only what is written in between
// (and memory that cannot be watched). If no take follows,
// StopDirtyTracking undoes it. It may be called whether or not the
// kernel is paused.
func (k *Kernel) PrepareTake() (ProtectStats, error) {
	var st ProtectStats
	t0 := time.Now()
	d := &k.mf.dirty
	d.mu.Lock()
	again := d.bits
	d.bits = nil
	orBits(&d.ahead, again)
	d.armed = true
	d.mu.Unlock()
	for _, mm := range k.mms() {
		if err := mm.protectAhead(again, &st); err != nil {
			return st, fmt.Errorf("prepare dirty take: %w", err)
		}
	}
	st.Took = time.Since(t0)
	return st, nil
}

// aheadStep bounds the work protectAhead does per hold of mm.mu: a
// program's watched writes wait for mm.mu (watchedWrite), so a long hold
// would stall its writers as a pause would. aheadBytes is how much of the
// vmas protected whole, aheadCalls how many runs of written pages.
const (
	aheadBytes = 16 << 20
	aheadCalls = 256
)

// errAheadStep ends one step of protectAhead.
var errAheadStep = errors.New("step done")

// protectAhead is PrepareTake for mm: the pages of again in its watched
// vmas and its watchable vmas not watched yet, in address order, a step
// at a time (aheadStep), mm.mu released in between. A vma that fails to
// be watched, or that changes meanwhile, is left to the take.
func (mm *MM) protectAhead(again []uint64, st *ProtectStats) error {
	for at := uint64(0); ; {
		mm.mu.Lock()
		next, more, err := mm.protectAheadStepLocked(again, at, st)
		mm.mu.Unlock()
		if err != nil || !more {
			return err
		}
		at = next
	}
}

// protectAheadStepLocked does one step of protectAhead from address at on
// and returns where the next one starts, and whether there is one.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) protectAheadStepLocked(again []uint64, at uint64, st *ProtectStats) (uint64, bool, error) {
	w := mm.watcherLocked()
	if w == nil {
		return 0, false, nil
	}
	st.Watching = true
	bytes, calls := uint64(0), 0
	for i := mm.findLocked(at); i < len(mm.vmas); i++ {
		v := &mm.vmas[i]
		if !watchable(v) {
			continue
		}
		lo := max(at, v.Start)
		if lo == v.Start {
			st.VMAs++
		}
		if !w.Watched(lo, v.End-lo) {
			// Whole (or what is left of it), a piece at a time.
			hi := min(v.End, lo+aheadBytes-bytes)
			st.Calls++
			if err := w.WriteProtect(lo, hi-lo); err != nil {
				hi = v.End // left to the take
			} else if hi == v.End {
				st.Whole++
			}
			bytes += hi - lo
			if hi < v.End || bytes >= aheadBytes {
				return hi, true, nil
			}
			continue
		}
		// Watched: the runs of pages written, a number at a time.
		var stop uint64
		first := v.Off/pageSize + (lo-v.Start)/pageSize
		err := eachRunIn(again, first, (v.End-lo)/pageSize, func(p, n uint64) error {
			if calls == aheadCalls {
				stop = v.Start + (p*pageSize - v.Off)
				return errAheadStep
			}
			calls++
			st.Calls++
			st.Pages += int(n)
			return w.WriteProtect(v.Start+(p*pageSize-v.Off), n*pageSize)
		})
		if errors.Is(err, errAheadStep) {
			return stop, true, nil
		}
		// Any other failure: the vma changed meanwhile, left to the take.
	}
	return 0, false, nil
}

// orBits sets in *dst every bit set in src.
func orBits(dst *[]uint64, src []uint64) {
	if len(src) > len(*dst) {
		*dst = append(*dst, make([]uint64, len(src)-len(*dst))...)
	}
	for i, w := range src {
		(*dst)[i] |= w
	}
}

// noteWatchErr keeps the first reason write watching failed.
func (d *dirtyTracker) noteWatchErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watchErr == nil {
		d.watchErr = err
	}
}

// WatchError returns why an address space could not watch writes (and
// was tracked by write permission instead), or nil.
func (k *Kernel) WatchError() error {
	d := &k.mf.dirty
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.watchErr
}
