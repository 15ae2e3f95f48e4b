package runner

import (
	"reflect"
	"testing"

	"snapshotter/storage"
)

// TestPlanIncremental: what a save against a tracked parent reads, reuses
// and patches, span by span.
func TestPlanIncremental(t *testing.T) {
	const mib, pg = storage.ChunkSpan, storage.PageSize
	chunk := func(off, span uint64) storage.Chunk {
		return storage.Chunk{Offset: off, Span: uint32(span)}
	}
	patch := func(off uint64, pages ...int) storage.Chunk {
		c := storage.Chunk{Offset: off, Flags: 2} // chunkPatch
		last := 0
		for _, p := range pages {
			c.Present[p/8] |= 1 << (p % 8)
			last = max(last, p)
		}
		c.Span = uint32(last+1) * pg
		return c
	}
	// The parent: spans 0, 1 and 2 each one whole chunk, span 1 patched
	// at its pages 2 and 3, span 3 none (it was zero).
	parent := []storage.Chunk{chunk(0, mib), chunk(mib, mib), patch(mib+2*pg, 0, 1), chunk(2*mib, mib)}
	alloc := [][2]uint64{{0, 4 * mib}}
	for _, tc := range []struct {
		name   string
		alloc  [][2]uint64
		dirty  [][2]uint64
		parent []storage.Chunk
		want   []planOp
	}{
		{"no parent", alloc, [][2]uint64{{0, pg}}, nil, []planOp{{read: alloc}}},
		{"nothing written", alloc, [][2]uint64{}, parent, []planOp{
			{reuse: parent[0:1]}, {reuse: parent[1:3]}, {reuse: parent[3:4]}}},
		{"a page of span 0", alloc, [][2]uint64{{5 * pg, pg}}, parent, []planOp{
			{base: &parent[0], patch: [][2]uint64{{5 * pg, pg}}}, {reuse: parent[1:3]}, {reuse: parent[3:4]}}},
		{"span 1 again: one patch", alloc, [][2]uint64{{mib + 9*pg, 2 * pg}}, parent, []planOp{
			{reuse: parent[0:1]},
			{base: &parent[1], patch: [][2]uint64{{mib + 2*pg, 2 * pg}, {mib + 9*pg, 2 * pg}}},
			{reuse: parent[3:4]}}},
		{"most of span 2", alloc, [][2]uint64{{2 * mib, mib / 2 * 3 / 2}}, parent, []planOp{
			{reuse: parent[0:1]}, {reuse: parent[1:3]}, {read: [][2]uint64{{2 * mib, mib}}}}},
		{"span 3, new", alloc, [][2]uint64{{3*mib + pg, pg}}, parent, []planOp{
			{reuse: parent[0:1]}, {reuse: parent[1:3]}, {reuse: parent[3:4]}, {read: [][2]uint64{{3 * mib, mib}}}}},
		{"span 2 freed at the end", [][2]uint64{{0, 2 * mib}}, [][2]uint64{{2 * mib, mib}}, parent, []planOp{
			{reuse: parent[0:1]}, {reuse: parent[1:3]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planIncremental(tc.alloc, tc.dirty, tc.parent).ops
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("planIncremental ops =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestSnapshotCover: a live save's snapshot keeps all memory, or, against
// a parent, the chunk spans holding a dirty page (below the memory size).
func TestSnapshotCover(t *testing.T) {
	const span = storage.ChunkSpan
	parent := []storage.Chunk{{Offset: 0, Span: span}}
	for _, tc := range []struct {
		name   string
		dirty  [][2]uint64
		parent []storage.Chunk
		size   uint64
		want   [][2]uint64
	}{
		{"no parent", [][2]uint64{{4096, 4096}}, nil, 3 * span, [][2]uint64{{0, 3 * span}}},
		{"tracking was off", nil, parent, 3 * span, [][2]uint64{{0, 3 * span}}},
		{"empty memory", nil, nil, 0, nil},
		{"nothing written", [][2]uint64{}, parent, 3 * span, nil},
		{"one page", [][2]uint64{{span + 4096, 4096}}, parent, 3 * span, [][2]uint64{{span, span}}},
		{"two in one span, one in the next", [][2]uint64{{4096, 4096}, {8192, 4096}, {span, 4096}}, parent, 3 * span, [][2]uint64{{0, 2 * span}}},
		{"spans apart", [][2]uint64{{0, 4096}, {2 * span, 4096}}, parent, 3 * span, [][2]uint64{{0, span}, {2 * span, span}}},
		{"last span short", [][2]uint64{{2 * span, 4096}}, parent, 2*span + 8192, [][2]uint64{{2 * span, 8192}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := snapshotCover(tc.dirty, tc.parent, tc.size); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("snapshotCover(%v) = %v, want %v", tc.dirty, got, tc.want)
			}
		})
	}
}
