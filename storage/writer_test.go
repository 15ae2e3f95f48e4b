package storage_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/s2"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

const mib = 1 << 20

// recordingAt is an io.ReaderAt over a byte slice (the "memory file") that
// records every read and can fail reads at one offset.
type recordingAt struct {
	data   []byte
	failAt int64 // a read covering this offset fails; -1: none
	mu     sync.Mutex
	reads  []storage.Range
}

var errDisk = errors.New("simulated read error")

func (r *recordingAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads = append(r.reads, storage.Range{Off: uint64(off), Len: uint64(len(p))})
	r.mu.Unlock()
	if r.failAt >= 0 && off <= r.failAt && r.failAt < off+int64(len(p)) {
		return 0, errDisk
	}
	return copy(p, r.data[off:]), nil
}

// viewingAt is a recordingAt that also views in place what lies in an
// even-numbered MiB of its data (a storage.ReaderViewer), as a memory
// file's data extents are viewed, and leaves the rest to ReadAt.
type viewingAt struct{ *recordingAt }

func (v viewingAt) View(off int64, n int) []byte {
	if off/mib%2 != 0 || (off+int64(n)-1)/mib%2 != 0 {
		return nil
	}
	return v.data[off : off+int64(n)]
}

// checkpointPage fills a page as the checkpoint benchmark's workload does
// (p[pg*512+i] = pg<<32 | i&7): long repeats that S2Better finds and
// S2Fast mostly does not.
func checkpointPage(page []byte, pg uint64) {
	for i := 0; i < len(page)/8; i++ {
		binary.LittleEndian.PutUint64(page[i*8:], pg<<32|uint64(i&7))
	}
}

// memoryOf builds a memory file of size bytes where the pages in ranges
// get content kind(pageNo) (storetest kinds, or -1 for checkpointPage).
func memoryOf(size uint64, ranges []storage.Range, kind func(uint64) int) []byte {
	mem := make([]byte, size)
	for _, r := range ranges {
		for off := r.Off; off < r.Off+r.Len; off += storage.PageSize {
			n := off / storage.PageSize
			if k := kind(n); k < 0 {
				checkpointPage(mem[off:off+storage.PageSize], n)
			} else {
				storetest.FillPage(mem[off:off+storage.PageSize], k, n)
			}
		}
	}
	return mem
}

func newFileStore(t *testing.T) storage.Store {
	t.Helper()
	s, err := storage.NewFileStore(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readBack restores image name into a fresh buffer of size bytes.
func readBack(t *testing.T, s storage.Store, name string, size uint64) ([]byte, *storage.Image) {
	t.Helper()
	ctx := context.Background()
	img, err := s.Open(ctx, name)
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	t.Cleanup(func() { img.Close() })
	got := make([]byte, size)
	if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) {
		if off+uint64(n) > size {
			return nil, fmt.Errorf("chunk [%#x+%d] past %d", off, n, size)
		}
		return got[off : off+uint64(n)], nil
	}); err != nil {
		t.Fatalf("ReadMemoryTo(%s) = %v", name, err)
	}
	if err := img.Verify(ctx); err != nil {
		t.Fatalf("Verify(%s) = %v", name, err)
	}
	return got, img
}

func nonZeroBytes(mem []byte) uint64 {
	var n uint64
	zero := make([]byte, storage.PageSize)
	for p := 0; p < len(mem); p += storage.PageSize {
		if !bytes.Equal(mem[p:p+storage.PageSize], zero) {
			n += storage.PageSize
		}
	}
	return n
}

// TestWriteMemoryFrom writes memory files through the parallel writer
// (one WriteMemoryFrom call, or several) with every codec and checks that
// they read back byte-exact, that only the given ranges were read, and that
// chunks never cross a ChunkSpan boundary.
func TestWriteMemoryFrom(t *testing.T) {
	const pg = storage.PageSize
	heap := func(uint64) int { return storetest.KindHeap }
	random := func(uint64) int { return storetest.KindRandom }
	zero := func(uint64) int { return storetest.KindZero }
	ckpt := func(n uint64) int {
		if n%2 == 1 {
			return storetest.KindZero
		}
		return -1
	}
	tests := []struct {
		name   string
		size   uint64
		ranges []storage.Range
		kind   func(uint64) int
		calls  int // split the ranges over this many calls (0: one)
		opts   storage.CreateOptions
	}{
		{name: "dense", size: 4 * mib, ranges: []storage.Range{{Off: 0, Len: 4 * mib}}, kind: heap},
		{name: "dense-unaligned", size: 5 * mib, ranges: []storage.Range{{Off: 3 * pg, Len: 3*mib + 5*pg}}, kind: heap},
		{name: "all-zero-spans", size: 6 * mib, ranges: []storage.Range{{Off: 0, Len: 6 * mib}}, kind: zero},
		{name: "zero-spans-between", size: 6 * mib, ranges: []storage.Range{{Off: 0, Len: 6 * mib}},
			kind: func(n uint64) int {
				if n*pg/mib%2 == 1 {
					return storetest.KindZero
				}
				return storetest.KindHeap
			}},
		{name: "holes", size: 16 * mib, ranges: []storage.Range{
			{Off: pg, Len: pg}, {Off: 3 * pg, Len: 2 * pg}, {Off: mib - pg, Len: 2 * pg},
			{Off: 5 * mib, Len: 3 * mib}, {Off: 15 * mib, Len: mib},
		}, kind: storetest.MixedKind},
		{name: "holes-many-calls", size: 16 * mib, ranges: []storage.Range{
			{Off: pg, Len: pg}, {Off: 3 * pg, Len: 2 * pg}, {Off: 7 * pg, Len: pg}, {Off: mib - pg, Len: 2 * pg},
			{Off: 5 * mib, Len: 3 * mib}, {Off: 15 * mib, Len: mib},
		}, kind: storetest.MixedKind, calls: 6},
		{name: "calls-end-at-spans", size: 8 * mib, ranges: []storage.Range{
			{Off: pg, Len: 2*mib - pg}, {Off: 2 * mib, Len: 2 * mib}, {Off: 4*mib + 3*pg, Len: 3 * mib},
		}, kind: storetest.MixedKind, calls: 3},
		{name: "single-pages", size: 3 * mib, ranges: func() []storage.Range {
			var rs []storage.Range
			for off := uint64(0); off < 3*mib; off += 2 * pg {
				rs = append(rs, storage.Range{Off: off, Len: pg})
			}
			return rs
		}(), kind: heap, calls: 7},
		{name: "incompressible", size: 3 * mib, ranges: []storage.Range{{Off: pg, Len: 3*mib - pg}}, kind: random},
		{name: "checkpoint-workload", size: 8 * mib, ranges: []storage.Range{{Off: 0, Len: 8 * mib}}, kind: ckpt},
		{name: "s2-fast", size: 4 * mib, ranges: []storage.Range{{Off: 0, Len: 4 * mib}}, kind: storetest.MixedKind,
			opts: storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Fast}},
		{name: "s2-best", size: 2 * mib, ranges: []storage.Range{{Off: 0, Len: 2 * mib}}, kind: storetest.MixedKind,
			opts: storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Best}},
		{name: "zstd", size: 6 * mib, ranges: []storage.Range{{Off: pg, Len: 2 * mib}, {Off: 4 * mib, Len: 2 * mib}}, kind: storetest.MixedKind,
			opts: storage.CreateOptions{Codec: storage.CodecZstd}, calls: 2},
		{name: "zstd-level-5-incompressible", size: 2 * mib, ranges: []storage.Range{{Off: 0, Len: 2 * mib}}, kind: random,
			opts: storage.CreateOptions{Codec: storage.CodecZstd, Level: 5}},
		{name: "one-worker", size: 4 * mib, ranges: []storage.Range{{Off: 0, Len: 4 * mib}}, kind: storetest.MixedKind,
			opts: storage.CreateOptions{Workers: 1}},
	}
	s := newFileStore(t)
	for _, tc := range tests {
		for _, viewed := range []bool{false, true} {
			name := tc.name
			if viewed {
				name += "-viewed"
			}
			t.Run(name, func(t *testing.T) {
				testWriteMemoryFrom(t, s, name, tc.size, tc.ranges, tc.kind, tc.calls, tc.opts, viewed)
			})
		}
	}
}

// testWriteMemoryFrom writes the ranges of a memory file of size bytes,
// whose pages are of kind, in calls calls, and checks the image. With
// viewed, the reader is a ReaderViewer, and each call's ranges are
// overwritten once it returns: the image must not have kept a view.
func testWriteMemoryFrom(t *testing.T, s storage.Store, name string, size uint64, ranges []storage.Range, kind func(uint64) int, calls int, opts storage.CreateOptions, viewed bool) {
	mem := memoryOf(size, ranges, kind)
	r := &recordingAt{data: slices.Clone(mem), failAt: -1}
	var src io.ReaderAt = r
	if viewed {
		src = viewingAt{r}
	}
	var progress []uint64
	opts.Progress = func(n uint64) { progress = append(progress, n) }
	w, err := s.Create(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	defer w.Abort()
	calls = max(calls, 1)
	per := (len(ranges) + calls - 1) / calls
	for rs := range slices.Chunk(ranges, per) {
		if err := w.WriteMemoryFrom(src, rs); err != nil {
			t.Fatalf("WriteMemoryFrom(%v) = %v", rs, err)
		}
		if viewed {
			for _, rg := range rs {
				for i := rg.Off; i < rg.Off+rg.Len; i++ {
					r.data[i] = 0xa5
				}
			}
		}
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit = %v", err)
	}
	end := ranges[len(ranges)-1].Off + ranges[len(ranges)-1].Len
	if m.MemorySize != end {
		t.Errorf("MemorySize = %d, want %d", m.MemorySize, end)
	}
	if want := nonZeroBytes(mem); m.MemoryData != want {
		t.Errorf("MemoryData = %d, want %d", m.MemoryData, want)
	}
	var handed uint64
	for _, rg := range ranges {
		handed += rg.Len
	}
	if len(progress) == 0 || progress[len(progress)-1] != handed || !slices.IsSorted(progress) {
		t.Errorf("Progress calls = %v, want increasing up to %d", progress, handed)
	}
	for _, rd := range r.reads {
		inside := false
		for _, rg := range ranges {
			inside = inside || rd.Off >= rg.Off && rd.Off+rd.Len <= rg.Off+rg.Len
		}
		if !inside {
			t.Errorf("read [%#x+%#x] lies outside the ranges written", rd.Off, rd.Len)
		}
	}
	got, img := readBack(t, s, name, size)
	if i := firstDiff(got, mem); i < len(mem) || len(got) != len(mem) {
		t.Fatalf("memory read back differs at %#x (of %#x)", i, len(mem))
	}
	for i, c := range img.Chunks() {
		if c.Offset/storage.ChunkSpan != (c.Offset+uint64(c.Span)-1)/storage.ChunkSpan {
			t.Errorf("chunk %d [%#x+%#x] crosses a ChunkSpan boundary", i, c.Offset, c.Span)
		}
	}
	if nonZeroBytes(mem) == 0 && len(img.Chunks()) != 0 {
		t.Errorf("all-zero memory gave %d chunks, want 0", len(img.Chunks()))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestWriteMemoryFromRejects checks that bad ranges are refused with
// ErrInvalidArgument before anything is read, and that the writer is still
// usable afterwards.
func TestWriteMemoryFromRejects(t *testing.T) {
	const pg = storage.PageSize
	tests := []struct {
		name   string
		ranges []storage.Range
	}{
		{"out-of-order", []storage.Range{{Off: 4 * pg, Len: pg}, {Off: 0, Len: pg}}},
		{"overlapping", []storage.Range{{Off: 0, Len: 3 * pg}, {Off: 2 * pg, Len: pg}}},
		{"overlapping-previous-call", []storage.Range{{Off: 9 * pg, Len: pg}}},
		{"misaligned-offset", []storage.Range{{Off: 100, Len: pg}}},
		{"misaligned-length", []storage.Range{{Off: 16 * pg, Len: 100}}},
		{"overflow", []storage.Range{{Off: 1<<64 - pg, Len: 2 * pg}}},
	}
	s := newFileStore(t)
	mem := memoryOf(1*mib, []storage.Range{{Off: 0, Len: mib}}, func(uint64) int { return storetest.KindHeap })
	r := &recordingAt{data: mem, failAt: -1}
	w, err := s.Create(context.Background(), "rejects", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.WriteMemoryFrom(r, []storage.Range{{Off: 8 * pg, Len: 2 * pg}}); err != nil {
		t.Fatalf("WriteMemoryFrom(first range) = %v", err)
	}
	reads := len(r.reads)
	for _, tc := range tests {
		if err := w.WriteMemoryFrom(r, tc.ranges); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("%s: WriteMemoryFrom(%v) = %v, want ErrInvalidArgument", tc.name, tc.ranges, err)
		}
		if len(r.reads) != reads {
			t.Errorf("%s: WriteMemoryFrom read %d times before refusing, want 0", tc.name, len(r.reads)-reads)
		}
	}
	if err := w.WriteMemoryFrom(r, []storage.Range{{Off: 32 * pg, Len: 4 * pg}}); err != nil {
		t.Fatalf("WriteMemoryFrom(after refusals) = %v", err)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if m.MemoryData != 6*pg {
		t.Errorf("MemoryData = %d, want %d", m.MemoryData, 6*pg)
	}
}

// TestWriteMemoryFromReadError fails one read in the middle of a large
// write: WriteMemoryFrom returns that error, Commit fails, and the store
// holds nothing.
func TestWriteMemoryFromReadError(t *testing.T) {
	for _, failAt := range []int64{0, 5*mib + 4096, 31*mib + 8192} {
		t.Run(fmt.Sprintf("at-%#x", failAt), func(t *testing.T) {
			s := newFileStore(t)
			mem := memoryOf(32*mib, []storage.Range{{Off: 0, Len: 32 * mib}}, storetest.MixedKind)
			r := &recordingAt{data: mem, failAt: failAt}
			w, err := s.Create(context.Background(), "broken", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			w.StateWriter().Write([]byte("state"))
			err = w.WriteMemoryFrom(r, []storage.Range{{Off: 0, Len: 32 * mib}})
			if !errors.Is(err, errDisk) {
				t.Errorf("WriteMemoryFrom = %v, want the reader's error", err)
			}
			if _, err := w.Commit(); !errors.Is(err, errDisk) {
				t.Errorf("Commit = %v, want the reader's error", err)
			}
			if ents, err := s.List(context.Background()); err != nil || len(ents) != 0 {
				t.Errorf("List = %v, %v; want no image", ents, err)
			}
			// Chunks stored before the failure are garbage, which
			// a prune sweeps.
			if _, err := s.Prune(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
			// The chunk and pack directories may stay, empty.
			if objs := slices.DeleteFunc(fileObjects(t, s), func(o string) bool { return o == ".chunks/" || o == ".packs/" }); len(objs) != 0 {
				t.Errorf("store holds %v after a failed write and a prune, want nothing", objs)
			}
		})
	}
}

// TestWriteMemoryNotRetained overwrites the slice given to WriteMemory as
// soon as the call returns: the image must hold what was given.
func TestWriteMemoryNotRetained(t *testing.T) {
	for _, codec := range []string{storage.CodecS2, storage.CodecZstd} {
		t.Run(codec, func(t *testing.T) {
			s := newFileStore(t)
			w, err := s.Create(context.Background(), "nr", storage.CreateOptions{Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			// Each call holds four whole spans, all read in place by the
			// workers before it returns (a span a call ends inside is
			// copied instead: TestWriteMemoryFrom). Spans 1-2 are
			// incompressible (stored raw), 4-5 dense, 6 sparse.
			const size = 8 * mib
			want := memoryOf(size, []storage.Range{{Off: 0, Len: size}}, func(n uint64) int {
				switch span := n * storage.PageSize / mib; {
				case span == 1 || span == 2:
					return storetest.KindRandom
				case span == 6:
					return storetest.MixedKind(n)
				}
				return storetest.KindHeap
			})
			buf := make([]byte, 4*mib)
			for off := uint64(0); off < size; off += uint64(len(buf)) {
				copy(buf, want[off:])
				if err := w.WriteMemory(off, buf); err != nil {
					t.Fatalf("WriteMemory(%#x) = %v", off, err)
				}
				for i := range buf {
					buf[i] = 0xa5
				}
			}
			if _, err := w.Commit(); err != nil {
				t.Fatalf("Commit = %v", err)
			}
			got, _ := readBack(t, s, "nr", size)
			if i := firstDiff(got, want); i < len(want) {
				t.Fatalf("memory read back differs at %#x", i)
			}
		})
	}
}

// TestDefaultCodec checks that an image written with default options is
// S2 at S2Better, and that S2Better finds the repeats of the checkpoint
// workload that S2Fast misses.
func TestDefaultCodec(t *testing.T) {
	s := newFileStore(t)
	const size = 16 * mib
	mem := memoryOf(size, []storage.Range{{Off: 0, Len: size}}, func(n uint64) int {
		if n%2 == 1 {
			return storetest.KindZero
		}
		return -1
	})
	sizes := map[string]int64{}
	for _, tc := range []struct {
		name string
		opts storage.CreateOptions
		want storage.Compression
	}{
		{"default", storage.CreateOptions{}, storage.Compression{Algorithm: storage.CodecS2, Level: storage.S2Better}},
		{"s2-fast", storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Fast}, storage.Compression{Algorithm: storage.CodecS2, Level: storage.S2Fast}},
		{"zstd", storage.CreateOptions{Codec: storage.CodecZstd}, storage.Compression{Algorithm: storage.CodecZstd, Level: storage.DefaultLevel}},
	} {
		w, err := s.Create(context.Background(), tc.name, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMemory(0, mem); err != nil {
			t.Fatal(err)
		}
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if m.Compression != tc.want {
			t.Errorf("%s: Compression = %+v, want %+v", tc.name, m.Compression, tc.want)
		}
		sizes[tc.name] = m.Memory.Size
		got, _ := readBack(t, s, tc.name, size)
		if i := firstDiff(got, mem); i < len(mem) {
			t.Errorf("%s: memory read back differs at %#x", tc.name, i)
		}
	}
	better, fast := sizes["default"], sizes["s2-fast"]
	if better*4 > fast {
		t.Errorf("S2Better stored %d bytes, S2Fast %d: want S2Better at least 4 times smaller", better, fast)
	}
}

// TestSparseChunksRunByRun: chunks whose present pages alternate with zero
// pages are compressed run by run of present pages, as one S2 block of
// sub-blocks, with S2Fast and with S2Better where its probe keeps
// s2.Encode, if their pages repeat nothing of one another (memtouch's
// random groups): each such chunk is within 1% of s2.Encode of its pages
// gathered, and some differ from it (they took that path). Pages that
// repeat one another (memtouchMemory's) keep the gathered compression,
// byte for byte the same size. Every image reads back.
func TestSparseChunksRunByRun(t *testing.T) {
	random := make([]byte, 4<<20)
	fillMemtouch(random)
	for _, tc := range []struct {
		name  string
		opts  storage.CreateOptions
		mem   []byte
		split bool
	}{
		{"default-random", storage.CreateOptions{}, random, true},
		{"s2fast-random", storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Fast}, random, true},
		{"default-repeats", storage.CreateOptions{}, memtouchMemory(4 << 20), false},
		{"s2fast-repeats", storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Fast}, memtouchMemory(4 << 20), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFileStore(t)
			writeImage(t, s, "img", tc.mem, []byte("state"), tc.opts)
			got, err := readImage(t, s, "img", len(tc.mem))
			if err != nil || !bytes.Equal(got, tc.mem) {
				t.Fatalf("read = %v (equal %v), want the memory", err, bytes.Equal(got, tc.mem))
			}
			img, err := s.Open(context.Background(), "img")
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			differ := 0
			for i, c := range img.Chunks() {
				var gathered []byte
				for pg := uint64(0); pg < uint64(c.Span)/storage.PageSize; pg++ {
					if c.Present[pg/8]&(1<<(pg%8)) != 0 {
						gathered = append(gathered, tc.mem[c.Offset+pg*storage.PageSize:][:storage.PageSize]...)
					}
				}
				whole := len(s2.Encode(nil, gathered))
				if int(c.StoredLen) != whole {
					differ++
				}
				if d := int(c.StoredLen) - whole; d*100 > whole || -d*100 > whole {
					t.Errorf("chunk %d: %d bytes, s2.Encode of its pages gathered %d; want within 1%%", i, c.StoredLen, whole)
				}
			}
			if split := differ > 0; split != tc.split {
				t.Errorf("%d of %d chunks differ from s2.Encode of their pages gathered; want run by run %v", differ, len(img.Chunks()), tc.split)
			}
		})
	}
}

// TestSplitCallsSameChunks checks that memory handed over in one call or
// in several, ending at span boundaries or inside spans, gives the same
// chunks (content addressing shares them across saves).
func TestSplitCallsSameChunks(t *testing.T) {
	const pg = storage.PageSize
	const size = 6 * mib
	ranges := []storage.Range{{Off: 0, Len: size}}
	mem := memoryOf(size, ranges, storetest.MixedKind)
	splits := []struct {
		name  string
		parts []storage.Range
	}{
		{"one-call", ranges},
		{"at-spans", []storage.Range{{Off: 0, Len: 2 * mib}, {Off: 2 * mib, Len: mib}, {Off: 3 * mib, Len: 3 * mib}}},
		{"inside-spans", []storage.Range{{Off: 0, Len: mib + 5*pg}, {Off: mib + 5*pg, Len: 3*mib - 5*pg}, {Off: 4 * mib, Len: 2 * mib}}},
	}
	s := newFileStore(t)
	var want []storage.Chunk
	for _, sp := range splits {
		for _, viewed := range []bool{false, true} {
			name := fmt.Sprintf("%s-%v", sp.name, viewed)
			t.Run(name, func(t *testing.T) {
				r := &recordingAt{data: slices.Clone(mem), failAt: -1}
				var src io.ReaderAt = r
				if viewed {
					src = viewingAt{r}
				}
				w, err := s.Create(context.Background(), name, storage.CreateOptions{})
				if err != nil {
					t.Fatalf("Create = %v", err)
				}
				defer w.Abort()
				for _, rg := range sp.parts {
					if err := w.WriteMemoryFrom(src, []storage.Range{rg}); err != nil {
						t.Fatalf("WriteMemoryFrom(%v) = %v", rg, err)
					}
				}
				if _, err := w.Commit(); err != nil {
					t.Fatalf("Commit = %v", err)
				}
				got, img := readBack(t, s, name, size)
				if i := firstDiff(got, mem); i < len(mem) {
					t.Fatalf("memory read back differs at %#x", i)
				}
				chunks := img.Chunks()
				if want == nil {
					want = chunks
					return
				}
				if len(chunks) != len(want) {
					t.Fatalf("%d chunks, want %d (one call)", len(chunks), len(want))
				}
				for i := range chunks {
					if chunks[i].Sum != want[i].Sum || chunks[i].Offset != want[i].Offset {
						t.Errorf("chunk %d = %x at %#x, want %x at %#x (one call)", i, chunks[i].Sum, chunks[i].Offset, want[i].Sum, want[i].Offset)
					}
				}
			})
		}
	}
}
