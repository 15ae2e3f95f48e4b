package storage_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/s2"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// heapPages fills b as memtouch's data pages: groups of 8 words sharing one
// xorshift64 value x (odd words x, even words x & 0x0000ffff0000ffff),
// whose repeats are short and near.
func heapPages(b []byte) {
	s := uint64(0x9e3779b97f4a7c15)
	for g := 0; g+64 <= len(b); g += 64 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		for i := 0; i < 8; i++ {
			v := s
			if i%2 == 0 {
				v &= 0x0000ffff0000ffff
			}
			binary.LittleEndian.PutUint64(b[g+i*8:], v)
		}
	}
}

// stridedPages fills b as the checkpoint benchmark's pages: word i of page
// pg is pg<<32 | i&7, whose repeats only s2.EncodeBetter finds.
func stridedPages(b []byte) {
	for w := 0; w+8 <= len(b); w += 8 {
		pg, i := uint64(w/storage.PageSize), uint64(w%storage.PageSize/8)
		binary.LittleEndian.PutUint64(b[w:], pg<<32|i&7)
	}
}

// TestS2BetterWherePays checks the S2Better encoder's choice on each kind
// of chunk, and that its output decodes to the input.
func TestS2BetterWherePays(t *testing.T) {
	mixed := make([]byte, 512<<10)
	storetest.FillMixed(mixed, 0)
	tests := []struct {
		name   string
		fill   func([]byte)
		better bool // EncodeBetter's output expected, else Encode's
	}{
		{"heap-like, short repeats", heapPages, false},
		{"strided, long repeats", stridedPages, true},
		{"mixed", func(b []byte) { copy(b, mixed) }, true},
		{"small chunk", func(b []byte) { heapPages(b[:8192]) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := make([]byte, 512<<10)
			tc.fill(raw)
			if tc.name == "small chunk" {
				raw = raw[:8192]
			}
			got := storage.EncodeBetterWherePays(raw)
			want := s2.Encode(nil, raw)
			if tc.better {
				want = s2.EncodeBetter(nil, raw)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encodeBetterWherePays = %d bytes, want %d (better %v; Encode %d, EncodeBetter %d)",
					len(got), len(want), tc.better, len(s2.Encode(nil, raw)), len(s2.EncodeBetter(nil, raw)))
			}
			dec, err := s2.Decode(nil, got)
			if err != nil || !bytes.Equal(dec, raw) {
				t.Errorf("decode = %d bytes, %v; want the %d input bytes", len(dec), err, len(raw))
			}
		})
	}
}
