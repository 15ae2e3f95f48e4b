package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"sort"
	"time"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// liveBase is the last --leave-running save of a sandbox whose dirty
// tracking has run since its pause, without any other reset: a save
// against it (--parent) needs to read only the spans written since.
type liveBase struct {
	uri, digest string
}

// prepared is what a live save did before its pause: the write
// protection done ahead (kernel.PrepareTake), and how long the pause then
// took to stop every task.
type prepared struct {
	prot   kernel.ProtectStats
	err    error
	freeze time.Duration
}

// prepareTake write-protects, while the sandbox runs, what the pause of a
// live save would otherwise protect (kernel.PrepareTake). A failure is
// only logged: the pause then protects it all.
func (s *KernelSandbox) prepareTake() prepared {
	st, err := s.k.PrepareTake()
	if err != nil {
		log.Printf("sandbox %s: write protection ahead of the pause: %v: the pause protects it all", s.opts.ID, err)
	}
	return prepared{prot: st, err: err}
}

// saveLive is a --leave-running save that pauses only to start a memory
// snapshot (which write-protects the sandbox's memory:
// kernel.StartMemorySnapshot) and encode the kernel state; the memory
// ranges, the plan and the memory itself are then found and read from the
// snapshot while the program runs, each page as it was at the pause (a
// page written before the writer read it was copied aside first). The
// dirty tracking the snapshot starts stays on (the caller stops it unless
// a later save is to build on this one). With parent (the chunks of the
// image s.base names), only the spans written since that save are read;
// the others are the parent's chunks.
//
// Preconditions: the kernel is paused by the caller, who is told through
// resumed when the pause is over (it must not unpause again).
func (s *KernelSandbox) saveLive(ctx context.Context, w *storage.Writer, parent []storage.Chunk, prep prepared, setTotal func(uint64), resumed func()) (SaveStats, error) {
	start := time.Now()
	var dirty [][2]uint64
	size := s.k.MemorySize()
	snap, err := s.k.StartMemorySnapshot(func(d [][2]uint64) [][2]uint64 {
		dirty = d
		return snapshotCover(d, parent, size)
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
	prot := s.k.LastProtect()

	alloc, err := snap.SavedRanges(minHole)
	if err != nil {
		return SaveStats{}, err
	}
	plan := planIncremental(alloc, dirty, parent)
	planned := time.Since(start)
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
	log.Printf("sandbox %s: live save: paused %v (tasks stopped in %v before it; snapshot started %v: %s; state encoded in %v, %d bytes), write protection ahead while running %s, memory ranges and plan %v after, memory read while running in %v, %d bytes copied aside before a write; %d bytes read, %d chunks of the parent reused, %d patched",
		s.opts.ID, paused, prep.freeze, snapAt, protectSummary(prot), paused-snapAt, state.Len(), protectSummary(prep.prot), planned-paused, time.Since(start)-planned, snap.CopiedAside(), total, plan.reused, plan.patched)
	if err := s.k.WatchError(); err != nil {
		log.Printf("sandbox %s: writes tracked by write permission, not watched: %v", s.opts.ID, err)
	}
	return SaveStats{Paused: paused, MemoryBytes: total}, nil
}

// protectSummary says what one write protection did (the sentry log's
// breakdown of a pause).
func protectSummary(st kernel.ProtectStats) string {
	how := "by write permission"
	if st.Watching {
		how = fmt.Sprintf("watched: %d pages written protected again, %d vmas whole", st.Pages, st.Whole)
	}
	return fmt.Sprintf("%d writable vmas write-protected (%s) by %d calls in %d round trips in %v", st.VMAs, how, st.Calls, st.RoundTrips, st.Took)
}

// snapshotCover is what a live save's memory snapshot must keep as it was
// at the pause, chosen while paused without looking at the memory file:
// everything below size, or, for a save against parent with the pages
// dirty since it, the chunk spans those pages lie in (all that
// planIncremental may read).
func snapshotCover(dirty [][2]uint64, parent []storage.Chunk, size uint64) [][2]uint64 {
	if parent == nil || dirty == nil {
		if size == 0 {
			return nil
		}
		return [][2]uint64{{0, size}}
	}
	const span = storage.ChunkSpan
	var out [][2]uint64
	for _, d := range dirty {
		lo, hi := d[0]/span*span, min((d[0]+d[1]+span-1)/span*span, size)
		if lo >= hi {
			continue
		}
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] >= lo {
			out[n-1][1] = max(out[n-1][1], hi-out[n-1][0])
			continue
		}
		out = append(out, [2]uint64{lo, hi - lo})
	}
	return out
}

// incrementalPlan is what a save reads and what it takes from its parent,
// span by span (storage.ChunkSpan) in increasing order: ranges read and
// stored whole, parent chunks reused as they are, or a parent chunk
// reused with a patch of the pages written since (storage.Writer's
// WritePatchFrom).
type incrementalPlan struct {
	ops []planOp
	// read is every range the save reads (the memory snapshot's ranges),
	// in increasing order.
	read [][2]uint64
	// reused and patched count the parent's chunks taken as they are and
	// those taken with a new patch.
	reused, patched int
	// size is the end of the memory saved (of the last range of alloc).
	size uint64
}

// planOp is one step of an incrementalPlan: exactly one of its fields is
// set (patch goes with base).
type planOp struct {
	read  [][2]uint64
	reuse []storage.Chunk
	base  *storage.Chunk
	patch [][2]uint64
}

// maxPatchPages is the most pages a patch holds: a span whose written
// pages are more is stored whole again.
const maxPatchPages = storage.ChunkSpan / storage.PageSize / 2

// parentSpan is what the parent holds of one span: a chunk and its patch
// (nil if none); several is set if the parent has more than one chunk
// there (a span then is stored whole when written).
type parentSpan struct {
	base, patch *storage.Chunk
	several     bool
}

// planIncremental plans a save of the memory ranges alloc: everything if
// parent or dirty is nil (no usable parent, or tracking was off). Else a
// span nobody wrote since the parent's save is the parent's chunks; a
// written span is the parent's chunk with a patch of the pages written
// (and of the pages of the parent's own patch, so that a span has at most
// one), or, when the parent has no single chunk there or the pages are
// many, is stored whole.
func planIncremental(alloc, dirty [][2]uint64, parent []storage.Chunk) *incrementalPlan {
	var size uint64
	if n := len(alloc); n > 0 {
		size = alloc[n-1][0] + alloc[n-1][1]
	}
	if parent == nil || dirty == nil {
		p := &incrementalPlan{read: alloc, size: size}
		if len(alloc) > 0 {
			p.ops = []planOp{{read: alloc}}
		}
		return p
	}
	const span = storage.ChunkSpan
	spans := map[uint64]*parentSpan{}
	var order []uint64
	at := func(sp uint64) *parentSpan {
		ps := spans[sp]
		if ps == nil {
			ps = &parentSpan{}
			spans[sp] = ps
			order = append(order, sp)
		}
		return ps
	}
	for i := range parent {
		c := &parent[i]
		ps := at(c.Offset / span)
		switch {
		case c.IsPatch():
			ps.patch = c
		case ps.base != nil:
			ps.several = true
		default:
			ps.base = c
		}
	}
	written := map[uint64][][2]uint64{} // span -> written ranges in it
	for _, d := range dirty {
		for off, end := d[0], d[0]+d[1]; off < end; {
			sp := off / span
			e := min(end, (sp+1)*span)
			if written[sp] == nil {
				at(sp)
			}
			written[sp] = append(written[sp], [2]uint64{off, e - off})
			off = e
		}
	}
	allocIn := func(sp uint64) [][2]uint64 {
		var out [][2]uint64
		for _, r := range alloc {
			lo, hi := max(r[0], sp*span), min(r[0]+r[1], (sp+1)*span)
			if lo < hi {
				out = append(out, [2]uint64{lo, hi - lo})
			}
		}
		return out
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	p := &incrementalPlan{size: size}
	for _, sp := range order {
		ps, pages := spans[sp], written[sp]
		var op planOp
		switch {
		case len(pages) == 0 && ps.base == nil:
			continue // zero at the parent's save and not written since
		case len(pages) == 0:
			op.reuse = parentChunks(parent, sp)
			p.reused += len(op.reuse)
		case ps.base == nil || ps.several:
			op.read = allocIn(sp)
		default:
			if runs, ok := patchRuns(ps, pages); ok {
				op.base, op.patch = ps.base, runs
				p.patched++
			} else {
				op.read = allocIn(sp)
			}
		}
		if len(op.read) == 0 && len(op.reuse) == 0 && op.base == nil {
			continue
		}
		p.ops = append(p.ops, op)
		p.read = append(p.read, op.read...)
		p.read = append(p.read, op.patch...)
	}
	return p
}

// parentChunks returns the parent's chunks in span sp, in index order.
func parentChunks(parent []storage.Chunk, sp uint64) []storage.Chunk {
	var out []storage.Chunk
	for _, c := range parent {
		if c.Offset/storage.ChunkSpan == sp {
			out = append(out, c)
		}
	}
	return out
}

// patchRuns returns the runs of pages a new patch of ps holds: the ranges
// written and the pages of the parent's patch; false if they are too many
// or lie outside the parent's chunk.
func patchRuns(ps *parentSpan, written [][2]uint64) ([][2]uint64, bool) {
	b := ps.base
	end := b.Offset + uint64(b.Span)
	if rangesBytes(written) > maxPatchPages*storage.PageSize {
		return nil, false
	}
	in := make([]bool, b.Span/storage.PageSize)
	for _, r := range written {
		if r[0] < b.Offset || r[0]+r[1] > end {
			return nil, false
		}
		for off := r[0]; off < r[0]+r[1]; off += storage.PageSize {
			in[(off-b.Offset)/storage.PageSize] = true
		}
	}
	n := uint64(len(in))
	if c := ps.patch; c != nil {
		for k := uint64(0); k < uint64(c.Span/storage.PageSize); k++ {
			if c.Present[k/8]&(1<<(k%8)) != 0 {
				in[(c.Offset-b.Offset)/storage.PageSize+k] = true
			}
		}
	}
	var runs [][2]uint64
	count := 0
	for k := uint64(0); k < n; k++ {
		if !in[k] {
			continue
		}
		count++
		off := b.Offset + k*storage.PageSize
		if l := len(runs); l > 0 && runs[l-1][0]+runs[l-1][1] == off {
			runs[l-1][1] += storage.PageSize
		} else {
			runs = append(runs, [2]uint64{off, storage.PageSize})
		}
	}
	return runs, count <= maxPatchPages
}

func (p *incrementalPlan) bytes() uint64 { return rangesBytes(p.read) }

// write hands the plan to w in offset order, reading memory from r:
// consecutive reads in one call, so that the writer's workers share them.
func (p *incrementalPlan) write(w *storage.Writer, r io.ReaderAt) error {
	var reads []storage.Range
	flush := func() error {
		if len(reads) == 0 {
			return nil
		}
		err := w.WriteMemoryFrom(r, reads)
		reads = nil
		return err
	}
	for _, op := range p.ops {
		for _, rg := range op.read {
			reads = append(reads, storage.Range{Off: rg[0], Len: rg[1]})
		}
		if len(op.read) > 0 {
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if op.base != nil {
			ranges := make([]storage.Range, len(op.patch))
			for k, rg := range op.patch {
				ranges[k] = storage.Range{Off: rg[0], Len: rg[1]}
			}
			if err := w.WritePatchFrom(r, *op.base, ranges); err != nil {
				return err
			}
		} else if err := w.ReuseChunks(op.reuse); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
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
