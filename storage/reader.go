package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// batchBytes is the most stored bytes fetched by one ranged read when
// reading memory: consecutive chunks are fetched together.
const batchBytes = 8 << 20

// batchChunks is the most chunks in one batch, so that memory that
// compresses very well (a 1 GiB workload can store 5 MiB) is still spread
// over all workers: a batch is decompressed by one.
const batchChunks = 16

// Image is an opened image: its manifest and memory index are verified;
// blobs are read on demand and every chunk is checked before it is used.
// An Image is safe for concurrent use; Close it when done.
type Image struct {
	uri    string
	h      handle
	m      *Manifest
	chunks []Chunk
	mem    blobReader // the memory blob, or a casBlob over the chunks
	cs     chunkStore
	dec    *zstd.Decoder

	// scratchMu protects spare and closed: read and decompression
	// buffers kept for the next read of this image (a lazy restore reads
	// one chunk at a time on first touch, and a fresh populated buffer
	// costs more than the chunk's decode), freed by Close.
	scratchMu sync.Mutex
	spare     []scratchBuf
	closed    bool
}

// maxSpare is the most buffers an Image keeps between reads: two for each
// of forEachBatch's workers on a machine with four CPUs or fewer.
const maxSpare = 8

// minScratch is the least a kept buffer holds: one chunk, stored (with
// room for a chunk that did not compress) or decompressed, so that any
// buffer kept from one chunk's read serves the next.
const minScratch = ChunkSpan + ChunkSpan/4

// getScratch returns a populated buffer of at least n bytes, kept from an
// earlier read if there is one (the smallest that fits), else made with
// at least minScratch bytes.
func (im *Image) getScratch(n int) scratchBuf {
	im.scratchMu.Lock()
	best := -1
	for i, s := range im.spare {
		if len(s.b) >= n && (best < 0 || len(s.b) < len(im.spare[best].b)) {
			best = i
		}
	}
	if best >= 0 {
		s := im.spare[best]
		im.spare = append(im.spare[:best], im.spare[best+1:]...)
		im.scratchMu.Unlock()
		return s
	}
	im.scratchMu.Unlock()
	return newScratch(max(n, minScratch))
}

// putScratch keeps s for a later read, or frees it if the image is
// closed or keeps enough already.
func (im *Image) putScratch(s scratchBuf) {
	if s.b == nil {
		return
	}
	im.scratchMu.Lock()
	if !im.closed && len(im.spare) < maxSpare {
		im.spare = append(im.spare, s)
		s = scratchBuf{}
	}
	im.scratchMu.Unlock()
	s.free()
}

func openImage(ctx context.Context, b backend, name string) (*Image, error) {
	uri := b.imageURI(name)
	h, err := b.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", uri, err)
	}
	im := &Image{uri: uri, h: h, cs: b}
	if err := im.load(ctx); err != nil {
		im.Close()
		return nil, fmt.Errorf("open %s: %w", uri, err)
	}
	return im, nil
}

// blobErr turns a missing blob of a published image into ErrCorrupt.
func blobErr(what string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s missing (%v): %w", what, err, ErrCorrupt)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (im *Image) load(ctx context.Context) error {
	m, err := readManifest(ctx, im.h)
	if err != nil {
		return err
	}
	im.m = m
	idx, err := im.readBlob(ctx, "index", m.Index)
	if err != nil {
		return err
	}
	if im.chunks, err = ParseIndex(idx, m); err != nil {
		return err
	}
	if m.ContentAddressed {
		// Each chunk is checked against its address when read.
		im.mem = &casBlob{cs: im.cs, uri: im.uri, chunks: im.chunks, hash: m.chunkHash()}
	} else if im.mem, err = im.h.blob(ctx, m.Memory.Key, m.Memory.Size); err != nil {
		return blobErr("memory blob "+m.Memory.Key, err)
	}
	// The index covers the memory blob exactly (ParseIndex): bytes
	// appended to it are not the image's.
	size, err := im.mem.size(ctx)
	if err != nil {
		return blobErr("memory blob "+m.Memory.Key, err)
	}
	if size != m.Memory.Size {
		return fmt.Errorf("memory blob %s: %d bytes, manifest says %d: %w", m.Memory.Key, size, m.Memory.Size, ErrCorrupt)
	}
	im.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(ChunkSpan), zstd.WithDecoderMaxWindow(ChunkSpan))
	return err
}

// readBlob reads a whole checksummed blob (state or index) and verifies it.
func (im *Image) readBlob(ctx context.Context, what string, bl Blob) ([]byte, error) {
	r, err := im.h.blob(ctx, bl.Key, bl.Size)
	if err != nil {
		return nil, blobErr(what+" blob "+bl.Key, err)
	}
	defer r.close()
	// Check the stored size before allocating what the manifest claims.
	size, err := r.size(ctx)
	if err != nil {
		return nil, blobErr(what+" blob "+bl.Key, err)
	}
	if size != bl.Size {
		return nil, fmt.Errorf("%s blob %s: %d bytes, manifest says %d: %w", what, bl.Key, size, bl.Size, ErrCorrupt)
	}
	buf := make([]byte, bl.Size)
	if err := r.readAt(ctx, buf, 0); err != nil {
		return nil, blobErr(what+" blob "+bl.Key, err)
	}
	sum := sha256.Sum256(buf)
	if hex.EncodeToString(sum[:]) != bl.SHA256 {
		return nil, fmt.Errorf("%s blob %s: checksum mismatch: %w", what, bl.Key, ErrCorrupt)
	}
	return buf, nil
}

// URI returns the image's URI.
func (im *Image) URI() string { return im.uri }

// Manifest returns the verified manifest. The caller must not modify it.
func (im *Image) Manifest() *Manifest { return im.m }

// Chunks returns the memory index, sorted by offset, a patch (IsPatch)
// right after its base. The caller must not modify it.
func (im *Image) Chunks() []Chunk { return im.chunks }

// FindChunk returns the index of the chunk whose span contains memory offset
// off, for lazy restore; false if off lies in no chunk (the page is zero).
// A patch is never returned: reading its base (ReadChunk) applies it.
func (im *Image) FindChunk(off uint64) (int, bool) {
	i := sort.Search(len(im.chunks), func(i int) bool {
		if im.chunks[i].IsPatch() {
			i-- // its base's span holds it
		}
		c := &im.chunks[i]
		return c.Offset+uint64(c.Span) > off
	})
	if i < len(im.chunks) && im.chunks[i].Offset <= off {
		return i, true
	}
	return 0, false
}

// Close releases the image.
func (im *Image) Close() error {
	im.scratchMu.Lock()
	im.closed = true
	for _, s := range im.spare {
		s.free()
	}
	im.spare = nil
	im.scratchMu.Unlock()
	if im.dec != nil {
		im.dec.Close()
	}
	if im.mem != nil {
		im.mem.close()
	}
	return im.h.close()
}

// State returns the decompressed state stream. The stored blob is read
// whole, its checksum verified and it is decompressed, its length checked
// against the manifest's rawSize (ErrCorrupt), all before the first byte
// is returned: a reader of the state (a restore) and Verify (inspect)
// check the same things, and a restore never starts decoding a state it
// would have to reject at its end.
func (im *Image) State(ctx context.Context) (io.ReadCloser, error) {
	stored, err := im.readBlob(ctx, "state", im.m.State)
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", im.uri, err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(stored), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(stateWindow), zstd.WithDecoderMaxWindow(stateWindow))
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", im.uri, err)
	}
	defer dec.Close()
	want := im.m.State.RawSize
	// Grown as bytes arrive, not sized from the manifest's claim.
	var raw bytes.Buffer
	n, err := raw.ReadFrom(io.LimitReader(dec, want+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read state of %s: %v: %w", im.uri, err, ErrCorrupt)
	case n > want:
		return nil, fmt.Errorf("read state of %s: longer than its %d bytes (rawSize): %w", im.uri, want, ErrCorrupt)
	case n < want:
		return nil, fmt.Errorf("read state of %s: %d bytes, rawSize says %d: %w", im.uri, n, want, ErrCorrupt)
	}
	return io.NopCloser(&raw), nil
}

// chunkErr names a chunk in an ErrCorrupt error.
func (im *Image) chunkErr(i int, format string, args ...any) error {
	c := &im.chunks[i]
	return fmt.Errorf("%s: memory chunk %d (offset %#x, stored at %d+%d): %s: %w",
		im.uri, i, c.Offset, c.Stored, c.StoredLen, fmt.Sprintf(format, args...), ErrCorrupt)
}

// decode verifies chunk i's payload and decompresses it into out, which has
// exactly RawLen bytes.
func (im *Image) decode(i int, payload, out []byte) error {
	c := &im.chunks[i]
	if got := crc32.Checksum(payload, castagnoli); got != c.CRC {
		return im.chunkErr(i, "checksum %#08x, want %#08x", got, c.CRC)
	}
	if c.Flags&chunkRaw != 0 {
		copy(out, payload)
		return nil
	}
	if im.m.Compression.Algorithm == CodecS2 {
		n, err := s2.DecodedLen(payload)
		if err != nil || n != len(out) {
			return im.chunkErr(i, "s2 block of %d bytes (%v), want %d", n, err, len(out))
		}
		res, err := s2.Decode(out, payload)
		if err != nil || len(res) != len(out) || (len(res) > 0 && &res[0] != &out[0]) {
			return im.chunkErr(i, "s2 decode: %v", err)
		}
		return nil
	}
	res, err := im.dec.DecodeAll(payload, out[:0:len(out)]) // cap: the decoder may use spare capacity
	if err != nil {
		return im.chunkErr(i, "decompress: %v", err)
	}
	if len(res) != len(out) || (len(res) > 0 && &res[0] != &out[0]) {
		return im.chunkErr(i, "decompressed to %d bytes, want %d", len(res), len(out))
	}
	return nil
}

// forEachChunk fetches chunks [from, to) in batches (consecutive payloads,
// up to batchBytes and batchChunks, and no more than a worker's share of
// the chunks so that a small image is still decoded in parallel) with
// parallel ranged reads, and calls fn with each chunk's stored payload; fn
// verifies it through decode. fn runs concurrently on several goroutines;
// scratch is a per-goroutine buffer of ChunkSpan bytes, valid until
// forEachChunk returns. The first error cancels the rest.
func (im *Image) forEachChunk(ctx context.Context, from, to int, fn func(i int, payload, scratch []byte) error) error {
	workers := max(runtime.GOMAXPROCS(0), 4)
	batches, biggest := planBatches(im.chunks, from, to, workers)
	return im.forEachBatch(ctx, batches, biggest, workers, fn)
}

// forEachBatch is forEachChunk over the given batches, whose largest
// stores biggest bytes, with up to workers parallel reads.
func (im *Image) forEachBatch(ctx context.Context, batches []batch, biggest uint64, workers int, fn func(i int, payload, scratch []byte) error) error {
	if len(batches) == 0 {
		return nil
	}
	if _, ok := im.mem.(*casBlob); ok {
		batches, biggest = singleChunks(im.chunks, batches)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	work := func(next <-chan batch) {
		// The read buffer, like scratch, is populated in one call
		// rather than faulted in page by page (see scratchBuf), or
		// kept from an earlier read of the image.
		var rb, sb scratchBuf
		defer func() { im.putScratch(rb); im.putScratch(sb) }()
		for b := range next {
			first, last := &im.chunks[b.from], &im.chunks[b.to-1]
			n := last.Stored + uint64(last.StoredLen) - first.Stored
			if rb.b == nil {
				rb = im.getScratch(int(biggest))
				sb = im.getScratch(ChunkSpan)
			}
			scratch := sb.b[:ChunkSpan:ChunkSpan]
			buf := rb.b[:n]
			if err := im.mem.readAt(ctx, buf, int64(first.Stored)); err != nil {
				if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
					err = im.chunkErr(b.from, "%v", err)
				} else {
					err = fmt.Errorf("%s: read memory chunks %d..%d: %w", im.uri, b.from, b.to-1, err)
				}
				fail(err)
				continue
			}
			for i := b.from; i < b.to; i++ {
				c := &im.chunks[i]
				p := buf[c.Stored-first.Stored:][:c.StoredLen]
				if err := fn(i, p, scratch); err != nil {
					fail(err)
					break
				}
			}
		}
	}
	if len(batches) == 1 {
		// One batch (a lazy restore's first touch of a chunk): read on
		// the caller's goroutine, which then needs no other goroutine
		// to be scheduled, and no P handed back and forth.
		next := make(chan batch, 1)
		next <- batches[0]
		close(next)
		work(next)
		if firstErr != nil {
			return firstErr
		}
		return ctx.Err()
	}
	next := make(chan batch)
	for w := 0; w < min(workers, len(batches)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(next)
		}()
	}
feed:
	for _, b := range batches {
		select {
		case next <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// batch is a run of chunks [from, to) fetched by one ranged read.
type batch struct{ from, to int }

// planBatches cuts chunks [from, to) into batches of consecutive chunks of
// at most batchBytes stored bytes, batchChunks chunks and a worker's share
// of the chunks (so that a small image is still decoded in parallel), and
// returns them with the stored size of the largest.
func planBatches(chunks []Chunk, from, to, workers int) ([]batch, uint64) {
	perBatch := max(1, min(batchChunks, (to-from+workers-1)/workers))
	var batches []batch
	var biggest uint64
	for i := from; i < to; {
		j := i + 1
		for j < to && (chunks[j].IsPatch() || j-i < perBatch && chunks[j].Stored+uint64(chunks[j].StoredLen)-chunks[i].Stored <= batchBytes) {
			// A patch stays with its base: one worker applies both, in
			// order.
			j++
		}
		batches = append(batches, batch{i, j})
		biggest = max(biggest, chunks[j-1].Stored+uint64(chunks[j-1].StoredLen)-chunks[i].Stored)
		i = j
	}
	return batches, biggest
}

// singleChunks cuts batches into batches of one chunk each (a chunk and
// the patch that follows it count as one), and returns
// them with the stored size of the largest. The chunks of a
// content-addressed image are objects of their own, fetched one by one
// whatever the batch (casBlob.readAt): alone, each worker's read buffer
// (populated on its first use) holds one chunk rather than a batch, and
// the workers take the chunks one at a time.
func singleChunks(chunks []Chunk, batches []batch) ([]batch, uint64) {
	var out []batch
	var biggest uint64
	for _, b := range batches {
		for i := b.from; i < b.to; {
			// A patch stays with its base (planBatches).
			j := i + 1
			for j < b.to && chunks[j].IsPatch() {
				j++
			}
			out = append(out, batch{i, j})
			biggest = max(biggest, chunks[j-1].Stored+uint64(chunks[j-1].StoredLen)-chunks[i].Stored)
			i = j
		}
	}
	return out, biggest
}

// planIndexBatches cuts the chunks idx (ascending) into batches of
// consecutive chunks as planBatches does, and returns them with the stored
// size of the largest.
func planIndexBatches(chunks []Chunk, idx []int, workers int) ([]batch, uint64) {
	var batches []batch
	var biggest uint64
	for k := 0; k < len(idx); {
		j := k + 1
		for j < len(idx) && idx[j] == idx[j-1]+1 {
			j++
		}
		b, big := planBatches(chunks, idx[k], idx[j-1]+1, workers)
		batches = append(batches, b...)
		biggest = max(biggest, big)
		k = j
	}
	return batches, biggest
}

// ReadChunkRuns reads the chunks idx (ascending, each in range: else
// ErrInvalidArgument) as ReadMemoryRuns reads all of them: put gets each
// chunk's index and its runs of present pages, concurrently for disjoint
// chunks, the runs valid only during the call. Consecutive chunks are
// fetched together with ranged reads (a lazy restore's working set and
// background batches, or a single chunk on first touch). A chunk and its
// patch go together (ErrInvalidArgument otherwise): put gets the patch's
// runs after the chunk's, on the same goroutine.
func (im *Image) ReadChunkRuns(ctx context.Context, idx []int, put func(i int, runs []PageRun) error) error {
	return im.ReadChunkRunsIf(ctx, idx, nil, put)
}

// ReadChunkRunsIf is ReadChunkRuns where chunk i, once read, is verified,
// decompressed and put only if want(i) (nil: every chunk) says so, called
// on the goroutine that would put it, just before: a lazy restore's
// stream claims each chunk there, and one that a first touch loaded
// meanwhile costs no decoding. A chunk and its patch are asked about in
// that order, on one goroutine.
func (im *Image) ReadChunkRunsIf(ctx context.Context, idx []int, want func(i int) bool, put func(i int, runs []PageRun) error) error {
	for k, i := range idx {
		if i < 0 || i >= len(im.chunks) || (k > 0 && i <= idx[k-1]) {
			return fmt.Errorf("%s: chunk %d of %d out of range or order: %w", im.uri, i, len(im.chunks), ErrInvalidArgument)
		}
		patched := i+1 < len(im.chunks) && im.chunks[i+1].IsPatch()
		if (im.chunks[i].IsPatch() && (k == 0 || idx[k-1] != i-1)) || (patched && (k+1 == len(idx) || idx[k+1] != i+1)) {
			return fmt.Errorf("%s: chunk %d without its patch or base: %w", im.uri, i, ErrInvalidArgument)
		}
	}
	workers := max(runtime.GOMAXPROCS(0), 4)
	batches, biggest := planIndexBatches(im.chunks, idx, workers)
	return im.forEachBatch(ctx, batches, biggest, workers, func(i int, payload, scratch []byte) error {
		if want != nil && !want(i) {
			return nil
		}
		return im.putRuns(i, payload, scratch, func(runs []PageRun) error { return put(i, runs) })
	})
}

// putRuns verifies and decompresses chunk i's payload into scratch and
// hands put its runs of present pages.
func (im *Image) putRuns(i int, payload, scratch []byte, put func(runs []PageRun) error) error {
	c := &im.chunks[i]
	data := scratch[:c.RawLen]
	if err := im.decode(i, payload, data); err != nil {
		return err
	}
	if c.Dense() {
		return put([]PageRun{{Off: c.Offset, Data: data}})
	}
	rp := runsPool.Get().(*[]PageRun)
	runs := (*rp)[:0]
	im.scatter(c, data, func(spanOff int, b []byte) {
		runs = append(runs, PageRun{Off: c.Offset + uint64(spanOff), Data: b})
	})
	err := put(runs)
	clear(runs) // drop the references to scratch
	*rp = runs[:0]
	runsPool.Put(rp)
	return err
}

// scratchBuf is decompression scratch memory: an anonymous mapping
// populated in one system call, because a fresh heap page costs a fault on
// its first touch, which on this machine kind is expensive (4 MiB: 17-30
// ms from make and first touch, 5-14 ms populated). It falls back to the
// heap where mmap fails.
type scratchBuf struct {
	b      []byte
	mapped bool
}

// scratchMade counts the buffers newScratch made (tests compare it across
// reads). Accessed atomically.
var scratchMade atomic.Int64

func newScratch(n int) scratchBuf {
	if n == 0 {
		return scratchBuf{}
	}
	scratchMade.Add(1)
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return scratchBuf{b: make([]byte, n)}
	}
	return scratchBuf{b: b, mapped: true}
}

// free unmaps the scratch memory; nothing may use it afterwards.
func (s scratchBuf) free() {
	if s.mapped {
		_ = unix.Munmap(s.b)
	}
}

// MemoryDest gives the destination of a chunk: a writable slice of exactly n
// bytes for the memory range [off, off+n). The chunk is decompressed
// straight into it (dense chunks) or its present pages are copied in
// (sparse chunks); pages absent from the image are not written, so the
// destination must read as zero there (a fresh memfd or file). It is called
// concurrently for disjoint ranges.
type MemoryDest func(off uint64, n int) ([]byte, error)

// ReadMemoryTo restores all memory into dst with parallel ranged reads and
// parallel decompression. Each chunk's checksum is verified before it is
// decompressed; the first error (ErrCorrupt naming the chunk, a store
// error, the error dst returned) stops the others.
func (im *Image) ReadMemoryTo(ctx context.Context, dst MemoryDest) error {
	return im.forEachChunk(ctx, 0, len(im.chunks), func(i int, payload, scratch []byte) error {
		c := &im.chunks[i]
		out, err := dst(c.Offset, int(c.Span))
		if err != nil {
			return err
		}
		if len(out) != int(c.Span) {
			return fmt.Errorf("%s: destination of chunk %d has %d bytes, want %d: %w", im.uri, i, len(out), c.Span, ErrInvalidArgument)
		}
		if c.Dense() {
			return im.decode(i, payload, out)
		}
		if err := im.decode(i, payload, scratch[:c.RawLen]); err != nil {
			return err
		}
		im.scatter(c, scratch, func(pageOff int, data []byte) { copy(out[pageOff:], data) })
		return nil
	})
}

// scatter calls put for each run of present pages of c, with its offset in
// the span and its bytes in the packed payload.
func (im *Image) scatter(c *Chunk, packed []byte, put func(spanOff int, data []byte)) {
	pages := int(c.Span / PageSize)
	k := 0
	for p := 0; p < pages; {
		if !c.present(p) {
			p++
			continue
		}
		q := p
		for q < pages && c.present(q) {
			q++
		}
		n := (q - p) * PageSize
		put(p*PageSize, packed[k:k+n])
		k += n
		p = q
	}
}

// ReadMemoryAt restores all memory into w (for example an *os.File), writing
// only present pages, in parallel. The destination must read as zero
// elsewhere.
func (im *Image) ReadMemoryAt(ctx context.Context, w io.WriterAt) error {
	return im.forEachChunk(ctx, 0, len(im.chunks), func(i int, payload, scratch []byte) error {
		c := &im.chunks[i]
		if err := im.decode(i, payload, scratch[:c.RawLen]); err != nil {
			return err
		}
		var werr error
		im.scatter(c, scratch, func(spanOff int, data []byte) {
			if werr == nil {
				_, werr = w.WriteAt(data, int64(c.Offset)+int64(spanOff))
			}
		})
		if werr != nil {
			return fmt.Errorf("%s: write memory chunk %d: %w", im.uri, i, werr)
		}
		return nil
	})
}

// PageRun is a run of present pages read from an image: Data belongs at
// memory offset Off. Both are multiples of PageSize.
type PageRun struct {
	Off  uint64
	Data []byte
}

// ReadMemoryRuns restores all memory by handing put, chunk by chunk, the
// runs of present pages (one run for a dense chunk), in offset order within
// a chunk. Pages absent from the image are in no run: the destination must
// read as zero there, and a destination that writes only what it is given
// keeps them as holes. put is called concurrently from several goroutines
// for disjoint ranges; the runs and their data are valid only during the
// call. Each chunk's checksum is verified before it is decompressed; the
// first error (ErrCorrupt naming the chunk, a store error, the error put
// returned) stops the others.
func (im *Image) ReadMemoryRuns(ctx context.Context, put func(runs []PageRun) error) error {
	return im.forEachChunk(ctx, 0, len(im.chunks), func(i int, payload, scratch []byte) error {
		return im.putRuns(i, payload, scratch, put)
	})
}

// runsPool holds run lists for ReadMemoryRuns: a chunk has at most one run
// per two pages, plus one. Reusing them saves a fresh page of heap per
// chunk, which costs a fault the first time it is touched.
var runsPool = sync.Pool{New: func() any {
	s := make([]PageRun, 0, pagesPerChunk/2+1)
	return &s
}}

// ReadChunk reads chunk i into dst, which must have exactly its Span bytes:
// present pages are decompressed, absent ones zeroed, and a patch after
// it applied. It is the lazy-restore primitive (fetch the chunk around a
// faulting page). A patch cannot be read alone (ErrInvalidArgument).
func (im *Image) ReadChunk(ctx context.Context, i int, dst []byte) error {
	if i < 0 || i >= len(im.chunks) || im.chunks[i].IsPatch() {
		return fmt.Errorf("%s: chunk %d of %d: %w", im.uri, i, len(im.chunks), ErrInvalidArgument)
	}
	c := &im.chunks[i]
	if len(dst) != int(c.Span) {
		return fmt.Errorf("%s: destination of chunk %d has %d bytes, want %d: %w", im.uri, i, len(dst), c.Span, ErrInvalidArgument)
	}
	if err := im.readOneChunk(ctx, i, dst); err != nil {
		return err
	}
	if i+1 < len(im.chunks) && im.chunks[i+1].IsPatch() {
		p := &im.chunks[i+1]
		return im.readOneChunk(ctx, i+1, dst[p.Offset-c.Offset:][:p.Span])
	}
	return nil
}

// readOneChunk reads chunk i alone into dst (its Span bytes): a patch's
// present pages only, any other chunk's whole span.
func (im *Image) readOneChunk(ctx context.Context, i int, dst []byte) error {
	c := &im.chunks[i]
	payload := make([]byte, c.StoredLen)
	if err := im.mem.readAt(ctx, payload, int64(c.Stored)); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			return im.chunkErr(i, "%v", err)
		}
		return fmt.Errorf("%s: read memory chunk %d: %w", im.uri, i, err)
	}
	if c.Dense() {
		return im.decode(i, payload, dst)
	}
	packed := make([]byte, c.RawLen)
	if err := im.decode(i, payload, packed); err != nil {
		return err
	}
	if !c.IsPatch() {
		clear(dst) // a patch leaves its base's other pages
	}
	im.scatter(c, packed, func(spanOff int, data []byte) { copy(dst[spanOff:], data) })
	return nil
}

// OpenOptions are what an image must satisfy beyond its own consistency
// (OpenImageWith, Image.Check).
type OpenOptions struct {
	// MaxMemorySize, if not zero, is the largest memory size accepted:
	// what the restoring kernel can hold (ErrInvalidArgument beyond).
	MaxMemorySize uint64
	// VerifyKey, if set, requires the image to be signed by this key, and
	// its memory blob to match the signed SHA-256 (ErrSignature).
	VerifyKey ed25519.PublicKey
	// ChecksumsOnly, without VerifyKey, has the content-addressed chunks
	// read later checked by their CRC-32C alone, not also against their
	// address (a BLAKE3 or SHA-256 of each). Both detect damage; without a
	// signature neither proves where the bytes came from (an unsigned
	// index can name any chunk), so a restore that verifies nothing
	// spares the hash. With VerifyKey it is ignored: the addresses are
	// what binds the chunks to the signature.
	ChecksumsOnly bool
	// SignatureOnly, with VerifyKey, checks the manifest's signature but
	// does not read the memory blob for its SHA-256: for a caller that
	// reads none of the image's memory (a restore from a copy of it made
	// earlier with every chunk checked against its address, which the
	// signed manifest binds through the index).
	SignatureOnly bool
}

// OpenImageWith opens an image like OpenImage, then checks it against o
// (Image.Check). It is the one validation path of snap inspect and snap
// restore.
func OpenImageWith(ctx context.Context, imageURI, storeURI string, o OpenOptions) (*Image, error) {
	img, err := OpenImage(ctx, imageURI, storeURI)
	if err != nil {
		return nil, err
	}
	if err := img.Check(ctx, o); err != nil {
		img.Close()
		return nil, err
	}
	return img, nil
}

// Check checks the opened image against o: its memory size, and with
// o.VerifyKey its signature and (unless o.SignatureOnly) the SHA-256 of
// its memory blob (which is read whole for that). The state and index blobs are bound to the
// signed manifest by the SHA-256 checked whenever they are read.
func (im *Image) Check(ctx context.Context, o OpenOptions) error {
	m := im.m
	if o.MaxMemorySize != 0 && m.MemorySize > o.MaxMemorySize {
		return fmt.Errorf("%s: memory of %d bytes is over the %d bytes a sandbox can have: %w",
			im.uri, m.MemorySize, o.MaxMemorySize, ErrInvalidArgument)
	}
	if o.VerifyKey == nil {
		if cb, ok := im.mem.(*casBlob); ok && o.ChecksumsOnly {
			cb.skipAddress.Store(true)
		}
		return nil
	}
	if err := m.VerifySignature(o.VerifyKey); err != nil {
		return fmt.Errorf("%s: %w", im.uri, err)
	}
	if o.SignatureOnly {
		return nil
	}
	if err := im.verifyMemoryDigest(ctx); err != nil {
		return fmt.Errorf("%s: %w", im.uri, err)
	}
	return nil
}

// verifyMemoryDigest reads the memory blob in order and compares its
// SHA-256 with the manifest's.
func (im *Image) verifyMemoryDigest(ctx context.Context) error {
	h := sha256.New()
	buf := make([]byte, min(batchBytes, max(im.m.Memory.Size, 1)))
	for off := int64(0); off < im.m.Memory.Size; {
		p := buf[:min(int64(len(buf)), im.m.Memory.Size-off)]
		if err := im.mem.readAt(ctx, p, off); err != nil {
			if errors.Is(err, ErrCorrupt) {
				// A chunk that no longer matches its address was altered.
				return fmt.Errorf("memory blob %s altered: %v: %w", im.m.Memory.Key, err, ErrSignature)
			}
			return blobErr("memory blob "+im.m.Memory.Key, err)
		}
		h.Write(p)
		off += int64(len(p))
	}
	if hex.EncodeToString(h.Sum(nil)) != im.m.Memory.SHA256 {
		return fmt.Errorf("memory blob %s does not match its signed SHA-256 (altered): %w", im.m.Memory.Key, ErrSignature)
	}
	return nil
}

// Verify reads every blob and checks every checksum without keeping the
// data: the state stream (checksum and length) and each memory chunk
// (checksum, decompression, length). It returns the first ErrCorrupt.
func (im *Image) Verify(ctx context.Context) error {
	st, err := im.State(ctx)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, st)
	st.Close()
	if err != nil {
		return err
	}
	return im.forEachChunk(ctx, 0, len(im.chunks), func(i int, payload, scratch []byte) error {
		return im.decode(i, payload, scratch[:im.chunks[i].RawLen])
	})
}
