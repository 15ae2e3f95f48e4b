package storage

import (
	"slices"
	"testing"
)

// TestPlanBatches: consecutive chunks are fetched together, but never more
// than batchChunks, batchBytes or a worker's share, so that a small image
// is decoded by every worker; every chunk is in exactly one batch.
func TestPlanBatches(t *testing.T) {
	chunksOf := func(n int, stored uint32) []Chunk {
		cs := make([]Chunk, n)
		for i := range cs {
			cs[i] = Chunk{Stored: uint64(i) * uint64(stored), StoredLen: stored}
		}
		return cs
	}
	tests := []struct {
		name        string
		chunks      []Chunk
		from, to    int
		workers     int
		wantBatches int
		wantBiggest uint64
	}{
		{"small image spread over 4 workers", chunksOf(16, 400<<10), 0, 16, 4, 4, 4 * 400 << 10},
		{"fewer chunks than workers", chunksOf(3, 1<<20), 0, 3, 4, 3, 1 << 20},
		{"many small chunks: batchChunks", chunksOf(1000, 10<<10), 0, 1000, 4, 1000/batchChunks + 1, batchChunks * 10 << 10},
		{"big chunks: batchBytes", chunksOf(64, 3<<20), 0, 64, 4, 32, 6 << 20},
		{"a sub-range", chunksOf(16, 1<<10), 4, 12, 2, 2, 4 << 10},
		{"empty", chunksOf(4, 1<<10), 2, 2, 4, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batches, biggest := planBatches(tc.chunks, tc.from, tc.to, tc.workers)
			if len(batches) != tc.wantBatches || biggest != tc.wantBiggest {
				t.Errorf("planBatches = %d batches, biggest %d; want %d, %d (%v)", len(batches), biggest, tc.wantBatches, tc.wantBiggest, batches)
			}
			next := tc.from
			for _, b := range batches {
				if b.from != next || b.to <= b.from {
					t.Fatalf("batches %v: not consecutive from %d", batches, tc.from)
				}
				stored := tc.chunks[b.to-1].Stored + uint64(tc.chunks[b.to-1].StoredLen) - tc.chunks[b.from].Stored
				if b.to-b.from > batchChunks || (b.to-b.from > 1 && stored > batchBytes) {
					t.Errorf("batch %v: %d chunks, %d bytes, over the limits", b, b.to-b.from, stored)
				}
				next = b.to
			}
			if next != tc.to {
				t.Errorf("batches %v end at %d, want %d", batches, next, tc.to)
			}
		})
	}
}

// TestSingleChunks: a content-addressed image's batches become one batch
// per chunk, in order, and the biggest is the largest chunk, not a batch.
func TestSingleChunks(t *testing.T) {
	chunks := []Chunk{{StoredLen: 10}, {Stored: 10, StoredLen: 30}, {Stored: 40, StoredLen: 20}, {Stored: 60, StoredLen: 5}}
	tests := []struct {
		name        string
		batches     []batch
		want        []batch
		wantBiggest uint64
	}{
		{"one batch", []batch{{0, 4}}, []batch{{0, 1}, {1, 2}, {2, 3}, {3, 4}}, 30},
		{"two batches", []batch{{0, 1}, {2, 4}}, []batch{{0, 1}, {2, 3}, {3, 4}}, 20},
		{"none", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, biggest := singleChunks(chunks, tc.batches)
			if !slices.Equal(got, tc.want) || biggest != tc.wantBiggest {
				t.Errorf("singleChunks(%v) = %v, %d; want %v, %d", tc.batches, got, biggest, tc.want, tc.wantBiggest)
			}
		})
	}
}
