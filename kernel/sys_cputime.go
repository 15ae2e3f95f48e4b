package kernel

import "golang.org/x/sys/unix"

// Host CPU clocks, which the kernel reads for its tasks' CPU time
// (rusage.go), and the clocks of the timers on CPU time: ITIMER_VIRTUAL
// follows the process's user time, ITIMER_PROF and the POSIX timers on the
// process CPU clock its user plus system time, and POSIX timers on a
// thread's CPU clock that thread's user plus system time. A timer is
// checked when the Go timer that polls it fires (armItimerLocked,
// armPosixTimerLocked), so an armed timer costs nothing per Switch or per
// system call.

// cpuClockSched is the CPUCLOCK_SCHED clock type of a CPU clock ID: the
// scheduler's exact runtime, which counts only the time a thread runs,
// not the time the host lets it wait for a CPU, so that a loaded host does
// not make a CPU timer fire early.
const cpuClockSched = 2

// processCPUNow returns the CPU time host process pid has used, in
// nanoseconds, or 0 if it cannot be read (the process is gone).
func processCPUNow(pid int) int64 {
	// Linux's make_process_cpuclock(pid, CPUCLOCK_SCHED).
	return clockNano((^int32(pid))<<3 | cpuClockSched)
}

// sentryThreadCPUNow returns the CPU time the sentry's OS thread tid has
// used, in nanoseconds, or 0 if it cannot be read (the thread is gone).
// Only threads of the caller's own process can be read so.
func sentryThreadCPUNow(tid int) int64 {
	// Linux's make_thread_cpuclock(tid, CPUCLOCK_SCHED).
	return clockNano((^int32(tid))<<3 | cpuClockPerThread | cpuClockSched)
}

// threadCPUNow returns the CPU time of the calling OS thread in
// nanoseconds, or 0 if it cannot be read.
func threadCPUNow() int64 { return clockNano(unix.CLOCK_THREAD_CPUTIME_ID) }

// clockNano reads host clock id in nanoseconds, or 0 if it cannot.
func clockNano(id int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// itimerClockLocked returns the current time of timer which's clock: the
// kernel's monotonic time mono for ITIMER_REAL, the process's user time
// for ITIMER_VIRTUAL, and its user plus system time for ITIMER_PROF.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) itimerClockLocked(which int, mono int64) int64 {
	switch which {
	case itimerVirtual:
		user, _ := tg.cpuTimesLocked()
		return user
	case itimerProf:
		return tg.cpuTimeLocked()
	default:
		return mono
	}
}

// repollCPUTimersLocked stops the polls of the process's timers on CPU
// clocks, so that the next check (the calling thread's return to the
// application) arms them again: a new thread lets the process use CPU
// time faster than their delays allowed for.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) repollCPUTimersLocked() {
	for _, which := range []int{itimerVirtual, itimerProf} {
		if it := &tg.sigs.Itimers[which]; it.timer != nil {
			it.timer.Stop()
			it.timer = nil
		}
	}
	for _, pt := range tg.sigs.Timers {
		if pt.onCPUClock() && pt.ClockProcess == nil {
			pt.stopLocked()
		}
	}
}
