package storage

import (
	"fmt"
	"io"
	"sync"
)

// ReuseChunks adds chunks of another image of the same store (the parent
// of an incremental save) to this image's index as they are: the memory
// they cover has not changed since that image, so it is neither read nor
// stored again. They are ordered with the memory handed over by
// WriteMemoryFrom and WriteMemory: increasing offsets, no overlap, no
// chunk in a span that memory was handed for, and a patch (IsPatch) right
// after its base (ErrInvalidArgument otherwise). The chunks must have this
// image's chunk hash, which they have when they are the chunks of its
// CreateOptions.Parent (ErrInvalidArgument otherwise: a chunk's address
// is checked with the image's hash). A signed image cannot reuse chunks
// (its signature covers bytes that are not read): ErrInvalidArgument.
func (w *Writer) ReuseChunks(chunks []Chunk) error {
	if err := w.getErr(); err != nil {
		return err
	}
	if w.opts.SignKey != nil {
		return fmt.Errorf("reuse chunks in %s: a signed image stores every chunk it signs: %w", w.uri, ErrInvalidArgument)
	}
	if err := w.startMemory(); err != nil {
		return err
	}
	for i := range chunks {
		c := chunks[i]
		if c.hash != w.hash {
			return fmt.Errorf("reuse chunk at %#x in %s: addressed by %s, the image's chunks by %s (save against the chunks' image as parent): %w", c.Offset, w.uri, c.hash, w.hash, ErrInvalidArgument)
		}
		spanOff := c.Offset &^ (ChunkSpan - 1)
		end := c.Offset + uint64(c.Span)
		if c.IsPatch() {
			if err := w.checkPatchOf(c.Offset, end); err != nil {
				return err
			}
			if err := w.addJob(&memJob{spanOff: spanOff, c: c, reused: true}, nil); err != nil {
				return err
			}
			w.base = nil
			continue
		}
		switch {
		case c.Offset < w.nextOff || (w.cur != nil && w.cur.spanOff == spanOff):
			return fmt.Errorf("reuse chunk at %#x in %s: before or inside memory already handed over (to %#x): %w", c.Offset, w.uri, w.nextOff, ErrInvalidArgument)
		case c.Span == 0 || end > spanOff+ChunkSpan:
			return fmt.Errorf("reuse chunk at %#x+%#x in %s: not within one span: %w", c.Offset, c.Span, w.uri, ErrInvalidArgument)
		}
		if err := w.addJob(&memJob{spanOff: spanOff, c: c, reused: true}, nil); err != nil {
			return err
		}
		w.nextOff = end
		w.memSize = max(w.memSize, end)
		w.base = &Chunk{Offset: c.Offset, Span: c.Span}
	}
	return w.getErr()
}

// addJob puts a job like proto in the pipeline after the memory handed
// over so far: a reused chunk (done at once), or pieces for a worker to
// read and pack, which addJob waits for (they refer to the caller's
// input).
func (w *Writer) addJob(proto *memJob, pieces []piece) error {
	if w.cur != nil {
		// Every piece of it is read already (writeMemory).
		w.handOut(nil)
	}
	var j *memJob
	select {
	case j = <-w.pool:
	case <-w.ctx.Done():
		err := fmt.Errorf("write memory of %s: %w", w.uri, w.ctx.Err())
		w.setErr(err)
		return err
	}
	j.spanOff, j.c, j.reused, j.patch = proto.spanOff, proto.c, proto.reused, proto.patch
	if j.reused {
		j.has = true
		j.done <- struct{}{}
		w.order <- j
		return w.getErr()
	}
	var call sync.WaitGroup
	call.Add(1)
	j.call = &call
	j.pieces = append(j.pieces, pieces...)
	for _, p := range pieces {
		j.handed += uint64(p.n)
	}
	w.order <- j
	w.work <- j
	call.Wait()
	return w.getErr()
}

// checkPatchOf checks that a patch of [off, end) may follow what was
// handed over: the chunk reused last, whose span holds it, with no patch
// yet.
func (w *Writer) checkPatchOf(off, end uint64) error {
	if w.base == nil || off < w.base.Offset || end > w.base.Offset+uint64(w.base.Span) {
		return fmt.Errorf("patch [%#x, %#x) in %s: not within the chunk reused just before: %w", off, end, w.uri, ErrInvalidArgument)
	}
	return nil
}

// WritePatchFrom reuses base, a chunk of the parent image (as
// ReuseChunks), and adds a patch over it (format 1.3): the pages of
// ranges, read from r at their offsets, replace the base's when the image
// is read; zero pages are stored too (they may hide data of the base).
// The ranges are page aligned, increasing and within the base's span
// (ErrInvalidArgument otherwise); they are read before WritePatchFrom
// returns. An incremental save stores this way the pages written since
// its parent, and not the rest of their span.
func (w *Writer) WritePatchFrom(r io.ReaderAt, base Chunk, ranges []Range) error {
	if base.IsPatch() {
		return fmt.Errorf("patch of %s: base at %#x is a patch itself: %w", w.uri, base.Offset, ErrInvalidArgument)
	}
	spanOff := base.Offset &^ (ChunkSpan - 1)
	pieces := make([]piece, 0, len(ranges))
	next, end := base.Offset, base.Offset+uint64(base.Span)
	for _, rg := range ranges {
		if rg.Off%PageSize != 0 || rg.Len%PageSize != 0 || rg.Len == 0 || rg.Off < next || rg.Off+rg.Len > end {
			return fmt.Errorf("patch of %s: range [%#x+%#x] not page aligned, out of order or outside the base [%#x, %#x): %w",
				w.uri, rg.Off, rg.Len, base.Offset, end, ErrInvalidArgument)
		}
		pieces = append(pieces, piece{rel: uint32(rg.Off - spanOff), n: uint32(rg.Len), src: r, srcOff: int64(rg.Off)})
		next = rg.Off + rg.Len
	}
	if err := w.ReuseChunks([]Chunk{base}); err != nil || len(pieces) == 0 {
		return err
	}
	w.base = nil
	return w.addJob(&memJob{spanOff: spanOff, patch: true}, pieces)
}

// ExtendMemory records that the image's memory is at least size bytes: the
// bytes after the last ones handed over read as zero. An incremental save
// whose last span is its parent's chunk gives the memory's full size this
// way.
func (w *Writer) ExtendMemory(size uint64) {
	w.memSize = max(w.memSize, size)
}
