package kernel

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// repinInterval is how long a pinned task stays on its CPU before it lets
// the host move it; repinCheck is how many Switches pass between looks at
// the clock.
const (
	repinInterval = 100 * time.Millisecond
	repinCheck    = 64
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
//   - A process that exits gives its CPU to its parent's task blocked in
//     wait (the two swap; handOver): the parent is woken on the CPU that
//     runs the exit, not on its own, idle since it blocked. A loop that
//     forks and waits for each child hands off between parent and child
//     on one CPU at every exit.
//
// A task keeps its CPU only as long as the host agrees: every
// repinInterval (checked every repinCheck Switches) it runs one Switch
// unpinned, and then pins itself to whatever CPU the host scheduler woke
// its thread on, if no other task of the sandbox has that one. A CPU that
// became busy (another sandbox pinned there, other host work) is thus
// left within about repinInterval, for the cost of a few system calls.
//
// A sentry with one CPU pins nothing (there is nowhere else to go), nor
// does one made with Config.NoCPUPinning or run with
// SNAP_NO_CPU_PINNING=1 in its environment.

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
	// tasks holds each live task goroutine's CPU and the CPU its thread
	// started on. Protected by mu.
	tasks map[*Task]taskCPU
}

// taskCPU is one task goroutine's entry in cpuPins.
type taskCPU struct {
	// cpu is the task's CPU, or -1 if it has none.
	cpu int
	// prefer is the CPU the task's thread was on when it started (-1 if
	// unknown): the one it gets if it is free.
	prefer int
}

// newCPUPins returns the policy for the sentry's CPUs, or nil if pinning
// is off or pointless.
func newCPUPins(off bool) *cpuPins {
	if off || os.Getenv("SNAP_NO_CPU_PINNING") == "1" {
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
	return &cpuPins{cpus: cpus, tasks: map[*Task]taskCPU{}}
}

// add registers t's task goroutine, whose OS thread runs on CPU cpu (-1 if
// unknown), and reassigns CPUs.
func (p *cpuPins) add(t *Task, cpu int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tasks[t] = taskCPU{cpu: -1, prefer: cpu}
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
	p.assignLocked()
}

// usedLocked returns the CPUs that tasks other than except have.
//
// Preconditions: p.mu is held.
func (p *cpuPins) usedLocked(except *Task) map[int]bool {
	used := make(map[int]bool, len(p.tasks))
	for t, e := range p.tasks {
		if t != except && e.cpu >= 0 {
			used[e.cpu] = true
		}
	}
	return used
}

// pick returns prefer if it is one of the sentry's CPUs and not used, else
// the first of them that is not used, or -1 if all are.
func (p *cpuPins) pick(prefer int, used map[int]bool) int {
	first := -1
	for _, c := range p.cpus {
		if used[c] {
			continue
		}
		if c == prefer {
			return c
		}
		if first < 0 {
			first = c
		}
	}
	return first
}

// pinLoader pins the calling OS thread, which is about to load the init
// task's program and then run it as its task goroutine, to the CPU that
// task will get (see add): the stub thread it creates for the load starts
// there too, so the system calls the load injects do not cross CPUs.
//
// Preconditions: the caller is locked to its OS thread for good.
func (p *cpuPins) pinLoader() {
	if p == nil {
		return
	}
	cpu := currentCPU()
	p.mu.Lock()
	if len(p.tasks) >= len(p.cpus) {
		p.mu.Unlock()
		return // the task will not be pinned
	}
	cpu = p.pick(cpu, p.usedLocked(nil))
	p.mu.Unlock()
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set) // best effort, like all pinning
}

// move gives t the CPU cpu instead of its own, if t is pinned and no other
// task has cpu.
func (p *cpuPins) move(t *Task, cpu int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.tasks[t]
	if !ok || e.cpu < 0 || e.cpu == cpu || p.pick(cpu, p.usedLocked(t)) != cpu {
		return
	}
	e.cpu = cpu
	p.tasks[t] = e
	t.pinCPU.Store(int32(cpu) + 1)
}

// handOver gives the CPU of t, whose process is exiting, to w, a task of
// its parent blocked waiting for a child, and w's CPU to t (for the
// moments t has left), if both are pinned to different CPUs. w's OS
// thread, asleep, is moved to t's CPU at once: the exit wakes it there,
// on the CPU that runs the exit, where it runs as soon as t's thread is
// done, instead of on its own CPU, idle since it blocked, whose wake-up
// is an inter-processor interrupt (in a virtual machine a hypervisor
// exit). A fork and exec loop, where the parent waits for each child,
// then hands off between the two on one CPU at each exit. w's stub
// thread follows at its next Switch (w.pinCPU), stopped meanwhile.
func (p *cpuPins) handOver(t, w *Task) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	te, ok := p.tasks[t]
	we, wok := p.tasks[w]
	tid := w.hostTID.Load()
	if !ok || !wok || te.cpu < 0 || we.cpu < 0 || te.cpu == we.cpu || tid == 0 {
		return
	}
	// (w is still registered, so its goroutine has not given its
	// thread back to the Go runtime: the thread is w's.)
	var set unix.CPUSet
	set.Set(te.cpu)
	if unix.SchedSetaffinity(int(tid), &set) != nil {
		return
	}
	te.cpu, we.cpu = we.cpu, te.cpu
	p.tasks[t], p.tasks[w] = te, we
	t.pinCPU.Store(int32(te.cpu) + 1)
	w.pinCPU.Store(int32(we.cpu) + 1)
}

// assignLocked applies the policy: a CPU each for at most len(cpus) tasks
// (a task keeps the CPU it has), none for more. Each task's pinCPU says
// what its goroutine passes to its context before the next Switch.
//
// Preconditions: p.mu is held.
func (p *cpuPins) assignLocked() {
	if len(p.tasks) > len(p.cpus) {
		for t, e := range p.tasks {
			if e.cpu >= 0 {
				e.cpu = -1
				p.tasks[t] = e
				t.pinCPU.Store(pinAny)
			}
		}
		return
	}
	used := p.usedLocked(nil)
	for t, e := range p.tasks {
		if e.cpu >= 0 {
			continue
		}
		e.cpu = p.pick(e.prefer, used)
		used[e.cpu] = true
		p.tasks[t] = e
		t.pinCPU.Store(int32(e.cpu) + 1)
	}
}

// applyPin passes a changed CPU assignment to the task's platform context,
// and now and then runs a Switch unpinned to let the host move the task
// (see repinInterval).
//
// Preconditions: called by the task goroutine.
func (t *Task) applyPin() {
	want := t.pinCPU.Load()
	switch {
	case t.pinFloating:
		// The last Switch ran unpinned: stay where the host woke this
		// thread if the policy allows.
		t.pinFloating = false
		cpu := currentCPU()
		t.k.pins.move(t, cpu)
		want = t.pinCPU.Load()
		t.k.debugf("task %d: woke on CPU %d after an unpinned switch; pinned to CPU %d", t.tid, cpu, want-1)
	case want > 0 && want == t.pinApplied:
		if t.pinSwitches++; t.pinSwitches < repinCheck {
			return
		}
		t.pinSwitches = 0
		if now := time.Now(); now.Sub(t.pinSince) >= repinInterval {
			t.pinSince = now
			t.pinFloating = true
			want = pinAny // for one Switch
		}
	}
	if want == t.pinApplied {
		return
	}
	if t.pinApplied <= 0 && want > 0 && !t.pinFloating {
		t.pinSince = time.Now() // newly pinned: the interval starts now
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
