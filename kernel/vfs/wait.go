package vfs

import (
	"sync"

	"golang.org/x/sys/unix"
)

// pollNow returns the ready events of a host descriptor without blocking.
func pollNow(fd int, events int16) (int16, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return fds[0].Revents, err
	}
}

var eventfdOne = []byte{1, 0, 0, 0, 0, 0, 0, 0}

// waitFD blocks until fd has one of events (or an error/hangup), or until
// cancel is closed (ErrInterrupted). A nil cancel never fires.
func waitFD(cancel <-chan struct{}, fd int, events int16) error {
	if cancel == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			return err
		}
	}
	select {
	case <-cancel:
		return ErrInterrupted
	default:
	}
	ready, stop, err := watchFD(fd, events)
	if err != nil {
		return err
	}
	defer stop()
	select {
	case <-ready:
		return nil
	case <-cancel:
		return ErrInterrupted
	}
}

// watchFD starts a goroutine that polls fd for events and closes the
// returned channel when one is ready (or poll fails). stop ends the watch
// and waits for the goroutine; it must be called exactly once.
func watchFD(fd int, events int16) (<-chan struct{}, func(), error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, nil, err
	}
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	// S/R-SAFE: the goroutine lives only while a caller waits; the kernel
	// interrupts every wait (and so calls stop) before it saves.
	go func() {
		defer wg.Done()
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(efd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || fds[0].Revents != 0 {
				close(ready)
			}
			return
		}
	}()
	stop := func() {
		unix.Write(efd, eventfdOne)
		wg.Wait()
		unix.Close(efd)
	}
	return ready, stop, nil
}
