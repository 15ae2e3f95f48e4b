package socket

import (
	"sync"

	"golang.org/x/sys/unix"
)

// hostPoller wakes the host sockets whose readiness changed: one
// edge-triggered epoll instance per sentry process, read by one goroutine,
// which closes the socket's change channel (notifyLocked) on each event. A
// waiter takes the channel before it tries the host call, so no event is
// lost in between.
type hostPoller struct {
	once sync.Once
	epfd int
	err  error

	// pmu protects socks, the host sockets by descriptor.
	pmu   sync.Mutex
	socks map[int32]*Socket
}

var poller hostPoller

func (p *hostPoller) start() {
	p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if p.err != nil {
		return
	}
	p.socks = map[int32]*Socket{}
	// S/R-SAFE: it only wakes waiters (a change channel is not saved)
	// and never touches the kernel's saved state.
	go p.loop()
}

// add watches fd, s's host socket.
func (p *hostPoller) add(fd int, s *Socket) error {
	p.once.Do(p.start)
	if p.err != nil {
		return p.err
	}
	p.pmu.Lock()
	p.socks[int32(fd)] = s
	p.pmu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLPRI | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.pmu.Lock()
		delete(p.socks, int32(fd))
		p.pmu.Unlock()
		return err
	}
	return nil
}

// remove stops watching fd, before it is closed. An event read before
// may still wake the socket that next gets the number: a spurious wake-up,
// which waiters take.
func (p *hostPoller) remove(fd int) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	p.pmu.Lock()
	delete(p.socks, int32(fd))
	p.pmu.Unlock()
}

func (p *hostPoller) loop() {
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(p.epfd, evs, -1)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range evs[:n] {
			p.pmu.Lock()
			s := p.socks[ev.Fd]
			p.pmu.Unlock()
			if s != nil {
				mu.Lock()
				s.notifyLocked()
				mu.Unlock()
			}
		}
	}
}
