package socket

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The sandbox's network: AF_INET and AF_INET6 sockets on a loopback that
// holds 127.0.0.0/8 and ::1 and reaches nothing else (see the package
// doc). A TCP socket is a Stream socket and a UDP socket a Dgram socket of
// this package, with an inet address and a port.

// Limits of the network (Linux's defaults).
const (
	// ephemeralLo and ephemeralHi are net.ipv4.ip_local_port_range.
	ephemeralLo = 32768
	ephemeralHi = 60999
	// lowPortEnd is net.ipv4.ip_unprivileged_port_start: binding a port
	// below it needs CAP_NET_BIND_SERVICE.
	lowPortEnd = 1024
	// tcpWindow is how many bytes a TCP sender may have queued at its
	// peer before it waits: tcp_wmem's maximum, which Linux's autotuning
	// reaches on loopback.
	tcpWindow = 4 << 20
	// tcpSndbuf and tcpRcvbuf are tcp_wmem's and tcp_rmem's defaults,
	// what SO_SNDBUF and SO_RCVBUF report before they are set.
	tcpSndbuf = 16384
	tcpRcvbuf = 131072
	// maxUDP4 and maxUDP6 are the largest UDP payloads.
	maxUDP4 = 65507
	maxUDP6 = 65527
)

// inetState is what a socket of the network has besides a Unix socket's
// fields. Its fields are protected by mu.
//
// +stateify savable
type inetState struct {
	// peerAddr is a connected UDP socket's destination, or nil.
	peerAddr *Addr
	// opts holds the options set at levels other than SOL_SOCKET, and
	// the integer SOL_SOCKET ones an inet socket keeps, keyed by optKey.
	opts map[int32]int32
	// v6only is IPV6_V6ONLY.
	v6only bool
	// linger and lingerSecs are SO_LINGER.
	linger     bool
	lingerSecs int32
	// bound is set while the socket is in its Names's port table.
	bound bool
	// connecting is set after a non-blocking connect reported
	// EINPROGRESS, until a connect reports how it ended.
	connecting bool
}

// child returns the state an accepted socket inherits from its listener.
func (st *inetState) child() *inetState {
	c := &inetState{v6only: st.v6only, linger: st.linger, lingerSecs: st.lingerSecs}
	if len(st.opts) > 0 {
		c.opts = make(map[int32]int32, len(st.opts))
		for k, v := range st.opts {
			c.opts[k] = v
		}
	}
	return c
}

// NewInet returns a new unbound socket of the network: family AF_INET or
// AF_INET6, typ Stream (TCP) or Dgram (UDP); ESOCKTNOSUPPORT for another
// type.
func NewInet(names *Names, family, typ int) (*Socket, error) {
	s := &Socket{typ: typ, family: family, ino: inoCounter.Add(1), names: names, inet: &inetState{}}
	switch typ {
	case Stream:
		s.sndbuf, s.rcvbuf = tcpSndbuf, tcpRcvbuf
	case Dgram:
		s.sndbuf, s.rcvbuf = defaultBuf, defaultBuf
	default:
		return nil, unix.ESOCKTNOSUPPORT
	}
	return s, nil
}

// Family returns AF_UNIX, AF_INET or AF_INET6.
func (s *Socket) Family() int {
	if s.family == 0 {
		return unix.AF_UNIX
	}
	return s.family
}

// IsInet reports whether s is a socket of the network (AF_INET or
// AF_INET6).
// A netlink socket's are too (its calls take addresses as given).
func (s *Socket) IsInet() bool { return s.inet != nil || s.host != nil || s.nl != nil }

// checkBindLocked checks an address bind is given: EINVAL for a
// v4-mapped one on an IPV6_V6ONLY socket, EADDRNOTAVAIL for one that is
// not the sandbox's, EACCES for a low port without the right to it.
// Preconditions: mu is held.
func (s *Socket) checkBindLocked(a Addr, lowPorts bool) error {
	switch {
	case s.family == unix.AF_INET6 && isV4(a.IP) && s.inet.v6only:
		return unix.EINVAL
	case !isAny(a.IP) && !isLoopback(a.IP):
		return unix.EADDRNOTAVAIL
	case a.Port != 0 && a.Port < lowPortEnd && !lowPorts:
		return unix.EACCES
	}
	return nil
}

// checkDestLocked checks a destination and returns it with the unspecified
// address (which reaches the loopback, as on Linux) replaced:
// ENETUNREACH for an address outside the sandbox or a v4-mapped one on
// an IPV6_V6ONLY socket. Preconditions: mu is held.
func (s *Socket) checkDestLocked(a Addr) (Addr, error) {
	if s.family == unix.AF_INET6 && isV4(a.IP) && s.inet.v6only {
		return Addr{}, unix.ENETUNREACH
	}
	if isAny(a.IP) {
		a.IP = sourceFor(a.IP)
	}
	if !isLoopback(a.IP) {
		return Addr{}, unix.ENETUNREACH
	}
	return a, nil
}

// bindForDestLocked gives s the local address it sends to dst from: an
// ephemeral port if unbound, and the loopback address in place of a
// wildcard. Preconditions: mu is held.
func (s *Socket) bindForDestLocked(dst Addr) error {
	if s.addr == nil {
		if err := s.names.bindInetLocked(s, Addr{Inet: true, IP: sourceFor(dst.IP)}); err != nil {
			return err
		}
	}
	if isAny(s.addr.IP) {
		a := *s.addr
		a.IP = sourceFor(dst.IP)
		s.addr = &a
	}
	return nil
}

// BindInet implements bind(2) for a socket of the network with the
// address as the application gave it. lowPorts says whether the caller
// may bind ports below 1024 (CAP_NET_BIND_SERVICE).
func (s *Socket) BindInet(b []byte, lowPorts bool) error {
	if s.host != nil {
		return s.bindHost(b, lowPorts)
	}
	if s.nl != nil {
		return s.bindNetlink(b)
	}
	a, err := parseInet(s.family, b)
	if err == unix.EAFNOSUPPORT && s.family == unix.AF_INET && unspecAny(b) {
		// Linux takes AF_UNSPEC with INADDR_ANY for an AF_INET bind.
		a, err = Addr{Inet: true, IP: v4Any, Port: binary.BigEndian.Uint16(b[2:])}, nil
	}
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if s.addr != nil {
		return unix.EINVAL
	}
	if err := s.checkBindLocked(a, lowPorts); err != nil {
		return err
	}
	return s.names.bindInetLocked(s, a)
}

// listenInetLocked makes s a TCP listener, bound first to a wildcard
// ephemeral port if unbound: EADDRINUSE if another socket listens on an
// overlapping address. Preconditions: mu is held.
func (s *Socket) listenInetLocked(backlog int32) error {
	if s.state == stateConnected {
		return unix.EINVAL
	}
	if s.addr == nil {
		ip := v4Any
		if s.family == unix.AF_INET6 {
			ip = [16]byte{}
		}
		if err := s.names.bindInetLocked(s, Addr{Inet: true, IP: ip}); err != nil {
			return err
		}
	}
	if s.state != stateListening && s.names.conflictLocked(s, *s.addr, true) {
		return unix.EADDRINUSE
	}
	if uint32(backlog) > somaxconn {
		backlog = somaxconn
	}
	s.backlog = int(backlog)
	s.state = stateListening
	s.notifyLocked()
	return nil
}

// ConnectInet implements connect(2) for a socket of the network with the
// address as the application gave it. A TCP connect completes at once
// when the listener has room in its accept queue; a non-blocking one then
// reports EINPROGRESS, as on Linux's loopback, and a refused non-blocking
// one EINPROGRESS with ECONNREFUSED left in SO_ERROR.
func (s *Socket) ConnectInet(cancel <-chan struct{}, b []byte, nonblock bool) error {
	if s.host != nil {
		return s.connectHost(cancel, b, nonblock)
	}
	if s.nl != nil {
		return s.connectNetlink(b)
	}
	if len(b) >= 2 && binary.LittleEndian.Uint16(b) == unix.AF_UNSPEC {
		return s.disconnect()
	}
	a, err := parseInet(s.family, b)
	if err != nil {
		return err
	}
	if s.typ == Dgram {
		return s.connectUDP(a)
	}
	return s.connectTCP(cancel, a, nonblock)
}

// disconnect is connect to AF_UNSPEC: a UDP socket forgets its
// destination; a TCP socket that is not connected stays as it is.
func (s *Socket) disconnect() error {
	mu.Lock()
	defer mu.Unlock()
	if s.typ == Stream {
		if s.state == stateConnected {
			return unix.EISCONN
		}
		return nil
	}
	s.inet.peerAddr = nil
	s.state = stateUnconnected
	s.notifyLocked()
	return nil
}

func (s *Socket) connectUDP(a Addr) error {
	mu.Lock()
	defer mu.Unlock()
	dst, err := s.checkDestLocked(a)
	if err != nil {
		return err
	}
	if err := s.bindForDestLocked(dst); err != nil {
		return err
	}
	s.inet.peerAddr = &dst
	s.state = stateConnected
	s.notifyLocked()
	return nil
}

func (s *Socket) connectTCP(cancel <-chan struct{}, a Addr, nonblock bool) error {
	_, dl := s.timeouts()
	for {
		mu.Lock()
		if s.inet.connecting && (s.state == stateConnected || s.err != 0) {
			// The outcome of the connect that reported EINPROGRESS.
			s.inet.connecting = false
			err := s.takeErrLocked()
			mu.Unlock()
			return err
		}
		s.inet.connecting = false
		if s.state != stateUnconnected {
			mu.Unlock()
			return unix.EISCONN
		}
		dst, err := s.checkDestLocked(a)
		if err != nil {
			mu.Unlock()
			return err
		}
		l := s.names.findLocked(Stream, dst, Addr{})
		if l == nil {
			mu.Unlock()
			return s.refused(nonblock)
		}
		if len(l.pending) <= l.backlog || nonblock {
			err := s.bindForDestLocked(dst)
			if err == nil {
				s.connectInetLocked(l, dst)
				if nonblock {
					s.inet.connecting = true
					err = unix.EINPROGRESS
				}
			}
			mu.Unlock()
			return err
		}
		ch := l.waitChanLocked()
		mu.Unlock()
		if err := wait(cancel, ch, dl); err != nil {
			if err == unix.EAGAIN {
				return unix.EINPROGRESS // SO_SNDTIMEO ran out
			}
			return err
		}
	}
}

// refused is a connect's answer when nobody listens: ECONNREFUSED, or for
// a non-blocking connect EINPROGRESS with the error left for SO_ERROR.
func (s *Socket) refused(nonblock bool) error {
	if !nonblock {
		return unix.ECONNREFUSED
	}
	mu.Lock()
	s.err = unix.ECONNREFUSED
	s.inet.connecting = true
	s.notifyLocked()
	mu.Unlock()
	return unix.EINPROGRESS
}

// connectInetLocked queues at listener l a new socket connected to s,
// whose local address is dst, and connects s to it. Preconditions: mu is
// held.
func (s *Socket) connectInetLocked(l *Socket, dst Addr) {
	n := &Socket{typ: Stream, family: l.family, ino: inoCounter.Add(1), names: s.names,
		sndbuf: l.sndbuf, rcvbuf: l.rcvbuf, state: stateConnected, peer: s, embryo: true,
		passcred: l.passcred, kept: copyKept(l.kept), inet: l.inet.child()}
	local := Addr{Inet: true, IP: dst.IP, Port: l.addr.Port}
	n.addr = &local
	s.state = stateConnected
	s.peer = n
	l.pending = append(l.pending, n)
	l.notifyLocked()
	s.notifyLocked()
}

func copyKept(m map[int32]int32) map[int32]int32 {
	if len(m) == 0 {
		return nil
	}
	c := make(map[int32]int32, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// sendUDP sends one datagram of src to a.ToAddr or the connected
// destination. A datagram nobody receives is dropped, and a connected
// sender learns it as ECONNREFUSED at its next call (Linux's ICMP port
// unreachable); a receiver whose buffer is full drops it.
func (s *Socket) sendUDP(src []byte, a SendArgs) (int, error) {
	maxLen := maxUDP4
	if s.family == unix.AF_INET6 {
		maxLen = maxUDP6
	}
	var to *Addr
	if a.ToAddr != nil {
		d, err := parseInet(s.family, a.ToAddr)
		if err != nil {
			return 0, err
		}
		if d.Port == 0 {
			return 0, unix.EINVAL
		}
		to = &d
	}
	mu.Lock()
	defer mu.Unlock()
	if err := s.takeErrLocked(); err != nil {
		return 0, err
	}
	if s.shutdown&sendShutdown != 0 {
		return 0, unix.EPIPE
	}
	if to == nil {
		if s.inet.peerAddr == nil {
			return 0, unix.EDESTADDRREQ
		}
		to = s.inet.peerAddr
	}
	if len(src) > maxLen {
		return 0, unix.EMSGSIZE
	}
	dst, err := s.checkDestLocked(*to)
	if err != nil {
		return 0, err
	}
	if s.addr == nil {
		ip := v4Any
		if s.family == unix.AF_INET6 {
			ip = [16]byte{}
		}
		if err := s.names.bindInetLocked(s, Addr{Inet: true, IP: ip}); err != nil {
			return 0, err
		}
	}
	from := *s.addr
	if isAny(from.IP) {
		from.IP = sourceFor(dst.IP)
	}
	r := s.names.findLocked(Dgram, dst, from)
	if r == nil {
		if s.state == stateConnected {
			s.err = unix.ECONNREFUSED
			s.notifyLocked()
		}
		return len(src), nil
	}
	if r.shutdown&rcvShutdown == 0 && r.queued+len(r.queue)*msgOverhead+len(src) <= r.rcvbuf {
		r.deliverLocked(&message{data: append([]byte(nil), src...), from: &from})
	}
	return len(src), nil
}

// DialLoopback connects a new TCP socket to the listener on port that
// takes connections to 127.0.0.1, or failing that to ::1, as a connection
// from the sandbox's own loopback would (the listener sees the peer at
// 127.0.0.1 or ::1 and an ephemeral port). It waits while the listener's
// accept queue is full, until cancel closes (vfs.ErrInterrupted);
// ECONNREFUSED if nobody listens. The caller owns the socket (Release).
func DialLoopback(names *Names, port uint16, cancel <-chan struct{}) (*Socket, error) {
	var err error
	for _, d := range []struct {
		family int
		sa     []byte
	}{
		{unix.AF_INET, marshalInet(unix.AF_INET, &Addr{Inet: true, IP: v4Loopback, Port: port})},
		{unix.AF_INET6, marshalInet(unix.AF_INET6, &Addr{Inet: true, IP: v6Loopback, Port: port})},
	} {
		s, _ := NewInet(names, d.family, Stream)
		if err = s.ConnectInet(cancel, d.sa, false); err == nil {
			return s, nil
		}
		s.Release()
		if err != unix.ECONNREFUSED {
			return nil, err
		}
	}
	return nil, err
}

// DialUDPLoopback returns a new UDP socket of the sandbox's network,
// bound to an ephemeral port and connected to port on 127.0.0.1, or on
// ::1 if only a socket there receives on port: what a published UDP port
// sends a host sender's datagrams from, and reads the replies on. The
// caller owns the socket (Release).
func DialUDPLoopback(names *Names, port uint16) (*Socket, error) {
	family, dst := unix.AF_INET, Addr{Inet: true, IP: v4Loopback, Port: port}
	v6 := Addr{Inet: true, IP: v6Loopback, Port: port}
	mu.Lock()
	if names.findLocked(Dgram, dst, Addr{}) == nil && names.findLocked(Dgram, v6, Addr{}) != nil {
		family, dst = unix.AF_INET6, v6
	}
	mu.Unlock()
	s, _ := NewInet(names, family, Dgram)
	if err := s.ConnectInet(nil, marshalInet(family, &dst), false); err != nil {
		s.Release()
		return nil, err
	}
	return s, nil
}
