package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// TestCorruptChunkReference rewrites one index record's chunk address,
// and the index's SHA-256 in the manifest to match (a hostile image that
// passes every blob checksum): reading fails with ErrCorrupt naming the
// chunk, never with another chunk's or an absent chunk's bytes.
func TestCorruptChunkReference(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		sum  func(chunks []storage.Chunk) [32]byte
	}{
		{"absent-chunk", func([]storage.Chunk) [32]byte { return sha256.Sum256([]byte("no such chunk")) }},
		{"other-chunk", func(cs []storage.Chunk) [32]byte { return cs[0].Sum }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFileStore(t)
			mem := make([]byte, 3<<20)
			storetest.FillMixed(mem, 0)
			w, err := s.Create(ctx, "img", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w.StateWriter().Write([]byte("state"))
			if err := w.WriteMemory(0, mem); err != nil {
				t.Fatal(err)
			}
			m, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			img, err := s.Open(ctx, "img")
			if err != nil {
				t.Fatal(err)
			}
			chunks := img.Chunks()
			img.Close()
			dir := filepath.Join(fileRoot(s), "img")
			idxPath := filepath.Join(dir, m.Index.Key)
			idx, err := os.ReadFile(idxPath)
			if err != nil {
				t.Fatal(err)
			}
			sum := tc.sum(chunks)
			copy(idx[24+1*104+72:], sum[:])
			must(t, os.WriteFile(idxPath, idx, 0o600))
			editManifest(t, dir, func(m *storage.Manifest) {
				d := sha256.Sum256(idx)
				m.Index.SHA256 = hex.EncodeToString(d[:])
			})
			img, err = s.Open(ctx, "img")
			if err != nil {
				t.Fatalf("Open = %v, want success (the index is consistent)", err)
			}
			defer img.Close()
			got := make([]byte, len(mem))
			err = img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil })
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "chunk") {
				t.Errorf("ReadMemoryTo = %v, want ErrCorrupt naming the chunk", err)
			}
		})
	}
}

// TestChecksumsOnly: a content-addressed image opened with ChecksumsOnly
// reads back the same memory, and a damaged chunk (one stored byte
// flipped) is still refused with ErrCorrupt naming it, by its CRC-32C
// instead of its address (TestSignedImages opens signed images with it).
func TestChecksumsOnly(t *testing.T) {
	ctx := context.Background()
	s := newFileStore(t)
	mem := make([]byte, 3<<20)
	storetest.FillMixed(mem, 0)
	w, err := s.Create(ctx, "img", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.StateWriter().Write([]byte("state"))
	if err := w.WriteMemory(0, mem); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	read := func(o storage.OpenOptions) ([]byte, error) {
		img, err := storage.OpenImageWith(ctx, "img", s.URI(), o)
		if err != nil {
			t.Fatalf("OpenImageWith(%+v) = %v", o, err)
		}
		defer img.Close()
		got := make([]byte, len(mem))
		err = img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil })
		return got, err
	}
	got, err := read(storage.OpenOptions{ChecksumsOnly: true})
	if err != nil || !bytes.Equal(got, mem) {
		t.Fatalf("ReadMemoryTo(ChecksumsOnly) = %v, equal %v; want the memory written", err, bytes.Equal(got, mem))
	}
	chunks, _ := filepath.Glob(filepath.Join(fileRoot(s), ".chunks", "*", "*"))
	if len(chunks) == 0 {
		t.Fatal("no chunk files in the store")
	}
	b, err := os.ReadFile(chunks[0])
	must(t, err)
	b[len(b)/2] ^= 0x40
	must(t, os.Chmod(chunks[0], 0o600))
	must(t, os.WriteFile(chunks[0], b, 0o600))
	for _, tc := range []struct {
		name string
		o    storage.OpenOptions
	}{
		{"addresses", storage.OpenOptions{}},
		{"checksums-only", storage.OpenOptions{ChecksumsOnly: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := read(tc.o); !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "chunk") {
				t.Errorf("ReadMemoryTo of a damaged chunk = %v, want ErrCorrupt naming the chunk", err)
			}
		})
	}
}
