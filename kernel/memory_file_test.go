package kernel

import (
	"errors"
	"slices"
	"testing"
)

func newTestMemoryFile(t testing.TB) *MemoryFile {
	t.Helper()
	f, err := NewMemoryFile("test-memory")
	if err != nil {
		t.Fatalf("NewMemoryFile: %v", err)
	}
	t.Cleanup(f.Release)
	return f
}

func TestMemoryFileAllocateFree(t *testing.T) {
	f := newTestMemoryFile(t)
	f.keepMax = 0 // first fit over decommitted pages (kept ones: TestMemoryFileKeptPages)
	a, err := f.Allocate(1)
	if err != nil {
		t.Fatalf("Allocate(1): %v", err)
	}
	if a != (fileRange{0, pageSize}) {
		t.Errorf("Allocate(1) = %v, want [0, %#x)", a, pageSize)
	}
	b, err := f.Allocate(3 * pageSize)
	if err != nil {
		t.Fatalf("Allocate(3 pages): %v", err)
	}
	if b != (fileRange{pageSize, 4 * pageSize}) {
		t.Errorf("Allocate(3 pages) = %v, want [%#x, %#x)", b, pageSize, 4*pageSize)
	}
	if got := f.Size(); got != memoryFileGrowth {
		t.Errorf("Size() = %d, want %d", got, memoryFileGrowth)
	}

	// Data written through the sentry mapping is there; a freed and
	// reallocated range reads as zero.
	mem, err := f.Bytes(b.Start, b.Length())
	if err != nil {
		t.Fatalf("Bytes(%v): %v", b, err)
	}
	for i := range mem {
		mem[i] = 0xAB
	}
	f.Free(b)
	c, err := f.Allocate(2 * pageSize)
	if err != nil {
		t.Fatalf("Allocate(2 pages): %v", err)
	}
	if c.Start != b.Start {
		t.Errorf("Allocate after Free = %v, want first fit at %#x", c, b.Start)
	}
	mem, _ = f.Bytes(c.Start, c.Length())
	for i, v := range mem {
		if v != 0 {
			t.Fatalf("reallocated byte %d = %#x, want 0", i, v)
		}
	}

	wantAlloc := []fileRange{{0, 3 * pageSize}}
	if got := f.Allocated(); !slices.Equal(got, wantAlloc) {
		t.Errorf("Allocated() = %v, want %v", got, wantAlloc)
	}
	f.Free(a)
	f.Free(c)
	if got := f.Allocated(); len(got) != 0 {
		t.Errorf("Allocated() after freeing all = %v, want none", got)
	}
	if len(f.free) != 1 {
		t.Errorf("free list = %v, want one merged range", f.free)
	}
}

func TestMemoryFileMergeOrders(t *testing.T) {
	tests := []struct {
		name  string
		order []int
	}{
		{"ascending", []int{0, 1, 2, 3}},
		{"descending", []int{3, 2, 1, 0}},
		{"middle first", []int{1, 2, 0, 3}},
		{"outside in", []int{0, 3, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestMemoryFile(t)
			var rs []fileRange
			for range 4 {
				r, err := f.Allocate(pageSize)
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, r)
			}
			for _, i := range tc.order {
				f.Free(rs[i])
			}
			if len(f.free) != 1 || f.free[0] != (fileRange{0, f.Size()}) {
				t.Errorf("free list after freeing %v = %v, want [{0 %d}]", tc.order, f.free, f.Size())
			}
		})
	}
}

func TestMemoryFileGrowsBeyondStep(t *testing.T) {
	f := newTestMemoryFile(t)
	big := uint64(3*memoryFileGrowth + pageSize)
	r, err := f.Allocate(big)
	if err != nil {
		t.Fatalf("Allocate(%d): %v", big, err)
	}
	if r.Length() != big || f.Size() < big {
		t.Errorf("Allocate(%d) = %v with size %d", big, r, f.Size())
	}
	mem, err := f.Bytes(r.End-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	mem[0] = 1 // Must not SIGBUS: the file covers the range.
	if _, err := f.Allocate(memoryFileReserve); !errors.Is(err, ErrNoMemory) {
		t.Errorf("Allocate(reserve) error = %v, want ErrNoMemory", err)
	}
	if _, err := f.Bytes(f.Size(), 1); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Bytes(size, 1) error = %v, want ErrBadAddress", err)
	}
}

func TestMemoryFileDecommit(t *testing.T) {
	f := newTestMemoryFile(t)
	r, _ := f.Allocate(2 * pageSize)
	mem, _ := f.Bytes(r.Start, r.Length())
	mem[0], mem[pageSize] = 7, 9
	f.Decommit(fileRange{r.Start, r.Start + pageSize})
	if mem[0] != 0 || mem[pageSize] != 9 {
		t.Errorf("after Decommit of first page: bytes = %d, %d, want 0, 9", mem[0], mem[pageSize])
	}
}

// TestMemoryFileCopyRange: copyRange copies every byte of a multi-page
// range to another range of the file, leaves the source alone, and refuses
// a destination beyond the file.
func TestMemoryFileCopyRange(t *testing.T) {
	f := newTestMemoryFile(t)
	const n = 300 * pageSize // more than one copy_file_range may do at once on some hosts
	src, err := f.Allocate(n)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := f.Allocate(n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Bytes(src.Start, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = byte(i*7 + i/pageSize)
	}
	want := slices.Clone(b)
	if err := f.copyRange(dst.Start, src); err != nil {
		t.Fatalf("copyRange = %v", err)
	}
	got, err := f.Bytes(dst.Start, n)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("copied range differs from the source")
	}
	if !slices.Equal(b, want) {
		t.Errorf("source changed by the copy")
	}
	if err := f.copyRange(f.Size(), src); !errors.Is(err, ErrBadAddress) {
		t.Errorf("copyRange beyond the file = %v, want ErrBadAddress", err)
	}
}

// TestAllocateWaitsForFreeing checks that memory an exited process gives
// back after its parent was told (MM.release) is waited for by an
// allocation that would pass the limit without it, and by Allocated.
func TestAllocateWaitsForFreeing(t *testing.T) {
	f := newTestMemoryFile(t)
	f.setLimit(4 * pageSize)
	held, err := f.Allocate(4 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	f.startFreeing()
	got := make(chan error, 1)
	go func() {
		_, err := f.Allocate(2 * pageSize)
		got <- err
	}()
	f.doneFreeing([]fileRange{held})
	if err := <-got; err != nil {
		t.Errorf("Allocate while the limit's memory was being freed = %v, want it to wait and succeed", err)
	}
	f.startFreeing()
	done := make(chan []fileRange, 1)
	go func() { done <- f.Allocated() }()
	f.doneFreeing(nil)
	if rs := <-done; len(rs) != 1 || rs[0].Length() != 2*pageSize {
		t.Errorf("Allocated after the freeing = %v, want the one 2-page range", rs)
	}
	if _, err := f.Allocate(3 * pageSize); err == nil {
		t.Errorf("Allocate past the limit with nothing being freed = nil error, want ErrNoMemory")
	}
}
