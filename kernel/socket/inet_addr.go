package socket

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Addresses of the sandbox's network: IPv4 kept v4-mapped in Addr.IP,
// decoded from and encoded to sockaddr_in and sockaddr_in6.

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
	if s.nl != nil {
		return sockaddrNl(0) // every message comes from the kernel
	}
	if s.inet == nil && s.host == nil {
		return a.Marshal()
	}
	return marshalInet(s.family, a)
}

// SockName returns the bound address as getsockname gives it.
func (s *Socket) SockName() []byte {
	if s.host != nil {
		b, _ := s.hostSockName(false)
		return b
	}
	if s.nl != nil {
		return s.netlinkName()
	}
	return s.MarshalAddr(s.Name())
}

// PeerSockName returns the peer's address as getpeername gives it:
// ENOTCONN without a peer.
func (s *Socket) PeerSockName() ([]byte, error) {
	if s.host != nil {
		return s.hostSockName(true)
	}
	if s.nl != nil {
		return sockaddrNl(0), nil
	}
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

// sourceFor returns the address a packet to dst leaves from: the
// loopback's own address of dst's family.
func sourceFor(dst [16]byte) [16]byte {
	if isV4(dst) {
		return v4Loopback
	}
	return v6Loopback
}

// unspecAny reports whether b is an AF_UNSPEC sockaddr_in with INADDR_ANY.
func unspecAny(b []byte) bool {
	return binary.LittleEndian.Uint16(b) == unix.AF_UNSPEC && binary.LittleEndian.Uint32(b[4:]) == 0
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
