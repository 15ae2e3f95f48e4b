package runner

import (
	"bytes"
	"context"
	"io"
	"log"
	"sort"
	"time"

	"snapshotter/storage"
)

// liveBase is the last --leave-running save of a sandbox whose dirty
// tracking has run since its pause, without any other reset: a save
// against it (--parent) needs to read only the spans written since.
type liveBase struct {
	uri, digest string
}

// saveLive is a --leave-running save that pauses only to find the memory
// ranges, start a memory snapshot (which write-protects the sandbox's
// memory: kernel.StartMemorySnapshot) and encode the kernel state; the
// memory is then read from the snapshot while the program runs, each page
// as it was at the pause (a page written before the writer read it was
// copied aside first). The dirty tracking the snapshot starts stays on,
// so that a later save knows what changed. With parent (the chunks of
// the image s.base names), only the spans written since that save are
// read; the others are the parent's chunks.
//
// Preconditions: the kernel is paused by the caller, who is told through
// resumed when the pause is over (it must not unpause again).
func (s *KernelSandbox) saveLive(ctx context.Context, w *storage.Writer, parent []storage.Chunk, setTotal func(uint64), resumed func()) (SaveStats, error) {
	start := time.Now()
	alloc, _, err := s.k.SavedMemory(minHole)
	if err != nil {
		return SaveStats{}, err
	}
	rangesAt := time.Since(start)
	var plan *incrementalPlan
	snap, err := s.k.StartMemorySnapshot(func(dirty [][2]uint64) [][2]uint64 {
		plan = planIncremental(alloc, dirty, parent)
		return plan.read
	})
	if err != nil {
		return SaveStats{}, err
	}
	defer snap.Release()
	snapAt := time.Since(start)
	var state bytes.Buffer
	if err := s.k.SaveState(ctx, &state); err != nil {
		return SaveStats{}, err
	}
	resumed()
	paused := time.Since(start)

	total := plan.bytes()
	setTotal(total)
	stateDone := make(chan error, 1)
	// S/R-SAFE: writes only bytes already encoded; waited for below.
	go func() {
		_, err := w.StateWriter().Write(state.Bytes())
		stateDone <- err
	}()
	err = plan.write(w, snap)
	if serr := <-stateDone; err == nil {
		err = serr
	}
	if err != nil {
		return SaveStats{}, err
	}
	log.Printf("sandbox %s: live save: paused %v (memory ranges found %v, snapshot started %v, %d bytes of state), memory read while running in %v, %d bytes copied aside before a write; %d bytes read, %d chunks of the parent reused",
		s.opts.ID, paused, rangesAt, snapAt, state.Len(), time.Since(start)-paused, snap.CopiedAside(), total, len(plan.reuse))
	return SaveStats{Paused: paused, MemoryBytes: total}, nil
}

// incrementalPlan is what a save reads and what it takes from its parent:
// read are memory ranges, reuse the parent's chunks of the spans that were
// not written since the parent's save (both in increasing order, never in
// one span).
type incrementalPlan struct {
	read  [][2]uint64
	reuse []storage.Chunk
	// size is the end of the memory saved (of the last range of alloc).
	size uint64
}

// planIncremental plans a save of the memory ranges alloc: everything if
// parent or dirty is nil (no usable parent, or tracking was off), else the
// spans dirty touches are read and the others are parent's.
func planIncremental(alloc, dirty [][2]uint64, parent []storage.Chunk) *incrementalPlan {
	var size uint64
	if n := len(alloc); n > 0 {
		size = alloc[n-1][0] + alloc[n-1][1]
	}
	if parent == nil || dirty == nil {
		return &incrementalPlan{read: alloc, size: size}
	}
	spans := map[uint64]bool{}
	for _, d := range dirty {
		for sp := d[0] / storage.ChunkSpan; sp <= (d[0]+d[1]-1)/storage.ChunkSpan; sp++ {
			spans[sp] = true
		}
	}
	p := &incrementalPlan{size: size}
	for _, r := range alloc {
		for off := r[0]; off < r[0]+r[1]; {
			sp := off / storage.ChunkSpan
			end := min(r[0]+r[1], (sp+1)*storage.ChunkSpan)
			if spans[sp] {
				p.read = append(p.read, [2]uint64{off, end - off})
			}
			off = end
		}
	}
	for _, c := range parent {
		if !spans[c.Offset/storage.ChunkSpan] {
			p.reuse = append(p.reuse, c)
		}
	}
	sort.Slice(p.reuse, func(i, j int) bool { return p.reuse[i].Offset < p.reuse[j].Offset })
	return p
}

func (p *incrementalPlan) bytes() uint64 { return rangesBytes(p.read) }

// write hands the plan to w in offset order, reading memory from r.
func (p *incrementalPlan) write(w *storage.Writer, r io.ReaderAt) error {
	read, reuse := p.read, p.reuse
	for len(read) > 0 || len(reuse) > 0 {
		i := 0
		for i < len(read) && (len(reuse) == 0 || read[i][0] < reuse[0].Offset) {
			i++
		}
		if i > 0 {
			ranges := make([]storage.Range, i)
			for k, rg := range read[:i] {
				ranges[k] = storage.Range{Off: rg[0], Len: rg[1]}
			}
			if err := w.WriteMemoryFrom(r, ranges); err != nil {
				return err
			}
			read = read[i:]
		}
		j := 0
		for j < len(reuse) && (len(read) == 0 || reuse[j].Offset < read[0][0]) {
			j++
		}
		if j > 0 {
			if err := w.ReuseChunks(reuse[:j]); err != nil {
				return err
			}
			reuse = reuse[j:]
		}
	}
	w.ExtendMemory(p.size)
	return nil
}

// baseChunks returns the chunks of the parent ref if it is the save that
// dirty tracking has run since (s.base) and the save may reuse them (not
// signed), or nil: the save then reads all memory, and storing only the
// chunks the store lacks keeps it incremental in size.
func (s *KernelSandbox) baseChunks(ctx context.Context, ref *storage.ParentRef, req SaveRequest) []storage.Chunk {
	if s.base == nil || s.base.uri != ref.URI || s.base.digest != ref.ManifestSHA256 || req.SignKey != nil || !s.k.DirtyTracking() {
		return nil
	}
	img, err := storage.OpenImage(ctx, ref.URI, "")
	if err != nil {
		log.Printf("sandbox %s: parent %s: %v: saving all memory", s.opts.ID, ref.URI, err)
		return nil
	}
	defer img.Close()
	if c := img.Chunks(); c != nil {
		return c
	}
	return []storage.Chunk{}
}
