package storage_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

func sampleManifest() *storage.Manifest {
	return &storage.Manifest{
		Arch: storage.Arch(), Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), SnapVersion: "v1",
		PageSize: storage.PageSize, ChunkSpan: storage.ChunkSpan, MemorySize: 8 << 20, MemoryData: 1 << 20, Chunks: 1,
		Compression: storage.Compression{Algorithm: "zstd", Level: 1},
		State:       storage.Blob{Key: "state.zst", Size: 10, RawSize: 20, SHA256: hex64()},
		Memory:      storage.Blob{Key: "memory.bin", Size: 1000, RawSize: 1 << 20},
		Index:       storage.Blob{Key: "memory.idx", Size: 24 + 72, RawSize: 24 + 72, SHA256: hex64()},
		Metadata:    map[string]string{"program": "/bin/true"},
	}
}

func hex64() string { return "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" }

// resum rewrites the trailing checksum so that a test can reach the checks
// after it.
func resum(b []byte) []byte {
	b = bytes.Clone(b)
	sum := sha256.Sum256(b[:len(b)-32])
	copy(b[len(b)-32:], sum[:])
	return b
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest()
	b, err := storage.MarshalManifest(m)
	if err != nil {
		t.Fatalf("MarshalManifest = %v", err)
	}
	got, err := storage.ParseManifest(b)
	if err != nil {
		t.Fatalf("ParseManifest = %v", err)
	}
	if got.Major != storage.FormatMajor || got.Minor != storage.FormatMinor {
		t.Errorf("version = %d.%d, want %d.%d", got.Major, got.Minor, storage.FormatMajor, storage.FormatMinor)
	}
	got.Major, got.Minor = 0, 0
	gb, _ := storage.MarshalManifest(got)
	if !bytes.Equal(gb, b) {
		t.Errorf("ParseManifest(MarshalManifest(m)) re-encodes differently:\n%s\n%s", gb, b)
	}
}

func TestParseManifestErrors(t *testing.T) {
	good, err := storage.MarshalManifest(sampleManifest())
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	foreign := sampleManifest()
	foreign.Arch = other
	foreignB, _ := storage.MarshalManifest(foreign)
	patch := func(off int, v uint16) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[off:], v)
		return resum(b)
	}
	badBody := func(f func(m *storage.Manifest)) []byte {
		m := sampleManifest()
		f(m)
		b, err := storage.MarshalManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"ok", good, nil},
		{"empty", nil, storage.ErrCorrupt},
		{"magic", append([]byte("XNAPMAN\n"), good[8:]...), storage.ErrCorrupt},
		{"major+1", patch(8, storage.FormatMajor+1), storage.ErrIncompatibleVersion},
		{"major-0", patch(8, 0), storage.ErrIncompatibleVersion},
		{"minor+1", patch(10, storage.FormatMinor+1), storage.ErrIncompatibleVersion},
		{"checksum", append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), storage.ErrCorrupt},
		{"truncated", good[:len(good)-40], storage.ErrCorrupt},
		{"wrong-arch", foreignB, storage.ErrWrongArch},
		{"page-size", badBody(func(m *storage.Manifest) { m.PageSize = 8192 }), storage.ErrCorrupt},
		{"key-escape", badBody(func(m *storage.Manifest) { m.Memory.Key = "../other/memory.bin" }), storage.ErrCorrupt},
		{"key-absolute", badBody(func(m *storage.Manifest) { m.State.Key = "/etc/passwd" }), storage.ErrCorrupt},
		{"index-size", badBody(func(m *storage.Manifest) { m.Index.Size = 5 }), storage.ErrCorrupt},
		{"data>2size", badBody(func(m *storage.Manifest) { m.MemoryData = 2*m.MemorySize + 4096 }), storage.ErrCorrupt},
		{"codec", badBody(func(m *storage.Manifest) { m.Compression.Algorithm = "lz4" }), storage.ErrCorrupt},
		{"state-sha", badBody(func(m *storage.Manifest) { m.State.SHA256 = "zz" }), storage.ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.ParseManifest(tc.in)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("ParseManifest(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
}

// TestManifestFlipEveryByte flips each byte of a manifest in turn: every
// variant must be rejected with a typed error, never accepted or panicking.
func TestManifestFlipEveryByte(t *testing.T) {
	good, _ := storage.MarshalManifest(sampleManifest())
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x20
		_, err := storage.ParseManifest(b)
		if !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrIncompatibleVersion) && !errors.Is(err, storage.ErrWrongArch) {
			t.Fatalf("ParseManifest(byte %d flipped) = %v, want a typed error", i, err)
		}
	}
}

// TestSignedManifestFlipEveryByte flips each byte of a signed manifest in
// turn: every variant either fails to parse or fails VerifySignature with
// the signing key (a flip in the public key or the signature still
// parses; only the key the reader trusts decides).
func TestSignedManifestFlipEveryByte(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := sampleManifest()
	m.Memory.SHA256 = m.State.SHA256
	good, _ := storage.MarshalManifest(m)
	good = storage.SignManifest(good, priv)
	if pm, err := storage.ParseManifest(good); err != nil || pm.VerifySignature(pub) != nil {
		t.Fatalf("signed manifest: parse %v, verify %v", err, pm.VerifySignature(pub))
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x20
		pm, err := storage.ParseManifest(b)
		if err == nil {
			err = pm.VerifySignature(pub)
		}
		if err == nil {
			t.Fatalf("signed manifest with byte %d flipped verifies", i)
		}
	}
	// Cut off, the signature block makes an unsigned-looking manifest of
	// the wrong length.
	if _, err := storage.ParseManifest(good[:len(good)-1]); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("signed manifest one byte short = %v, want ErrCorrupt", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	good, _ := storage.MarshalManifest(sampleManifest())
	_, key, _ := ed25519.GenerateKey(nil)
	f.Add(storage.SignManifest(good, key))
	f.Add(good)
	f.Add(good[:30])
	f.Add([]byte("SNAPMAN\n"))
	// A content-addressed child (format 1.2).
	ca := sampleManifest()
	ca.ContentAddressed, ca.Index.Size = true, 24+104
	ca.Parent = &storage.ParentRef{URI: "file:///s/base", ManifestSHA256: hex64()}
	child, _ := storage.MarshalManifest(ca)
	f.Add(child)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := storage.ParseManifest(b)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrIncompatibleVersion) && !errors.Is(err, storage.ErrWrongArch) {
				t.Fatalf("ParseManifest = %v, not a typed error", err)
			}
			return
		}
		// Anything accepted re-encodes to something accepted.
		if _, err := storage.MarshalManifest(m); err != nil {
			t.Fatalf("MarshalManifest(accepted manifest) = %v", err)
		}
	})
}

// FuzzParseIndex feeds the memory index decoder arbitrary bytes under a
// manifest that accepts their length.
func FuzzParseIndex(f *testing.F) {
	s, err := storage.NewFileStore(filepath.Join(f.TempDir(), "s"))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	w, _ := s.Create(ctx, "seed", storage.CreateOptions{})
	buf := make([]byte, 3<<20)
	storetest.FillMixed(buf, 0)
	w.WriteMemory(0, buf)
	m, err := w.Commit()
	if err != nil {
		f.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(fileRoot(s), "seed", m.Index.Key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idx)
	f.Add(idx[:24])
	f.Fuzz(func(t *testing.T, b []byte) {
		mm := *m
		if len(b) >= 24 {
			mm.Chunks = uint64(len(b)-24) / 104 // content-addressed records
		}
		chunks, err := storage.ParseIndex(b, &mm)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrIncompatibleVersion) {
				t.Fatalf("ParseIndex = %v, not a typed error", err)
			}
			return
		}
		var end uint64
		for i, c := range chunks {
			if c.IsPatch() {
				if b := chunks[i-1]; b.IsPatch() || c.Offset < b.Offset || c.Offset+uint64(c.Span) > end {
					t.Fatalf("accepted patch %d [%#x+%#x] outside its base", i, c.Offset, c.Span)
				}
				continue
			}
			if c.Offset < end || c.Offset+uint64(c.Span) > mm.MemorySize {
				t.Fatalf("accepted chunk %d [%#x+%#x] overlaps or is out of range", i, c.Offset, c.Span)
			}
			end = c.Offset + uint64(c.Span)
		}
	})
}

// TestParseIndexPatches: an index with patches (format 1.3) loads; a
// patch first, a patch of a patch, a patch outside its base's span and a
// patch in an index of minor 2 are each ErrCorrupt.
func TestParseIndexPatches(t *testing.T) {
	s, err := storage.NewFileStore(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mem := make([]byte, 2<<20)
	storetest.FillMixed(mem, 0)
	w, _ := s.Create(ctx, "base", storage.CreateOptions{})
	w.WriteMemory(0, mem)
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	base, err := s.Open(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	bc := base.Chunks()
	w, _ = s.Create(ctx, "child", storage.CreateOptions{})
	for _, c := range bc {
		pg := storage.Range{Off: c.Offset + storage.PageSize, Len: storage.PageSize}
		if err := w.WritePatchFrom(bytes.NewReader(mem), c, []storage.Range{pg}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(fileRoot(s), "child", m.Index.Key))
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := storage.ParseIndex(idx, m)
	if err != nil || len(chunks) != 2*len(bc) || !chunks[1].IsPatch() || chunks[0].IsPatch() {
		t.Fatalf("ParseIndex(child) = %d chunks, %v; want %d, every other one a patch", len(chunks), err, 2*len(bc))
	}
	const rec, flags = 104, 12 // record size, offset of the flags in a record
	rec0, rec1, rec2 := 24, 24+rec, 24+2*rec
	setFlag := func(b []byte, r int, on bool) {
		f := binary.LittleEndian.Uint32(b[r+flags:])
		if on {
			f |= 2
		} else {
			f &^= 2
		}
		binary.LittleEndian.PutUint32(b[r+flags:], f)
	}
	for _, tc := range []struct {
		name  string
		spoil func(b []byte)
	}{
		{"patch first", func(b []byte) { setFlag(b, rec0, true) }},
		{"patch of a patch", func(b []byte) { setFlag(b, rec2, true) }},
		{"outside its base", func(b []byte) {
			binary.LittleEndian.PutUint64(b[rec1:], binary.LittleEndian.Uint64(b[rec0:])+uint64(binary.LittleEndian.Uint32(b[rec0+8:])))
		}},
		{"minor 2", func(b []byte) { binary.LittleEndian.PutUint16(b[10:], 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(idx)
			tc.spoil(b)
			mm := *m
			if tc.name == "minor 2" {
				mm.Minor = 2
			}
			if _, err := storage.ParseIndex(b, &mm); !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("ParseIndex(%s) = %v, want ErrCorrupt", tc.name, err)
			}
		})
	}
}

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden for the current format version")

// TestGolden opens the images committed under testdata/golden: each format
// version we ever wrote must keep loading (or fail with
// ErrIncompatibleVersion once a major version is retired).
func TestGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("golden images are amd64 images")
	}
	ctx := context.Background()
	cur := filepath.Join("testdata", "golden", fmt.Sprintf("v%d.%d", storage.FormatMajor, storage.FormatMinor))
	// Golden images from 1.1 on are signed with this key.
	goldenKey := ed25519.NewKeyFromSeed([]byte("snapshotter golden image key 32b"))
	mem := make([]byte, 2<<20)
	storetest.FillMixed(mem[:1<<20], 0)
	storetest.FillPage(mem[(2<<20)-4096:], storetest.KindRandom, 7)
	state := []byte("golden state stream v1.0\n")
	if *updateGolden {
		// From 1.4 on, the golden image's chunks are in a pack.
		defer storage.SetPackMinBytes(0)()
		os.RemoveAll(cur)
		s, _ := storage.NewFileStore(cur)
		w, err := s.Create(ctx, "mixed", storage.CreateOptions{Metadata: map[string]string{"program": "golden"}, SnapVersion: "golden", SignKey: goldenKey})
		if err != nil {
			t.Fatal(err)
		}
		w.StateWriter().Write(state)
		w.WriteMemory(0, mem)
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	dirs, err := filepath.Glob(filepath.Join("testdata", "golden", "v*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden images (%v); run go test -run TestGolden -update-golden", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s, _ := storage.NewFileStore(dir)
			img, err := s.Open(ctx, "mixed")
			if errors.Is(err, storage.ErrIncompatibleVersion) {
				return
			}
			if err != nil {
				t.Fatalf("Open(golden %s) = %v", dir, err)
			}
			defer img.Close()
			if err := img.Verify(ctx); err != nil {
				t.Fatalf("Verify(golden %s) = %v", dir, err)
			}
			if img.Manifest().Minor >= 1 {
				if err := img.Check(ctx, storage.OpenOptions{VerifyKey: goldenKey.Public().(ed25519.PublicKey)}); err != nil {
					t.Errorf("Check(golden %s, verify) = %v", dir, err)
				}
			}
			got := make([]byte, len(mem))
			if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil }); err != nil {
				t.Fatalf("ReadMemoryTo(golden) = %v", err)
			}
			if !bytes.Equal(got, mem) {
				t.Errorf("golden %s memory differs from the generator", dir)
			}
			if img.Manifest().Metadata["program"] != "golden" {
				t.Errorf("golden metadata = %v", img.Manifest().Metadata)
			}
		})
	}
}
