package kernel

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// withWaitMask runs wait, a pselect6, ppoll or epoll_pwait wait, under the
// signal mask at maskAddr (none if 0), as Linux's set_user_sigmask: the
// thread's mask is saved and replaced for the wait. If the wait is
// interrupted, the saved mask comes back once a handler's frame is set up
// (so a signal the temporary mask lets through is delivered, as with
// sigsuspend) or, if no handler runs, before the syscall restarts; if it
// returns otherwise, the saved mask comes back at once.
func (t *Task) withWaitMask(maskAddr, size uint64, wait func() (uint64, error)) (uint64, error) {
	if maskAddr == 0 {
		return wait()
	}
	if size != sigsetSize {
		return 0, unix.EINVAL
	}
	set, err := t.copyInSigset(maskAddr)
	if err != nil {
		return 0, err
	}
	tg := t.tg
	tg.mu.Lock()
	saved := t.sig.Mask
	t.sig.Mask = set &^ unblockable
	deliverable := (t.sig.Pending.Set|tg.sigs.Pending.Set)&^t.sig.Mask != 0
	tg.mu.Unlock()
	if deliverable {
		t.interrupt() // the wait returns at once and the signal is delivered
	}
	n, err := wait()
	tg.mu.Lock()
	var errno unix.Errno
	if errors.As(err, &errno) && (errno == errRestartNoHand || errno == errRestartSys || errno == unix.EINTR) {
		t.sig.SavedMask, t.sig.HaveSavedMask = saved, true
	} else {
		t.sig.Mask = saved
	}
	tg.mu.Unlock()
	return n, err
}

// sysPselect6 implements pselect6(nfds, readfds, writefds, exceptfds,
// timeout, sigmask), whose last argument points to a {sigset pointer,
// size} pair.
func sysPselect6(t *Task, a *sysArgs) (uint64, error) {
	timeout := int64(-1)
	if a[4] != 0 {
		d, err := t.copyInTimespec(a[4])
		if err != nil {
			return 0, err
		}
		timeout = d
	}
	var maskAddr, size uint64
	if a[5] != 0 {
		var b [16]byte
		if err := t.tg.mm.CopyIn(a[5], b[:]); err != nil {
			return 0, err
		}
		maskAddr, size = binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	}
	return t.withWaitMask(maskAddr, size, func() (uint64, error) {
		return t.selectFDs(a.Int(0), a[1], a[2], a[3], timeout)
	})
}

// sysPpoll implements ppoll(fds, nfds, timeout, sigmask, sigsetsize).
func sysPpoll(t *Task, a *sysArgs) (uint64, error) {
	timeout := int64(-1)
	if a[2] != 0 {
		d, err := t.copyInTimespec(a[2])
		if err != nil {
			return 0, err
		}
		timeout = d
	}
	return t.withWaitMask(a[3], a[4], func() (uint64, error) { return t.poll(a[0], a[1], timeout) })
}

// sysEpollPwait implements epoll_pwait(epfd, events, maxevents, timeout,
// sigmask, sigsetsize). With a mask, an interrupted wait restarts whole
// (its timeout too) so that the restarted wait has the mask again.
func sysEpollPwait(t *Task, a *sysArgs) (uint64, error) {
	if a[4] == 0 {
		return sysEpollWait(t, a)
	}
	return t.withWaitMask(a[4], a[5], func() (uint64, error) {
		return t.epollWait(a.Int(0), a[1], a.Int(2), msTimeout(a.Int(3)))
	})
}
