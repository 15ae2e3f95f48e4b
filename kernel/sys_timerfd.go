package kernel

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd_settime flags (sys/timerfd.h).
const (
	tfdTimerAbstime     = 1
	tfdTimerCancelOnSet = 2
)

// timerFD is a timerfd(2): a timer whose expirations are counted and read
// from a descriptor. Its expiry is in its clock's time, like a POSIX
// timer's (sys_posixtimer.go), so a restored timerfd keeps its remaining
// time and its unread count; the Go timer that wakes its waiters is host
// state, armed again by the next wait.
//
// +stateify savable
type timerFD struct {
	// k reads the clock. Immutable.
	k *Kernel
	// clock is the clock ID. Immutable.
	clock int32

	// mu protects the fields below.
	mu sync.Mutex `state:"nosave"`
	// expiry is the next expiry on clock in nanoseconds, 0 when
	// disarmed; interval is the period, 0 for a one-shot timer.
	expiry, interval int64
	// count is the number of expirations not read yet.
	count uint64
	// ch is closed when count changes. Not saved: made on demand.
	ch chan struct{} `state:"nosave"`
	// timer closes ch at armedFor. Not saved: the next wait arms it.
	timer    *time.Timer `state:"nosave"`
	armedFor int64       `state:"nosave"`
}

// now returns the current time of the timerfd's clock.
func (tf *timerFD) now() int64 {
	if tf.clock == clockRealtime || tf.clock == clockRealtimeAlarm {
		return tf.k.realtimeNow()
	}
	return tf.k.monotonicNow()
}

// updateLocked counts the expirations up to now.
//
// Preconditions: tf.mu is held.
func (tf *timerFD) updateLocked() {
	if tf.expiry == 0 {
		return
	}
	now := tf.now()
	if now < tf.expiry {
		return
	}
	n := int64(1)
	if tf.interval > 0 {
		n += (now - tf.expiry) / tf.interval
		tf.expiry += n * tf.interval
	} else {
		tf.expiry = 0
	}
	tf.count += uint64(n)
	tf.notifyLocked()
}

// notifyLocked wakes the waiters.
//
// Preconditions: tf.mu is held.
func (tf *timerFD) notifyLocked() {
	if tf.ch != nil {
		close(tf.ch)
		tf.ch = nil
	}
}

// changedLocked returns a channel closed at the next change of count,
// arming the Go timer that makes the next expiry one.
//
// Preconditions: tf.mu is held.
func (tf *timerFD) changedLocked() <-chan struct{} {
	if tf.ch == nil {
		tf.ch = make(chan struct{})
	}
	if tf.expiry != 0 && (tf.timer == nil || tf.armedFor != tf.expiry) {
		if tf.timer != nil {
			tf.timer.Stop()
		}
		tf.armedFor = tf.expiry
		tf.timer = time.AfterFunc(time.Duration(tf.expiry-tf.now()), tf.fire)
	}
	return tf.ch
}

// fire runs on the Go timer's goroutine: it counts the expiry and wakes
// the waiters (who arm the timer again if they still wait).
func (tf *timerFD) fire() {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	tf.timer = nil
	tf.updateLocked()
	tf.notifyLocked()
}

func (tf *timerFD) changed() <-chan struct{} {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	tf.updateLocked()
	return tf.changedLocked()
}

func (tf *timerFD) readiness(mask uint32) uint32 {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	tf.updateLocked()
	if tf.count > 0 {
		return unix.POLLIN & mask
	}
	return 0
}

// read returns the expirations counted since the last read, as a uint64,
// waiting for one if there is none.
func (tf *timerFD) read(t *Task, dst []byte, nonblock bool) (int, error) {
	if len(dst) < 8 {
		return 0, unix.EINVAL
	}
	for {
		tf.mu.Lock()
		tf.updateLocked()
		if n := tf.count; n > 0 {
			tf.count = 0
			tf.mu.Unlock()
			binary.LittleEndian.PutUint64(dst, n)
			return 8, nil
		}
		ch := tf.changedLocked()
		tf.mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := t.block(ch); err != nil {
			return 0, err
		}
	}
}

func (tf *timerFD) write(*Task, []byte, bool) (int, error) { return 0, unix.EINVAL }

// remainingLocked returns the time to the next expiry and the interval.
//
// Preconditions: tf.mu is held.
func (tf *timerFD) remainingLocked() (value, interval int64) {
	tf.updateLocked()
	if tf.expiry == 0 {
		return 0, tf.interval
	}
	return max(tf.expiry-tf.now(), 0), tf.interval
}

func sysTimerfdCreate(t *Task, a *sysArgs) (uint64, error) {
	clock, flags := a.Int(0), uint32(a[1])
	if flags&^uint32(unix.TFD_CLOEXEC|unix.TFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	switch clock {
	case clockRealtime, clockMonotonic, clockBoottime:
	case clockRealtimeAlarm, clockBoottimeAlarm:
		if !t.creds.capable(capWakeAlarm) {
			return 0, unix.EPERM
		}
	default:
		return 0, unix.EINVAL
	}
	return t.installSpecial(&timerFD{k: t.k, clock: clock}, flags&(unix.O_CLOEXEC|unix.O_NONBLOCK))
}

// timerfdOf returns the timerfd behind descriptor fd (EINVAL for another
// kind of file).
func (t *Task) timerfdOf(fd int32) (*timerFD, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, err
	}
	defer f.DecRef()
	tf, ok := t.tg.specialOf(f).(*timerFD)
	if !ok {
		return nil, unix.EINVAL
	}
	return tf, nil
}

func sysTimerfdSettime(t *Task, a *sysArgs) (uint64, error) {
	flags := a.Int(1)
	if flags&^(tfdTimerAbstime|tfdTimerCancelOnSet) != 0 {
		return 0, unix.EINVAL
	}
	tf, err := t.timerfdOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	value, interval, err := t.copyInItimerspec(a[2])
	if err != nil {
		return 0, err
	}
	tf.mu.Lock()
	oldValue, oldInterval := tf.remainingLocked()
	if tf.timer != nil {
		tf.timer.Stop()
		tf.timer = nil
	}
	tf.count, tf.interval = 0, interval
	switch {
	case value == 0:
		tf.expiry = 0
	case flags&tfdTimerAbstime != 0:
		tf.expiry = max(value, 1)
	default:
		tf.expiry = saturatingAdd(tf.now(), value)
	}
	tf.updateLocked()
	tf.notifyLocked()
	tf.mu.Unlock()
	if a[3] != 0 {
		return 0, t.copyOutItimerspec(a[3], oldValue, oldInterval)
	}
	return 0, nil
}

func sysTimerfdGettime(t *Task, a *sysArgs) (uint64, error) {
	tf, err := t.timerfdOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	tf.mu.Lock()
	value, interval := tf.remainingLocked()
	tf.mu.Unlock()
	return 0, t.copyOutItimerspec(a[1], value, interval)
}
