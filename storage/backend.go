package storage

import (
	"context"
	"io"
	"time"
)

// backend is where an image's bytes live: a directory tree (fileBackend) or
// an S3 bucket prefix (s3Backend). The image format above it is shared, so
// both stores differ only here.
type backend interface {
	// storeURI is the URI of the store itself; imageURI that of one image.
	storeURI() string
	imageURI(name string) string
	// begin starts writing image name. Nothing is visible to open or list
	// until staging.commit succeeds.
	begin(ctx context.Context, name string) (staging, error)
	// open returns a consistent view of a published image: the manifest and
	// the blobs it names belong to the same generation. ErrNotFound if the
	// image does not exist.
	open(ctx context.Context, name string) (handle, error)
	// exists reports whether a manifest is published under name.
	exists(ctx context.Context, name string) (bool, error)
	// list returns the names of published images, sorted.
	list(ctx context.Context) ([]string, error)
	// remove unpublishes name (the manifest first) and deletes its blobs.
	remove(ctx context.Context, name string) error
	// prune deletes what crashed or killed writers left behind (staging
	// areas, unreferenced blobs, incomplete uploads) older than olderThan
	// and returns their URIs.
	prune(ctx context.Context, olderThan time.Duration) ([]string, error)
	// The content-addressed chunks of the store (chunks.go).
	chunkStore
}

// staging is an image being written.
type staging interface {
	// key returns the manifest-relative key for blob base name base.
	key(base string) string
	// create starts writing the blob with the given key. Blobs are written
	// concurrently with one another. big asks for a parallel upload (the
	// memory blob); small blobs use one buffer.
	create(key string, big bool) (blobWriter, error)
	// commit publishes manifest last, atomically. Without replace it fails
	// with ErrAlreadyExists if the name is taken, and leaves nothing behind.
	commit(manifest []byte, replace bool) error
	// abort deletes everything written so far.
	abort() error
}

// blobWriter streams one blob. Close makes its bytes durable (fsync'ed or
// uploaded) and reports any error; fail stops it with err and discards it.
type blobWriter interface {
	io.Writer
	Close() error
	fail(err error)
}

// handle reads one published image.
type handle interface {
	manifest(ctx context.Context) ([]byte, error)
	// blob opens the blob with the given key and known size.
	blob(ctx context.Context, key string, size int64) (blobReader, error)
	// aux reads the small object key kept beside the image's blobs (the
	// working set): ErrNotFound if absent, ErrCorrupt over 1 MiB.
	aux(ctx context.Context, key string) ([]byte, error)
	// putAux stores data as the object key beside the image's blobs,
	// replacing it atomically. Deleting the image deletes it.
	putAux(ctx context.Context, key string, data []byte) error
	close() error
}

// blobReader reads ranges of a blob. It is safe for concurrent use. A short
// blob gives ErrCorrupt, a missing one ErrNotFound.
type blobReader interface {
	readAt(ctx context.Context, p []byte, off int64) error
	// size returns the stored size of the blob.
	size(ctx context.Context) (int64, error)
	close() error
}
