package kernel

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

func sysSelect(t *Task, a *sysArgs) (uint64, error) {
	timeout := int64(-1)
	if a[4] != 0 {
		var b [16]byte // struct timeval
		if err := t.tg.mm.CopyIn(a[4], b[:]); err != nil {
			return 0, err
		}
		sec, usec := int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))
		if sec < 0 || usec < 0 || usec >= 1e6 {
			return 0, unix.EINVAL
		}
		timeout = min(sec, maxTimespecSeconds)*nsPerSec + usec*int64(time.Microsecond)
	}
	return t.selectFDs(a.Int(0), a[1], a[2], a[3], timeout)
}

// selectFDs implements select over the fd_set bitmaps at readAddr,
// writeAddr and exceptAddr (0: absent) through poll.
func (t *Task) selectFDs(nfds int32, readAddr, writeAddr, exceptAddr uint64, timeout int64) (uint64, error) {
	if nfds < 0 || int(nfds) > t.tg.fdTable.Limit() {
		return 0, unix.EINVAL
	}
	n := (int(nfds) + 63) / 64 * 8
	addrs := [3]uint64{readAddr, writeAddr, exceptAddr}
	var sets [3][]byte
	for i, addr := range addrs {
		if addr == 0 {
			continue
		}
		sets[i] = make([]byte, n)
		if err := t.tg.mm.CopyIn(addr, sets[i]); err != nil {
			return 0, err
		}
	}
	isSet := func(set []byte, fd int) bool { return set != nil && set[fd/8]&(1<<(fd%8)) != 0 }
	var entries []pollEntry
	for fd := 0; fd < int(nfds); fd++ {
		var ev uint16
		if isSet(sets[0], fd) {
			ev |= unix.POLLIN
		}
		if isSet(sets[1], fd) {
			ev |= unix.POLLOUT
		}
		if isSet(sets[2], fd) {
			ev |= unix.POLLPRI
		}
		if ev == 0 {
			continue
		}
		f, err := t.getFile(int32(fd))
		if err != nil {
			return 0, unix.EBADF
		}
		defer f.DecRef()
		entries = append(entries, pollEntry{fd: int32(fd), events: ev, file: f, special: t.tg.specialOf(f)})
	}
	deadline := int64(-1)
	if timeout >= 0 {
		deadline = saturatingAdd(t.k.monotonicNow(), timeout)
	}
	for pollCheck(entries) == 0 && timeout != 0 {
		timedOut, err := t.pollWait(entries, deadline)
		if err != nil {
			return 0, errRestartNoHand
		}
		if timedOut {
			pollCheck(entries)
			break
		}
	}
	var out [3][]byte
	for i := range out {
		if sets[i] != nil {
			out[i] = make([]byte, n)
		}
	}
	count := 0
	mark := func(i int, fd int32) {
		if out[i] != nil && isSet(sets[i], int(fd)) {
			out[i][fd/8] |= 1 << (fd % 8)
			count++
		}
	}
	for _, e := range entries {
		if e.revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			mark(0, e.fd)
		}
		if e.revents&(unix.POLLOUT|unix.POLLERR) != 0 {
			mark(1, e.fd)
		}
		if e.revents&unix.POLLPRI != 0 {
			mark(2, e.fd)
		}
	}
	for i, addr := range addrs {
		if addr != 0 {
			if err := t.tg.mm.CopyOut(addr, out[i]); err != nil {
				return 0, err
			}
		}
	}
	return uint64(count), nil
}
