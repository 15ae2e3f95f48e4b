package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func init() {
	// holes: 64 MiB mapped, three pages written (at 0, 32 MiB and the last
	// page) and two runs of 3 pages with a one-page hole at 16 MiB; the
	// rest is never touched. Then it sleeps.
	pausePrograms["holes"] = `#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
	char *p = mmap(0, 64 << 20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	long offs[] = {0, 32 << 20, (64 << 20) - 4096, 16 << 20, (16 << 20) + 4096, (16 << 20) + 3 * 4096};
	for (int i = 0; i < 6; i++) memset(p + offs[i], 0x5a, 4096);
	printf("ready\n"); fflush(stdout);
	for (;;) sleep(1);
}`
}

// TestSavedMemory checks that SavedMemory skips the holes of at least
// minHole bytes, keeps shorter ones, and covers every non-zero page.
func TestSavedMemory(t *testing.T) {
	s := startPauseSandbox(t, "holes")
	s.next(t)
	if _, _, err := s.k.SavedMemory(pageSize); !errors.Is(err, ErrNotPaused) {
		t.Errorf("SavedMemory() while running = %v, want ErrNotPaused", err)
	}
	s.k.Pause()
	defer s.k.Unpause()
	var allocated uint64
	for _, r := range s.k.mf.Allocated() {
		allocated += r.Length()
	}
	present, err := s.k.MemoryRanges()
	if err != nil {
		t.Fatalf("MemoryRanges() = %v", err)
	}
	var presentBytes uint64
	for _, r := range present {
		presentBytes += uint64(len(r.Data))
	}
	for _, minHole := range []uint64{pageSize, 2 * pageSize, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("minHole=%d", minHole), func(t *testing.T) {
			ranges, rd, err := s.k.SavedMemory(minHole)
			if err != nil {
				t.Fatalf("SavedMemory(%d) = %v", minHole, err)
			}
			var total uint64
			for i, r := range ranges {
				if r[0]%pageSize != 0 || r[1]%pageSize != 0 || r[1] == 0 {
					t.Fatalf("range %d = [%#x, +%#x), want page aligned and non-empty", i, r[0], r[1])
				}
				if i > 0 {
					prevEnd := ranges[i-1][0] + ranges[i-1][1]
					if r[0] < prevEnd {
						t.Fatalf("range %d at %#x overlaps or precedes the previous one", i, r[0])
					}
					// Consecutive ranges inside one allocated range are
					// separated by a hole of at least minHole.
					if r[0]-prevEnd < minHole && s.sameAllocation(prevEnd-1, r[0]) {
						t.Errorf("ranges %d and %d separated by %d bytes, less than minHole %d", i-1, i, r[0]-prevEnd, minHole)
					}
				}
				total += r[1]
			}
			// Every present page is covered, and its bytes read back as
			// through the mapping.
			for _, p := range present {
				for off := uint64(0); off < uint64(len(p.Data)); off += pageSize {
					if !covers(ranges, p.Off+off) {
						t.Fatalf("present page %#x is not in SavedMemory(%d)", p.Off+off, minHole)
					}
				}
				got := make([]byte, len(p.Data))
				if _, err := rd.ReadAt(got, int64(p.Off)); err != nil || !bytes.Equal(got, p.Data) {
					t.Fatalf("ReadAt(%#x) = %v, or differs from the mapping", p.Off, err)
				}
				// A view shows the mapping's bytes. Every present page is
				// viewed where each data extent was looked up (a one-page
				// minHole); with longer ones, data after a short hole in
				// the same block is left to ReadAt.
				v := rd.View(int64(p.Off), len(p.Data))
				if (v != nil || minHole == pageSize) && !bytes.Equal(v, p.Data) {
					t.Fatalf("View(%#x, %d) = %d bytes, want the mapping's %d", p.Off, len(p.Data), len(v), len(p.Data))
				}
			}
			// The one-page hole at 16 MiB, alone or with the data around
			// it, is never viewed (it would allocate a page).
			for _, tc := range []struct{ off, n uint64 }{{16<<20 + 2*pageSize, pageSize}, {16 << 20, 4 * pageSize}, {8 << 20, pageSize}} {
				if v := rd.View(int64(tc.off), int(tc.n)); v != nil {
					t.Errorf("View(%#x, %d) = %d bytes, want nil (a hole)", tc.off, tc.n, len(v))
				}
			}
			if minHole == pageSize && total != presentBytes {
				t.Errorf("SavedMemory(page) = %d bytes, want the %d present", total, presentBytes)
			}
			// The 64 MiB region is almost all hole: SavedMemory must leave
			// out nearly all of it.
			if total > allocated-60<<20 {
				t.Errorf("SavedMemory(%d) = %d bytes of %d allocated, want the big holes left out", minHole, total, allocated)
			}
		})
	}
	// With a two-page minimum hole the one-page hole at 16 MiB is kept:
	// the pages written around it come back as one range.
	ranges, _, err := s.k.SavedMemory(2 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	var merged bool
	for _, r := range ranges {
		merged = merged || r[1] >= 4*pageSize && bytes.Equal(s.readPages(t, r[0], 1), bytes.Repeat([]byte{0x5a}, pageSize)) &&
			bytes.Equal(s.readPages(t, r[0]+pageSize, 1), bytes.Repeat([]byte{0x5a}, pageSize)) &&
			bytes.Equal(s.readPages(t, r[0]+2*pageSize, 1), make([]byte, pageSize))
	}
	if !merged {
		t.Errorf("SavedMemory(2 pages) = %v, want the run with a one-page hole in one range", ranges)
	}
}

func covers(ranges [][2]uint64, off uint64) bool {
	for _, r := range ranges {
		if off >= r[0] && off < r[0]+r[1] {
			return true
		}
	}
	return false
}

// sameAllocation reports whether offsets a and b lie in one allocated range
// of the memory file.
func (s *pauseSandbox) sameAllocation(a, b uint64) bool {
	for _, r := range s.k.mf.Allocated() {
		if a >= r.Start && b < r.End {
			return true
		}
	}
	return false
}

func (s *pauseSandbox) readPages(t *testing.T, off uint64, n int) []byte {
	t.Helper()
	b := make([]byte, n*pageSize)
	if _, err := (MemoryReader{s.k.mf}).ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSavedMemoryHead checks SavedMemoryHead: the allocated ranges below
// its limit, read back as through the mapping, holes read as zeros and
// never viewed (a view of one would allocate it).
func TestSavedMemoryHead(t *testing.T) {
	s := startPauseSandbox(t, "holes")
	s.next(t)
	if _, _, err := s.k.SavedMemoryHead(1 << 30); !errors.Is(err, ErrNotPaused) {
		t.Errorf("SavedMemoryHead() while running = %v, want ErrNotPaused", err)
	}
	s.k.Pause()
	defer s.k.Unpause()
	present, err := s.k.MemoryRanges()
	if err != nil {
		t.Fatalf("MemoryRanges() = %v", err)
	}
	end := present[len(present)-1].Off + uint64(len(present[len(present)-1].Data))
	hole := s.holeNear(t, present)
	for _, limit := range []uint64{0, pageSize, hole, hole + pageSize, end, 1 << 40} {
		t.Run(fmt.Sprintf("limit=%#x", limit), func(t *testing.T) {
			ranges, rd, err := s.k.SavedMemoryHead(limit)
			if err != nil {
				t.Fatalf("SavedMemoryHead(%#x) = %v", limit, err)
			}
			var want [][2]uint64
			for _, r := range s.k.mf.Allocated() {
				if r.Start < limit {
					want = append(want, [2]uint64{r.Start, min(r.End, limit) - r.Start})
				}
			}
			if fmt.Sprint(ranges) != fmt.Sprint(want) {
				t.Fatalf("SavedMemoryHead(%#x) = %v, want %v", limit, ranges, want)
			}
			for _, p := range present {
				if p.Off+uint64(len(p.Data)) > limit {
					continue
				}
				if !covers(ranges, p.Off) {
					t.Fatalf("present page %#x is not in SavedMemoryHead(%#x)", p.Off, limit)
				}
				got := make([]byte, len(p.Data))
				if _, err := rd.ReadAt(got, int64(p.Off)); err != nil || !bytes.Equal(got, p.Data) {
					t.Fatalf("ReadAt(%#x) = %v, or differs from the mapping", p.Off, err)
				}
				if v := rd.View(int64(p.Off), len(p.Data)); !bytes.Equal(v, p.Data) {
					t.Fatalf("View(%#x, %d) = %d bytes, want the mapping's %d", p.Off, len(p.Data), len(v), len(p.Data))
				}
			}
			for _, tc := range []struct{ off, n uint64 }{{hole, pageSize}, {hole - pageSize, 2 * pageSize}, {hole, 3 * pageSize}} {
				if v := rd.View(int64(tc.off), int(tc.n)); v != nil {
					t.Errorf("View(%#x, %d) = %d bytes, want nil (a hole)", tc.off, tc.n, len(v))
				}
			}
			got := make([]byte, pageSize)
			if _, err := rd.ReadAt(got, int64(hole)); err != nil || !bytes.Equal(got, make([]byte, pageSize)) {
				t.Errorf("ReadAt(hole %#x) = %v, or not zeros", hole, err)
			}
		})
	}
	// Nothing above allocated the hole.
	after, err := s.k.MemoryRanges()
	if err != nil {
		t.Fatalf("MemoryRanges() = %v", err)
	}
	if got := s.holeNear(t, after); got != hole {
		t.Errorf("the hole at %#x is gone (next hole %#x)", hole, got)
	}
}

// holeNear returns the one-page hole of the holes program: the page after
// the second present page of its run of three written pages at 16 MiB.
func (s *pauseSandbox) holeNear(t *testing.T, present []MemoryRange) uint64 {
	t.Helper()
	for _, p := range present {
		if len(p.Data) != 2*pageSize || !bytes.Equal(p.Data, bytes.Repeat([]byte{0x5a}, 2*pageSize)) {
			continue
		}
		h := p.Off + 2*pageSize
		if covers(rangesOf(present), h) || !covers(rangesOf(present), h+pageSize) {
			continue
		}
		return h
	}
	t.Fatalf("no one-page hole after two written pages among %d present runs", len(present))
	return 0
}

func rangesOf(present []MemoryRange) [][2]uint64 {
	var out [][2]uint64
	for _, p := range present {
		out = append(out, [2]uint64{p.Off, uint64(len(p.Data))})
	}
	return out
}
