package kernel

import (
	"fmt"
	"testing"

	"snapshotter/platform"
)

// readingAS is a recordingAS that, whenever the mapping of a page changes,
// reads the page's old memory as another thread of the process would
// through the old mapping until then, and records it if it was given back
// (reads as zero).
type readingAS struct {
	*recordingAS
	mf   *MemoryFile
	lost []string
}

func (a *readingAS) checkOld(addr, length uint64, newOff uint64, remap bool) {
	for p := uint64(0); p < length; p += pageSize {
		old, ok := a.pages[addr+p]
		if !ok || (remap && old.off == newOff+p) {
			continue
		}
		b, err := a.mf.Bytes(old.off, 1)
		if err != nil || b[0] == 0 {
			a.lost = append(a.lost, fmt.Sprintf("page %#x (memory file %#x) read %v, %v while still mapped", addr+p, old.off, b, err))
		}
	}
}

func (a *readingAS) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	a.checkOld(addr, length, offset, true)
	return a.recordingAS.MapFile(addr, offset, length, at, precommit)
}

func (a *readingAS) Unmap(addr, length uint64) error {
	a.checkOld(addr, length, 0, false)
	return a.recordingAS.Unmap(addr, length)
}

// TestCOWFreesOldPagesAfterRemap checks that a copy-on-write copy whose
// pages' other owner lets go of them while the copy is made (a fork's
// child that execs or exits meanwhile, on its own goroutine) maps the copy
// before the old pages are given back: until then the process's other
// threads read them through the old mapping, and given back they read as
// zero (and may be another process's memory). Under load a Python thread
// read objects there as zeros and jumped to address 0.
func TestCOWFreesOldPagesAfterRemap(t *testing.T) {
	mf := newTestMemoryFile(t)
	mf.keepMax = 0 // pages given back read as zero, not as kept for copies
	as := &readingAS{recordingAS: newRecordingAS(), mf: mf}
	mm, err := NewMM(mf, as, testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatalf("NewMM: %v", err)
	}
	const n = 64
	a := mustMMap(t, mm, MMapOpts{Length: n * pageSize, Perms: permRead | permWrite, Private: true})
	for i := range uint64(n) {
		if err := mm.CopyOut(a+i*pageSize, []byte{'P'}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		write func(addr uint64) error
	}{
		{"write fault", func(addr uint64) error { return mm.HandleFault(addr, platform.AccessType{Write: true}) }},
		{"sentry write", func(addr uint64) error { return mm.CopyOut(addr, []byte{'Q'}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child, err := mm.fork(newRecordingAS())
			if err != nil {
				t.Fatal(err)
			}
			release := func() { child.Release() }
			cowCopiedHook.Store(&release)
			defer cowCopiedHook.Store(nil)
			as.lost = nil
			if err := tc.write(a + 20*pageSize); err != nil {
				t.Fatal(err)
			}
			cowCopiedHook.Store(nil)
			for _, l := range as.lost {
				t.Error(l)
			}
			checkMirror(t, mm, as.recordingAS)
			if got := readByte(t, mm, a+21*pageSize); got != 'P' {
				t.Errorf("page 21 after the copy = %q, want 'P'", got)
			}
		})
	}
	// MADV_DONTNEED of memory a child shared (still COW, its last owner
	// now): the old pages stay until they are no longer mapped.
	child, err := mm.fork(newRecordingAS())
	if err != nil {
		t.Fatal(err)
	}
	child.Release()
	as.lost = nil
	if err := mm.Madvise(a+40*pageSize, 4*pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	for _, l := range as.lost {
		t.Errorf("MADV_DONTNEED: %s", l)
	}
	checkMirror(t, mm, as.recordingAS)
	// munmap: the pages stay until the platform unmaps them.
	as.lost = nil
	if err := mm.Munmap(a+48*pageSize, 8*pageSize); err != nil {
		t.Fatal(err)
	}
	for _, l := range as.lost {
		t.Errorf("munmap: %s", l)
	}
	checkMirror(t, mm, as.recordingAS)
}
