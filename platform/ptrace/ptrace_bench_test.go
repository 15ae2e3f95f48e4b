//go:build linux && amd64

package ptrace

import (
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// BenchmarkSyscallRoundTrip measures one application system call under
// ptrace (Switch returns at the syscall, the sentry writes a result and
// re-enters) against a native getpid measured in the same run.
func BenchmarkSyscallRoundTrip(b *testing.B) {
	b.Run("native-getpid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			syscall.Getpid()
		}
	})
	b.Run("ptrace", func(b *testing.B) { benchSyscalls(b, false) })
	b.Run("ptrace-pinned", func(b *testing.B) { benchSyscalls(b, true) })
}

// benchSyscalls runs an application syscall loop; if pin, the stub thread
// and this goroutine's OS thread share one CPU (PinCPU).
func benchSyscalls(b *testing.B, pin bool) {
	// Never unlocked: a pinned thread must not go back to the runtime; it
	// exits with this goroutine.
	runtime.LockOSThread()
	e := newEnv(b, 1<<20)
	a := e.newSpace(b)
	c := e.newContext(b)
	if pin {
		c.(*context).PinCPU(0)
	}
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscallLoop
	var info platform.SignalInfo
	var at platform.AccessType
	if err := c.Switch(a, st, &info, &at); err != nil { // warm up: stub thread creation
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Regs.Rax = uint64(i) // the syscall's result
		if err := c.Switch(a, st, &info, &at); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// The loop's next system call number is the last result written.
	if want := uint64(b.N - 1); st.Regs.OrigRax != want {
		b.Fatalf("OrigRax = %d, want %d", st.Regs.OrigRax, want)
	}
}

// BenchmarkFirstTouch256MiB measures the first write to every page of a
// fresh 256 MiB memory file range: mapped on demand, mapped with
// precommit (populated for writing by MapFile, whose cost is included),
// and touched natively through the sentry's own mapping as a baseline.
func BenchmarkFirstTouch256MiB(b *testing.B) {
	const size = 256 << 20
	const dataBase = 0x1_0000_0000
	e := newEnv(b, dataOff+size)
	punch := func(b *testing.B) {
		if err := unix.Fallocate(e.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, dataOff, size); err != nil {
			b.Fatalf("punch hole: %v", err)
		}
	}
	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			punch(b)
			m, err := unix.Mmap(e.fd, dataOff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for off := 0; off < size; off += pageSize {
				m[off] = 1
			}
			b.StopTimer()
			unix.Munmap(m)
			b.StartTimer()
		}
	})
	for _, precommit := range []bool{false, true} {
		name := "ptrace-demand"
		if precommit {
			name = "ptrace-precommit"
		}
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			a := e.newSpace(b)
			defer a.Release()
			c := e.newContext(b)
			st := &platform.State{}
			var info platform.SignalInfo
			var at platform.AccessType
			b.ReportAllocs()
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				punch(b)
				b.StartTimer()
				if err := a.MapFile(dataBase, dataOff, size, platform.ReadWrite, precommit); err != nil {
					b.Fatal(err)
				}
				st.Regs.Rip = codeAddr + offTouch
				st.Regs.Rdi, st.Regs.Rdx, st.Regs.Rcx = dataBase, pageSize, size/pageSize
				if err := c.Switch(a, st, &info, &at); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := a.Unmap(dataBase, size); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkMapFile measures one MapFile (an mmap injected into the stub)
// on a thread that traces a stub thread of the address space (what MapFile
// does once the address space has run), against the same mmap injected
// into the stub leader through the master thread (its fallback), and
// against MapFile before the address space first ran, when mappings are
// queued and made in batches.
func BenchmarkMapFile(b *testing.B) {
	e := newEnv(b, 1<<20)
	b.Run("queued", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		a := e.newSpace(b)
		defer a.Release()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := a.MapFile(0x1000_0000, dataOff, pageSize, platform.ReadWrite, false); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.startRunning(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("stub-thread", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		a := e.newSpace(b)
		defer a.Release()
		if err := a.startRunning(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := a.MapFile(0x1000_0000, dataOff, pageSize, platform.ReadWrite, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("leader-via-master", func(b *testing.B) {
		a := e.newSpace(b)
		defer a.Release()
		args := [6]uint64{0x1000_0000, pageSize, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_FIXED, stubFDInStub, dataOff}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := a.leaderSyscall(sysMmap, args); err != nil {
				b.Fatal(err)
			}
		}
	})
}
