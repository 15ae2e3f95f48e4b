package storage_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"

	"snapshotter/storage"
)

// writeImage writes mem (every page handed over; zero pages dropped) and
// state as image name of s with opts.
func writeImage(t *testing.T, s storage.Store, name string, mem, state []byte, opts storage.CreateOptions) *storage.Manifest {
	t.Helper()
	w, err := s.Create(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("Create(%s) = %v", name, err)
	}
	defer w.Abort()
	if err := w.WriteState(bytes.NewReader(state)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMemory(0, mem); err != nil {
		t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit(%s) = %v", name, err)
	}
	return m
}

// memtouchMemory is n bytes of the reference workload memtouch: odd
// pages zero, even pages heapPages.
func memtouchMemory(n int) []byte {
	mem := make([]byte, n)
	for pg := 0; pg < n/storage.PageSize; pg += 2 {
		heapPages(mem[pg*storage.PageSize : (pg+1)*storage.PageSize])
	}
	// heapPages repeats its sequence per call: vary each page's words.
	for pg := 0; pg < n/storage.PageSize; pg += 2 {
		for i := 0; i < 8; i++ {
			mem[pg*storage.PageSize+i] ^= byte(pg >> (i % 3 * 8))
		}
	}
	return mem
}

// TestRecompress rewrites S2 images as zstd with entropy coding and checks
// that memory, state and metadata read back the same, that the image
// shrinks, and that what must not be rewritten is refused.
func TestRecompress(t *testing.T) {
	ctx := context.Background()
	state := bytes.Repeat([]byte("kernel state "), 1000)
	tests := []struct {
		name string
		mem  []byte
		// smaller: the zstd image must be smaller than the S2 one.
		smaller bool
	}{
		{"memtouch", memtouchMemory(6 * mib), true},
		{"checkpoint-pages", memoryOf(3*mib, []storage.Range{{Off: 0, Len: 3 * mib}}, func(uint64) int { return -1 }), false},
		{"sparse", append(make([]byte, 2*mib), memtouchMemory(mib)...), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFileStore(t)
			old := writeImage(t, s, "img", tc.mem, state, storage.CreateOptions{Metadata: map[string]string{"program": "/bin/x"}})
			m, err := storage.Recompress(ctx, s.ImageURI("img"), "", storage.RecompressOptions{})
			if err != nil {
				t.Fatalf("Recompress = %v", err)
			}
			if m.Compression.Algorithm != storage.CodecZstd || m.Metadata["program"] != "/bin/x" {
				t.Errorf("Recompress: compression %+v, metadata %v; want zstd and the old metadata", m.Compression, m.Metadata)
			}
			if tc.smaller && m.Memory.Size >= old.Memory.Size {
				t.Errorf("Recompress: memory %d bytes, want fewer than S2's %d", m.Memory.Size, old.Memory.Size)
			}
			if m.MemoryData != old.MemoryData || m.MemorySize != old.MemorySize {
				t.Errorf("Recompress: memory data/size %d/%d, want %d/%d", m.MemoryData, m.MemorySize, old.MemoryData, old.MemorySize)
			}
			got, img := readBack(t, s, "img", uint64(len(tc.mem)))
			if !bytes.Equal(got, tc.mem) {
				t.Errorf("recompressed memory differs from the saved one")
			}
			r, err := img.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			gotState, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(gotState, state) {
				t.Errorf("recompressed state = %d bytes, %v; want the %d saved", len(gotState), err, len(state))
			}
		})
	}
}

// TestRecompressRefuses checks the images Recompress leaves alone.
func TestRecompressRefuses(t *testing.T) {
	ctx := context.Background()
	mem := memtouchMemory(2 * mib)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, s storage.Store) string
		want  error
	}{
		{"missing", func(t *testing.T, s storage.Store) string { return "nope" }, storage.ErrNotFound},
		{"signed", func(t *testing.T, s storage.Store) string {
			writeImage(t, s, "signed", mem, nil, storage.CreateOptions{SignKey: key})
			return "signed"
		}, storage.ErrInvalidArgument},
		{"child", func(t *testing.T, s storage.Store) string {
			writeImage(t, s, "base", mem, nil, storage.CreateOptions{})
			ref, _, err := storage.ResolveParent(ctx, s.ImageURI("base"), "")
			if err != nil {
				t.Fatal(err)
			}
			writeImage(t, s, "child", mem, nil, storage.CreateOptions{Parent: ref})
			return "child"
		}, storage.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFileStore(t)
			name := tc.setup(t, s)
			before, _ := s.Stat(ctx, name)
			_, err := storage.Recompress(ctx, s.ImageURI(name), "", storage.RecompressOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recompress(%s) = %v, want %v", name, err, tc.want)
			}
			if after, _ := s.Stat(ctx, name); before != nil && (after == nil || after.Digest() != before.Digest()) {
				t.Errorf("Recompress(%s) failed but changed the image", name)
			}
		})
	}
}

// TestReplaceDigest checks that a rewrite does not overwrite an image
// saved again meanwhile: Commit fails with ErrImageChanged and the newer
// image stands.
func TestReplaceDigest(t *testing.T) {
	ctx := context.Background()
	s := newFileStore(t)
	mem := memtouchMemory(2 * mib)
	old := writeImage(t, s, "img", mem, nil, storage.CreateOptions{})
	w, err := s.Create(ctx, "img", storage.CreateOptions{Replace: true, ReplaceDigest: old.Digest(), Codec: storage.CodecZstd})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.WriteMemory(0, mem); err != nil {
		t.Fatal(err)
	}
	newer := writeImage(t, s, "img", mem[:mib], nil, storage.CreateOptions{Replace: true})
	if _, err := w.Commit(); !errors.Is(err, storage.ErrImageChanged) {
		t.Fatalf("Commit after the image was replaced = %v, want ErrImageChanged", err)
	}
	if m, err := s.Stat(ctx, "img"); err != nil || m.Digest() != newer.Digest() {
		t.Errorf("Stat after the failed rewrite = %v; want the newer image", err)
	}
}
