package socket

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Bind implements bind(2) with the decoded address (ParseAddr): EINVAL if
// s is already bound, EADDRINUSE for a name in use; path names go to
// paths.
func (s *Socket) Bind(a Addr, autobind bool, paths Paths) error {
	if !autobind && !a.Abstract {
		mu.Lock()
		bound := s.addr != nil
		mu.Unlock()
		if bound {
			return unix.EINVAL
		}
		if paths == nil {
			return unix.EROFS
		}
		if err := paths.BindPath(a.Name, s); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if s.addr != nil {
			return unix.EINVAL
		}
		s.addr = &a
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	if s.addr != nil {
		return unix.EINVAL
	}
	if autobind {
		return s.autobindLocked()
	}
	if err := s.names.bindLocked(a, s); err != nil {
		return err
	}
	s.addr = &a
	return nil
}

// autobindLocked gives an unbound socket an abstract name. Preconditions:
// mu is held.
func (s *Socket) autobindLocked() error {
	if s.addr != nil {
		return nil
	}
	a, err := s.names.autobindLocked(s)
	if err != nil {
		return err
	}
	s.addr = &a
	return nil
}

// Listen implements listen(2); cred is the caller's, which clients'
// SO_PEERCRED report.
func (s *Socket) Listen(backlog int32, cred Cred) error {
	if s.host != nil {
		return s.listenHost(backlog)
	}
	if s.typ == Dgram {
		return unix.EOPNOTSUPP
	}
	mu.Lock()
	defer mu.Unlock()
	if s.inet != nil {
		return s.listenInetLocked(backlog)
	}
	if s.addr == nil || s.state == stateConnected {
		return unix.EINVAL
	}
	if uint32(backlog) > somaxconn {
		backlog = somaxconn
	}
	s.backlog = int(backlog)
	if s.state != stateListening {
		s.state = stateListening
		s.cred = cred
		s.peerCred, s.hasPeerCred = cred, true
	}
	s.notifyLocked()
	return nil
}

// Connect implements connect(2) to a (disconnect, for a datagram
// socket, if unspec). cred is the caller's: the accepted socket's
// SO_PEERCRED. A stream or seqpacket connect waits while the listener's
// accept queue is full (EAGAIN if nonblock).
func (s *Socket) Connect(cancel <-chan struct{}, a Addr, unspec bool, nonblock bool, cred Cred, paths Paths) error {
	if s.typ == Dgram {
		return s.connectDgram(a, unspec, paths)
	}
	if unspec {
		return unix.EINVAL
	}
	mu.Lock()
	st := s.state
	if st == stateUnconnected && s.passcred {
		if err := s.autobindLocked(); err != nil {
			mu.Unlock()
			return err
		}
	}
	mu.Unlock()
	switch st {
	case stateListening:
		return unix.EINVAL
	case stateConnected:
		return unix.EISCONN
	}
	l, err := s.names.lookup(a, s.typ, paths)
	if err != nil {
		return err
	}
	_, dl := s.timeouts()
	for {
		mu.Lock()
		if err := s.canConnectLocked(l); err != nil {
			mu.Unlock()
			return err
		}
		if len(l.pending) <= l.backlog {
			s.connectLocked(l, cred)
			mu.Unlock()
			return nil
		}
		ch := l.waitChanLocked()
		mu.Unlock()
		if nonblock {
			return unix.EAGAIN
		}
		if err := wait(cancel, ch, dl); err != nil {
			return err
		}
	}
}

// canConnectLocked checks a connect of s to listener l. Preconditions: mu
// is held.
func (s *Socket) canConnectLocked(l *Socket) error {
	switch {
	case s.state == stateConnected:
		return unix.EISCONN
	case s.state == stateListening:
		return unix.EINVAL
	case l.released:
		return unix.ECONNREFUSED
	case l.typ != s.typ:
		return unix.EPROTOTYPE
	case l.state != stateListening:
		return unix.ECONNREFUSED
	}
	return nil
}

// connectLocked queues a new server-side socket at listener l, connected
// to s. Preconditions: mu is held.
func (s *Socket) connectLocked(l *Socket, cred Cred) {
	n := &Socket{typ: s.typ, ino: inoCounter.Add(1), names: s.names, sndbuf: l.sndbuf, rcvbuf: l.rcvbuf,
		state: stateConnected, peer: s, peerCred: cred, hasPeerCred: true, cred: cred, embryo: true}
	if l.addr != nil {
		a := *l.addr
		n.addr = &a
	}
	s.state = stateConnected
	s.peer = n
	s.peerCred, s.hasPeerCred = l.cred, true
	l.pending = append(l.pending, n)
	l.notifyLocked()
	s.notifyLocked()
}

// connectDgram sets or clears a datagram socket's default destination.
func (s *Socket) connectDgram(a Addr, unspec bool, paths Paths) error {
	if unspec {
		mu.Lock()
		defer mu.Unlock()
		s.peer = nil
		s.state = stateUnconnected
		s.notifyLocked()
		return nil
	}
	mu.Lock()
	if s.passcred {
		if err := s.autobindLocked(); err != nil {
			mu.Unlock()
			return err
		}
	}
	mu.Unlock()
	p, err := s.names.lookup(a, s.typ, paths)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case p.released:
		return unix.ECONNREFUSED
	case p.typ != s.typ:
		return unix.EPROTOTYPE
	}
	s.peer = p
	s.state = stateConnected
	s.notifyLocked()
	return nil
}

// Accept implements accept(2): the oldest pending connection, as a new
// File (flags: O_NONBLOCK), and its peer's address. It waits while none is
// pending (EAGAIN if nonblock).
func (s *Socket) Accept(cancel <-chan struct{}, nonblock bool, flags uint32) (*vfs.File, *Addr, error) {
	if s.host != nil {
		return s.acceptHost(cancel, nonblock, flags)
	}
	if s.typ == Dgram {
		return nil, nil, unix.EOPNOTSUPP
	}
	dl, _ := s.timeouts()
	for {
		mu.Lock()
		if s.state != stateListening {
			mu.Unlock()
			return nil, nil, unix.EINVAL
		}
		if len(s.pending) > 0 {
			n := s.pending[0]
			s.pending = s.pending[1:]
			n.embryo = false
			n.passcred = s.passcred
			var peer *Addr
			if n.peer != nil && n.peer.addr != nil {
				a := *n.peer.addr
				peer = &a
			}
			s.notifyLocked()
			mu.Unlock()
			return NewFile(n, flags), peer, nil
		}
		ch := s.waitChanLocked()
		mu.Unlock()
		if nonblock {
			return nil, nil, unix.EAGAIN
		}
		if err := wait(cancel, ch, dl); err != nil {
			return nil, nil, err
		}
	}
}

// Shutdown implements shutdown(2) with how SHUT_RD, SHUT_WR or SHUT_RDWR;
// a stream or seqpacket peer sees the mirror image.
func (s *Socket) Shutdown(how int32) error {
	if s.host != nil {
		return s.shutdownHost(how)
	}
	if how < unix.SHUT_RD || how > unix.SHUT_RDWR {
		return unix.EINVAL
	}
	mode := int(how) + 1 // SHUT_RD -> rcvShutdown, SHUT_WR -> sendShutdown
	if s.inet != nil {
		return s.shutdownInet(mode)
	}
	mu.Lock()
	defer mu.Unlock()
	s.shutdown |= mode
	s.notifyLocked()
	if p := s.peer; p != nil && s.typ != Dgram && !p.released {
		if mode&rcvShutdown != 0 {
			p.shutdown |= sendShutdown
		}
		if mode&sendShutdown != 0 {
			p.shutdown |= rcvShutdown
		}
		p.notifyLocked()
	}
	return nil
}

// Name returns the bound address (getsockname), nil if unbound.
func (s *Socket) Name() *Addr {
	mu.Lock()
	defer mu.Unlock()
	return s.addr
}

// PeerName returns the peer's address (getpeername): ENOTCONN without a
// peer; nil if the peer is unbound.
func (s *Socket) PeerName() (*Addr, error) {
	mu.Lock()
	defer mu.Unlock()
	if s.peer == nil || s.state != stateConnected {
		return nil, unix.ENOTCONN
	}
	return s.peer.addr, nil
}

// shutdownInet is shutdown(2) of a socket of the network, as Linux's
// inet_shutdown: ENOTCONN for a socket not connected (its shutdown bits
// set all the same); a listener shut down for reading stops listening and
// resets its queued connections; a TCP socket shut down for writing sends
// its peer the end of the stream (shutting down reading tells the peer
// nothing).
func (s *Socket) shutdownInet(mode int) error {
	mu.Lock()
	var drop []*vfs.File
	var err error
	switch s.state {
	case stateUnconnected:
		err = unix.ENOTCONN
		s.shutdown |= mode
	case stateListening:
		if mode&rcvShutdown != 0 {
			for _, p := range s.pending {
				drop = append(drop, p.releaseLocked()...)
			}
			s.pending = nil
			s.state = stateUnconnected
		}
	default:
		s.shutdown |= mode
		if p := s.peer; p != nil && s.typ == Stream && !p.released && mode&sendShutdown != 0 {
			p.shutdown |= rcvShutdown
			p.notifyLocked()
		}
	}
	s.notifyLocked()
	mu.Unlock()
	for _, f := range drop {
		f.DecRef()
	}
	return err
}
