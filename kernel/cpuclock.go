package kernel

import "golang.org/x/sys/unix"

// CPU clock IDs (clock_getcpuclockid, pthread_getcpuclockid) name the CPU
// time of a process or of one of its threads: ~pid << 3 | which, with
// cpuClockPerThread set for a thread (Linux's MAKE_PROCESS_CPUCLOCK and
// MAKE_THREAD_CPUCLOCK; pid 0 is the caller). which is CPUCLOCK_PROF,
// CPUCLOCK_VIRT or CPUCLOCK_SCHED; the sandbox measures one CPU time for
// all three.
const (
	cpuClockPerThread = 4
	cpuClockWhichMask = 3
	cpuClockMax       = 3
)

// isCPUClockID reports whether c encodes a process or thread CPU clock.
func isCPUClockID(c int32) bool { return c < 0 }

// cpuClockTarget resolves CPU clock c as Linux's lookup_task does: a
// thread clock names a thread of the caller's process (pid 0: the caller),
// a process clock a process of the sandbox (0: the caller's). EINVAL for
// anything else, also for a bad which.
func (t *Task) cpuClockTarget(c int32) (*Task, *ThreadGroup, error) {
	if c&cpuClockWhichMask >= cpuClockMax {
		return nil, nil, unix.EINVAL
	}
	id := ^(c >> 3)
	if c&cpuClockPerThread != 0 {
		o, err := t.taskByTID(id)
		if err != nil || o.tg != t.tg {
			return nil, nil, unix.EINVAL
		}
		return o, o.tg, nil
	}
	tg, err := t.processByPID(id)
	if err != nil {
		return nil, nil, unix.EINVAL
	}
	return nil, tg, nil
}

// clockNow returns clock c's time for clock_gettime: the CPU clocks of
// the caller's process and thread, and of a process or thread given by
// its clock ID, read as rusage.go measures them (user plus system time);
// the other clocks as Kernel.clockNow.
func (t *Task) clockNow(c int32) (int64, error) {
	task, tg := t, t.tg
	switch {
	case c == clockProcessCPUTime:
		task = nil
	case c == clockThreadCPUTime:
	case isCPUClockID(c):
		var err error
		if task, tg, err = t.cpuClockTarget(c); err != nil {
			return 0, err
		}
	default:
		return t.k.clockNow(c)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if task != nil {
		return task.cpuTimeLocked(), nil
	}
	return tg.cpuTimeLocked(), nil
}
