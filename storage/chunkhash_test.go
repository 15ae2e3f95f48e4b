package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// hashStore is a file store in a temporary directory, with what the
// chunk hash tests need of it.
type hashStore struct {
	t    *testing.T
	root string
	s    storage.Store
}

func newHashStore(t *testing.T) *hashStore {
	t.Helper()
	root := filepath.Join(t.TempDir(), "images")
	s, err := storage.NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return &hashStore{t: t, root: root, s: s}
}

// save writes mem as image name, against parent if not nil, and returns
// how many chunks the store did not have.
func (h *hashStore) save(name string, mem []byte, parent *storage.ParentRef) uint64 {
	h.t.Helper()
	w, err := h.s.Create(context.Background(), name, storage.CreateOptions{Parent: parent})
	if err != nil {
		h.t.Fatal(err)
	}
	defer w.Abort()
	w.StateWriter().Write([]byte("state of " + name))
	if err := w.WriteMemory(0, mem); err != nil {
		h.t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		h.t.Fatalf("Commit(%s) = %v", name, err)
	}
	n, _ := w.NewChunks()
	return n
}

func (h *hashStore) open(name string) *storage.Image {
	h.t.Helper()
	img, err := h.s.Open(context.Background(), name)
	if err != nil {
		h.t.Fatalf("Open(%s) = %v", name, err)
	}
	h.t.Cleanup(func() { img.Close() })
	return img
}

// chunkFile is where the file store keeps chunk c.
func (h *hashStore) chunkFile(c storage.Chunk) string {
	sum := c.SumHex()
	return filepath.Join(h.root, ".chunks", sum[:2], sum)
}

// hashMemory is 3 MiB of memory in three chunks of mixed pages.
func hashMemory() []byte {
	mem := make([]byte, 3*mib)
	storetest.FillMixed(mem, 0)
	return mem
}

// checkImage verifies image name and reads its memory back as want.
func (h *hashStore) checkImage(name string, want []byte) {
	h.t.Helper()
	img := h.open(name)
	if err := img.Verify(context.Background()); err != nil {
		h.t.Errorf("Verify(%s) = %v", name, err)
	}
	got := make(memAt, len(want))
	if err := img.ReadMemoryAt(context.Background(), got); err != nil || !bytes.Equal(got, want) {
		h.t.Errorf("ReadMemoryAt(%s) = %v, memory equal %v", name, err, bytes.Equal(got, want))
	}
}

// TestChunkHashNewImage: a new image is format 1.5 with BLAKE3 chunk
// addresses, each the BLAKE3 of the chunk's stored bytes, and it
// verifies and reads back.
func TestChunkHashNewImage(t *testing.T) {
	h := newHashStore(t)
	mem := hashMemory()
	h.save("img", mem, nil)
	img := h.open("img")
	m := img.Manifest()
	if m.Minor != 5 || m.ChunkHash != storage.ChunkHashBLAKE3 {
		t.Errorf("new image: format 1.%d, chunk hash %q; want 1.5, %q", m.Minor, m.ChunkHash, storage.ChunkHashBLAKE3)
	}
	if len(img.Chunks()) != 3 {
		t.Fatalf("image has %d chunks, want 3", len(img.Chunks()))
	}
	for i, c := range img.Chunks() {
		stored, err := os.ReadFile(h.chunkFile(c))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if got := blake3.Sum256(stored); got != c.Sum {
			t.Errorf("chunk %d address %x, BLAKE3 of its bytes %x", i, c.Sum, got)
		}
		if got := m.ChunkSum(stored); got != c.Sum {
			t.Errorf("Manifest.ChunkSum(chunk %d) = %x, want %x", i, got, c.Sum)
		}
	}
	h.checkImage("img", mem)
}

// corruptChunk flips a byte in the middle of chunk i of image name.
func (h *hashStore) corruptChunk(name string, i int) {
	h.t.Helper()
	p := h.chunkFile(h.open(name).Chunks()[i])
	b, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(p, b, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// TestChunkHashCorrupt: a chunk whose bytes are not those its address
// names is ErrCorrupt, found (before its CRC-32C) by the image's chunk
// hash: BLAKE3 in a new
// image, SHA-256 in a 1.4 one.
func TestChunkHashCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		forge bool
		hash  string
	}{{"blake3", false, "blake3"}, {"sha256 (1.4)", true, "sha256"}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHashStore(t)
			h.save("img", hashMemory(), nil)
			if tc.forge {
				if err := storetest.ForgeFormat14(filepath.Join(h.root, "img")); err != nil {
					t.Fatal(err)
				}
			}
			h.corruptChunk("img", 1)
			err := h.open("img").Verify(context.Background())
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "content has "+tc.hash) {
				t.Errorf("Verify(chunk 1 altered) = %v, want ErrCorrupt from its %s address", err, tc.hash)
			}
		})
	}
}

// TestChunkHashFormat14: an image of format 1.4 (chunks addressed by
// SHA-256, no chunk hash named) still loads, verifies and reads back.
func TestChunkHashFormat14(t *testing.T) {
	h := newHashStore(t)
	mem := hashMemory()
	h.save("old", mem, nil)
	if err := storetest.ForgeFormat14(filepath.Join(h.root, "old")); err != nil {
		t.Fatal(err)
	}
	img := h.open("old")
	if m := img.Manifest(); m.Minor != 4 || m.ChunkHash != "" {
		t.Fatalf("forged image: format 1.%d, chunk hash %q; want 1.4 naming none", m.Minor, m.ChunkHash)
	}
	for i, c := range img.Chunks() {
		stored, err := os.ReadFile(h.chunkFile(c))
		if err != nil {
			t.Fatalf("chunk %d under its SHA-256: %v", i, err)
		}
		if got := sha256.Sum256(stored); got != c.Sum {
			t.Errorf("chunk %d address %x, SHA-256 of its bytes %x", i, c.Sum, got)
		}
	}
	h.checkImage("old", mem)
}

// TestChunkHashParent14: an incremental save over a 1.4 parent takes the
// parent's SHA-256, so that it finds the parent's chunks, both when it
// reads all memory (the store has the unchanged chunks) and when it
// reuses them; an image of the other hash cannot reuse them, and a
// sweep of the store, which holds chunks of both hashes, keeps theirs.
func TestChunkHashParent14(t *testing.T) {
	ctx := context.Background()
	h := newHashStore(t)
	mem := hashMemory()
	h.save("parent", mem, nil)
	if err := storetest.ForgeFormat14(filepath.Join(h.root, "parent")); err != nil {
		t.Fatal(err)
	}
	ref, _, err := storage.ResolveParent(ctx, "parent", h.s.URI())
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Clone(mem)
	copy(next[mib+5*storage.PageSize:], bytes.Repeat([]byte{0xee}, storage.PageSize))

	if n := h.save("child", next, ref); n != 1 {
		t.Errorf("child over a 1.4 parent stored %d new chunks, want 1 (the changed span)", n)
	}
	child := h.open("child")
	if m := child.Manifest(); m.Minor != storage.FormatMinor || m.ChunkHash != storage.ChunkHashSHA256 {
		t.Errorf("child: format 1.%d, chunk hash %q; want 1.%d, %q", m.Minor, m.ChunkHash, storage.FormatMinor, storage.ChunkHashSHA256)
	}
	if sh := storage.CompareWithParent(ctx, child); sh.SharedChunks != 2 || sh.NewChunks != 1 {
		t.Errorf("CompareWithParent(child) = %d shared, %d new; want 2, 1", sh.SharedChunks, sh.NewChunks)
	}
	h.checkImage("child", next)

	// Reused as they are: spans 0 and 2 from the parent, span 1 written.
	pc := h.open("parent").Chunks()
	w, err := h.s.Create(ctx, "reuser", storage.CreateOptions{Parent: ref})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.StateWriter().Write([]byte("state"))
	if err := w.ReuseChunks(pc[:1]); err != nil {
		t.Fatalf("ReuseChunks(1.4 parent's span 0) = %v", err)
	}
	if err := w.WriteMemory(mib, next[mib:2*mib]); err != nil {
		t.Fatal(err)
	}
	if err := w.ReuseChunks(pc[2:]); err != nil {
		t.Fatalf("ReuseChunks(1.4 parent's span 2) = %v", err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.NewChunks(); n != 0 {
		t.Errorf("reuser stored %d new chunks, want 0 (the child stored its span 1)", n)
	}
	h.checkImage("reuser", next)

	// Without the parent the image is BLAKE3: the SHA-256 chunks are
	// refused, not indexed under a hash that would not verify them.
	w2, err := h.s.Create(ctx, "stranger", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	if err := w2.ReuseChunks(pc[:1]); !errors.Is(err, storage.ErrInvalidArgument) {
		t.Errorf("ReuseChunks(SHA-256 chunks into a BLAKE3 image) = %v, want ErrInvalidArgument", err)
	}
	w2.Abort()

	// A sweep marks by name, whatever the hash: it takes the parent's
	// BLAKE3 copies the forge left and keeps every chunk an image names.
	removed, err := h.s.Prune(ctx, 0)
	if err != nil {
		t.Fatalf("Prune = %v", err)
	}
	chunks := 0
	for _, r := range removed {
		if strings.Contains(r, "/.chunks/") {
			chunks++
		}
	}
	if chunks != 3 {
		t.Errorf("Prune removed %d chunks (%q), want the 3 BLAKE3 copies", chunks, removed)
	}
	h.checkImage("parent", mem)
	h.checkImage("child", next)
	h.checkImage("reuser", next)
}

// TestChunkHashManifest: a manifest naming a chunk hash this snap does
// not know, or naming one in a format before 1.5, is refused with
// ErrCorrupt and the hash's name.
func TestChunkHashManifest(t *testing.T) {
	h := newHashStore(t)
	h.save("img", hashMemory(), nil)
	good := h.open("img").Manifest()
	marshal := func(hash string, minor uint16) []byte {
		m := *good
		m.ChunkHash = hash
		b, err := storage.MarshalManifest(&m)
		if err != nil {
			t.Fatal(err)
		}
		// Header: magic [8], major u16, minor u16; trailer: SHA-256 of
		// all before.
		binary.LittleEndian.PutUint16(b[10:], minor)
		body := b[:len(b)-sha256.Size]
		sum := sha256.Sum256(body)
		return append(body, sum[:]...)
	}
	for _, tc := range []struct {
		name  string
		hash  string
		minor uint16
		want  string // in the error; "" for none
	}{
		{"blake3", storage.ChunkHashBLAKE3, 5, ""},
		{"sha256", storage.ChunkHashSHA256, 5, ""},
		{"none", "", 5, ""},
		{"none in 1.4", "", 4, ""},
		{"foreign", "md5", 5, `chunk hash "md5"`},
		{"upper case", "BLAKE3", 5, `chunk hash "BLAKE3"`},
		{"blake3 in 1.4", storage.ChunkHashBLAKE3, 4, `chunk hash "blake3" in a format 1.4 manifest`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := storage.ParseManifest(marshal(tc.hash, tc.minor))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ParseManifest(chunk hash %q, 1.%d) = %v, want it accepted", tc.hash, tc.minor, err)
			case tc.want == "" && m.ChunkHash != tc.hash:
				t.Errorf("ParseManifest(chunk hash %q).ChunkHash = %q", tc.hash, m.ChunkHash)
			case tc.want != "" && (!errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("ParseManifest(chunk hash %q, 1.%d) = %v, want ErrCorrupt naming %s", tc.hash, tc.minor, err, tc.want)
			}
		})
	}
}
