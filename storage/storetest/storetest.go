// Package storetest is the conformance suite every storage.Store passes: the
// file store and the S3 store run the same tests through Run.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"snapshotter/storage"
)

// Harness adapts one Store implementation to the suite. The hooks reach
// under the Store to damage or inspect raw objects, as a crash or a bad disk
// would.
type Harness struct {
	// New returns a fresh, empty store.
	New func(t *testing.T) storage.Store
	// Objects lists every raw object (file store: every file, staging areas
	// included) the store holds, as sorted store-relative paths.
	Objects func(t *testing.T, s storage.Store) []string
	// Rewrite replaces the raw object at key (a manifest-relative blob key,
	// or "manifest") of image name with f(old bytes).
	Rewrite func(t *testing.T, s storage.Store, name, key string, f func([]byte) []byte)
	// Remove deletes the raw object at key of image name.
	Remove func(t *testing.T, s storage.Store, name, key string)
	// Chunk returns the (name, key) under which Rewrite and Remove reach
	// the content-addressed chunk with address sum (hex SHA-256).
	Chunk func(sum string) (name, key string)
	// SparseSize is the logical size of the sparse image test; 0 means 3 GiB.
	SparseSize uint64
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("SparseMultiGiB", func(t *testing.T) { testSparse(t, h) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("StateAndMemoryInParallel", func(t *testing.T) { testStateMemoryParallel(t, h) })
	t.Run("AlreadyExists", func(t *testing.T) { testAlreadyExists(t, h) })
	t.Run("AbortLeavesNothing", func(t *testing.T) { testAbort(t, h) })
	t.Run("Corruption", func(t *testing.T) { testCorruption(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("ListDelete", func(t *testing.T) { testListDelete(t, h) })
	t.Run("InvalidArguments", func(t *testing.T) { testInvalid(t, h) })
	t.Run("Signed", func(t *testing.T) { testSigned(t, h) })
	t.Run("SharedChunks", func(t *testing.T) { testSharedChunks(t, h) })
	t.Run("PruneSweepsChunks", func(t *testing.T) { testPruneChunks(t, h) })
	t.Run("WorkingSet", func(t *testing.T) { testWorkingSet(t, h) })
}

// testSigned: a signed image round-trips and verifies with its key (the
// store keeps the manifest's signature block and the memory blob exactly),
// also when it replaces an unsigned one; another key is refused.
func testSigned(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	im := makeImage(3<<20, []storage.Range{{Off: 0, Len: 3 << 20}}, MixedKind, 5000)
	mustWrite(t, s, "signed", im, storage.CreateOptions{})
	m := mustWrite(t, s, "signed", im, storage.CreateOptions{SignKey: priv, Replace: true})
	if !m.Signer.Equal(pub) || m.Memory.SHA256 == "" {
		t.Errorf("Commit(signed) manifest: signer %x, memory sha256 %q; want the key and a digest", m.Signer, m.Memory.SHA256)
	}
	img, err := s.Open(ctx, "signed")
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Check(ctx, storage.OpenOptions{VerifyKey: pub}); err != nil {
		t.Errorf("Check(verify with the signing key) = %v", err)
	}
	if err := img.Check(ctx, storage.OpenOptions{VerifyKey: other}); !errors.Is(err, storage.ErrSignature) {
		t.Errorf("Check(verify with another key) = %v, want ErrSignature", err)
	}
	checkImage(t, s, "signed", im, nil)
}

// image is a small test image held in memory: state bytes and memory
// ranges, with the expected full memory contents.
type image struct {
	state  []byte
	ranges []storage.Range
	mem    []byte // expected memory, len = memory size
}

func makeImage(size uint64, ranges []storage.Range, kind func(pageNo uint64) int, stateLen int) image {
	im := image{ranges: ranges, mem: make([]byte, size)}
	for _, r := range ranges {
		for off := r.Off; off < r.Off+r.Len; off += storage.PageSize {
			n := off / storage.PageSize
			FillPage(im.mem[off:off+storage.PageSize], kind(n), n)
		}
	}
	im.state = make([]byte, stateLen)
	for i := range im.state {
		im.state[i] = byte(splitmix64(uint64(i/16)) % 7)
	}
	return im
}

func write(ctx context.Context, t *testing.T, s storage.Store, name string, im image, opts storage.CreateOptions) (*storage.Manifest, error) {
	t.Helper()
	w, err := s.Create(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if _, err := w.StateWriter().Write(im.state); err != nil {
		return nil, err
	}
	if err := w.WriteMemoryFrom(bytes.NewReader(im.mem), im.ranges); err != nil {
		return nil, err
	}
	return w.Commit()
}

func mustWrite(t *testing.T, s storage.Store, name string, im image, opts storage.CreateOptions) *storage.Manifest {
	t.Helper()
	m, err := write(context.Background(), t, s, name, im, opts)
	if err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return m
}

// sliceDest is a MemoryDest over a []byte.
func sliceDest(buf []byte) storage.MemoryDest {
	return func(off uint64, n int) ([]byte, error) {
		if off+uint64(n) > uint64(len(buf)) {
			return nil, fmt.Errorf("chunk [%#x+%d] past end %d", off, n, len(buf))
		}
		return buf[off : off+uint64(n)], nil
	}
}

type bufWriterAt struct {
	mu  sync.Mutex
	buf []byte
}

func (b *bufWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int(off)+len(p) > len(b.buf) {
		return 0, fmt.Errorf("write [%d+%d] past end %d", off, len(p), len(b.buf))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return copy(b.buf[off:], p), nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func checkImage(t *testing.T, s storage.Store, name string, want image, wantMeta map[string]string) {
	t.Helper()
	ctx := context.Background()
	img, err := s.Open(ctx, name)
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	defer img.Close()
	m := img.Manifest()
	if m.MemorySize != uint64(len(want.mem)) {
		t.Errorf("MemorySize = %d, want %d", m.MemorySize, len(want.mem))
	}
	var nonzero uint64
	for p := 0; p < len(want.mem); p += storage.PageSize {
		if !bytes.Equal(want.mem[p:p+storage.PageSize], make([]byte, storage.PageSize)) {
			nonzero += storage.PageSize
		}
	}
	if m.MemoryData != nonzero {
		t.Errorf("MemoryData = %d, want %d (zero pages must not be stored)", m.MemoryData, nonzero)
	}
	for k, v := range wantMeta {
		if m.Metadata[k] != v {
			t.Errorf("Metadata[%q] = %q, want %q", k, m.Metadata[k], v)
		}
	}
	st, err := img.State(ctx)
	if err != nil {
		t.Fatalf("State() = %v", err)
	}
	got, err := io.ReadAll(st)
	st.Close()
	if err != nil || !bytes.Equal(got, want.state) {
		t.Errorf("State() = %d bytes, %v; want %d bytes equal", len(got), err, len(want.state))
	}
	mem := make([]byte, len(want.mem))
	if err := img.ReadMemoryTo(ctx, sliceDest(mem)); err != nil {
		t.Fatalf("ReadMemoryTo() = %v", err)
	}
	if !bytes.Equal(mem, want.mem) {
		t.Errorf("ReadMemoryTo: memory differs at offset %#x", firstDiff(mem, want.mem))
	}
	wa := &bufWriterAt{buf: make([]byte, len(want.mem))}
	if err := img.ReadMemoryAt(ctx, wa); err != nil {
		t.Fatalf("ReadMemoryAt() = %v", err)
	}
	if !bytes.Equal(wa.buf, want.mem) {
		t.Errorf("ReadMemoryAt: memory differs at offset %#x", firstDiff(wa.buf, want.mem))
	}
	for i, c := range img.Chunks() {
		dst := bytes.Repeat([]byte{0xee}, int(c.Span))
		if err := img.ReadChunk(ctx, i, dst); err != nil {
			t.Fatalf("ReadChunk(%d) = %v", i, err)
		}
		if w := want.mem[c.Offset : c.Offset+uint64(c.Span)]; !bytes.Equal(dst, w) {
			t.Fatalf("ReadChunk(%d) differs at %#x", i, c.Offset+uint64(firstDiff(dst, w)))
		}
		if j, ok := img.FindChunk(c.Offset + uint64(c.Span) - 1); !ok || j != i {
			t.Errorf("FindChunk(end of chunk %d) = %d, %v; want %d, true", i, j, ok, i)
		}
	}
	if err := img.Verify(ctx); err != nil {
		t.Errorf("Verify() = %v, want nil", err)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	const mib = 1 << 20
	all := func(kind int) func(uint64) int { return func(uint64) int { return kind } }
	tests := []struct {
		name     string
		size     uint64
		ranges   []storage.Range
		kind     func(uint64) int
		stateLen int
		level    int
		codec    string
	}{
		{name: "empty", size: 0, kind: all(KindHeap)},
		{name: "state-only", size: 0, kind: all(KindHeap), stateLen: 3 * mib},
		{name: "all-zero", size: 4 * mib, ranges: []storage.Range{{Off: 0, Len: 4 * mib}}, kind: all(KindZero), stateLen: 10},
		{name: "dense-heap", size: 5*mib + 8192, ranges: []storage.Range{{Off: 0, Len: 5*mib + 8192}}, kind: all(KindHeap), stateLen: 1000},
		{name: "incompressible", size: 3 * mib, ranges: []storage.Range{{Off: 0, Len: 3 * mib}}, kind: all(KindRandom), stateLen: 1},
		{name: "mixed", size: 9 * mib, ranges: []storage.Range{{Off: 0, Len: 9 * mib}}, kind: MixedKind, stateLen: 200000},
		{name: "gaps", size: 12 * mib, ranges: []storage.Range{
			{Off: 4096, Len: 8192}, {Off: mib - 4096, Len: 3 * 4096}, {Off: 3 * mib, Len: 2 * mib}, {Off: 11 * mib, Len: mib},
		}, kind: MixedKind, stateLen: 5},
		{name: "s2-mixed", size: 9 * mib, ranges: []storage.Range{{Off: 0, Len: 9 * mib}}, kind: MixedKind, stateLen: 5000, codec: storage.CodecS2},
		{name: "s2-incompressible", size: 2 * mib, ranges: []storage.Range{{Off: 0, Len: 2 * mib}}, kind: all(KindRandom), codec: storage.CodecS2},
		{name: "s2-fast", size: 3 * mib, ranges: []storage.Range{{Off: 0, Len: 3 * mib}}, kind: MixedKind, stateLen: 50, codec: storage.CodecS2, level: storage.S2Fast},
		{name: "s2-best", size: 3 * mib, ranges: []storage.Range{{Off: 0, Len: 3 * mib}}, kind: MixedKind, stateLen: 50, codec: storage.CodecS2, level: storage.S2Best},
		{name: "zstd-mixed", size: 9 * mib, ranges: []storage.Range{{Off: 0, Len: 9 * mib}}, kind: MixedKind, stateLen: 5000, codec: storage.CodecZstd},
		{name: "zstd-gaps", size: 12 * mib, ranges: []storage.Range{
			{Off: 4096, Len: 8192}, {Off: mib - 4096, Len: 3 * 4096}, {Off: 3 * mib, Len: 2 * mib}, {Off: 11 * mib, Len: mib},
		}, kind: MixedKind, stateLen: 5, codec: storage.CodecZstd},
		{name: "zstd-incompressible", size: 2 * mib, ranges: []storage.Range{{Off: 0, Len: 2 * mib}}, kind: all(KindRandom), codec: storage.CodecZstd},
		{name: "zstd-level-9", size: 2 * mib, ranges: []storage.Range{{Off: 0, Len: 2 * mib}}, kind: MixedKind, stateLen: 5000, codec: storage.CodecZstd, level: 9},
	}
	s := h.New(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im := makeImage(tc.size, tc.ranges, tc.kind, tc.stateLen)
			meta := map[string]string{"program": "/bin/" + tc.name, "argv": "a b c"}
			m := mustWrite(t, s, tc.name, im, storage.CreateOptions{Level: tc.level, Codec: tc.codec, Metadata: meta, SnapVersion: "test"})
			wantCodec := cmp.Or(tc.codec, storage.DefaultCodec)
			wantLevel := tc.level
			if wantLevel == 0 {
				wantLevel = storage.DefaultLevel
				if wantCodec == storage.CodecS2 {
					wantLevel = storage.S2Better
				}
			}
			if m.Compression.Level != wantLevel || m.Compression.Algorithm != wantCodec {
				t.Errorf("Compression = %+v, want level %d, codec %q", m.Compression, wantLevel, wantCodec)
			}
			checkImage(t, s, tc.name, im, meta)
			st, err := s.Stat(context.Background(), tc.name)
			if err != nil || st.Chunks != m.Chunks || st.SnapVersion != "test" {
				t.Errorf("Stat(%s) = %+v, %v; want chunks %d, version test", tc.name, st, err, m.Chunks)
			}
		})
	}
}

// checkingWriterAt compares what is written with the generated content and
// counts bytes, so a multi-GiB image is checked without being held.
type checkingWriterAt struct {
	kind    func(uint64) int
	written atomic.Uint64
	bad     atomic.Int64
}

func (c *checkingWriterAt) WriteAt(p []byte, off int64) (int, error) {
	want := make([]byte, storage.PageSize)
	for i := 0; i < len(p); i += storage.PageSize {
		n := (uint64(off) + uint64(i)) / storage.PageSize
		FillPage(want, c.kind(n), n)
		if !bytes.Equal(p[i:i+storage.PageSize], want) {
			c.bad.Store(off + int64(i) + 1)
		}
	}
	c.written.Add(uint64(len(p)))
	return len(p), nil
}

func testSparse(t *testing.T, h Harness) {
	size := h.SparseSize
	if size == 0 {
		size = 3 << 30
	}
	// One heap page every 64 MiB plus a dense 3 MiB region at the end.
	kind := func(n uint64) int {
		off := n * storage.PageSize
		if off%(64<<20) == 8192 || off >= size-(3<<20) {
			return KindHeap
		}
		return KindZero
	}
	var wantData uint64
	s := h.New(t)
	ctx := context.Background()
	w, err := s.Create(ctx, "sparse", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	defer w.Abort()
	buf := make([]byte, 4<<20)
	for off := uint64(0); off < size; off += uint64(len(buf)) {
		for p := 0; p < len(buf); p += storage.PageSize {
			n := (off + uint64(p)) / storage.PageSize
			k := kind(n)
			FillPage(buf[p:p+storage.PageSize], k, n)
			if k != KindZero {
				wantData += storage.PageSize
			}
		}
		if err := w.WriteMemory(off, buf); err != nil {
			t.Fatalf("WriteMemory(%#x) = %v", off, err)
		}
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if m.MemorySize != size || m.MemoryData != wantData {
		t.Errorf("manifest memory %d / data %d, want %d / %d", m.MemorySize, m.MemoryData, size, wantData)
	}
	if m.StoredSize() > int64(wantData) {
		t.Errorf("StoredSize = %d, more than the %d non-zero bytes", m.StoredSize(), wantData)
	}
	img, err := s.Open(ctx, "sparse")
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer img.Close()
	c := &checkingWriterAt{kind: kind}
	if err := img.ReadMemoryAt(ctx, c); err != nil {
		t.Fatalf("ReadMemoryAt = %v", err)
	}
	if bad := c.bad.Load(); bad != 0 {
		t.Errorf("ReadMemoryAt wrote wrong content at %#x", bad-1)
	}
	if c.written.Load() != wantData {
		t.Errorf("ReadMemoryAt wrote %d bytes, want %d", c.written.Load(), wantData)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	s := h.New(t)
	const n = 4
	ims := make([]image, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		ims[i] = makeImage(3<<20, []storage.Range{{Off: 0, Len: 3 << 20}}, func(p uint64) int { return MixedKind(p + uint64(i)*7) }, 1000*i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = write(context.Background(), t, s, fmt.Sprintf("img-%d", i), ims[i], storage.CreateOptions{Workers: 2})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		checkImage(t, s, fmt.Sprintf("img-%d", i), ims[i], nil)
	}
	// Racing writers of one name: exactly one wins, the others see
	// ErrAlreadyExists and leave nothing behind.
	before := h.Objects(t, s)
	var wins atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = write(context.Background(), t, s, "same", ims[i], storage.CreateOptions{})
			if errs[i] == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d racing writers of one name won (errors %v), want 1", wins.Load(), n, errs)
	}
	winner := -1
	for i, err := range errs {
		if err == nil {
			winner = i
		} else if !errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("racing writer %d: %v, want ErrAlreadyExists", i, err)
		}
	}
	checkImage(t, s, "same", ims[winner], nil)
	after := h.Objects(t, s)
	var extra []string
	for _, o := range after {
		if !slices.Contains(before, o) && !strings.HasPrefix(o, "same/") {
			extra = append(extra, o)
		}
	}
	if len(extra) > 0 {
		t.Errorf("losing writers left %v", extra)
	}
}

func testAlreadyExists(t *testing.T, h Harness) {
	s := h.New(t)
	ctx := context.Background()
	a := makeImage(1<<20, []storage.Range{{Off: 0, Len: 1 << 20}}, MixedKind, 10)
	b := makeImage(2<<20, []storage.Range{{Off: 0, Len: 2 << 20}}, func(p uint64) int { return MixedKind(p + 99) }, 20)
	mustWrite(t, s, "x", a, storage.CreateOptions{})
	if _, err := s.Create(ctx, "x", storage.CreateOptions{}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("Create(existing) = %v, want ErrAlreadyExists", err)
	}
	// Checked again at Commit: a writer that started before the name was
	// taken loses.
	w, err := s.Create(ctx, "y", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create(y) = %v", err)
	}
	mustWrite(t, s, "y", a, storage.CreateOptions{})
	before := h.Objects(t, s)
	if _, err := w.Commit(); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("Commit(taken meanwhile) = %v, want ErrAlreadyExists", err)
	}
	for _, o := range h.Objects(t, s) {
		if !slices.Contains(before, o) {
			t.Errorf("failed Commit left %s", o)
		}
	}
	checkImage(t, s, "y", a, nil)
	mustWrite(t, s, "x", b, storage.CreateOptions{Replace: true})
	checkImage(t, s, "x", b, nil)
	// The replaced generation is gone.
	var xs []string
	for _, o := range h.Objects(t, s) {
		if strings.HasPrefix(o, "x/") {
			xs = append(xs, o)
		}
	}
	if len(xs) != 3 {
		t.Errorf("objects of replaced image x = %v, want manifest + 2 blobs (chunks are the store's)", xs)
	}
}

func testAbort(t *testing.T, h Harness) {
	s := h.New(t)
	ctx := context.Background()
	mustWrite(t, s, "keep", makeImage(1<<20, []storage.Range{{Off: 0, Len: 1 << 20}}, MixedKind, 10), storage.CreateOptions{})
	before := h.Objects(t, s)
	im := makeImage(6<<20, []storage.Range{{Off: 0, Len: 6 << 20}}, MixedKind, 100000)
	for _, tc := range []struct {
		name string
		feed func(w *storage.Writer) error
	}{
		{"nothing-written", func(*storage.Writer) error { return nil }},
		{"state-only", func(w *storage.Writer) error { _, err := w.StateWriter().Write(im.state); return err }},
		{"state-and-memory", func(w *storage.Writer) error {
			if _, err := w.StateWriter().Write(im.state); err != nil {
				return err
			}
			return w.WriteMemoryFrom(bytes.NewReader(im.mem), im.ranges)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.Create(ctx, "aborted", storage.CreateOptions{})
			if err != nil {
				t.Fatalf("Create = %v", err)
			}
			if err := tc.feed(w); err != nil {
				t.Fatalf("write = %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("Abort = %v", err)
			}
			if _, err := w.Commit(); err == nil {
				t.Errorf("Commit after Abort = nil, want an error")
			}
			// Chunks stored before the abort are garbage that no image
			// references: a prune removes them, and nothing else.
			if after := h.Objects(t, s); !slices.Equal(before, nonChunks(after, before)) {
				t.Errorf("Abort left objects other than chunks: before %v, after %v", before, after)
			}
			if _, err := s.Prune(ctx, 0); err != nil {
				t.Fatalf("Prune = %v", err)
			}
			if after := h.Objects(t, s); !slices.Equal(before, after) {
				t.Errorf("Abort left objects: before %v, after %v", before, after)
			}
			if _, err := s.Open(ctx, "aborted"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Open(aborted) = %v, want ErrNotFound", err)
			}
		})
	}
	// A cancelled context fails the write and leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	w, err := s.Create(cctx, "cancelled", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	cancel()
	err = w.WriteMemoryFrom(bytes.NewReader(im.mem), im.ranges)
	if _, cerr := w.Commit(); cerr == nil || !errors.Is(cerr, context.Canceled) && !errors.Is(err, context.Canceled) {
		t.Errorf("write with cancelled context: WriteMemory %v, Commit %v; want context.Canceled", err, cerr)
	}
	w.Abort()
	if _, err := s.Prune(ctx, 0); err != nil {
		t.Fatalf("Prune = %v", err)
	}
	if after := h.Objects(t, s); !slices.Equal(before, after) {
		t.Errorf("cancelled write left objects: before %v, after %v", before, after)
	}
}

func testCorruption(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	flip := func(at func(m *storage.Manifest, size int) int) func(m *storage.Manifest) func([]byte) []byte {
		return func(m *storage.Manifest) func([]byte) []byte {
			return func(b []byte) []byte {
				b = bytes.Clone(b)
				b[at(m, len(b))] ^= 0x40
				return b
			}
		}
	}
	truncate := func(m *storage.Manifest) func([]byte) []byte {
		return func(b []byte) []byte { return b[:len(b)-len(b)/3-1] }
	}
	// Stored bytes beyond what the manifest and the index cover are not
	// the image's: refused, though every chunk still verifies.
	appendByte := func(m *storage.Manifest) func([]byte) []byte {
		return func(b []byte) []byte { return append(bytes.Clone(b), 0) }
	}
	// A manifest whose checksum is right but whose claims are not.
	editManifest := func(edit func(m *storage.Manifest)) func(m *storage.Manifest) func([]byte) []byte {
		return func(*storage.Manifest) func([]byte) []byte {
			return func(b []byte) []byte {
				m, err := storage.ParseManifest(b)
				if err != nil {
					t.Fatal(err)
				}
				edit(m)
				if b, err = storage.MarshalManifest(m); err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
	// The chunk two thirds into the image, as (name, key) for Rewrite.
	chunkAt := func(name string) (string, string) {
		img, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		cs := img.Chunks()
		return h.Chunk(cs[len(cs)*2/3].SumHex())
	}
	// chunkKey stands for the chunk two thirds into the image (chunkAt).
	const chunkSentinel = "\x00chunk"
	chunkKey := func(*storage.Manifest) string { return chunkSentinel }
	tests := []struct {
		name    string
		key     func(m *storage.Manifest) string
		damage  func(m *storage.Manifest) func([]byte) []byte
		stage   string // "open", "state" or "memory": where the error shows
		mention string
	}{
		{"manifest-byte", func(*storage.Manifest) string { return "manifest" }, flip(func(_ *storage.Manifest, n int) int { return n / 2 }), "open", "manifest"},
		{"manifest-truncated", func(*storage.Manifest) string { return "manifest" }, truncate, "open", "manifest"},
		{"index-byte", func(m *storage.Manifest) string { return m.Index.Key }, flip(func(_ *storage.Manifest, n int) int { return n - 5 }), "open", "index"},
		{"index-truncated", func(m *storage.Manifest) string { return m.Index.Key }, truncate, "open", "index"},
		{"state-byte", func(m *storage.Manifest) string { return m.State.Key }, flip(func(_ *storage.Manifest, n int) int { return n / 2 }), "state", "state"},
		{"state-truncated", func(m *storage.Manifest) string { return m.State.Key }, truncate, "state", "state"},
		{"chunk-byte", chunkKey, flip(func(_ *storage.Manifest, n int) int { return n * 2 / 3 }), "memory", "chunk"},
		{"chunk-truncated", chunkKey, truncate, "memory", "chunk"},
		{"state-appended", func(m *storage.Manifest) string { return m.State.Key }, appendByte, "state", "state blob"},
		{"state-rawsize", func(*storage.Manifest) string { return "manifest" }, editManifest(func(m *storage.Manifest) { m.State.RawSize++ }), "state", "rawSize"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each case its own memory, so that no two share a chunk.
			im := distinct(makeImage(6<<20, []storage.Range{{Off: 0, Len: 6 << 20}}, MixedKind, 100000), byte(i+1))
			m := mustWrite(t, s, tc.name, im, storage.CreateOptions{})
			name, key := tc.name, tc.key(m)
			if key == chunkSentinel {
				name, key = chunkAt(tc.name)
			}
			h.Rewrite(t, s, name, key, tc.damage(m))
			img, err := s.Open(ctx, tc.name)
			if tc.stage == "open" {
				if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("Open = %v, want ErrCorrupt naming %q", err, tc.mention)
				}
				if err == nil {
					img.Close()
				}
				if tc.key(m) == "manifest" {
					ents, err := s.List(ctx)
					found := false
					for _, e := range ents {
						if e.Name == tc.name {
							found = true
							if !errors.Is(e.Err, storage.ErrCorrupt) {
								t.Errorf("List entry %s: Err = %v, want ErrCorrupt", e.Name, e.Err)
							}
						}
					}
					if err != nil || !found {
						t.Errorf("List() = %v, %v; want %s listed as unreadable", ents, err, tc.name)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v, want success (damage is in a blob)", err)
			}
			defer img.Close()
			if err := img.Verify(ctx); !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Verify = %v, want ErrCorrupt naming %q", err, tc.mention)
			}
			switch tc.stage {
			case "state":
				st, err := img.State(ctx)
				if err == nil {
					_, err = io.ReadAll(st)
					st.Close()
				}
				if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "state") {
					t.Errorf("State = %v, want ErrCorrupt naming the state blob", err)
				}
			case "memory":
				mem := make([]byte, len(im.mem))
				err := img.ReadMemoryTo(ctx, sliceDest(mem))
				if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "chunk") {
					t.Errorf("ReadMemoryTo = %v, want ErrCorrupt naming a chunk", err)
				}
				err = img.ReadMemoryAt(ctx, &bufWriterAt{buf: mem})
				if !errors.Is(err, storage.ErrCorrupt) {
					t.Errorf("ReadMemoryAt = %v, want ErrCorrupt", err)
				}
			}
		})
	}
	// A blob that vanished under a published manifest is corruption too.
	im := distinct(makeImage(6<<20, []storage.Range{{Off: 0, Len: 6 << 20}}, MixedKind, 100000), 0xee)
	mustWrite(t, s, "lost-blob", im, storage.CreateOptions{})
	name, key := chunkAt("lost-blob")
	h.Remove(t, s, name, key)
	img, err := s.Open(ctx, "lost-blob")
	if err == nil {
		err = img.ReadMemoryTo(ctx, sliceDest(make([]byte, len(im.mem))))
		img.Close()
	}
	if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "chunk") {
		t.Errorf("read with a chunk removed = %v, want ErrCorrupt naming the chunk", err)
	}
}

func testNotFound(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	if _, err := s.Open(ctx, "nothing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(nothing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "nothing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(nothing) = %v, want ErrNotFound", err)
	}
	im := makeImage(1<<20, []storage.Range{{Off: 0, Len: 1 << 20}}, MixedKind, 10)
	mustWrite(t, s, "headless", im, storage.CreateOptions{})
	h.Remove(t, s, "headless", "manifest")
	if _, err := s.Open(ctx, "headless"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(manifest removed) = %v, want ErrNotFound", err)
	}
	ents, err := s.List(ctx)
	if err != nil || len(ents) != 0 {
		t.Errorf("List() = %v, %v; want no images (a manifest-less image does not exist)", ents, err)
	}
}

func testListDelete(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	if ents, err := s.List(ctx); err != nil || len(ents) != 0 {
		t.Fatalf("List(empty store) = %v, %v; want nothing", ents, err)
	}
	im := makeImage(1<<20, []storage.Range{{Off: 0, Len: 1 << 20}}, MixedKind, 10)
	names := []string{"b", "a", "c.1"}
	for _, n := range names {
		mustWrite(t, s, n, im, storage.CreateOptions{})
	}
	ents, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name)
		if e.Err != nil || e.Manifest == nil || e.URI != s.ImageURI(e.Name) {
			t.Errorf("List entry %+v, want a manifest and URI %s", e, s.ImageURI(e.Name))
		}
	}
	if want := []string{"a", "b", "c.1"}; !slices.Equal(got, want) {
		t.Errorf("List names = %v, want %v", got, want)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatalf("Delete(b) = %v", err)
	}
	if err := s.Delete(ctx, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete(b) twice = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(deleted) = %v, want ErrNotFound", err)
	}
	for _, o := range h.Objects(t, s) {
		if strings.HasPrefix(o, "b/") {
			t.Errorf("Delete(b) left %s", o)
		}
	}
	ents, _ = s.List(ctx)
	if len(ents) != 2 {
		t.Errorf("List after Delete = %d images, want 2", len(ents))
	}
}

func testInvalid(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	for _, name := range []string{"", ".hidden", "-opt", "a/b", "a b", "..", strings.Repeat("x", 129)} {
		if _, err := s.Create(ctx, name, storage.CreateOptions{}); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("Create(%q) = %v, want ErrInvalidArgument", name, err)
		}
		if _, err := s.Open(ctx, name); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("Open(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	w, err := s.Create(ctx, "inv", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	defer w.Abort()
	page := make([]byte, storage.PageSize)
	page[0] = 1
	for _, tc := range []struct {
		name    string
		off     uint64
		data    []byte
		wantErr error
	}{
		{"misaligned-offset", 1, page, storage.ErrInvalidArgument},
		{"partial-page", 0, page[:100], storage.ErrInvalidArgument},
		{"ok", 8192, page, nil},
		{"backwards", 4096, page, storage.ErrInvalidArgument},
		{"overlapping", 8192, page, storage.ErrInvalidArgument},
		{"after-gap", 3 * 8192, page, nil},
	} {
		if err := w.WriteMemory(tc.off, tc.data); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: WriteMemory(%#x, %d bytes) = %v, want %v", tc.name, tc.off, len(tc.data), err, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		codec string
		level int
	}{
		{"lz4", 0}, {"S2", 0}, {"", 4}, {storage.CodecS2, 40}, {storage.CodecS2, -1},
		{storage.CodecZstd, 23}, {storage.CodecZstd, -1},
	} {
		if _, err := s.Create(ctx, "codec", storage.CreateOptions{Codec: tc.codec, Level: tc.level}); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("Create(codec %q, level %d) = %v, want ErrInvalidArgument", tc.codec, tc.level, err)
		}
	}
}

// testStateMemoryParallel feeds the state stream and the memory sink of one
// writer from two goroutines at once, as the checkpoint code may.
func testStateMemoryParallel(t *testing.T, h Harness) {
	s := h.New(t)
	im := makeImage(8<<20, []storage.Range{{Off: 0, Len: 8 << 20}}, MixedKind, 3<<20)
	w, err := s.Create(context.Background(), "par", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	defer w.Abort()
	stateErr := make(chan error, 1)
	go func() {
		sw := w.StateWriter()
		for off := 0; off < len(im.state); off += 4096 {
			if _, err := sw.Write(im.state[off:min(off+4096, len(im.state))]); err != nil {
				stateErr <- err
				return
			}
		}
		stateErr <- nil
	}()
	merr := w.WriteMemoryFrom(bytes.NewReader(im.mem), im.ranges)
	if err := <-stateErr; err != nil || merr != nil {
		t.Fatalf("state write = %v, memory write = %v", err, merr)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	checkImage(t, s, "par", im, nil)
}

// distinct marks every ChunkSpan of im's memory with tag, so that its
// chunks are shared with no image marked otherwise.
func distinct(im image, tag byte) image {
	for off := 0; off < len(im.mem); off += storage.ChunkSpan {
		im.mem[off+100] = tag
	}
	return im
}

// isChunk reports whether raw object o is a content-addressed chunk.
func isChunk(o string) bool { return strings.HasPrefix(o, ".chunks/") && !strings.HasSuffix(o, "/") }

// nonChunks returns the objects of after that are not chunks, plus the
// chunks that were there before.
func nonChunks(after, before []string) []string {
	var out []string
	for _, o := range after {
		if !isChunk(o) || slices.Contains(before, o) {
			out = append(out, o)
		}
	}
	return out
}

func countChunks(objs []string) int {
	n := 0
	for _, o := range objs {
		if isChunk(o) {
			n++
		}
	}
	return n
}

// testSharedChunks: images with equal chunks store them once. A second
// image of the same memory adds no chunk; one with a page changed adds
// only the chunk holding that page; both read back whole.
func testSharedChunks(t *testing.T, h Harness) {
	s := h.New(t)
	ctx := context.Background()
	base := distinct(makeImage(8<<20, []storage.Range{{Off: 0, Len: 8 << 20}}, MixedKind, 1000), 1)
	m := mustWrite(t, s, "base", base, storage.CreateOptions{})
	n0 := countChunks(h.Objects(t, s))
	if n0 != int(m.Chunks) {
		t.Fatalf("store holds %d chunks after one image of %d chunks", n0, m.Chunks)
	}
	changed := distinct(makeImage(8<<20, []storage.Range{{Off: 0, Len: 8 << 20}}, MixedKind, 2000), 1)
	changed.mem[3<<20+4096*5+17] ^= 0x5a // one page of chunk 3
	for _, tc := range []struct {
		name      string
		im        image
		wantAdded int
	}{
		{"same", base, 0},
		{"one-page-changed", changed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := countChunks(h.Objects(t, s))
			w, err := s.Create(ctx, tc.name, storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if _, err := w.StateWriter().Write(tc.im.state); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteMemoryFrom(bytes.NewReader(tc.im.mem), tc.im.ranges); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			added := countChunks(h.Objects(t, s)) - before
			newChunks, _ := w.NewChunks()
			if added != tc.wantAdded || newChunks != uint64(tc.wantAdded) {
				t.Errorf("write %s added %d chunks (NewChunks %d), want %d", tc.name, added, newChunks, tc.wantAdded)
			}
			checkImage(t, s, tc.name, tc.im, nil)
		})
	}
	checkImage(t, s, "base", base, nil)
}

// testPruneChunks: deleting an image deletes no chunk; Prune sweeps the
// chunks no image references once they are older than its age, never a
// referenced one.
func testPruneChunks(t *testing.T, h Harness) {
	s := h.New(t)
	ctx := context.Background()
	a := distinct(makeImage(4<<20, []storage.Range{{Off: 0, Len: 4 << 20}}, MixedKind, 1000), 1)
	b := distinct(makeImage(4<<20, []storage.Range{{Off: 0, Len: 4 << 20}}, MixedKind, 1000), 1)
	b.mem[2<<20+64] ^= 0x11 // b shares 3 of a's 4 chunks
	mustWrite(t, s, "a", a, storage.CreateOptions{})
	mustWrite(t, s, "b", b, storage.CreateOptions{})
	if n := countChunks(h.Objects(t, s)); n != 5 {
		t.Fatalf("two images sharing 3 of 4 chunks: store holds %d chunks, want 5", n)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := countChunks(h.Objects(t, s)); n != 5 {
		t.Errorf("Delete(a) left %d chunks, want 5 (only prune sweeps)", n)
	}
	// Young garbage is kept: it may belong to a writer not yet committed.
	if removed, err := s.Prune(ctx, time.Hour); err != nil || countChunks(removed) != 0 && len(removed) != 0 {
		t.Errorf("Prune(1h) = %v, %v; want nothing removed", removed, err)
	}
	if n := countChunks(h.Objects(t, s)); n != 5 {
		t.Errorf("Prune(1h) left %d chunks, want 5", n)
	}
	removed, err := s.Prune(ctx, 0)
	if err != nil || len(removed) != 1 {
		t.Errorf("Prune(0) = %v, %v; want a's one unshared chunk", removed, err)
	}
	if n := countChunks(h.Objects(t, s)); n != 4 {
		t.Errorf("Prune(0) left %d chunks, want b's 4", n)
	}
	checkImage(t, s, "b", b, nil)
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if objs := h.Objects(t, s); countChunks(objs) != 0 {
		t.Errorf("store after deleting every image and Prune(0) = %v, want no chunk", objs)
	}
}
