package kernel

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkForkCopy copies n windows of cowWindow (64 KiB, written
// pages) as a fork's eager copies do, each into a range allocated for it,
// and frees them again as the child's exec or exit does, in a real memory
// file; against memmove between two Go buffers of the same size, measured
// in the same run. The ways:
//
//   - fresh/copy_file_range: into fresh pages, nothing kept at Free
//     (copyData, what fork did before memory_file_reuse.go);
//   - fresh/pread, fresh/pwrite, fresh/memmove: the same through the
//     sentry's mapping of the destination (pread) or of the source
//     (pwrite), or both (memmove);
//   - kept/copyInto: over the pages the last round freed
//     (allocateForCopy, copyInto: what fork does now, memmove of the
//     source's pages after a mincore of them);
//   - kept/pread, kept/copy_file_range, kept/memmove: over them in the
//     other ways (memmove alone would allocate a source's holes).
func BenchmarkForkCopy(b *testing.B) {
	ways := []struct {
		name string
		keep bool
		copy func(f *MemoryFile, dst uint64, src fileRange, over bool) error
	}{
		{"fresh/copy_file_range", false, func(f *MemoryFile, dst uint64, src fileRange, _ bool) error { return f.copyData(dst, src) }},
		{"fresh/pread", false, benchPreadCopy},
		{"fresh/pwrite", false, benchPwriteCopy},
		{"fresh/memmove", false, benchMemmoveCopy},
		{"kept/copyInto", true, (*MemoryFile).copyInto},
		{"kept/pread", true, benchPreadCopy},
		{"kept/copy_file_range", true, func(f *MemoryFile, dst uint64, src fileRange, _ bool) error { return f.copyRange(dst, src) }},
		{"kept/memmove", true, benchMemmoveCopy},
	}
	for _, n := range []int{1, 6} {
		b.Run(fmt.Sprintf("windows=%d/baseline-memmove", n), func(b *testing.B) {
			from, to := make([]byte, n*cowWindow), make([]byte, n*cowWindow)
			for i := range from {
				from[i] = byte(i)
			}
			b.SetBytes(int64(n * cowWindow))
			b.ReportAllocs()
			for b.Loop() {
				copy(to, from)
			}
		})
		for _, w := range ways {
			b.Run(fmt.Sprintf("windows=%d/%s", n, w.name), func(b *testing.B) {
				f := newTestMemoryFile(b)
				if !w.keep {
					f.keepMax = 0
				}
				var srcs []fileRange
				for range n {
					src, err := f.Allocate(cowWindow)
					if err != nil {
						b.Fatal(err)
					}
					for i, p := 0, f.slice(src); i < len(p); i++ {
						p[i] = byte(i)
					}
					// A guard page apart, as a fork's sources are.
					if _, err := f.Allocate(pageSize); err != nil {
						b.Fatal(err)
					}
					srcs = append(srcs, src)
				}
				dsts := make([]fileRange, n)
				b.SetBytes(int64(n * cowWindow))
				b.ReportAllocs()
				for b.Loop() {
					for i, src := range srcs {
						d, over, err := f.allocateForCopy(cowWindow)
						if err != nil {
							b.Fatal(err)
						}
						if err := w.copy(f, d.Start, src, over); err != nil {
							b.Fatal(err)
						}
						dsts[i] = d
					}
					f.FreeAll(dsts)
				}
			})
		}
	}
}

// benchPwriteCopy copies src to dst with pwrite from the sentry's mapping
// of src.
func benchPwriteCopy(f *MemoryFile, dst uint64, src fileRange, _ bool) error {
	from := f.slice(src)
	for off := 0; off < len(from); {
		n, err := unix.Pwrite(f.fd, from[off:], int64(dst)+int64(off))
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

// benchMemmoveCopy copies src to dst through the sentry's mapping.
func benchMemmoveCopy(f *MemoryFile, dst uint64, src fileRange, _ bool) error {
	copy(f.slice(fileRange{dst, dst + src.Length()}), f.slice(src))
	return nil
}

// benchPreadCopy copies src to dst with pread into the sentry's mapping of
// dst.
func benchPreadCopy(f *MemoryFile, dst uint64, src fileRange, _ bool) error {
	return f.preadInto(f.slice(fileRange{dst, dst + src.Length()}), src.Start)
}
