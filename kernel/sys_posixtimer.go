package kernel

import (
	"encoding/binary"
	"math"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// sigevent notification kinds (asm-generic/siginfo.h). SIGEV_THREAD is a
// libc feature: the kernel treats it as SIGEV_SIGNAL.
const (
	sigevSignal   = 0
	sigevNone     = 1
	sigevThread   = 2
	sigevThreadID = 4
	sigeventSize  = 64
)

// maxPosixTimers bounds the timers of one process.
const maxPosixTimers = 1 << 15

// posixTimer is one timer_create(2) timer of a process. Like the interval
// timers (task_signals.go), its expiry is in its clock's time (the
// kernel-monotonic clock for CLOCK_MONOTONIC and CLOCK_BOOTTIME, the
// host's realtime clock for CLOCK_REALTIME), so that a restored timer keeps
// its remaining time; the Go timer that wakes the process is host state,
// re-armed by the next check. Protected by ThreadGroup.mu.
//
// +stateify savable
type posixTimer struct {
	// ID is the timer ID timer_create returned.
	ID int32
	// Clock is the clock ID.
	Clock int32
	// Notify is sigevSignal or sigevNone, with sigevThreadID when the
	// signal goes to Target rather than to the process.
	Notify int32
	Signo  int32
	// Value is the sigev_value the signal carries.
	Value  uint64
	Target *Task
	// Owner is the thread that made the timer, whose CPU clock a
	// CLOCK_THREAD_CPUTIME_ID timer follows unless ClockTask is set.
	Owner *Task
	// ClockTask is the thread of the process whose CPU clock the timer
	// follows, when it was given by its clock ID
	// (pthread_getcpuclockid); nil: Owner.
	ClockTask *Task
	// ClockProcess is the other process whose CPU clock the timer
	// follows (Clock is then clockProcessCPUTime), when it was given by
	// its clock ID (clock_getcpuclockid); nil: the owner's process. Its
	// CPU time is read as getrusage reads it (rusage.go), and ForeignNow
	// is the last value read (see nowLocked).
	ClockProcess *ThreadGroup
	ForeignNow   int64
	// Expiry is the next expiry on Clock, in nanoseconds; 0 when
	// disarmed. Interval is the period, 0 for a one-shot timer.
	Expiry   int64
	Interval int64
	// Queued is set while the timer's signal is pending; expiries until
	// it is delivered count in Overruns and are reported with it
	// (si_overrun), then by timer_getoverrun (LastOverrun).
	Queued      bool
	Overruns    int64
	LastOverrun int32
	// timer wakes a thread of the process at armedFor. Not saved.
	timer    *time.Timer `state:"nosave"`
	armedFor int64       `state:"nosave"`
}

// processCPUClock and threadCPUClock are the CPU clocks of the calling
// process and thread as glibc passes them to timer_create
// (MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED) and the thread one); musl passes
// CLOCK_PROCESS_CPUTIME_ID and CLOCK_THREAD_CPUTIME_ID themselves.
const (
	processCPUClock = ^int32(0)<<3 | cpuClockSched
	threadCPUClock  = processCPUClock | 4
)

// posixTimerClock checks a timer_create clock and returns the one the timer
// uses: the realtime, monotonic and boot-time clocks (the alarm ones need
// CAP_WAKE_ALARM) and the CPU clocks of the calling process and of its
// threads (by their clock IDs too; the thread then comes second), measured
// as ITIMER_PROF measures them, and the CPU clock of another process by
// its clock ID (the process then comes third), measured as getrusage
// measures it.
func (t *Task) posixTimerClock(c int32) (int32, *Task, *ThreadGroup, error) {
	switch c {
	case clockProcessCPUTime, processCPUClock:
		return clockProcessCPUTime, nil, nil, nil
	case clockThreadCPUTime, threadCPUClock:
		return clockThreadCPUTime, nil, nil, nil
	case clockRealtime, clockMonotonic, clockBoottime:
		return c, nil, nil, nil
	case clockRealtimeAlarm, clockBoottimeAlarm:
		if !t.creds.capable(capWakeAlarm) {
			return 0, nil, nil, unix.EPERM
		}
		return c, nil, nil, nil
	case clockMonotonicRaw, clockRealtimeCoarse, clockMonotonicCoarse:
		return 0, nil, nil, unix.EOPNOTSUPP
	}
	if isCPUClockID(c) {
		task, tg, err := t.cpuClockTarget(c)
		switch {
		case err != nil:
			return 0, nil, nil, unix.EINVAL
		case task != nil:
			return clockThreadCPUTime, task, nil, nil
		case tg != t.tg:
			return clockProcessCPUTime, nil, tg, nil
		}
		return clockProcessCPUTime, nil, nil, nil
	}
	return 0, nil, nil, unix.EINVAL
}

// capWakeAlarm is CAP_WAKE_ALARM.
const capWakeAlarm = 35

// parseSigevent reads a struct sigevent for a timer of t's process.
func (t *Task) parseSigevent(addr uint64, pt *posixTimer) error {
	var b [sigeventSize]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return err
	}
	le := binary.LittleEndian
	pt.Value = le.Uint64(b[0:])
	pt.Signo = int32(le.Uint32(b[8:]))
	notify := int32(le.Uint32(b[12:]))
	switch notify {
	case sigevSignal | sigevThreadID:
		target, err := t.taskByTID(int32(le.Uint32(b[16:])))
		if err != nil || target.tg != t.tg {
			return unix.EINVAL
		}
		pt.Target = target
	case sigevSignal, sigevThread:
		notify = sigevSignal
	case sigevNone:
		pt.Notify = sigevNone
		return nil
	default:
		return unix.EINVAL
	}
	if pt.Signo <= 0 || pt.Signo > numSignals {
		return unix.EINVAL
	}
	pt.Notify = notify
	return nil
}

func sysTimerCreate(t *Task, a *sysArgs) (uint64, error) {
	clock, clockTask, clockProcess, err := t.posixTimerClock(a.Int(0))
	if err != nil {
		return 0, err
	}
	pt := &posixTimer{Clock: clock, ClockTask: clockTask, ClockProcess: clockProcess, Notify: sigevSignal, Signo: int32(unix.SIGALRM), Owner: t}
	if clockProcess != nil {
		// Read the other process's clock once while no lock is held, so
		// that nowLocked never starts from 0.
		clockProcess.mu.Lock()
		pt.ForeignNow = clockProcess.cpuTimeLocked()
		clockProcess.mu.Unlock()
	}
	if a[1] != 0 {
		if err := t.parseSigevent(a[1], pt); err != nil {
			return 0, err
		}
	}
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.sigs.Timers) >= maxPosixTimers {
		return 0, unix.EAGAIN
	}
	for tg.timerLocked(tg.sigs.NextTimerID) != nil {
		tg.sigs.NextTimerID = (tg.sigs.NextTimerID + 1) & math.MaxInt32
	}
	pt.ID = tg.sigs.NextTimerID
	tg.sigs.NextTimerID = (tg.sigs.NextTimerID + 1) & math.MaxInt32
	if a[1] == 0 {
		pt.Value = uint64(pt.ID) // sigev_value.sival_int is the ID, as in Linux
	}
	if err := t.copyOutUint32(a[2], uint32(pt.ID)); err != nil {
		return 0, err
	}
	tg.sigs.Timers = append(tg.sigs.Timers, pt)
	return 0, nil
}

// timerLocked returns the process's timer id, or nil.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) timerLocked(id int32) *posixTimer {
	for _, pt := range tg.sigs.Timers {
		if pt.ID == id {
			return pt
		}
	}
	return nil
}

// nowLocked returns the current time of the timer's clock.
//
// Preconditions: tg.mu is held.
func (pt *posixTimer) nowLocked(tg *ThreadGroup) int64 {
	switch pt.Clock {
	case clockRealtime, clockRealtimeAlarm:
		return tg.k.realtimeNow()
	case clockProcessCPUTime:
		if o := pt.ClockProcess; o != nil {
			// Another process: its mu may not be waited for here, as its
			// own timers may follow this process's clock (the two locks
			// would be taken in both orders). When it is busy, the last
			// value read stands; the timer polls again.
			if o.mu.TryLock() {
				pt.ForeignNow = max(pt.ForeignNow, o.cpuTimeLocked())
				o.mu.Unlock()
			}
			return pt.ForeignNow
		}
		return tg.cpuTimeLocked()
	case clockThreadCPUTime:
		if pt.ClockTask != nil {
			return pt.ClockTask.cpuTimeLocked()
		}
		return pt.Owner.cpuTimeLocked()
	}
	return tg.k.monotonicNow()
}

// onCPUClock reports whether the timer follows a CPU clock.
func (pt *posixTimer) onCPUClock() bool {
	return pt.Clock == clockProcessCPUTime || pt.Clock == clockThreadCPUTime
}

// checkPosixTimersLocked signals the expired POSIX timers of the process
// and arms the Go timers that wake it at their next expiries.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) checkPosixTimersLocked() {
	for _, pt := range tg.sigs.Timers {
		if pt.Expiry == 0 {
			continue
		}
		if pt.onCPUClock() && (pt.Notify == sigevNone || pt.timer != nil && pt.armedFor == pt.Expiry) {
			// Nothing to signal, or its poll has not fired, so that its
			// clock cannot have reached the expiry yet
			// (armPosixTimerLocked); reading CPU time costs host calls.
			continue
		}
		if n := pt.advance(pt.nowLocked(tg)); n > 0 {
			tg.firePosixTimerLocked(pt, n)
		}
		if pt.Expiry != 0 && pt.Notify != sigevNone && (pt.timer == nil || pt.armedFor != pt.Expiry) {
			tg.armPosixTimerLocked(pt)
		}
	}
}

// advance moves an expired timer to its next expiry (or disarms a
// one-shot one) and returns how many times it expired by now.
func (pt *posixTimer) advance(now int64) int64 {
	if pt.Expiry == 0 || now < pt.Expiry {
		return 0
	}
	if pt.Interval == 0 {
		pt.Expiry = 0
		return 1
	}
	n := (now-pt.Expiry)/pt.Interval + 1
	pt.Expiry += n * pt.Interval
	return n
}

// firePosixTimerLocked queues the signal of a timer that expired n times,
// or counts overruns while its last signal is still pending.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) firePosixTimerLocked(pt *posixTimer, n int64) {
	if pt.Notify == sigevNone {
		return
	}
	target := pt.Target
	if target != nil && !tg.hasTaskLocked(target) {
		// The thread is gone, and the signal queued for it with it: the
		// process takes the signals from now on.
		target, pt.Target, pt.Queued = nil, nil, false
	}
	if pt.Queued {
		pt.Overruns += n
		return
	}
	signo := int(pt.Signo)
	bit := sigBit(signo)
	// As sendSignal: an ignored signal is dropped unless every thread it
	// may go to blocks it (sigwaitinfo may take it then).
	blocked := target != nil && target.sig.Mask&bit != 0
	if target == nil {
		blocked = true
		for _, o := range tg.tasks {
			blocked = blocked && o.sig.Mask&bit != 0
		}
	}
	if tg.ignoredLocked(signo) && !blocked {
		return
	}
	info := sigInfo{Signo: pt.Signo, Code: siTimer, Pid: pt.ID, Value: pt.Value, Timer: pt}
	q := &tg.sigs.Pending
	if target != nil {
		q = &target.sig.Pending
	}
	if signo < sigRTMin && q.Set&bit != 0 {
		return // a standard signal already pending: this expiry is lost
	}
	q.enqueue(info)
	pt.Queued, pt.Overruns = true, n-1
	tg.signalQueuedLocked()
	wake := target
	if wake == nil {
		for _, o := range tg.tasks {
			if o.sig.Mask&bit == 0 {
				wake = o
				break
			}
		}
	}
	if wake != nil && wake.sig.Mask&bit == 0 {
		wake.interrupt()
	}
}

// hasTaskLocked reports whether t is a live thread of tg.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) hasTaskLocked(t *Task) bool {
	for _, o := range tg.tasks {
		if o == t {
			return true
		}
	}
	return false
}

// delivered records that the timer's queued signal is being delivered and
// returns the overrun count it reports.
//
// Preconditions: the process's mu is held.
func (pt *posixTimer) delivered() uint32 {
	pt.Queued = false
	pt.LastOverrun = int32(min(pt.Overruns, math.MaxInt32))
	pt.Overruns = 0
	return uint32(pt.LastOverrun)
}

// armPosixTimerLocked starts the Go timer that interrupts a thread of the
// process when pt expires; that thread then signals it. A timer on the CPU
// clock polls, as ITIMER_PROF does (armItimerLocked): its Go timer fires
// when the process could have used the time at the earliest, and the check
// it causes arms it again for what is left.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) armPosixTimerLocked(pt *posixTimer) {
	if pt.timer != nil {
		pt.timer.Stop()
	}
	pt.armedFor = pt.Expiry
	delay := time.Duration(pt.Expiry - pt.nowLocked(tg))
	if !pt.onCPUClock() {
		pt.timer = time.AfterFunc(delay, tg.itimerWake)
		return
	}
	threads := len(tg.tasks)
	if pt.ClockProcess != nil {
		// Another process cannot use CPU time faster than the host has
		// CPUs.
		threads = runtime.NumCPU()
	}
	delay = max(delay/time.Duration(max(threads, 1)), minCPUTimerPoll)
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		// tm is set: the arming code held tg.mu until it was.
		tg.mu.Lock()
		if pt.timer == tm {
			pt.timer = nil // fired: the next check arms it again
		}
		tg.mu.Unlock()
		tg.itimerWake()
	})
	pt.timer = tm
}

// stopPosixTimerLocked stops pt's Go timer.
//
// Preconditions: tg.mu is held.
func (pt *posixTimer) stopLocked() {
	if pt.timer != nil {
		pt.timer.Stop()
		pt.timer = nil
	}
}

// deletePosixTimersLocked deletes every timer of the process (execve and
// exit).
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) deletePosixTimersLocked() {
	for _, pt := range tg.sigs.Timers {
		pt.stopLocked()
	}
	tg.sigs.Timers = nil
}

// itimerspecSize is sizeof(struct itimerspec): it_interval, it_value.
const itimerspecSize = 2 * timespecSize

// remainingLocked returns what timer_gettime reports: the time to the next
// expiry (1 ns for a signal timer past its expiry but not yet signalled,
// as Linux) and the interval.
//
// Preconditions: the process's mu is held.
func (pt *posixTimer) remainingLocked(tg *ThreadGroup) (value, interval int64) {
	now := pt.nowLocked(tg)
	if pt.Notify == sigevNone {
		pt.advance(now)
	}
	if pt.Expiry == 0 {
		return 0, pt.Interval
	}
	return max(pt.Expiry-now, 1), pt.Interval
}

// copyOutItimerspec writes a struct itimerspec.
func (t *Task) copyOutItimerspec(addr uint64, value, interval int64) error {
	var b [itimerspecSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(interval/nsPerSec))
	le.PutUint64(b[8:], uint64(interval%nsPerSec))
	le.PutUint64(b[16:], uint64(value/nsPerSec))
	le.PutUint64(b[24:], uint64(value%nsPerSec))
	return t.tg.mm.CopyOut(addr, b[:])
}

// copyInItimerspec reads and validates a struct itimerspec.
func (t *Task) copyInItimerspec(addr uint64) (value, interval int64, err error) {
	if interval, err = t.copyInTimespec(addr); err != nil {
		return 0, 0, err
	}
	value, err = t.copyInTimespec(addr + timespecSize)
	return value, interval, err
}

func sysTimerSettime(t *Task, a *sysArgs) (uint64, error) {
	flags := a.Int(1)
	if a[2] == 0 {
		return 0, unix.EINVAL
	}
	value, interval, err := t.copyInItimerspec(a[2])
	if err != nil {
		return 0, err
	}
	tg := t.tg
	tg.mu.Lock()
	pt := tg.timerLocked(a.Int(0))
	if pt == nil {
		tg.mu.Unlock()
		return 0, unix.EINVAL
	}
	oldValue, oldInterval := pt.remainingLocked(tg)
	pt.stopLocked()
	pt.Interval = interval
	switch {
	case value == 0:
		pt.Expiry = 0
	case flags&timerAbstime != 0:
		pt.Expiry = value
	default:
		pt.Expiry = saturatingAdd(pt.nowLocked(tg), value)
	}
	tg.checkPosixTimersLocked()
	tg.mu.Unlock()
	if a[3] != 0 {
		return 0, t.copyOutItimerspec(a[3], oldValue, oldInterval)
	}
	return 0, nil
}

func sysTimerGettime(t *Task, a *sysArgs) (uint64, error) {
	tg := t.tg
	tg.mu.Lock()
	tg.checkPosixTimersLocked()
	pt := tg.timerLocked(a.Int(0))
	if pt == nil {
		tg.mu.Unlock()
		return 0, unix.EINVAL
	}
	value, interval := pt.remainingLocked(tg)
	tg.mu.Unlock()
	return 0, t.copyOutItimerspec(a[1], value, interval)
}

func sysTimerGetoverrun(t *Task, a *sysArgs) (uint64, error) {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	pt := tg.timerLocked(a.Int(0))
	if pt == nil {
		return 0, unix.EINVAL
	}
	return uint64(pt.LastOverrun), nil
}

func sysTimerDelete(t *Task, a *sysArgs) (uint64, error) {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for i, pt := range tg.sigs.Timers {
		if pt.ID == a.Int(0) {
			pt.stopLocked()
			pt.Expiry = 0
			tg.sigs.Timers = append(tg.sigs.Timers[:i], tg.sigs.Timers[i+1:]...)
			return 0, nil
		}
	}
	return 0, unix.EINVAL
}
