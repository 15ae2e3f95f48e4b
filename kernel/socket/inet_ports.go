package socket

import (
	"slices"

	"golang.org/x/sys/unix"
)

// The port table of the sandbox's network (Names.ports): what a binding
// covers, bind's conflict rules, ephemeral ports, and finding the socket
// a connection or a datagram goes to.

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

// Listening describes the sockets of the network that take connections or
// datagrams: "tcp ADDRESS:PORT" for each listener and "udp ADDRESS:PORT"
// for each bound UDP socket, with " (host)" after a host socket's, sorted.
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
	for s := range n.hosts {
		if l := s.hostListeningLocked(); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}
