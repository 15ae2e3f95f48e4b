package kernel

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// sharedModel is the per-page count of extra owners that sharedRuns keep
// in runs, for checking them.
type sharedModel map[uint64]uint32

func (m sharedModel) share(r fileRange) {
	for p := r.Start; p < r.End; p += pageSize {
		m[p]++
	}
}

// release drops one owner of r's pages and returns those it frees.
func (m sharedModel) release(r fileRange) []uint64 {
	var freed []uint64
	for p := r.Start; p < r.End; p += pageSize {
		if m[p] == 0 {
			freed = append(freed, p)
			continue
		}
		if m[p]--; m[p] == 0 {
			delete(m, p)
		}
	}
	return freed
}

func (m sharedModel) sole(r fileRange) bool {
	for p := r.Start; p < r.End; p += pageSize {
		if m[p] != 0 {
			return false
		}
	}
	return true
}

func pagesOf(rs []fileRange) []uint64 {
	var out []uint64
	for _, r := range rs {
		for p := r.Start; p < r.End; p += pageSize {
			out = append(out, p)
		}
	}
	return out
}

// checkRuns fails t unless f's runs are sorted, disjoint, positive,
// merged where they could be, and hold exactly m's counts.
func checkRuns(t *testing.T, f *MemoryFile, m sharedModel) {
	t.Helper()
	got := sharedModel{}
	for i, run := range f.sharedRuns {
		if run.N == 0 || run.End <= run.Start || (i > 0 && f.sharedRuns[i-1].End > run.Start) {
			t.Fatalf("runs %v: run %d is empty, zero or out of order", f.sharedRuns, i)
		}
		if i > 0 && f.sharedRuns[i-1].End == run.Start && f.sharedRuns[i-1].N == run.N {
			t.Fatalf("runs %v: runs %d and %d not merged", f.sharedRuns, i-1, i)
		}
		for p := run.Start; p < run.End; p += pageSize {
			got[p] = run.N
		}
	}
	if len(got) != len(m) {
		t.Fatalf("runs hold %d pages, want %d", len(got), len(m))
	}
	for p, n := range m {
		if got[p] != n {
			t.Fatalf("page %#x: %d extra owners, want %d", p, got[p], n)
		}
	}
}

func TestSharedRuns(t *testing.T) {
	pg := func(a, b uint64) fileRange { return fileRange{a * pageSize, b * pageSize} }
	type op struct {
		share bool
		r     fileRange
		freed []fileRange // what a release frees
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"never shared", []op{{false, pg(0, 4), []fileRange{pg(0, 4)}}}},
		{"share then release twice", []op{
			{true, pg(0, 4), nil},
			{false, pg(0, 4), nil},
			{false, pg(0, 4), []fileRange{pg(0, 4)}},
		}},
		{"overlapping shares", []op{
			{true, pg(0, 8), nil},
			{true, pg(4, 12), nil},
			{false, pg(2, 10), nil},
			{false, pg(0, 12), []fileRange{pg(2, 4), pg(8, 10)}},
		}},
		{"release in pieces", []op{
			{true, pg(10, 20), nil},
			{false, pg(12, 14), nil},
			{false, pg(5, 15), []fileRange{pg(5, 10), pg(12, 14)}},
			{false, pg(15, 20), nil},
			{false, pg(14, 20), []fileRange{pg(14, 20)}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestMemoryFile(t)
			m := sharedModel{}
			for i, o := range tc.ops {
				if o.share {
					f.Share(o.r)
					m.share(o.r)
				} else {
					var toFree []fileRange
					f.releaseRangeDeferred(o.r, &toFree)
					m.release(o.r)
					if !slices.Equal(toFree, o.freed) {
						t.Errorf("op %d: release of %v frees %v, want %v", i, o.r, toFree, o.freed)
					}
				}
				checkRuns(t, f, m)
			}
		})
	}
}

// TestSharedRunsRandom checks runs against per-page counts over random
// shares, releases and sole-owner questions.
func TestSharedRunsRandom(t *testing.T) {
	f := newTestMemoryFile(t)
	m := sharedModel{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		a := uint64(rng.IntN(64))
		b := a + 1 + uint64(rng.IntN(16))
		r := fileRange{a * pageSize, b * pageSize}
		switch rng.IntN(3) {
		case 0:
			f.Share(r)
			m.share(r)
		case 1:
			var toFree []fileRange
			f.releaseRangeDeferred(r, &toFree)
			if got, want := pagesOf(toFree), m.release(r); !slices.Equal(got, want) {
				t.Fatalf("op %d: release of %v frees pages %v, want %v", i, r, got, want)
			}
		default:
			if got, want := f.soleOwner(r), m.sole(r); got != want {
				t.Fatalf("op %d: soleOwner(%v) = %v, want %v", i, r, got, want)
			}
		}
		checkRuns(t, f, m)
	}
}

// TestSharedFromPages checks that counts of an image from before runs
// (per page) load as runs.
func TestSharedFromPages(t *testing.T) {
	f := &MemoryFile{shared: map[uint64]uint32{
		0: 1, pageSize: 1, 2 * pageSize: 2, 5 * pageSize: 2, 6 * pageSize: 2,
	}}
	f.sharedFromPages()
	want := []sharedRun{{0, 2 * pageSize, 1}, {2 * pageSize, 3 * pageSize, 2}, {5 * pageSize, 7 * pageSize, 2}}
	if !slices.Equal(f.sharedRuns, want) || f.shared != nil {
		t.Errorf("runs = %v (per-page map %v), want %v and no map", f.sharedRuns, f.shared, want)
	}
}
