//go:build linux

package uffd_test

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"snapshotter/internal/uffd"
)

const page = 4096

// watched is a shared memfd mapping of 16 pages of this process under a
// userfaultfd whose handler records each reported page (as an index) and
// unprotects it.
type watched struct {
	mem []byte
	u   *uffd.FD

	mu       sync.Mutex
	reported []int
}

func newWatched(t *testing.T) *watched {
	t.Helper()
	fd, err := unix.MemfdCreate("uffd-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, 16*page); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 16*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	w := &watched{mem: mem}
	base := w.addr(0)
	w.u, err = uffd.Create(func(addr uint64) {
		w.mu.Lock()
		w.reported = append(w.reported, int((addr-base)/page))
		w.mu.Unlock()
		if err := w.u.Unprotect(addr, page); err != nil {
			t.Error(err)
			w.u.Wake(addr, page)
		}
	})
	if errors.Is(err, uffd.ErrUnsupported) && os.Getenv("SNAP_REQUIRE_ALL") == "" {
		unix.Munmap(mem)
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.u.Close()
		unix.Munmap(mem)
	})
	return w
}

func (w *watched) addr(p int) uint64 {
	return uint64(uintptr(unsafe.Pointer(&w.mem[0]))) + uint64(p)*page
}

// take returns the pages reported since the last take, in order.
func (w *watched) take() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.reported
	w.reported = nil
	slices.Sort(r)
	return r
}

// TestWriteProtect: a write to a protected page, in memory or not yet, is
// reported once and completes; unprotected, unregistered and closed
// ranges report nothing.
func TestWriteProtect(t *testing.T) {
	// The writer waits in the host kernel while the reader goroutine
	// handles its fault: both need an OS thread and a P.
	defer runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 2))
	w := newWatched(t)
	for p := 0; p < 8; p++ {
		w.mem[p*page] = 1 // pages 0-7 in memory, 8-15 not yet touched
	}
	if err := w.u.Register(w.addr(0), 16*page); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		before func() error
		write  []int
		want   []int
	}{
		{"nothing protected", nil, []int{1, 9}, nil},
		{"all protected", func() error { return w.u.Protect(w.addr(0), 16*page) }, []int{2, 3, 10, 3}, []int{2, 3, 10}},
		{"written pages stay writable", nil, []int{2, 3, 10}, nil},
		{"protected again", func() error { return w.u.Protect(w.addr(2), 2*page) }, []int{2, 3, 4}, []int{2, 3, 4}},
		{"unregistered", func() error {
			if err := w.u.Protect(w.addr(0), 16*page); err != nil {
				return err
			}
			return w.u.Unregister(w.addr(8), 8*page)
		}, []int{5, 12}, []int{5}},
		{"closed", func() error { w.u.Close(); return nil }, []int{6, 7}, nil},
	}
	for _, s := range steps {
		if s.before != nil {
			if err := s.before(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		for _, p := range s.write {
			w.mem[p*page+1] = byte(p)
		}
		if got := w.take(); !slices.Equal(got, s.want) {
			t.Errorf("%s: writes to %v reported %v, want %v", s.name, s.write, got, s.want)
		}
		for _, p := range s.write {
			if w.mem[p*page+1] != byte(p) {
				t.Errorf("%s: page %d holds %d, want %d", s.name, p, w.mem[p*page+1], p)
			}
		}
	}
}
