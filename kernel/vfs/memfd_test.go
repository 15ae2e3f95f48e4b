package vfs

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMemfd checks a memfd's reads, writes, truncation, seals and
// reopening.
func TestMemfd(t *testing.T) {
	_, fs := testTree(t)
	f, err := NewMemfd(nil, Owner{}, "t", mfdAllowSealing)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	if n, err := f.Write(nil, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v, want 5, nil", n, err)
	}
	if err := f.Truncate(4096); err != nil {
		t.Fatalf("Truncate(4096) = %v", err)
	}
	st, err := f.Stat()
	if err != nil || st.Size != 4096 || st.FileType() != unix.S_IFREG || f.FileType() != unix.S_IFREG {
		t.Errorf("Stat = %+v, %v, want a regular file of 4096 bytes", st, err)
	}
	g, err := fs.Reopen(f, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("Reopen = %v", err)
	}
	var b [5]byte
	if n, err := g.Read(nil, b[:]); string(b[:n]) != "hello" || err != nil {
		t.Errorf("Read of the reopened memfd = %q, %v, want \"hello\" from offset 0", b[:n], err)
	}
	if _, err := g.Write(nil, []byte("x")); !errors.Is(err, unix.EBADF) {
		t.Errorf("Write on a read-only reopen = %v, want EBADF", err)
	}
	g.DecRef()
	if _, err := f.Seals(unix.F_SEAL_WRITE, false, func(SharedFile) bool { return true }); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Seals(F_SEAL_WRITE) with a writable mapping = %v, want EBUSY", err)
	}
	if _, err := f.Seals(unix.F_SEAL_WRITE, false, nil); err != nil {
		t.Fatalf("Seals(F_SEAL_WRITE) = %v", err)
	}
	if seals, err := f.Seals(0, true, nil); seals&unix.F_SEAL_WRITE == 0 || err != nil {
		t.Errorf("Seals(get) = %#x, %v, want F_SEAL_WRITE", seals, err)
	}
	if _, err := f.PWrite([]byte("x"), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("PWrite after F_SEAL_WRITE = %v, want EPERM", err)
	}
	if got := f.LinkName(); got != "/memfd:t (deleted)" {
		t.Errorf("LinkName() = %q, want \"/memfd:t (deleted)\"", got)
	}
	if _, err := NewMemfd(nil, Owner{}, strings.Repeat("a", 250), 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("NewMemfd(250-byte name) = %v, want EINVAL", err)
	}
}

// TestMapRunsSparse checks that a shared mapping of a sparse file gets
// runs for the allocated pages only, and that a touch (alloc) allocates
// the holes it covers up to the end of the file and no further.
func TestMapRunsSparse(t *testing.T) {
	f, err := NewMemfd(nil, Owner{}, "sparse", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	const gib = 1 << 30
	if err := f.Truncate(4 * gib); err != nil {
		t.Fatalf("Truncate(4 GiB) = %v", err)
	}
	for _, off := range []int64{pageSize, 2*pageSize + 5, 2 * gib} {
		if _, err := f.Seek(off, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(nil, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	sf, runs, _, err := f.MapShared(0, 4*gib, true, false)
	if err != nil {
		t.Fatalf("MapShared = %v", err)
	}
	var got []uint64
	for _, r := range runs {
		for o := r.FileOff; o < r.FileOff+r.Length; o += pageSize {
			got = append(got, o)
		}
	}
	if want := []uint64{pageSize, 2 * pageSize, 2 * gib}; !slices.Equal(got, want) {
		t.Errorf("MapShared of the sparse file: pages at %v, want %v", got, want)
	}
	tests := []struct {
		name        string
		off, length uint64
		alloc       bool
		want        uint64 // bytes the runs cover
	}{
		{"hole, not allocated", gib, 16 * pageSize, false, 0},
		{"hole, allocated", gib, 16 * pageSize, true, 16 * pageSize},
		{"again, already there", gib, 16 * pageSize, false, 16 * pageSize},
		{"across the end of the file", 4*gib - 2*pageSize, 16 * pageSize, true, 2 * pageSize},
		{"past the end", 4 * gib, 16 * pageSize, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := sf.MapRuns(tc.off, tc.length, tc.alloc)
			if err != nil {
				t.Fatalf("MapRuns = %v", err)
			}
			n := uint64(0)
			for _, r := range runs {
				n += r.Length
			}
			if n != tc.want {
				t.Errorf("MapRuns(%#x, %#x, %v) covers %d bytes, want %d", tc.off, tc.length, tc.alloc, n, tc.want)
			}
		})
	}
	st, err := f.Stat()
	if want := uint64(21 * pageSize / 512); err != nil || st.Blocks != want {
		t.Errorf("Stat blocks = %d, %v, want %d (the pages written and touched)", st.Blocks, err, want)
	}
}
