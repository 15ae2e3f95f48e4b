package kernel

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCPUPinsPolicy: a CPU of its own for each task while there are no
// more tasks than CPUs (the one its thread is on if free), kept as others
// come and go; none for any task while there are more.
func TestCPUPinsPolicy(t *testing.T) {
	p := newTestPins(2, 5)
	t1, t2, t3 := &Task{}, &Task{}, &Task{}
	cpuOf := func(t *Task) int32 { return t.pinCPU.Load() }
	p.add(t1, 5)
	if got := cpuOf(t1); got != 5+1 {
		t.Errorf("one task started on CPU 5: pinCPU = %d, want %d (CPU 5)", got, 5+1)
	}
	p.add(t2, 5)
	if got := cpuOf(t1); got != 5+1 {
		t.Errorf("two tasks: first task's pinCPU = %d, want %d (kept)", got, 5+1)
	}
	if got := cpuOf(t2); got != 2+1 {
		t.Errorf("two tasks, second also started on CPU 5: pinCPU = %d, want %d (CPU 2, the free one)", got, 2+1)
	}
	p.add(t3, -1)
	for i, tk := range []*Task{t1, t2} {
		if got := cpuOf(tk); got != pinAny {
			t.Errorf("three tasks on two CPUs: task %d pinCPU = %d, want pinAny (%d)", i+1, got, pinAny)
		}
	}
	if got := cpuOf(t3); got != pinNone {
		t.Errorf("three tasks on two CPUs: new task's pinCPU = %d, want pinNone (%d: never pinned)", got, pinNone)
	}
	p.remove(t1)
	c2, c3 := cpuOf(t2), cpuOf(t3)
	if c2 < 1 || c3 < 1 || c2 == c3 {
		t.Errorf("back to two tasks: pinCPU = %d and %d, want CPUs 2 and 5 (3 and 6), distinct", c2, c3)
	}
	p.remove(t2)
	if got := cpuOf(t3); got != c3 {
		t.Errorf("one task left: pinCPU = %d, want %d (kept)", got, c3)
	}
	if len(p.tasks) != 1 {
		t.Errorf("tasks registered = %d, want 1", len(p.tasks))
	}

	// A CPU the sentry may not use, or an unknown one, is not taken.
	for _, prefer := range []int{7, -1} {
		q := newTestPins(2, 5)
		tk := &Task{}
		q.add(tk, prefer)
		if got := cpuOf(tk); got != 2+1 {
			t.Errorf("task started on CPU %d: pinCPU = %d, want %d (CPU 2, the first)", prefer, got, 2+1)
		}
	}

	// move: to a free allowed CPU, not to a taken or foreign one, and not
	// for a task the policy does not pin.
	q := newTestPins(2, 5, 6)
	a, b := &Task{}, &Task{}
	q.add(a, 2)
	q.add(b, 5)
	q.move(a, 5) // b's
	if got := cpuOf(a); got != 2+1 {
		t.Errorf("move to another task's CPU: pinCPU = %d, want %d (kept)", got, 2+1)
	}
	q.move(a, 9) // not the sentry's
	if got := cpuOf(a); got != 2+1 {
		t.Errorf("move to a foreign CPU: pinCPU = %d, want %d (kept)", got, 2+1)
	}
	q.move(a, 6)
	if got := cpuOf(a); got != 6+1 || q.tasks[a].cpu != 6 {
		t.Errorf("move to a free CPU: pinCPU = %d (policy %d), want %d (CPU 6)", got, q.tasks[a].cpu, 6+1)
	}
	c := &Task{}
	q.add(c, 2)
	q.add(&Task{}, 2) // four tasks on three CPUs: none pinned
	q.move(c, 2)
	if got := cpuOf(c); got != pinAny && got != pinNone {
		t.Errorf("move while unpinned: pinCPU = %d, want unpinned", got)
	}

	if newCPUPins(true) != nil {
		t.Errorf("newCPUPins(off) != nil")
	}
	// A nil policy (pinning off) does nothing.
	var none *cpuPins
	none.add(t1, 0)
	none.remove(t1)
}

func newTestPins(cpus ...int) *cpuPins {
	return &cpuPins{cpus: cpus, tasks: map[*Task]taskCPU{}}
}

// TestCurrentCPU: the CPU the thread runs on is one the process may use.
func TestCurrentCPU(t *testing.T) {
	p := newCPUPins(false)
	cpu := currentCPU()
	if cpu < 0 {
		t.Fatalf("currentCPU() = %d, want a CPU number", cpu)
	}
	if p != nil {
		found := false
		for _, c := range p.cpus {
			found = found || c == cpu
		}
		if !found {
			t.Errorf("currentCPU() = %d, not among the sentry's CPUs %v", cpu, p.cpus)
		}
	}
}

// TestPinLoader: the thread that loads the init task's program is pinned
// to the CPU it runs on; with every CPU taken it is left alone.
func TestPinLoader(t *testing.T) {
	p := newCPUPins(false)
	if p == nil {
		t.Skip("one CPU: the kernel pins nothing")
	}
	check := func(fill bool) (count, cpu, ran int) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			q := &cpuPins{cpus: p.cpus, tasks: map[*Task]taskCPU{}}
			if fill {
				for _, c := range p.cpus {
					q.tasks[&Task{}] = taskCPU{cpu: c, prefer: c}
				}
			}
			q.pinLoader()
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(0, &set); err != nil {
				t.Error(err)
			}
			count, ran = set.Count(), currentCPU()
			cpu = -1
			for i := 0; i < 1024 && cpu < 0; i++ {
				if set.IsSet(i) {
					cpu = i
				}
			}
		}()
		<-done
		return count, cpu, ran
	}
	if count, cpu, ran := check(false); count != 1 || cpu != ran {
		t.Errorf("pinLoader with free CPUs: thread on %d CPUs (first %d), running on %d; want pinned to the one it runs on", count, cpu, ran)
	}
	if count, _, _ := check(true); count != len(p.cpus) {
		t.Errorf("pinLoader with every CPU taken: thread on %d CPUs, want all %d", count, len(p.cpus))
	}
}

// TestCPUPinsHandOver: an exiting child's CPU goes to its parent's task
// waiting for it, whose sleeping OS thread is moved there at once, and the
// two swap; nothing changes unless both are pinned, to different CPUs, and
// the waiter's thread is known.
func TestCPUPinsHandOver(t *testing.T) {
	p := newCPUPins(false)
	if p == nil {
		t.Skip("one CPU: the kernel pins nothing")
	}
	c0, c1 := p.cpus[0], p.cpus[1]
	tests := []struct {
		name       string
		childCPU   int // -1: not registered
		waiterCPU  int // -1: not registered
		crowd      bool
		noThread   bool
		wantSwitch bool
	}{
		{"both pinned, different CPUs", c0, c1, false, false, true},
		{"same CPU", c0, c0, false, false, false},
		{"more tasks than CPUs", c0, c1, true, false, false},
		{"waiter not registered", c0, -1, false, false, false},
		{"child not registered", -1, c1, false, false, false},
		{"waiter's thread not started", c0, c1, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &cpuPins{cpus: p.cpus, tasks: map[*Task]taskCPU{}}
			child, waiter := &Task{}, &Task{}
			// The entries as the policy leaves them (set directly: add
			// never gives two tasks one CPU).
			register := func(tk *Task, cpu int) {
				if tc.crowd {
					q.tasks[tk] = taskCPU{cpu: -1, prefer: cpu}
					tk.pinCPU.Store(pinAny)
					return
				}
				q.tasks[tk] = taskCPU{cpu: cpu, prefer: cpu}
				tk.pinCPU.Store(int32(cpu) + 1)
			}
			if tc.childCPU >= 0 {
				register(child, tc.childCPU)
			}
			if tc.waiterCPU >= 0 {
				register(waiter, tc.waiterCPU)
			}
			if tc.crowd {
				for range p.cpus {
					register(&Task{}, -1)
				}
			}
			before, waiterBefore := child.pinCPU.Load(), waiter.pinCPU.Load()

			// The waiter's OS thread sleeps, as a task goroutine blocked
			// in wait4 does, pinned where the policy put it.
			tidc, release, done := make(chan int), make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				if w := waiter.pinCPU.Load(); w > 0 {
					var set unix.CPUSet
					set.Set(int(w) - 1)
					_ = unix.SchedSetaffinity(0, &set)
				}
				tidc <- unix.Gettid()
				<-release
			}()
			tid := <-tidc
			defer func() { close(release); <-done }()
			if !tc.noThread {
				waiter.hostTID.Store(int32(tid))
			}

			q.handOver(child, waiter)
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				t.Fatal(err)
			}
			if tc.wantSwitch {
				if got, want := waiter.pinCPU.Load(), int32(tc.childCPU)+1; got != want {
					t.Errorf("waiter's pinCPU = %d, want %d (the child's CPU %d)", got, want, tc.childCPU)
				}
				if got, want := child.pinCPU.Load(), int32(tc.waiterCPU)+1; got != want {
					t.Errorf("child's pinCPU = %d, want %d (the waiter's CPU %d)", got, want, tc.waiterCPU)
				}
				if set.Count() != 1 || !set.IsSet(tc.childCPU) {
					t.Errorf("waiter's thread on %d CPUs (CPU %d set: %v), want only the child's CPU %d", set.Count(), tc.childCPU, set.IsSet(tc.childCPU), tc.childCPU)
				}
				return
			}
			if got := child.pinCPU.Load(); got != before {
				t.Errorf("child's pinCPU = %d, want %d (unchanged)", got, before)
			}
			if got := waiter.pinCPU.Load(); got != waiterBefore {
				t.Errorf("waiter's pinCPU = %d, want %d (unchanged)", got, waiterBefore)
			}
			if tc.waiterCPU >= 0 && !tc.crowd && set.IsSet(tc.childCPU) && tc.childCPU != tc.waiterCPU {
				t.Errorf("waiter's thread may run on the child's CPU %d, want it left on its own", tc.childCPU)
			}
		})
	}
	var none *cpuPins
	none.handOver(&Task{}, &Task{})
}
