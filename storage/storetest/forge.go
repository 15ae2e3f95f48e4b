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
// records; within a record storedLen at 24, rawLen at 28, crc32c at 32.
const (
	idxHeader = 24
	idxRecord = 72
)

// RewriteChunk rewrites chunk i of the image in file-store directory dir
// as an attacker who knows the format would: its payload decoded, edited
// by edit (the chunk's present pages, packed), encoded again, and every
// checksum that covers it redone (the chunk's CRC-32C, the index's
// SHA-256 in the manifest, the manifest's checksum). A signature block, if
// any, is kept as it was. Images with S2 chunks or raw chunks only.
func RewriteChunk(dir string, i int, edit func(raw []byte)) error {
	mb, err := os.ReadFile(filepath.Join(dir, "manifest"))
	if err != nil {
		return err
	}
	m, err := storage.ParseManifest(mb)
	if err != nil {
		return err
	}
	if m.Compression.Algorithm != storage.CodecS2 {
		return fmt.Errorf("rewrite chunk: %s chunks not supported", m.Compression.Algorithm)
	}
	idx, err := os.ReadFile(filepath.Join(dir, m.Index.Key))
	if err != nil {
		return err
	}
	mem, err := os.ReadFile(filepath.Join(dir, m.Memory.Key))
	if err != nil {
		return err
	}
	chunks, err := storage.ParseIndex(idx, m)
	if err != nil {
		return err
	}
	if i < 0 || i >= len(chunks) {
		return fmt.Errorf("rewrite chunk %d of %d", i, len(chunks))
	}
	c := chunks[i]
	payload := mem[c.Stored : c.Stored+uint64(c.StoredLen)]
	raw := bytes.Clone(payload)
	if c.Flags&1 == 0 {
		if raw, err = s2.Decode(nil, payload); err != nil {
			return fmt.Errorf("rewrite chunk %d: %w", i, err)
		}
	}
	edit(raw)
	stored := raw
	if c.Flags&1 == 0 {
		stored = s2.EncodeBetter(nil, raw)
	}
	delta := int64(len(stored)) - int64(len(payload))
	newMem := append(append(bytes.Clone(mem[:c.Stored]), stored...), mem[c.Stored+uint64(c.StoredLen):]...)
	rec := idx[idxHeader+i*idxRecord:]
	binary.LittleEndian.PutUint32(rec[24:], uint32(len(stored)))
	binary.LittleEndian.PutUint32(rec[32:], crc32.Checksum(stored, crc32.MakeTable(crc32.Castagnoli)))
	for j := i + 1; j < len(chunks); j++ {
		r := idx[idxHeader+j*idxRecord:]
		binary.LittleEndian.PutUint64(r[16:], uint64(int64(binary.LittleEndian.Uint64(r[16:]))+delta))
	}
	sum := sha256.Sum256(idx)
	m.Index.SHA256 = hex.EncodeToString(sum[:])
	m.Memory.Size = int64(len(newMem))
	if m.Memory.SHA256 != "" {
		// What a signature would need: the attacker can redo it, but not
		// the signature.
		ms := sha256.Sum256(newMem)
		m.Memory.SHA256 = hex.EncodeToString(ms[:])
	}
	out, err := storage.MarshalManifest(m)
	if err != nil {
		return err
	}
	if m.Signer != nil {
		out = append(out, mb[len(mb)-(8+32+64):]...)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{m.Memory.Key, newMem}, {m.Index.Key, idx}, {"manifest", out}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
