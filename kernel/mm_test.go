package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// recordingAS is a platform.AddressSpace that keeps a page table of what
// the MM asked it to map, so tests can check the MM mirrors its vmas.
type recordingAS struct {
	pages map[uint64]asPage // page address -> mapping
}

type asPage struct {
	off uint64
	at  platform.AccessType
}

func newRecordingAS() *recordingAS { return &recordingAS{pages: map[uint64]asPage{}} }

func (a *recordingAS) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	for p := uint64(0); p < length; p += pageSize {
		a.pages[addr+p] = asPage{offset + p, at}
	}
	return nil
}

func (a *recordingAS) Unmap(addr, length uint64) error {
	for p := uint64(0); p < length; p += pageSize {
		delete(a.pages, addr+p)
	}
	return nil
}

func (a *recordingAS) Release() {}

const (
	testMinAddr = 0x10000
	testMaxAddr = 0x7ffffffff000
)

func newTestMM(t *testing.T) (*MM, *recordingAS) {
	t.Helper()
	as := newRecordingAS()
	mm, err := NewMM(newTestMemoryFile(t), as, testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatalf("NewMM: %v", err)
	}
	return mm, as
}

// checkMirror fails t unless as maps exactly the accessible pages of mm's
// vmas, at the right offsets and permissions.
func checkMirror(t *testing.T, mm *MM, as *recordingAS) {
	t.Helper()
	want := 0
	for _, v := range mm.vmas {
		if v.Perms == 0 {
			continue
		}
		for a := v.Start; a < v.End; a += pageSize {
			want++
			got, ok := as.pages[a]
			at := v.Perms.access()
			at.Write = at.Write && !v.COW
			if !ok || got.off != v.Off+(a-v.Start) || got.at != at {
				t.Fatalf("address space page %#x = %+v (mapped %v), want off %#x %v", a, got, ok, v.Off+(a-v.Start), v.Perms)
			}
		}
	}
	if len(as.pages) != want {
		t.Fatalf("address space maps %d pages, want %d", len(as.pages), want)
	}
}

func layout(mm *MM) string {
	var b bytes.Buffer
	for _, v := range mm.Mappings() {
		fmt.Fprintf(&b, "[%#x-%#x %s]", v.Start, v.End, v.Perms)
	}
	return b.String()
}

func mustMMap(t *testing.T, mm *MM, o MMapOpts) uint64 {
	t.Helper()
	addr, err := mm.MMap(o)
	if err != nil {
		t.Fatalf("MMap(%+v): %v", o, err)
	}
	return addr
}

func TestMMapAnonymousTopDown(t *testing.T) {
	mm, as := newTestMM(t)
	a := mustMMap(t, mm, MMapOpts{Length: 3 * pageSize, Perms: permRead | permWrite, Private: true})
	b := mustMMap(t, mm, MMapOpts{Length: 1, Perms: permRead, Private: true})
	if a != mm.mmapTop-3*pageSize {
		t.Errorf("first MMap = %#x, want %#x", a, mm.mmapTop-3*pageSize)
	}
	if b != a-pageSize {
		t.Errorf("second MMap = %#x, want %#x (just below the first)", b, a-pageSize)
	}
	checkMirror(t, mm, as)

	tests := []struct {
		name string
		o    MMapOpts
		want error
	}{
		{"zero length", MMapOpts{Length: 0}, unix.EINVAL},
		{"unaligned fixed", MMapOpts{Addr: 0x100001, Length: pageSize, Fixed: true}, unix.EINVAL},
		{"fixed below min", MMapOpts{Addr: 0x1000, Length: pageSize, Fixed: true}, unix.ENOMEM},
		{"noreplace over existing", MMapOpts{Addr: a, Length: pageSize, NoReplace: true}, unix.EEXIST},
		{"huge", MMapOpts{Length: 1 << 62}, unix.ENOMEM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mm.MMap(tc.o); !errors.Is(err, tc.want) {
				t.Errorf("MMap(%+v) error = %v, want %v", tc.o, err, tc.want)
			}
		})
	}
}

func TestMMapHintAndFixed(t *testing.T) {
	mm, as := newTestMM(t)
	const hint = 0x200000000
	got := mustMMap(t, mm, MMapOpts{Addr: hint, Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	if got != hint {
		t.Fatalf("MMap(hint %#x) = %#x, want the hint", hint, got)
	}
	if err := mm.CopyOut(hint, []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	// MAP_FIXED over the middle replaces two pages with zeroed memory.
	mustMMap(t, mm, MMapOpts{Addr: hint + pageSize, Length: 2 * pageSize, Perms: permRead, Private: true, Fixed: true})
	want := fmt.Sprintf("[%#x-%#x rw-][%#x-%#x r--][%#x-%#x rw-]", hint, hint+pageSize, hint+pageSize, hint+3*pageSize, hint+3*pageSize, hint+4*pageSize)
	if got := layout(mm); got != want {
		t.Errorf("layout = %s, want %s", got, want)
	}
	buf := make([]byte, 4)
	if err := mm.CopyIn(hint, buf); err != nil || string(buf) != "abcd" {
		t.Errorf("CopyIn(hint) = %q, %v, want abcd", buf, err)
	}
	checkMirror(t, mm, as)
}

func TestMunmapSplits(t *testing.T) {
	mm, as := newTestMM(t)
	a := mustMMap(t, mm, MMapOpts{Length: 5 * pageSize, Perms: permRead | permWrite, Private: true})
	used := mm.mf.Allocated()
	if err := mm.Munmap(a+pageSize, 2*pageSize); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[%#x-%#x rw-][%#x-%#x rw-]", a, a+pageSize, a+3*pageSize, a+5*pageSize)
	if got := layout(mm); got != want {
		t.Errorf("layout after munmap of middle = %s, want %s", got, want)
	}
	checkMirror(t, mm, as)
	if got := mm.mf.Allocated(); slices.Equal(got, used) {
		t.Errorf("memory file allocation unchanged after munmap: %v", got)
	}
	for _, tc := range []struct {
		addr, length uint64
		want         error
	}{
		{a + 1, pageSize, unix.EINVAL},
		{a, 0, unix.EINVAL},
		{a + 10*pageSize, pageSize, nil}, // nothing there: fine
	} {
		if err := mm.Munmap(tc.addr, tc.length); !errors.Is(err, tc.want) && err != tc.want {
			t.Errorf("Munmap(%#x, %#x) = %v, want %v", tc.addr, tc.length, err, tc.want)
		}
	}
	if err := mm.Munmap(a, 5*pageSize); err != nil {
		t.Fatal(err)
	}
	if len(mm.vmas) != 0 || len(mm.mf.Allocated()) != 0 {
		t.Errorf("after unmapping all: vmas %v, allocated %v, want none", mm.vmas, mm.mf.Allocated())
	}
	checkMirror(t, mm, as)
}

func TestMprotectSplitAndMerge(t *testing.T) {
	mm, as := newTestMM(t)
	a := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	if err := mm.Mprotect(a+pageSize, pageSize, permRead); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[%#x-%#x rw-][%#x-%#x r--][%#x-%#x rw-]", a, a+pageSize, a+pageSize, a+2*pageSize, a+2*pageSize, a+4*pageSize)
	if got := layout(mm); got != want {
		t.Errorf("layout after mprotect = %s, want %s", got, want)
	}
	checkMirror(t, mm, as)
	if err := mm.CopyOut(a+pageSize, []byte{1}); !errors.Is(err, ErrBadAddress) {
		t.Errorf("CopyOut to read-only page = %v, want ErrBadAddress", err)
	}
	if err := mm.HandleFault(a+pageSize, platform.ReadWrite); !errors.Is(err, ErrBadAddress) {
		t.Errorf("HandleFault(write to r--) = %v, want ErrBadAddress", err)
	}
	if err := mm.HandleFault(a+pageSize, platform.Read); err != nil {
		t.Errorf("HandleFault(read of r--) = %v, want nil", err)
	}
	// PROT_NONE unmaps from the address space but keeps the vma.
	if err := mm.Mprotect(a+pageSize, pageSize, 0); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	if err := mm.Mprotect(a, 4*pageSize, permRead|permWrite); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("[%#x-%#x rw-]", a, a+4*pageSize)
	if got := layout(mm); got != want {
		t.Errorf("layout after restoring protection = %s, want %s (merged)", got, want)
	}
	checkMirror(t, mm, as)
	if err := mm.Mprotect(a, 8*pageSize, permRead); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Mprotect over a hole = %v, want ENOMEM", err)
	}
	if err := mm.HandleFault(0x20000, platform.Read); !errors.Is(err, ErrBadAddress) {
		t.Errorf("HandleFault(unmapped) = %v, want ErrBadAddress", err)
	}
}

func TestMremap(t *testing.T) {
	mm, as := newTestMM(t)
	// Two mappings back to back: the lower one cannot grow in place.
	hi := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true})
	lo := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true})
	if lo+2*pageSize != hi {
		t.Fatalf("mappings at %#x and %#x are not adjacent", lo, hi)
	}
	payload := []byte("mremap keeps contents")
	if err := mm.CopyOut(lo+pageSize-4, payload); err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Mremap(lo, 2*pageSize, 4*pageSize, 0, 0); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Mremap grow without MAYMOVE = %v, want ENOMEM", err)
	}
	moved, err := mm.Mremap(lo, 2*pageSize, 4*pageSize, mremapMayMove, 0)
	if err != nil {
		t.Fatal(err)
	}
	if moved == lo {
		t.Fatalf("Mremap(MAYMOVE) stayed at %#x", lo)
	}
	got := make([]byte, len(payload))
	if err := mm.CopyIn(moved+pageSize-4, got); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("contents after move = %q, %v, want %q", got, err, payload)
	}
	if mm.vmaAtLocked(lo) != nil {
		t.Errorf("old range %#x still mapped after move", lo)
	}
	if err := mm.ZeroOut(moved+4*pageSize-8, 8); err != nil {
		t.Errorf("new tail not writable: %v", err)
	}
	checkMirror(t, mm, as)

	// Shrink then grow back in place (the freed space is right after).
	if a, err := mm.Mremap(moved, 4*pageSize, pageSize, 0, 0); err != nil || a != moved {
		t.Fatalf("Mremap shrink = %#x, %v, want %#x", a, err, moved)
	}
	if a, err := mm.Mremap(moved, pageSize, 3*pageSize, 0, 0); err != nil || a != moved {
		t.Fatalf("Mremap grow in place = %#x, %v, want %#x", a, err, moved)
	}
	if err := mm.CopyIn(moved+pageSize-4, got[:4]); err != nil || string(got[:4]) != "mrem" {
		t.Errorf("contents after shrink/grow = %q, %v", got[:4], err)
	}
	// The grown page is new and reads as zero.
	z := make([]byte, 8)
	if err := mm.CopyIn(moved+pageSize, z); err != nil || !bytes.Equal(z, make([]byte, 8)) {
		t.Errorf("regrown page = %v, %v, want zeros", z, err)
	}
	checkMirror(t, mm, as)

	// MREMAP_FIXED onto a chosen address.
	const dst = 0x300000000
	if a, err := mm.Mremap(moved, 3*pageSize, 3*pageSize, mremapMayMove|mremapFixed, dst); err != nil || a != dst {
		t.Fatalf("Mremap FIXED = %#x, %v, want %#x", a, err, dst)
	}
	checkMirror(t, mm, as)

	for _, tc := range []struct {
		name                  string
		old, oldSize, newSize uint64
		flags                 int
		want                  error
	}{
		{"unmapped", 0x400000000, pageSize, 2 * pageSize, mremapMayMove, unix.EFAULT},
		{"unaligned", dst + 1, pageSize, 2 * pageSize, mremapMayMove, unix.EINVAL},
		{"fixed without maymove", dst, pageSize, pageSize, mremapFixed, unix.EINVAL},
		{"zero new size", dst, pageSize, 0, 0, unix.EINVAL},
	} {
		if _, err := mm.Mremap(tc.old, tc.oldSize, tc.newSize, tc.flags, 0x500000000); !errors.Is(err, tc.want) {
			t.Errorf("Mremap %s = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestBrk(t *testing.T) {
	mm, as := newTestMM(t)
	const start = 0x600123
	mm.setBrkStart(start)
	base := uint64(0x601000)
	tests := []struct {
		name   string
		arg    uint64
		want   uint64
		mapped uint64 // expected heap end
	}{
		{"query", 0, base, base},
		{"below start", base - 1, base, base},
		{"grow", base + 10, base + 10, base + pageSize},
		{"grow more", base + 3*pageSize + 1, base + 3*pageSize + 1, base + 4*pageSize},
		{"shrink", base + pageSize, base + pageSize, base + pageSize},
		{"into mmap area", mm.mmapTop + pageSize, base + pageSize, base + pageSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mm.Brk(tc.arg); got != tc.want {
				t.Errorf("Brk(%#x) = %#x, want %#x", tc.arg, got, tc.want)
			}
			end := base
			if v := mm.vmaAtLocked(base); v != nil {
				end = v.End
			}
			if end != tc.mapped {
				t.Errorf("heap after Brk(%#x) ends at %#x, want %#x", tc.arg, end, tc.mapped)
			}
			checkMirror(t, mm, as)
		})
	}
}

func TestMadviseDontNeedZeroes(t *testing.T) {
	mm, _ := newTestMM(t)
	a := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true})
	if err := mm.CopyOut(a, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := mm.CopyOut(a+pageSize, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := mm.Madvise(a, pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	for _, tc := range []struct {
		addr uint64
		want byte
	}{{a, 0}, {a + pageSize, 2}} {
		if err := mm.CopyIn(tc.addr, b); err != nil || b[0] != tc.want {
			t.Errorf("byte at %#x after MADV_DONTNEED of first page = %d, %v, want %d", tc.addr, b[0], err, tc.want)
		}
	}
	if err := mm.Madvise(0x20000, pageSize, madvDontNeed); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Madvise(unmapped) = %v, want ENOMEM", err)
	}
}

type bytesFile []byte

func (f bytesFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(f)) {
		return 0, nil
	}
	return copy(p, f[off:]), nil
}

func TestMMapFilePrivateAndShared(t *testing.T) {
	mm, _ := newTestMM(t)
	content := bytes.Repeat([]byte("0123456789abcdef"), pageSize/16+1) // 1 page + 16 bytes
	a := mustMMap(t, mm, MMapOpts{Length: 3 * pageSize, Perms: permRead, Private: true, File: bytesFile(content), Offset: pageSize})
	got := make([]byte, 32)
	if err := mm.CopyIn(a, got); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("0123456789abcdef"), make([]byte, 16)...); !bytes.Equal(got, want) {
		t.Errorf("file mapping at offset %d = %q, want %q", pageSize, got, want)
	}
	if _, err := mm.MMap(MMapOpts{Length: pageSize, Perms: permRead | permWrite, File: bytesFile(content)}); !errors.Is(err, unix.EACCES) {
		t.Errorf("writable shared mapping of read-only file = %v, want EACCES", err)
	}
	s := mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead, File: bytesFile(content)})
	if err := mm.Mprotect(s, pageSize, permRead|permWrite); !errors.Is(err, unix.EACCES) {
		t.Errorf("mprotect(PROT_WRITE) of shared read-only file mapping = %v, want EACCES", err)
	}
	if _, err := mm.MMap(MMapOpts{Length: pageSize, Perms: permRead, Private: true, File: bytesFile(content), Offset: 5}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unaligned offset = %v, want EINVAL", err)
	}
}

func TestCopyInString(t *testing.T) {
	mm, _ := newTestMM(t)
	a := mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead | permWrite, Private: true})
	// A string ending exactly at the end of the mapping, then one without
	// a NUL before the end.
	end := a + pageSize
	if err := mm.CopyOut(end-6, []byte("hello\x00")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    uint64
		max     int
		want    string
		wantErr error
	}{
		{end - 6, 100, "hello", nil},
		{end - 6, 5, "hello", nil},
		{end - 6, 4, "", errNameTooLong},
		{end - 1, 100, "", nil},
		{end, 100, "", ErrBadAddress},
	}
	for _, tc := range tests {
		got, err := mm.CopyInString(tc.addr, tc.max)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("CopyInString(%#x, %d) = %q, %v, want %q, %v", tc.addr, tc.max, got, err, tc.want, tc.wantErr)
		}
	}
	if err := mm.CopyOut(end-3, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := mm.CopyInString(end-3, 100); !errors.Is(err, ErrBadAddress) {
		t.Errorf("CopyInString running off the mapping = %v, want ErrBadAddress", err)
	}
	// Longer strings than the first read (shortString): within a page,
	// and across a page boundary.
	b := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true})
	long := strings.Repeat("0123456789", 30)
	for _, at := range []uint64{b, b + pageSize - 100} {
		if err := mm.CopyOut(at, append([]byte(long), 0)); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			max     int
			want    string
			wantErr error
		}{
			{4095, long, nil},
			{len(long), long, nil},
			{len(long) - 1, "", errNameTooLong},
			{shortString - 1, "", errNameTooLong},
		} {
			got, err := mm.CopyInString(at, tc.max)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("CopyInString(%#x, %d) = %d bytes, %v, want %d bytes, %v", at, tc.max, len(got), err, len(tc.want), tc.wantErr)
			}
		}
	}
}

func TestForkSharesSharedMappings(t *testing.T) {
	mm, _ := newTestMM(t)
	priv := mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead | permWrite, Private: true})
	shared := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite})
	if err := mm.CopyOut(priv, []byte("p")); err != nil {
		t.Fatal(err)
	}
	child, err := mm.fork(newRecordingAS())
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	// A write by the child: visible to the parent through the shared
	// mapping only.
	if err := child.CopyOut(priv, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := child.CopyOut(shared, []byte("s")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	for _, tc := range []struct {
		addr uint64
		want byte
	}{{priv, 'p'}, {shared, 's'}} {
		if err := mm.CopyIn(tc.addr, b); err != nil || b[0] != tc.want {
			t.Errorf("parent byte at %#x after the child wrote = %q, %v, want %q", tc.addr, b, err, tc.want)
		}
	}
	// The shared pages outlive the child, and MADV_DONTNEED keeps them.
	child.Release()
	if err := mm.Madvise(shared, pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	if err := mm.CopyIn(shared, b); err != nil || b[0] != 's' {
		t.Errorf("shared byte after child exit and MADV_DONTNEED = %q, %v, want 's'", b, err)
	}
	mm.Release()
	if got := mm.mf.Allocated(); len(got) != 0 {
		t.Errorf("allocated after both released = %v, want none", got)
	}
}

// callsAS is a recordingAS that counts the calls it gets and fails MapFile
// while failMaps is set.
type callsAS struct {
	*recordingAS
	maps, unmaps int
	failMaps     bool
}

func (a *callsAS) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	a.maps++
	if a.failMaps {
		return errors.New("refused")
	}
	return a.recordingAS.MapFile(addr, offset, length, at, precommit)
}

func (a *callsAS) Unmap(addr, length uint64) error {
	a.unmaps++
	return a.recordingAS.Unmap(addr, length)
}

// TestMMapFixedReplaces: a MAP_FIXED mmap of new memory over mappings is one
// mapping change in the platform address space (no unmap first), the
// replaced memory is given back, and the pages around stay; if the new
// mapping fails, the range is unmapped and its old memory given back too.
func TestMMapFixedReplaces(t *testing.T) {
	const hint = 0x200000000
	tests := []struct {
		name       string
		fail       bool
		wantMaps   int
		wantUnmaps int
		wantLayout string
		wantPages  uint64 // allocated afterwards
	}{
		{"replaced in one change", false, 1, 0,
			fmt.Sprintf("[%#x-%#x rw-][%#x-%#x r--][%#x-%#x rw-]", hint, hint+pageSize, hint+pageSize, hint+3*pageSize, hint+3*pageSize, hint+4*pageSize), 4},
		{"failed map unmaps", true, 1, 1,
			fmt.Sprintf("[%#x-%#x rw-][%#x-%#x rw-]", hint, hint+pageSize, hint+3*pageSize, hint+4*pageSize), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := &callsAS{recordingAS: newRecordingAS()}
			mm, err := NewMM(newTestMemoryFile(t), as, testMinAddr, testMaxAddr)
			if err != nil {
				t.Fatal(err)
			}
			mustMMap(t, mm, MMapOpts{Addr: hint, Length: 4 * pageSize, Perms: permRead | permWrite, Private: true, Fixed: true})
			if err := mm.CopyOut(hint, []byte("abcd")); err != nil {
				t.Fatal(err)
			}
			if err := mm.CopyOut(hint+3*pageSize, []byte("wxyz")); err != nil {
				t.Fatal(err)
			}
			as.maps, as.unmaps, as.failMaps = 0, 0, tc.fail
			_, err = mm.MMap(MMapOpts{Addr: hint + pageSize, Length: 2 * pageSize, Perms: permRead, Private: true, Fixed: true})
			if (err != nil) != tc.fail {
				t.Fatalf("MMap(fixed over the middle) = %v, want failure %v", err, tc.fail)
			}
			if as.maps != tc.wantMaps || as.unmaps != tc.wantUnmaps {
				t.Errorf("platform calls: %d maps, %d unmaps, want %d and %d", as.maps, as.unmaps, tc.wantMaps, tc.wantUnmaps)
			}
			if got := layout(mm); got != tc.wantLayout {
				t.Errorf("layout = %s, want %s", got, tc.wantLayout)
			}
			var pages uint64
			for _, r := range mm.mf.Allocated() {
				pages += (r.End - r.Start) / pageSize
			}
			if pages != tc.wantPages {
				t.Errorf("allocated pages = %d, want %d", pages, tc.wantPages)
			}
			buf := make([]byte, 4)
			for addr, want := range map[uint64]string{hint: "abcd", hint + 3*pageSize: "wxyz"} {
				if err := mm.CopyIn(addr, buf); err != nil || string(buf) != want {
					t.Errorf("CopyIn(%#x) = %q, %v, want %s", addr, buf, err, want)
				}
			}
			checkMirror(t, mm, as.recordingAS)
		})
	}
}
