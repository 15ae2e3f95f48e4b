package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// openRuns opens runsImage's image, closed when the test ends, and
// returns it with the memory it holds.
func openRuns(t *testing.T, codec string) (*storage.Image, []byte) {
	t.Helper()
	s, mem, _ := runsImage(t, codec)
	img, err := s.Open(context.Background(), "runs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img, mem
}

// runsImage writes an image of 12 MiB of logical memory: 4 MiB of mixed
// pages (zero and non-zero, so sparse chunks), a 2 MiB gap never written,
// 2 MiB of dense non-zero pages, a gap, and 1 MiB of mixed pages. It
// returns the memory as written and the image's directory.
func runsImage(t *testing.T, codec string) (storage.Store, []byte, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := storage.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, 12<<20)
	storetest.FillMixed(mem[:4<<20], 0)
	for p := 6 << 20; p < 8<<20; p += storage.PageSize {
		storetest.FillPage(mem[p:p+storage.PageSize], 1, uint64(p/storage.PageSize))
	}
	storetest.FillMixed(mem[11<<20:], 11<<20)
	w, err := s.Create(context.Background(), "runs", storage.CreateOptions{Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.StateWriter().Write([]byte("state"))
	for _, r := range [][2]int{{0, 4 << 20}, {6 << 20, 8 << 20}, {11 << 20, 12 << 20}} {
		if err := w.WriteMemory(uint64(r[0]), mem[r[0]:r[1]]); err != nil {
			t.Fatalf("WriteMemory(%#x) = %v", r[0], err)
		}
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit() = %v", err)
	}
	return s, mem, filepath.Join(dir, "runs")
}

// collect reads the image with ReadMemoryRuns into a buffer of size bytes
// and checks each run's shape; it returns the buffer, the pages handed out
// and the error.
func collect(t *testing.T, img *storage.Image, size int) ([]byte, map[uint64]bool, error) {
	t.Helper()
	got := make([]byte, size)
	var mu sync.Mutex
	pages := map[uint64]bool{}
	err := img.ReadMemoryRuns(context.Background(), func(runs []storage.PageRun) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range runs {
			if r.Off%storage.PageSize != 0 || len(r.Data)%storage.PageSize != 0 || len(r.Data) == 0 || r.Off+uint64(len(r.Data)) > uint64(size) {
				t.Errorf("run [%#x, +%#x): want page-aligned, non-empty, within %#x", r.Off, len(r.Data), size)
				continue
			}
			for p := r.Off; p < r.Off+uint64(len(r.Data)); p += storage.PageSize {
				if pages[p] {
					t.Errorf("page %#x handed out twice", p)
				}
				pages[p] = true
			}
			copy(got[r.Off:], r.Data)
		}
		return nil
	})
	return got, pages, err
}

// TestReadMemoryRuns checks that the runs rebuild the memory exactly, and
// that only stored (non-zero) pages are handed out, with both codecs.
func TestReadMemoryRuns(t *testing.T) {
	for _, codec := range []string{storage.CodecZstd, storage.CodecS2} {
		t.Run(codec, func(t *testing.T) {
			img, mem := openRuns(t, codec)
			got, pages, err := collect(t, img, len(mem))
			if err != nil {
				t.Fatalf("ReadMemoryRuns() = %v", err)
			}
			if !bytes.Equal(got, mem) {
				t.Errorf("ReadMemoryRuns rebuilt memory that differs from what was written")
			}
			zero := make([]byte, storage.PageSize)
			for p := 0; p < len(mem); p += storage.PageSize {
				nonZero := !bytes.Equal(mem[p:p+storage.PageSize], zero)
				if pages[uint64(p)] != nonZero {
					t.Fatalf("page %#x handed out = %v, want %v (non-zero)", p, pages[uint64(p)], nonZero)
				}
			}
			if n := uint64(len(pages)) * storage.PageSize; n != img.Manifest().MemoryData {
				t.Errorf("ReadMemoryRuns handed out %d bytes, want the manifest's %d", n, img.Manifest().MemoryData)
			}
		})
	}
}

// TestReadChunkRunsReusesBuffers reads an image one chunk at a time, as a
// lazy restore's first touches do: every chunk comes out as written, and
// only the first read makes buffers (the others reuse them).
func TestReadChunkRunsReusesBuffers(t *testing.T) {
	for _, codec := range []string{storage.CodecZstd, storage.CodecS2} {
		t.Run(codec, func(t *testing.T) {
			img, mem := openRuns(t, codec)
			got := make([]byte, len(mem))
			var made int64
			for i := range img.Chunks() {
				err := img.ReadChunkRuns(context.Background(), []int{i}, func(_ int, runs []storage.PageRun) error {
					for _, r := range runs {
						copy(got[r.Off:], r.Data)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("ReadChunkRuns([%d]) = %v", i, err)
				}
				if i == 0 {
					made = storage.ScratchMade()
				} else if n := storage.ScratchMade(); n != made {
					t.Fatalf("ReadChunkRuns([%d]) made %d buffers, want 0 (reused from the first read)", i, n-made)
				}
			}
			if !bytes.Equal(got, mem) {
				t.Errorf("ReadChunkRuns one chunk at a time rebuilt memory that differs from what was written")
			}
		})
	}
}

// TestReadMemoryRunsCorrupt damages one stored chunk: ReadMemoryRuns fails
// with ErrCorrupt naming it, and no page of that chunk is handed out.
func TestReadMemoryRunsCorrupt(t *testing.T) {
	for _, codec := range []string{storage.CodecZstd, storage.CodecS2} {
		t.Run(codec, func(t *testing.T) {
			s, mem, dir := runsImage(t, codec)
			img, err := s.Open(context.Background(), "runs")
			if err != nil {
				t.Fatal(err)
			}
			chunks := img.Chunks()
			img.Close()
			bad := len(chunks) / 2
			c := chunks[bad]
			sum := c.SumHex()
			path := filepath.Join(dir, "..", ".chunks", sum[:2], sum)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[c.StoredLen/2] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err = s.Open(context.Background(), "runs")
			if err != nil {
				t.Fatalf("Open() = %v, want success (the damage is in a chunk)", err)
			}
			defer img.Close()
			_, pages, err := collect(t, img, len(mem))
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "chunk") {
				t.Fatalf("ReadMemoryRuns() = %v, want ErrCorrupt naming a chunk", err)
			}
			for p := range pages {
				if p >= c.Offset && p < c.Offset+uint64(c.Span) {
					t.Fatalf("page %#x of the corrupt chunk %d was handed out", p, bad)
				}
			}
		})
	}
}

// TestReadChunkRunsIf reads every chunk of an image, asking for some of
// them only: each chunk is asked about once, and put gets exactly the
// ones asked for, as written.
func TestReadChunkRunsIf(t *testing.T) {
	for _, codec := range []string{storage.CodecZstd, storage.CodecS2} {
		t.Run(codec, func(t *testing.T) {
			img, mem := openRuns(t, codec)
			chunks := img.Chunks()
			all := make([]int, len(chunks))
			for i := range all {
				all[i] = i
			}
			for _, tc := range []struct {
				name string
				want func(i int) bool
			}{
				{"all", func(int) bool { return true }},
				{"all but the middle one", func(i int) bool { return i != len(chunks)/2 }},
				{"every other one", func(i int) bool { return i%2 == 0 }},
				{"none", func(int) bool { return false }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var mu sync.Mutex
					asked, got := map[int]int{}, map[int]bool{}
					err := img.ReadChunkRunsIf(context.Background(), all, func(i int) bool {
						mu.Lock()
						asked[i]++
						mu.Unlock()
						return tc.want(i)
					}, func(i int, runs []storage.PageRun) error {
						mu.Lock()
						defer mu.Unlock()
						got[i] = true
						for _, r := range runs {
							if !bytes.Equal(r.Data, mem[r.Off:r.Off+uint64(len(r.Data))]) {
								t.Errorf("chunk %d: run at %#x differs from what was written", i, r.Off)
							}
						}
						return nil
					})
					if err != nil {
						t.Fatalf("ReadChunkRunsIf() = %v, want success", err)
					}
					for i := range chunks {
						if asked[i] != 1 {
							t.Errorf("chunk %d asked about %d times, want once", i, asked[i])
						}
						if got[i] != tc.want(i) {
							t.Errorf("chunk %d put = %v, want %v", i, got[i], tc.want(i))
						}
					}
				})
			}
		})
	}
}
