package vfs

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func decodeStatfs(t *testing.T, b [StatfsSize]byte) unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	if binary.Size(st) != StatfsSize {
		t.Fatalf("binary.Size(unix.Statfs_t) = %d, want %d", binary.Size(st), StatfsSize)
	}
	if err := binary.Read(bytes.NewReader(b[:]), binary.LittleEndian, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatfs(t *testing.T) {
	rootDir, fs := testTree(t)
	var want unix.Statfs_t
	if err := unix.Statfs(filepath.Join(rootDir, "etc"), &want); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	fromFile, err := f.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	fromPath, err := fs.Statfs(nil, "/etc")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][StatfsSize]byte{"File.Statfs": fromFile, "FS.Statfs": fromPath} {
		got := decodeStatfs(t, b)
		// Free counts move with other writers on the host; compare the rest.
		if got.Type != want.Type || got.Bsize != want.Bsize || got.Blocks != want.Blocks ||
			got.Fsid != want.Fsid || got.Namelen != want.Namelen || got.Flags != want.Flags|unix.ST_RDONLY {
			t.Errorf("%s = %+v, want %+v with ST_RDONLY", name, got, want)
		}
	}
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	b, _ := r.Statfs()
	if got := decodeStatfs(t, b); got.Type != pipefsMagic || got.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("pipe Statfs type = %#x flags %#x, want pipefs, ST_RDONLY", got.Type, got.Flags)
	}
	if _, err := fs.Statfs(nil, "/nope"); err != unix.ENOENT {
		t.Errorf("Statfs(/nope) = %v, want ENOENT", err)
	}
}
