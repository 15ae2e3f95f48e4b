package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vdso"
)

// TestParamsLayout: the Go view of the parameter page has the offsets of
// the vDSO's struct params (kernel/vdso/src/vdso.c).
func TestParamsLayout(t *testing.T) {
	var p vdsoParams
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"seq", unsafe.Offsetof(p.seq), 0},
		{"mode", unsafe.Offsetof(p.mode), 4},
		{"tscBase", unsafe.Offsetof(p.tscBase), 8},
		{"monoBase", unsafe.Offsetof(p.monoBase), 16},
		{"mult", unsafe.Offsetof(p.mult), 24},
		{"realtimeOffset", unsafe.Offsetof(p.realtimeOffset), 32},
	} {
		if tc.got != tc.want {
			t.Errorf("offset of %s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestRewriteSequence: a rewrite leaves the sequence even and different
// from what it was, also when the page was saved in the middle of a
// write (odd), so that a reader that began before retries.
func TestRewriteSequence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from     uint32
		wantNext uint32
	}{
		{"even", 6, 8},
		{"odd, torn by a save", 7, 8},
		{"zero, a fresh page", 0, 2},
		{"wraps", 0xfffffffe, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := paramsAt(make([]byte, pageSize))
			p.seq.Store(tc.from)
			p.store(clockParams{Mode: modeTSC, Mult: 1 << 32})
			if got := p.seq.Load(); got != tc.wantNext {
				t.Errorf("seq after a rewrite from %d = %d, want %d", tc.from, got, tc.wantNext)
			}
		})
	}
}

// newTestClock returns a TSC clock over a page of its own that follows the
// host's CLOCK_MONOTONIC + hostOffset, or skips without a usable TSC.
func newTestClock(t *testing.T) *sandboxClock {
	t.Helper()
	if !tscUsable() {
		t.Skip("no usable TSC here (or SNAP_NO_TSC_CLOCK=1): the sandbox clock is the host's")
	}
	c := &sandboxClock{page: paramsAt(make([]byte, pageSize)), tsc: true}
	now := sampleTSC()
	mult, ok := tscRate(now)
	if !ok {
		t.Fatal("tscRate failed although the TSC is usable")
	}
	c.page.store(clockParams{Mode: modeTSC, TSCBase: now.tsc, MonoBase: now.mono, Mult: mult, RealtimeOffset: now.wall - now.mono})
	return c
}

// rateNoise bounds how much two measurements of the TSC rate a moment
// apart may differ (over a baseline of minCalibration: the pairing error
// over a millisecond).
const rateNoise = 2e-4

// TestClockUpdateSteers: an update continues the line where it is (never
// back) and steers towards the host's clock plus the kernel's offset:
// faster when the sandbox clock is behind, slower when ahead, a jump
// forwards when it is far behind. Ordering only; no durations.
func TestClockUpdateSteers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset int64 // hostOffset given to update; the line starts at offset 0
		check  func(t *testing.T, before, after clockParams, rate uint64)
	}{
		{"behind: runs faster", int64(2 * time.Millisecond), func(t *testing.T, _, after clockParams, rate uint64) {
			if after.Mult <= rate || float64(after.Mult) > float64(rate)*(1+maxSlew+rateNoise) {
				t.Errorf("mult = %d, want above the rate %d by at most maxSlew", after.Mult, rate)
			}
		}},
		{"ahead: runs slower", -int64(2 * time.Millisecond), func(t *testing.T, _, after clockParams, rate uint64) {
			if after.Mult >= rate || float64(after.Mult) < float64(rate)*(1-maxSlew-rateNoise) {
				t.Errorf("mult = %d, want below the rate %d by at most maxSlew", after.Mult, rate)
			}
		}},
		{"far behind: jumps forwards", int64(time.Second), func(t *testing.T, before, after clockParams, _ uint64) {
			if jumped := after.MonoBase - before.monotonicAt(after.TSCBase); jumped < int64(time.Second)-maxStep {
				t.Errorf("line moved forwards by %d ns at the update, want about 1 s", jumped)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClock(t)
			before, _ := c.page.load()
			m0, r0 := c.read()
			c.update(tc.offset)
			after, _ := c.page.load()
			m1, r1 := c.read()
			if m1 < m0 {
				t.Errorf("CLOCK_MONOTONIC went back across an update: %d then %d", m0, m1)
			}
			if cont := before.monotonicAt(after.TSCBase); after.MonoBase < cont {
				t.Errorf("new line starts at %d, below the old line's %d at the same TSC", after.MonoBase, cont)
			}
			if r1 < r0-realtimeStep {
				t.Errorf("CLOCK_REALTIME went back by %d ns, more than realtimeStep", r0-r1)
			}
			rate, _ := tscRate(sampleTSC())
			tc.check(t, before, after, rate)
		})
	}
}

// TestClockReadsOrdered: readings of the page, across updates, are
// ordered like the TSC readings they make.
func TestClockReadsOrdered(t *testing.T) {
	c := newTestClock(t)
	last, _ := c.read()
	for i := 0; i < 100000; i++ {
		if i%10000 == 0 {
			c.update(0)
		}
		m, _ := c.read()
		if m < last {
			t.Fatalf("reading %d: %d after %d", i, m, last)
		}
		last = m
	}
}

// TestVDSOMappings: the vDSO and its page are mapped like Linux's (vvar
// r--p then vdso r-xp); fork gives the child the same kernel pages;
// munmap, MADV_DONTNEED, mprotect to writable and growing do not touch
// them; releasing every MM leaves them allocated to the kernel.
func TestVDSOMappings(t *testing.T) {
	mm, _ := newTestMM(t)
	k := &Kernel{mf: mm.mf}
	if err := k.setupVDSO(); err != nil {
		t.Fatal(err)
	}
	ehdr, err := mm.mapVDSO(k.vdso)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 4)
	if err := mm.CopyIn(ehdr, img); err != nil || !bytes.Equal(img, vdso.Image[:4]) {
		t.Errorf("bytes at AT_SYSINFO_EHDR = %q, %v, want the ELF magic", img, err)
	}
	vvar := ehdr - vdso.ParamsPageOffset
	var got []VMAInfo
	for _, m := range mm.Mappings() {
		if m.Name == "[vvar]" || m.Name == "[vdso]" {
			got = append(got, m)
		}
	}
	if len(got) != 2 || got[0] != (VMAInfo{Start: vvar, End: ehdr, Perms: "r--", Private: true, Name: "[vvar]"}) || got[1].Start != ehdr || got[1].Perms != "r-x" || got[1].Name != "[vdso]" {
		t.Fatalf("vDSO mappings = %+v, want [vvar] r-- at %#x then [vdso] r-x at %#x", got, vvar, ehdr)
	}

	child, err := mm.fork(newRecordingAS())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*MM{mm, child} {
		if v := m.vmaAtLocked(vvar); v == nil || v.Off != k.vdso.Range.Start || !v.Special {
			t.Errorf("vvar vma = %+v, want the kernel's page at %#x", v, k.vdso.Range.Start)
		}
	}
	if _, err := child.Mremap(ehdr, pageSize, 64*pageSize, mremapMayMove, 0); !errors.Is(err, unix.EFAULT) {
		t.Errorf("mremap growing [vdso] = %v, want EFAULT", err)
	}
	if err := child.Mprotect(vvar, pageSize, permRead|permWrite); err == nil {
		t.Errorf("mprotect [vvar] writable succeeded")
	}
	if err := child.Madvise(vvar, 2*pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	if err := child.Munmap(vvar, pageSize+uint64(len(vdso.Image))); err != nil {
		t.Fatal(err)
	}
	child.Release()
	mm.Release()
	if err := mm.mf.forEachData(k.vdso.Range, func(fileRange) error { return nil }); err != nil {
		t.Fatal(err)
	}
	b, err := mm.mf.Bytes(k.vdso.Range.Start+vdso.ParamsPageOffset, uint64(len(vdso.Image)))
	if err != nil || !bytes.Equal(b, vdso.Image) {
		t.Errorf("vDSO image in the memory file after every MM let go: intact %v, %v", bytes.Equal(b, vdso.Image), err)
	}
	if a := mm.mf.Allocated(); len(a) != 1 || a[0] != k.vdso.Range {
		t.Errorf("allocated after both MMs released = %v, want only the kernel's %v", a, k.vdso.Range)
	}
}

// TestRestoreVDSOPages: vDSO pages that are not page-aligned room for the
// parameter page and an image, or in a format this snap does not write,
// fail the restore with ErrBadState; a kernel saved before there was a
// vDSO gets one at restore (for the programs it starts later) and runs on.
func TestRestoreVDSOPages(t *testing.T) {
	s := startPauseSandbox(t, "sparse")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	pauseInSyscall(t, s.k, unix.SYS_READ)
	defer s.k.Unpause()
	saved := s.k.vdso
	defer func() { s.k.vdso = saved }()
	ranges, _ := savePaused(t, s.k)
	opts := RestoreOptions{LoadMemory: func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges)) }}

	r := saved.Range
	for _, tc := range []struct {
		name  string
		pages vdsoPages
		why   string
	}{
		{"newer format", vdsoPages{r, vdsoParamsFormat + 1}, "parameter page format"},
		{"not page-aligned", vdsoPages{fileRange{r.Start + 8, r.End}, vdsoParamsFormat}, "not page-aligned room"},
		{"no room for an image", vdsoPages{fileRange{r.Start, r.Start + pageSize}, vdsoParamsFormat}, "not page-aligned room"},
		{"end before start", vdsoPages{fileRange{r.End, r.Start}, vdsoParamsFormat}, "not page-aligned room"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.k.vdso = tc.pages
			_, state := savePaused(t, s.k)
			if _, err := Restore(context.Background(), bytes.NewReader(state), opts); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Restore with vDSO pages %+v = %v, want ErrBadState: ...%s", tc.pages, err, tc.why)
			}
		})
	}

	s.k.vdso = vdsoPages{}
	_, state := savePaused(t, s.k)
	k, inW, outR := restoreWithPipes(t, state, opts)
	if k.vdso.Range.Length() == 0 || k.vdso.Format != vdsoParamsFormat || k.clock == nil {
		t.Errorf("restored kernel saved without a vDSO: pages %+v, clock %v, want new pages of format %d and a clock", k.vdso, k.clock, vdsoParamsFormat)
	}
	k.Resume()
	lines := scanLines(outR, 1)
	if _, err := inW.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if want := fmt.Sprintf("sum %x", sparseSum()); l != want {
			t.Errorf("restored program: %q, want %q", l, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("restored program printed nothing")
	}
}

// TestNoClockUpdateWhilePaused: the parameter page holds still while the
// kernel is paused (a save reads and compresses memory then), and is
// updated again after Unpause.
func TestNoClockUpdateWhilePaused(t *testing.T) {
	s := startPauseSandbox(t, "sparse")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	if !s.k.clock.tsc {
		t.Skip("no TSC clock here: the page is never updated")
	}
	seq := func() uint32 { return s.k.clock.page.seq.Load() }
	s.k.Pause()
	before := seq()
	s.k.clockTick(s.k.clock)
	if got := seq(); got != before {
		t.Errorf("sequence after an update tick while paused = %d, want %d (unchanged)", got, before)
	}
	s.k.Unpause()
	s.k.clockTick(s.k.clock)
	if got := seq(); got == before {
		t.Errorf("sequence after an update tick once unpaused = %d, want a new value", got)
	}
}
