package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 layout under s3://BUCKET/PREFIX:
//
//	PREFIX/NAME/manifest          published last (If-None-Match: * unless replacing)
//	PREFIX/NAME/g-GEN/state.zst   blobs of one write ("generation"), named by
//	PREFIX/NAME/g-GEN/memory.bin  the manifest, so concurrent writers of one
//	PREFIX/NAME/g-GEN/memory.idx  name never overwrite each other's blobs

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is host[:port]; Secure selects https.
	Endpoint string
	Secure   bool
	// Region is optional (AWS_REGION).
	Region string
	// AccessKey and SecretKey (and SessionToken) are static credentials; if
	// AccessKey is empty the usual chain is used: AWS_* and MINIO_*
	// variables, then ~/.aws/credentials.
	AccessKey, SecretKey, SessionToken string
	// Bucket must exist; Prefix may be empty.
	Bucket, Prefix string
	// PartSize is the multipart part size (default 16 MiB) and Threads the
	// number of parts uploaded in parallel (default 4). Memory in flight per
	// blob upload is about PartSize×Threads.
	PartSize uint64
	Threads  int
	// MaxRetries bounds the retries of one request on transient errors
	// (with exponential backoff); default 5.
	MaxRetries int
}

// S3ConfigFromEnv reads the endpoint from SNAP_S3_ENDPOINT (a URL: http://
// disables TLS; a bare host:port uses TLS; default s3.amazonaws.com) and the
// region from AWS_REGION or AWS_DEFAULT_REGION. Credentials come from the
// chain (see S3Config).
func S3ConfigFromEnv() (S3Config, error) {
	cfg := S3Config{Endpoint: "s3.amazonaws.com", Secure: true}
	if ep := os.Getenv("SNAP_S3_ENDPOINT"); ep != "" {
		switch {
		case strings.HasPrefix(ep, "http://"):
			cfg.Endpoint, cfg.Secure = strings.TrimPrefix(ep, "http://"), false
		case strings.HasPrefix(ep, "https://"):
			cfg.Endpoint = strings.TrimPrefix(ep, "https://")
		default:
			cfg.Endpoint = ep
		}
		cfg.Endpoint = strings.TrimSuffix(cfg.Endpoint, "/")
		if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/") {
			return cfg, fmt.Errorf("SNAP_S3_ENDPOINT %q: want http(s)://host[:port]: %w", ep, ErrInvalidArgument)
		}
	}
	cfg.Region = os.Getenv("AWS_REGION")
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	return cfg, nil
}

type s3Backend struct {
	c   *minio.Client
	cfg S3Config
}

// NewS3Store returns the store at s3://cfg.Bucket/cfg.Prefix.
func NewS3Store(_ context.Context, cfg S3Config) (Store, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("s3 store: no bucket: %w", ErrInvalidArgument)
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
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{},
		})
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: creds, Secure: cfg.Secure, Region: cfg.Region, MaxRetries: cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", cfg.Endpoint, err)
	}
	return &store{b: &s3Backend{c: c, cfg: cfg}}, nil
}

func (b *s3Backend) storeURI() string {
	return strings.TrimSuffix("s3://"+b.cfg.Bucket+"/"+b.cfg.Prefix, "/")
}

func (b *s3Backend) imageURI(name string) string { return b.storeURI() + "/" + name }

// obj returns the object key of parts under the store prefix.
func (b *s3Backend) obj(parts ...string) string {
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
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("blob truncated (%v): %w", err, ErrCorrupt)
	}
	return err
}

func (b *s3Backend) exists(ctx context.Context, name string) (bool, error) {
	_, err := b.c.StatObject(ctx, b.cfg.Bucket, b.obj(name, "manifest"), minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if err := mapS3Err(err); errors.Is(err, ErrNotFound) && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		return false, nil
	} else {
		return false, err
	}
}

func (b *s3Backend) begin(ctx context.Context, name string) (staging, error) {
	return &s3Staging{b: b, ctx: ctx, name: name, gen: "g-" + randHex(8)}, nil
}

type s3Staging struct {
	b    *s3Backend
	ctx  context.Context
	name string
	gen  string

	mu      sync.Mutex
	written []string // object keys started
}

func (s *s3Staging) key(base string) string { return s.gen + "/" + base }

func (s *s3Staging) create(key string, big bool) (blobWriter, error) {
	full := s.b.obj(s.name, key)
	s.mu.Lock()
	s.written = append(s.written, full)
	s.mu.Unlock()
	pr, pw := io.Pipe()
	w := &s3BlobWriter{pw: pw, done: make(chan struct{})}
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
	return w, nil
}

// s3BlobWriter streams into a multipart upload through a pipe; minio-go
// uploads parts in parallel and aborts the upload if it fails.
type s3BlobWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // valid after done is closed
}

func (w *s3BlobWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *s3BlobWriter) Close() error {
	w.pw.Close()
	<-w.done
	return w.err
}

func (w *s3BlobWriter) fail(err error) {
	w.pw.CloseWithError(err)
	<-w.done
}

func (s *s3Staging) commit(manifest []byte, replace bool) error {
	mk := s.b.obj(s.name, "manifest")
	var oldGen string
	if replace {
		if h, err := s.b.open(s.ctx, s.name); err == nil {
			if m, err := readManifest(s.ctx, h); err == nil {
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
			return fmt.Errorf("publish %s: %w", s.b.imageURI(s.name), ErrAlreadyExists)
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

func (s *s3Staging) abort() error {
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
		if err != nil && !errors.Is(mapS3Err(err), ErrNotFound) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// removePrefix deletes every object under prefix last modified more than
// olderThan ago.
func (b *s3Backend) removePrefix(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	n := 0
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return n, mapS3Err(o.Err)
		}
		if time.Since(o.LastModified) < olderThan {
			continue
		}
		if err := b.c.RemoveObject(ctx, b.cfg.Bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return n, mapS3Err(err)
		}
		n++
	}
	return n, nil
}

func (b *s3Backend) open(ctx context.Context, name string) (handle, error) {
	return &s3Handle{b: b, name: name}, nil
}

type s3Handle struct {
	b    *s3Backend
	name string
}

func (h *s3Handle) manifest(ctx context.Context) ([]byte, error) {
	o, err := h.b.c.GetObject(ctx, h.b.cfg.Bucket, h.b.obj(h.name, "manifest"), minio.GetObjectOptions{})
	if err != nil {
		return nil, mapS3Err(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, maxManifestSize+1))
	if err != nil {
		return nil, mapS3Err(err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes: %w", maxManifestSize, ErrCorrupt)
	}
	return b, nil
}

func (h *s3Handle) blob(_ context.Context, key string, size int64) (blobReader, error) {
	return &s3Blob{b: h.b, key: h.b.obj(h.name, key)}, nil
}

func (h *s3Handle) close() error { return nil }

type s3Blob struct {
	b   *s3Backend
	key string
}

// readAt issues one ranged GET, retried with backoff when the transfer
// fails midway (minio-go already retries failed requests).
func (r *s3Blob) readAt(ctx context.Context, p []byte, off int64) error {
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
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (r *s3Blob) tryReadAt(ctx context.Context, p []byte, off int64) error {
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
		return fmt.Errorf("%s: %d bytes at %d, blob truncated: %w", r.key, len(p), off, ErrCorrupt)
	}
	return mapS3Err(err)
}

func (r *s3Blob) size(ctx context.Context) (int64, error) {
	info, err := r.b.c.StatObject(ctx, r.b.cfg.Bucket, r.key, minio.StatObjectOptions{})
	if err != nil {
		return 0, mapS3Err(err)
	}
	return info.Size, nil
}

func (r *s3Blob) close() error { return nil }

func (b *s3Backend) list(ctx context.Context) ([]string, error) {
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
		if ok && rest == "manifest" && validName(name) == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (b *s3Backend) remove(ctx context.Context, name string) error {
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

func (b *s3Backend) prune(ctx context.Context, olderThan time.Duration) (int, error) {
	prefix := b.obj() + "/"
	if prefix == "/" {
		prefix = ""
	}
	n := 0
	for u := range b.c.ListIncompleteUploads(ctx, b.cfg.Bucket, prefix, true) {
		if u.Err != nil {
			return n, mapS3Err(u.Err)
		}
		if time.Since(u.Initiated) < olderThan {
			continue
		}
		if err := b.c.RemoveIncompleteUpload(ctx, b.cfg.Bucket, u.Key); err != nil && !errors.Is(mapS3Err(err), ErrNotFound) {
			return n, err
		}
		n++
	}
	// Blobs of generations no manifest refers to.
	gens := map[string]bool{} // "NAME/g-GEN"
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return n, mapS3Err(o.Err)
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
			h := &s3Handle{b: b, name: name}
			mb, err := h.manifest(ctx)
			switch {
			case errors.Is(err, ErrNotFound):
				cur = ""
			case err != nil:
				return n, err
			default:
				cur = skipGen
				if m, err := ParseManifest(mb); err == nil {
					cur, _, _ = strings.Cut(m.State.Key, "/")
				}
			}
			live[name] = cur
		}
		if gen == cur || cur == skipGen {
			continue
		}
		k, err := b.removePrefix(ctx, b.obj(name, gen)+"/", olderThan)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
