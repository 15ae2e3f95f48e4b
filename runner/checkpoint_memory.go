package runner

import (
	"time"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// saveHeadBytes is how much of the memory file, from its start, a save
// that reads all memory (writeAllMemory) reads while the walk for holes
// runs: enough to keep the image writer's workers busy until the walk of a
// dense memory file is done, little enough that reading holes there as
// zeros costs nothing much.
const saveHeadBytes = 64 << 20

// writeAllMemory hands every part of the memory file that may hold data to
// w, for a save with no parent to build on. The walk that finds the file's
// holes (SavedMemory) is one scan of the whole file before any offset is
// known, so it runs on a goroutine of its own while the workers read and
// compress the allocated memory of the file's first saveHeadBytes (pages
// that mincore finds read in place, the others with pread, holes then
// read as zeros); what the walk found beyond that follows. startState is
// called once the memory is known to be all here (a lazy restore's), as
// the state encoding requires. It returns the memory bytes handed over
// and when the walk was done, measured from start.
//
// Preconditions: the kernel is paused, and stays paused until it returns.
func (s *KernelSandbox) writeAllMemory(w *storage.Writer, start time.Time, startState func(), setTotal func(uint64)) (uint64, time.Duration, error) {
	head, hr, err := s.k.SavedMemoryHead(saveHeadBytes)
	if err != nil {
		return 0, time.Since(start), err
	}
	startState()
	type walked struct {
		alloc [][2]uint64
		mem   kernel.SavedMemoryReader
		err   error
		at    time.Duration
	}
	done := make(chan walked, 1)
	// S/R-SAFE: runs while the kernel is paused and is waited for below,
	// on every path.
	go func() {
		alloc, mem, err := s.k.SavedMemory(minHole)
		done <- walked{alloc, mem, err, time.Since(start)}
	}()
	headPlan := planIncremental(head, nil, nil)
	herr := headPlan.write(w, hr)
	rest := <-done
	if herr != nil {
		return 0, rest.at, herr
	}
	if rest.err != nil {
		return 0, rest.at, rest.err
	}
	plan := planIncremental(beyond(rest.alloc, saveHeadBytes), nil, nil)
	total := headPlan.bytes() + plan.bytes()
	setTotal(total)
	if err := plan.write(w, rest.mem); err != nil {
		return 0, rest.at, err
	}
	return total, rest.at, nil
}

// writeChangedMemory hands w what a save with a parent reads: the spans
// written since the parent's save (tracking has run since its pause),
// and the parent's chunks for the others. startState is called once
// the memory is known to be all here.
//
// Preconditions: the kernel is paused, and stays paused until it returns.
func (s *KernelSandbox) writeChangedMemory(w *storage.Writer, start time.Time, startState func(), parentChunks []storage.Chunk, setTotal func(uint64)) (uint64, time.Duration, error) {
	alloc, mem, err := s.k.SavedMemory(minHole)
	rangesAt := time.Since(start)
	if err != nil {
		return 0, rangesAt, err
	}
	dirty, err := s.k.TakeDirty()
	if err != nil {
		return 0, rangesAt, err
	}
	plan := planIncremental(alloc, dirty, parentChunks)
	total := plan.bytes()
	setTotal(total)
	startState()
	return total, rangesAt, plan.write(w, mem)
}

// beyond returns the parts of ranges, (offset, length) pairs in ascending
// order, at or after off.
func beyond(ranges [][2]uint64, off uint64) [][2]uint64 {
	var out [][2]uint64
	for _, r := range ranges {
		if end := r[0] + r[1]; end > off {
			lo := max(r[0], off)
			out = append(out, [2]uint64{lo, end - lo})
		}
	}
	return out
}
