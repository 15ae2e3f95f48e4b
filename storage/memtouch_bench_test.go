package storage_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/storage"
)

// fillMemtouch writes the pages of testdata/c/memtouch.c into p: odd
// pages zero, even pages groups of 8 words sharing one xorshift64 value x
// (odd words x, even words x & 0x0000ffff0000ffff).
func fillMemtouch(p []byte) {
	s := uint64(0x9e3779b97f4a7c15)
	for pg := 0; pg < len(p)/storage.PageSize; pg++ {
		w := p[pg*storage.PageSize : (pg+1)*storage.PageSize]
		if pg%2 == 1 {
			clear(w)
			continue
		}
		for g := 0; g < storage.PageSize; g += 64 {
			s ^= s << 13
			s ^= s >> 7
			s ^= s << 17
			for i := 0; i < 8; i++ {
				v := s
				if i%2 == 0 {
					v &= 0x0000ffff0000ffff
				}
				binary.LittleEndian.PutUint64(w[g+8*i:], v)
			}
		}
	}
}

// memfdViewer serves a memfd's bytes as the sentry's SavedMemoryReader
// does: views of a shared mapping, populated per view.
type memfdViewer struct {
	fd  int
	mem []byte
}

func (m *memfdViewer) ReadAt(p []byte, off int64) (int, error) {
	return unix.Pread(m.fd, p, off)
}

func (m *memfdViewer) View(off int64, n int) []byte {
	b := m.mem[off : off+int64(n)]
	_ = unix.Madvise(b, unix.MADV_POPULATE_READ)
	return b
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteMemtouch writes memtouch's 1 GiB, from a memfd read in
// place, into an empty file store each time: the cost of a first save.
func BenchmarkWriteMemtouch(b *testing.B) {
	const size = 1 << 30
	fd, err := unix.MemfdCreate("memtouch", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, size); err != nil {
		b.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	fillMemtouch(mem)
	ro, err := unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(ro)
	b.ReportAllocs()
	var cpu, wall time.Duration
	var m *storage.Manifest
	for i := range b.N {
		b.StopTimer()
		unix.Madvise(ro, unix.MADV_DONTNEED)
		s, err := storage.NewFileStore(filepath.Join(b.TempDir(), fmt.Sprint("s", i)))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0, t0 := cpuTime(), time.Now()
		w, err := s.Create(context.Background(), "img", storage.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		w.StateWriter().Write([]byte("state"))
		if err := w.WriteMemoryFrom(&memfdViewer{fd: fd, mem: ro}, []storage.Range{{Off: 0, Len: size}}); err != nil {
			b.Fatal(err)
		}
		if m, err = w.Commit(); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms")
	b.ReportMetric(float64(m.StoredSize())/(1<<20), "image-MiB")
	b.ReportMetric(float64(m.Chunks), "chunks")
}
