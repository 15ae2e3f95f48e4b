package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// packMiB is the size of the images the pack tests write: above the
// memory a writer must be handed before it packs its chunks.
const packMiB = 40

// packFiles lists the store's pack files (data and index) and its loose
// chunk files.
func packFiles(t *testing.T, s storage.Store) (packs, idxs, loose []string) {
	t.Helper()
	root := fileRoot(s)
	packs, _ = filepath.Glob(filepath.Join(root, ".packs", "*.pack"))
	idxs, _ = filepath.Glob(filepath.Join(root, ".packs", "*.idx"))
	loose, _ = filepath.Glob(filepath.Join(root, ".chunks", "*", "*"))
	return packs, idxs, loose
}

func readImage(t *testing.T, s storage.Store, name string, size int) ([]byte, error) {
	t.Helper()
	img, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	defer img.Close()
	got := make([]byte, size)
	err = img.ReadMemoryTo(context.Background(), func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil })
	return got, err
}

// TestPackedImages: a large write stores its new chunks in one pack (no
// chunk file), a small one as chunk files, in the same store; both read
// back, chunk by chunk too; a second image of the same memory stores no
// chunk and refreshes the pack's time; an image with some chunks of its
// own and the rest shared makes a pack of only its new ones.
func TestPackedImages(t *testing.T) {
	ctx := context.Background()
	s := newFileStore(t)
	big := memtouchMemory(packMiB << 20)
	small := make([]byte, 2<<20)
	storetest.FillMixed(small, 3)
	writeImage(t, s, "big", big, []byte("state"), storage.CreateOptions{})
	writeImage(t, s, "small", small, []byte("state"), storage.CreateOptions{})
	packs, idxs, loose := packFiles(t, s)
	if len(packs) != 1 || len(idxs) != 1 || len(loose) == 0 {
		t.Fatalf("store holds packs %v, indexes %v and %d chunk files; want one pack and the small image's chunk files", packs, idxs, len(loose))
	}
	for name, want := range map[string][]byte{"big": big, "small": small} {
		got, err := readImage(t, s, name, len(want))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read %s = %v (equal %v), want its memory", name, err, bytes.Equal(got, want))
		}
	}
	img, err := s.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range img.Chunks() {
		dst := make([]byte, c.Span)
		if err := img.ReadChunk(ctx, i, dst); err != nil || !bytes.Equal(dst, big[c.Offset:c.Offset+uint64(c.Span)]) {
			t.Fatalf("ReadChunk(%d) = %v, or other bytes", i, err)
		}
	}
	img.Close()

	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(idxs[0], old, old))
	w, err := s.Create(ctx, "again", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.StateWriter().Write([]byte("state"))
	must(t, w.WriteMemory(0, big))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, b := w.NewChunks(); n != 0 || b != 0 {
		t.Errorf("the same memory again stored %d chunks (%d bytes), want none", n, b)
	}
	if fi, err := os.Stat(idxs[0]); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("pack index not refreshed by a writer that used its chunks: %v %v", fi.ModTime(), err)
	}

	changed := bytes.Clone(big)
	for off := 0; off < len(changed); off += 8 << 20 {
		changed[off] ^= 0xff // the first page of every 8th span
	}
	writeImage(t, s, "changed", changed, []byte("state"), storage.CreateOptions{})
	packs2, _, _ := packFiles(t, s)
	if len(packs2) != 2 {
		t.Fatalf("store holds %d packs after a changed image, want 2", len(packs2))
	}
	for _, p := range packs2 {
		if p == packs[0] {
			continue
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() > int64(len(changed)/8) {
			t.Errorf("the changed image's pack %s: %v, %v bytes; want only its %d changed chunks", p, err, fi.Size(), packMiB/8)
		}
	}
	if got, err := readImage(t, s, "changed", len(changed)); err != nil || !bytes.Equal(got, changed) {
		t.Errorf("read changed = %v, want its memory", err)
	}
}

// TestPackDamaged damages a pack or its index in each way a disk or a
// hand can: reading the image fails with ErrCorrupt naming the pack or its
// index, never with other bytes.
func TestPackDamaged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ext   string
		edit  func(b []byte) []byte
		names string
	}{
		{"pack-truncated", ".pack", func(b []byte) []byte { return b[:len(b)/2] }, ".pack"},
		{"pack-byte-flipped", ".pack", func(b []byte) []byte { b[len(b)/3] ^= 1; return b }, ".pack"},
		{"pack-header", ".pack", func(b []byte) []byte { b[0] = 'X'; return b }, ".pack"},
		{"index-truncated", ".idx", func(b []byte) []byte { return b[:len(b)-7] }, ".idx"},
		{"index-byte-flipped", ".idx", func(b []byte) []byte { b[100] ^= 1; return b }, ".idx"},
		{"index-empty", ".idx", func([]byte) []byte { return nil }, ".idx"},
		{"index-gone", ".idx", nil, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFileStore(t)
			mem := memtouchMemory(packMiB << 20)
			writeImage(t, s, "img", mem, []byte("state"), storage.CreateOptions{})
			packs, idxs, _ := packFiles(t, s)
			if len(packs) != 1 || len(idxs) != 1 {
				t.Fatalf("packs %v, indexes %v; want one of each", packs, idxs)
			}
			p := strings.TrimSuffix(packs[0], ".pack") + tc.ext
			if tc.edit == nil {
				must(t, os.Remove(p))
			} else {
				b, err := os.ReadFile(p)
				must(t, err)
				must(t, os.WriteFile(p, tc.edit(b), 0o600))
			}
			_, err := readImage(t, s, "img", len(mem))
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("read = %v, want ErrCorrupt naming %q", err, tc.names)
			}
		})
	}
}

// TestPrunePacks: a prune removes a pack only once no image references
// any of its chunks, and never one younger than its age; a data file that
// no index names (a killed writer's) goes once old.
func TestPrunePacks(t *testing.T) {
	ctx := context.Background()
	s := newFileStore(t)
	a := memtouchMemory(packMiB << 20)
	b := bytes.Clone(a)
	for off := 0; off < len(b); off += storage.ChunkSpan {
		b[off] ^= 0x5a // every chunk differs from a's
	}
	writeImage(t, s, "a", a, []byte("state"), storage.CreateOptions{})
	packA, _, _ := packFiles(t, s)
	writeImage(t, s, "b", b, []byte("state"), storage.CreateOptions{})
	writeImage(t, s, "a2", a, []byte("state"), storage.CreateOptions{}) // a's chunks, no pack of its own
	if packs, _, _ := packFiles(t, s); len(packs) != 2 {
		t.Fatalf("store holds %d packs, want 2", len(packs))
	}
	orphan := filepath.Join(fileRoot(s), ".packs", strings.Repeat("ab", 16)+".pack")
	must(t, os.WriteFile(orphan, []byte("SNAPPACK"), 0o600))

	must(t, s.Delete(ctx, "a"))
	if removed, err := s.Prune(ctx, 0); err != nil || len(removed) != 1 || !strings.HasSuffix(removed[0], filepath.Base(orphan)) {
		t.Errorf("Prune with a2 referencing a's pack = %v, %v; want only the orphan data file removed", removed, err)
	}
	must(t, s.Delete(ctx, "a2"))
	if removed, err := s.Prune(ctx, time.Hour); err != nil || len(removed) != 0 {
		t.Errorf("Prune(1h) of a young unreferenced pack = %v, %v; want nothing removed", removed, err)
	}
	removed, err := s.Prune(ctx, 0)
	if err != nil || len(removed) != 1 || removed[0] != "file://"+packA[0] {
		t.Errorf("Prune = %v, %v; want %s removed", removed, err, packA[0])
	}
	if packs, idxs, _ := packFiles(t, s); len(packs) != 1 || len(idxs) != 1 {
		t.Errorf("after the prune: packs %v, indexes %v; want b's", packs, idxs)
	}
	if got, err := readImage(t, s, "b", len(b)); err != nil || !bytes.Equal(got, b) {
		t.Errorf("read b after the prune = %v, want its memory", err)
	}
}
