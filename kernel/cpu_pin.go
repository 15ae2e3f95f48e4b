package kernel

import (
	"sync"

	"golang.org/x/sys/unix"
)

// CPU pinning policy. Under ptrace every system call hands the CPU from the
// task goroutine's OS thread to the stub thread and back; when the two sit
// on one CPU neither wake-up needs an inter-processor interrupt, which in a
// virtual machine is a hypervisor exit (platform/ptrace/cpu.go has the
// numbers). The platform pins a task's pair of threads where the kernel
// says; the kernel decides where:
//
//   - While the sandbox has at most as many task goroutines as the sentry
//     has CPUs, each gets a CPU of its own (kept for its life, so that it
//     never moves while it runs): the one its OS thread was on when it
//     started, if that is free, so that pinning moves nothing that runs (a
//     running thread moved to another CPU waits for the migration).
//   - With more, none is pinned: the host scheduler balances them better
//     than a fixed split would when only some of them are busy.
//
// A sentry with one CPU pins nothing (there is nowhere else to go), nor
// does one made with Config.NoCPUPinning.

// cpuPinner is implemented by platform contexts that can pin the
// application thread and the calling OS thread to a CPU (ptrace).
type cpuPinner interface {
	// PinCPU applies from the next Switch; a negative cpu means any CPU.
	PinCPU(cpu int)
}

// Values of Task.pinCPU besides cpu+1 for a CPU number.
const (
	pinNone int32 = 0  // never asked: affinities are left alone
	pinAny  int32 = -1 // any CPU the sentry may use
)

// cpuPins assigns CPUs to task goroutines. Not saved: CPUs belong to the
// host, and a restored kernel assigns them again as its task goroutines
// start.
type cpuPins struct {
	// cpus are the CPUs the sentry may run on; immutable.
	cpus []int

	mu sync.Mutex
	// tasks maps each live task goroutine's task to its CPU, or -1 if it
	// has none. Protected by mu.
	tasks map[*Task]int
	// prefer maps each live task goroutine's task to the CPU its thread
	// was on when it started (-1 if unknown). Protected by mu.
	prefer map[*Task]int
}

// newCPUPins returns the policy for the sentry's CPUs, or nil if pinning
// is off or pointless.
func newCPUPins(off bool) *cpuPins {
	if off {
		return nil
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil
	}
	return &cpuPins{cpus: cpus, tasks: map[*Task]int{}, prefer: map[*Task]int{}}
}

// add registers t's task goroutine, whose OS thread runs on CPU cpu (-1 if
// unknown), and reassigns CPUs.
func (p *cpuPins) add(t *Task, cpu int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tasks[t] = -1
	p.prefer[t] = cpu
	p.assignLocked()
}

// remove unregisters t's task goroutine and reassigns CPUs.
func (p *cpuPins) remove(t *Task) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tasks, t)
	delete(p.prefer, t)
	p.assignLocked()
}

// assignLocked applies the policy: a CPU each for at most len(cpus) tasks
// (a task keeps the CPU it has), none for more. Each task's pinCPU says
// what its goroutine passes to its context before the next Switch.
//
// Preconditions: p.mu is held.
func (p *cpuPins) assignLocked() {
	if len(p.tasks) > len(p.cpus) {
		for t, cpu := range p.tasks {
			if cpu >= 0 {
				p.tasks[t] = -1
				t.pinCPU.Store(pinAny)
			}
		}
		return
	}
	used := make(map[int]bool, len(p.tasks))
	for _, cpu := range p.tasks {
		if cpu >= 0 {
			used[cpu] = true
		}
	}
	allowed := make(map[int]bool, len(p.cpus))
	for _, cpu := range p.cpus {
		allowed[cpu] = true
	}
	next := 0
	for t, cpu := range p.tasks {
		if cpu >= 0 {
			continue
		}
		if want := p.prefer[t]; allowed[want] && !used[want] {
			cpu = want
		} else {
			for used[p.cpus[next]] {
				next++
			}
			cpu = p.cpus[next]
		}
		used[cpu] = true
		p.tasks[t] = cpu
		t.pinCPU.Store(int32(cpu) + 1)
	}
}

// applyPin passes a changed CPU assignment to the task's platform context.
//
// Preconditions: called by the task goroutine.
func (t *Task) applyPin() {
	want := t.pinCPU.Load()
	if want == t.pinApplied {
		return
	}
	t.pinApplied = want
	if p, ok := t.ctx.(cpuPinner); ok {
		if want == pinAny {
			p.PinCPU(-1)
		} else {
			p.PinCPU(int(want) - 1)
		}
	}
}
