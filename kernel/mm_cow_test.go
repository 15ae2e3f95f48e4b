package kernel

import (
	"testing"

	"snapshotter/platform"
)

func TestForkCopyOnWrite(t *testing.T) {
	mm, as := newTestMM(t)
	base := len(mm.mf.Allocated())
	const n = 64
	a := mustMMap(t, mm, MMapOpts{Length: n * pageSize, Perms: permRead | permWrite, Private: true})
	for i := range uint64(n) {
		if err := mm.CopyOut(a+i*pageSize, []byte{'P'}); err != nil {
			t.Fatal(err)
		}
	}
	childAS := newRecordingAS()
	child, err := mm.fork(childAS)
	if err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	checkMirror(t, child, childAS)
	pv, cv := mm.vmaAtLocked(a), child.vmaAtLocked(a)
	if !pv.COW || !cv.COW || pv.Off != cv.Off {
		t.Fatalf("after fork: COW %v/%v, Off %#x/%#x: want both COW over the same pages", pv.COW, cv.COW, pv.Off, cv.Off)
	}

	// The child writes page 20 (a fault: the cowWindow around it is
	// copied), the parent page 3 (CopyOut: that page is copied).
	if err := child.HandleFault(a+20*pageSize, platform.AccessType{Write: true}); err != nil {
		t.Fatal(err)
	}
	cb, _ := child.mf.Bytes(child.vmaAtLocked(a+20*pageSize).Off+(a+20*pageSize-child.vmaAtLocked(a+20*pageSize).Start), 1)
	cb[0] = 'C'
	if err := mm.CopyOut(a+3*pageSize, []byte{'Q'}); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	checkMirror(t, child, childAS)
	ws := max(a, (a+20*pageSize)&^(cowWindow-1))
	if w := child.vmaAtLocked(a + 20*pageSize); w.COW || w.Start != ws || w.End != ws+cowWindow {
		t.Errorf("child's written window = [%#x, %#x) COW %v, want [%#x, %#x) private", w.Start, w.End, w.COW, ws, ws+cowWindow)
	}
	for _, tc := range []struct {
		mm   *MM
		page uint64
		want byte
	}{
		{mm, 20, 'P'}, {mm, 3, 'Q'}, {mm, 21, 'P'}, {child, 20, 'C'}, {child, 3, 'P'}, {child, 40, 'P'},
	} {
		if got := readByte(t, tc.mm, a+tc.page*pageSize); got != tc.want {
			t.Errorf("page %d = %q, want %q", tc.page, got, tc.want)
		}
	}
	// MADV_DONTNEED in the child zeroes its view only.
	if err := child.Madvise(a+40*pageSize, pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	if got, want := readByte(t, child, a+40*pageSize), byte(0); got != want {
		t.Errorf("child's page after MADV_DONTNEED = %q, want 0", got)
	}
	if got := readByte(t, mm, a+40*pageSize); got != 'P' {
		t.Errorf("parent's page after the child's MADV_DONTNEED = %q, want 'P'", got)
	}

	// Once the child is gone, the parent takes its pages over without a
	// copy: one fault makes the whole remaining vma writable.
	child.Release()
	v := mm.vmaAtLocked(a + 50*pageSize)
	off := v.Off
	if err := mm.HandleFault(a+50*pageSize, platform.AccessType{Write: true}); err != nil {
		t.Fatal(err)
	}
	if v := mm.vmaAtLocked(a + 50*pageSize); v.COW || v.Off != off || !as.pages[v.Start].at.Write {
		t.Errorf("after the child's exit: COW %v, Off %#x (was %#x): want the same pages, writable", v.COW, v.Off, off)
	}
	checkMirror(t, mm, as)
	mm.Release()
	if got := len(mm.mf.Allocated()); got != base {
		t.Errorf("memory file has %d allocated ranges after release, want %d", got, base)
	}
}

// TestForkCopiesSmallVMAs checks fork's eager copies: a small writable
// private vma and the window of a large one around the stack pointer are
// the child's own at once (the parent's mapping unchanged, still
// writable), read-only and large vmas are shared copy-on-write, and
// writes on either side stay on that side.
func TestForkCopiesSmallVMAs(t *testing.T) {
	mm, as := newTestMM(t)
	base := len(mm.mf.Allocated())
	fill := func(addr, pages uint64, b byte) {
		for i := range pages {
			if err := mm.CopyOut(addr+i*pageSize, []byte{b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	small := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	fill(small, 4, 'S')
	const bigPages = 1024 // 4 MiB: longer than eagerCopyMax
	big := mustMMap(t, mm, MMapOpts{Length: bigPages * pageSize, Perms: permRead | permWrite, Private: true})
	fill(big, bigPages, 'B')
	ro := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead, Private: true})
	sp := big + 600*pageSize + 0x123 // a stack pointer inside big

	childAS := newRecordingAS()
	child, err := mm.forkCopying(childAS, sp, eagerCopyBudget)
	if err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	checkMirror(t, child, childAS)
	winStart := pageRoundDown(sp) - eagerStackBelow
	for _, tc := range []struct {
		name     string
		addr     uint64
		wantCOW  bool // both sides share the pages copy-on-write
		wantSame bool // the child maps the parent's pages
	}{
		{"small", small, false, false},
		{"stack window start", winStart, false, false},
		{"stack window end", winStart + eagerStackSpan - pageSize, false, false},
		{"below the window", winStart - pageSize, true, true},
		{"above the window", winStart + eagerStackSpan, true, true},
		{"read-only", ro, true, true},
	} {
		pv, cv := mm.vmaAtLocked(tc.addr), child.vmaAtLocked(tc.addr)
		pOff, cOff := pv.Off+(tc.addr-pv.Start), cv.Off+(tc.addr-cv.Start)
		if tc.name == "read-only" {
			// Never written, so never made copy-on-write.
			if pOff != cOff {
				t.Errorf("%s: child's page at %#x, parent's at %#x: want the same", tc.name, cOff, pOff)
			}
			continue
		}
		if pv.COW != tc.wantCOW || cv.COW != tc.wantCOW || (pOff == cOff) != tc.wantSame {
			t.Errorf("%s: COW %v/%v, offsets %#x/%#x: want COW %v, same pages %v", tc.name, pv.COW, cv.COW, pOff, cOff, tc.wantCOW, tc.wantSame)
		}
	}
	if w := mm.vmaAtLocked(small); !as.pages[small].at.Write || w.Off != as.pages[small].off {
		t.Errorf("parent's small vma no longer mapped writable at its own pages: %+v", as.pages[small])
	}

	// Writes after the fork stay on their side.
	if err := child.CopyOut(small+pageSize, []byte{'c'}); err != nil {
		t.Fatal(err)
	}
	if err := mm.CopyOut(small+2*pageSize, []byte{'p'}); err != nil {
		t.Fatal(err)
	}
	if err := child.CopyOut(pageRoundDown(sp), []byte{'c'}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mm   *MM
		addr uint64
		want byte
	}{
		{"parent small 0", mm, small, 'S'},
		{"child small 0", child, small, 'S'},
		{"parent small 1", mm, small + pageSize, 'S'},
		{"child small 1", child, small + pageSize, 'c'},
		{"parent small 2", mm, small + 2*pageSize, 'p'},
		{"child small 2", child, small + 2*pageSize, 'S'},
		{"parent stack", mm, pageRoundDown(sp), 'B'},
		{"child stack", child, pageRoundDown(sp), 'c'},
		{"child below window", child, winStart - pageSize, 'B'},
	} {
		if got := readByte(t, tc.mm, tc.addr); got != tc.want {
			t.Errorf("%s: %#x = %q, want %q", tc.name, tc.addr, got, tc.want)
		}
	}
	checkMirror(t, mm, as)
	checkMirror(t, child, childAS)
	child.Release()
	mm.Release()
	if got := len(mm.mf.Allocated()); got != base {
		t.Errorf("memory file has %d allocated ranges after release, want %d", got, base)
	}
}

// TestForkEagerBudget checks that fork copies no more than its budget and
// shares the rest copy-on-write.
func TestForkEagerBudget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		budget     uint64
		wantCopied int
	}{
		{"none", 0, 0},
		{"one", 4 * pageSize, 1},
		{"two", 9 * pageSize, 2},
		{"all", eagerCopyBudget, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm, _ := newTestMM(t)
			var addrs []uint64
			for range 3 {
				a := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
				// A guard page apart, so that the vmas stay separate.
				mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead, Private: true})
				if err := mm.CopyOut(a, []byte{'x'}); err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, a)
			}
			child, err := mm.forkCopying(newRecordingAS(), 0, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			copied := 0
			for _, a := range addrs {
				if v := child.vmaAtLocked(a); !v.COW {
					copied++
				}
				if got := readByte(t, child, a); got != 'x' {
					t.Errorf("child's %#x = %q, want 'x'", a, got)
				}
			}
			if copied != tc.wantCopied {
				t.Errorf("forkCopying(budget %d) copied %d vmas, want %d", tc.budget, copied, tc.wantCopied)
			}
			child.Release()
			mm.Release()
		})
	}
}

// TestForkCopiesOverKeptPages: a fork's eager copy into pages a child
// freed (kept with the child's data, memory_file_reuse.go) reads as the
// parent's memory, its never-written pages as zeros, not as the old
// child's writes.
func TestForkCopiesOverKeptPages(t *testing.T) {
	mm, _ := newTestMM(t)
	const n = 8
	small := mustMMap(t, mm, MMapOpts{Length: n * pageSize, Perms: permRead | permWrite, Private: true})
	written := map[uint64]bool{2: true, 5: true} // the other pages are never written
	for p := range written {
		if err := mm.CopyOut(small+p*pageSize, []byte{'S'}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := mm.forkCopying(newRecordingAS(), 0, eagerCopyBudget)
	if err != nil {
		t.Fatal(err)
	}
	for p := range uint64(n) {
		if err := first.CopyOut(small+p*pageSize, []byte{'c'}); err != nil {
			t.Fatal(err)
		}
	}
	first.Release()
	over := mm.mf.copies.over.Load()
	second, err := mm.forkCopying(newRecordingAS(), 0, eagerCopyBudget)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	if v := second.vmaAtLocked(small); v.COW {
		t.Fatalf("second child's vma at %#x is copy-on-write, want copied at the fork", small)
	}
	if got := mm.mf.copies.over.Load() - over; got != n*pageSize {
		t.Errorf("second fork copied %d bytes over kept pages, want %d (the first child's)", got, n*pageSize)
	}
	for p := range uint64(n) {
		want := byte(0)
		if written[p] {
			want = 'S'
		}
		if got := readByte(t, second, small+p*pageSize); got != want {
			t.Errorf("second child's page %d = %q, want %q", p, got, want)
		}
	}
}
