package kernel

import (
	"bytes"
	"slices"
	"testing"
)

// dataPages returns, for each page of r, whether the memory file holds
// data there (SEEK_DATA), not a hole.
func dataPages(t *testing.T, f *MemoryFile, r fileRange) []bool {
	t.Helper()
	out := make([]bool, r.Length()/pageSize)
	if err := f.forEachData(r, func(d fileRange) error {
		for off := d.Start; off < d.End; off += pageSize {
			out[(off-r.Start)/pageSize] = true
		}
		return nil
	}); err != nil {
		t.Fatalf("forEachData(%v): %v", r, err)
	}
	return out
}

// TestMemoryFileKeptPages: a copy into freed pages kept with their old
// data (copyOver), or into fresh ones (copyData), reads as its source,
// the source's holes as zeros, and leaves those holes unallocated; the
// copy takes kept pages whenever they fit.
func TestMemoryFileKeptPages(t *testing.T) {
	const n = 16
	for _, tc := range []struct {
		name string
		data []int // the source's pages written; the rest are holes
		kept bool  // free a range of old data first, to be copied over
	}{
		{"dense, over kept pages", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, true},
		{"holes at both ends and inside, over kept pages", []int{3, 4, 9, 12}, true},
		{"only holes, over kept pages", nil, true},
		{"holes, fresh pages", []int{3, 4, 9, 12}, false},
		{"only holes, fresh pages", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestMemoryFile(t)
			src, err := f.Allocate(n * pageSize)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, n*pageSize)
			for _, p := range tc.data {
				for i := p * pageSize; i < (p+1)*pageSize; i++ {
					want[i] = byte(i*7 + p)
				}
				if err := f.writeAt(want[p*pageSize:(p+1)*pageSize], src.Start+uint64(p)*pageSize); err != nil {
					t.Fatal(err)
				}
			}
			var old fileRange
			if tc.kept {
				if old, err = f.Allocate(n * pageSize); err != nil {
					t.Fatal(err)
				}
				if err := f.writeAt(bytes.Repeat([]byte{0xAB}, n*pageSize), old.Start); err != nil {
					t.Fatal(err)
				}
				f.Free(old)
			}
			dst, over, err := f.allocateForCopy(n * pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if over != tc.kept || (tc.kept && dst != old) {
				t.Errorf("allocateForCopy = %v, over %v; want over %v (the kept range %v)", dst, over, tc.kept, old)
			}
			if err := f.copyInto(dst.Start, src, over); err != nil {
				t.Fatalf("copyInto(%#x, %v, %v) = %v", dst.Start, src, over, err)
			}
			got, err := f.Bytes(dst.Start, n*pageSize)
			if err != nil {
				t.Fatal(err)
			}
			for p := range n {
				if !bytes.Equal(got[p*pageSize:(p+1)*pageSize], want[p*pageSize:(p+1)*pageSize]) {
					t.Errorf("copied page %d = % x..., want % x...", p, got[p*pageSize:p*pageSize+4], want[p*pageSize:p*pageSize+4])
				}
			}
			isData := dataPages(t, f, src)
			for p := range n {
				if isData[p] != slices.Contains(tc.data, p) {
					t.Errorf("source page %d: data %v after the copy, want %v", p, isData[p], slices.Contains(tc.data, p))
				}
			}
		})
	}
}

// TestMemoryFileAllocateKept: Allocate takes a range without kept pages
// when one fits, and otherwise decommits the kept pages of the range it
// takes, so that it reads as zero; kept pages are free to Allocated.
func TestMemoryFileAllocateKept(t *testing.T) {
	f := newTestMemoryFile(t)
	all, err := f.Allocate(memoryFileGrowth) // the whole file: no other free range
	if err != nil {
		t.Fatal(err)
	}
	old := fileRange{all.Start + 4*pageSize, all.Start + 8*pageSize}
	if err := f.writeAt(bytes.Repeat([]byte{0xAB}, int(old.Length())), old.Start); err != nil {
		t.Fatal(err)
	}
	f.Free(old)
	if f.keptBytes != old.Length() || !slices.Equal(f.kept, []fileRange{old}) {
		t.Fatalf("after Free(%v): kept %v (%d bytes), want it kept", old, f.kept, f.keptBytes)
	}
	if got, want := f.Allocated(), []fileRange{{all.Start, old.Start}, {old.End, all.End}}; !slices.Equal(got, want) {
		t.Errorf("Allocated() with kept pages = %v, want %v", got, want)
	}

	r, err := f.Allocate(2 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if r != (fileRange{old.Start, old.Start + 2*pageSize}) {
		t.Errorf("Allocate(2 pages) with only kept pages free = %v, want the first fit %#x", r, old.Start)
	}
	got, err := f.Bytes(r.Start, r.Length())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, r.Length())) {
		t.Errorf("Allocate(2 pages) over kept pages reads % x..., want zeros", got[:4])
	}
	if want := []fileRange{{r.End, old.End}}; !slices.Equal(f.kept, want) || f.keptBytes != 2*pageSize {
		t.Errorf("kept after the allocation = %v (%d bytes), want %v", f.kept, f.keptBytes, want)
	}

	// With room elsewhere, Allocate leaves kept pages for copies.
	g := newTestMemoryFile(t)
	a, err := g.Allocate(4 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Allocate(pageSize); err != nil { // a guard, kept allocated
		t.Fatal(err)
	}
	if err := g.writeAt(bytes.Repeat([]byte{0xAB}, int(a.Length())), a.Start); err != nil {
		t.Fatal(err)
	}
	g.Free(a)
	if r, err = g.Allocate(2 * pageSize); err != nil {
		t.Fatal(err)
	}
	if r.Start < a.End && a.Start < r.End {
		t.Errorf("Allocate(2 pages) = %v, over the kept %v with other free ranges", r, a)
	}
}

// TestMemoryFileCopyOverKeptAndHoles: a copy longer than any run of kept
// pages takes a free range that starts with one (the rest holes), and
// reads as its source.
func TestMemoryFileCopyOverKeptAndHoles(t *testing.T) {
	f := newTestMemoryFile(t)
	const n = 8
	src, err := f.Allocate(n * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{'s'}, n*pageSize)
	if err := f.writeAt(want, src.Start); err != nil {
		t.Fatal(err)
	}
	old, err := f.Allocate(n * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeAt(bytes.Repeat([]byte{0xAB}, 3*pageSize), old.Start); err != nil { // the rest are holes
		t.Fatal(err)
	}
	f.Free(old)
	dst, over, err := f.allocateForCopy(n * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if !over || dst != old {
		t.Fatalf("allocateForCopy(%d pages) = %v, over %v; want %v over its 3 kept pages", n, dst, over, old)
	}
	if len(f.kept) != 0 || f.keptBytes != 0 {
		t.Errorf("kept after the allocation = %v (%d bytes), want none", f.kept, f.keptBytes)
	}
	if err := f.copyInto(dst.Start, src, over); err != nil {
		t.Fatal(err)
	}
	got, err := f.Bytes(dst.Start, dst.Length())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("copy over 3 kept pages and 5 holes reads % x... at page 0, % x... at page 7, want the source's bytes", got[:4], got[7*pageSize:7*pageSize+4])
	}
}

// TestMemoryFileKeepsAtMost: Free keeps no more than keepMax bytes of
// pages and decommits the rest.
func TestMemoryFileKeepsAtMost(t *testing.T) {
	f := newTestMemoryFile(t)
	f.keepMax = 3 * pageSize
	r, err := f.Allocate(8 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeAt(bytes.Repeat([]byte{1}, int(r.Length())), r.Start); err != nil {
		t.Fatal(err)
	}
	f.Free(r)
	if f.keptBytes != 3*pageSize {
		t.Errorf("kept %d bytes, want %d", f.keptBytes, 3*pageSize)
	}
	isData := dataPages(t, f, r)
	for p, d := range isData {
		if want := p < 3; d != want {
			t.Errorf("freed page %d holds data %v, want %v", p, d, want)
		}
	}
}

// TestMemoryFileKeepsDataPages: Free keeps the pages of a range that hold
// data, not its holes (a copy over them would allocate them).
func TestMemoryFileKeepsDataPages(t *testing.T) {
	f := newTestMemoryFile(t)
	r, err := f.Allocate(8 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint64{1, 2, 5} {
		if err := f.writeAt([]byte{1}, r.Start+p*pageSize); err != nil {
			t.Fatal(err)
		}
	}
	f.Free(r)
	want := []fileRange{{r.Start + pageSize, r.Start + 3*pageSize}, {r.Start + 5*pageSize, r.Start + 6*pageSize}}
	if !slices.Equal(f.kept, want) || f.keptBytes != 3*pageSize {
		t.Errorf("kept after freeing %v with pages 1, 2 and 5 written = %v (%d bytes), want %v", r, f.kept, f.keptBytes, want)
	}
}

// TestMemoryFileKeepsNoneWhileTracking: while dirty tracking is on, Free
// decommits every page (a migration round sends them as zeros), and
// records them as written.
func TestMemoryFileKeepsNoneWhileTracking(t *testing.T) {
	f := newTestMemoryFile(t)
	r, err := f.Allocate(4 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeAt(bytes.Repeat([]byte{1}, int(r.Length())), r.Start); err != nil {
		t.Fatal(err)
	}
	f.dirty.on.Store(true)
	f.Free(r)
	if len(f.kept) != 0 || f.keptBytes != 0 {
		t.Errorf("kept while tracking = %v (%d bytes), want none", f.kept, f.keptBytes)
	}
	for p, d := range dataPages(t, f, r) {
		if d {
			t.Errorf("freed page %d holds data while tracking, want a hole", p)
		}
		if !f.isDirty(r.Start + uint64(p)*pageSize) {
			t.Errorf("freed page %d not recorded as written while tracking", p)
		}
	}
}
