package storage_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"snapshotter/storage"
)

// memAt is an io.WriterAt over a byte slice.
type memAt []byte

func (m memAt) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// TestReuseChunks: a child image takes the parent's chunks for the spans
// that did not change and stores only the changed span; it reads back as
// the new memory, stores one new chunk, and refuses chunks out of order.
func TestReuseChunks(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	size := uint64(4 * mib)
	all := []storage.Range{{Off: 0, Len: size}}
	mem := memoryOf(size, all, func(uint64) int { return -1 })
	pw, err := storage.CreateImage(ctx, "parent", store, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.WriteMemory(0, mem); err != nil {
		t.Fatal(err)
	}
	pw.StateWriter().Write([]byte("state"))
	if _, err := pw.Commit(); err != nil {
		t.Fatal(err)
	}
	parent, err := storage.OpenImage(ctx, "parent", store)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	pc := parent.Chunks()

	// Span 2 changes; spans 0, 1 and 3 are the parent's.
	next := bytes.Clone(mem)
	copy(next[2*mib+8192:], bytes.Repeat([]byte{0xee}, 4096))
	cw, err := storage.CreateImage(ctx, "child", store, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spanOf := func(c storage.Chunk) uint64 { return c.Offset / mib }
	var before, after []storage.Chunk
	for _, c := range pc {
		switch s := spanOf(c); {
		case s < 2:
			before = append(before, c)
		case s > 2:
			after = append(after, c)
		}
	}
	if err := cw.ReuseChunks(before); err != nil {
		t.Fatalf("ReuseChunks(spans 0-1) = %v", err)
	}
	if err := cw.WriteMemory(2*mib, next[2*mib:3*mib]); err != nil {
		t.Fatal(err)
	}
	if err := cw.ReuseChunks(before); !errors.Is(err, storage.ErrInvalidArgument) {
		t.Errorf("ReuseChunks(spans 0-1 again) = %v, want ErrInvalidArgument", err)
	}
	// The writer is failed only for the bad call's chunks: go on.
	if err := cw.ReuseChunks(after); err != nil {
		t.Fatalf("ReuseChunks(span 3) = %v", err)
	}
	cw.StateWriter().Write([]byte("state"))
	if _, err := cw.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := cw.NewChunks(); n != 1 {
		t.Errorf("child stored %d new chunks, want 1", n)
	}
	child, err := storage.OpenImage(ctx, "child", store)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	got := make(memAt, size)
	if err := child.ReadMemoryAt(ctx, got); err != nil {
		t.Fatalf("read child memory: %v", err)
	}
	if !bytes.Equal(got, next) {
		t.Errorf("child memory differs from the memory it was saved from")
	}
}

// readAll reads an image's memory through every read path (ReadMemoryAt,
// ReadMemoryRuns, ReadChunk per chunk that is not a patch, ReadChunkRuns
// of all chunks) and fails unless each gives want.
func readAll(t *testing.T, img *storage.Image, want []byte) {
	t.Helper()
	ctx := context.Background()
	got := make(memAt, len(want))
	if err := img.ReadMemoryAt(ctx, got); err != nil || !bytes.Equal(got, want) {
		t.Errorf("ReadMemoryAt = %v, equal %v", err, bytes.Equal(got, want))
	}
	runs := make([]byte, len(want))
	var mu sync.Mutex
	if err := img.ReadMemoryRuns(ctx, func(rs []storage.PageRun) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			copy(runs[r.Off:], r.Data)
		}
		return nil
	}); err != nil || !bytes.Equal(runs, want) {
		t.Errorf("ReadMemoryRuns = %v, equal %v", err, bytes.Equal(runs, want))
	}
	byChunk := make([]byte, len(want))
	var all []int
	for i, c := range img.Chunks() {
		all = append(all, i)
		if c.IsPatch() {
			if err := img.ReadChunk(ctx, i, make([]byte, c.Span)); !errors.Is(err, storage.ErrInvalidArgument) {
				t.Errorf("ReadChunk(patch %d) = %v, want ErrInvalidArgument", i, err)
			}
			continue
		}
		if err := img.ReadChunk(ctx, i, byChunk[c.Offset:c.Offset+uint64(c.Span)]); err != nil {
			t.Fatalf("ReadChunk(%d) = %v", i, err)
		}
		if j, ok := img.FindChunk(c.Offset + uint64(c.Span) - 1); !ok || j != i {
			t.Errorf("FindChunk(end of chunk %d) = %d, %v", i, j, ok)
		}
	}
	if !bytes.Equal(byChunk, want) {
		t.Errorf("ReadChunk of every chunk differs from the memory saved")
	}
	clear(runs)
	if err := img.ReadChunkRuns(ctx, all, func(_ int, rs []storage.PageRun) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			copy(runs[r.Off:], r.Data)
		}
		return nil
	}); err != nil || !bytes.Equal(runs, want) {
		t.Errorf("ReadChunkRuns(all) = %v, equal %v", err, bytes.Equal(runs, want))
	}
	if err := img.Verify(ctx); err != nil {
		t.Errorf("Verify() = %v", err)
	}
}

// TestPatchChunks: a child stores the pages written since its parent as
// patches over the parent's chunks (a page made zero included), a
// grandchild reuses a chunk and its patch as they are, and each reads
// back, by every path, as the memory it was saved from; patches out of
// place are refused.
func TestPatchChunks(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	size := uint64(3 * mib)
	mem := memoryOf(size, []storage.Range{{Off: 0, Len: size}}, func(uint64) int { return -1 })
	commit := func(w *storage.Writer) {
		t.Helper()
		w.StateWriter().Write([]byte("state"))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	open := func(name string) *storage.Image {
		t.Helper()
		img, err := storage.OpenImage(ctx, name, store)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { img.Close() })
		return img
	}
	pw, err := storage.CreateImage(ctx, "parent", store, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.WriteMemory(0, mem); err != nil {
		t.Fatal(err)
	}
	commit(pw)
	pc := open("parent").Chunks()
	if len(pc) != 3 {
		t.Fatalf("parent has %d chunks, want 3", len(pc))
	}

	// Child: pages 5 and 7 of span 0 change (7 becomes zero), page 200
	// of span 2 too; span 1 is the parent's.
	next := bytes.Clone(mem)
	copy(next[5*4096:], bytes.Repeat([]byte{0xee}, 4096))
	clear(next[7*4096 : 8*4096])
	copy(next[2*mib+200*4096:], bytes.Repeat([]byte{0x11}, 4096))
	cw, err := storage.CreateImage(ctx, "child", store, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(next)
	if err := cw.WritePatchFrom(src, pc[0], []storage.Range{{Off: 5 * 4096, Len: 4096}, {Off: 7 * 4096, Len: 4096}}); err != nil {
		t.Fatalf("WritePatchFrom(span 0) = %v", err)
	}
	if err := cw.ReuseChunks(pc[1:2]); err != nil {
		t.Fatalf("ReuseChunks(span 1) = %v", err)
	}
	if err := cw.WritePatchFrom(src, pc[2], []storage.Range{{Off: 2*mib + 200*4096, Len: 4096}}); err != nil {
		t.Fatalf("WritePatchFrom(span 2) = %v", err)
	}
	commit(cw)
	if n, b := cw.NewChunks(); n != 2 || b > 3*4096 {
		t.Errorf("child stored %d new chunks of %d bytes, want 2 holding 3 pages at most", n, b)
	}
	child := open("child")
	if m := child.Manifest(); m.Minor != storage.FormatMinor || len(child.Chunks()) != 5 {
		t.Errorf("child is format 1.%d with %d chunks, want 1.%d with 5", m.Minor, len(child.Chunks()), storage.FormatMinor)
	}
	readAll(t, child, next)

	// Grandchild: span 0 as the child has it (base and patch), span 1
	// patched, span 2 stored whole.
	third := bytes.Clone(next)
	copy(third[mib+9*4096:], bytes.Repeat([]byte{0x22}, 4096))
	copy(third[2*mib:], bytes.Repeat([]byte{0x33}, 4096))
	cc := child.Chunks()
	gw, err := storage.CreateImage(ctx, "grandchild", store, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.ReuseChunks(cc[1:2]); !errors.Is(err, storage.ErrInvalidArgument) {
		t.Errorf("ReuseChunks(a patch first) = %v, want ErrInvalidArgument", err)
	}
	if err := gw.ReuseChunks(cc[0:2]); err != nil {
		t.Fatalf("ReuseChunks(span 0 with its patch) = %v", err)
	}
	if err := gw.WritePatchFrom(bytes.NewReader(third), cc[2], []storage.Range{{Off: 2 * mib, Len: 4096}}); !errors.Is(err, storage.ErrInvalidArgument) {
		t.Errorf("WritePatchFrom(outside the base) = %v, want ErrInvalidArgument", err)
	}
	if err := gw.WritePatchFrom(bytes.NewReader(third), cc[2], []storage.Range{{Off: mib + 9*4096, Len: 4096}}); err != nil {
		t.Fatalf("WritePatchFrom(span 1) = %v", err)
	}
	if err := gw.WriteMemory(2*mib, third[2*mib:3*mib]); err != nil {
		t.Fatal(err)
	}
	commit(gw)
	readAll(t, open("grandchild"), third)
}
