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

// inUsePages is heap pages that report a fixed memory use of the whole
// sandbox (MemoryInUse), as the kernel's memory file does.
type inUsePages struct {
	heapPages
	inUse uint64
}

func (p *inUsePages) InUse() uint64 { return p.inUse }

// TestStatfsMemorySized checks what statfs reports for a tmpfs with a
// size of its own (its file data is what is used) and for one sized by
// the sandbox's memory (everything the sandbox uses is used).
func TestStatfsMemorySized(t *testing.T) {
	const limit = 64 << 20
	tests := []struct {
		name        string
		memorySized bool
		inUse       uint64
		wantUsed    uint64
	}{
		{"own size", false, 8 << 20, pageSize},
		{"memory sized", true, 8 << 20, 8 << 20},
		{"memory sized, less in use than its files", true, 0, pageSize},
		{"memory sized, more in use than its size", true, 1 << 30, limit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newTmpfs(limit, 1)
			fs.memorySized = tc.memorySized
			fs.pages = &inUsePages{inUse: tc.inUse}
			fs.mu.Lock()
			if _, err := fs.writeLocked(fs.newNodeLocked(unix.S_IFREG|0o644, 0, 0), []byte("x"), 0); err != nil {
				t.Fatal(err)
			}
			fs.mu.Unlock()
			st := decodeStatfs(t, fs.statfsBytes())
			if st.Blocks*4096 != limit || (st.Blocks-st.Bfree)*4096 != tc.wantUsed || st.Bavail != st.Bfree {
				t.Errorf("statfs: blocks %d, free %d, available %d; want %d blocks, %d bytes used",
					st.Blocks, st.Bfree, st.Bavail, limit/4096, tc.wantUsed)
			}
		})
	}
}
