//go:build linux && amd64

package ptrace

import (
	"golang.org/x/sys/unix"
)

// CPU pinning. A system call under ptrace wakes the tracer when the stub
// thread stops and the stub thread when the tracer resumes it. If the two
// threads sit on different CPUs every wake-up is an inter-processor
// interrupt, which in a virtual machine is an exit to the hypervisor:
// measured here, a getpid round trip costs 21-27 µs with the pair free to
// move and 18.5-19 µs with both on one CPU. Letting the host place the stub
// thread next to wherever the tracer runs does not help: the scheduler
// then wakes the tracer on the other, idle CPU about every second system
// call. The pair has to be pinned together.
//
// Which CPU a thread gets is the kernel's policy (it knows how many
// application threads share the CPUs); the platform applies it: PinCPU
// records the wish, and Switch moves the stub thread and the calling OS
// thread together when the wish differs from what that stub thread has. A
// new stub thread starts on its tracer's CPU if the tracer is pinned to
// one (the kernel pins the thread that loads a program before it maps
// anything).

// Values of context.cpu and stubThread.cpu besides CPU numbers.
const (
	// cpuUntouched: PinCPU was never called; Switch leaves affinities as
	// they are.
	cpuUntouched = -2
	// cpuAny: the sentry's own CPU set (what the platform found at New).
	cpuAny = -1
)

// PinCPU makes Switch run the application thread and the calling OS thread
// on host CPU cpu from the next Switch on; a negative cpu lets both run on
// any CPU the sentry could use when the platform was made. The calling
// thread's affinity stays changed after Switch returns: a caller that
// unlocks its OS thread afterwards hands a pinned thread back to the Go
// runtime. Safe to call from any goroutine.
func (c *context) PinCPU(cpu int) {
	if cpu < 0 {
		cpu = cpuAny
	}
	c.cpu.Store(int32(cpu))
}

// singleCPU returns the CPU thread tid (0: the calling thread) is pinned
// to, or -1 if it may run on several (or the host does not say).
func singleCPU(tid int) int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(tid, &set) != nil || set.Count() != 1 {
		return -1
	}
	for i := 0; ; i++ {
		if set.IsSet(i) {
			return i
		}
	}
}

// pinTracer pins the calling OS thread to the single CPU c asks for, if
// it does not run there only already; bindLocked then finds a stub thread
// seized after it on that CPU too.
//
// Preconditions: the caller is locked to its OS thread.
func (c *context) pinTracer() {
	want := int(c.cpu.Load())
	if want < 0 || singleCPU(0) == want {
		return
	}
	var set unix.CPUSet
	set.Set(want)
	_ = unix.SchedSetaffinity(0, &set) // best effort, as bindLocked
}

// bindLocked gives the calling OS thread and t the CPU set c asks for, if t
// does not have it yet. A failure (the CPU went offline, a cpuset
// shrank) is not an error: pinning only makes system calls faster, and t
// is marked as bound either way so that Switch does not retry every time.
//
// Preconditions: t.mu is held; the caller is t's tracer.
func (c *context) bindLocked(t *stubThread) {
	want := int(c.cpu.Load())
	if want == cpuUntouched || want == t.cpu {
		return
	}
	set := c.p.cpus
	if want != cpuAny {
		set = unix.CPUSet{}
		set.Set(want)
	}
	_ = unix.SchedSetaffinity(0, &set)
	_ = unix.SchedSetaffinity(t.tid, &set)
	t.cpu = want
}
