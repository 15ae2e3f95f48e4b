package storage

import (
	"context"
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
	// removed first), then its blobs are deleted. ErrNotFound if absent.
	Delete(ctx context.Context, name string) error
	// Prune deletes what killed or crashed writers left behind (staging
	// directories, unreferenced blobs, incomplete multipart uploads) that is
	// older than olderThan, and returns how many items it removed. Use an
	// age that no live writer reaches.
	Prune(ctx context.Context, olderThan time.Duration) (int, error)
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
	// Level is the zstd level (1 fastest ... 19); 0 means DefaultLevel.
	Level int
	// Codec is the memory chunk codec: "" or CodecZstd (default), or
	// CodecS2. The state stream is always zstd.
	Codec string
	// Metadata is stored in the manifest (program, argv, source sandbox).
	Metadata map[string]string
	// SnapVersion is recorded in the manifest.
	SnapVersion string
	// Workers is the number of compression workers; 0 means GOMAXPROCS.
	Workers int
}

// DefaultLevel is the zstd level used when CreateOptions.Level is 0.
const DefaultLevel = 1

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
	if opts.Level < 0 || opts.Level > 22 {
		return nil, fmt.Errorf("create %s: zstd level %d out of range 1..22: %w", s.b.imageURI(name), opts.Level, ErrInvalidArgument)
	}
	switch opts.Codec {
	case "", CodecZstd, CodecS2:
	default:
		return nil, fmt.Errorf("create %s: codec %q, want %q or %q: %w", s.b.imageURI(name), opts.Codec, CodecZstd, CodecS2, ErrInvalidArgument)
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
	ctx, cancel := context.WithCancel(ctx)
	st, err := s.b.begin(ctx, name)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create %s: %w", s.b.imageURI(name), err)
	}
	return newWriter(ctx, cancel, s.b.imageURI(name), st, opts), nil
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

func (s *store) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	n, err := s.b.prune(ctx, olderThan)
	if err != nil {
		return n, fmt.Errorf("prune %s: %w", s.b.storeURI(), err)
	}
	return n, nil
}
