package kernel

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// hostLikeFile is a FileContents the file cache shares, as it shares host
// files: key identifies it.
type hostLikeFile struct {
	bytesFile
	key fileKey
}

func (f hostLikeFile) cacheKey() (fileKey, bool) { return f.key, true }

// newHostLikeFile returns a file of n pages whose page i is filled with
// byte 'a'+i, plus 100 bytes of 'z' after them.
func newHostLikeFile(n int, ino uint64) hostLikeFile {
	var b []byte
	for i := range n {
		b = append(b, bytes.Repeat([]byte{byte('a' + i)}, pageSize)...)
	}
	b = append(b, bytes.Repeat([]byte{'z'}, 100)...)
	return hostLikeFile{bytesFile(b), fileKey{DevMajor: 8, Ino: ino, Size: uint64(len(b)), MtimeSec: 1}}
}

// readByte returns the byte at addr or fails t.
func readByte(t *testing.T, mm *MM, addr uint64) byte {
	t.Helper()
	b := make([]byte, 1)
	if err := mm.CopyIn(addr, b); err != nil {
		t.Fatalf("CopyIn(%#x): %v", addr, err)
	}
	return b[0]
}

// heldPages returns the held page counts of the only cached file, or nil
// if nothing is cached.
func heldPages(t *testing.T, mf *MemoryFile) []uint32 {
	t.Helper()
	c := &mf.files
	c.mu.Lock()
	defer c.mu.Unlock()
	switch len(c.files) {
	case 0:
		return nil
	case 1:
		return append([]uint32(nil), c.files[0].Refs...)
	}
	t.Fatalf("%d cached files, want at most 1", len(c.files))
	return nil
}

// keptPages returns the retained pages of the cached file with key k, in
// order, or nil if it has none or is not cached.
func keptPages(t *testing.T, mf *MemoryFile, k fileKey) []uint64 {
	t.Helper()
	c := &mf.files
	c.mu.Lock()
	defer c.mu.Unlock()
	cf := c.lookupLocked(k)
	if cf == nil {
		return nil
	}
	var out []uint64
	for p := range uint64(len(cf.Refs)) {
		if cf.keptAt(p) {
			if cf.Refs[p] != 0 {
				t.Errorf("page %d of inode %d is retained with %d counts", p, k.Ino, cf.Refs[p])
			}
			out = append(out, p)
		}
	}
	if len(out) != cf.keptPages {
		t.Errorf("inode %d: %d retained pages counted, %d marked", k.Ino, cf.keptPages, len(out))
	}
	return out
}

// checkRetainedSum fails t unless the cache's retainedBytes is the sum of
// its files' retained pages, and the retained list holds exactly the
// files with some.
func checkRetainedSum(t *testing.T, mf *MemoryFile) {
	t.Helper()
	c := &mf.files
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	listed := 0
	for _, cf := range c.files {
		sum += uint64(cf.keptPages) * pageSize
		if cf.keptPages > 0 {
			listed++
			if !slices.Contains(c.retained, cf) {
				t.Errorf("inode %d has %d retained pages but is not in the retained list", cf.Key.Ino, cf.keptPages)
			}
		}
	}
	if sum != c.retainedBytes || listed != len(c.retained) {
		t.Errorf("retainedBytes %d with %d files listed; the files hold %d bytes in %d files", c.retainedBytes, len(c.retained), sum, listed)
	}
}

// pageList returns the pages [first, last).
func pageList(first, last uint64) []uint64 {
	var out []uint64
	for p := first; p < last; p++ {
		out = append(out, p)
	}
	return out
}

func TestFileCacheSharesPages(t *testing.T) {
	mm, as := newTestMM(t)
	mf := mm.mf
	base, baseBytes := len(mf.Allocated()), mf.allocatedBytes()
	f := newHostLikeFile(4, 1)
	a := mustMMap(t, mm, MMapOpts{Length: 3 * pageSize, Perms: permRead | permExec, Private: true, File: f, Name: "/lib/x"})
	b := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead, File: f, Offset: 2 * pageSize, Name: "/lib/x"})
	other, err := NewMM(mf, newRecordingAS(), testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := mustMMap(t, other, MMapOpts{Length: 6 * pageSize, Perms: permRead, Private: true, File: f, Name: "/lib/x"})
	checkMirror(t, mm, as)

	// c's sixth page lies past the end of the file: anonymous memory.
	if v := other.vmaAtLocked(c + 5*pageSize); v.File != nil || v.Name != "/lib/x" {
		t.Errorf("page past the end of the file: File %v, Name %q; want anonymous memory with the file's name", v.File != nil, v.Name)
	}
	va, vb, vc := mm.vmaAtLocked(a), mm.vmaAtLocked(b), other.vmaAtLocked(c)
	if !va.COW || !vb.COW || !vc.COW {
		t.Fatalf("COW = %v %v %v, want all true for read-only mappings", va.COW, vb.COW, vc.COW)
	}
	if va.Off+2*pageSize != vb.Off || va.Off != vc.Off {
		t.Errorf("Off = %#x, %#x, %#x: want one copy (a+2 pages = b, a = c)", va.Off, vb.Off, vc.Off)
	}
	for _, tc := range []struct {
		mm   *MM
		addr uint64
		want byte
	}{
		{mm, a, 'a'}, {mm, a + 2*pageSize, 'c'}, {mm, b, 'c'}, {mm, b + pageSize, 'd'},
		{other, c + 3*pageSize, 'd'}, {other, c + 4*pageSize, 'z'}, {other, c + 4*pageSize + 100, 0},
		{other, c + 5*pageSize, 0}, // past the end of the file
	} {
		if got := readByte(t, tc.mm, tc.addr); got != tc.want {
			t.Errorf("byte at %#x = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got, want := heldPages(t, mf), []uint32{2, 2, 3, 2, 1}; !slicesEqual(got, want) {
		t.Errorf("page counts = %v, want %v", got, want)
	}
	for _, m := range mm.Mappings() {
		if m.Start == b && (m.Offset != 2*pageSize || m.Ino != 1 || m.DevMajor != 8) {
			t.Errorf("mapping of b = %+v, want offset %#x, device 8:0, inode 1", m, 2*pageSize)
		}
	}

	// Unmapping the middle page of a drops its count only.
	if err := mm.Munmap(a+pageSize, pageSize); err != nil {
		t.Fatal(err)
	}
	if got, want := heldPages(t, mf), []uint32{2, 1, 3, 2, 1}; !slicesEqual(got, want) {
		t.Errorf("page counts after munmap of one page = %v, want %v", got, want)
	}
	if got := keptPages(t, mf, f.key); got != nil {
		t.Errorf("retained pages = %v, want none (c still maps page 1)", got)
	}
	mm.Release()
	other.Release()
	// Every page read is retained, and the memory limit does not count
	// them.
	if got, want := heldPages(t, mf), []uint32{0, 0, 0, 0, 0}; !slicesEqual(got, want) {
		t.Errorf("page counts after both MMs are released = %v, want %v", got, want)
	}
	if got, want := keptPages(t, mf, f.key), pageList(0, 5); !slices.Equal(got, want) {
		t.Errorf("retained pages after release = %v, want %v", got, want)
	}
	checkRetainedSum(t, mf)
	if got := mf.allocatedBytes(); got != baseBytes {
		t.Errorf("allocatedBytes() with only retained pages cached = %d, want %d as before the mappings", got, baseBytes)
	}
	if got, want := mf.files.dropRetained(mf), uint64(5*pageSize); got != want {
		t.Errorf("dropRetained() = %d, want %d", got, want)
	}
	if got := heldPages(t, mf); got != nil {
		t.Errorf("page counts after dropRetained = %v, want nothing cached", got)
	}
	if got := len(mf.Allocated()); got != base {
		t.Errorf("memory file has %d allocated ranges after dropRetained, want %d", got, base)
	}
}

func TestFileCacheCopyOnWrite(t *testing.T) {
	mm, as := newTestMM(t)
	f := newHostLikeFile(4, 2)
	a := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permExec, Private: true, File: f})
	other, err := NewMM(mm.mf, newRecordingAS(), testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatal(err)
	}
	o := mustMMap(t, other, MMapOpts{Length: 4 * pageSize, Perms: permRead, Private: true, File: f})

	// A write fault on a read-only mapping is a real fault.
	if err := mm.HandleFault(a, platform.AccessType{Write: true}); !errors.Is(err, ErrBadAddress) {
		t.Errorf("write fault on r-x file mapping = %v, want ErrBadAddress", err)
	}
	if err := mm.Mprotect(a, 4*pageSize, permRead|permWrite); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as) // still mapped without write permission
	if as.pages[a].at.Write {
		t.Fatalf("COW page mapped writable after mprotect")
	}
	// The application writes page 1 (a write fault), the sentry page 2.
	if err := mm.HandleFault(a+pageSize+8, platform.AccessType{Write: true}); err != nil {
		t.Fatalf("write fault on COW page: %v", err)
	}
	if !as.pages[a+pageSize].at.Write || as.pages[a].at.Write {
		t.Errorf("after the fault: page 1 writable %v (want true), page 0 writable %v (want false)",
			as.pages[a+pageSize].at.Write, as.pages[a].at.Write)
	}
	b1, err := mm.mf.Bytes(mm.vmaAtLocked(a+pageSize).Off, 1)
	if err != nil {
		t.Fatal(err)
	}
	b1[0] = 'X' // the application's write
	if err := mm.CopyOut(a+2*pageSize, []byte("Y")); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	for _, tc := range []struct {
		mm   *MM
		addr uint64
		want byte
	}{
		{mm, a, 'a'}, {mm, a + pageSize, 'X'}, {mm, a + pageSize + 1, 'b'}, {mm, a + 2*pageSize, 'Y'},
		{mm, a + 3*pageSize, 'd'}, {other, o + pageSize, 'b'}, {other, o + 2*pageSize, 'c'},
	} {
		if got := readByte(t, tc.mm, tc.addr); got != tc.want {
			t.Errorf("byte at %#x = %q, want %q", tc.addr, got, tc.want)
		}
	}
	// /proc/PID/maps still shows one mapping.
	if ms := mm.Mappings(); len(ms) != 1 || ms[0].End-ms[0].Start != 4*pageSize {
		t.Errorf("Mappings() = %+v, want one 4-page mapping", ms)
	}

	// MADV_DONTNEED brings the file's contents back.
	if err := mm.Madvise(a, 4*pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, mm, as)
	if got := readByte(t, mm, a+pageSize); got != 'b' {
		t.Errorf("byte after MADV_DONTNEED = %q, want the file's 'b'", got)
	}
	if n := len(mm.vmas); n != 1 || !mm.vmas[0].COW {
		t.Errorf("after MADV_DONTNEED: %d vmas (COW %v), want the one COW vma again", n, mm.vmas[0].COW)
	}
}

func TestFileCacheWritablePrivate(t *testing.T) {
	mm, as := newTestMM(t)
	f := newHostLikeFile(2, 3)
	a := mustMMap(t, mm, MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true, File: f, Offset: pageSize})
	v := mm.vmaAtLocked(a)
	if v.COW || v.File == nil || v.Off == v.File.Base+pageSize {
		t.Fatalf("writable private file mapping: COW %v, Off %#x: want a private copy", v.COW, v.Off)
	}
	checkMirror(t, mm, as)
	if err := mm.CopyOut(a, []byte("Q")); err != nil {
		t.Fatal(err)
	}
	if got := readByte(t, mm, a); got != 'Q' {
		t.Errorf("written byte = %q, want 'Q'", got)
	}
	if got := readByte(t, mm, a+pageSize); got != 'z' {
		t.Errorf("second page = %q, want the file's 'z'", got)
	}
	if err := mm.Madvise(a, pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	if got := readByte(t, mm, a); got != 'b' {
		t.Errorf("byte after MADV_DONTNEED = %q, want the file's 'b'", got)
	}
	checkMirror(t, mm, as)
}

func TestFileCacheForkAndMremap(t *testing.T) {
	mm, _ := newTestMM(t)
	f := newHostLikeFile(3, 4)
	a := mustMMap(t, mm, MMapOpts{Length: 3 * pageSize, Perms: permRead | permWrite, Private: true, File: f})
	r := mustMMap(t, mm, MMapOpts{Length: 3 * pageSize, Perms: permRead, Private: true, File: f})
	if err := mm.CopyOut(a, []byte("P")); err != nil {
		t.Fatal(err)
	}
	childAS := newRecordingAS()
	child, err := mm.fork(childAS)
	if err != nil {
		t.Fatal(err)
	}
	checkMirror(t, child, childAS)
	if child.vmaAtLocked(r).Off != mm.vmaAtLocked(r).Off {
		t.Errorf("forked read-only file mapping has its own copy; want the cache's pages")
	}
	if got, want := heldPages(t, mm.mf), []uint32{4, 4, 4, 0}; !slicesEqual(got, want) {
		t.Errorf("page counts after fork = %v, want %v", got, want)
	}
	if pv, cv := mm.vmaAtLocked(a), child.vmaAtLocked(a); !pv.COW || !cv.COW || pv.Off != cv.Off {
		t.Errorf("forked private copy of file pages: COW %v/%v, Off %#x/%#x: want both COW over the same pages",
			pv.COW, cv.COW, pv.Off, cv.Off)
	}
	if err := child.CopyOut(a, []byte("C")); err != nil {
		t.Fatal(err)
	}
	if got := readByte(t, mm, a); got != 'P' {
		t.Errorf("parent's byte after the child's write = %q, want 'P'", got)
	}
	// MADV_DONTNEED in the parent maps the file's page again; the child
	// keeps its write.
	if err := mm.Madvise(a, pageSize, madvDontNeed); err != nil {
		t.Fatal(err)
	}
	if got, cgot := readByte(t, mm, a), readByte(t, child, a); got != 'a' || cgot != 'C' {
		t.Errorf("after the parent's MADV_DONTNEED: parent %q, child %q; want 'a' (the file), 'C'", got, cgot)
	}
	checkMirror(t, mm, mm.as.(*recordingAS))
	checkMirror(t, child, childAS)
	// Moving a COW mapping carries its pages and counts.
	n, err := child.Mremap(r, 3*pageSize, 3*pageSize, mremapMayMove|mremapFixed, 0x300000000)
	if err != nil {
		t.Fatal(err)
	}
	if got := readByte(t, child, n+2*pageSize); got != 'c' {
		t.Errorf("moved mapping's third page = %q, want 'c'", got)
	}
	// Shrinking drops the counts of the pages it unmaps.
	if _, err := child.Mremap(n, 3*pageSize, pageSize, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := heldPages(t, mm.mf), []uint32{4, 3, 3, 0}; !slicesEqual(got, want) {
		t.Errorf("page counts after shrinking = %v, want %v", got, want)
	}
	child.Release()
	mm.Release()
	if got, want := keptPages(t, mm.mf, f.key), pageList(0, 3); !slices.Equal(got, want) {
		t.Errorf("retained pages after release = %v, want %v", got, want)
	}
	mm.mf.files.dropRetained(mm.mf)
	if got := heldPages(t, mm.mf); got != nil {
		t.Errorf("page counts after release and dropRetained = %v, want nothing cached", got)
	}
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFileCacheMremapGrows grows a mapping of a file's first page to three
// pages: over the file's pages when the cache holds or retains them or can
// read them, anonymous memory when it can do none of these (a file without
// a PageSource, as after a restore).
func TestFileCacheMremapGrows(t *testing.T) {
	for _, tc := range []struct {
		name string
		// whole maps the whole file first, so its pages are held;
		// unmapped, it unmaps that mapping again, so they are retained.
		whole, unmapped bool
		perms           perms
		want            []byte
		wantRefs        []uint32
	}{
		{name: "retained, no source", whole: true, unmapped: true, perms: permRead, want: []byte("abc"), wantRefs: []uint32{1, 1, 1, 0}},
		{name: "held read-only", whole: true, perms: permRead, want: []byte("abc"), wantRefs: []uint32{2, 2, 2, 1}},
		{name: "held writable", whole: true, perms: permRead | permWrite, want: []byte("abc"), wantRefs: []uint32{2, 2, 2, 1}},
		{name: "not held, no source", perms: permRead, want: []byte{'a', 0, 0}, wantRefs: []uint32{1, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm, as := newTestMM(t)
			f := newHostLikeFile(3, 7)
			if tc.whole {
				w := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead, Private: true, File: f})
				if tc.unmapped {
					if err := mm.Munmap(w, 4*pageSize); err != nil {
						t.Fatal(err)
					}
				}
			}
			a := mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: tc.perms, Private: true, File: f})
			n, err := mm.Mremap(a, pageSize, 3*pageSize, mremapMayMove, 0)
			if err != nil {
				t.Fatalf("Mremap: %v", err)
			}
			for i, w := range tc.want {
				if got := readByte(t, mm, n+uint64(i)*pageSize); got != w {
					t.Errorf("page %d after growing = %q, want %q", i, got, w)
				}
			}
			if got := heldPages(t, mm.mf); !slicesEqual(got, tc.wantRefs) {
				t.Errorf("page counts after growing = %v, want %v", got, tc.wantRefs)
			}
			checkMirror(t, mm, as)
			checkRetainedSum(t, mm.mf)
			mm.Release()
			mm.mf.files.dropRetained(mm.mf)
			if got := heldPages(t, mm.mf); got != nil {
				t.Errorf("page counts after release and dropRetained = %v, want nothing cached", got)
			}
		})
	}
}

// mapAndUnmap maps the whole of f read-only in a new MM of mf, checks its
// bytes, and releases the MM.
func mapAndUnmap(t *testing.T, mf *MemoryFile, f hostLikeFile) {
	t.Helper()
	mm, err := NewMM(mf, newRecordingAS(), testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.bytesFile) / pageSize
	a := mustMMap(t, mm, MMapOpts{Length: uint64(n+1) * pageSize, Perms: permRead | permExec, Private: true, File: f})
	for i := range n {
		if got, want := readByte(t, mm, a+uint64(i)*pageSize), byte('a'+i); got != want {
			t.Errorf("inode %d page %d = %q, want %q", f.key.Ino, i, got, want)
		}
	}
	if got := readByte(t, mm, a+uint64(n)*pageSize); got != 'z' {
		t.Errorf("inode %d last page = %q, want 'z'", f.key.Ino, got)
	}
	mm.Release()
}

// TestFileCacheRetains: a file mapped again after every mapping of it is
// gone (a program run again) is read from the file once; so are pages
// unmapped while the file stays mapped elsewhere.
func TestFileCacheRetains(t *testing.T) {
	mf := newTestMemoryFile(t)
	f := newHostLikeFile(3, 11)
	for round := range 3 {
		mapAndUnmap(t, mf, f)
		if got := mf.files.counts.fills.Load(); got != 1 {
			t.Errorf("round %d: %d reads of the file, want 1", round, got)
		}
		if got, want := keptPages(t, mf, f.key), pageList(0, 4); !slices.Equal(got, want) {
			t.Errorf("round %d: retained pages = %v, want %v", round, got, want)
		}
		checkRetainedSum(t, mf)
	}

	// Pages unmapped while another mapping holds the file.
	mm, _ := newTestMM(t)
	g := newHostLikeFile(4, 12)
	a := mustMMap(t, mm, MMapOpts{Length: 5 * pageSize, Perms: permRead, Private: true, File: g})
	mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead, Private: true, File: g}) // holds page 0
	if err := mm.Munmap(a, 5*pageSize); err != nil {
		t.Fatal(err)
	}
	if got, want := keptPages(t, mm.mf, g.key), pageList(1, 5); !slices.Equal(got, want) {
		t.Errorf("retained pages with page 0 still mapped = %v, want %v", got, want)
	}
	fills := mm.mf.files.counts.fills.Load()
	a = mustMMap(t, mm, MMapOpts{Length: 5 * pageSize, Perms: permRead, Private: true, File: g})
	if got := mm.mf.files.counts.fills.Load(); got != fills {
		t.Errorf("mapping the retained pages again read the file %d times, want 0", got-fills)
	}
	if got := readByte(t, mm, a+3*pageSize); got != 'd' {
		t.Errorf("retained page 3 = %q, want 'd'", got)
	}
	if got, want := heldPages(t, mm.mf), []uint32{2, 1, 1, 1, 1}; !slicesEqual(got, want) {
		t.Errorf("page counts = %v, want %v", got, want)
	}
	if got := keptPages(t, mm.mf, g.key); got != nil {
		t.Errorf("retained pages after mapping them again = %v, want none", got)
	}
	checkRetainedSum(t, mm.mf)
}

// TestFileCacheRetainBound: retained pages stay within the bound, the files
// released longest ago giving theirs back first; a file whose pages alone
// pass the bound keeps none and leaves the others be.
func TestFileCacheRetainBound(t *testing.T) {
	mf := newTestMemoryFile(t)
	// An eighth of the limit: 10 pages.
	mf.setLimit(80 * pageSize)
	if got, want := retainLimit(mf.files.limit.Load()), uint64(10*pageSize); got != want {
		t.Fatalf("retainLimit = %d, want %d", got, want)
	}
	files := []hostLikeFile{newHostLikeFile(3, 21), newHostLikeFile(3, 22), newHostLikeFile(3, 23)}
	for _, f := range files[:2] {
		mapAndUnmap(t, mf, f) // 4 pages each: both fit
	}
	mapAndUnmap(t, mf, files[0]) // released again: now the newest
	mapAndUnmap(t, mf, files[2]) // 12 pages: the oldest goes
	for i, want := range [][]uint64{pageList(0, 4), nil, pageList(0, 4)} {
		if got := keptPages(t, mf, files[i].key); !slices.Equal(got, want) {
			t.Errorf("file %d: retained pages = %v, want %v", i, got, want)
		}
	}
	checkRetainedSum(t, mf)
	mf.files.mu.Lock()
	if cf := mf.files.lookupLocked(files[1].key); cf != nil {
		t.Errorf("evicted file still cached (%d pages held)", cf.Held)
	}
	mf.files.mu.Unlock()

	big := newHostLikeFile(10, 24) // 11 pages
	mapAndUnmap(t, mf, big)
	if got := keptPages(t, mf, big.key); got != nil {
		t.Errorf("file larger than the bound: retained pages = %v, want none", got)
	}
	for _, i := range []int{0, 2} {
		if got := keptPages(t, mf, files[i].key); len(got) != 4 {
			t.Errorf("file %d after the large file: retained pages = %v, want its 4", i, got)
		}
	}
	checkRetainedSum(t, mf)
	fills := mf.files.counts.fills.Load()
	mapAndUnmap(t, mf, files[0])
	mapAndUnmap(t, mf, files[1])
	if got := mf.files.counts.fills.Load() - fills; got != 1 {
		t.Errorf("mapping a retained and an evicted file read %d runs, want 1 (the evicted one)", got)
	}
}

// TestFileCacheNewVersion: a file that changed on the host (another size
// or mtime) is a new entry, with the new contents, and the old version's
// retained pages are given back; pages of the old version still mapped
// stay as they were.
func TestFileCacheNewVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		// mapped keeps a mapping of the old version.
		mapped bool
	}{{"old version unmapped", false}, {"old version mapped", true}} {
		t.Run(tc.name, func(t *testing.T) {
			mm, _ := newTestMM(t)
			mf := mm.mf
			old := newHostLikeFile(3, 31)
			if tc.mapped {
				mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead, Private: true, File: old})
			}
			mapAndUnmap(t, mf, old)
			newer := newHostLikeFile(2, 31)
			newer.key.MtimeSec = 2
			mapAndUnmap(t, mf, newer) // checks the new contents
			if got := keptPages(t, mf, old.key); got != nil {
				t.Errorf("old version's retained pages = %v, want none", got)
			}
			if got, want := keptPages(t, mf, newer.key), pageList(0, 3); !slices.Equal(got, want) {
				t.Errorf("new version's retained pages = %v, want %v", got, want)
			}
			mf.files.mu.Lock()
			cached := mf.files.lookupLocked(old.key) != nil
			mf.files.mu.Unlock()
			if cached != tc.mapped {
				t.Errorf("old version cached = %v, want %v", cached, tc.mapped)
			}
			checkRetainedSum(t, mf)
			if tc.mapped {
				if got := readByte(t, mm, mm.vmas[0].Start); got != 'a' {
					t.Errorf("old version's mapped page = %q, want 'a'", got)
				}
			}
		})
	}
}

// TestFileCacheRetainedNotLimited: the memory limit does not count the
// ranges of files that hold only retained pages, so an allocation that
// fits without them succeeds; mapping such a file again counts its range
// again, and fails where an allocation of it would.
func TestFileCacheRetainedNotLimited(t *testing.T) {
	mf := newTestMemoryFile(t)
	mf.setLimit(64 * pageSize)
	f := newHostLikeFile(5, 41) // 6 pages, within the bound of 8
	base := mf.allocatedBytes()
	mapAndUnmap(t, mf, f)
	if got := keptPages(t, mf, f.key); len(got) != 6 {
		t.Fatalf("retained pages = %v, want 6", got)
	}
	if got := mf.allocatedBytes(); got != base {
		t.Errorf("allocatedBytes() = %d, want %d: retained pages are not counted", got, base)
	}
	r, err := mf.Allocate(64*pageSize - base)
	if err != nil {
		t.Fatalf("Allocate of the rest of the limit with retained pages cached: %v", err)
	}
	// Mapping the file again counts its range again: not beyond the limit.
	mm, err := NewMM(mf, newRecordingAS(), testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatal(err)
	}
	o := MMapOpts{Length: 6 * pageSize, Perms: permRead, Private: true, File: f}
	if _, err := mm.MMap(o); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("MMap of the retained file with the limit reached = %v, want ENOMEM", err)
	}
	if got := keptPages(t, mf, f.key); len(got) != 6 {
		t.Errorf("retained pages after the failed mmap = %v, want the 6", got)
	}
	mf.Free(r)
	fills := mf.files.counts.fills.Load()
	mustMMap(t, mm, o)
	if got := mf.files.counts.fills.Load(); got != fills {
		t.Errorf("mapping the retained file read %d runs, want none", got-fills)
	}
	if got, want := mf.allocatedBytes(), base+6*pageSize; got != want {
		t.Errorf("allocatedBytes() with the file mapped = %d, want %d", got, want)
	}
	checkCacheInvariants(t, mf, retainLimit(mf.files.limit.Load()))
}

// checkCacheInvariants fails t unless every cached file holds or retains a
// page, idleBytes is the length of the files that only retain pages, and
// the retained pages stay within bound.
func checkCacheInvariants(t *testing.T, mf *MemoryFile, bound uint64) {
	t.Helper()
	checkRetainedSum(t, mf)
	c := &mf.files
	c.mu.Lock()
	defer c.mu.Unlock()
	var idle uint64
	for _, cf := range c.files {
		if cf.Held == 0 && cf.keptPages == 0 {
			t.Errorf("inode %d cached with no page held or retained", cf.Key.Ino)
		}
		held := 0
		for _, r := range cf.Refs {
			if r != 0 {
				held++
			}
		}
		if held != cf.Held {
			t.Errorf("inode %d: Held %d, %d pages with a count", cf.Key.Ino, cf.Held, held)
		}
		if cf.Held == 0 {
			idle += cf.length()
		}
	}
	if got := c.idleBytes.Load(); got != idle {
		t.Errorf("idleBytes = %d, want %d", got, idle)
	}
	if c.retainedBytes > bound {
		t.Errorf("retainedBytes %d past the bound %d", c.retainedBytes, bound)
	}
}

// TestFileCacheRandomMappings maps and unmaps parts of a few files in a
// few address spaces at random, with a bound that forces evictions, and
// checks the cache's invariants and every mapped page's contents after
// each step; once everything is unmapped and the retained pages dropped,
// nothing is cached and the memory file is as it was.
func TestFileCacheRandomMappings(t *testing.T) {
	mf := newTestMemoryFile(t)
	mf.setLimit(8 * 12 * pageSize) // a bound of 12 pages
	bound := retainLimit(mf.files.limit.Load())
	base := len(mf.Allocated())
	files := []hostLikeFile{newHostLikeFile(3, 61), newHostLikeFile(6, 62), newHostLikeFile(9, 63), newHostLikeFile(14, 64)}
	type mapping struct {
		mm      *MM
		addr, n uint64
		f, off  int // file index, first page
	}
	var mms []*MM
	for range 3 {
		mm, err := NewMM(mf, newRecordingAS(), testMinAddr, testMaxAddr)
		if err != nil {
			t.Fatal(err)
		}
		mms = append(mms, mm)
	}
	var live []mapping
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 400 {
		if len(live) > 0 && (len(live) >= 4 || rng.IntN(2) == 0) {
			// Unmap one mapping, or a page of it (at most 4 live).
			i := rng.IntN(len(live))
			m := live[i]
			if m.n > 1 && rng.IntN(2) == 0 {
				if err := m.mm.Munmap(m.addr+(m.n-1)*pageSize, pageSize); err != nil {
					t.Fatal(err)
				}
				live[i].n--
			} else {
				if err := m.mm.Munmap(m.addr, m.n*pageSize); err != nil {
					t.Fatal(err)
				}
				live = slices.Delete(live, i, i+1)
			}
		} else {
			fi := rng.IntN(len(files))
			pages := len(files[fi].bytesFile)/pageSize + 1
			off := rng.IntN(pages)
			n := 1 + rng.IntN(pages-off)
			mm := mms[rng.IntN(len(mms))]
			a := mustMMap(t, mm, MMapOpts{Length: uint64(n) * pageSize, Perms: permRead, Private: true, File: files[fi], Offset: uint64(off) * pageSize})
			live = append(live, mapping{mm: mm, addr: a, n: uint64(n), f: fi, off: off})
		}
		checkCacheInvariants(t, mf, bound)
		for _, m := range live {
			for p := range m.n {
				want := byte('a' + m.off + int(p))
				if m.off+int(p) == len(files[m.f].bytesFile)/pageSize {
					want = 'z'
				}
				if got := readByte(t, m.mm, m.addr+p*pageSize); got != want {
					t.Fatalf("step %d: inode %d page %d = %q, want %q", step, files[m.f].key.Ino, m.off+int(p), got, want)
				}
			}
		}
		if t.Failed() {
			t.Fatalf("step %d failed", step)
		}
	}
	// Evictions happened: more runs were read than the files have pages.
	if got := mf.files.counts.fills.Load(); got < 40 {
		t.Errorf("%d runs read in all: the bound never evicted much", got)
	}
	for _, mm := range mms {
		mm.Release()
	}
	checkCacheInvariants(t, mf, bound)
	mf.files.dropRetained(mf)
	if n := len(mf.files.files); n != 0 {
		t.Errorf("%d files cached after every mapping is gone and dropRetained, want none", n)
	}
	if got := len(mf.Allocated()); got != base {
		t.Errorf("memory file has %d allocated ranges at the end, want %d", got, base)
	}
}
