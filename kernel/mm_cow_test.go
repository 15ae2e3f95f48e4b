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
