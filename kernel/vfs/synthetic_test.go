package vfs

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSynthetic checks reads, seeks, pread, stat and the refused
// operations of a kernel-generated file.
func TestSynthetic(t *testing.T) {
	f, err := NewSynthetic("/proc/self/maps", []byte("0123456789"), unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	var b [4]byte
	for _, want := range []string{"0123", "4567", "89", ""} {
		n, err := f.Read(nil, b[:])
		if err != nil || string(b[:n]) != want {
			t.Fatalf("Read = %q, %v, want %q, nil", b[:n], err, want)
		}
	}
	if off, err := f.Seek(2, unix.SEEK_SET); off != 2 || err != nil {
		t.Errorf("Seek(2, SEEK_SET) = %d, %v, want 2, nil", off, err)
	}
	if n, err := f.Read(nil, b[:1]); n != 1 || b[0] != '2' || err != nil {
		t.Errorf("Read after seek = %q, %v, want \"2\"", b[:n], err)
	}
	if n, err := f.PRead(b[:], 8); n != 2 || string(b[:n]) != "89" || err != nil {
		t.Errorf("PRead(8) = %q, %v, want \"89\"", b[:n], err)
	}
	if _, err := f.Seek(-1, unix.SEEK_SET); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Seek(-1) = %v, want EINVAL", err)
	}
	st, err := f.Stat()
	if err != nil || st.FileType() != unix.S_IFREG || st.Mode&0o777 != 0o444 || st.Size != 0 {
		t.Errorf("Stat = %+v, %v, want a regular file, 0444, size 0", st, err)
	}
	if _, err := f.Write(nil, []byte("x")); !errors.Is(err, unix.EBADF) {
		t.Errorf("Write on a read-only open = %v, want EBADF", err)
	}
	w, err := NewSynthetic("/proc/self/maps", nil, unix.O_WRONLY)
	if err != nil {
		t.Fatalf("NewSynthetic(O_WRONLY) = %v, want nil (root may open it)", err)
	}
	defer w.DecRef()
	if _, err := w.Write(nil, []byte("x")); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Write = %v, want EINVAL", err)
	}
	if _, err := NewSynthetic("/proc/self/maps", nil, unix.O_RDONLY|unix.O_DIRECTORY); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("NewSynthetic(O_DIRECTORY) = %v, want ENOTDIR", err)
	}
}
