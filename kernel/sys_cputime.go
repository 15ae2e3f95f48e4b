package kernel

import (
	"time"

	"golang.org/x/sys/unix"
)

// Process CPU time, for ITIMER_VIRTUAL, ITIMER_PROF and POSIX timers on
// the CPU clocks (user plus system time, as ITIMER_PROF: the process's,
// or for CLOCK_THREAD_CPUTIME_ID the thread's own, taskSignals.CPUTime).
//
// The kernel measures a process's CPU time only while one of these timers
// is armed (tgSignals.cpuTimersArmed), so that nothing is added to a
// syscall round trip otherwise.
//
// User time is the time a thread runs the application. On a platform
// whose context reports the host process running it (StubPID; the ptrace
// platform's stub threads are processes of their own), it is read from
// that process's CPU clock (CPUCLOCK_SCHED: the scheduler's exact
// runtime, in ns) before and after each Switch: about 2 us per Switch
// while a timer is armed. That clock counts only the time the stub thread
// runs, not the time the host lets it wait for a CPU, so a loaded host does
// not make the timer fire early. The stub also runs the few system calls
// the platform injects; their time counts as user time. On other
// platforms the wall time inside Switch stands in for it.
//
// System time is the CPU time that the task goroutine's OS thread (locked
// to it) uses between two Switches: the sentry's work on the thread's
// syscalls and faults, read with CLOCK_THREAD_CPUTIME_ID, so time blocked
// in a syscall does not count, as in Linux. It is measured while
// ITIMER_PROF is armed.
//
// Both are process totals in tgSignals (saved), so the timers continue
// across execve, save and restore; a Switch in progress at a save is lost.

// stubPIDer is implemented by platform contexts that run the application
// in a host process of their own (platform/ptrace).
type stubPIDer interface {
	StubPID() int
}

// cpuClockSched is the CPUCLOCK_SCHED clock type of a process CPU clock ID.
const cpuClockSched = 2

// processCPUNow returns the CPU time host process pid has used, in
// nanoseconds, or 0 if it cannot be read (the process is gone).
func processCPUNow(pid int) int64 {
	var ts unix.Timespec
	// Linux's make_process_cpuclock(pid, CPUCLOCK_SCHED).
	id := (^int32(pid))<<3 | cpuClockSched
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// cpuEpoch is the origin of wallNow.
var cpuEpoch = time.Now()

// wallNow returns a monotonic time in nanoseconds, through the vDSO.
func wallNow() int64 { return int64(time.Since(cpuEpoch)) }

// threadCPUNow returns the CPU time of the calling OS thread in
// nanoseconds (never 0, which marks "not measured").
func threadCPUNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 1
	}
	return max(ts.Nano(), 1)
}

// userTimer is what beginUserTime hands to endUserTime.
type userTimer struct {
	// mode says how the Switch is measured.
	mode userTimerMode
	// start is the wall time at the start, for userTimeWall.
	start int64
}

type userTimerMode uint8

const (
	userTimeOff  userTimerMode = iota // no CPU-time timer armed
	userTimeStub                      // the stub process's CPU clock
	userTimeWall                      // wall time in Switch
)

// beginUserTime is called just before the task switches to the
// application; its result goes to endUserTime. It accounts the system time
// since the last return from the application if that was measured.
//
// Preconditions: called by the task goroutine.
func (t *Task) beginUserTime() userTimer {
	if !t.tg.sigs.cpuTimersArmed.Load() {
		t.sig.stubPID, t.sig.stubMark, t.sig.sysMark = 0, 0, 0
		return userTimer{}
	}
	if mark := t.sig.sysMark; mark != 0 {
		t.sig.sysMark = 0
		if d := threadCPUNow() - mark; d > 0 {
			t.tg.mu.Lock()
			t.tg.sigs.SysTime += d
			t.sig.CPUTime += d
			t.tg.mu.Unlock()
		}
	}
	if p, ok := t.ctx.(stubPIDer); ok {
		if t.sig.stubPID == 0 {
			// First Switch measured: start from the stub the last Switch
			// used, which the next one uses again unless the address
			// space changed.
			if pid := p.StubPID(); pid != 0 {
				t.sig.stubPID, t.sig.stubMark = pid, processCPUNow(pid)
			}
		}
		return userTimer{mode: userTimeStub}
	}
	return userTimer{mode: userTimeWall, start: wallNow()}
}

// endUserTime is called when Switch returns, with beginUserTime's result:
// it adds the time in the application to the process's user time, and
// starts measuring system time if ITIMER_PROF or a POSIX timer on the
// process CPU clock is armed.
//
// Preconditions: called by the task goroutine.
func (t *Task) endUserTime(u userTimer) {
	if p, ok := t.ctx.(stubPIDer); ok {
		t.noteStub(p)
	}
	var d int64
	switch u.mode {
	case userTimeOff:
		return
	case userTimeStub:
		pid := t.ctx.(stubPIDer).StubPID()
		var now int64
		if pid != 0 {
			now = processCPUNow(pid)
		}
		if pid == t.sig.stubPID && t.sig.stubMark != 0 && now > t.sig.stubMark {
			d = now - t.sig.stubMark
		}
		t.sig.stubPID, t.sig.stubMark = pid, now
	case userTimeWall:
		d = wallNow() - u.start
	}
	tg := t.tg
	tg.mu.Lock()
	tg.sigs.UserTime += d
	t.sig.CPUTime += d
	prof := tg.sigs.Itimers[itimerProf].Expiry != 0 || tg.posixCPUTimerArmedLocked()
	tg.mu.Unlock()
	if prof {
		t.sig.sysMark = threadCPUNow()
	}
}

// updateCPUTimersArmedLocked records whether ITIMER_VIRTUAL, ITIMER_PROF
// or a POSIX timer on the process CPU clock is armed, for beginUserTime.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) updateCPUTimersArmedLocked() {
	its := &tg.sigs.Itimers
	tg.sigs.cpuTimersArmed.Store(its[itimerVirtual].Expiry != 0 || its[itimerProf].Expiry != 0 || tg.posixCPUTimerArmedLocked())
}

// itimerClockLocked returns the current time of timer which's clock: the
// kernel's monotonic time mono for ITIMER_REAL, the process's user time
// for ITIMER_VIRTUAL, and its user plus system time for ITIMER_PROF.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) itimerClockLocked(which int, mono int64) int64 {
	switch which {
	case itimerVirtual:
		return tg.sigs.UserTime
	case itimerProf:
		return tg.sigs.UserTime + tg.sigs.SysTime
	default:
		return mono
	}
}
