package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/s2"

	"snapshotter/storage"
)

// Index layout (docs/IMAGE_FORMAT.md): a 24-byte header, then 72-byte
// records (104 with content-addressed chunks, the address at 72); within
// a record storedLen at 24, rawLen at 28, crc32c at 32.
const (
	idxHeader   = 24
	idxRecord   = 72
	idxRecordCA = 104
)

// RewriteChunks rewrites the memory chunks of the image in file-store
// directory dir as an attacker who knows the format would: each payload is
// decoded and handed to edit (the chunk's present pages, packed), which
// changes it in place and reports whether it did; changed chunks are
// encoded again and every checksum that covers them redone (their address
// under the image's chunk hash, their CRC-32C,
// the index's SHA-256 in the manifest, the memory blob's SHA-256 if
// present, the manifest's checksum). A signature block, if any, is kept as
// it was. It returns how many chunks changed. Images with S2 chunks only.
// With content-addressed chunks (dir is then in a file store, whose
// .chunks is dir/../.chunks), a changed chunk is stored under its new
// address and its record names it.
func RewriteChunks(dir string, edit func(raw []byte) bool) (int, error) {
	mb, m, idx, chunks, err := readImage(dir)
	if err != nil {
		return 0, err
	}
	if m.Compression.Algorithm != storage.CodecS2 {
		return 0, fmt.Errorf("rewrite chunks: %s chunks not supported", m.Compression.Algorithm)
	}
	var mem []byte
	if m.ContentAddressed {
		for _, c := range chunks {
			b, err := os.ReadFile(chunkPath(dir, c.SumHex()))
			if err != nil {
				return 0, err
			}
			mem = append(mem, b...)
		}
	} else if mem, err = os.ReadFile(filepath.Join(dir, m.Memory.Key)); err != nil {
		return 0, err
	}
	recSize := idxRecord
	if m.ContentAddressed {
		recSize = idxRecordCA
	}
	var newMem []byte
	changed := 0
	for i, c := range chunks {
		stored := mem[c.Stored : c.Stored+uint64(c.StoredLen)]
		raw := bytes.Clone(stored)
		if c.Flags&1 == 0 {
			if raw, err = s2.Decode(nil, stored); err != nil {
				return 0, fmt.Errorf("rewrite chunk %d: %w", i, err)
			}
		}
		if edit(raw) {
			changed++
			stored = raw
			if c.Flags&1 == 0 {
				stored = s2.EncodeBetter(nil, raw)
			}
		}
		rec := idx[idxHeader+i*recSize:]
		if m.ContentAddressed {
			sum := m.ChunkSum(stored)
			copy(rec[72:104], sum[:])
			if err := writeChunkFile(dir, sum, stored); err != nil {
				return 0, err
			}
		}
		binary.LittleEndian.PutUint64(rec[16:], uint64(len(newMem)))
		binary.LittleEndian.PutUint32(rec[24:], uint32(len(stored)))
		binary.LittleEndian.PutUint32(rec[32:], crc32.Checksum(stored, crc32.MakeTable(crc32.Castagnoli)))
		newMem = append(newMem, stored...)
	}
	sum := sha256.Sum256(idx)
	m.Index.SHA256 = hex.EncodeToString(sum[:])
	m.Memory.Size = int64(len(newMem))
	if m.Memory.SHA256 != "" {
		ms := sha256.Sum256(newMem)
		m.Memory.SHA256 = hex.EncodeToString(ms[:])
	}
	out, err := storage.MarshalManifest(m)
	if err != nil {
		return 0, err
	}
	if m.Signer != nil {
		out = append(out, mb[len(mb)-(8+32+64):]...)
	}
	files := []struct {
		name string
		b    []byte
	}{{m.Memory.Key, newMem}, {m.Index.Key, idx}, {"manifest", out}}
	if m.ContentAddressed {
		files = files[1:]
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o600); err != nil {
			return 0, err
		}
	}
	return changed, nil
}

// ForgeFormat14 rewrites the unsigned content-addressed image in
// file-store directory dir as a format 1.4 writer would have written it:
// each chunk is stored again under the SHA-256 of its bytes (the copy
// under its BLAKE3 address stays, unreferenced), and the index and the
// manifest, which then names no chunk hash, say format 1.4, their
// checksums redone. The chunks must be in chunk files, not in a pack
// (images smaller than the store's pack threshold).
func ForgeFormat14(dir string) error {
	_, m, idx, chunks, err := readImage(dir)
	if err != nil {
		return err
	}
	if !m.ContentAddressed || m.Signer != nil {
		return fmt.Errorf("forge 1.4: %s is signed or not content-addressed", dir)
	}
	for i, c := range chunks {
		stored, err := os.ReadFile(chunkPath(dir, c.SumHex()))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(stored)
		copy(idx[idxHeader+i*idxRecordCA+72:], sum[:])
		if err := writeChunkFile(dir, sum, stored); err != nil {
			return err
		}
	}
	// The index and manifest headers: magic [8], major u16, minor u16.
	binary.LittleEndian.PutUint16(idx[10:], 4)
	sum := sha256.Sum256(idx)
	m.Index.SHA256 = hex.EncodeToString(sum[:])
	m.ChunkHash = ""
	out, err := storage.MarshalManifest(m)
	if err != nil {
		return err
	}
	// The manifest's trailer is the SHA-256 of all bytes before it.
	binary.LittleEndian.PutUint16(out[10:], 4)
	body := out[:len(out)-sha256.Size]
	ms := sha256.Sum256(body)
	out = append(body, ms[:]...)
	if err := os.WriteFile(filepath.Join(dir, m.Index.Key), idx, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest"), out, 0o600)
}

// readImage reads the manifest (its bytes and parsed), the index (its
// bytes and parsed) of the image in directory dir.
func readImage(dir string) ([]byte, *storage.Manifest, []byte, []storage.Chunk, error) {
	mb, err := os.ReadFile(filepath.Join(dir, "manifest"))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	m, err := storage.ParseManifest(mb)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	idx, err := os.ReadFile(filepath.Join(dir, m.Index.Key))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	chunks, err := storage.ParseIndex(idx, m)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return mb, m, idx, chunks, nil
}

// chunkPath is where the file store holding image directory dir keeps
// chunk sum (hex) as a chunk file.
func chunkPath(dir, sum string) string {
	return filepath.Join(dir, "..", ".chunks", sum[:2], sum)
}

// writeChunkFile stores stored as chunk file sum in the file store holding
// image directory dir.
func writeChunkFile(dir string, sum [32]byte, stored []byte) error {
	p := chunkPath(dir, hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, stored, 0o600)
}
