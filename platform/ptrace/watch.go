//go:build linux && amd64

package ptrace

import (
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"snapshotter/internal/uffd"
	"snapshotter/platform"
)

// Write watching (platform.WriteWatcher) with a userfaultfd of the stub's
// memory: the stub creates it (an injected userfaultfd(2), the only way to
// get one for another process's memory), the sentry takes a duplicate
// with pidfd_getfd, closes the stub's and makes every call itself from
// then on (register, protect, unprotect: ioctls on the duplicate, no stop
// of the stub).

var _ platform.WriteWatcher = (*addressSpace)(nil)

// sysUserfaultfd is injected to create the stub's userfaultfd.
const sysUserfaultfd = unix.SYS_USERFAULTFD

// watchState is an address space's write watching.
type watchState struct {
	// started is set by the first WatchWrites and err is its result.
	// Protected by opMu.
	started bool
	err     error
	// fd is the userfaultfd once WatchWrites succeeded, until Release.
	// Protected by opMu and by mu (written holding both).
	fd *uffd.FD
	// spans are the watched ranges, sorted and disjoint. Protected by
	// mu; written also holding opMu.
	spans []span
}

// span is a range of addresses [start, end).
type span struct{ start, end uint64 }

// WatchWrites implements platform.WriteWatcher.
func (a *addressSpace) WatchWrites(onWrite func(addr uint64)) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() {
		return fmt.Errorf("ptrace: watch writes: %w", ErrReleased)
	}
	if a.watch.started {
		return a.watch.err
	}
	a.watch.started = true
	fd, err := a.stubUserfaultfd()
	if err == nil {
		var u *uffd.FD
		if u, err = uffd.Open(fd, onWrite); err == nil {
			a.mu.Lock()
			a.watch.fd = u
			a.mu.Unlock()
		}
	}
	if errors.Is(err, uffd.ErrUnsupported) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		err = fmt.Errorf("%w: %v", platform.ErrWatchUnsupported, err)
	}
	if err != nil {
		err = fmt.Errorf("ptrace: watch writes in stub %d: %w", a.pid, err)
	}
	a.watch.err = err
	return err
}

// stubUserfaultfd creates a userfaultfd in the stub (user faults only,
// which an unprivileged process may create, and no write by the host
// kernel on the stub's behalf ever waits for the sentry) and returns the
// sentry's duplicate of it.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) stubUserfaultfd() (int, error) {
	inStub, err := a.syscall(sysUserfaultfd, [6]uint64{unix.O_CLOEXEC | unix.O_NONBLOCK | uffd.UserModeOnly})
	if err != nil {
		return -1, fmt.Errorf("userfaultfd: %w", err)
	}
	pidfd, err := unix.PidfdOpen(a.pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, int(inStub), 0)
	// The stub keeps no copy: closing the sentry's ends the watching (the
	// host unregisters every range), also for an heir (Renew) that goes
	// on in this stub.
	if _, cerr := a.syscall(unix.SYS_CLOSE, [6]uint64{inStub}); cerr != nil && err == nil {
		unix.Close(fd)
		return -1, fmt.Errorf("close in stub: %w", cerr)
	}
	if err != nil {
		return -1, fmt.Errorf("pidfd_getfd: %w", err)
	}
	return fd, nil
}

// WriteProtect implements platform.WriteWatcher.
func (a *addressSpace) WriteProtect(addr, length uint64) error {
	if err := checkRange(addr, length); err != nil {
		return fmt.Errorf("ptrace: write-protect: %w", err)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.watch.fd == nil {
		return fmt.Errorf("ptrace: write-protect: %w", platform.ErrWatchUnsupported)
	}
	if a.isReleased() {
		return fmt.Errorf("ptrace: write-protect: %w", ErrReleased)
	}
	end := addr + length
	for _, s := range a.unwatchedIn(addr, end) {
		if a.queuing() || a.deferred.Load() {
			// The mappings must be in the stub to be registered.
			if err := a.flushLocked(); err != nil {
				return err
			}
		}
		if err := a.watch.fd.Register(s.start, s.end-s.start); err != nil {
			return fmt.Errorf("ptrace: stub %d: %w", a.pid, err)
		}
		a.mu.Lock()
		a.addWatchedLocked(s)
		a.mu.Unlock()
	}
	if err := a.watch.fd.Protect(addr, length); err != nil {
		return fmt.Errorf("ptrace: stub %d: %w", a.pid, err)
	}
	return nil
}

// Unprotect implements platform.WriteWatcher. It takes no lock of the
// address space's: the kernel calls it from onWrite, and never while it
// changes the same range's mappings.
func (a *addressSpace) Unprotect(addr, length uint64) error {
	fd := a.watchFD()
	if fd == nil {
		return fmt.Errorf("ptrace: unprotect: %w", platform.ErrWatchUnsupported)
	}
	if err := fd.Unprotect(addr, length); err != nil {
		// No longer registered (mapped again meanwhile): the writer
		// faults again on the new mapping.
		fd.Wake(addr, length)
		return fmt.Errorf("ptrace: stub %d: %w", a.pid, err)
	}
	return nil
}

// watchFD returns the userfaultfd, or nil.
func (a *addressSpace) watchFD() *uffd.FD {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return nil
	}
	return a.watch.fd
}

// Watched implements platform.WriteWatcher.
func (a *addressSpace) Watched(addr, length uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.unwatchedInLocked(addr, addr+length)) == 0
}

// UnwatchAll implements platform.WriteWatcher.
func (a *addressSpace) UnwatchAll() {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	spans := a.watch.spans
	a.watch.spans = nil
	a.mu.Unlock()
	if a.watch.fd == nil || a.isReleased() {
		return
	}
	for _, s := range spans {
		// A range unmapped since is unregistered already.
		_ = a.watch.fd.Unregister(s.start, s.end-s.start)
	}
}

// closeWatch closes the userfaultfd once the stub is gone.
func (a *addressSpace) closeWatch() {
	a.opMu.Lock()
	a.mu.Lock()
	fd := a.watch.fd
	a.watch.fd, a.watch.spans = nil, nil
	a.mu.Unlock()
	a.opMu.Unlock()
	if fd != nil {
		fd.Close()
	}
}

// unwatchedIn returns the parts of [start, end) that are not watched.
func (a *addressSpace) unwatchedIn(start, end uint64) []span {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unwatchedInLocked(start, end)
}

// unwatchedInLocked is unwatchedIn.
//
// Preconditions: a.mu is held.
func (a *addressSpace) unwatchedInLocked(start, end uint64) []span {
	var out []span
	i := sort.Search(len(a.watch.spans), func(k int) bool { return a.watch.spans[k].end > start })
	for at := start; at < end; i++ {
		if i == len(a.watch.spans) || a.watch.spans[i].start >= end {
			out = append(out, span{at, end})
			break
		}
		if s := a.watch.spans[i]; s.start > at {
			out = append(out, span{at, s.start})
		}
		at = a.watch.spans[i].end
	}
	return out
}

// addWatchedLocked adds s, which overlaps no watched range, merging it
// with its neighbours.
//
// Preconditions: a.mu is held.
func (a *addressSpace) addWatchedLocked(s span) {
	sp := a.watch.spans
	i := sort.Search(len(sp), func(k int) bool { return sp[k].start >= s.end })
	if i > 0 && sp[i-1].end == s.start {
		i--
		s.start = sp[i].start
		sp = append(sp[:i], sp[i+1:]...)
	}
	if i < len(sp) && sp[i].start == s.end {
		s.end = sp[i].end
		sp = append(sp[:i], sp[i+1:]...)
	}
	sp = append(sp, span{})
	copy(sp[i+1:], sp[i:])
	sp[i] = s
	a.watch.spans = sp
}

// unwatchLocked forgets that [start, end) is watched: its mappings are
// being replaced or removed (the host forgets the registration of a
// replaced mapping).
//
// Preconditions: a.mu is held.
func (a *addressSpace) unwatchLocked(start, end uint64) {
	if len(a.watch.spans) == 0 {
		return
	}
	var out []span
	for _, s := range a.watch.spans {
		if s.end <= start || s.start >= end {
			out = append(out, s)
			continue
		}
		if s.start < start {
			out = append(out, span{s.start, start})
		}
		if s.end > end {
			out = append(out, span{end, s.end})
		}
	}
	a.watch.spans = out
}
