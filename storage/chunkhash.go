package storage

import (
	"crypto/sha256"
	"fmt"

	"github.com/zeebo/blake3"
)

// Chunk hashes (Manifest.ChunkHash): the function that gives a
// content-addressed chunk its address, the hash of its stored bytes.
// Both are 32 bytes, so index records, pack indexes and chunk names (64
// hex digits) are the same whichever an image uses.
const (
	// ChunkHashSHA256 is SHA-256, the chunk hash of every image before
	// format 1.5 (whose manifests name none).
	ChunkHashSHA256 = "sha256"
	// ChunkHashBLAKE3 is BLAKE3 with its default 32-byte output, the
	// chunk hash of new images from format 1.5 on: about twice as fast
	// as SHA-256 on memory chunks (see docs/BENCHMARKS.md).
	ChunkHashBLAKE3 = "blake3"
)

// addrSize is the length of a chunk address in bytes, whatever its hash.
const addrSize = 32

// chunkHash is a chunk hash function. The zero value is SHA-256, which a
// chunk of an image that names none has.
type chunkHash uint8

const (
	hashSHA256 chunkHash = iota
	hashBLAKE3
)

// defaultChunkHash is the chunk hash of an image written without a parent.
const defaultChunkHash = hashBLAKE3

// parseChunkHash returns the chunk hash a manifest names: "" (any format
// before 1.5) is SHA-256.
func parseChunkHash(name string) (chunkHash, error) {
	switch name {
	case "", ChunkHashSHA256:
		return hashSHA256, nil
	case ChunkHashBLAKE3:
		return hashBLAKE3, nil
	}
	return 0, fmt.Errorf("chunk hash %q, this snap knows %q and %q", name, ChunkHashSHA256, ChunkHashBLAKE3)
}

// String returns the hash's name as a manifest records it.
func (h chunkHash) String() string {
	if h == hashBLAKE3 {
		return ChunkHashBLAKE3
	}
	return ChunkHashSHA256
}

// sum returns the address of a chunk whose stored bytes are b.
func (h chunkHash) sum(b []byte) [addrSize]byte {
	if h == hashBLAKE3 {
		return blake3.Sum256(b)
	}
	return sha256.Sum256(b)
}

// chunkHash returns the chunk hash of the image. The manifest was
// validated, so the name is known.
func (m *Manifest) chunkHash() chunkHash {
	h, _ := parseChunkHash(m.ChunkHash)
	return h
}

// ChunkHashName returns the name of the image's chunk hash
// (ChunkHashSHA256 when the manifest names none), or "" for an image
// without content-addressed chunks (format 1.1 and before).
func (m *Manifest) ChunkHashName() string {
	if !m.ContentAddressed {
		return ""
	}
	return m.chunkHash().String()
}

// ChunkSum returns the content address that a chunk whose stored bytes
// are b has in the image: their hash under the image's chunk hash.
func (m *Manifest) ChunkSum(b []byte) [32]byte { return m.chunkHash().sum(b) }
