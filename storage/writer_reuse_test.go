package storage_test

import (
	"bytes"
	"context"
	"errors"
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
