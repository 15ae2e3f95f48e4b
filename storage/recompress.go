package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// RecompressOptions controls Recompress.
type RecompressOptions struct {
	// Level is the zstd level of the new chunks; 0 means DefaultLevel.
	// Literals are Huffman-coded at every level (CreateOptions.Entropy).
	Level int
	// Workers is the number of compression workers; 0 means GOMAXPROCS.
	Workers int
}

// Recompress rewrites the image at imageURI in place with its memory in
// zstd chunks with entropy coding: a save that had to be fast (S2, while
// the sandbox was paused) becomes the smaller image afterwards. The state,
// metadata and memory stay as they were; the new manifest replaces the old
// one atomically, so a reader sees one image or the other, and only if the
// image is still the one that was read (ErrImageChanged otherwise: the
// newer image stands). The old chunks are left for Store.Prune, since
// other images may share them. Images with a parent or a signature are
// refused (ErrInvalidArgument): rewriting them would break the child's
// sharing or the signature. It returns the new manifest.
func Recompress(ctx context.Context, imageURI, storeURI string, opts RecompressOptions) (*Manifest, error) {
	s, name, err := Locate(ctx, imageURI, storeURI)
	if err != nil {
		return nil, err
	}
	im, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	m := im.Manifest()
	switch {
	case m.Parent != nil:
		return nil, fmt.Errorf("recompress %s: saved against parent %s: %w", im.URI(), m.Parent.URI, ErrInvalidArgument)
	case m.Signer != nil:
		return nil, fmt.Errorf("recompress %s: signed images are not rewritten: %w", im.URI(), ErrInvalidArgument)
	}
	w, err := s.Create(ctx, name, CreateOptions{
		Replace: true, ReplaceDigest: m.Digest(),
		Codec: CodecZstd, Level: opts.Level, Entropy: true, Workers: opts.Workers,
		Metadata: m.Metadata, SnapVersion: m.SnapVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("recompress %s: %w", im.URI(), err)
	}
	defer w.Abort()
	state, err := im.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("recompress %s: %w", im.URI(), err)
	}
	_, err = io.Copy(w.StateWriter(), state)
	if cerr := state.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("recompress %s: state: %w", im.URI(), err)
	}
	// The writer's workers read the chunks, each decoded into its span
	// (a patch applied to its base), in parallel; the spans go in the
	// index's order, which is the writer's.
	var spans []Range
	for _, c := range im.Chunks() {
		if !c.IsPatch() {
			spans = append(spans, Range{Off: c.Offset, Len: uint64(c.Span)})
		}
	}
	// An empty range at the end keeps the logical size, zero pages past
	// the last chunk included.
	spans = append(spans, Range{Off: m.MemorySize})
	if err := w.WriteMemoryFrom(&chunkReader{ctx: ctx, im: im}, spans); err != nil {
		return nil, fmt.Errorf("recompress %s: %w", im.URI(), err)
	}
	nm, err := w.Commit()
	if err != nil {
		return nil, fmt.Errorf("recompress %s: %w", im.URI(), err)
	}
	return nm, nil
}

// chunkReader reads an image's memory one whole chunk span at a time (the
// reads WriteMemoryFrom makes of the spans Recompress hands it).
type chunkReader struct {
	ctx context.Context
	im  *Image
}

func (r *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	i, ok := r.im.FindChunk(uint64(off))
	if !ok || r.im.chunks[i].Offset != uint64(off) || int(r.im.chunks[i].Span) != len(p) {
		return 0, fmt.Errorf("read [%#x+%#x] of %s: not one chunk's span: %w", off, len(p), r.im.URI(), ErrInvalidArgument)
	}
	if err := r.im.ReadChunk(r.ctx, i, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// checkReplaced checks, before a Replace with ReplaceDigest is
// published, that the image is still the one with that manifest.
func (s *store) checkReplaced(ctx context.Context, name, digest string) error {
	m, err := s.Stat(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s was deleted: %w", s.b.imageURI(name), ErrImageChanged)
	}
	if err != nil {
		return err
	}
	if m.Digest() != digest {
		return fmt.Errorf("%s: manifest SHA-256 %.12s..., want %.12s...: %w", s.b.imageURI(name), m.Digest(), digest, ErrImageChanged)
	}
	return nil
}
