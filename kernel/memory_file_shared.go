package kernel

import (
	"maps"
	"slices"
	"sort"
)

// Owners of shared pages. A page of the memory file has one owner (a vma,
// a tmpfs file) unless it is counted in MemoryFile.sharedRuns, which hold
// the number of extra owners of runs of pages: a fork makes every
// private vma's range (copy-on-write) and every shared vma's range one
// more owner's, and each owner's release drops one. Runs keep fork and
// release proportional to the number of vmas rather than of pages (a
// stack alone is 2048 pages).

// sharedRun is a run of pages [Start, End) of the memory file with N extra
// owners (N > 0).
//
// +stateify savable
type sharedRun struct {
	Start, End uint64
	N          uint32
}

// Share adds an owner to every page of r (fork of a shared mapping).
func (f *MemoryFile) Share(r fileRange) {
	if r.Length() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, j := f.isolateSharedLocked(r)
	repl := make([]sharedRun, 0, 2*(j-i)+1)
	pos := r.Start
	for _, run := range f.sharedRuns[i:j] {
		if run.Start > pos {
			repl = append(repl, sharedRun{pos, run.Start, 1})
		}
		run.N++
		repl = append(repl, run)
		pos = run.End
	}
	if pos < r.End {
		repl = append(repl, sharedRun{pos, r.End, 1})
	}
	f.sharedRuns = slices.Replace(f.sharedRuns, i, j, repl...)
	f.mergeSharedLocked(i, i+len(repl))
}

// soleOwner reports whether no page of r has an owner besides the caller.
func (f *MemoryFile) soleOwner(r fileRange) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := sort.Search(len(f.sharedRuns), func(k int) bool { return f.sharedRuns[k].End > r.Start })
	return i == len(f.sharedRuns) || f.sharedRuns[i].Start >= r.End
}

// releaseRangeDeferred drops one owner of the pages of r, as ReleaseRange,
// except that the ranges to free (the pages of r that had no other owner)
// are appended to toFree for the caller to free (FreeAll).
func (f *MemoryFile) releaseRangeDeferred(r fileRange, toFree *[]fileRange) {
	if r.Length() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	free := func(start, end uint64) {
		if k := len(*toFree); k > 0 && (*toFree)[k-1].End == start {
			(*toFree)[k-1].End = end
			return
		}
		*toFree = append(*toFree, fileRange{start, end})
	}
	if len(f.sharedRuns) == 0 {
		free(r.Start, r.End)
		return
	}
	i, j := f.isolateSharedLocked(r)
	repl := make([]sharedRun, 0, j-i)
	pos := r.Start
	for _, run := range f.sharedRuns[i:j] {
		if run.Start > pos {
			free(pos, run.Start)
		}
		if run.N > 1 {
			run.N--
			repl = append(repl, run)
		}
		pos = run.End
	}
	if pos < r.End {
		free(pos, r.End)
	}
	f.sharedRuns = slices.Replace(f.sharedRuns, i, j, repl...)
	f.mergeSharedLocked(i, i+len(repl))
}

// isolateSharedLocked splits the runs that r cuts, so that every run
// overlapping r lies inside it, and returns their index range [i, j).
//
// Preconditions: f.mu is held.
func (f *MemoryFile) isolateSharedLocked(r fileRange) (int, int) {
	f.splitSharedLocked(r.Start)
	f.splitSharedLocked(r.End)
	i := sort.Search(len(f.sharedRuns), func(k int) bool { return f.sharedRuns[k].End > r.Start })
	j := sort.Search(len(f.sharedRuns), func(k int) bool { return f.sharedRuns[k].Start >= r.End })
	return i, j
}

// splitSharedLocked makes off a run boundary if a run holds it.
//
// Preconditions: f.mu is held.
func (f *MemoryFile) splitSharedLocked(off uint64) {
	i := sort.Search(len(f.sharedRuns), func(k int) bool { return f.sharedRuns[k].End > off })
	if i == len(f.sharedRuns) || f.sharedRuns[i].Start >= off {
		return
	}
	run := f.sharedRuns[i]
	lo, hi := run, run
	lo.End, hi.Start = off, off
	f.sharedRuns = slices.Replace(f.sharedRuns, i, i+1, lo, hi)
}

// mergeSharedLocked merges neighbouring runs with the same count among
// sharedRuns[lo-1 .. hi].
//
// Preconditions: f.mu is held.
func (f *MemoryFile) mergeSharedLocked(lo, hi int) {
	lo = max(lo-1, 0)
	for k := lo; k < hi && k+1 < len(f.sharedRuns); {
		a, b := &f.sharedRuns[k], f.sharedRuns[k+1]
		if a.End == b.Start && a.N == b.N {
			a.End = b.End
			f.sharedRuns = slices.Delete(f.sharedRuns, k+1, k+2)
			hi--
			continue
		}
		k++
	}
}

// sharedFromPages moves counts kept per page (f.shared, an image from
// before sharedRuns) into sharedRuns.
func (f *MemoryFile) sharedFromPages() {
	if len(f.shared) == 0 {
		f.shared = nil
		return
	}
	for _, p := range slices.Sorted(maps.Keys(f.shared)) {
		n := f.shared[p]
		if k := len(f.sharedRuns); k > 0 && f.sharedRuns[k-1].End == p && f.sharedRuns[k-1].N == n {
			f.sharedRuns[k-1].End = p + pageSize
			continue
		}
		f.sharedRuns = append(f.sharedRuns, sharedRun{p, p + pageSize, n})
	}
	f.shared = nil
}
