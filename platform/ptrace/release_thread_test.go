//go:build linux && amd64

package ptrace

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// TestReleaseThread checks that an OS thread may go back to the Go runtime
// only when it traces no stub thread of an address space still in use,
// and that its CPU affinity is then the sentry's again.
func TestReleaseThread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool // release the address space the thread ran in
		want    bool
	}{
		{"address space in use", false, false},
		{"address space released", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			e := newEnv(t, 1<<20)
			defer unix.SchedSetaffinity(0, &e.p.cpus) // a thread not released stays pinned
			c := e.newContext(t)
			a := e.newSpace(t)
			cpu := currentCPUOf(t)
			c.(*context).PinCPU(cpu)
			st := &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			if _, _, err := switchOnce(c, a, st); err != nil {
				t.Fatalf("Switch: %v", err)
			}
			if got := singleCPU(0); got != cpu {
				t.Fatalf("CPU of the thread after a Switch pinned to CPU %d = %d, want that one only", cpu, got)
			}
			c.Release()
			if tc.release {
				a.Release()
			}
			if got := e.p.ReleaseThread(); got != tc.want {
				t.Fatalf("ReleaseThread = %v, want %v", got, tc.want)
			}
			if tc.want {
				var set unix.CPUSet
				if err := unix.SchedGetaffinity(0, &set); err != nil {
					t.Fatal(err)
				}
				if set != e.p.cpus {
					t.Errorf("affinity after ReleaseThread = %d CPUs, want the sentry's %d", set.Count(), e.p.cpus.Count())
				}
			}
		})
	}
}

// currentCPUOf returns a CPU the calling thread may run on.
func currentCPUOf(t *testing.T) int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			return i
		}
	}
	t.Fatal("no CPU in the thread's affinity")
	return -1
}

// TestPinTracer checks that the first Switch's pinning of the calling
// thread (before a stub thread is seized for the queued calls) pins it to
// the CPU the context asks for, and leaves it alone otherwise.
func TestPinTracer(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e := newEnv(t, 1<<20)
	defer unix.SchedSetaffinity(0, &e.p.cpus)
	cpu := currentCPUOf(t)
	for _, tc := range []struct {
		name    string
		callPin bool // whether PinCPU is called, with pin
		pin     int
		want    int // singleCPU afterwards
	}{
		{"never pinned", false, 0, -1},
		{"any CPU", true, -1, -1},
		{"one CPU", true, cpu, cpu},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := unix.SchedSetaffinity(0, &e.p.cpus); err != nil {
				t.Fatal(err)
			}
			if e.p.cpus.Count() < 2 && tc.want < 0 {
				t.Skip("one CPU: every thread runs on one")
			}
			c := e.newContext(t).(*context)
			if tc.callPin {
				c.PinCPU(tc.pin)
			}
			c.pinTracer()
			if got := singleCPU(0); got != tc.want {
				t.Errorf("single CPU after pinTracer = %d, want %d", got, tc.want)
			}
		})
	}
}
