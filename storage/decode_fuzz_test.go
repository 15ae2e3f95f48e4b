package storage

import (
	"context"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

type memBlob []byte

func (b memBlob) readAt(_ context.Context, p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > int64(len(b)) {
		return ErrCorrupt
	}
	copy(p, b[off:])
	return nil
}
func (b memBlob) size(context.Context) (int64, error) { return int64(len(b)), nil }
func (b memBlob) close() error                        { return nil }

// FuzzDecodeChunk hands the chunk decoders arbitrary payloads whose CRC
// matches (as a hostile image would): they must fail with ErrCorrupt or
// produce exactly the span, never panic or write outside it.
func FuzzDecodeChunk(f *testing.F) {
	page := make([]byte, 2*PageSize)
	for i := range page {
		page[i] = byte(i / 7)
	}
	enc, _ := zstd.NewWriter(nil)
	f.Add(enc.EncodeAll(page, nil), false, uint8(2))
	f.Add(s2.Encode(nil, page), true, uint8(2))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0}, false, uint8(1))
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(ChunkSpan), zstd.WithDecoderMaxWindow(ChunkSpan))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, useS2 bool, pages uint8) {
		if len(payload) == 0 {
			return
		}
		n := uint32(pages%8) + 1
		algo := CodecZstd
		if useS2 {
			algo = CodecS2
		}
		c := Chunk{Span: n * PageSize, RawLen: n * PageSize, StoredLen: uint32(len(payload)),
			CRC: crc32.Checksum(payload, castagnoli)}
		for i := 0; i < int(n); i++ {
			c.Present[i/8] |= 1 << (i % 8)
		}
		im := &Image{uri: "fuzz", m: &Manifest{Compression: Compression{Algorithm: algo}}, chunks: []Chunk{c}, mem: memBlob(payload), dec: dec}
		buf := make([]byte, c.Span+PageSize)
		for i := range buf {
			buf[i] = 0xa5
		}
		err := im.ReadChunk(context.Background(), 0, buf[:c.Span])
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("ReadChunk = %v, want nil or ErrCorrupt", err)
		}
		for _, b := range buf[c.Span:] {
			if b != 0xa5 {
				t.Fatalf("ReadChunk wrote past the chunk's span")
			}
		}
	})
}
