package storage

import "fmt"

// ReuseChunks adds chunks of another image of the same store (the parent
// of an incremental save) to this image's index as they are: the memory
// they cover has not changed since that image, so it is neither read nor
// stored again. They are ordered with the memory handed over by
// WriteMemoryFrom and WriteMemory: increasing offsets, no overlap, and no
// chunk in a span that memory was handed for (ErrInvalidArgument
// otherwise). A signed image cannot reuse chunks (its signature covers
// bytes that are not read): ErrInvalidArgument.
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
		spanOff := c.Offset &^ (ChunkSpan - 1)
		end := c.Offset + uint64(c.Span)
		switch {
		case c.Offset < w.nextOff || (w.cur != nil && w.cur.spanOff == spanOff):
			return fmt.Errorf("reuse chunk at %#x in %s: before or inside memory already handed over (to %#x): %w", c.Offset, w.uri, w.nextOff, ErrInvalidArgument)
		case c.Span == 0 || end > spanOff+ChunkSpan:
			return fmt.Errorf("reuse chunk at %#x+%#x in %s: not within one span: %w", c.Offset, c.Span, w.uri, ErrInvalidArgument)
		}
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
		j.spanOff, j.c, j.has, j.reused = spanOff, c, true, true
		j.done <- struct{}{}
		w.order <- j
		w.nextOff = end
		w.memSize = max(w.memSize, end)
	}
	return w.getErr()
}

// ExtendMemory records that the image's memory is at least size bytes: the
// bytes after the last ones handed over read as zero. An incremental save
// whose last span is its parent's chunk gives the memory's full size this
// way.
func (w *Writer) ExtendMemory(size uint64) {
	w.memSize = max(w.memSize, size)
}
