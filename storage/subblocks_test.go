package storage

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/klauspost/compress/s2"
)

// TestEncodeSubBlocks checks that runs encoded as sub-blocks decode, once
// the block's length is put before them, to the run: a page (two
// sub-blocks), several pages (one), an incompressible page, and that a
// destination too short for a sub-block is refused rather than cut.
func TestEncodeSubBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	text := bytes.Repeat([]byte("a run of memory that repeats itself "), 3*PageSize/36+1)
	noise := make([]byte, PageSize)
	rng.Read(noise)
	for _, tc := range []struct {
		name string
		run  []byte
	}{
		{"page", text[:PageSize]},
		{"pages", text[:3*PageSize]},
		{"noise", noise},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, s2.MaxEncodedLen(len(tc.run))+16)
			n, ok := encodeSubBlocks(dst, tc.run)
			if !ok {
				t.Fatal("encodeSubBlocks refused a destination of MaxEncodedLen+16 bytes")
			}
			block := binary.AppendUvarint(nil, uint64(len(tc.run)))
			block = append(block, dst[:n]...)
			got, err := s2.Decode(nil, block)
			if err != nil || !bytes.Equal(got, tc.run) {
				t.Fatalf("decode = %v (equal %v), want the run", err, bytes.Equal(got, tc.run))
			}
			if _, ok := encodeSubBlocks(dst[:n-1], tc.run); ok {
				t.Errorf("encodeSubBlocks fit %d bytes of sub-blocks in %d", n, n-1)
			}
		})
	}
	// One page of text: the two sub-blocks cost at most two bytes more
	// than one.
	whole := s2.Encode(nil, text[:PageSize])
	_, hdr := binary.Uvarint(whole)
	dst := make([]byte, 2*PageSize)
	if n, _ := encodeSubBlocks(dst, text[:PageSize]); n > len(whole)-hdr+2 {
		t.Errorf("a page as sub-blocks: %d bytes, as one block %d", n, len(whole)-hdr)
	}
}
