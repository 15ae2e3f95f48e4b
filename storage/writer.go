package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// stateWindow is the zstd window of the state stream, which bounds the
// reader's memory.
const stateWindow = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeroPage [PageSize]byte

// isZero reports whether page p is all zeros. Data pages almost always have
// a non-zero byte in their first word, so that is checked first.
func isZero(p []byte) bool {
	return binary.LittleEndian.Uint64(p) == 0 && bytes.Equal(p, zeroPage[:])
}

// Range is a range of the memory file: [Off, Off+Len).
type Range struct {
	Off, Len uint64
}

// Writer writes one image. It has two independent inputs, which may be fed
// from two goroutines at once:
//
//   - the state stream, through StateWriter (compressed as it is written);
//   - memory, through WriteMemoryFrom or WriteMemory, in increasing offset
//     order, from one goroutine at a time.
//
// Memory is cut at ChunkSpan-aligned boundaries into spans. The calling
// goroutine only hands spans out: one worker per core reads a span (pread
// from the memory file, say) into its own buffer, drops zero pages, gathers
// the present ones, compresses and checksums them; a drain goroutine stores
// the chunks in order. At most 2×workers+2 spans are in flight, so memory
// use is bounded (about 2 MiB per span) whatever the image size: the
// WriteMemory* calls block when the pipeline is full.
//
// Commit publishes the image; Abort (or any failure) deletes what was
// written. Abort after Commit does nothing, so `defer w.Abort()` is the
// usual pattern.
type Writer struct {
	ctx    context.Context
	cancel context.CancelFunc
	uri    string
	st     staging
	cs     chunkStore
	opts   CreateOptions
	// hash gives the chunks their addresses: the parent's chunk hash
	// with opts.Parent, defaultChunkHash otherwise. Immutable.
	hash chunkHash
	// checkParent, set when opts.Parent is, checks again at commit that
	// the parent is still the image the child names.
	checkParent func(ctx context.Context) error
	// checkReplaced, set with opts.ReplaceDigest, checks at commit that
	// the image replaced is still the one read.
	checkReplaced func(ctx context.Context) error

	// mu protects done and the first pipeline error.
	mu   sync.Mutex
	done bool
	err  error

	// State stream. Exclusive to the goroutine writing the state.
	state     *stateSink
	stateOnce sync.Once

	// Memory pipeline. Fields below are exclusive to the memory producer
	// (the goroutine calling WriteMemory*), except as noted.
	memStarted bool
	enc        *zstd.Encoder // zstd codec only; safe for concurrent EncodeAll
	workers    int
	pool       chan *memJob
	work       chan *memJob
	order      chan *memJob
	wg         sync.WaitGroup
	cur        *memJob // the span being gathered; not yet handed out
	// base is the chunk reused last, which a patch may follow (nil once
	// anything else was handed over).
	base    *Chunk
	nextOff uint64
	memSize uint64
	// chunks, memStored, memData and handed are exclusive to the drain
	// goroutine until wg is waited for.
	chunks    []Chunk
	memStored uint64
	memData   uint64
	handed    uint64
	memHash   hash.Hash // SHA-256 of the chunks back to back; only when signing
	// newChunks and newBytes count the chunks the store did not have yet;
	// accessed atomically by the workers.
	newChunks, newBytes atomic.Uint64
	// looseChunks is set once a chunk went through the store's putChunk
	// (not a pack): the commit then syncs the store's chunks. Accessed
	// atomically.
	looseChunks atomic.Bool
	// total is the memory handed over so far; packer, once it reaches
	// packMinBytes in a store that packs, is the pack of the new chunks
	// of the spans handed out from then on (memJob.packer). Exclusive to
	// the memory producer; packer is immutable once set.
	total  uint64
	packer *filePacker

	// createdMu protects created: the chunks this writer stored, and
	// when, for Abort to delete.
	createdMu sync.Mutex
	created   []createdChunk
}

type createdChunk struct {
	sum string
	at  time.Time
}

// memJob is one ChunkSpan-aligned span of memory on its way to the image.
// The producer fills spanOff, pieces and call, then hands it to a worker
// (through work) and to the drain (through order, in production order);
// the worker fills the chunk, and the drain stores it and recycles the job.
type memJob struct {
	spanOff uint64
	pieces  []piece
	handed  uint64          // bytes covered by pieces
	call    *sync.WaitGroup // Done once the pieces are read (nil: none to read)
	buf     []byte          // ChunkSpan bytes: the span, read at its offsets
	out     []byte          // compressed payload buffer
	probe   []byte          // encodeBetterWherePays's scratch output
	probeIn []byte          // the first s2Probe bytes of a sparse chunk's pages
	has     bool            // a chunk was produced (some page is non-zero)
	c       Chunk
	stored  []byte // a subslice of buf or out: the bytes to store
	done    chan struct{}
	// reused is set for a chunk of another image taken as it is
	// (ReuseChunks): c is complete, nothing is read or stored.
	reused bool
	// patch is set for a patch (WritePatchFrom): every page of the
	// pieces is stored, zero or not, and the chunk is flagged chunkPatch.
	patch bool
	// packer, if not nil, stores the chunk in the writer's pack.
	packer *filePacker
}

// piece is a part of a span handed to the writer: n bytes at rel in the
// span, to be read from src at srcOff, or in view (the caller's bytes, not
// copied unless needed), or already in the job's buffer (both nil).
type piece struct {
	rel, n uint32
	src    io.ReaderAt
	srcOff int64
	view   []byte
}

// bytes returns the piece's data once read.
func (p *piece) bytes(j *memJob) []byte {
	if p.view != nil {
		return p.view
	}
	return j.buf[p.rel : p.rel+p.n]
}

// pending reports whether the piece still refers to the caller's input.
func (p *piece) pending() bool { return p.src != nil || p.view != nil }

func newWriter(ctx context.Context, cancel context.CancelFunc, uri string, st staging, cs chunkStore, opts CreateOptions) *Writer {
	if opts.Codec == "" {
		opts.Codec = DefaultCodec
	}
	if opts.Level == 0 {
		opts.Level = DefaultLevel
		if opts.Codec == CodecS2 {
			opts.Level = S2Better
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	w := &Writer{ctx: ctx, cancel: cancel, uri: uri, st: st, cs: cs, opts: opts, workers: workers, hash: defaultChunkHash}
	if opts.SignKey != nil {
		w.memHash = sha256.New()
	}
	return w
}

// stateLevel is the zstd level of the state stream: the memory level when
// memory is zstd too, DefaultLevel otherwise.
func (w *Writer) stateLevel() zstd.EncoderLevel {
	if w.opts.Codec == CodecZstd {
		return zstd.EncoderLevelFromZstd(w.opts.Level)
	}
	return zstd.EncoderLevelFromZstd(DefaultLevel)
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
		s.enc, err = zstd.NewWriter(blobSink{s}, zstd.WithEncoderLevel(w.stateLevel()),
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
	if w.opts.Codec == CodecZstd {
		var err error
		// Chunks carry a CRC-32C of their stored bytes, checked before
		// decompression, and their exact length, so zstd's own content
		// checksum is left out; at levels <= 3 literals are stored without
		// Huffman coding: about 1.5× faster for a few percent of size on
		// memory pages.
		w.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(w.opts.Level)),
			zstd.WithEncoderConcurrency(w.workers), zstd.WithWindowSize(ChunkSpan),
			zstd.WithEncoderCRC(false), zstd.WithNoEntropyCompression(w.opts.Level <= 3 && !w.opts.Entropy))
		if err != nil {
			err = fmt.Errorf("write memory of %s: %w", w.uri, err)
			w.setErr(err)
			return err
		}
	}
	inFlight := 2*w.workers + 2
	w.pool = make(chan *memJob, inFlight)
	w.work = make(chan *memJob, inFlight)
	w.order = make(chan *memJob, inFlight)
	for i := 0; i < inFlight; i++ {
		j := &memJob{done: make(chan struct{}, 1)}
		if b, ok := spanBuffers.Get().(*spanBuf); ok {
			j.buf, j.out = b.buf, b.out
		}
		w.pool <- j
	}
	for i := 0; i < w.workers; i++ {
		w.wg.Add(1)
		go w.compress()
	}
	w.wg.Add(1)
	go w.drain()
	return nil
}

// readPieces reads the pieces of j to be read from a reader into j's
// buffer; with copyViews, it copies the viewed ones there too, so that j no
// longer refers to the caller's input.
func (w *Writer) readPieces(j *memJob, copyViews bool) error {
	if j.buf == nil {
		j.buf = make([]byte, ChunkSpan)
	}
	for i := range j.pieces {
		p := &j.pieces[i]
		dst := j.buf[p.rel : p.rel+p.n]
		switch {
		case p.src != nil && !copyViews:
			if v, ok := p.src.(ReaderViewer); ok {
				if b := v.View(p.srcOff, int(p.n)); b != nil {
					p.view, p.src = b, nil
					continue
				}
			}
			fallthrough
		case p.src != nil:
			if n, err := p.src.ReadAt(dst, p.srcOff); err != nil && !(err == io.EOF && n == len(dst)) {
				return fmt.Errorf("write memory of %s: read [%#x+%#x]: %w", w.uri, p.srcOff, p.n, err)
			}
			p.src = nil
		case p.view != nil && copyViews:
			copy(dst, p.view)
			p.view = nil
		}
	}
	return nil
}

// compress runs on each worker: one span at a time, independently.
func (w *Writer) compress() {
	defer w.wg.Done()
	for j := range w.work {
		var err error
		if err = w.getErr(); err == nil {
			if err = w.readPieces(j, false); err != nil {
				w.setErr(err)
			}
		}
		if err == nil {
			w.pack(j)
			if j.has {
				w.putChunk(j)
			}
		}
		if j.call != nil {
			j.call.Done() // the caller's input is no longer used
			j.call = nil
		}
		j.done <- struct{}{}
	}
}

// pack finds the non-zero pages of the span's pieces, gathers them into
// j.buf (in place; not at all when they are contiguous in one piece),
// compresses and checksums them into j.c and j.stored.
func (w *Writer) pack(j *memJob) {
	var present [pagesPerChunk / 8]byte
	first, last, count := -1, -1, 0
	for i := range j.pieces {
		p := &j.pieces[i]
		data := p.bytes(j)
		pg0 := int(p.rel / PageSize)
		for k := 0; k < len(data); k += PageSize {
			if !j.patch && isZero(data[k:k+PageSize]) {
				continue
			}
			pg := pg0 + k/PageSize
			present[pg/8] |= 1 << (pg % 8)
			if first < 0 {
				first = pg
			}
			last = pg
			count++
		}
	}
	if count == 0 {
		return
	}
	isPresent := func(pg int) bool { return present[pg/8]&(1<<(pg%8)) != 0 }
	j.has = true
	j.c.Offset = j.spanOff + uint64(first)*PageSize
	j.c.Span = uint32(last-first+1) * PageSize
	for pg := first; pg <= last; pg++ {
		if isPresent(pg) {
			k := pg - first
			j.c.Present[k/8] |= 1 << (k % 8)
		}
	}
	total := count * PageSize
	if cap(j.out) < s2OutLen {
		j.out = make([]byte, s2OutLen)
	}
	var raw []byte
	dense := false
	if p := j.pieceAt(first); count == last-first+1 && p.rel+p.n >= uint32(last+1)*PageSize {
		// Dense in one piece: compress straight from it.
		b := p.bytes(j)
		raw = b[uint32(first)*PageSize-p.rel : uint32(last+1)*PageSize-p.rel]
		dense = true
	}
	// A sparse chunk that S2 compresses with s2.Encode (S2Fast, or
	// S2Better where its probe finds that EncodeBetter does not pay) is
	// compressed run by run of present pages, without gathering them,
	// where the probe also finds that its pages have no repeats across
	// them that a run by run compression would miss.
	better := w.opts.Level == S2Best
	if !dense && w.opts.Codec == CodecS2 && w.opts.Level != S2Best && total >= 4*s2Probe {
		probe := j.probeInput(first, last, isPresent)
		fast := j.probeSize(probe, false)
		if w.opts.Level != S2Fast {
			better = j.probeSize(probe, true)*20 < fast*19
		}
		if !better && j.splitSize(probe)*50 <= fast*51 && j.encodeRuns(first, last, isPresent, total) {
			j.stored = j.out
			j.c.Flags = 0
			j.finishChunk(total)
			return
		}
	}
	if !dense {
		// Move each run of present pages down to the end of the previous
		// one. A destination never lies after its source, and every byte
		// of the buffer before the source has been moved already.
		raw = j.buf[first*PageSize:]
		n := 0
		j.eachPresentRun(first, last, isPresent, func(run []byte) bool {
			n += copy(raw[n:], run)
			return true
		})
		raw = raw[:n]
	}
	if w.opts.Codec == CodecS2 {
		switch {
		case w.opts.Level == S2Fast:
			j.out = s2.Encode(j.out[:cap(j.out)], raw)
		case w.opts.Level == S2Best:
			j.out = s2.EncodeBest(j.out[:cap(j.out)], raw)
		case dense:
			j.out = j.encodeBetterWherePays(raw)
		case better || total < 4*s2Probe:
			j.out = s2.EncodeBetter(j.out[:cap(j.out)], raw)
		default:
			j.out = s2.Encode(j.out[:cap(j.out)], raw)
		}
	} else {
		j.out = w.enc.EncodeAll(raw, j.out[:0])
	}
	if len(j.out) >= len(raw) {
		j.stored = raw
		if &raw[0] != &j.buf[first*PageSize] {
			// raw is the caller's, which may change once pack returns.
			j.stored = j.buf[:copy(j.buf, raw)]
		}
		j.c.Flags = chunkRaw
	} else {
		j.stored = j.out
		j.c.Flags = 0
	}
	j.finishChunk(total)
}

// finishChunk completes j.c once j.stored and its flags are set: the
// patch flag, lengths and CRC-32C.
func (j *memJob) finishChunk(rawLen int) {
	if j.patch {
		j.c.Flags |= chunkPatch
	}
	j.c.StoredLen = uint32(len(j.stored))
	j.c.RawLen = uint32(rawLen)
	j.c.CRC = crc32.Checksum(j.stored, castagnoli)
}

// s2OutLen is the capacity of a job's output buffer: a chunk's largest S2
// block, plus room for the headers of one sub-block per page
// (encodeRuns).
var s2OutLen = s2.MaxEncodedLen(ChunkSpan) + pagesPerChunk*8

// probeInput gathers the first s2Probe bytes of the present pages of j's
// pieces between pages first and last into j.probeIn, and returns them.
func (j *memJob) probeInput(first, last int, isPresent func(int) bool) []byte {
	if cap(j.probeIn) < s2Probe {
		j.probeIn = make([]byte, s2Probe)
	}
	in := j.probeIn[:0]
	j.eachPresentRun(first, last, isPresent, func(run []byte) bool {
		in = append(in, run[:min(len(run), s2Probe-len(in))]...)
		return len(in) < s2Probe
	})
	return in
}

// encodeRuns compresses the present pages of j's pieces between pages
// first and last (total bytes) into j.out as one S2 block made of one
// sub-block per run of contiguous present pages: the block's length, then
// each sub-block's elements (s2.ConcatBlocks's layout, which S2 decodes
// as one block: a sub-block's copies reach back only into itself). It
// reads each run in place, where s2.Encode of the whole would need the
// runs gathered into one buffer first; on memtouch's pages (every other
// page zero) it finds what that finds. It returns false, with j.out
// undefined, if the block is not smaller than the pages.
func (j *memJob) encodeRuns(first, last int, isPresent func(int) bool, total int) bool {
	out := j.out[:cap(j.out)]
	pos := binary.PutUvarint(out, uint64(total))
	fits := j.eachPresentRun(first, last, isPresent, func(run []byte) bool {
		if pos >= total {
			return false
		}
		n, ok := encodeSubBlocks(out[pos:], run)
		pos += n
		return ok
	})
	if !fits || pos >= total {
		return false
	}
	j.out = out[:pos]
	return true
}

// s2SmallTable is the largest input s2.Encode compresses with its
// smallest hash table that still suits a page (4 KiB, cleared on each
// call). From 4 KiB on it clears a 16 KiB table instead, on every call:
// for an input of one page that is about a fifth of the encoding time.
const s2SmallTable = 4<<10 - 1

// encodeSubBlocks compresses run with s2.Encode into dst as sub-blocks
// without their length headers (encodeRuns's layout) and returns the
// bytes written, or false if dst may be too short for them. A run of one
// page goes in two sub-blocks, its first s2SmallTable bytes and a one-byte
// literal: on memtouch's pages one byte more, and 18% less time than one
// sub-block of the page. Longer runs stay whole, for the repeats across
// their pages.
func encodeSubBlocks(dst, run []byte) (int, bool) {
	n := 0
	for len(run) > 0 {
		part := run
		if len(run) == PageSize {
			part = run[:s2SmallTable]
		}
		if len(dst)-n < s2.MaxEncodedLen(len(part)) {
			return n, false
		}
		enc := s2.Encode(dst[n:], part)
		_, hdr := binary.Uvarint(enc)
		n += copy(dst[n:], enc[hdr:])
		run = run[len(part):]
	}
	return n, true
}

// eachPresentRun calls fn with each run of contiguous present pages
// (isPresent) of j's pieces between pages first and last, in order, until
// fn returns false; it reports whether no call did.
func (j *memJob) eachPresentRun(first, last int, isPresent func(int) bool, fn func(run []byte) bool) bool {
	for i := range j.pieces {
		p := &j.pieces[i]
		data := p.bytes(j)
		pg0 := int(p.rel / PageSize)
		for pg, end := max(pg0, first), min(pg0+len(data)/PageSize, last+1); pg < end; {
			if !isPresent(pg) {
				pg++
				continue
			}
			q := pg + 1
			for q < end && isPresent(q) {
				q++
			}
			if !fn(data[(pg-pg0)*PageSize : (q-pg0)*PageSize]) {
				return false
			}
			pg = q
		}
	}
	return true
}

// s2Probe is how much of a chunk encodeBetterWherePays compresses both
// ways to choose the encoder of the whole chunk.
const s2Probe = 8 << 10

// encodeBetterWherePays compresses raw into j.out with s2.EncodeBetter
// where that finds more than s2.Encode, and with s2.Encode elsewhere. On
// pages whose repeats are short and near (a heap of small records) both
// find the same matches and EncodeBetter is 2 to 2.5 times slower; on
// pages with long-range repeats it is several times smaller. Which one a
// chunk is, its first s2Probe bytes tell, compressed both ways: the
// better encoder is kept if it saves at least 5% there. The choice
// depends on the chunk's bytes alone, so equal spans still give equal
// chunks (content addressing).
func (j *memJob) encodeBetterWherePays(raw []byte) []byte {
	dst := j.out[:cap(j.out)]
	if len(raw) < 4*s2Probe || j.probeSize(raw[:s2Probe], true)*20 < j.probeSize(raw[:s2Probe], false)*19 {
		return s2.EncodeBetter(dst, raw)
	}
	return s2.Encode(dst, raw)
}

// probeSize returns the length of probe compressed by s2.Encode, or with
// better by s2.EncodeBetter.
func (j *memJob) probeSize(probe []byte, better bool) int {
	if better {
		return len(s2.EncodeBetter(j.probeOut(), probe))
	}
	return len(s2.Encode(j.probeOut(), probe))
}

// probeOut returns j's scratch output for a probe of up to s2Probe bytes.
func (j *memJob) probeOut() []byte {
	if cap(j.probe) < s2.MaxEncodedLen(s2Probe) {
		j.probe = make([]byte, s2.MaxEncodedLen(s2Probe))
	}
	return j.probe[:cap(j.probe)]
}

// splitSize returns the length of probe compressed by s2.Encode page by
// page, as encodeRuns would if its pages were runs of their own.
func (j *memJob) splitSize(probe []byte) int {
	n := 0
	for off := 0; off < len(probe); off += PageSize {
		k, _ := encodeSubBlocks(j.probeOut(), probe[off:min(off+PageSize, len(probe))])
		n += k
	}
	return n
}

// putChunk names the packed chunk of j by its content and stores it, unless
// the store has it already. Chunks are independent objects, so the workers
// store them in parallel; the drain only records them in order.
func (w *Writer) putChunk(j *memJob) {
	j.c.Sum, j.c.hash = w.hash.sum(j.stored), w.hash
	if j.packer != nil {
		existed, err := j.packer.put(j.c.Sum, j.stored)
		if err != nil {
			w.setErr(fmt.Errorf("write memory of %s: %w", w.uri, err))
		} else if !existed {
			w.newChunks.Add(1)
			w.newBytes.Add(uint64(len(j.stored)))
		}
		return
	}
	w.looseChunks.Store(true)
	existed, err := w.cs.putChunk(w.ctx, j.c.SumHex(), j.stored)
	if err != nil {
		w.setErr(fmt.Errorf("write memory of %s: %w", w.uri, err))
		return
	}
	if !existed {
		w.newChunks.Add(1)
		w.newBytes.Add(uint64(len(j.stored)))
		w.createdMu.Lock()
		w.created = append(w.created, createdChunk{sum: j.c.SumHex(), at: time.Now()})
		w.createdMu.Unlock()
	}
}

// drain records chunks in production order and recycles jobs.
func (w *Writer) drain() {
	defer w.wg.Done()
	for j := range w.order {
		<-j.done
		if w.getErr() == nil {
			if j.has {
				if w.memHash != nil {
					w.memHash.Write(j.stored)
				}
				j.c.Stored = w.memStored
				if j.reused {
					w.memStored += uint64(j.c.StoredLen)
				} else {
					w.memStored += uint64(len(j.stored))
				}
				w.memData += uint64(j.c.RawLen)
				w.chunks = append(w.chunks, j.c)
			}
			w.handed += j.handed
			if w.opts.Progress != nil && w.getErr() == nil {
				w.opts.Progress(w.handed)
			}
		}
		j.c = Chunk{}
		j.has, j.reused, j.patch = false, false, false
		j.packer = nil
		j.stored = nil
		j.pieces = j.pieces[:0]
		j.handed = 0
		w.pool <- j
	}
}

// pieceAt returns the piece holding page pg of the span, which must be in
// one.
func (j *memJob) pieceAt(pg int) *piece {
	for i := range j.pieces {
		if p := &j.pieces[i]; uint32(pg)*PageSize < p.rel+p.n {
			return p
		}
	}
	panic("storage: page outside every piece")
}

// handOut passes the span being gathered to the workers. A job whose
// pieces still refer to the caller's input calls call.Done once it no
// longer does.
func (w *Writer) handOut(call *sync.WaitGroup) {
	j := w.cur
	w.cur = nil
	for _, p := range j.pieces {
		if p.pending() && call != nil {
			call.Add(1)
			j.call = call
			break
		}
	}
	j.packer = w.packer
	w.order <- j
	w.work <- j
}

// checkRanges validates ranges against each other and what was written
// before: page aligned, increasing, not overlapping, not overflowing.
func (w *Writer) checkRanges(ranges []Range) error {
	next := w.nextOff
	for _, rg := range ranges {
		switch {
		case rg.Off%PageSize != 0 || rg.Len%PageSize != 0:
			return fmt.Errorf("write memory of %s: range [%#x+%#x] not page aligned: %w", w.uri, rg.Off, rg.Len, ErrInvalidArgument)
		case rg.Off < next:
			return fmt.Errorf("write memory of %s: range at %#x before end of previous range %#x: %w", w.uri, rg.Off, next, ErrInvalidArgument)
		case rg.Off+rg.Len < rg.Off || rg.Off+rg.Len > 1<<62:
			return fmt.Errorf("write memory of %s: range [%#x+%#x] overflows: %w", w.uri, rg.Off, rg.Len, ErrInvalidArgument)
		}
		next = rg.Off + rg.Len
	}
	return nil
}

// ReaderViewer is an io.ReaderAt that can also show some of its bytes in
// place: View returns the n bytes at off without copying them, or nil
// where they must be read with ReadAt. A view must stay valid and
// unchanged until WriteMemoryFrom returns.
type ReaderViewer interface {
	io.ReaderAt
	View(off int64, n int) []byte
}

// WriteMemoryFrom hands the memory ranges to the image, reading them from r
// at the same offsets (for example with pread from the memory file: holes
// read as zeros and allocate nothing). Offsets and lengths must be
// multiples of PageSize, and ranges must be increasing and non-overlapping,
// also across calls (ErrInvalidArgument otherwise, before anything is
// read). Gaps between ranges and zero pages inside them are not stored and
// read back as zero.
//
// The ranges are read, scanned and compressed by the workers in parallel,
// ChunkSpan-aligned span by span, each worker with its own buffer. Where r
// is a ReaderViewer, a worker scans and compresses the views r gives in
// place, and copies only the pages it gathers (a span with zero pages
// between its data pages, or one stored uncompressed).
// WriteMemoryFrom returns once every byte of ranges has been read from r,
// so r may change or go away afterwards; compression and storing may still
// be under way. It blocks while the pipeline is full, and returns the first
// error of the pipeline: a failed read of r, a failed store write, a
// cancelled context. After such an error the writer is failed: Commit
// returns the error and deletes what was written.
func (w *Writer) WriteMemoryFrom(r io.ReaderAt, ranges []Range) error {
	return w.writeMemory(r, nil, ranges)
}

// writeMemory hands ranges over, read from r, or (r nil) viewed in data,
// which holds ranges[0] only.
func (w *Writer) writeMemory(r io.ReaderAt, data []byte, ranges []Range) error {
	if err := w.getErr(); err != nil {
		return err
	}
	if err := w.checkRanges(ranges); err != nil {
		return err
	}
	if err := w.startMemory(); err != nil {
		return err
	}
	if err := w.startPack(ranges); err != nil {
		return err
	}
	var call sync.WaitGroup
	err := w.feed(r, data, ranges, &call)
	switch {
	case err != nil || w.cur == nil:
	case w.nextOff >= w.cur.spanOff+ChunkSpan:
		// The span is complete: no later range can add to it.
		w.handOut(&call)
	default:
		// The span still being gathered may take pieces of the next
		// call; read what it has of the input now, so that the input is
		// not retained.
		if err = w.readPieces(w.cur, true); err != nil {
			w.setErr(err)
		}
	}
	call.Wait()
	if err != nil {
		return err
	}
	return w.getErr()
}

func (w *Writer) feed(r io.ReaderAt, data []byte, ranges []Range, call *sync.WaitGroup) error {
	for _, rg := range ranges {
		end := rg.Off + rg.Len
		for off := rg.Off; off < end; {
			spanOff := off &^ (ChunkSpan - 1)
			pend := min(end, spanOff+ChunkSpan)
			if w.cur != nil && w.cur.spanOff != spanOff {
				w.handOut(call)
			}
			if w.cur == nil {
				select {
				case w.cur = <-w.pool:
				case <-w.ctx.Done():
					err := fmt.Errorf("write memory of %s: %w", w.uri, w.ctx.Err())
					w.setErr(err)
					return err
				}
				w.cur.spanOff = spanOff
				if err := w.getErr(); err != nil {
					return err
				}
			}
			w.base = nil
			p := piece{rel: uint32(off - spanOff), n: uint32(pend - off), src: r, srcOff: int64(off)}
			if r == nil {
				p.view = data[off-rg.Off : pend-rg.Off]
			}
			w.cur.pieces = append(w.cur.pieces, p)
			w.cur.handed += pend - off
			off = pend
		}
		w.nextOff = end
		w.memSize = max(w.memSize, end)
	}
	return nil
}

// startPack counts the memory of ranges as handed over and, once the
// writer has been handed packMinBytes, starts its pack if the store packs
// chunks (the file store): the new chunks of a large write go into one
// object rather than one file each.
func (w *Writer) startPack(ranges []Range) error {
	for _, rg := range ranges {
		w.total += rg.Len
	}
	ps, ok := w.cs.(packingStore)
	if w.packer != nil || w.total < packMinBytes || !ok {
		return nil
	}
	p, err := ps.newPacker()
	if err != nil {
		err = fmt.Errorf("write memory of %s: %w", w.uri, err)
		w.setErr(err)
		return err
	}
	w.packer = p
	return nil
}

// WriteMemory hands the memory range [off, off+len(data)) to the image, as
// WriteMemoryFrom does: off and len(data) must be multiples of PageSize and
// ranges must come in increasing, non-overlapping order
// (ErrInvalidArgument otherwise); zero pages are dropped. data is not
// retained after WriteMemory returns; it is read in place by the workers
// (zero pages are not copied, nor a span whose pages are all present).
func (w *Writer) WriteMemory(off uint64, data []byte) error {
	return w.writeMemory(nil, data, []Range{{Off: off, Len: uint64(len(data))}})
}

// finishMemory hands out the last span and stops the pipeline.
func (w *Writer) finishMemory() {
	if !w.memStarted || w.pool == nil {
		return
	}
	if w.cur != nil {
		// Every piece of it is read already (see WriteMemoryFrom).
		w.handOut(nil)
	}
	close(w.work)
	close(w.order)
	w.wg.Wait()
	if w.enc != nil {
		w.enc.Close()
	}
	// Every job is back in the pool, and nothing refers to its buffers.
	for len(w.pool) > 0 {
		if j := <-w.pool; j.buf != nil {
			spanBuffers.Put(&spanBuf{buf: j.buf, out: j.out})
		}
	}
	w.pool = nil
}

// spanBuffers keeps the span buffers of finished writers for the next
// ones, which then neither fault fresh pages in nor clear reused ones
// (about 4% of a 1 GiB write).
var spanBuffers sync.Pool // of *spanBuf

type spanBuf struct{ buf, out []byte }

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
	if w.packer != nil {
		w.packer.close(false)
	}
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
	// The manifest may reference the chunks only once they are durable.
	if err := w.syncChunks(); err != nil {
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
		Memory:      Blob{Key: casMemoryKey, Size: int64(w.memStored), RawSize: int64(w.memData)},
		Index:       Blob{Key: idxKey, Size: int64(len(idx)), RawSize: int64(len(idx)), SHA256: hex.EncodeToString(idxSum[:])},
		Metadata:    w.opts.Metadata,

		ContentAddressed: true,
		ChunkHash:        w.hash.String(),
		Parent:           w.opts.Parent,
	}
	if w.memHash != nil {
		m.Memory.SHA256 = hex.EncodeToString(w.memHash.Sum(nil))
	}
	mb, err := MarshalManifest(m)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	if w.opts.SignKey != nil {
		mb = SignManifest(mb, w.opts.SignKey)
		m.Signer = w.opts.SignKey.Public().(ed25519.PublicKey)
	}
	if err := w.ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	if w.checkParent != nil {
		if err := w.checkParent(w.ctx); err != nil {
			return nil, fmt.Errorf("commit %s: %w", w.uri, err)
		}
	}
	if w.checkReplaced != nil {
		if err := w.checkReplaced(w.ctx); err != nil {
			return nil, fmt.Errorf("commit %s: %w", w.uri, err)
		}
	}
	all := sha256.Sum256(mb)
	m.digest = hex.EncodeToString(all[:])
	if err := w.st.commit(mb, w.opts.Replace); err != nil {
		return nil, fmt.Errorf("commit %s: %w", w.uri, err)
	}
	return m, nil
}

// syncChunks makes the chunks the image references durable: it publishes
// the writer's pack (durable once published), and syncs the store's chunk
// files if it stored or found any (their writer may not have synced them
// yet).
func (w *Writer) syncChunks() error {
	if w.packer != nil {
		if err := w.packer.finish(); err != nil {
			return err
		}
	}
	if w.looseChunks.Load() || w.packer != nil && w.packer.looseFound.Load() {
		return w.cs.syncChunks(w.ctx)
	}
	return nil
}

// casMemoryKey is the nominal memory blob key of a content-addressed
// image: its chunks are stored under their own addresses.
const casMemoryKey = "chunks"

// NewChunks returns how many of the chunks written so far the store did
// not have yet, and their stored bytes; the others were shared with images
// already stored. Valid once Commit has returned.
func (w *Writer) NewChunks() (chunks, bytes uint64) {
	return w.newChunks.Load(), w.newBytes.Load()
}

var errAborted = errors.New("writer aborted")

// removeCreated deletes the chunks this writer stored, except those whose
// time moved since (another writer found and refreshed them, and may
// reference them). Failures are left to Store.Prune.
func (w *Writer) removeCreated() {
	ctx := context.Background()
	slack := w.cs.chunkTimeSlack()
	for _, c := range w.created {
		_, _ = w.cs.removeChunk(ctx, c.sum, time.Since(c.at)+slack)
	}
	w.created = nil
}

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
	w.removeCreated()
	if w.packer != nil {
		w.packer.close(true)
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
