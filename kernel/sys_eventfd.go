package kernel

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

func sysEventfd2(t *Task, a *sysArgs) (uint64, error) { return t.eventfd(uint32(a[0]), uint32(a[1])) }

func sysEventfd(t *Task, a *sysArgs) (uint64, error) { return t.eventfd(uint32(a[0]), 0) }

// eventfd flags (sys/eventfd.h).
const (
	efdSemaphore = 1
	efdMax       = ^uint64(0) - 1
)

// eventFD is an eventfd(2) counter.
//
// +stateify savable
type eventFD struct {
	// mu protects count and ch.
	mu sync.Mutex `state:"nosave"`
	// count is the counter. Protected by mu.
	count uint64
	// semaphore is EFD_SEMAPHORE. Immutable.
	semaphore bool
	// ch is closed when count changes. Not saved: no one waits at save
	// time. Protected by mu.
	ch chan struct{} `state:"nosave"`
}

func (t *Task) eventfd(initval, flags uint32) (uint64, error) {
	if flags&^uint32(efdSemaphore|unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	e := &eventFD{count: uint64(initval), semaphore: flags&efdSemaphore != 0}
	return t.installSpecial(e, flags&(unix.O_CLOEXEC|unix.O_NONBLOCK))
}

// notifyLocked wakes waiters.
//
// Preconditions: e.mu is held.
func (e *eventFD) notifyLocked() {
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
}

func (e *eventFD) changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changedLocked()
}

// changedLocked returns the channel closed at the next change.
//
// Preconditions: e.mu is held.
func (e *eventFD) changedLocked() <-chan struct{} {
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

func (e *eventFD) readiness(mask uint32) uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r uint32
	if e.count > 0 {
		r |= unix.POLLIN
	}
	if e.count < efdMax {
		r |= unix.POLLOUT
	}
	return r & mask
}

func (e *eventFD) read(t *Task, dst []byte, nonblock bool) (int, error) {
	if len(dst) < 8 {
		return 0, unix.EINVAL
	}
	var v uint64
	err := e.waitFor(t, nonblock, func() bool {
		if e.count == 0 {
			return false
		}
		v = e.count
		if e.semaphore {
			v = 1
		}
		e.count -= v
		return true
	})
	if err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint64(dst, v)
	return 8, nil
}

func (e *eventFD) write(t *Task, src []byte, nonblock bool) (int, error) {
	if len(src) < 8 {
		return 0, unix.EINVAL
	}
	v := binary.LittleEndian.Uint64(src)
	if v == ^uint64(0) {
		return 0, unix.EINVAL
	}
	err := e.waitFor(t, nonblock, func() bool {
		if efdMax-e.count < v {
			return false
		}
		e.count += v
		return true
	})
	if err != nil {
		return 0, err
	}
	return 8, nil
}

// waitFor calls try under e.mu until it succeeds (then waiters are
// notified), blocking between attempts until the counter changes, or
// failing with EAGAIN if nonblock.
func (e *eventFD) waitFor(t *Task, nonblock bool, try func() bool) error {
	for {
		e.mu.Lock()
		if try() {
			e.notifyLocked()
			e.mu.Unlock()
			return nil
		}
		ch := e.changedLocked()
		e.mu.Unlock()
		if nonblock {
			return unix.EAGAIN
		}
		if err := t.block(ch); err != nil {
			return err
		}
	}
}
