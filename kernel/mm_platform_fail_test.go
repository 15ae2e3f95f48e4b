package kernel

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// failingAS is a recordingAS whose mapping changes fail with ENOMEM,
// changing nothing, while fail is set: what a ptrace stub's host mmap,
// munmap and mprotect do once a change would split a mapping past the
// host's limit on mappings (vm.max_map_count), which a program reaches
// by mapping enough small pieces.
type failingAS struct {
	*recordingAS
	fail bool
}

func (a *failingAS) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	if a.fail {
		return unix.ENOMEM
	}
	return a.recordingAS.MapFile(addr, offset, length, at, precommit)
}

func (a *failingAS) Unmap(addr, length uint64) error {
	if a.fail {
		return unix.ENOMEM
	}
	return a.recordingAS.Unmap(addr, length)
}

// checkStillHeld fails t unless every page as maps still holds want in
// the memory file: memory the platform maps was not given back (given
// back, it reads as zero, and once handed out again it is another
// mapping's or another process's).
func checkStillHeld(t *testing.T, mf *MemoryFile, as *recordingAS, want byte) {
	t.Helper()
	for addr, p := range as.pages {
		b, err := mf.Bytes(p.off, 1)
		if err != nil || b[0] != want {
			t.Errorf("page %#x, still mapped at memory file offset %#x, reads %v, %v; want %q", addr, p.off, b, err, want)
		}
	}
}

// TestPlatformFailureKeepsMappedMemory checks that memory whose mapping
// the platform failed to remove or replace is not given back while the
// platform still maps it: a munmap, a MAP_FIXED mmap over old memory, a
// copy-on-write copy and MADV_DONTNEED of memory a fork shared whose
// platform call fails leave the old vmas (and their memory) in place, as
// Linux leaves a mapping whose munmap failed.
// Given back, the pages went to the next allocation, another process's
// included, while the program still read and wrote them through the
// mapping the platform kept (testdata/c/mapfail.c).
func TestPlatformFailureKeepsMappedMemory(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name   string
		change func(mm *MM, a uint64) error
		// fork gives the memory another owner, a fork's child, which
		// lets go of it after the failure.
		fork bool
	}{
		{"munmap", func(mm *MM, a uint64) error { return mm.Munmap(a+2*pageSize, 2*pageSize) }, false},
		{"mmap fixed", func(mm *MM, a uint64) error {
			_, err := mm.MMap(MMapOpts{Addr: a + 2*pageSize, Length: 2 * pageSize, Fixed: true, Perms: permRead | permWrite, Private: true})
			return err
		}, false},
		{"copy-on-write", func(mm *MM, a uint64) error { return mm.HandleFault(a+2*pageSize, platform.AccessType{Write: true}) }, true},
		{"MADV_DONTNEED", func(mm *MM, a uint64) error { return mm.Madvise(a+2*pageSize, 2*pageSize, madvDontNeed) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mf := newTestMemoryFile(t)
			as := &failingAS{recordingAS: newRecordingAS()}
			mm, err := NewMM(mf, as, testMinAddr, testMaxAddr)
			if err != nil {
				t.Fatalf("NewMM: %v", err)
			}
			a := mustMMap(t, mm, MMapOpts{Length: n * pageSize, Perms: permRead | permWrite, Private: true})
			for i := range uint64(n) {
				if err := mm.CopyOut(a+i*pageSize, []byte{'P'}); err != nil {
					t.Fatal(err)
				}
			}
			var child *MM
			if tc.fork {
				if child, err = mm.fork(newRecordingAS()); err != nil {
					t.Fatal(err)
				}
			}
			as.fail = true
			if err := tc.change(mm, a); !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("%s with the platform failing = %v, want ENOMEM", tc.name, err)
			}
			as.fail = false
			if child != nil {
				child.Release()
			}
			checkStillHeld(t, mf, as.recordingAS, 'P')
			checkMirror(t, mm, as.recordingAS)
			// Memory handed out now must be none of what is mapped.
			b := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
			for i := range uint64(4) {
				if err := mm.CopyOut(b+i*pageSize, []byte{'N'}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range uint64(n) {
				if got := readByte(t, mm, a+i*pageSize); got != 'P' {
					t.Errorf("page %d after the failure and a new mapping = %q, want 'P'", i, got)
				}
			}
			// Once the platform works again, the change goes through.
			if err := tc.change(mm, a); err != nil {
				t.Fatalf("%s = %v", tc.name, err)
			}
			checkMirror(t, mm, as.recordingAS)
			mm.Release()
		})
	}
}

// TestForkFailureLeavesParentWritable checks a fork whose remap of the
// parent's memory without write permission fails: the parent's vma is not
// left copy-on-write while the platform still maps it writable, so the
// next fork remaps it, and the parent's writes after that reach a copy,
// not the memory the second child shares.
func TestForkFailureLeavesParentWritable(t *testing.T) {
	mf := newTestMemoryFile(t)
	as := &failingAS{recordingAS: newRecordingAS()}
	mm, err := NewMM(mf, as, testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatalf("NewMM: %v", err)
	}
	defer mm.Release()
	a := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	if err := mm.CopyOut(a, []byte{'P'}); err != nil {
		t.Fatal(err)
	}
	as.fail = true
	if _, err := mm.fork(newRecordingAS()); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("fork with the platform failing = %v, want ENOMEM", err)
	}
	as.fail = false
	checkMirror(t, mm, as.recordingAS)
	child, err := mm.fork(newRecordingAS())
	if err != nil {
		t.Fatalf("fork = %v", err)
	}
	defer child.Release()
	checkMirror(t, mm, as.recordingAS)
	if p := as.pages[a]; p.at.Write {
		t.Fatalf("parent's page after the second fork mapped %v, want no write permission", p.at)
	}
	if err := mm.HandleFault(a, platform.AccessType{Read: true, Write: true}); err != nil {
		t.Fatalf("parent's write fault: %v", err)
	}
	if err := mm.CopyOut(a, []byte{'Q'}); err != nil {
		t.Fatal(err)
	}
	if got := readByte(t, child, a); got != 'P' {
		t.Errorf("child reads %q after the parent's write, want 'P'", got)
	}
}
