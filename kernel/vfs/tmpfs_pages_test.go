package vfs

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// countingPages is heap pages that count the calls a tmpfs makes.
type countingPages struct {
	heapPages
	allocs, frees int
	freed         uint64
}

func (p *countingPages) AllocatePages(n uint64) (uint64, error) {
	p.allocs++
	return p.heapPages.AllocatePages(n)
}

func (p *countingPages) FreePages(off, n uint64) {
	p.frees++
	p.freed += n
	p.heapPages.FreePages(off, n)
}

// TestTmpfsSparePages checks the pages a mounted tmpfs keeps spare
// (tmpfs.spare): small files made and removed one after another reuse
// one page; many made one after another take their pages spareFill at a
// time, and removed go back in a few calls; a
// reused page reads as zero; a memfd's pages and those of a file mapped
// shared are never kept.
func TestTmpfsSparePages(t *testing.T) {
	const files = 200
	create := func(t *testing.T, fs *FS, p string, data []byte) {
		t.Helper()
		f, err := fs.OpenAt(nil, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		defer f.DecRef()
		if n, err := f.Write(nil, data); n != len(data) || err != nil {
			t.Fatalf("write %s = %d, %v", p, n, err)
		}
	}
	remove := func(t *testing.T, fs *FS, p string) {
		t.Helper()
		if err := fs.Unlinkat(nil, p, 0); err != nil {
			t.Fatalf("unlink %s: %v", p, err)
		}
	}
	mount := func(t *testing.T) (*FS, *countingPages) {
		_, fs := testTree(t)
		p := &countingPages{}
		fs.Root().Mounts().SetPages(p)
		if err := fs.Root().Mounts().MountTmpfs("/data", 0); err != nil {
			t.Fatal(err)
		}
		return fs, p
	}
	small := bytes.Repeat([]byte{0xff}, 100)
	t.Run("one after another", func(t *testing.T) {
		fs, p := mount(t)
		for i := range files {
			create(t, fs, fmt.Sprintf("/data/f%d", i), small)
			remove(t, fs, fmt.Sprintf("/data/f%d", i))
		}
		if p.allocs != 1 || p.frees != 0 {
			t.Errorf("%d files made and removed in turn: %d allocations, %d frees, want 1, 0", files, p.allocs, p.frees)
		}
	})
	t.Run("all, then all removed", func(t *testing.T) {
		fs, p := mount(t)
		for i := range files {
			create(t, fs, fmt.Sprintf("/data/f%d", i), small)
		}
		for i := range files {
			remove(t, fs, fmt.Sprintf("/data/f%d", i))
		}
		if max := files/spareFill + 1; p.allocs > max {
			t.Errorf("%d files made: %d allocations, want at most %d", files, p.allocs, max)
		}
		if max := files/(spareMax-spareKeep) + 1; p.frees > max {
			t.Errorf("%d files removed: %d frees, want at most %d", files, p.frees, max)
		}
		if kept := (files*pageSize - p.freed) / pageSize; kept > spareMax {
			t.Errorf("%d pages kept, want at most %d", kept, spareMax)
		}
	})
	t.Run("reused page reads zero", func(t *testing.T) {
		fs, _ := mount(t)
		create(t, fs, "/data/full", bytes.Repeat([]byte{0xff}, pageSize))
		remove(t, fs, "/data/full")
		create(t, fs, "/data/new", []byte("x"))
		f, err := fs.OpenAt(nil, "/data/new", unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.DecRef()
		if err := f.Truncate(pageSize); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, pageSize)
		if n, err := f.Read(nil, got); n != pageSize || err != nil {
			t.Fatalf("read = %d, %v", n, err)
		}
		if got[0] != 'x' || !bytes.Equal(got[1:], make([]byte, pageSize-1)) {
			t.Errorf("a file given a removed file's page reads %q..., want x and zeros", got[:8])
		}
	})
	t.Run("mapped or memfd: freed", func(t *testing.T) {
		fs, p := mount(t)
		create(t, fs, "/data/m", small)
		f, err := fs.OpenAt(nil, "/data/m", unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := f.MapShared(0, pageSize, true, false); err != nil {
			t.Fatal(err)
		}
		f.DecRef()
		remove(t, fs, "/data/m")
		if p.frees != 1 {
			t.Errorf("a removed file that was mapped shared: %d frees, want 1", p.frees)
		}
		m, err := NewMemfd(p, Owner{}, "m", 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := m.Write(nil, small); n != len(small) || err != nil {
			t.Fatalf("memfd write = %d, %v", n, err)
		}
		m.DecRef()
		if p.frees != 2 {
			t.Errorf("a closed memfd: %d frees in all, want 2", p.frees)
		}
	})
}
