package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"snapshotter/platform"
)

func init() {
	// pagewriter: maps 64 pages and prints "ready ADDR"; then for each line
	// of stdin "w P V" writes byte V over page P itself, "r P V" has the
	// sentry write it (read from a pipe holding a page of V), "f P V"
	// forks a child that writes page P (its copy) and exits; each
	// answered with "done".
	pausePrograms["pagewriter"] = `#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
	char *p = mmap(0, 64 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 64; i++) memset(p + i * 4096, 1, 4096);
	int fds[2];
	if (pipe(fds) != 0) return 2;
	static char page[4096];
	printf("ready %lx\n", (unsigned long)p); fflush(stdout);
	char cmd; int pg, v;
	while (scanf(" %c %d %d", &cmd, &pg, &v) == 3) {
		if (pg < 0 || pg >= 64) return 2;
		if (cmd == 'w') memset(p + pg * 4096, v, 4096);
		if (cmd == 'r') {
			memset(page, v, sizeof page);
			if (write(fds[1], page, sizeof page) != sizeof page) return 2;
			if (read(fds[0], p + pg * 4096, 4096) != 4096) return 2;
		}
		if (cmd == 'f') {
			pid_t c = fork();
			if (c == 0) { memset(p + pg * 4096, v, 4096); _exit(0); }
			waitpid(c, 0, 0);
		}
		printf("done\n"); fflush(stdout);
	}
	return 0;
}`
}

// pageWriter is the pagewriter program under a kernel.
type pageWriter struct {
	*pauseSandbox
	base uint64
}

func startPageWriter(t *testing.T) *pageWriter {
	s := startPauseSandbox(t, "pagewriter")
	line := s.next(t)
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "ready" {
		t.Fatalf("pagewriter said %q, want ready ADDR", line)
	}
	base, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		t.Fatalf("pagewriter address %q: %v", f[1], err)
	}
	return &pageWriter{pauseSandbox: s, base: base}
}

// do sends one command and waits for it to be done.
func (w *pageWriter) do(t *testing.T, cmd string, page, val int) {
	t.Helper()
	fmt.Fprintf(w.stdin, "%s %d %d\n", cmd, page, val)
	if l := w.next(t); l != "done" {
		t.Fatalf("%s %d %d: program said %q", cmd, page, val, l)
	}
}

// offsetOf returns the memory file offset that page of the region maps
// now (copy on write may move it).
func (w *pageWriter) offsetOf(t *testing.T, page int) uint64 {
	t.Helper()
	mm := initTask(w.k).tg.mm
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	addr := w.base + uint64(page)*pageSize
	v := mm.vmaAtLocked(addr)
	if v == nil {
		t.Fatalf("no vma at %#x", addr)
	}
	return v.Off + (addr - v.Start)
}

// prepareTake protects memory ahead of the next take, while the program
// runs.
func (w *pageWriter) prepareTake(t *testing.T) {
	t.Helper()
	if _, err := w.k.PrepareTake(); err != nil {
		t.Fatalf("PrepareTake() = %v", err)
	}
}

// takeDirty pauses the kernel, takes the dirty set and resumes it.
func (w *pageWriter) takeDirty(t *testing.T) [][2]uint64 {
	t.Helper()
	w.k.Pause()
	defer w.k.Unpause()
	d, err := w.k.TakeDirty()
	if err != nil {
		t.Fatalf("TakeDirty() = %v", err)
	}
	return d
}

// TestDirtyTracking: every way a page of the application gets written
// (its own store, a read into it by the sentry, a forked child's copy on
// write) lands in the dirty set, pages not written do not, and each
// TakeDirty starts an empty set.
func TestDirtyTracking(t *testing.T) {
	eachTrackingMode(t, testDirtyTracking)
}

// trackingModes are the two ways dirty tracking learns of the program's
// writes: watching them (userfaultfd) and write permission.
var trackingModes = []struct {
	name  string
	watch bool
}{{"watched", true}, {"permission", false}}

// eachTrackingMode runs test once per tracking mode.
func eachTrackingMode(t *testing.T, test func(t *testing.T, watch bool)) {
	for _, m := range trackingModes {
		t.Run(m.name, func(t *testing.T) {
			defer func(old bool) { watchWrites = old }(watchWrites)
			watchWrites = m.watch
			test(t, m.watch)
		})
	}
}

// checkWatching fails t if the protection st did not watch writes when it
// should have, or did when it should not have.
func checkWatching(t *testing.T, k *Kernel, st ProtectStats, watch bool) {
	t.Helper()
	if st.Watching != watch {
		t.Errorf("protection %+v watched writes: %v, want %v (watch error: %v)", st, st.Watching, watch, k.WatchError())
	}
}

func testDirtyTracking(t *testing.T, watch bool) {
	w := startPageWriter(t)
	if _, err := w.k.TakeDirty(); !errors.Is(err, ErrNotPaused) {
		t.Errorf("TakeDirty() while running = %v, want ErrNotPaused", err)
	}
	w.k.Pause()
	if _, err := w.k.TakeDirty(); !errors.Is(err, ErrNotTracking) {
		t.Errorf("TakeDirty() before tracking = %v, want ErrNotTracking", err)
	}
	if err := w.k.StartDirtyTracking(); err != nil {
		t.Fatalf("StartDirtyTracking() = %v", err)
	}
	checkWatching(t, w.k, w.k.LastProtect(), watch)
	w.k.Unpause()

	// prepare is when PrepareTake protects memory ahead of the take:
	// after the write (which it protects again) or before it (the take
	// protects it).
	for _, tc := range []struct {
		name    string
		cmd     string
		page    int
		prepare string
	}{
		{"application write", "w", 3, ""},
		{"sentry write", "r", 10, ""},
		{"application write again", "w", 3, ""},
		{"forked child", "f", 20, ""},
		{"application write, then preparation", "w", 10, "after"},
		{"preparation, then application write", "w", 3, "before"},
		{"sentry write, then preparation", "r", 3, "after"},
		{"preparation, then sentry write", "r", 10, "before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare == "before" {
				w.prepareTake(t)
			}
			w.do(t, tc.cmd, tc.page, 7)
			if tc.prepare == "after" {
				w.prepareTake(t)
			}
			d := w.takeDirty(t)
			// Only what was written since the last TakeDirty: page 40 of
			// the region is never written.
			if covers(d, w.offsetOf(t, 40)) {
				t.Errorf("dirty set %v holds page 40 (offset %#x), never written", d, w.offsetOf(t, 40))
			}
			if tc.cmd == "f" {
				// The child's write gave it a copy; the parent's page is
				// clean, the copy is dirty (somewhere the parent does not
				// map).
				if covers(d, w.offsetOf(t, tc.page)) {
					t.Errorf("dirty set %v holds the parent's page %d, which only the child wrote", d, tc.page)
				}
				if len(d) == 0 {
					t.Errorf("dirty set empty after a forked child wrote a page")
				}
				return
			}
			if off := w.offsetOf(t, tc.page); !covers(d, off) {
				t.Errorf("dirty set %v lacks page %d (offset %#x)", d, tc.page, off)
			}
			if tc.cmd == "w" {
				// A write with no dirty page before it is recorded page
				// by page, not by dirtyWindow.
				for _, nb := range []int{tc.page - 1, tc.page + 1} {
					if covers(d, w.offsetOf(t, nb)) {
						t.Errorf("dirty set %v holds page %d, next to page %d written alone", d, nb, tc.page)
					}
				}
			}
			if other := map[int]int{3: 10, 10: 3}[tc.page]; covers(d, w.offsetOf(t, other)) {
				t.Errorf("dirty set %v holds page %d, written before the last TakeDirty only", d, other)
			}
		})
	}

	mm := initTask(w.k).tg.mm
	region := w.base
	if watch {
		if ww, ok := mm.as.(platform.WriteWatcher); !ok || !ww.Watched(region, 64*pageSize) {
			t.Errorf("the region is not watched while tracking")
		}
	}
	w.k.StopDirtyTracking()
	// Nothing is watched any more: tracking off costs the program nothing.
	if ww, ok := mm.as.(platform.WriteWatcher); ok && ww.Watched(region, pageSize) {
		t.Errorf("the region is still watched after StopDirtyTracking")
	}
	w.do(t, "w", 3, 9)
	w.k.Pause()
	defer w.k.Unpause()
	if _, err := w.k.TakeDirty(); !errors.Is(err, ErrNotTracking) {
		t.Errorf("TakeDirty() after StopDirtyTracking = %v, want ErrNotTracking", err)
	}
}

// TestMemorySnapshot: a snapshot taken at a pause reads what the pages
// held then, although the program and the sentry wrote them afterwards.
func TestMemorySnapshot(t *testing.T) {
	eachTrackingMode(t, func(t *testing.T, watch bool) {
		for _, prepare := range []bool{false, true} {
			t.Run(fmt.Sprintf("prepared=%v", prepare), func(t *testing.T) {
				testMemorySnapshot(t, watch, prepare)
			})
		}
	})
}

func testMemorySnapshot(t *testing.T, watch, prepare bool) {
	w := startPageWriter(t)
	w.do(t, "w", 5, 0x55)
	if prepare {
		w.prepareTake(t)
		w.do(t, "w", 7, 1) // written between preparation and pause
	}
	w.k.Pause()
	var ranges [][2]uint64
	for _, r := range w.k.mf.Allocated() {
		ranges = append(ranges, [2]uint64{r.Start, r.Length()})
	}
	snap, err := w.k.StartMemorySnapshot(func([][2]uint64) [][2]uint64 { return ranges })
	if err != nil {
		w.k.Unpause()
		t.Fatalf("StartMemorySnapshot() = %v", err)
	}
	defer snap.Release()
	w.k.Unpause()

	offs := map[int]uint64{}
	for _, p := range []int{5, 6, 7} {
		offs[p] = w.offsetOf(t, p)
	}
	w.do(t, "w", 5, 0x66) // the program's own write
	w.do(t, "r", 6, 0x77) // the sentry's
	if snap.CopiedAside() < 2*pageSize {
		t.Errorf("CopiedAside() = %d, want at least the two pages written", snap.CopiedAside())
	}
	for _, tc := range []struct {
		page int
		want byte
	}{{5, 0x55}, {6, 1}, {7, 1}} {
		got := make([]byte, pageSize)
		if _, err := snap.ReadAt(got, int64(offs[tc.page])); err != nil {
			t.Fatalf("ReadAt(page %d) = %v", tc.page, err)
		}
		if !bytes.Equal(got, bytes.Repeat([]byte{tc.want}, pageSize)) {
			t.Errorf("snapshot page %d = %x..., want %#x at the pause", tc.page, got[:8], tc.want)
		}
	}
	// The ranges a save reads, found after the pause, hold every page.
	saved, err := snap.SavedRanges(1 << 20)
	if err != nil {
		t.Fatalf("SavedRanges() = %v", err)
	}
	for p, off := range offs {
		if !covers(saved, off) {
			t.Errorf("SavedRanges() = %v, lacks page %d (offset %#x)", saved, p, off)
		}
	}
	st := w.k.LastProtect()
	checkWatching(t, w.k, st, watch)
	switch {
	case !watch:
		// One round trip to the stub write-protected every writable vma.
		if st.VMAs == 0 || st.Calls > st.VMAs || st.RoundTrips != 1 {
			t.Errorf("LastProtect() = %+v, want some vmas, at most as many calls, one round trip", st)
		}
	case prepare:
		// Only the pages written since the preparation (page 7, and the
		// program's stack and buffers), no vma whole, no round trip to
		// the stub.
		if st.VMAs == 0 || st.Whole != 0 || st.Pages == 0 || st.Pages > 32 || st.RoundTrips != 0 {
			t.Errorf("LastProtect() = %+v after PrepareTake, want some vmas, none whole, 1 to 32 pages, no round trip", st)
		}
	default:
		// Every writable vma whole, no round trip to the stub.
		if st.VMAs == 0 || st.Whole != st.VMAs || st.RoundTrips != 0 {
			t.Errorf("LastProtect() = %+v, want some vmas, all whole, no round trip", st)
		}
	}
	// The memory itself has moved on.
	if got := w.readPages(t, offs[5], 1); got[0] != 0x66 {
		t.Errorf("page 5 now %#x, want the program's 0x66", got[0])
	}
	w.k.StopDirtyTracking()
	if _, err := snap.ReadAt(make([]byte, pageSize), int64(offs[7])); !errors.Is(err, ErrSnapshotEnded) {
		t.Errorf("ReadAt after StopDirtyTracking = %v, want ErrSnapshotEnded", err)
	}
}

// TestSetBits: setBits marks exactly its pages, across word boundaries.
func TestSetBits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first, n uint64
	}{
		{"one page", 5, 1},
		{"inside a word", 3, 20},
		{"to a word's end", 40, 24},
		{"whole words", 64, 128},
		{"across words", 60, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []uint64
			setBits(&b, tc.first, tc.n)
			for p := uint64(0); p < uint64(len(b))*64; p++ {
				want := p >= tc.first && p < tc.first+tc.n
				if testBit(b, p) != want {
					t.Fatalf("setBits(%d, %d): page %d set = %v, want %v", tc.first, tc.n, p, !want, want)
				}
			}
		})
	}
}

// TestEachRunIn: eachRunIn gives the runs of set pages inside its window,
// in order, cut at the window's ends and joined across words.
func TestEachRunIn(t *testing.T) {
	for _, tc := range []struct {
		name         string
		set          [][2]uint64 // setBits(first, n)
		first, count uint64
		want         [][2]uint64
	}{
		{"none", nil, 0, 256, nil},
		{"one page", [][2]uint64{{5, 1}}, 0, 256, [][2]uint64{{5, 1}}},
		{"across words", [][2]uint64{{60, 10}}, 0, 256, [][2]uint64{{60, 10}}},
		{"whole words", [][2]uint64{{64, 128}}, 0, 256, [][2]uint64{{64, 128}}},
		{"several", [][2]uint64{{1, 2}, {10, 1}, {63, 2}, {200, 3}}, 0, 256, [][2]uint64{{1, 2}, {10, 1}, {63, 2}, {200, 3}}},
		{"cut by the window", [][2]uint64{{1, 20}, {100, 50}}, 10, 120, [][2]uint64{{10, 11}, {100, 30}}},
		{"window past the bits", [][2]uint64{{3, 2}}, 0, 1 << 20, [][2]uint64{{3, 2}}},
		{"window beyond the bits", [][2]uint64{{3, 2}}, 500, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []uint64
			for _, r := range tc.set {
				setBits(&b, r[0], r[1])
			}
			var got [][2]uint64
			eachRunIn(b, tc.first, tc.count, func(p, n uint64) error {
				got = append(got, [2]uint64{p, n})
				return nil
			})
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("eachRunIn(%v, %d, %d) = %v, want %v", tc.set, tc.first, tc.count, got, tc.want)
			}
		})
	}
}
