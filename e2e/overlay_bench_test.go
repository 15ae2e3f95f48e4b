package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	"snapshotter/internal/ctest"
)

// BenchmarkOverlay measures the writable root against a native tmpfs
// (/dev/shm) in the same run: "io" writes and reads back 1 GiB in a
// directory of the overlay root (what /tmp is when the host's is not
// empty), "files" creates, stats and removes 10,000 small files there.
// Start-up is left out (T(n) - T(0)). Reported as MB/s (io) or
// us/file (files), under snap and natively.
func BenchmarkOverlay(b *testing.B) {
	b.ReportAllocs()
	bin := program(b, ctest.Glibc, "fsbench")
	shm, err := os.MkdirTemp("/dev/shm", "fsbench")
	if err != nil {
		b.Skipf("no /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	for _, bc := range []struct {
		mode string
		n    int
	}{{"io", 1024}, {"files", 10000}} {
		b.Run(bc.mode, func(b *testing.B) {
			dir := b.TempDir() // on the host's /tmp: the overlay's in the sandbox
			run := func(sandboxed bool, n int) time.Duration {
				d := shm
				argv := []string{bin, bc.mode}
				if sandboxed {
					d = dir
					argv = []string{snap(b), "run", "--", bin, bc.mode}
				}
				argv = append(argv, d, strconv.Itoa(n))
				return timeRun(b, bc.mode+" "+strconv.Itoa(n)+" ok", argv...)
			}
			var snapT, natT time.Duration
			for b.Loop() {
				natT += run(false, bc.n) - run(false, 0)
				snapT += run(true, bc.n) - run(true, 0)
			}
			perOp := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
			if bc.mode == "io" {
				mb := float64(2*bc.n) * (1 << 20) / 1e6 // written and read back
				b.ReportMetric(mb/perOp(snapT), "MB/s")
				b.ReportMetric(mb/perOp(natT), "native-MB/s")
			} else {
				b.ReportMetric(perOp(snapT)*1e6/float64(bc.n), "us/file")
				b.ReportMetric(perOp(natT)*1e6/float64(bc.n), "native-us/file")
			}
			// The goals: io at least half of native's throughput
			// (snap/native-throughput >= 0.5), files at most 5 times
			// native's time (snap/native-time <= 5).
			if bc.mode == "io" {
				b.ReportMetric(natT.Seconds()/snapT.Seconds(), "snap/native-throughput")
			} else {
				b.ReportMetric(snapT.Seconds()/natT.Seconds(), "snap/native-time")
			}
		})
	}
}
