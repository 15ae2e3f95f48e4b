package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Content-addressed chunks (format 1.2). A store keeps every memory chunk
// once, under the hex hash of its stored bytes (the compressed payload),
// whatever image it belongs to. The hash is the image's chunk hash
// (Manifest.ChunkHash): BLAKE3 from format 1.5, SHA-256 before; both are
// 32 bytes, so one store holds chunks of both under names of one shape:
//
//	file store:  ROOT/.chunks/ab/ab12...ef      (first two hex digits, then all 64)
//	             ROOT/.packs/ID.pack, ID.idx    (a large write's new chunks, format 1.4)
//	S3 store:    PREFIX/.chunks/ab12...ef
//
// The address is the hash of the stored bytes, not of the raw pages: a
// reader verifies a chunk against its address before decompressing it,
// with no codec involved, and the address is what a signature covers (the
// signed manifest holds the index's SHA-256, the index every chunk's
// address). The price is that the same pages compressed by another codec
// or level are another chunk; saves of one sandbox use one codec, so they
// still share. So is the same chunk under the other hash: an image saved
// against a parent takes the parent's chunk hash (store.Create), so that
// an incremental save over a SHA-256 parent still finds the parent's
// chunks; a full save starts a chain on BLAKE3.
//
// Lifecycle: a writer stores its chunks before its manifest, so a chunk may
// exist that no image references yet (being written) or any more (its
// images were deleted, or their writer died). Such chunks are garbage only
// once old: Store.Prune sweeps the chunks that no published image
// references and that are older than its age (mark, then sweep; a crash in
// the middle leaves garbage, never a referenced chunk deleted). A writer
// that finds a chunk already stored refreshes its age, so that a sweep
// does not take it for garbage while the writer lives. Deleting an image
// deletes none of its chunks. A writer that fails or is aborted deletes
// the chunks it stored itself, unless another writer refreshed them since
// (the same age check as a sweep's: what it misses, a prune removes).

// chunkStore is the backend's content-addressed chunk area.
type chunkStore interface {
	// putChunk stores data as chunk sum (the hex hash of data) unless
	// the store has it; if it has, it refreshes the chunk's age. It may
	// be called concurrently, also for the same chunk. Stored chunks are
	// durable after syncChunks.
	putChunk(ctx context.Context, sum string, data []byte) (existed bool, err error)
	// syncChunks makes every chunk put so far durable.
	syncChunks(ctx context.Context) error
	// chunkReader returns what opens chunks for one reader (an Image),
	// closed with it.
	chunkReader(ctx context.Context) (chunkOpener, error)
	// listChunks returns every stored chunk and when it was stored or
	// last refreshed.
	listChunks(ctx context.Context) ([]chunkInfo, error)
	// removeChunk deletes chunk sum if it is (still) older than
	// olderThan, checked just before deleting, and reports whether it did.
	removeChunk(ctx context.Context, sum string, olderThan time.Duration) (bool, error)
	// chunkURI names chunk sum in messages and Prune's result.
	chunkURI(sum string) string
	// chunkTimeSlack is how coarse the store's chunk times are: a
	// refresh up to that long after a chunk was stored may not show.
	chunkTimeSlack() time.Duration
}

// packingStore is a chunk store that keeps the new chunks of a large write
// in one pack (filestore_packs.go): the file store.
type packingStore interface {
	// newPacker starts a writer's pack.
	newPacker() (*filePacker, error)
}

// chunkOpener opens chunks; it is safe for concurrent use.
type chunkOpener interface {
	// chunk opens chunk sum (ErrNotFound if absent).
	chunk(ctx context.Context, sum string) (blobReader, error)
	close() error
}

type chunkInfo struct {
	sum     string
	modTime time.Time
}

// validSum accepts a chunk address: 64 lowercase hex digits.
func validSum(s string) bool {
	if len(s) != 2*addrSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// casBlob presents the chunks of a content-addressed image as the memory
// blob of older formats: their stored bytes back to back in index order.
// Every read fetches whole chunks and checks each against its address.
type casBlob struct {
	cs     chunkStore
	uri    string
	chunks []Chunk
	// hash is the image's chunk hash, which gives each chunk its address.
	hash chunkHash

	// once opens op, the chunk opener of this reader, at the first read.
	once  sync.Once
	op    chunkOpener
	opErr error

	// skipAddress has chunks checked by their CRC-32C alone
	// (OpenOptions.ChecksumsOnly). Accessed atomically.
	skipAddress atomic.Bool
}

func (b *casBlob) readAt(ctx context.Context, p []byte, off int64) error {
	i := sort.Search(len(b.chunks), func(i int) bool {
		c := &b.chunks[i]
		return int64(c.Stored)+int64(c.StoredLen) > off
	})
	for len(p) > 0 {
		if i >= len(b.chunks) {
			return fmt.Errorf("%s: read past the last chunk: %w", b.uri, ErrCorrupt)
		}
		c := &b.chunks[i]
		start := off - int64(c.Stored)
		var buf []byte
		if start == 0 && len(p) >= int(c.StoredLen) {
			buf = p[:c.StoredLen]
		} else {
			buf = make([]byte, c.StoredLen)
		}
		if err := b.readChunk(ctx, c, buf); err != nil {
			return err
		}
		n := copy(p, buf[start:])
		p, off = p[n:], off+int64(n)
		i++
	}
	return nil
}

// readChunk reads chunk c whole into buf and verifies it against its
// address, unless b.skipAddress (the caller checks its CRC-32C).
func (b *casBlob) readChunk(ctx context.Context, c *Chunk, buf []byte) error {
	sum := c.SumHex()
	b.once.Do(func() { b.op, b.opErr = b.cs.chunkReader(ctx) })
	if b.opErr != nil {
		return fmt.Errorf("chunks of %s: %w", b.uri, b.opErr)
	}
	r, err := b.op.chunk(ctx, sum)
	if err != nil {
		return fmt.Errorf("chunk %s: %w", b.cs.chunkURI(sum), err)
	}
	defer r.close()
	uri := b.cs.chunkURI(sum)
	if n, ok := r.(interface{ uri() string }); ok {
		uri = n.uri() // a chunk in a pack
	}
	if err := r.readAt(ctx, buf, 0); err != nil {
		return fmt.Errorf("chunk %s: %w", uri, err)
	}
	if b.skipAddress.Load() {
		return nil
	}
	if got := b.hash.sum(buf); got != c.Sum {
		return fmt.Errorf("chunk %s: content has %s %s, not its address: %w", uri, b.hash, hex.EncodeToString(got[:]), ErrCorrupt)
	}
	return nil
}

func (b *casBlob) size(context.Context) (int64, error) {
	if len(b.chunks) == 0 {
		return 0, nil
	}
	c := &b.chunks[len(b.chunks)-1]
	return int64(c.Stored) + int64(c.StoredLen), nil
}

func (b *casBlob) close() error {
	if b.op != nil {
		return b.op.close()
	}
	return nil
}

// errUnreadableImage stops a sweep: an image whose index cannot be read
// may reference any chunk.
var errUnreadableImage = errors.New("an image cannot be read; no chunk swept")

// referencedChunks marks the chunks referenced by every published image.
func (s *store) referencedChunks(ctx context.Context) (map[[addrSize]byte]bool, error) {
	names, err := s.b.list(ctx)
	if err != nil {
		return nil, err
	}
	refs := make(map[[addrSize]byte]bool)
	for _, n := range names {
		im, err := openImage(ctx, s.b, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since listed
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v (delete or repair it, then prune again)", errUnreadableImage, err)
		}
		if im.m.ContentAddressed {
			for i := range im.chunks {
				refs[im.chunks[i].Sum] = true
			}
		}
		im.Close()
	}
	return refs, nil
}

// sweepChunks deletes the chunks that no published image references and
// that are older than olderThan. Images are marked before chunks are
// listed, so a chunk stored or refreshed by a writer that commits after
// the mark is younger than olderThan when listed (Prune's contract: no
// live writer reaches that age), and its age is checked again just
// before it is deleted.
func (s *store) sweepChunks(ctx context.Context, olderThan time.Duration) ([]string, error) {
	refs, err := s.referencedChunks(ctx)
	if err != nil {
		return nil, err
	}
	chunks, err := s.b.listChunks(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	if ps, ok := s.b.(interface {
		sweepPacks(map[[addrSize]byte]bool, time.Duration) ([]string, error)
	}); ok {
		if removed, err = ps.sweepPacks(refs, olderThan); err != nil {
			return removed, err
		}
	}
	for _, c := range chunks {
		d, err := hex.DecodeString(c.sum)
		if err != nil || len(d) != addrSize || refs[[addrSize]byte(d)] || time.Since(c.modTime) < olderThan {
			continue
		}
		ok, err := s.b.removeChunk(ctx, c.sum, olderThan)
		if err != nil {
			return removed, err
		}
		if ok {
			removed = append(removed, s.b.chunkURI(c.sum))
		}
	}
	return removed, nil
}
