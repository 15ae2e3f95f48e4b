package storage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"path"
	"runtime"
	"time"
)

// Format version written by this package. Load accepts the same major and a
// minor up to FormatMinor (Firecracker's rule).
//
// 1.1 added the memory blob's SHA-256 and the optional signature block
// (signed images only; see SignManifest). 1.2 added content-addressed
// chunks (Manifest.ContentAddressed, 104-byte index records carrying each
// chunk's address, its SHA-256) and the parent reference (Manifest.Parent). 1.3 added
// patch records (chunkPatch): the pages an incremental save found written
// since its parent, over the parent's chunk of their span. 1.4 lets a
// file store keep an image's chunks in packs (filestore_packs.go): the
// image's own objects are as in 1.3, but a reader that knows no packs would
// not find its chunks. 1.5 names the chunk hash (Manifest.ChunkHash): new
// images address their chunks by BLAKE3, where every earlier image (which
// names none) used SHA-256.
const (
	FormatMajor = 1
	FormatMinor = 5
)

// PageSize is the granularity of zero-page elimination: memory offsets and
// lengths handed to a Writer are multiples of it.
const PageSize = 4096

// ChunkSpan is the largest logical range one memory chunk covers. A chunk is
// compressed as one S2 block or zstd frame, so it is also the unit of
// parallelism and of lazy (per-fault) restore.
const ChunkSpan = 1 << 20

const pagesPerChunk = ChunkSpan / PageSize

// MaxManifestSize is the largest manifest a store returns; a bigger one is
// ErrCorrupt.
const MaxManifestSize = maxManifestSize

// Hard caps applied by the decoders before allocating.
const (
	maxManifestSize = 16 << 20
	maxIndexSize    = 256 << 20
	maxStateSize    = 4 << 30
	maxMetadata     = 1 << 20
)

var (
	manifestMagic = [8]byte{'S', 'N', 'A', 'P', 'M', 'A', 'N', '\n'}
	indexMagic    = [8]byte{'S', 'N', 'A', 'P', 'I', 'D', 'X', '\n'}
)

const (
	manifestHeaderSize = 24 // magic, major, minor, arch[8], bodyLen
	manifestTrailer    = sha256.Size
	indexHeaderSize    = 24  // magic, major, minor, recordSize, count
	indexRecordSize    = 72  // formats 1.0 and 1.1
	indexRecordSizeCA  = 104 // content-addressed (1.2): the 72 bytes, then the address
)

// Arch returns the architecture name this process writes into images and
// accepts when reading them (runtime.GOARCH).
func Arch() string { return runtime.GOARCH }

// Manifest describes one image. It is the last object written: the image
// exists exactly when its manifest does.
type Manifest struct {
	// Major and Minor are the format version read from the manifest header.
	Major uint16 `json:"-"`
	Minor uint16 `json:"-"`
	// Arch is the architecture the image was saved on (GOARCH names).
	Arch string `json:"arch"`
	// Created is when Commit was called.
	Created time.Time `json:"created"`
	// SnapVersion is the version of the program that wrote the image.
	SnapVersion string `json:"snapVersion,omitempty"`
	// PageSize and ChunkSpan are the memory layout parameters.
	PageSize  uint32 `json:"pageSize"`
	ChunkSpan uint32 `json:"chunkSpan"`
	// MemorySize is the logical size of the memory file: the end of the
	// highest range handed to the writer (zero pages included).
	MemorySize uint64 `json:"memorySize"`
	// MemoryData is the number of non-zero bytes stored (before compression).
	MemoryData uint64 `json:"memoryData"`
	// Chunks is the number of memory chunks in the index.
	Chunks uint64 `json:"chunks"`
	// Compression names the codec and level of state and memory blobs.
	Compression Compression `json:"compression"`
	// State, Memory and Index are the image's blobs.
	State  Blob `json:"state"`
	Memory Blob `json:"memory"`
	Index  Blob `json:"index"`
	// Metadata is free-form (program, argv, source sandbox...).
	Metadata map[string]string `json:"metadata,omitempty"`
	// ContentAddressed (format 1.2) means the memory chunks are not in a
	// blob of the image but stored once per store, each under the hash
	// (ChunkHash) of its stored bytes (Chunk.Sum), and shared by every
	// image that holds the same chunk. Memory then describes the chunks' stored
	// bytes taken back to back in index order, as if they were one blob
	// (its key is "chunks" and names nothing).
	ContentAddressed bool `json:"contentAddressed,omitempty"`
	// ChunkHash (format 1.5) names the hash that gives each chunk of a
	// content-addressed image its address (Chunk.Sum): ChunkHashBLAKE3,
	// or ChunkHashSHA256, which "" (every earlier image) means too. An
	// image saved against a parent uses the parent's, so that the chunks
	// they share have one address.
	ChunkHash string `json:"chunkHash,omitempty"`
	// Parent (format 1.2) names the earlier save of the same sandbox this
	// image was saved against (snap save --parent), nil for a full save.
	// Nothing is read from the parent at restore: the image references
	// all its chunks itself.
	Parent *ParentRef `json:"parent,omitempty"`

	// Signer is the ed25519 public key that signed the manifest, nil if
	// the image is unsigned. It is what the image claims: only
	// VerifySignature with a key the reader trusts proves anything.
	Signer ed25519.PublicKey `json:"-"`
	// signed is the signed part of the manifest bytes and sig the
	// signature, for VerifySignature.
	signed, sig []byte
	// digest is the hex SHA-256 of the manifest bytes as stored.
	digest string
}

// Digest returns the hex SHA-256 of the manifest as stored (signature
// block included): what a child image records of its parent
// (ParentRef.ManifestSHA256).
func (m *Manifest) Digest() string { return m.digest }

// ParentRef names the parent of an image saved with a parent.
type ParentRef struct {
	// URI is the parent image as the user named it, resolved.
	URI string `json:"uri"`
	// ManifestSHA256 is the hex SHA-256 of the parent's manifest bytes
	// when the child was saved: a parent replaced since then no longer
	// matches.
	ManifestSHA256 string `json:"manifestSha256"`
}

// Compression names the codec of memory chunks. The state blob is always
// zstd (at Level when the codec is zstd, at DefaultLevel otherwise).
type Compression struct {
	Algorithm string `json:"algorithm"` // CodecS2 or CodecZstd
	Level     int    `json:"level"`     // the codec's level as given to the writer
}

// Memory chunk codecs (CreateOptions.Codec). A reader needs only the name:
// levels change the encoder, not the format.
const (
	// CodecS2 is klauspost/compress S2 blocks (a Snappy extension), the
	// default (DefaultCodec) at level S2Better.
	CodecS2 = "s2"
	// CodecZstd is klauspost/compress zstd frames: smaller on some data,
	// about 2-4 times slower to write than S2Better.
	CodecZstd = "zstd"
)

// Blob describes one stored object of an image.
type Blob struct {
	// Key is the blob's path relative to the image (e.g. "memory.bin").
	Key string `json:"key"`
	// Size is the number of stored bytes.
	Size int64 `json:"size"`
	// RawSize is the number of bytes before compression.
	RawSize int64 `json:"rawSize"`
	// SHA256 is the hex digest of the stored bytes. The memory blob's
	// chunks carry their own CRC-32C in the index; its SHA-256 (format
	// 1.1) is written only in a signed image, where it binds the memory to
	// the signature (a CRC is easily forged).
	SHA256 string `json:"sha256,omitempty"`
}

// StoredSize is the total number of bytes the image occupies in its store.
func (m *Manifest) StoredSize() int64 { return m.State.Size + m.Memory.Size + m.Index.Size }

// Ratio is the compression ratio of memory: logical memory size divided by
// stored memory bytes (0 when nothing is stored).
func (m *Manifest) Ratio() float64 {
	if m.Memory.Size+m.Index.Size == 0 {
		return 0
	}
	return float64(m.MemorySize) / float64(m.Memory.Size+m.Index.Size)
}

// MarshalManifest encodes m in the manifest format (see the package doc).
func MarshalManifest(m *Manifest) ([]byte, error) {
	if len(m.Arch) > 8 {
		return nil, fmt.Errorf("manifest: arch %q longer than 8 bytes: %w", m.Arch, ErrInvalidArgument)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	if len(body) > maxManifestSize-manifestHeaderSize-manifestTrailer {
		return nil, fmt.Errorf("manifest: %d bytes is over the %d limit (metadata too large?): %w", len(body), maxManifestSize, ErrInvalidArgument)
	}
	out := make([]byte, manifestHeaderSize, manifestHeaderSize+len(body)+manifestTrailer)
	copy(out, manifestMagic[:])
	binary.LittleEndian.PutUint16(out[8:], FormatMajor)
	binary.LittleEndian.PutUint16(out[10:], FormatMinor)
	copy(out[12:20], m.Arch)
	binary.LittleEndian.PutUint32(out[20:], uint32(len(body)))
	out = append(out, body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// ParseManifest decodes and validates a manifest. It checks, in order, the
// magic, the version (ErrIncompatibleVersion), the checksum (ErrCorrupt) and
// the architecture (ErrWrongArch) before decoding the JSON body.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestHeaderSize+manifestTrailer {
		return nil, fmt.Errorf("manifest: %d bytes, shorter than header and checksum: %w", len(b), ErrCorrupt)
	}
	if !bytes.Equal(b[:8], manifestMagic[:]) {
		return nil, fmt.Errorf("manifest: bad magic %q: %w", b[:8], ErrCorrupt)
	}
	major := binary.LittleEndian.Uint16(b[8:])
	minor := binary.LittleEndian.Uint16(b[10:])
	if major != FormatMajor || minor > FormatMinor {
		return nil, fmt.Errorf("manifest: format %d.%d, this snap reads %d.0 to %d.%d: %w",
			major, minor, FormatMajor, FormatMajor, FormatMinor, ErrIncompatibleVersion)
	}
	bodyLen := uint64(binary.LittleEndian.Uint32(b[20:]))
	rest := uint64(len(b) - manifestHeaderSize - manifestTrailer)
	signed := minor >= 1 && rest >= sigBlockSize && bodyLen == rest-sigBlockSize
	if !signed && bodyLen != rest {
		return nil, fmt.Errorf("manifest: body length %d, have %d bytes: %w", bodyLen, rest, ErrCorrupt)
	}
	end := manifestHeaderSize + int(bodyLen)
	sum := sha256.Sum256(b[:end])
	if !bytes.Equal(sum[:], b[end:end+manifestTrailer]) {
		return nil, fmt.Errorf("manifest: checksum mismatch: %w", ErrCorrupt)
	}
	var signer ed25519.PublicKey
	var sig []byte
	if signed {
		blk := b[end+manifestTrailer:]
		if !bytes.Equal(blk[:8], sigMagic[:]) {
			return nil, fmt.Errorf("manifest: bad signature block magic %q: %w", blk[:8], ErrCorrupt)
		}
		signer = ed25519.PublicKey(bytes.Clone(blk[8 : 8+ed25519.PublicKeySize]))
		sig = bytes.Clone(blk[8+ed25519.PublicKeySize:])
	}
	arch := string(bytes.TrimRight(b[12:20], "\x00"))
	if arch != Arch() {
		return nil, fmt.Errorf("manifest: saved on %q, this is %q: %w", arch, Arch(), ErrWrongArch)
	}
	m := &Manifest{}
	if err := json.Unmarshal(b[manifestHeaderSize:end], m); err != nil {
		return nil, fmt.Errorf("manifest: decode body: %v: %w", err, ErrCorrupt)
	}
	m.Major, m.Minor = major, minor
	all := sha256.Sum256(b)
	m.digest = hex.EncodeToString(all[:])
	if err := m.validate(arch); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if signed {
		m.Signer, m.signed, m.sig = signer, bytes.Clone(b[:end+manifestTrailer]), sig
	}
	return m, nil
}

// Signature block of a signed manifest (format 1.1), after the checksum:
//
//	magic "SNAPSIG\n" | ed25519 public key (32) | ed25519 signature (64)
//
// The signature covers every manifest byte before the block: header, body
// (which holds the SHA-256 of every blob) and checksum.
const sigBlockSize = 8 + ed25519.PublicKeySize + ed25519.SignatureSize

var sigMagic = [8]byte{'S', 'N', 'A', 'P', 'S', 'I', 'G', '\n'}

// SignManifest appends to manifest, as MarshalManifest returned it, the
// signature block made with key.
func SignManifest(manifest []byte, key ed25519.PrivateKey) []byte {
	out := make([]byte, 0, len(manifest)+sigBlockSize)
	out = append(out, manifest...)
	out = append(out, sigMagic[:]...)
	out = append(out, key.Public().(ed25519.PublicKey)...)
	return append(out, ed25519.Sign(key, manifest)...)
}

// VerifySignature checks that the manifest was signed by key. An unsigned
// image, another signer or a signature that does not verify (the manifest
// was altered) is ErrSignature. With the manifest verified, every blob is
// bound to it by its SHA-256, which the reader checks (see
// Image.VerifyMemory for the memory blob).
func (m *Manifest) VerifySignature(key ed25519.PublicKey) error {
	switch {
	case m.Signer == nil:
		return fmt.Errorf("image is not signed: %w", ErrSignature)
	case !m.Signer.Equal(key):
		return fmt.Errorf("image signed by key %s, not by the given key %s: %w", KeyID(m.Signer), KeyID(key), ErrSignature)
	case !ed25519.Verify(key, m.signed, m.sig):
		return fmt.Errorf("manifest signature by key %s does not verify (manifest altered): %w", KeyID(key), ErrSignature)
	case m.Memory.SHA256 == "":
		return fmt.Errorf("signed manifest without the memory blob's SHA-256: %w", ErrSignature)
	}
	return nil
}

// KeyID names a public key in messages: the first 8 bytes of the SHA-256
// of the key, in hex.
func KeyID(key ed25519.PublicKey) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

func (m *Manifest) validate(headerArch string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
	}
	switch {
	case m.Arch != headerArch:
		return bad("arch %q in body, %q in header", m.Arch, headerArch)
	case m.PageSize != PageSize:
		return bad("page size %d, want %d", m.PageSize, PageSize)
	case m.ChunkSpan == 0 || m.ChunkSpan > ChunkSpan || m.ChunkSpan%PageSize != 0:
		return bad("chunk span %d", m.ChunkSpan)
	case m.Compression.Algorithm != CodecZstd && m.Compression.Algorithm != CodecS2:
		return bad("compression %q", m.Compression.Algorithm)
	case m.MemoryData > m.MemorySize*layers(m.Minor):
		// A patch (1.3) stores again pages its base stores.
		return bad("memory data %d larger than memory size %d", m.MemoryData, m.MemorySize)
	case m.MemorySize%PageSize != 0:
		return bad("memory size %d not a multiple of the page size", m.MemorySize)
	case m.Chunks > m.MemorySize/PageSize*layers(m.Minor):
		return bad("%d chunks for %d bytes of memory", m.Chunks, m.MemorySize)
	}
	for _, bl := range []struct {
		name string
		b    *Blob
		max  int64
	}{{"state", &m.State, maxStateSize}, {"memory", &m.Memory, 1 << 62}, {"index", &m.Index, maxIndexSize}} {
		if err := validKey(bl.b.Key); err != nil {
			return bad("%s blob key: %v", bl.name, err)
		}
		if bl.b.Size < 0 || bl.b.RawSize < 0 || bl.b.Size > bl.max {
			return bad("%s blob size %d (raw %d)", bl.name, bl.b.Size, bl.b.RawSize)
		}
		if bl.b != &m.Memory || bl.b.SHA256 != "" {
			if d, err := hex.DecodeString(bl.b.SHA256); err != nil || len(d) != sha256.Size {
				return bad("%s blob sha256 %q", bl.name, bl.b.SHA256)
			}
		}
	}
	if m.State.RawSize > maxStateSize {
		return bad("state raw size %d over the %d limit", m.State.RawSize, int64(maxStateSize))
	}
	if m.Minor < 2 && (m.ContentAddressed || m.Parent != nil) {
		return bad("content-addressed chunks or a parent in a format %d.%d manifest", m.Major, m.Minor)
	}
	if _, err := parseChunkHash(m.ChunkHash); err != nil {
		return bad("%v", err)
	}
	if m.ChunkHash != "" && (m.Minor < 5 || !m.ContentAddressed) {
		return bad("chunk hash %q in a format %d.%d manifest without content-addressed chunks or before 1.5", m.ChunkHash, m.Major, m.Minor)
	}
	if m.Parent != nil {
		if d, err := hex.DecodeString(m.Parent.ManifestSHA256); err != nil || len(d) != sha256.Size || m.Parent.URI == "" || len(m.Parent.URI) > 4096 {
			return bad("parent %q with manifest sha256 %q", m.Parent.URI, m.Parent.ManifestSHA256)
		}
	}
	if want := int64(indexHeaderSize) + int64(m.Chunks)*int64(m.indexRecordSize()); m.Index.Size != want {
		return bad("index blob size %d, want %d for %d chunks", m.Index.Size, want, m.Chunks)
	}
	n := 0
	for k, v := range m.Metadata {
		n += len(k) + len(v)
	}
	if n > maxMetadata {
		return bad("metadata %d bytes over the %d limit", n, maxMetadata)
	}
	return nil
}

// layers is how many index records may cover one page in a format of
// minor version minor: two (a base and its patch) from 1.3 on.
func layers(minor uint16) uint64 {
	if minor >= 3 {
		return 2
	}
	return 1
}

// indexRecordSize is the size of one memory index record of the image.
func (m *Manifest) indexRecordSize() int {
	if m.ContentAddressed {
		return indexRecordSizeCA
	}
	return indexRecordSize
}

// validKey accepts keys of one or two path segments made of [A-Za-z0-9._-],
// none of them "." or "..", so a hostile manifest cannot point outside its
// image.
func validKey(key string) error {
	if key == "" || len(key) > 256 || path.Clean(key) != key || key[0] == '/' {
		return fmt.Errorf("invalid key %q", key)
	}
	segs := 0
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '/' {
			c := key[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("invalid character %q in key %q", c, key)
			}
			continue
		}
		seg := key[start:i]
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid key %q", key)
		}
		segs++
		start = i + 1
	}
	if segs > 2 {
		return fmt.Errorf("key %q has more than two segments", key)
	}
	return nil
}

// Chunk is one entry of the memory index: a logical range of the memory file
// whose non-zero pages are stored, compressed as one S2 block or zstd frame, at
// [Stored, Stored+StoredLen) of the memory blob.
type Chunk struct {
	// Offset is the logical offset of the chunk's first page.
	Offset uint64
	// Span is the logical length covered, a multiple of PageSize, at most
	// ChunkSpan. Pages inside the span that are not present are zero.
	Span uint32
	// Flags: chunkRaw means the payload is stored uncompressed;
	// chunkPatch that the chunk patches the one before it (IsPatch).
	Flags uint32
	// Stored and StoredLen locate the payload in the memory blob.
	Stored    uint64
	StoredLen uint32
	// RawLen is the uncompressed payload length: present pages × PageSize.
	RawLen uint32
	// CRC is the CRC-32C (Castagnoli) of the stored payload.
	CRC uint32
	// Present has bit i set when page i of the span is stored (bit i%8 of
	// byte i/8). Present pages are stored in order, back to back.
	Present [pagesPerChunk / 8]byte
	// Sum is the hash of the stored payload (SHA-256, or BLAKE3 from
	// format 1.5: Manifest.ChunkHash), the chunk's name in its store
	// (content-addressed images, format 1.2); zero otherwise.
	Sum [addrSize]byte
	// hash is the chunk hash that gave Sum: the image's (ParseIndex) or
	// the writer's (Writer.putChunk). ReuseChunks takes only chunks of
	// its own hash.
	hash chunkHash
}

// SumHex returns the chunk's content address (Sum in hex).
func (c *Chunk) SumHex() string { return hex.EncodeToString(c.Sum[:]) }

// Chunk flags.
const (
	// chunkRaw: the payload is stored uncompressed.
	chunkRaw = 1
	// chunkPatch (1.3): the record is a patch of the record before it,
	// its base, which is not a patch and whose span holds its span: its
	// present pages replace the base's (zero pages included: a patch
	// stores every page it covers), the base's other pages stand.
	chunkPatch = 2
)

// IsPatch reports whether the chunk is a patch of the chunk before it in
// the index (format 1.3): its present pages replace that chunk's.
func (c *Chunk) IsPatch() bool { return c.Flags&chunkPatch != 0 }

// Dense reports whether every page of the span is present, so the payload
// decompresses straight into the destination.
func (c *Chunk) Dense() bool { return c.RawLen == c.Span }

func (c *Chunk) present(i int) bool { return c.Present[i/8]&(1<<(i%8)) != 0 }

func (c *Chunk) presentCount() int {
	n := 0
	for i := 0; i < len(c.Present); i += 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(c.Present[i:]))
	}
	return n
}

// marshalIndex encodes a content-addressed (1.2) memory index.
func marshalIndex(chunks []Chunk) []byte {
	out := make([]byte, indexHeaderSize+len(chunks)*indexRecordSizeCA)
	copy(out, indexMagic[:])
	binary.LittleEndian.PutUint16(out[8:], FormatMajor)
	binary.LittleEndian.PutUint16(out[10:], FormatMinor)
	binary.LittleEndian.PutUint32(out[12:], indexRecordSizeCA)
	binary.LittleEndian.PutUint64(out[16:], uint64(len(chunks)))
	for i := range chunks {
		c := &chunks[i]
		r := out[indexHeaderSize+i*indexRecordSizeCA:]
		copy(r[72:], c.Sum[:])
		binary.LittleEndian.PutUint64(r[0:], c.Offset)
		binary.LittleEndian.PutUint32(r[8:], c.Span)
		binary.LittleEndian.PutUint32(r[12:], c.Flags)
		binary.LittleEndian.PutUint64(r[16:], c.Stored)
		binary.LittleEndian.PutUint32(r[24:], c.StoredLen)
		binary.LittleEndian.PutUint32(r[28:], c.RawLen)
		binary.LittleEndian.PutUint32(r[32:], c.CRC)
		copy(r[40:72], c.Present[:])
	}
	return out
}

// ParseIndex decodes a memory index and checks it against m: chunks sorted
// and disjoint, inside MemorySize, payloads back to back inside the memory
// blob, presence bitmaps consistent with lengths.
func ParseIndex(b []byte, m *Manifest) ([]Chunk, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("index: %s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
	}
	if len(b) < indexHeaderSize {
		return nil, bad("%d bytes, shorter than its header", len(b))
	}
	if !bytes.Equal(b[:8], indexMagic[:]) {
		return nil, bad("bad magic %q", b[:8])
	}
	major := binary.LittleEndian.Uint16(b[8:])
	minor := binary.LittleEndian.Uint16(b[10:])
	if major != FormatMajor || minor > FormatMinor {
		return nil, fmt.Errorf("index: format %d.%d: %w", major, minor, ErrIncompatibleVersion)
	}
	recSize := m.indexRecordSize()
	if rs := binary.LittleEndian.Uint32(b[12:]); rs != uint32(recSize) {
		return nil, bad("record size %d, want %d", rs, recSize)
	}
	count := binary.LittleEndian.Uint64(b[16:])
	if count != m.Chunks || count > uint64(len(b)-indexHeaderSize)/uint64(recSize) ||
		uint64(len(b)) != indexHeaderSize+count*uint64(recSize) {
		return nil, bad("%d records in %d bytes, manifest says %d chunks", count, len(b), m.Chunks)
	}
	flags := uint32(chunkRaw)
	if minor >= 3 {
		flags |= chunkPatch
	}
	chunks := make([]Chunk, count)
	hash := m.chunkHash()
	var nextOff, nextStored, data uint64
	for i := range chunks {
		r := b[indexHeaderSize+i*recSize:]
		c := &chunks[i]
		if m.ContentAddressed {
			copy(c.Sum[:], r[72:104])
			c.hash = hash
		}
		c.Offset = binary.LittleEndian.Uint64(r[0:])
		c.Span = binary.LittleEndian.Uint32(r[8:])
		c.Flags = binary.LittleEndian.Uint32(r[12:])
		c.Stored = binary.LittleEndian.Uint64(r[16:])
		c.StoredLen = binary.LittleEndian.Uint32(r[24:])
		c.RawLen = binary.LittleEndian.Uint32(r[28:])
		c.CRC = binary.LittleEndian.Uint32(r[32:])
		copy(c.Present[:], r[40:72])
		if c.IsPatch() && c.Flags&^flags == 0 {
			if err := checkPatch(chunks, i); err != nil {
				return nil, bad("%v", err)
			}
		}
		switch {
		case c.Offset%PageSize != 0 || (c.Offset < nextOff && !c.IsPatch()):
			return nil, bad("chunk %d at offset %#x overlaps or is misaligned", i, c.Offset)
		case c.Span == 0 || c.Span > m.ChunkSpan || c.Span%PageSize != 0:
			return nil, bad("chunk %d span %d", i, c.Span)
		case c.Offset > m.MemorySize || uint64(c.Span) > m.MemorySize-c.Offset:
			return nil, bad("chunk %d [%#x+%d] past memory size %d", i, c.Offset, c.Span, m.MemorySize)
		case c.Flags&^flags != 0:
			return nil, bad("chunk %d unknown flags %#x", i, c.Flags)
		case c.Stored != nextStored:
			return nil, bad("chunk %d stored at %d, want %d", i, c.Stored, nextStored)
		case c.StoredLen == 0 || uint64(c.StoredLen) > uint64(m.Memory.Size)-min(c.Stored, uint64(m.Memory.Size)):
			return nil, bad("chunk %d stored length %d past memory blob size %d", i, c.StoredLen, m.Memory.Size)
		case uint32(c.presentCount())*PageSize != c.RawLen || c.RawLen == 0:
			return nil, bad("chunk %d raw length %d does not match its %d present pages", i, c.RawLen, c.presentCount())
		case c.StoredLen > c.RawLen:
			// A payload is stored compressed only when that is smaller.
			return nil, bad("chunk %d stored length %d larger than its raw length %d", i, c.StoredLen, c.RawLen)
		case c.Flags&chunkRaw != 0 && c.StoredLen != c.RawLen:
			return nil, bad("chunk %d stored raw with length %d, want %d", i, c.StoredLen, c.RawLen)
		}
		for p := int(c.Span / PageSize); p < pagesPerChunk; p++ {
			if c.present(p) {
				return nil, bad("chunk %d page %d present past its span", i, p)
			}
		}
		if !c.present(0) || !c.present(int(c.Span/PageSize)-1) {
			return nil, bad("chunk %d first or last page of span absent", i)
		}
		if !c.IsPatch() {
			nextOff = c.Offset + uint64(c.Span)
		}
		nextStored += uint64(c.StoredLen)
		data += uint64(c.RawLen)
	}
	if nextStored != uint64(m.Memory.Size) {
		return nil, bad("chunks cover %d stored bytes, memory blob has %d", nextStored, m.Memory.Size)
	}
	if data != m.MemoryData {
		return nil, bad("chunks hold %d bytes, manifest says %d", data, m.MemoryData)
	}
	return chunks, nil
}

// checkPatch checks that chunk i, a patch, follows its base: a chunk
// that is not a patch and whose span holds chunk i's.
func checkPatch(chunks []Chunk, i int) error {
	c := &chunks[i]
	if i == 0 || chunks[i-1].IsPatch() {
		return fmt.Errorf("chunk %d is a patch without a base before it", i)
	}
	b := &chunks[i-1]
	if c.Offset < b.Offset || c.Offset+uint64(c.Span) > b.Offset+uint64(b.Span) {
		return fmt.Errorf("patch chunk %d [%#x+%d] outside its base [%#x+%d]", i, c.Offset, c.Span, b.Offset, b.Span)
	}
	return nil
}
