package storage_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"

	"snapshotter/storage"
)

// memtouchChunk returns the stored bytes of one chunk of memtouch's
// memory (a 1 MiB span, odd pages zero) as the writer stores it.
func memtouchChunk(b *testing.B) []byte {
	b.Helper()
	mem := make([]byte, storage.ChunkSpan)
	fillMemtouch(mem)
	root := filepath.Join(b.TempDir(), "images")
	s, err := storage.NewFileStore(root)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	w, err := s.Create(ctx, "span", storage.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w.StateWriter().Write([]byte("state"))
	if err := w.WriteMemory(0, mem); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	img, err := s.Open(ctx, "span")
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	sum := img.Chunks()[0].SumHex()
	stored, err := os.ReadFile(filepath.Join(root, ".chunks", sum[:2], sum))
	if err != nil {
		b.Fatal(err)
	}
	return stored
}

// BenchmarkChunkHash compares the two chunk hashes (Manifest.ChunkHash)
// on a memtouch chunk's stored bytes: SHA-256, the address before format
// 1.5, against BLAKE3, the address since.
func BenchmarkChunkHash(b *testing.B) {
	stored := memtouchChunk(b)
	for _, bc := range []struct {
		name string
		sum  func([]byte) [32]byte
	}{{"sha256", sha256.Sum256}, {"blake3", blake3.Sum256}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(stored)))
			b.ReportAllocs()
			for range b.N {
				bc.sum(stored)
			}
		})
	}
}
