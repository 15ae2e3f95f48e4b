package kernel

import (
	"fmt"
	"testing"
)

// BenchmarkDropRetained measures what a pause adds to a save by giving
// back the file cache's retained pages (dropRetained), for one file of
// each size retained: 80 KiB (an exec loop's /bin/true and
// /etc/ld.so.cache), 1 MiB, and the whole bound. The baseline is what
// releasing the same file cost before pages were retained: the same
// range given back when its last mapping goes (fileCache.release
// evicting it, with the bound at zero), measured in the same run.
func BenchmarkDropRetained(b *testing.B) {
	for _, size := range []int{80 << 10, 1 << 20, maxRetainedBytes - pageSize} {
		f := newHostLikeFile(size/pageSize-1, 51)
		for _, drop := range []bool{true, false} {
			name := fmt.Sprintf("%dKiB/%s", size>>10, map[bool]string{true: "drop", false: "release-baseline"}[drop])
			b.Run(name, func(b *testing.B) {
				mf := newTestMemoryFile(b)
				if !drop {
					// A bound of 0: a release gives the pages back at once.
					mf.files.limit.Store(1)
				}
				mm, err := NewMM(mf, newRecordingAS(), testMinAddr, testMaxAddr)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for range b.N {
					b.StopTimer()
					a, err := mm.MMap(MMapOpts{Length: uint64(size), Perms: permRead, Private: true, File: f})
					if err != nil {
						b.Fatal(err)
					}
					if !drop {
						b.StartTimer()
					}
					if err := mm.Munmap(a, uint64(size)); err != nil {
						b.Fatal(err)
					}
					if drop {
						b.StartTimer()
						if n := mf.files.dropRetained(mf); n != uint64(size) {
							b.Fatalf("dropRetained() = %d, want %d", n, size)
						}
					}
				}
			})
		}
	}
}
