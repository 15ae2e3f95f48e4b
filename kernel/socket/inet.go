package socket

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"

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
func (s *Socket) IsInet() bool { return s.inet != nil }

// v4Prefix starts an IPv4 address in its v4-mapped IPv6 form, the form
// Addr.IP keeps every IPv4 address in.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// ipv4 returns a.b.c.d in its v4-mapped form.
func ipv4(a, b, c, d byte) [16]byte {
	var ip [16]byte
	copy(ip[:], v4Prefix[:])
	ip[12], ip[13], ip[14], ip[15] = a, b, c, d
	return ip
}

var (
	v4Any      = ipv4(0, 0, 0, 0)
	v4Loopback = ipv4(127, 0, 0, 1)
	v6Loopback = [16]byte{15: 1}
)

func isV4(ip [16]byte) bool { return [12]byte(ip[:12]) == v4Prefix }

func isAny(ip [16]byte) bool { return ip == v4Any || ip == [16]byte{} }

// isLoopback reports whether ip is on the sandbox's loopback: 127.0.0.0/8
// or ::1.
func isLoopback(ip [16]byte) bool { return (isV4(ip) && ip[12] == 127) || ip == v6Loopback }

// parseInet decodes the sockaddr_in (for an AF_INET socket) or
// sockaddr_in6 (AF_INET6) in b: EINVAL if it is short, EAFNOSUPPORT for
// another family, as Linux's inet_bind and inet6_bind.
func parseInet(family int, b []byte) (Addr, error) {
	a := Addr{Inet: true}
	if family == unix.AF_INET {
		if len(b) < unix.SizeofSockaddrInet4 {
			return Addr{}, unix.EINVAL
		}
		if binary.LittleEndian.Uint16(b) != unix.AF_INET {
			return Addr{}, unix.EAFNOSUPPORT
		}
		a.Port = binary.BigEndian.Uint16(b[2:])
		a.IP = ipv4(b[4], b[5], b[6], b[7])
		return a, nil
	}
	if len(b) < unix.SizeofSockaddrInet6-4 { // SIN6_LEN_RFC2133
		return Addr{}, unix.EINVAL
	}
	if binary.LittleEndian.Uint16(b) != unix.AF_INET6 {
		return Addr{}, unix.EAFNOSUPPORT
	}
	a.Port = binary.BigEndian.Uint16(b[2:])
	copy(a.IP[:], b[8:24])
	return a, nil
}

// marshalInet encodes a as a sockaddr_in or sockaddr_in6 for a socket of
// family; nil is the unspecified address with port 0.
func marshalInet(family int, a *Addr) []byte {
	var ip [16]byte
	var port uint16
	if a != nil {
		ip, port = a.IP, a.Port
	} else if family == unix.AF_INET {
		ip = v4Any
	}
	if family == unix.AF_INET {
		b := make([]byte, unix.SizeofSockaddrInet4)
		binary.LittleEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], port)
		copy(b[4:8], ip[12:])
		return b
	}
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.LittleEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[8:24], ip[:])
	return b
}

// MarshalAddr encodes a as s's family gives addresses to the application
// (accept, recvfrom, getsockname): a sockaddr_un, sockaddr_in or
// sockaddr_in6 (an IPv4 peer of an AF_INET6 socket v4-mapped).
func (s *Socket) MarshalAddr(a *Addr) []byte {
	if s.inet == nil {
		return a.Marshal()
	}
	return marshalInet(s.family, a)
}

// SockName returns the bound address as getsockname gives it.
func (s *Socket) SockName() []byte { return s.MarshalAddr(s.Name()) }

// PeerSockName returns the peer's address as getpeername gives it:
// ENOTCONN without a peer.
func (s *Socket) PeerSockName() ([]byte, error) {
	if s.inet != nil {
		mu.Lock()
		a := s.inet.peerAddr
		if s.typ == Stream && s.peer != nil && s.state == stateConnected {
			a = s.peer.addr
		}
		mu.Unlock()
		if a == nil {
			return nil, unix.ENOTCONN
		}
		return s.MarshalAddr(a), nil
	}
	a, err := s.PeerName()
	if err != nil {
		return nil, err
	}
	return a.Marshal(), nil
}

// span is the part of one IP family an inet binding covers: nothing, one
// address or all of them.
type span struct {
	on, any bool
	ip      [16]byte
}

func (x span) overlaps(y span) bool { return x.on && y.on && (x.any || y.any || x.ip == y.ip) }

func (x span) covers(ip [16]byte) bool { return x.on && (x.any || x.ip == ip) }

// spansLocked returns what s bound at ip covers of IPv4 and of IPv6: an
// AF_INET6 socket bound to :: also covers every IPv4 address unless
// IPV6_V6ONLY. Preconditions: mu is held.
func (s *Socket) spansLocked(ip [16]byte) (v4, v6 span) {
	switch {
	case isV4(ip):
		v4 = span{on: true, any: ip == v4Any, ip: ip}
	case ip == [16]byte{}:
		v6 = span{on: true, any: true}
		if !s.inet.v6only {
			v4 = span{on: true, any: true}
		}
	default:
		v6 = span{on: true, ip: ip}
	}
	return v4, v6
}

// coversLocked reports whether s's binding receives for ip.
// Preconditions: mu is held.
func (s *Socket) coversLocked(ip [16]byte) bool {
	v4, v6 := s.spansLocked(s.addr.IP)
	if isV4(ip) {
		return v4.covers(ip)
	}
	return v6.covers(ip)
}

func portKey(typ int, port uint16) uint32 { return uint32(typ)<<16 | uint32(port) }

// conflictLocked reports whether binding s at a (or, with listening,
// making s a listener there) collides with another socket on the port, as
// Linux's bind conflict rules: overlapping addresses collide unless both
// sockets set SO_REUSEPORT, or both SO_REUSEADDR and (for TCP) neither
// listens. Preconditions: mu is held.
func (n *Names) conflictLocked(s *Socket, a Addr, listening bool) bool {
	s4, s6 := s.spansLocked(a.IP)
	for _, o := range n.ports[portKey(s.typ, a.Port)] {
		if o == s || o.released || (listening && o.state != stateListening) {
			continue
		}
		o4, o6 := o.spansLocked(o.addr.IP)
		if !s4.overlaps(o4) && !s6.overlaps(o6) {
			continue
		}
		if s.boolOptLocked(unix.SO_REUSEPORT) && o.boolOptLocked(unix.SO_REUSEPORT) {
			continue
		}
		if s.boolOptLocked(unix.SO_REUSEADDR) && o.boolOptLocked(unix.SO_REUSEADDR) &&
			(s.typ == Dgram || (!listening && o.state != stateListening)) {
			continue
		}
		return true
	}
	return false
}

// bindInetLocked binds s at a, at a free ephemeral port if a's port is 0:
// EADDRINUSE for a port taken, EADDRNOTAVAIL when no ephemeral port is
// left. Preconditions: mu is held; s is unbound.
func (n *Names) bindInetLocked(s *Socket, a Addr) error {
	if n.ports == nil {
		n.ports = map[uint32][]*Socket{}
	}
	if a.Port == 0 {
		p, ok := n.ephemeralLocked(s.typ)
		if !ok {
			return unix.EADDRNOTAVAIL
		}
		a.Port = p
	} else if n.conflictLocked(s, a, false) {
		return unix.EADDRINUSE
	}
	k := portKey(s.typ, a.Port)
	n.ports[k] = append(n.ports[k], s)
	s.addr = &a
	s.inet.bound = true
	return nil
}

// ephemeralLocked returns a port of the ephemeral range nobody of type typ
// holds. Preconditions: mu is held.
func (n *Names) ephemeralLocked(typ int) (uint16, bool) {
	const size = ephemeralHi - ephemeralLo + 1
	for range size {
		p := uint16(ephemeralLo + n.nextPort%size)
		n.nextPort++
		if len(n.ports[portKey(typ, p)]) == 0 {
			return p, true
		}
	}
	return 0, false
}

// unbindInetLocked takes s out of the port table. Preconditions: mu is
// held.
func (n *Names) unbindInetLocked(s *Socket) {
	if !s.inet.bound {
		return
	}
	s.inet.bound = false
	k := portKey(s.typ, s.addr.Port)
	list := n.ports[k]
	for i, o := range list {
		if o == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(n.ports, k)
	} else {
		n.ports[k] = list
	}
}

// findLocked returns the socket of type typ that receives for dst: a
// listener for TCP, a bound socket (connected to src, if connected) for
// UDP; an exact address before a wildcard, the earliest bound first.
// Preconditions: mu is held.
func (n *Names) findLocked(typ int, dst, src Addr) *Socket {
	var wild *Socket
	for _, o := range n.ports[portKey(typ, dst.Port)] {
		if o.released || !o.coversLocked(dst.IP) {
			continue
		}
		if typ == Stream && o.state != stateListening {
			continue
		}
		if typ == Dgram && o.inet.peerAddr != nil && *o.inet.peerAddr != src {
			continue
		}
		if !isAny(o.addr.IP) {
			return o
		}
		if wild == nil {
			wild = o
		}
	}
	return wild
}

// sourceFor returns the address a packet to dst leaves from: the
// loopback's own address of dst's family.
func sourceFor(dst [16]byte) [16]byte {
	if isV4(dst) {
		return v4Loopback
	}
	return v6Loopback
}

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

// unspecAny reports whether b is an AF_UNSPEC sockaddr_in with INADDR_ANY.
func unspecAny(b []byte) bool {
	return binary.LittleEndian.Uint16(b) == unix.AF_UNSPEC && binary.LittleEndian.Uint32(b[4:]) == 0
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

// Listening describes the sockets of the network that take connections or
// datagrams: "tcp ADDRESS:PORT" for each listener and "udp ADDRESS:PORT"
// for each bound UDP socket, sorted.
func (n *Names) Listening() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for _, list := range n.ports {
		for _, s := range list {
			switch {
			case s.released:
			case s.typ == Stream && s.state == stateListening:
				out = append(out, "tcp "+s.addr.String())
			case s.typ == Dgram && s.inet.peerAddr == nil:
				out = append(out, "udp "+s.addr.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

// String formats an inet address as ADDRESS:PORT ([ADDRESS]:PORT for
// IPv6), a Unix one as its name.
func (a Addr) String() string {
	if !a.Inet {
		if a.Abstract {
			return "@" + a.Name
		}
		return a.Name
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a.IP).Unmap(), a.Port).String()
}

// The sandbox's one network interface, as the interface ioctls report it.
const (
	loName  = "lo"
	loIndex = 1
	// loFlags are what SIOCGIFFLAGS reports for lo (its low 16 bits:
	// IFF_LOWER_UP is above them).
	loFlags = unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING
)

// loopbackIfreq answers SIOCGIFINDEX, SIOCGIFNAME and SIOCGIFFLAGS in the
// struct ifreq at arg (ifr_name, then the union at byte 16) for the
// sandbox's only interface, lo: ENODEV for any other.
func loopbackIfreq(cmd uint32, arg []byte) error {
	name := arg[:unix.IFNAMSIZ]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	switch cmd {
	case unix.SIOCGIFNAME:
		if int32(binary.LittleEndian.Uint32(arg[unix.IFNAMSIZ:])) != loIndex {
			return unix.ENODEV
		}
		clear(arg[:unix.IFNAMSIZ])
		copy(arg, loName)
		return nil
	case unix.SIOCGIFINDEX:
		if string(name) != loName {
			return unix.ENODEV
		}
		binary.LittleEndian.PutUint32(arg[unix.IFNAMSIZ:], loIndex)
		return nil
	}
	if string(name) != loName {
		return unix.ENODEV
	}
	binary.LittleEndian.PutUint16(arg[unix.IFNAMSIZ:], loFlags)
	return nil
}
