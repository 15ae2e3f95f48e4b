package storage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Ingester writes images.
type Ingester interface {
	// Create starts writing image name. The image becomes visible only when
	// the returned Writer's Commit succeeds; Abort (or a failed Commit)
	// leaves nothing. Create fails with ErrAlreadyExists if name is
	// published and opts.Replace is false (Commit checks again, atomically),
	// and with ErrInvalidArgument for a malformed name. ctx bounds the whole
	// write, up to Commit.
	Create(ctx context.Context, name string, opts CreateOptions) (*Writer, error)
}

// Provider reads images.
type Provider interface {
	// Open reads and verifies the manifest and the memory index of image
	// name: ErrNotFound if it does not exist, ErrIncompatibleVersion,
	// ErrWrongArch, or ErrCorrupt. The Image must be closed.
	Open(ctx context.Context, name string) (*Image, error)
}

// Manager lists and deletes images.
type Manager interface {
	// Stat returns the verified manifest of image name (ErrNotFound...).
	Stat(ctx context.Context, name string) (*Manifest, error)
	// List returns every published image, sorted by name. An image whose
	// manifest does not load is listed with Err set.
	List(ctx context.Context) ([]Entry, error)
	// Delete removes image name: it disappears at once (its manifest is
	// removed first), then its blobs are deleted. Its memory chunks, which
	// other images may share, stay until Prune. ErrNotFound if absent.
	Delete(ctx context.Context, name string) error
	// Prune deletes what killed or crashed writers left behind (staging
	// directories, unreferenced blobs, incomplete multipart uploads) and
	// the memory chunks no published image references, older than
	// olderThan, and returns what it removed (URIs), also when it fails
	// midway. It never touches a published image or a chunk one
	// references; an image it cannot read stops the chunk sweep (it may
	// reference any chunk). Use an age that no live writer reaches.
	Prune(ctx context.Context, olderThan time.Duration) ([]string, error)
}

// Store is a place where images are kept: a local directory (NewFileStore)
// or an S3 bucket prefix (NewS3Store). Both behave the same, as checked by
// storage/storetest. A Store is safe for concurrent use.
type Store interface {
	Ingester
	Provider
	Manager
	// URI returns the URI of the store (file:///dir or s3://bucket/prefix).
	URI() string
	// ImageURI returns the URI of image name in this store.
	ImageURI(name string) string
}

// Entry is one image in a List.
type Entry struct {
	Name string
	URI  string
	// Manifest is nil when Err is set.
	Manifest *Manifest
	Err      error
}

// CreateOptions controls how an image is written.
type CreateOptions struct {
	// Replace allows overwriting a published image of the same name; the
	// switch is atomic (readers see the old image or the new one).
	Replace bool
	// ReplaceDigest, with Replace, has Commit publish only if the image
	// still has the manifest of this SHA-256 (Manifest.Digest), checked
	// just before the switch (ErrImageChanged otherwise): a rewrite of
	// an image (Recompress) must not overwrite a newer save.
	ReplaceDigest string
	// Codec is the memory chunk codec: "" means DefaultCodec (CodecS2), or
	// CodecZstd. The state stream is always zstd.
	Codec string
	// Level is the codec's level; 0 means its default. CodecS2: S2Fast,
	// S2Better (the default) or S2Best. CodecZstd: 1 (fastest, the
	// default, DefaultLevel) ... 22; the state stream uses it too.
	Level int
	// Entropy, with CodecZstd at levels <= 3, Huffman-codes literals too
	// (levels >= 4 always do): on memory pages about 15% smaller for 1.6
	// times the CPU. A paused save wants speed; a rewrite afterwards
	// (Recompress) wants the size.
	Entropy bool
	// Metadata is stored in the manifest (program, argv, source sandbox).
	Metadata map[string]string
	// SnapVersion is recorded in the manifest.
	SnapVersion string
	// Workers is the number of compression workers; 0 means GOMAXPROCS.
	Workers int
	// SignKey, if set, signs the image (format 1.1): the memory blob's
	// SHA-256 is computed while it is written, and the manifest, which
	// holds every blob's SHA-256, is signed before it is published, so the
	// image is never visible unsigned. See Manifest.VerifySignature.
	SignKey ed25519.PrivateKey
	// Progress, if set, is called by the writer's drain goroutine each
	// time a span of memory has been stored, with the memory bytes handed
	// to WriteMemory* stored so far (zero pages included). It must return
	// quickly.
	Progress func(memoryDone uint64)
	// Parent, if set, is recorded in the manifest (format 1.2): the image
	// is saved against that earlier save of the same sandbox. The caller
	// checks the parent (see CheckParent); chunks equal to the parent's
	// are shared by content addressing, whatever Parent says. The image
	// takes the parent's chunk hash (Manifest.ChunkHash), so that they
	// are found: a chain begun by a SHA-256 image (format 1.4 or before)
	// stays on SHA-256, a new full save uses BLAKE3.
	Parent *ParentRef
}

// DefaultLevel is the zstd level used when CreateOptions.Level is 0 with
// CodecZstd, and the level of the state stream with CodecS2.
const DefaultLevel = 1

// DefaultCodec is the memory chunk codec used when CreateOptions.Codec is
// empty: S2 at S2Better. See the package doc for the measurements behind
// the choice.
const DefaultCodec = CodecS2

// S2 levels (CreateOptions.Level with CodecS2). They change only the
// encoder: all three write plain S2 blocks, which decode alike.
const (
	// S2Fast is s2.Encode: the fastest, but it finds few of the repeats
	// of memory pages (about 2× on some workloads).
	S2Fast = 1
	// S2Better is s2.EncodeBetter where it pays, the default: each chunk
	// whose first 8 KiB EncodeBetter compresses at least 5% smaller than
	// s2.Encode does, s2.Encode for the others (see the package doc).
	S2Better = 2
	// S2Best is s2.EncodeBest: smaller and several times slower.
	S2Best = 3
)

// ParseCodec checks a codec name and level as a user gives them (for
// example `snap save --compression s2 --level 2`): codec "" means
// DefaultCodec, level 0 the codec's default. It returns ErrInvalidArgument
// for an unknown codec or a level out of the codec's range.
func ParseCodec(codec string, level int) error {
	switch codec {
	case "", CodecS2:
		if level < 0 || level > S2Best {
			return fmt.Errorf("s2 level %d out of range 1..%d: %w", level, S2Best, ErrInvalidArgument)
		}
	case CodecZstd:
		if level < 0 || level > 22 {
			return fmt.Errorf("zstd level %d out of range 1..22: %w", level, ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("compression %q, want %q or %q: %w", codec, CodecS2, CodecZstd, ErrInvalidArgument)
	}
	return nil
}

// store implements Store over a backend; the image format is shared.
type store struct {
	b backend
}

func (s *store) URI() string                 { return s.b.storeURI() }
func (s *store) ImageURI(name string) string { return s.b.imageURI(name) }

func (s *store) Create(ctx context.Context, name string, opts CreateOptions) (*Writer, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := ParseCodec(opts.Codec, opts.Level); err != nil {
		return nil, fmt.Errorf("create %s: %w", s.b.imageURI(name), err)
	}
	if opts.SignKey != nil && len(opts.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("create %s: signing key of %d bytes, want an ed25519 key: %w", s.b.imageURI(name), len(opts.SignKey), ErrInvalidArgument)
	}
	if !opts.Replace {
		ok, err := s.b.exists(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", s.b.imageURI(name), err)
		}
		if ok {
			return nil, fmt.Errorf("create %s: %w (pass replace to overwrite)", s.b.imageURI(name), ErrAlreadyExists)
		}
	}
	hash := defaultChunkHash
	if opts.Parent != nil {
		pm, err := s.checkParent(ctx, opts.Parent)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", s.b.imageURI(name), err)
		}
		// The chunks the child shares with its parent keep their
		// addresses only under the parent's hash.
		hash = pm.chunkHash()
	}
	ctx, cancel := context.WithCancel(ctx)
	st, err := s.b.begin(ctx, name)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create %s: %w", s.b.imageURI(name), err)
	}
	w := newWriter(ctx, cancel, s.b.imageURI(name), st, s.b, opts)
	w.hash = hash
	if opts.Parent != nil {
		w.checkParent = func(ctx context.Context) error {
			_, err := s.checkParent(ctx, opts.Parent)
			return err
		}
	}
	if opts.Replace && opts.ReplaceDigest != "" {
		w.checkReplaced = func(ctx context.Context) error { return s.checkReplaced(ctx, name, opts.ReplaceDigest) }
	}
	return w, nil
}

func (s *store) Open(ctx context.Context, name string) (*Image, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	return openImage(ctx, s.b, name)
}

func (s *store) Stat(ctx context.Context, name string) (*Manifest, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	h, err := s.b.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", s.b.imageURI(name), err)
	}
	defer h.close()
	m, err := readManifest(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", s.b.imageURI(name), err)
	}
	return m, nil
}

func readManifest(ctx context.Context, h handle) (*Manifest, error) {
	b, err := h.manifest(ctx)
	if err != nil {
		return nil, err
	}
	return ParseManifest(b)
}

func (s *store) List(ctx context.Context) ([]Entry, error) {
	names, err := s.b.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.b.storeURI(), err)
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		e := Entry{Name: n, URI: s.b.imageURI(n)}
		e.Manifest, e.Err = s.Stat(ctx, n)
		if errors.Is(e.Err, ErrNotFound) {
			continue // deleted since listed
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *store) Delete(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := s.b.remove(ctx, name); err != nil {
		return fmt.Errorf("delete %s: %w", s.b.imageURI(name), err)
	}
	return nil
}

func (s *store) Prune(ctx context.Context, olderThan time.Duration) ([]string, error) {
	removed, err := s.b.prune(ctx, olderThan)
	if err != nil {
		return removed, fmt.Errorf("prune %s: %w", s.b.storeURI(), err)
	}
	swept, err := s.sweepChunks(ctx, olderThan)
	removed = append(removed, swept...)
	if err != nil {
		return removed, fmt.Errorf("prune %s: %w", s.b.storeURI(), err)
	}
	return removed, nil
}
