package storage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"snapshotter/storage/s3wire"
)

// s3Backend is the S3 store's backend: a proxy of storage/s3's Backend in
// the snap-s3 helper (see s3helper.go). Layout, uploads, retries and
// cleanup are storage/s3's; this side names objects and moves bytes.
type s3Backend struct {
	cfg S3Config // defaults applied

	mu   sync.Mutex
	conn *helperConn // the helper holding backend bid; protected by mu
	bid  uint64      // protected by mu
}

// NewS3Store returns the store at s3://cfg.Bucket/cfg.Prefix. Its S3 client
// runs in the snap-s3 helper process, started at the store's first use:
// an error starting it (ErrUnavailable if the helper is not found) or
// creating the client is then reported by that first operation.
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
	return &store{b: &s3Backend{cfg: cfg}}, nil
}

func (b *s3Backend) storeURI() string {
	return strings.TrimSuffix("s3://"+b.cfg.Bucket+"/"+b.cfg.Prefix, "/")
}

func (b *s3Backend) imageURI(name string) string { return b.storeURI() + "/" + name }

// attach returns the helper and the ID of this store's backend in it,
// starting the helper or creating the backend if needed.
func (b *s3Backend) attach(ctx context.Context) (*helperConn, uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil && b.conn.failed() == nil {
		return b.conn, b.bid, nil
	}
	c, err := s3Helper()
	if err != nil {
		return nil, 0, err
	}
	cfg := b.cfg
	bid := c.newID()
	_, _, err = c.call(ctx, &s3wire.Msg{Op: s3wire.OpBackend, New: bid, Config: &s3wire.Config{
		Endpoint: cfg.Endpoint, Secure: cfg.Secure, Region: cfg.Region,
		AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey, SessionToken: cfg.SessionToken,
		Bucket: cfg.Bucket, Prefix: cfg.Prefix, PartSize: cfg.PartSize, Threads: cfg.Threads, MaxRetries: cfg.MaxRetries,
		DialTimeout: cfg.DialTimeout, HeaderTimeout: cfg.HeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		StaleAge: cfg.StaleAge,
	}}, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	b.conn, b.bid = c, bid
	return c, bid, nil
}

// do runs request m on this store's backend.
func (b *s3Backend) do(ctx context.Context, m *s3wire.Msg) (*s3wire.Msg, *helperConn, error) {
	c, bid, err := b.attach(ctx)
	if err != nil {
		return nil, nil, err
	}
	m.Obj = bid
	resp, _, err := c.call(ctx, m, nil, nil)
	return resp, c, err
}

func (b *s3Backend) exists(ctx context.Context, name string) (bool, error) {
	resp, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpExists, Name: name})
	if err != nil {
		return false, err
	}
	return resp.Flag, nil
}

func (b *s3Backend) begin(ctx context.Context, name string) (staging, error) {
	c, bid, err := b.attach(ctx)
	if err != nil {
		return nil, err
	}
	sid := c.newID()
	if _, _, err := c.call(ctx, &s3wire.Msg{Op: s3wire.OpBegin, Obj: bid, Name: name, New: sid}, nil, nil); err != nil {
		return nil, err
	}
	s := &s3Staging{c: c, id: sid}
	// The helper's staging has a context of its own, ended with ctx.
	s.stop = context.AfterFunc(ctx, func() {
		_ = c.send(&s3wire.Msg{Op: s3wire.OpCancel, Obj: sid}, nil)
	})
	return s, nil
}

// s3Staging is a staging in the helper.
type s3Staging struct {
	c    *helperConn
	id   uint64
	stop func() bool // stops forwarding the cancellation of ctx

	mu   sync.Mutex
	done bool // committed or aborted; protected by mu
}

func (s *s3Staging) key(base string) string {
	resp, _, err := s.c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpKey, Obj: s.id, Name: base}, nil, nil)
	if err != nil {
		// Only a dead helper fails here, and then so does everything
		// after: create, commit.
		return base
	}
	return resp.Key
}

func (s *s3Staging) create(key string, big bool) (blobWriter, error) {
	wid := s.c.newID()
	if _, _, err := s.c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpCreate, Obj: s.id, Key: key, Flag: big, New: wid}, nil, nil); err != nil {
		return nil, err
	}
	return newS3BlobWriter(s.c, wid), nil
}

func (s *s3Staging) commit(manifest []byte, replace bool) error {
	if _, _, err := s.c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpCommit, Obj: s.id, Flag: replace}, manifest, nil); err != nil {
		return err
	}
	s.finish()
	return nil
}

func (s *s3Staging) abort() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done {
		return nil
	}
	_, _, err := s.c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpAbort, Obj: s.id}, nil, nil)
	s.finish()
	return err
}

func (s *s3Staging) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.stop()
}

// s3BlobWriter streams a blob to the helper in chunks of at most
// s3wire.ChunkSize, with up to s3wire.WriteWindow of them unacknowledged:
// Write returns once its bytes are sent, and an upload error shows at a
// later Write or at Close.
type s3BlobWriter struct {
	c  *helperConn
	id uint64

	mu       sync.Mutex
	cond     sync.Cond // signalled when inflight drops or err is set
	inflight int       // writes sent and not acknowledged; protected by mu
	err      error     // the first write error; protected by mu
}

func newS3BlobWriter(c *helperConn, id uint64) *s3BlobWriter {
	w := &s3BlobWriter{c: c, id: id}
	w.cond.L = &w.mu
	return w
}

// acked is called (on the read loop) with the result of one write.
func (w *s3BlobWriter) acked(err error) {
	w.mu.Lock()
	w.inflight--
	if err != nil && w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func (w *s3BlobWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		w.mu.Lock()
		for w.inflight >= s3wire.WriteWindow && w.err == nil {
			w.cond.Wait()
		}
		err := w.err
		if err == nil {
			w.inflight++
		}
		w.mu.Unlock()
		if err != nil {
			return n, err
		}
		chunk := p[n:min(n+s3wire.ChunkSize, len(p))]
		w.c.start(&s3wire.Msg{Op: s3wire.OpWrite, Obj: w.id}, chunk, w.acked)
		n += len(chunk)
	}
	return n, nil
}

// Close waits for the writes in flight, then finishes the upload.
func (w *s3BlobWriter) Close() error {
	w.mu.Lock()
	for w.inflight > 0 {
		w.cond.Wait()
	}
	werr := w.err
	w.mu.Unlock()
	_, _, err := w.c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpClose, Obj: w.id}, nil, nil)
	if werr != nil {
		return werr
	}
	return err
}

func (w *s3BlobWriter) fail(err error) {
	m := failMessage(err)
	m.Obj = w.id
	// The upload is gone either way: stopped here, or with the helper.
	_, _, _ = w.c.call(context.Background(), m, nil, nil)
}

func (b *s3Backend) open(ctx context.Context, name string) (handle, error) {
	c, bid, err := b.attach(ctx)
	if err != nil {
		return nil, err
	}
	hid := c.newID()
	if _, _, err := c.call(ctx, &s3wire.Msg{Op: s3wire.OpOpen, Obj: bid, Name: name, New: hid}, nil, nil); err != nil {
		return nil, err
	}
	return &s3Handle{c: c, id: hid}, nil
}

// s3Handle is an image handle in the helper.
type s3Handle struct {
	c  *helperConn
	id uint64
}

func (h *s3Handle) manifest(ctx context.Context) ([]byte, error) {
	_, out, err := h.c.call(ctx, &s3wire.Msg{Op: s3wire.OpManifest, Obj: h.id}, nil, nil)
	if err != nil {
		return nil, err
	}
	if len(out) > maxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes: %w", maxManifestSize, ErrCorrupt)
	}
	return out, nil
}

func (h *s3Handle) blob(ctx context.Context, key string, size int64) (blobReader, error) {
	rid := h.c.newID()
	if _, _, err := h.c.call(ctx, &s3wire.Msg{Op: s3wire.OpBlob, Obj: h.id, Key: key, N: size, New: rid}, nil, nil); err != nil {
		return nil, err
	}
	return &s3Blob{c: h.c, id: rid}, nil
}

// release forgets object id in the helper. A dead helper has forgotten it.
func release(c *helperConn, id uint64) error {
	_, _, err := c.call(context.Background(), &s3wire.Msg{Op: s3wire.OpRelease, Obj: id}, nil, nil)
	if c.failed() != nil {
		return nil
	}
	return err
}

func (h *s3Handle) close() error { return release(h.c, h.id) }

func (h *s3Handle) aux(ctx context.Context, key string) ([]byte, error) {
	_, out, err := h.c.call(ctx, &s3wire.Msg{Op: s3wire.OpAux, Obj: h.id, Key: key}, nil, nil)
	if err != nil {
		return nil, err
	}
	if len(out) > maxAuxSize {
		return nil, fmt.Errorf("%s larger than %d bytes: %w", key, maxAuxSize, ErrCorrupt)
	}
	return out, nil
}

func (h *s3Handle) putAux(ctx context.Context, key string, data []byte) error {
	_, _, err := h.c.call(ctx, &s3wire.Msg{Op: s3wire.OpPutAux, Obj: h.id, Key: key}, data, nil)
	return err
}

// s3Blob is a blob reader in the helper; the helper answers each readAt
// with one ranged GET (per 64 MiB).
type s3Blob struct {
	c  *helperConn
	id uint64
}

func (r *s3Blob) readAt(ctx context.Context, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	_, _, err := r.c.call(ctx, &s3wire.Msg{Op: s3wire.OpReadAt, Obj: r.id, Off: off, N: int64(len(p))}, nil, p)
	return err
}

func (r *s3Blob) size(ctx context.Context) (int64, error) {
	resp, _, err := r.c.call(ctx, &s3wire.Msg{Op: s3wire.OpSize, Obj: r.id}, nil, nil)
	if err != nil {
		return 0, err
	}
	return resp.N, nil
}

func (r *s3Blob) close() error { return release(r.c, r.id) }

func (b *s3Backend) list(ctx context.Context) ([]string, error) {
	resp, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpList})
	if err != nil {
		return nil, err
	}
	names := resp.Names[:0]
	for _, n := range resp.Names {
		if validName(n) == nil {
			names = append(names, n)
		}
	}
	return names, nil
}

func (b *s3Backend) remove(ctx context.Context, name string) error {
	_, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpRemove, Name: name})
	return err
}

func (b *s3Backend) prune(ctx context.Context, olderThan time.Duration) ([]string, error) {
	resp, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpPrune, N: int64(olderThan)})
	if err != nil {
		return nil, err
	}
	return resp.Names, nil
}
