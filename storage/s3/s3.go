// Package s3 is the S3 image store backend, on minio-go. It runs in the
// snap-s3 helper process (see Serve and storage/s3wire): package storage
// talks to it through that process so that the snap binary does not link
// minio-go.
//
// Its types mirror the backend interfaces of package storage: Backend (one
// bucket prefix), Staging (an image being written), BlobWriter, Handle (a
// published image) and Blob (a blob reader). Errors wrap the sentinels of
// package storage.
//
// S3 layout under s3://BUCKET/PREFIX:
//
//	PREFIX/NAME/manifest          published last (If-None-Match: * unless replacing)
//	PREFIX/NAME/g-GEN/state.zst   blobs of one write ("generation"), named by
//	PREFIX/NAME/g-GEN/memory.bin  the manifest, so concurrent writers of one
//	PREFIX/NAME/g-GEN/memory.idx  name never overwrite each other's blobs
package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"snapshotter/storage"
)

// Backend is the store at s3://cfg.Bucket/cfg.Prefix. It is safe for
// concurrent use.
type Backend struct {
	c   *minio.Client
	cfg storage.S3Config
}

// New returns the backend for cfg. Zero PartSize, Threads and MaxRetries
// take their defaults (see storage.S3Config). It does no I/O.
func New(cfg storage.S3Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("s3 store: no bucket: %w", storage.ErrInvalidArgument)
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.PartSize == 0 {
		cfg.PartSize = 16 << 20
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 4
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	cfg.StaleAge = cmp.Or(cfg.StaleAge, storage.DefaultStaleAge)
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{},
		})
	}
	tr, err := transport(&cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", cfg.Endpoint, err)
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: creds, Secure: cfg.Secure, Region: cfg.Region, MaxRetries: cfg.MaxRetries, Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", cfg.Endpoint, err)
	}
	return &Backend{c: c, cfg: cfg}, nil
}

// transport is minio-go's default transport with cfg's request deadlines
// (defaults applied to cfg): dial, response headers, and an idle deadline
// on every connection.
func transport(cfg *storage.S3Config) (*http.Transport, error) {
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, storage.DefaultS3DialTimeout)
	cfg.HeaderTimeout = cmp.Or(cfg.HeaderTimeout, storage.DefaultS3HeaderTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, storage.DefaultS3IdleTimeout)
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	idle := cfg.IdleTimeout
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: idle}, nil
	}
	tr.ResponseHeaderTimeout = cfg.HeaderTimeout
	return tr, nil
}

// idleConn fails a read or write that moves no byte for idle: a server
// that stopped midway (a part upload, a ranged read) ends the request
// instead of holding it, and minio-go retries or reports it.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// URI returns the store's URI, s3://bucket/prefix.
func (b *Backend) URI() string {
	return strings.TrimSuffix("s3://"+b.cfg.Bucket+"/"+b.cfg.Prefix, "/")
}

// imageURI returns the URI of image name.
func (b *Backend) imageURI(name string) string { return b.URI() + "/" + name }

// obj returns the object key of parts under the store prefix.
func (b *Backend) obj(parts ...string) string {
	return strings.TrimPrefix(path.Join(append([]string{b.cfg.Prefix}, parts...)...), "/")
}

func mapS3Err(err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchBucket" || resp.Code == "NoSuchUpload" ||
		resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %v", storage.ErrNotFound, err)
	case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("blob truncated (%v): %w", err, storage.ErrCorrupt)
	}
	return err
}

// pruneUploads aborts the incomplete multipart uploads under the store's
// prefix started more than olderThan ago and returns their URIs.
func (b *Backend) pruneUploads(ctx context.Context, olderThan time.Duration) ([]string, error) {
	prefix := b.obj() + "/"
	if prefix == "/" {
		prefix = ""
	}
	var removed []string
	// The whole bucket's uploads, filtered here: MinIO lists an upload
	// only for an empty prefix or its exact key, not for a shorter
	// prefix.
	for u := range b.c.ListIncompleteUploads(ctx, b.cfg.Bucket, "", true) {
		if u.Err != nil {
			return removed, mapS3Err(u.Err)
		}
		if !strings.HasPrefix(u.Key, prefix) || time.Since(u.Initiated) < olderThan {
			continue
		}
		if err := b.c.RemoveIncompleteUpload(ctx, b.cfg.Bucket, u.Key); err != nil && !errors.Is(mapS3Err(err), storage.ErrNotFound) {
			return removed, mapS3Err(err)
		}
		removed = append(removed, b.keyURI(u.Key)+" (incomplete upload)")
	}
	return removed, nil
}

// PruneStale aborts the store's incomplete multipart uploads older than
// cfg.StaleAge: what writers killed long ago left, which no live writer
// can own. A new write calls it first; it is one listing request, and its
// errors are the next write's or snap prune's to report.
func (b *Backend) PruneStale(ctx context.Context) {
	_, _ = b.pruneUploads(ctx, b.cfg.StaleAge)
}

// Exists reports whether a manifest is published under name. A missing
// bucket is ErrNotFound.
func (b *Backend) Exists(ctx context.Context, name string) (bool, error) {
	_, err := b.c.StatObject(ctx, b.cfg.Bucket, b.obj(name, "manifest"), minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if err := mapS3Err(err); errors.Is(err, storage.ErrNotFound) && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		return false, nil
	} else {
		return false, err
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}

// Begin starts writing image name under a fresh generation. ctx bounds the
// whole write, up to Commit. Nothing is visible until Commit succeeds.
func (b *Backend) Begin(ctx context.Context, name string) *Staging {
	return &Staging{b: b, ctx: ctx, name: name, gen: "g-" + randHex(8)}
}

// Staging is an image being written. Its blobs are written concurrently.
type Staging struct {
	b    *Backend
	ctx  context.Context
	name string
	gen  string

	mu      sync.Mutex
	written []string // object keys started; protected by mu
}

// Key returns the manifest-relative key for blob base name base.
func (s *Staging) Key(base string) string { return s.gen + "/" + base }

// Create starts uploading the blob with the given key. big asks for a
// parallel multipart upload (the memory blob).
func (s *Staging) Create(key string, big bool) *BlobWriter {
	full := s.b.obj(s.name, key)
	s.mu.Lock()
	s.written = append(s.written, full)
	s.mu.Unlock()
	pr, pw := io.Pipe()
	w := &BlobWriter{pw: pw, done: make(chan struct{})}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.b.cfg.PartSize,
		NumThreads:  1,
	}
	if big && s.b.cfg.Threads > 1 {
		opts.NumThreads, opts.ConcurrentStreamParts = uint(s.b.cfg.Threads), true
	} else {
		opts.PartSize = min(opts.PartSize, 8<<20)
	}
	go func() {
		_, err := s.b.c.PutObject(s.ctx, s.b.cfg.Bucket, full, pr, -1, opts)
		if err != nil {
			err = fmt.Errorf("upload %s: %w", full, mapS3Err(err))
			pr.CloseWithError(err)
		} else {
			pr.Close()
		}
		w.err = err
		close(w.done)
	}()
	return w
}

// BlobWriter streams one blob into a multipart upload through a pipe;
// minio-go uploads parts in parallel and aborts the upload if it fails.
type BlobWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // valid after done is closed
}

// Write hands p to the upload.
func (w *BlobWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Close finishes the upload and reports its error.
func (w *BlobWriter) Close() error {
	w.pw.Close()
	<-w.done
	return w.err
}

// Fail stops the upload with err and discards it.
func (w *BlobWriter) Fail(err error) {
	w.pw.CloseWithError(err)
	<-w.done
}

// Commit publishes manifest last, atomically. Without replace it fails with
// ErrAlreadyExists if the name is taken. Replacing deletes the blobs of the
// replaced generation.
func (s *Staging) Commit(manifest []byte, replace bool) error {
	mk := s.b.obj(s.name, "manifest")
	var oldGen string
	if replace {
		if mb, err := s.b.Open(s.name).Manifest(s.ctx); err == nil {
			if m, err := storage.ParseManifest(mb); err == nil {
				oldGen, _, _ = strings.Cut(m.State.Key, "/")
			}
		}
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if !replace {
		opts.SetMatchETagExcept("*")
	}
	_, err := s.b.c.PutObject(s.ctx, s.b.cfg.Bucket, mk, bytes.NewReader(manifest), int64(len(manifest)), opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" {
			return fmt.Errorf("publish %s: %w", s.b.imageURI(s.name), storage.ErrAlreadyExists)
		}
		return fmt.Errorf("publish %s: %w", s.b.imageURI(s.name), mapS3Err(err))
	}
	s.mu.Lock()
	s.written = nil
	s.mu.Unlock()
	if oldGen != "" && oldGen != s.gen {
		_, _ = s.b.removePrefix(s.ctx, s.b.obj(s.name, oldGen)+"/", 0)
	}
	return nil
}

// cleanupCtx gives cleanup a context of its own: the writer's may already be
// cancelled, which is often why we are cleaning up.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
}

// Abort deletes everything written so far: the generation's objects and
// incomplete uploads.
func (s *Staging) Abort() error {
	s.mu.Lock()
	written := s.written
	s.written = nil
	s.mu.Unlock()
	if len(written) == 0 {
		return nil
	}
	ctx, cancel := cleanupCtx(s.ctx)
	defer cancel()
	var firstErr error
	if _, err := s.b.removePrefix(ctx, s.b.obj(s.name, s.gen)+"/", 0); err != nil {
		firstErr = err
	}
	for _, k := range written {
		err := s.b.c.RemoveIncompleteUpload(ctx, s.b.cfg.Bucket, k)
		if err != nil && !errors.Is(mapS3Err(err), storage.ErrNotFound) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// removePrefix deletes every object under prefix last modified more than
// olderThan ago and returns their URIs.
func (b *Backend) removePrefix(ctx context.Context, prefix string, olderThan time.Duration) ([]string, error) {
	var removed []string
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return removed, mapS3Err(o.Err)
		}
		if time.Since(o.LastModified) < olderThan {
			continue
		}
		if err := b.c.RemoveObject(ctx, b.cfg.Bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return removed, mapS3Err(err)
		}
		removed = append(removed, b.keyURI(o.Key))
	}
	return removed, nil
}

// keyURI returns the URI of object key of the bucket.
func (b *Backend) keyURI(key string) string { return "s3://" + b.cfg.Bucket + "/" + key }

// Open returns a handle on image name. It does no I/O: a missing image
// shows as ErrNotFound from Manifest.
func (b *Backend) Open(name string) *Handle {
	return &Handle{b: b, name: name}
}

// Handle reads one published image.
type Handle struct {
	b    *Backend
	name string
}

// Manifest returns the image's manifest bytes: ErrNotFound if it is not
// published, ErrCorrupt if it is over storage.MaxManifestSize.
func (h *Handle) Manifest(ctx context.Context) ([]byte, error) {
	o, err := h.b.c.GetObject(ctx, h.b.cfg.Bucket, h.b.obj(h.name, "manifest"), minio.GetObjectOptions{})
	if err != nil {
		return nil, mapS3Err(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, storage.MaxManifestSize+1))
	if err != nil {
		return nil, mapS3Err(err)
	}
	if len(b) > storage.MaxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes: %w", storage.MaxManifestSize, storage.ErrCorrupt)
	}
	return b, nil
}

// Blob returns a reader of the blob with the given key. It does no I/O.
func (h *Handle) Blob(key string) *Blob {
	return &Blob{b: h.b, key: h.b.obj(h.name, key)}
}

// Close releases the handle.
func (h *Handle) Close() error { return nil }

// maxAux bounds an object beside an image's blobs (the working set).
const maxAux = 1 << 20

// Aux returns the object key beside the image's blobs (NAME/KEY):
// ErrNotFound if absent, ErrCorrupt over 1 MiB.
func (h *Handle) Aux(ctx context.Context, key string) ([]byte, error) {
	if !validAuxKey(key) {
		return nil, fmt.Errorf("object key %q: %w", key, storage.ErrInvalidArgument)
	}
	o, err := h.b.c.GetObject(ctx, h.b.cfg.Bucket, h.b.obj(h.name, key), minio.GetObjectOptions{})
	if err != nil {
		return nil, mapS3Err(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, maxAux+1))
	if err != nil {
		return nil, mapS3Err(err)
	}
	if len(b) > maxAux {
		return nil, fmt.Errorf("%s larger than %d bytes: %w", key, maxAux, storage.ErrCorrupt)
	}
	return b, nil
}

// PutAux stores data as the object key beside the image's blobs, in one
// PUT (atomic: a reader sees the old object or the new one). Remove
// deletes it with the image.
func (h *Handle) PutAux(ctx context.Context, key string, data []byte) error {
	if !validAuxKey(key) || len(data) > maxAux {
		return fmt.Errorf("object key %q of %d bytes: %w", key, len(data), storage.ErrInvalidArgument)
	}
	_, err := h.b.c.PutObject(ctx, h.b.cfg.Bucket, h.b.obj(h.name, key), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	return mapS3Err(err)
}

// validAuxKey accepts the keys of objects beside an image's blobs: one
// segment, neither the manifest nor a generation.
func validAuxKey(key string) bool {
	return key == storage.WorkingSetKey
}

// Blob reads ranges of one blob; it is safe for concurrent use.
type Blob struct {
	b   *Backend
	key string
}

// ReadAt fills p from offset off with one ranged GET, retried with backoff
// when the transfer fails midway (minio-go already retries failed
// requests). A short blob is ErrCorrupt, a missing one ErrNotFound.
func (r *Blob) ReadAt(ctx context.Context, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	var err error
	for attempt, delay := 0, 50*time.Millisecond; attempt < 4; attempt, delay = attempt+1, delay*2 {
		if attempt > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err = r.tryReadAt(ctx, p, off)
		if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrCorrupt) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (r *Blob) tryReadAt(ctx context.Context, p []byte, off int64) error {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return err
	}
	o, err := r.b.c.GetObject(ctx, r.b.cfg.Bucket, r.key, opts)
	if err != nil {
		return mapS3Err(err)
	}
	defer o.Close()
	_, err = io.ReadFull(o, p)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %d bytes at %d, blob truncated: %w", r.key, len(p), off, storage.ErrCorrupt)
	}
	return mapS3Err(err)
}

// Size returns the stored size of the blob.
func (r *Blob) Size(ctx context.Context) (int64, error) {
	info, err := r.b.c.StatObject(ctx, r.b.cfg.Bucket, r.key, minio.StatObjectOptions{})
	if err != nil {
		return 0, mapS3Err(err)
	}
	return info.Size, nil
}

// Close releases the reader.
func (r *Blob) Close() error { return nil }

// List returns, sorted, the names NAME for which PREFIX/NAME/manifest
// exists. The caller checks that they are valid image names.
func (b *Backend) List(ctx context.Context) ([]string, error) {
	prefix := b.obj() + "/"
	if prefix == "/" {
		prefix = ""
	}
	var names []string
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, mapS3Err(o.Err)
		}
		name, rest, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/")
		if ok && rest == "manifest" && name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Remove unpublishes name (the manifest first) and deletes its blobs.
// ErrNotFound if it is not published.
func (b *Backend) Remove(ctx context.Context, name string) error {
	mk := b.obj(name, "manifest")
	if _, err := b.c.StatObject(ctx, b.cfg.Bucket, mk, minio.StatObjectOptions{}); err != nil {
		return mapS3Err(err)
	}
	if err := b.c.RemoveObject(ctx, b.cfg.Bucket, mk, minio.RemoveObjectOptions{}); err != nil {
		return mapS3Err(err)
	}
	_, err := b.removePrefix(ctx, b.obj(name)+"/", 0)
	return err
}

// Prune deletes incomplete uploads and the blobs of generations no manifest
// refers to, older than olderThan, and returns the URIs of what it
// deleted (an incomplete upload as its object's URI and "(incomplete
// upload)"). A published image is never touched.
func (b *Backend) Prune(ctx context.Context, olderThan time.Duration) ([]string, error) {
	prefix := b.obj() + "/"
	if prefix == "/" {
		prefix = ""
	}
	removed, err := b.pruneUploads(ctx, olderThan)
	if err != nil {
		return removed, err
	}
	// Blobs of generations no manifest refers to.
	gens := map[string]bool{} // "NAME/g-GEN"
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return removed, mapS3Err(o.Err)
		}
		parts := strings.Split(strings.TrimPrefix(o.Key, prefix), "/")
		if len(parts) == 3 && strings.HasPrefix(parts[1], "g-") {
			gens[parts[0]+"/"+parts[1]] = true
		}
	}
	// live maps a name to its published generation; "" if it has no
	// manifest, skipGen if its manifest exists but does not load here (for
	// example another architecture's): then nothing of it is touched.
	const skipGen = "\x00"
	live := map[string]string{}
	for g := range gens {
		name, gen, _ := strings.Cut(g, "/")
		cur, ok := live[name]
		if !ok {
			mb, err := b.Open(name).Manifest(ctx)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				cur = ""
			case err != nil:
				return removed, err
			default:
				cur = skipGen
				if m, err := storage.ParseManifest(mb); err == nil {
					cur, _, _ = strings.Cut(m.State.Key, "/")
				}
			}
			live[name] = cur
		}
		if gen == cur || cur == skipGen {
			continue
		}
		k, err := b.removePrefix(ctx, b.obj(name, gen)+"/", olderThan)
		removed = append(removed, k...)
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}
