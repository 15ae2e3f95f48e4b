package kernel

import (
	"encoding/binary"
	"reflect"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// pollfdSize is sizeof(struct pollfd).
const pollfdSize = 8

// pollEntry is one struct pollfd with its file.
type pollEntry struct {
	fd      int32
	events  uint16
	revents uint16
	file    *vfs.File
	// special is the kernel object behind file, if any.
	special specialFile
}

// sysPoll implements poll(2). Interrupted with a timeout, it restarts
// through restart_syscall with its deadline kept (as Linux does), so a
// stop or a save does not extend the wait.
func sysPoll(t *Task, a *sysArgs) (uint64, error) {
	if ms := a.Int(2); ms >= 0 {
		return t.pollUntil(a[0], a[1], saturatingAdd(t.k.monotonicNow(), int64(ms)*int64(time.Millisecond)))
	}
	return t.poll(a[0], a[1], -1)
}

// pollUntil is poll with a kernel-monotonic deadline.
func (t *Task) pollUntil(addr, nfds uint64, deadline int64) (uint64, error) {
	n, err := t.poll(addr, nfds, max(deadline-t.k.monotonicNow(), 0))
	if err == errRestartNoHand {
		t.restart = restartBlock{Kind: restartPoll, Deadline: deadline, Addr: addr, N: nfds}
		return 0, errRestartRestartBlock
	}
	return n, err
}

// poll implements poll(2) for nfds entries at addr, waiting at most
// timeout nanoseconds (-1: forever). Interrupted, it restarts with the
// full timeout (ERESTARTNOHAND), which is within what poll promises.
func (t *Task) poll(addr, nfds uint64, timeout int64) (uint64, error) {
	if nfds > uint64(t.tg.fdTable.Limit()) {
		return 0, unix.EINVAL
	}
	raw := make([]byte, nfds*pollfdSize)
	if err := t.tg.mm.CopyIn(addr, raw); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	entries := make([]pollEntry, nfds)
	for i := range entries {
		e := &entries[i]
		e.fd = int32(le.Uint32(raw[i*pollfdSize:]))
		e.events = le.Uint16(raw[i*pollfdSize+4:])
		if e.fd >= 0 {
			if f, err := t.getFile(e.fd); err == nil {
				e.file = f
				e.special = t.tg.specialOf(f)
				defer f.DecRef()
			}
		}
	}
	deadline := int64(-1)
	if timeout >= 0 {
		deadline = saturatingAdd(t.k.monotonicNow(), timeout)
	}
	for {
		n := pollCheck(entries)
		if n > 0 || timeout == 0 {
			for i, e := range entries {
				le.PutUint16(raw[i*pollfdSize+6:], e.revents)
			}
			return uint64(n), t.tg.mm.CopyOut(addr, raw)
		}
		timedOut, err := t.pollWait(entries, deadline)
		if err != nil {
			return 0, errRestartNoHand
		}
		if timedOut {
			timeout = 0 // report the final state and return 0
		}
	}
}

// pollCheck fills revents and returns how many entries are ready.
func pollCheck(entries []pollEntry) int {
	n := 0
	for i := range entries {
		e := &entries[i]
		switch {
		case e.fd < 0:
			e.revents = 0
		case e.file == nil:
			e.revents = unix.POLLNVAL
		case e.special != nil:
			e.revents = uint16(e.special.readiness(uint32(e.events)|unix.POLLERR|unix.POLLHUP)) & (e.events | unix.POLLERR | unix.POLLHUP)
		default:
			e.revents = uint16(e.file.Readiness(uint32(e.events)|unix.POLLERR|unix.POLLHUP)) & (e.events | unix.POLLERR | unix.POLLHUP | unix.POLLNVAL)
		}
		if e.revents != 0 {
			n++
		}
	}
	return n
}

// pollWait waits until an entry's readiness may have changed, the deadline
// (-1: none) passes, or the task is interrupted.
func (t *Task) pollWait(entries []pollEntry, deadline int64) (timedOut bool, err error) {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.cancelChan())}}
	for _, e := range entries {
		if e.file == nil {
			continue
		}
		var ch <-chan struct{}
		if e.special != nil {
			ch = e.special.changed()
		} else {
			c, stop := e.file.Watch(uint32(e.events))
			defer stop()
			ch = c
		}
		if ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
	}
	// Re-check after registering, so a change in between is not missed.
	if pollCheck(entries) > 0 {
		return false, nil
	}
	return t.selectReady(cases, deadline)
}

// selectReady waits until one of cases is ready or the kernel-monotonic
// deadline passes (never when deadline < 0). cases[0] must be the task's
// interrupt channel: its firing returns errInterrupted. It reports whether
// the deadline passed.
//
// Preconditions: called by the task goroutine.
func (t *Task) selectReady(cases []reflect.SelectCase, deadline int64) (timedOut bool, err error) {
	if deadline < 0 {
		if chosen, _, _ := reflect.Select(cases); chosen == 0 {
			return false, errInterrupted
		}
		return false, nil
	}
	timerIdx := len(cases)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv})
	// As blockUntil: the timer runs on the host's clock, so wait again
	// until the kernel's clock has reached the deadline too.
	for {
		d := deadline - t.k.monotonicNow()
		if d <= 0 {
			return true, nil
		}
		timer := time.NewTimer(time.Duration(d))
		cases[timerIdx].Chan = reflect.ValueOf(timer.C)
		chosen, _, _ := reflect.Select(cases)
		timer.Stop()
		switch chosen {
		case 0:
			return false, errInterrupted
		case timerIdx:
			continue
		}
		return false, nil
	}
}
