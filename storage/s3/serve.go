package s3

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"snapshotter/storage"
	"snapshotter/storage/s3wire"
)

// maxReadPiece bounds the buffer Serve allocates for one ranged GET; a
// longer OpReadAt is served by consecutive GETs of this size.
const maxReadPiece = 64 << 20

// drainTimeout bounds how long Serve waits, once its input has ended, for
// the requests in flight to notice that they are cancelled.
const drainTimeout = 10 * time.Second

// Serve answers the storage/s3wire requests read from r, writing the
// responses to w, until r ends: then it cancels every request in flight and
// every staging (their uploads stop; Prune removes what they left) and
// returns nil. A malformed frame ends it with an error wrapping
// s3wire.ErrProtocol.
func Serve(r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &server{w: w, objs: map[uint64]any{}, reqs: map[uint64]context.CancelFunc{}}
	br := bufio.NewReaderSize(r, 256<<10)
	var err error
	for {
		m := new(s3wire.Msg)
		var n int
		if n, err = s3wire.ReadHeader(br, m); err != nil {
			break
		}
		var payload []byte
		if m.Op == s3wire.OpWrite && n <= s3wire.ChunkSize {
			// Blob chunks reuse buffers: fresh memory costs a page fault
			// per 4 KiB, and faults are expensive on VMs.
			payload = chunkPool.Get().(*[s3wire.ChunkSize]byte)[:n]
			_, err = io.ReadFull(br, payload)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		} else {
			payload, err = s3wire.ReadPayload(br, n)
		}
		if err != nil {
			break
		}
		switch m.Op {
		case s3wire.OpCancel:
			s.cancel(m)
			continue
		case s3wire.OpWrite, s3wire.OpClose, s3wire.OpFail:
			// Ordered per writer: queued here, in the order received.
			s.toWriter(m, payload)
			continue
		}
		rctx, rcancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.reqs[m.ID] = rcancel
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ctx, rctx, m, payload)
			s.mu.Lock()
			delete(s.reqs, m.ID)
			s.mu.Unlock()
			rcancel()
		}()
	}
	if err == io.EOF {
		err = nil
	} else if !errors.Is(err, s3wire.ErrProtocol) {
		err = fmt.Errorf("read request: %w", err)
	}
	cancel()
	s.mu.Lock()
	for id, o := range s.objs {
		if w, ok := o.(*writer); ok {
			close(w.q)
			delete(s.objs, id)
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
	}
	return err
}

type server struct {
	wmu sync.Mutex
	w   io.Writer // protected by wmu

	wg sync.WaitGroup

	mu   sync.Mutex
	objs map[uint64]any                // object ID -> *Backend, *staging, ...; protected by mu
	reqs map[uint64]context.CancelFunc // request ID -> its cancel; protected by mu
}

// chunkPool holds *[s3wire.ChunkSize]byte buffers for blob chunks.
var chunkPool = sync.Pool{New: func() any { return new([s3wire.ChunkSize]byte) }}

// putChunk returns a buffer from chunkPool (any other slice is left alone).
func putChunk(b []byte) {
	if cap(b) == s3wire.ChunkSize {
		chunkPool.Put((*[s3wire.ChunkSize]byte)(b[:s3wire.ChunkSize]))
	}
}

// readPool holds *[readBufSize]byte buffers for ranged reads of more than
// a chunk: the memory reader's batches are at most 8 MiB.
var readPool = sync.Pool{New: func() any { return new([readBufSize]byte) }}

const readBufSize = 8 << 20

// getReadBuf returns a buffer of n bytes and the function that releases it.
func getReadBuf(n int) ([]byte, func()) {
	switch {
	case n <= s3wire.ChunkSize:
		b := chunkPool.Get().(*[s3wire.ChunkSize]byte)
		return b[:n], func() { chunkPool.Put(b) }
	case n <= readBufSize:
		b := readPool.Get().(*[readBufSize]byte)
		return b[:n], func() { readPool.Put(b) }
	}
	return make([]byte, n), func() {}
}

// writer is a BlobWriter and the queue of its requests (OpWrite, then
// OpClose), served in order by one goroutine. The client keeps at most
// s3wire.WriteWindow writes in flight per writer, so the read loop does not
// wait on the queue. Only the read loop sends to q and closes
// it, when it takes the writer out of the object table.
type writer struct {
	bw *BlobWriter
	q  chan writeReq
}

type writeReq struct {
	m       *s3wire.Msg
	payload []byte
}

// writerQueue is the capacity of a writer's queue: the window and OpClose.
const writerQueue = s3wire.WriteWindow + 1

func (s *server) newWriter(bw *BlobWriter) *writer {
	w := &writer{bw: bw, q: make(chan writeReq, writerQueue)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for r := range w.q {
			var err error
			if r.m.Op == s3wire.OpClose {
				err = w.bw.Close()
			} else {
				_, err = w.bw.Write(r.payload)
				putChunk(r.payload)
			}
			s.reply(r.m.ID, err)
		}
	}()
	return w
}

// toWriter queues OpWrite or OpClose on their writer, or fails it at
// once (OpFail, which must not wait behind blocked writes).
func (s *server) toWriter(m *s3wire.Msg, payload []byte) {
	s.mu.Lock()
	w, ok := s.objs[m.Obj].(*writer)
	if ok && m.Op != s3wire.OpWrite {
		delete(s.objs, m.Obj)
	}
	s.mu.Unlock()
	if !ok {
		s.reply(m.ID, fmt.Errorf("s3 helper: no blob writer %d: %w", m.Obj, s3wire.ErrProtocol))
		return
	}
	switch m.Op {
	case s3wire.OpWrite:
		w.q <- writeReq{m, payload}
	case s3wire.OpClose:
		w.q <- writeReq{m, nil}
		close(w.q)
	case s3wire.OpFail:
		close(w.q)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.bw.Fail(errors.New(m.Err))
			s.reply(m.ID, nil)
		}()
	}
}

// reply sends the OpDone of request id with err.
func (s *server) reply(id uint64, err error) {
	resp := &s3wire.Msg{ID: id, Op: s3wire.OpDone}
	if err != nil {
		resp.Failed, resp.Code, resp.Err = true, storage.S3WireCode(err), err.Error()
	}
	s.send(resp, nil)
}

// staging is a Staging with the cancel of its context.
type staging struct {
	*Staging
	cancel context.CancelFunc
}

func (s *server) send(m *s3wire.Msg, payload []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A write error means the client is gone; the read loop sees its end.
	_ = s3wire.WriteFrame(s.w, m, payload)
}

func (s *server) cancel(m *s3wire.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.reqs[m.ID]; m.ID != 0 && c != nil {
		c()
	}
	if st, ok := s.objs[m.Obj].(*staging); ok && m.Obj != 0 {
		st.cancel()
	}
}

func (s *server) put(id uint64, o any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.objs[id]; dup || id == 0 {
		return fmt.Errorf("s3 helper: object ID %d in use: %w", id, s3wire.ErrProtocol)
	}
	s.objs[id] = o
	return nil
}

func (s *server) drop(id uint64) {
	s.mu.Lock()
	delete(s.objs, id)
	s.mu.Unlock()
}

// obj returns object id of type T.
func obj[T any](s *server, id uint64) (T, error) {
	s.mu.Lock()
	o, ok := s.objs[id].(T)
	s.mu.Unlock()
	if !ok {
		return o, fmt.Errorf("s3 helper: no object %d of type %T: %w", id, o, s3wire.ErrProtocol)
	}
	return o, nil
}

// serve runs request m with context rctx; stagings get a context derived
// from root, which outlives the request.
func (s *server) serve(root, rctx context.Context, m *s3wire.Msg, payload []byte) {
	resp := &s3wire.Msg{ID: m.ID, Op: s3wire.OpDone}
	var out []byte
	err := s.do(root, rctx, m, payload, resp, &out)
	if err != nil {
		resp.Failed, resp.Code, resp.Err = true, storage.S3WireCode(err), err.Error()
		out = nil
	}
	s.send(resp, out)
}

func (s *server) do(root, rctx context.Context, m *s3wire.Msg, payload []byte, resp *s3wire.Msg, out *[]byte) error {
	switch m.Op {
	case s3wire.OpBackend:
		if m.Config == nil {
			return fmt.Errorf("s3 helper: OpBackend without a config: %w", s3wire.ErrProtocol)
		}
		c := m.Config
		b, err := New(storage.S3Config{
			Endpoint: c.Endpoint, Secure: c.Secure, Region: c.Region,
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken,
			Bucket: c.Bucket, Prefix: c.Prefix, PartSize: c.PartSize, Threads: c.Threads, MaxRetries: c.MaxRetries,
			DialTimeout: c.DialTimeout, HeaderTimeout: c.HeaderTimeout, IdleTimeout: c.IdleTimeout,
			StaleAge: c.StaleAge,
		})
		if err != nil {
			return err
		}
		return s.put(m.New, b)
	case s3wire.OpExists:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Flag, err = b.Exists(rctx, m.Name)
		return err
	case s3wire.OpBegin:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		b.PruneStale(rctx)
		sctx, cancel := context.WithCancel(root)
		if err := s.put(m.New, &staging{b.Begin(sctx, m.Name), cancel}); err != nil {
			cancel()
			return err
		}
		return nil
	case s3wire.OpKey:
		st, err := obj[*staging](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Key = st.Key(m.Name)
		return nil
	case s3wire.OpCreate:
		st, err := obj[*staging](s, m.Obj)
		if err != nil {
			return err
		}
		w := s.newWriter(st.Create(m.Key, m.Flag))
		if err := s.put(m.New, w); err != nil {
			close(w.q)
			w.bw.Fail(err)
			return err
		}
		return nil
	case s3wire.OpCommit:
		st, err := obj[*staging](s, m.Obj)
		if err != nil {
			return err
		}
		if err := st.Commit(payload, m.Flag); err != nil {
			return err
		}
		s.drop(m.Obj)
		st.cancel()
		return nil
	case s3wire.OpAbort:
		st, err := obj[*staging](s, m.Obj)
		if err != nil {
			return err
		}
		s.drop(m.Obj)
		defer st.cancel()
		return st.Abort()
	case s3wire.OpOpen:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		return s.put(m.New, b.Open(m.Name))
	case s3wire.OpManifest:
		h, err := obj[*Handle](s, m.Obj)
		if err != nil {
			return err
		}
		*out, err = h.Manifest(rctx)
		return err
	case s3wire.OpBlob:
		h, err := obj[*Handle](s, m.Obj)
		if err != nil {
			return err
		}
		return s.put(m.New, h.Blob(m.Key))
	case s3wire.OpReadAt:
		r, err := obj[*Blob](s, m.Obj)
		if err != nil {
			return err
		}
		return s.readAt(rctx, r, m)
	case s3wire.OpSize:
		r, err := obj[*Blob](s, m.Obj)
		if err != nil {
			return err
		}
		resp.N, err = r.Size(rctx)
		return err
	case s3wire.OpRelease:
		s.mu.Lock()
		o := s.objs[m.Obj]
		delete(s.objs, m.Obj)
		s.mu.Unlock()
		if c, ok := o.(io.Closer); ok {
			return c.Close()
		}
		return nil
	case s3wire.OpList:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Names, err = b.List(rctx)
		return err
	case s3wire.OpRemove:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		return b.Remove(rctx, m.Name)
	case s3wire.OpPrune:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Names, err = b.Prune(rctx, time.Duration(m.N))
		return err
	case s3wire.OpPutChunk:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Flag, err = b.PutChunk(rctx, m.Key, payload)
		return err
	case s3wire.OpChunk:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		return s.put(m.New, b.Chunk(m.Key))
	case s3wire.OpListChunks:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Names, err = b.ListChunks(rctx)
		return err
	case s3wire.OpAux:
		h, err := obj[*Handle](s, m.Obj)
		if err != nil {
			return err
		}
		*out, err = h.Aux(rctx, m.Key)
		return err
	case s3wire.OpPutAux:
		h, err := obj[*Handle](s, m.Obj)
		if err != nil {
			return err
		}
		return h.PutAux(rctx, m.Key, payload)
	case s3wire.OpRemoveChunk:
		b, err := obj[*Backend](s, m.Obj)
		if err != nil {
			return err
		}
		resp.Flag, err = b.RemoveChunk(rctx, m.Key, time.Duration(m.N))
		return err
	}
	return fmt.Errorf("s3 helper: unknown request op %d: %w", m.Op, s3wire.ErrProtocol)
}

// readAt answers OpReadAt with OpData frames of at most s3wire.ChunkSize,
// reading pieces of at most maxReadPiece with one ranged GET each.
func (s *server) readAt(ctx context.Context, r *Blob, m *s3wire.Msg) error {
	if m.N < 0 || m.Off < 0 {
		return fmt.Errorf("s3 helper: read of %d bytes at %d: %w", m.N, m.Off, storage.ErrInvalidArgument)
	}
	buf, release := getReadBuf(int(min(m.N, maxReadPiece)))
	defer release()
	for done := int64(0); done < m.N; {
		p := buf[:min(m.N-done, int64(len(buf)))]
		if err := r.ReadAt(ctx, p, m.Off+done); err != nil {
			return err
		}
		for i := 0; i < len(p); i += s3wire.ChunkSize {
			chunk := p[i:min(i+s3wire.ChunkSize, len(p))]
			s.send(&s3wire.Msg{ID: m.ID, Op: s3wire.OpData, Off: done + int64(i)}, chunk)
		}
		done += int64(len(p))
	}
	return nil
}
