package kernel

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSmallFiles is the sentry's own share of e2e's BenchmarkOverlay
// "files" case: one operation is one small file's five system calls
// (open with O_CREAT|O_EXCL, a write of 100 bytes, close, stat, unlink),
// dispatched through the syscall table as a trapped call is, without the
// platform's round trips. "overlay" runs in a directory of the overlay
// root that the lower layer has (as /tmp is when the host's is not
// empty), "tmpfs" in a tmpfs mount (/dev/shm); "host-baseline" makes the
// same calls natively in the host's /dev/shm, in the same run.
func BenchmarkSmallFiles(b *testing.B) {
	for _, bc := range []struct{ name, dir string }{
		{"overlay", "/tmp/bench"},
		{"tmpfs", "/dev/shm"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			t := newUnitTask(b)
			host := t.k.root.HostDir()
			if err := os.MkdirAll(filepath.Join(host, "tmp", "bench"), 0o755); err != nil {
				b.Fatal(err)
			}
			mt := t.k.root.Mounts()
			if err := mt.MountOverlay(64 << 20); err != nil {
				b.Fatal(err)
			}
			mt.SetPages(t.k.mf)
			buf, err := t.tg.mm.MMap(MMapOpts{Length: 2 * pageSize, Perms: permRead | permWrite, Private: true})
			if err != nil {
				b.Fatal(err)
			}
			pathAddr, dataAddr, statAddr := buf, buf+512, buf+pageSize
			call := func(nr uint64, args ...uint64) uint64 {
				t.regs.OrigRax = nr
				r := []*uint64{&t.regs.Rdi, &t.regs.Rsi, &t.regs.Rdx, &t.regs.R10, &t.regs.R8, &t.regs.R9}
				for i, a := range args {
					*r[i] = a
				}
				t.doSyscall()
				return t.regs.Rax
			}
			setPath := func(i int) {
				p := append([]byte(bc.dir+"/f"), strconv.Itoa(i)...)
				if err := t.tg.mm.CopyOut(pathAddr, append(p, 0)); err != nil {
					b.Fatal(err)
				}
			}
			fdcwd := int64(unix.AT_FDCWD)
			atFDCWD := uint64(fdcwd)
			b.ReportAllocs()
			start := cpuTime()
			i := 0
			for b.Loop() {
				setPath(i)
				i++
				fd := call(unix.SYS_OPENAT, atFDCWD, pathAddr, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
				if int64(fd) < 0 {
					b.Fatalf("openat = %d", int64(fd))
				}
				if n := call(unix.SYS_WRITE, fd, dataAddr, 100); n != 100 {
					b.Fatalf("write = %d", int64(n))
				}
				if r := call(unix.SYS_CLOSE, fd); r != 0 {
					b.Fatalf("close = %d", int64(r))
				}
				if r := call(unix.SYS_NEWFSTATAT, atFDCWD, pathAddr, statAddr, 0); r != 0 {
					b.Fatalf("newfstatat = %d", int64(r))
				}
				if r := call(unix.SYS_UNLINK, pathAddr); r != 0 {
					b.Fatalf("unlink = %d", int64(r))
				}
			}
			reportCPU(b, start)
		})
	}
	b.Run("host-baseline", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "smallfiles")
		if err != nil {
			b.Skipf("no /dev/shm: %v", err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		data := make([]byte, 100)
		var st unix.Stat_t
		b.ReportAllocs()
		start := cpuTime()
		i := 0
		for b.Loop() {
			p := dir + "/f" + strconv.Itoa(i)
			i++
			fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := unix.Write(fd, data); n != 100 || err != nil {
				b.Fatalf("write = %d, %v", n, err)
			}
			unix.Close(fd)
			if err := unix.Stat(p, &st); err != nil {
				b.Fatal(err)
			}
			if err := unix.Unlink(p); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
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
