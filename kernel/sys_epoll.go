package kernel

import (
	"encoding/binary"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

func sysEpollCreate(t *Task, a *sysArgs) (uint64, error) {
	if a.Int(0) <= 0 {
		return 0, unix.EINVAL
	}
	return t.installSpecial(&epollFD{}, 0)
}

func sysEpollCreate1(t *Task, a *sysArgs) (uint64, error) {
	if uint32(a[0])&^unix.EPOLL_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	return t.installSpecial(&epollFD{}, uint32(a[0])&unix.O_CLOEXEC)
}

// sysEpollWait implements epoll_wait. Interrupted with a timeout, it
// restarts through restart_syscall with its deadline kept, like poll.
func sysEpollWait(t *Task, a *sysArgs) (uint64, error) {
	if ms := a.Int(3); ms >= 0 {
		return t.epollWaitUntil(a.Int(0), a[1], a.Int(2), saturatingAdd(t.k.monotonicNow(), msTimeout(ms)))
	}
	return t.epollWait(a.Int(0), a[1], a.Int(2), -1)
}

// sysEpollPwait2 is epoll_pwait with a struct timespec timeout (NULL:
// none); without a mask it keeps the timeout as a deadline across a
// restart.
func sysEpollPwait2(t *Task, a *sysArgs) (uint64, error) {
	timeout := int64(-1)
	if a[3] != 0 {
		d, err := t.copyInTimespec(a[3])
		if err != nil {
			return 0, err
		}
		timeout = d
	}
	if a[4] == 0 {
		if timeout < 0 {
			return t.epollWait(a.Int(0), a[1], a.Int(2), -1)
		}
		return t.epollWaitUntil(a.Int(0), a[1], a.Int(2), saturatingAdd(t.k.monotonicNow(), timeout))
	}
	// With a mask, an interrupted wait restarts whole, as epoll_pwait's.
	return t.withWaitMask(a[4], a[5], func() (uint64, error) {
		return t.epollWait(a.Int(0), a[1], a.Int(2), timeout)
	})
}

// epollWaitUntil is epoll_wait with a kernel-monotonic deadline.
func (t *Task) epollWaitUntil(epfd int32, addr uint64, maxEvents int32, deadline int64) (uint64, error) {
	n, err := t.epollWait(epfd, addr, maxEvents, max(deadline-t.k.monotonicNow(), 0))
	if err == errRestartNoHand {
		t.restart = restartBlock{Kind: restartEpollWait, Deadline: deadline, Addr: addr, N: uint64(maxEvents), FD: epfd}
		return 0, errRestartRestartBlock
	}
	return n, err
}

// msTimeout converts a millisecond timeout (negative: none) to
// nanoseconds (-1: none).
func msTimeout(ms int32) int64 {
	if ms < 0 {
		return -1
	}
	return int64(ms) * int64(time.Millisecond)
}

// epoll event bits beyond the poll ones.
const (
	epollET      = 1 << 31
	epollOneShot = 1 << 30
	epollExcl    = 1 << 28
	epollEvSize  = 12 // struct epoll_event is packed on x86-64
)

// epollItem is one watched descriptor.
//
// +stateify savable
type epollItem struct {
	FD     int32
	File   *vfs.File
	Events uint32
	Data   uint64
	// Disabled is set after a one-shot event fired.
	Disabled bool
	// Seen, for an EPOLLET item, are the events last found ready: only
	// an event that was not ready then is reported (a rising edge). An
	// event that stops being ready leaves it at the next look.
	Seen uint32
}

// epollFD is an epoll instance. Events are level-triggered, or with
// EPOLLET reported when they become ready: an item is reported again only
// after an event of it was seen not ready (Linux also reports each new
// arrival on a file already ready; callers of EPOLLET read until EAGAIN,
// which makes the two agree).
//
// +stateify savable
type epollFD struct {
	// mu protects items.
	mu    sync.Mutex `state:"nosave"`
	items []*epollItem
}

func (e *epollFD) read(*Task, []byte, bool) (int, error)  { return 0, unix.EINVAL }
func (e *epollFD) write(*Task, []byte, bool) (int, error) { return 0, unix.EINVAL }

// readiness reports POLLIN when a watched descriptor is ready; that needs
// the owning process to resolve kernel-implemented targets, so nested
// epoll sees only vfs targets.
func (e *epollFD) readiness(mask uint32) uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, it := range e.items {
		if !it.Disabled && it.File.Readiness(it.Events) != 0 {
			return unix.POLLIN & mask
		}
	}
	return 0
}

func (e *epollFD) changed() <-chan struct{} { return nil }

func (t *Task) epollOf(epfd int32) (*epollFD, error) {
	f, err := t.getFile(epfd)
	if err != nil {
		return nil, err
	}
	defer f.DecRef()
	ep, ok := t.tg.specialOf(f).(*epollFD)
	if !ok {
		return nil, unix.EINVAL
	}
	return ep, nil
}

func sysEpollCtl(t *Task, a *sysArgs) (uint64, error) {
	ep, err := t.epollOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	op, fd := int(a.Int(1)), a.Int(2)
	if fd == a.Int(0) {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if !f.IsDir() && t.isRegular(f) {
		return 0, unix.EPERM // regular files are always ready; Linux refuses them
	}
	var events uint32
	var data uint64
	if op != unix.EPOLL_CTL_DEL {
		var b [epollEvSize]byte
		if err := t.tg.mm.CopyIn(a[3], b[:]); err != nil {
			return 0, err
		}
		events = binary.LittleEndian.Uint32(b[:]) | unix.POLLERR | unix.POLLHUP
		data = binary.LittleEndian.Uint64(b[4:])
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	idx := -1
	for i, it := range ep.items {
		if it.FD == fd && it.File == f {
			idx = i
		}
	}
	switch op {
	case unix.EPOLL_CTL_ADD:
		if idx >= 0 {
			return 0, unix.EEXIST
		}
		f.IncRef()
		ep.items = append(ep.items, &epollItem{FD: fd, File: f, Events: events, Data: data})
	case unix.EPOLL_CTL_MOD:
		if idx < 0 {
			return 0, unix.ENOENT
		}
		ep.items[idx].Events, ep.items[idx].Data, ep.items[idx].Disabled, ep.items[idx].Seen = events, data, false, 0
	case unix.EPOLL_CTL_DEL:
		if idx < 0 {
			return 0, unix.ENOENT
		}
		ep.items[idx].File.DecRef()
		ep.items = append(ep.items[:idx], ep.items[idx+1:]...)
	default:
		return 0, unix.EINVAL
	}
	return 0, nil
}

// epollWait implements epoll_wait: up to max ready events, waiting at
// most timeout nanoseconds (-1: forever).
func (t *Task) epollWait(epfd int32, addr uint64, max int32, timeout int64) (uint64, error) {
	if max <= 0 || max > 1<<20 {
		return 0, unix.EINVAL
	}
	ep, err := t.epollOf(epfd)
	if err != nil {
		return 0, err
	}
	deadline := int64(-1)
	if timeout >= 0 {
		deadline = saturatingAdd(t.k.monotonicNow(), timeout)
	}
	for {
		out := t.epollCollect(ep, int(max))
		if len(out) > 0 || timeout == 0 {
			return uint64(len(out) / epollEvSize), t.tg.mm.CopyOut(addr, out)
		}
		timedOut, err := t.epollBlock(ep, deadline)
		if err != nil {
			return 0, errRestartNoHand
		}
		if timedOut {
			timeout = 0
		}
	}
}

// readinessOf returns the ready events of f for mask, for vfs and
// kernel-implemented files alike.
func (t *Task) readinessOf(f *vfs.File, mask uint32) uint32 {
	if s := t.tg.specialOf(f); s != nil {
		return s.readiness(mask) & (mask | unix.POLLERR | unix.POLLHUP)
	}
	return f.Readiness(mask)
}

// epollCollect returns the encoded ready events (at most max).
func (t *Task) epollCollect(ep *epollFD, max int) []byte {
	ep.mu.Lock()
	items := append([]*epollItem(nil), ep.items...)
	ep.mu.Unlock()
	var out []byte
	for _, it := range items {
		if len(out)/epollEvSize >= max {
			break
		}
		ep.mu.Lock()
		disabled, events, data := it.Disabled, it.Events, it.Data
		ep.mu.Unlock()
		if disabled {
			continue
		}
		r := t.readinessOf(it.File, events&0xffff) & (events | unix.POLLERR | unix.POLLHUP)
		if events&epollET != 0 {
			ep.mu.Lock()
			edge := r &^ it.Seen
			it.Seen = r
			ep.mu.Unlock()
			if edge == 0 {
				continue
			}
		}
		if r == 0 {
			continue
		}
		if events&epollOneShot != 0 {
			ep.mu.Lock()
			it.Disabled = true
			ep.mu.Unlock()
		}
		var b [epollEvSize]byte
		binary.LittleEndian.PutUint32(b[:], r)
		binary.LittleEndian.PutUint64(b[4:], data)
		out = append(out, b[:]...)
	}
	return out
}

// epollBlock waits until a watched descriptor may have become ready, the
// deadline (-1: none) passes or the task is interrupted.
func (t *Task) epollBlock(ep *epollFD, deadline int64) (timedOut bool, err error) {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.cancelChan())}}
	ep.mu.Lock()
	items := append([]*epollItem(nil), ep.items...)
	ep.mu.Unlock()
	for _, it := range items {
		var ch <-chan struct{}
		if s := t.tg.specialOf(it.File); s != nil {
			ch = s.changed()
		} else {
			c, stop := it.File.Watch(it.Events & 0xffff)
			defer stop()
			ch = c
		}
		if ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
	}
	if len(t.epollCollectPeek(ep)) > 0 {
		return false, nil
	}
	return t.selectReady(cases, deadline)
}

// epollCollectPeek reports ready items without consuming one-shot events.
func (t *Task) epollCollectPeek(ep *epollFD) []*epollItem {
	ep.mu.Lock()
	items := append([]*epollItem(nil), ep.items...)
	ep.mu.Unlock()
	var ready []*epollItem
	for _, it := range items {
		ep.mu.Lock()
		disabled, events, seen := it.Disabled, it.Events, it.Seen
		ep.mu.Unlock()
		if events&epollET == 0 {
			seen = 0
		}
		if !disabled && t.readinessOf(it.File, events&0xffff)&(events|unix.POLLERR|unix.POLLHUP)&^seen != 0 {
			ready = append(ready, it)
		}
	}
	return ready
}
