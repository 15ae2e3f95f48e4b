//go:build linux && amd64

package ptrace

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// onOwnThread runs f on a goroutine locked to an OS thread that exits with
// it, so that the affinity f gives the thread goes away with the thread.
func onOwnThread(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits
		f()
	}()
	<-done
}

func affinity(t *testing.T, tid int) unix.CPUSet {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		t.Fatalf("sched_getaffinity(%d) = %v", tid, err)
	}
	return set
}

// TestPinCPU: PinCPU moves the stub thread and the calling OS thread onto
// one CPU at the next Switch, PinCPU(-1) gives both the sentry's CPUs back,
// and a context that never asked leaves affinities alone.
func TestPinCPU(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	all := e.p.cpus
	cpu := -1
	for i := 0; i < 1024; i++ {
		if all.IsSet(i) {
			cpu = i // the highest CPU the sentry may use
		}
	}
	if cpu < 0 {
		t.Fatalf("the platform's CPU set is empty")
	}
	var one unix.CPUSet
	one.Set(cpu)
	c := e.newContext(t)
	pinner, ok := c.(interface{ PinCPU(int) })
	if !ok {
		t.Fatalf("context %T has no PinCPU", c)
	}
	onOwnThread(func() {
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscallLoop
		check := func(what string, want unix.CPUSet) {
			if _, _, err := switchOnce(c, a, st); err != nil {
				t.Fatalf("%s: Switch = %v", what, err)
			}
			th, err := a.threadFor(unix.Gettid())
			if err != nil {
				t.Fatal(err)
			}
			if got := affinity(t, 0); got != want {
				t.Errorf("%s: calling thread's CPUs = %v, want %v", what, got, want)
			}
			if got := affinity(t, th.tid); got != want {
				t.Errorf("%s: stub thread's CPUs = %v, want %v", what, got, want)
			}
		}
		check("never pinned", all)
		pinner.PinCPU(cpu)
		check("PinCPU(highest)", one)
		check("PinCPU(highest), again", one)
		pinner.PinCPU(-1)
		check("PinCPU(-1)", all)
		if err := c.FetchFP(st); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStubThreadFollowsPinnedTracer: a stub thread seized by a tracer that
// is pinned to one CPU starts on that CPU, before any PinCPU: here the
// stub thread that the address space's first mapping (made from the
// pinned thread, as a program load does) creates.
func TestStubThreadFollowsPinnedTracer(t *testing.T) {
	e := newEnv(t, 1<<20)
	c := e.newContext(t)
	onOwnThread(func() {
		if cpu := singleCPU(0); cpu >= 0 {
			t.Errorf("a fresh thread is pinned to CPU %d already", cpu)
			return
		}
		cpu := -1
		for i := 0; cpu < 0; i++ {
			if e.p.cpus.IsSet(i) {
				cpu = i
			}
		}
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Error(err)
			return
		}
		a := e.newSpace(t) // maps the code: the first stub thread
		th, err := a.threadFor(unix.Gettid())
		if err != nil {
			t.Error(err)
			return
		}
		if got := singleCPU(th.tid); got != cpu {
			t.Errorf("stub thread pinned to %d after the first mapping, want %d (its tracer's)", got, cpu)
		}
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscallLoop
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Errorf("Switch = %v", err)
			return
		}
		if got := singleCPU(th.tid); got != cpu {
			t.Errorf("stub thread pinned to %d after Switch, want %d", got, cpu)
		}
		if err := c.FetchFP(st); err != nil {
			t.Error(err)
		}
	})
}
