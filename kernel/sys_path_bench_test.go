package kernel

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallFilesBatch is how many files BenchmarkSmallFiles makes before it
// stats and removes them.
const smallFilesBatch = 1000

// BenchmarkSmallFiles is the sentry's own share of e2e's BenchmarkOverlay
// "files" case: one operation is one small file's five system calls (open
// with O_CREAT|O_EXCL, a write of 100 bytes, close; stat; unlink), made in
// batches as fsbench makes them (every file of a batch created, then
// stat-ed, then removed) and dispatched through the syscall table as a
// trapped call is, without the platform's round trips. "overlay" runs in a
// directory of the overlay root that the lower layer has (as /tmp is when
// the host's is not empty), "tmpfs" in a tmpfs mount (/dev/shm);
// "host-baseline" makes the same calls natively in the host's /dev/shm, in
// the same run. cpu-ns/op is steadier than ns/op on a loaded machine.
func BenchmarkSmallFiles(b *testing.B) {
	for _, bc := range []struct{ name, dir string }{
		{"overlay", "/tmp/bench"},
		{"tmpfs", "/dev/shm"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			t := newUnitTask(b)
			if err := os.MkdirAll(filepath.Join(t.k.root.HostDir(), "tmp", "bench"), 0o755); err != nil {
				b.Fatal(err)
			}
			mt := t.k.root.Mounts()
			if err := mt.MountOverlay(64 << 20); err != nil {
				b.Fatal(err)
			}
			mt.SetPages(t.k.mf)
			// The batch's paths, 32 bytes apart, then the data and a
			// struct stat.
			const pathStride = 32
			buf, err := t.tg.mm.MMap(MMapOpts{Length: smallFilesBatch*pathStride + 2*pageSize, Perms: permRead | permWrite, Private: true})
			if err != nil {
				b.Fatal(err)
			}
			for i := range smallFilesBatch {
				if err := t.tg.mm.CopyOut(buf+uint64(i*pathStride), []byte(bc.dir+"/f"+strconv.Itoa(i)+"\x00")); err != nil {
					b.Fatal(err)
				}
			}
			pathAddr := func(i int) uint64 { return buf + uint64(i*pathStride) }
			dataAddr := buf + smallFilesBatch*pathStride
			statAddr := dataAddr + pageSize
			call := func(nr uint64, args ...uint64) int64 {
				t.regs.OrigRax = nr
				r := []*uint64{&t.regs.Rdi, &t.regs.Rsi, &t.regs.Rdx, &t.regs.R10, &t.regs.R8, &t.regs.R9}
				for i, a := range args {
					*r[i] = a
				}
				t.doSyscall()
				return int64(t.regs.Rax)
			}
			fdcwd := int64(unix.AT_FDCWD)
			atFDCWD := uint64(fdcwd)
			runSmallFiles(b, func(i int) {
				fd := call(unix.SYS_OPENAT, atFDCWD, pathAddr(i), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
				if fd < 0 {
					b.Fatalf("openat = %d", fd)
				}
				if n := call(unix.SYS_WRITE, uint64(fd), dataAddr, 100); n != 100 {
					b.Fatalf("write = %d", n)
				}
				if r := call(unix.SYS_CLOSE, uint64(fd)); r != 0 {
					b.Fatalf("close = %d", r)
				}
			}, func(i int) {
				if r := call(unix.SYS_NEWFSTATAT, atFDCWD, pathAddr(i), statAddr, 0); r != 0 {
					b.Fatalf("newfstatat = %d", r)
				}
			}, func(i int) {
				if r := call(unix.SYS_UNLINK, pathAddr(i)); r != 0 {
					b.Fatalf("unlink = %d", r)
				}
			})
		})
	}
	b.Run("host-baseline", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "smallfiles")
		if err != nil {
			b.Skipf("no /dev/shm: %v", err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		paths := make([]string, smallFilesBatch)
		for i := range paths {
			paths[i] = dir + "/f" + strconv.Itoa(i)
		}
		data := make([]byte, 100)
		var st unix.Stat_t
		runSmallFiles(b, func(i int) {
			fd, err := unix.Open(paths[i], unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := unix.Write(fd, data); n != 100 || err != nil {
				b.Fatalf("write = %d, %v", n, err)
			}
			unix.Close(fd)
		}, func(i int) {
			if err := unix.Stat(paths[i], &st); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if err := unix.Unlink(paths[i]); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// runSmallFiles runs b.N files through create, stat and remove (each
// given the file's index in its batch), a batch at a time.
func runSmallFiles(b *testing.B, create, stat, remove func(i int)) {
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(smallFilesBatch, b.N-done)
		for i := range n {
			create(i)
		}
		for i := range n {
			stat(i)
		}
		for i := range n {
			remove(i)
		}
		done += n
	}
	b.StopTimer()
	reportCPU(b, start)
}

// cpuTime returns the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start: on a shared,
// loaded machine it is steadier than wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
