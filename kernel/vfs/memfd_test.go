package vfs

import (
	"errors"
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
