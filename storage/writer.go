package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// stateWindow is the zstd window of the state stream, which bounds the
// reader's memory.
const stateWindow = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeroPage [PageSize]byte

func isZero(p []byte) bool { return bytes.Equal(p, zeroPage[:]) }

// Range is a range of the memory file: [Off, Off+Len).
type Range struct {
	Off, Len uint64
}

// Writer writes one image. It has two independent inputs, which may be fed
// from two goroutines at once:
//
//   - the state stream, through StateWriter (compressed as it is written);
//   - memory, through WriteMemory (or WriteMemoryFrom), in increasing offset
//     order, from one goroutine at a time.
//
// Memory is cut into chunks of up to ChunkSpan logical bytes; zero pages are
// dropped; chunks are compressed by one worker per core and stored in order
// while the producer keeps producing. At most 2×workers+2 chunks are in
// flight, so memory use is bounded (a few MiB per worker) whatever the image
// size: WriteMemory blocks when the pipeline is full.
//
// Commit publishes the image; Abort (or any failure) deletes what was
// written. Abort after Commit does nothing, so `defer w.Abort()` is the
// usual pattern.
type Writer struct {
	ctx    context.Context
	cancel context.CancelFunc
	uri    string
	st     staging
	opts   CreateOptions
	level  zstd.EncoderLevel

	// mu protects done and the first pipeline error.
	mu   sync.Mutex
	done bool
	err  error

	// State stream. Exclusive to the goroutine writing the state.
	state     *stateSink
	stateOnce sync.Once

	// Memory pipeline. Fields below are exclusive to the memory producer
	// (the goroutine calling WriteMemory), except as noted.
	memStarted bool
	memBlob    blobWriter
	enc        *zstd.Encoder
	workers    int
	pool       chan *memJob
	work       chan *memJob
	order      chan *memJob
	wg         sync.WaitGroup
	cur        *memJob
	nextOff    uint64
	memSize    uint64
	// chunks and memStored are exclusive to the drain goroutine until wg
	// is waited for.
	chunks    []Chunk
	memStored uint64
	memData   uint64
}

type memJob struct {
	c      Chunk
	raw    []byte // present pages, back to back; cap ChunkSpan
	out    []byte // compressed payload buffer
	stored []byte // raw or out: the bytes to store
	done   chan struct{}
}

func newWriter(ctx context.Context, cancel context.CancelFunc, uri string, st staging, opts CreateOptions) *Writer {
	level := opts.Level
	if level == 0 {
		level = DefaultLevel
	}
	opts.Level = level
	if opts.Codec == "" {
		opts.Codec = CodecZstd
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Writer{
		ctx: ctx, cancel: cancel, uri: uri, st: st, opts: opts,
		level: zstd.EncoderLevelFromZstd(level), workers: workers,
	}
}

// URI returns the URI the image will have once committed.
func (w *Writer) URI() string { return w.uri }

func (w *Writer) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *Writer) getErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("write %s: writer already committed or aborted: %w", w.uri, ErrInvalidArgument)
	}
	return nil
}

// stateSink compresses the state stream into the state blob, hashing and
// counting the stored bytes.
type stateSink struct {
	w    *Writer
	blob blobWriter
	enc  *zstd.Encoder
	hash hash.Hash
	raw  int64
	size int64
	err  error
}

func (s *stateSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.w.getErr(); err != nil {
		return 0, err
	}
	n, err := s.enc.Write(p)
	s.raw += int64(n)
	if err != nil {
		s.err = fmt.Errorf("write state of %s: %w", s.w.uri, err)
		s.w.setErr(s.err)
		return n, s.err
	}
	return n, nil
}

// blobSink is what the state encoder writes to.
type blobSink struct{ s *stateSink }

func (b blobSink) Write(p []byte) (int, error) {
	n, err := b.s.blob.Write(p)
	b.s.hash.Write(p[:n])
	b.s.size += int64(n)
	return n, err
}

func (w *Writer) startState() {
	w.stateOnce.Do(func() {
		s := &stateSink{w: w, hash: sha256.New()}
		w.state = s
		blob, err := w.st.create(w.st.key("state.zst"), false)
		if err != nil {
			s.err = fmt.Errorf("write state of %s: %w", w.uri, err)
			w.setErr(s.err)
			return
		}
		s.blob = blob
		s.enc, err = zstd.NewWriter(blobSink{s}, zstd.WithEncoderLevel(w.level),
			zstd.WithEncoderConcurrency(w.workers), zstd.WithWindowSize(stateWindow))
		if err != nil {
			s.err = fmt.Errorf("write state of %s: %w", w.uri, err)
			w.setErr(s.err)
		}
	})
}

// StateWriter returns the writer of the state stream (the stateify output).
// Bytes are compressed and stored as they are written. It may be used from a
// goroutine other than the memory producer's.
func (w *Writer) StateWriter() io.Writer {
	w.startState()
	return w.state
}

// WriteState copies r to the state stream.
func (w *Writer) WriteState(r io.Reader) error {
	_, err := io.Copy(w.StateWriter(), r)
	return err
}

func (w *Writer) startMemory() error {
	if w.memStarted {
		return nil
	}
	w.memStarted = true
	blob, err := w.st.create(w.st.key("memory.bin"), true)
	if err != nil {
		err = fmt.Errorf("write memory of %s: %w", w.uri, err)
		w.setErr(err)
		return err
	}
	w.memBlob = blob
	// Chunks carry a CRC-32C of their stored bytes, checked before
	// decompression, and their exact length, so zstd's own content checksum
	// is left out; literals are stored without Huffman coding: about 1.5×
	// faster for a few percent of size on memory pages.
	w.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(w.level),
		zstd.WithEncoderConcurrency(w.workers), zstd.WithWindowSize(ChunkSpan),
		zstd.WithEncoderCRC(false), zstd.WithNoEntropyCompression(w.opts.Level <= 3))
	if err != nil {
		err = fmt.Errorf("write memory of %s: %w", w.uri, err)
		w.setErr(err)
		return err
	}
	inFlight := 2*w.workers + 2
	w.pool = make(chan *memJob, inFlight)
	w.work = make(chan *memJob, inFlight)
	w.order = make(chan *memJob, inFlight)
	for i := 0; i < inFlight; i++ {
		w.pool <- &memJob{raw: make([]byte, 0, ChunkSpan)}
	}
	for i := 0; i < w.workers; i++ {
		w.wg.Add(1)
		go w.compress()
	}
	w.wg.Add(1)
	go w.drain()
	return nil
}

// compress runs on each worker: one chunk at a time, independently.
func (w *Writer) compress() {
	defer w.wg.Done()
	for j := range w.work {
		if w.opts.Codec == CodecS2 {
			if cap(j.out) < s2.MaxEncodedLen(ChunkSpan) {
				j.out = make([]byte, s2.MaxEncodedLen(ChunkSpan))
			}
			j.out = s2.Encode(j.out[:cap(j.out)], j.raw)
		} else {
			j.out = w.enc.EncodeAll(j.raw, j.out[:0])
		}
		if len(j.out) >= len(j.raw) {
			j.stored = j.raw
			j.c.Flags = chunkRaw
		} else {
			j.stored = j.out
			j.c.Flags = 0
		}
		j.c.StoredLen = uint32(len(j.stored))
		j.c.RawLen = uint32(len(j.raw))
		j.c.CRC = crc32.Checksum(j.stored, castagnoli)
		close(j.done)
	}
}

// drain stores compressed chunks in production order and recycles buffers.
func (w *Writer) drain() {
	defer w.wg.Done()
	for j := range w.order {
		<-j.done
		if w.getErr() == nil {
			if _, err := w.memBlob.Write(j.stored); err != nil {
				w.setErr(fmt.Errorf("write memory of %s: %w", w.uri, err))
			} else {
				j.c.Stored = w.memStored
				w.memStored += uint64(len(j.stored))
				w.memData += uint64(len(j.raw))
				w.chunks = append(w.chunks, j.c)
			}
		}
		j.c = Chunk{}
		j.raw = j.raw[:0]
		j.stored = nil
		w.pool <- j
	}
}

func (w *Writer) flush() {
	j := w.cur
	w.cur = nil
	j.done = make(chan struct{})
	w.order <- j
	w.work <- j
}

// WriteMemory hands the memory range [off, off+len(data)) to the image.
// off and len(data) must be multiples of PageSize and ranges must come in
// increasing, non-overlapping order (ErrInvalidArgument otherwise); gaps
// between ranges and zero pages inside them are not stored and read back as
// zero. data is not retained after WriteMemory returns. WriteMemory blocks
// while the pipeline is full, and returns the first error of the pipeline
// (a failed store write, a cancelled context).
func (w *Writer) WriteMemory(off uint64, data []byte) error {
	if err := w.getErr(); err != nil {
		return err
	}
	if off%PageSize != 0 || len(data)%PageSize != 0 {
		return fmt.Errorf("write memory of %s: range [%#x+%#x] not page aligned: %w", w.uri, off, len(data), ErrInvalidArgument)
	}
	if off < w.nextOff {
		return fmt.Errorf("write memory of %s: range at %#x before end of previous range %#x: %w", w.uri, off, w.nextOff, ErrInvalidArgument)
	}
	if off+uint64(len(data)) < off {
		return fmt.Errorf("write memory of %s: range at %#x overflows: %w", w.uri, off, ErrInvalidArgument)
	}
	if err := w.startMemory(); err != nil {
		return err
	}
	for p := 0; p < len(data); {
		if isZero(data[p : p+PageSize]) {
			p += PageSize
			continue
		}
		pageOff := off + uint64(p)
		if w.cur != nil && pageOff-w.cur.c.Offset >= ChunkSpan {
			w.flush()
		}
		if w.cur == nil {
			select {
			case w.cur = <-w.pool:
			case <-w.ctx.Done():
				err := fmt.Errorf("write memory of %s: %w", w.uri, w.ctx.Err())
				w.setErr(err)
				return err
			}
			if err := w.getErr(); err != nil {
				w.pool <- w.cur
				w.cur = nil
				return err
			}
			w.cur.c.Offset = pageOff
		}
		// Take the run of non-zero pages that fits in this chunk at once.
		first := int((pageOff - w.cur.c.Offset) / PageSize)
		last := first
		end := p + PageSize
		for last+1 < pagesPerChunk && end < len(data) && !isZero(data[end:end+PageSize]) {
			last++
			end += PageSize
		}
		for i := first; i <= last; i++ {
			w.cur.c.Present[i/8] |= 1 << (i % 8)
		}
		w.cur.raw = append(w.cur.raw, data[p:end]...)
		w.cur.c.Span = uint32(last+1) * PageSize
		p = end
	}
	w.nextOff = off + uint64(len(data))
	w.memSize = max(w.memSize, w.nextOff)
	return w.getErr()
}

// WriteMemoryFrom reads ranges from r (for example the memory file) and
// writes them as WriteMemory does, through one reusable buffer.
func (w *Writer) WriteMemoryFrom(r io.ReaderAt, ranges []Range) error {
	buf := make([]byte, ChunkSpan)
	for _, rg := range ranges {
		for done := uint64(0); done < rg.Len; {
			n := min(rg.Len-done, uint64(len(buf)))
			if _, err := r.ReadAt(buf[:n], int64(rg.Off+done)); err != nil {
				return fmt.Errorf("write memory of %s: read [%#x+%#x]: %w", w.uri, rg.Off+done, n, err)
			}
			if err := w.WriteMemory(rg.Off+done, buf[:n]); err != nil {
				return err
			}
			done += n
		}
	}
	return nil
}

// finishMemory flushes the last chunk and stops the pipeline.
func (w *Writer) finishMemory() {
	if !w.memStarted || w.pool == nil {
		return
	}
	if w.cur != nil {
		w.flush()
	}
	close(w.work)
	close(w.order)
	w.wg.Wait()
	w.enc.Close()
	w.pool = nil
}

// Commit flushes both streams, stores the memory index, and publishes the
// manifest, the last object written. It returns the manifest. On failure
// everything written is deleted and the image does not exist; a name taken
// meanwhile (without Replace) gives ErrAlreadyExists.
func (w *Writer) Commit() (*Manifest, error) {
	if err := w.getErr(); err != nil {
		w.Abort()
		return nil, err
	}
	m, err := w.commit()
	if err != nil {
		w.setErr(err)
		w.Abort()
		return nil, err
	}
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.cancel()
	return m, nil
}

func (w *Writer) commit() (*Manifest, error) {
	if err := w.startMemory(); err != nil {
		return nil, err
	}
	w.finishMemory()
	if err := w.getErr(); err != nil {
		return nil, err
	}
	if err := w.memBlob.Close(); err != nil {
		return nil, fmt.Errorf("write memory of %s: %w", w.uri, err)
	}
	w.startState()
	s := w.state
	if s.err != nil {
		return nil, s.err
	}
	if err := s.enc.Close(); err != nil {
		return nil, fmt.Errorf("write state of %s: %w", w.uri, err)
	}
	if err := s.blob.Close(); err != nil {
		return nil, fmt.Errorf("write state of %s: %w", w.uri, err)
	}
	idx := marshalIndex(w.chunks)
	idxSum := sha256.Sum256(idx)
	idxKey := w.st.key("memory.idx")
	ib, err := w.st.create(idxKey, false)
	if err == nil {
		_, err = ib.Write(idx)
		if err == nil {
			err = ib.Close()
		} else {
			ib.fail(err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("write index of %s: %w", w.uri, err)
	}
	m := &Manifest{
		Major: FormatMajor, Minor: FormatMinor,
		Arch:        Arch(),
		Created:     time.Now().UTC(),
		SnapVersion: w.opts.SnapVersion,
		PageSize:    PageSize,
		ChunkSpan:   ChunkSpan,
		MemorySize:  w.memSize,
		MemoryData:  w.memData,
		Chunks:      uint64(len(w.chunks)),
		Compression: Compression{Algorithm: w.opts.Codec, Level: w.opts.Level},
		State:       Blob{Key: w.st.key("state.zst"), Size: s.size, RawSize: s.raw, SHA256: hex.EncodeToString(s.hash.Sum(nil))},
		Memory:      Blob{Key: w.st.key("memory.bin"), Size: int64(w.memStored), RawSize: int64(w.memData)},
		Index:       Blob{Key: idxKey, Size: int64(len(idx)), RawSize: int64(len(idx)), SHA256: hex.EncodeToString(idxSum[:])},
		Metadata:    w.opts.Metadata,
	}
	mb, err := MarshalManifest(m)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	if err := w.ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	if err := w.st.commit(mb, w.opts.Replace); err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	return m, nil
}

var errAborted = errors.New("writer aborted")

// Abort stops the writer and deletes everything it wrote. It returns an
// error only if cleaning up failed (Store.Prune removes leftovers later).
// It must not run concurrently with WriteMemory or the state writer.
func (w *Writer) Abort() error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return nil
	}
	w.done = true
	if w.err == nil {
		w.err = fmt.Errorf("write %s: %w", w.uri, errAborted)
	}
	err := w.err
	w.mu.Unlock()
	// Cancelling unblocks a drain stuck in an upload; the drain then skips
	// the remaining chunks (w.err is set), and only once it has stopped is
	// the memory blob failed.
	w.cancel()
	w.finishMemory()
	if w.memBlob != nil {
		w.memBlob.fail(err)
	}
	if w.state != nil && w.state.blob != nil {
		if w.state.enc != nil {
			w.state.enc.Close()
		}
		w.state.blob.fail(err)
	}
	if aerr := w.st.abort(); aerr != nil {
		return fmt.Errorf("abort %s: %w", w.uri, aerr)
	}
	return nil
}
