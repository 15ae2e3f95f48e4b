package migration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// pageSize is the unit of FramePages payloads and of zero skipping.
const pageSize = 4096

// A PageWriter sends memory as FramePages frames through a bounded
// pipeline: the caller fills a batch (reading memory into it) while
// workers compress, checksum and seal earlier batches and one goroutine
// writes the sealed batches to the connection, in order. The frames are
// those WritePages would write, numbered in the same sequence, so the
// peer reads them as any others.
//
// Lifecycle: NewPageWriter, then Add and fill, as often as needed, then
// Close, which sends what is left and waits until every frame is
// written (or Abort, which drops what was not sent yet). Between NewPageWriter and Close nothing else may write to the
// connection. A PageWriter is used by one goroutine.
type PageWriter struct {
	c         *Conn
	batchSize int
	skipZero  bool
	// cur is the batch being filled, nil before the first Add.
	cur *pageBatch
	// free holds the batches not in flight; work feeds the workers;
	// order feeds the writer, in the order the batches were sent.
	free, work, order chan *pageBatch
	workers           sync.WaitGroup
	written           chan struct{} // closed when the writer ends
	// mu protects err, the first failure (of a worker or the writer),
	// after which nothing more is written.
	mu  sync.Mutex
	err error
	// wire and raw count what the writer wrote; read after written is
	// closed.
	wire, raw uint64
	// inline, for a PageWriter of no workers, seals each batch when it
	// is sent, into spare, the one batch, and writes it at once.
	inline *sealer
	spare  *pageBatch
	closed bool
	// sealers are the workers', given back to the connection by Close.
	sealers []*sealer
}

// takeBatch returns a batch of size bytes the connection kept from an
// earlier PageWriter, or a new one: a migration's rounds reuse their
// buffers rather than give the collector megabytes per round (a
// collection during the paused round lengthens the pause).
func (c *Conn) takeBatch(size int) *pageBatch {
	for k := len(c.batches); k > 0; k = len(c.batches) {
		b := c.batches[k-1]
		c.batches = c.batches[:k-1]
		if len(b.buf) == size {
			return b
		}
	}
	return &pageBatch{buf: make([]byte, size), sealed: make(chan struct{}, 1)}
}

// pageBatch is up to a batch's size of memory in pieces, and once sealed
// their frames.
type pageBatch struct {
	buf []byte
	// pieces are the memory's offsets and their bytes in buf; frames
	// are the frames to send ([start, end) of buf, and the memory
	// offset of start), numbered from n.
	pieces []piece
	frames []piece
	n      uint64
	out    []byte // the sealed frames, as written
	raw    uint64
	err    error
	sealed chan struct{}
}

type piece struct {
	off        uint64
	start, end int
}

// errPageWriterClosed is returned by Add after Close.
var errPageWriterClosed = errors.New("page writer closed")

// NewPageWriter starts a pipeline of batches of batchSize bytes
// (a multiple of pageSize, at most MaxFrame-8), with workers sealing
// goroutines and two batches more than workers in flight; with no
// workers, each batch is sealed and written on the caller's goroutine
// when the next one starts (for a few pages, where waking goroutines
// costs more than it overlaps). If skipZero is
// set, pages of zeros are left out (the target's memory starts as zeros).
// What the connection buffered is flushed first.
func (c *Conn) NewPageWriter(batchSize, workers int, skipZero bool) (*PageWriter, error) {
	if batchSize <= 0 || batchSize%pageSize != 0 || batchSize > MaxFrame-8 || workers < 0 {
		return nil, fmt.Errorf("page writer of %d-byte batches, %d workers", batchSize, workers)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	if workers == 0 {
		// Inline: each batch is sealed and written on the caller's
		// goroutine as it is sent (with the connection's own sealer); no
		// goroutine to wake per batch.
		c.sealer.aead, c.sealer.compress = c.seal, !c.noCompress
		return &PageWriter{c: c, batchSize: batchSize, skipZero: skipZero,
			inline: &c.sealer, spare: c.takeBatch(batchSize)}, nil
	}
	depth := workers + 2
	w := &PageWriter{c: c, batchSize: batchSize, skipZero: skipZero, free: make(chan *pageBatch, depth),
		work: make(chan *pageBatch, depth), order: make(chan *pageBatch, depth), written: make(chan struct{})}
	for range depth {
		w.free <- c.takeBatch(batchSize)
	}
	for range workers {
		var s *sealer
		if k := len(c.sealers); k > 0 {
			s, c.sealers = c.sealers[k-1], c.sealers[:k-1]
		} else {
			aead, err := gcm(c.sealKey)
			if err != nil {
				return nil, fmt.Errorf("frame cipher: %w", err)
			}
			s = &sealer{aead: aead}
		}
		s.compress = !c.noCompress
		w.sealers = append(w.sealers, s)
		w.workers.Add(1)
		go w.seal(s)
	}
	go w.write()
	return w, nil
}

// Add returns n bytes (a multiple of pageSize, at most the batch size) for
// the caller to fill with the memory at off before its next call to Add
// or Close; they are sent as FramePages frames. It waits while every
// batch is in flight, and fails once a frame could not be sealed or
// written.
func (w *PageWriter) Add(off uint64, n int) ([]byte, error) {
	if w.closed {
		return nil, errPageWriterClosed
	}
	if n <= 0 || n%pageSize != 0 || n > w.batchSize {
		return nil, fmt.Errorf("page writer: %d bytes at %#x", n, off)
	}
	if err := w.failed(); err != nil {
		return nil, err
	}
	if w.cur != nil && w.cur.used()+n > w.batchSize {
		w.send()
	}
	if w.cur == nil && w.inline != nil {
		w.cur = w.spare
		w.cur.pieces = w.cur.pieces[:0]
	} else if w.cur == nil {
		w.cur = <-w.free
		w.cur.pieces = w.cur.pieces[:0]
	}
	used := w.cur.used()
	w.cur.pieces = append(w.cur.pieces, piece{off: off, start: used, end: used + n})
	return w.cur.buf[used : used+n], nil
}

// used is how many bytes of buf the pieces take.
func (b *pageBatch) used() int {
	if k := len(b.pieces); k > 0 {
		return b.pieces[k-1].end
	}
	return 0
}

// send hands the batch being filled to the workers and the writer: it
// splits it into frames (leaving zero pages out if asked) and numbers
// them.
func (w *PageWriter) send() {
	b := w.cur
	w.cur = nil
	b.frames = b.frames[:0]
	for _, p := range b.pieces {
		if !w.skipZero {
			b.frames = append(b.frames, p)
			continue
		}
		for i := p.start; i < p.end; {
			if isZero(b.buf[i : i+pageSize]) {
				i += pageSize
				continue
			}
			j := i + pageSize
			for j < p.end && !isZero(b.buf[j:j+pageSize]) {
				j += pageSize
			}
			b.frames = append(b.frames, piece{off: p.off + uint64(i-p.start), start: i, end: j})
			i = j
		}
	}
	b.n = w.c.sealN
	w.c.sealN += uint64(len(b.frames))
	if w.inline != nil {
		w.sealBatch(w.inline, b)
		if b.err == nil {
			_, b.err = w.c.bw.Write(b.out)
			w.wire += uint64(len(b.out))
			w.raw += b.raw
		}
		if b.err != nil {
			w.fail(b.err)
		}
		return
	}
	w.work <- b
	w.order <- b
}

// seal is a worker: it seals the frames of each batch it takes.
func (w *PageWriter) seal(s *sealer) {
	defer w.workers.Done()
	for b := range w.work {
		w.sealBatch(s, b)
		b.sealed <- struct{}{}
	}
}

// sealBatch seals the frames of b into b.out with s.
func (w *PageWriter) sealBatch(s *sealer, b *pageBatch) {
	b.out, b.raw, b.err = b.out[:0], 0, nil
	for i, f := range b.frames {
		var pre [8]byte
		binary.LittleEndian.PutUint64(pre[:], f.off)
		if b.out, b.err = s.appendFrame(b.out, b.n+uint64(i), FramePages, pre[:], b.buf[f.start:f.end]); b.err != nil {
			return
		}
		b.raw += uint64(8 + f.end - f.start)
	}
}

// write is the writer: it writes the batches in order as they are sealed
// and frees them.
func (w *PageWriter) write() {
	defer close(w.written)
	for b := range w.order {
		<-b.sealed
		err := b.err
		if err == nil && w.failed() == nil && len(b.out) > 0 {
			_, err = w.c.nc.Write(b.out)
			w.wire += uint64(len(b.out))
			w.raw += b.raw
		}
		if err != nil {
			w.fail(err)
		}
		w.free <- b
	}
}

func (w *PageWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *PageWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// Close sends the batch being filled, waits until every frame is written
// and ends the pipeline. It returns the first failure. After a failure the
// connection's frame sequence is broken: the migration fails.
func (w *PageWriter) Close() error {
	if w.closed {
		return errPageWriterClosed
	}
	if w.cur != nil {
		w.send()
	}
	if w.inline == nil {
		close(w.work)
		close(w.order)
		w.workers.Wait()
		<-w.written
		// Every batch is back in free: keep them, and the sealers.
		for len(w.free) > 0 {
			w.c.batches = append(w.c.batches, <-w.free)
		}
		w.c.sealers = append(w.c.sealers, w.sealers...)
	} else {
		if err := w.c.bw.Flush(); err != nil {
			w.fail(err)
		}
		w.c.batches = append(w.c.batches, w.spare)
	}
	w.closed = true
	w.c.WireBytes += w.wire
	w.c.RawBytes += w.raw
	return w.failed()
}

// Abort ends the pipeline as Close does, but drops the batch being filled
// (the caller could not fill it): for a caller that fails the migration.
func (w *PageWriter) Abort() {
	if w.cur != nil && !w.closed {
		if w.inline == nil {
			w.free <- w.cur // taken from free, which has room for it
		}
		w.cur = nil
	}
	w.Close()
}

var zeroPage [pageSize]byte

func isZero(p []byte) bool { return string(p) == string(zeroPage[:]) }
