package kernel

import (
	"encoding/binary"
	"math"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

func sysSchedYield(_ *Task, _ *sysArgs) (uint64, error) { runtime.Gosched(); return 0, nil }

const nsPerSec = int64(time.Second)

// Clock IDs (linux/time.h).
const (
	clockRealtime        = 0
	clockMonotonic       = 1
	clockProcessCPUTime  = 2
	clockThreadCPUTime   = 3
	clockMonotonicRaw    = 4
	clockRealtimeCoarse  = 5
	clockMonotonicCoarse = 6
	clockBoottime        = 7
	clockRealtimeAlarm   = 8
	clockBoottimeAlarm   = 9
	clockTAI             = 11
	timerAbstime         = 1
	coarseResolution     = int64(4 * time.Millisecond)
	clockTicksPerSecond  = 100
	timespecSize         = 16
	maxTimespecSeconds   = (1<<63 - 1) / nsPerSec
)

// clockNow returns clock c's time in nanoseconds. The monotonic clocks are
// the kernel's (continuous across save and restore); the realtime clocks are
// the host's. The CPU clocks are a task's (Task.clockNow).
func (k *Kernel) clockNow(c int32) (int64, error) {
	switch c {
	case clockRealtime, clockRealtimeCoarse, clockRealtimeAlarm, clockTAI:
		return k.realtimeNow(), nil
	case clockMonotonic, clockMonotonicRaw, clockMonotonicCoarse, clockBoottime, clockBoottimeAlarm:
		return k.monotonicNow(), nil
	default:
		return 0, unix.EINVAL
	}
}

func (t *Task) copyOutTimespec(addr uint64, ns int64) error {
	var b [timespecSize]byte
	binary.LittleEndian.PutUint64(b[:], uint64(ns/nsPerSec))
	binary.LittleEndian.PutUint64(b[8:], uint64(ns%nsPerSec))
	return t.tg.mm.CopyOut(addr, b[:])
}

// copyInTimespec reads a struct timespec and validates it (EINVAL for a
// negative or non-normalized value).
func (t *Task) copyInTimespec(addr uint64) (int64, error) {
	var b [timespecSize]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, err
	}
	sec := int64(binary.LittleEndian.Uint64(b[:]))
	nsec := int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= nsPerSec {
		return 0, unix.EINVAL
	}
	if sec > maxTimespecSeconds {
		sec = maxTimespecSeconds
	}
	return sec*nsPerSec + nsec, nil
}

func sysClockGettime(t *Task, a *sysArgs) (uint64, error) {
	ns, err := t.clockNow(a.Int(0))
	if err != nil {
		return 0, err
	}
	return 0, t.copyOutTimespec(a[1], ns)
}

func sysClockGetres(t *Task, a *sysArgs) (uint64, error) {
	c := a.Int(0)
	if _, err := t.clockNow(c); err != nil {
		return 0, err
	}
	if a[1] == 0 {
		return 0, nil
	}
	res := int64(1)
	if c == clockRealtimeCoarse || c == clockMonotonicCoarse {
		res = coarseResolution
	}
	return 0, t.copyOutTimespec(a[1], res)
}

func sysGettimeofday(t *Task, a *sysArgs) (uint64, error) {
	if a[0] != 0 {
		ns := t.k.realtimeNow()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], uint64(ns/nsPerSec))
		binary.LittleEndian.PutUint64(b[8:], uint64(ns%nsPerSec/1000))
		if err := t.tg.mm.CopyOut(a[0], b[:]); err != nil {
			return 0, err
		}
	}
	if a[1] != 0 {
		if err := t.tg.mm.ZeroOut(a[1], 8); err != nil { // struct timezone: UTC
			return 0, err
		}
	}
	return 0, nil
}

func sysTime(t *Task, a *sysArgs) (uint64, error) {
	s := uint64(t.k.realtimeNow() / nsPerSec)
	if a[0] != 0 {
		if err := t.copyOutUint64(a[0], s); err != nil {
			return 0, err
		}
	}
	return s, nil
}

func sysTimes(t *Task, a *sysArgs) (uint64, error) {
	if a[0] != 0 {
		// CPU time as rusage.go measures it.
		tg := t.tg
		tg.mu.Lock()
		user, sys := tg.cpuTimesLocked()
		times := [4]int64{user, sys, tg.sigs.ChildUser, tg.sigs.ChildSys}
		tg.mu.Unlock()
		var b [32]byte // struct tms: utime, stime, cutime, cstime
		for i, ns := range times {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(ns/(nsPerSec/clockTicksPerSecond)))
		}
		if err := t.tg.mm.CopyOut(a[0], b[:]); err != nil {
			return 0, err
		}
	}
	return uint64(t.k.monotonicNow() / (nsPerSec / clockTicksPerSecond)), nil
}

func sysNanosleep(t *Task, a *sysArgs) (uint64, error) {
	d, err := t.copyInTimespec(a[0])
	if err != nil {
		return 0, err
	}
	return t.sleepUntil(saturatingAdd(t.k.monotonicNow(), d), a[1])
}

// saturatingAdd returns a+b clamped to the int64 range: a deadline that
// overflows is "never", and one already in the past (b < 0, an absolute
// time that has passed) stays in the past.
func saturatingAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// sleepUntil sleeps until the kernel-monotonic deadline. Interrupted, it
// records the deadline for restart_syscall (so the remaining time survives
// a stop, a save and a restore) and writes the remaining time to remAddr
// for a handler that makes it return EINTR.
func (t *Task) sleepUntil(deadline int64, remAddr uint64) (uint64, error) {
	_, err := t.blockUntil(nil, deadline)
	if err == nil {
		return 0, nil
	}
	if remAddr != 0 {
		rem := max(deadline-t.k.monotonicNow(), 0)
		if err := t.copyOutTimespec(remAddr, rem); err != nil {
			return 0, err
		}
	}
	t.restart = restartBlock{Kind: restartNanosleep, Deadline: deadline, RemAddr: remAddr}
	return 0, errRestartRestartBlock
}

func sysClockNanosleep(t *Task, a *sysArgs) (uint64, error) {
	c := a.Int(0)
	switch c {
	case clockRealtime, clockMonotonic, clockBoottime, clockTAI, clockRealtimeAlarm, clockBoottimeAlarm:
	case clockProcessCPUTime:
		return 0, unix.EOPNOTSUPP
	case clockThreadCPUTime:
		return 0, unix.EINVAL
	default:
		return 0, unix.EINVAL
	}
	d, err := t.copyInTimespec(a[2])
	if err != nil {
		return 0, err
	}
	if a[1]&timerAbstime == 0 {
		return t.sleepUntil(saturatingAdd(t.k.monotonicNow(), d), a[3])
	}
	// Absolute: convert to the monotonic clock now and wait; interrupted,
	// the same syscall simply restarts with the same absolute time.
	now, _ := t.k.clockNow(c)
	deadline := saturatingAdd(t.k.monotonicNow(), d-now)
	if _, err := t.blockUntil(nil, deadline); err != nil {
		return 0, errRestartNoHand
	}
	return 0, nil
}

// settodMaxSeconds is TIME_SETTOD_SEC_MAX: the realtime clock cannot be set
// this close to the end of 64-bit time.
const settodMaxSeconds = maxTimespecSeconds - 30*365*86400

// sysClockSettime checks its arguments as Linux does and then refuses: the
// sandbox never changes the host's clock, as a process without CAP_SYS_TIME
// (EPERM). Clocks that cannot be set are EINVAL.
func sysClockSettime(t *Task, a *sysArgs) (uint64, error) {
	c := a.Int(0)
	switch c {
	case clockRealtime, clockProcessCPUTime, clockThreadCPUTime:
	default:
		return 0, unix.EINVAL
	}
	var b [timespecSize]byte
	if err := t.tg.mm.CopyIn(a[1], b[:]); err != nil {
		return 0, err
	}
	sec := int64(binary.LittleEndian.Uint64(b[:]))
	nsec := int64(binary.LittleEndian.Uint64(b[8:]))
	if c == clockRealtime && (sec < 0 || sec >= settodMaxSeconds || nsec < 0 || nsec >= nsPerSec) {
		return 0, unix.EINVAL
	}
	return 0, unix.EPERM
}

// sysSettimeofday checks its arguments as Linux does and then refuses with
// EPERM, as sysClockSettime.
func sysSettimeofday(t *Task, a *sysArgs) (uint64, error) {
	if a[0] != 0 {
		var b [16]byte
		if err := t.tg.mm.CopyIn(a[0], b[:]); err != nil {
			return 0, err
		}
		sec := int64(binary.LittleEndian.Uint64(b[:]))
		usec := int64(binary.LittleEndian.Uint64(b[8:]))
		if sec < 0 || sec >= settodMaxSeconds || usec < 0 || usec >= 1e6 {
			return 0, unix.EINVAL
		}
	}
	if a[1] != 0 {
		var tz [8]byte
		if err := t.tg.mm.CopyIn(a[1], tz[:]); err != nil {
			return 0, err
		}
	}
	return 0, unix.EPERM
}
