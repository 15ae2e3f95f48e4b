package socket

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// NETLINK_ROUTE, as far as programs ask it about interfaces: a netlink
// socket of the sentry answers RTM_GETLINK and RTM_GETADDR (dumps, and
// one link by index or name) about the sandbox's one interface, lo, with
// 127.0.0.1/8 and ::1/128, as Linux's rtnetlink does; getifaddrs,
// if_nameindex and getaddrinfo's AI_ADDRCONFIG ask it (glibc and musl).
// Every other request is answered with EOPNOTSUPP. The answers are queued
// at the send, as datagrams (a dump's messages in datagrams of at most
// nlDatagramMax bytes, then NLMSG_DONE), and read as a datagram socket's
// queue is. Under --network host the dumps are the host's own (asked of
// the host's rtnetlink by the sentry, read-only), with the request's
// sequence number and the socket's port ID. The kernel package also sends
// mq_notify's SIGEV_THREAD cookies on a netlink socket (SendFromKernel).

// Netlink message layout (linux/netlink.h, linux/rtnetlink.h).
const (
	nlmsgHdrLen  = 16
	nlmDone      = 3 // NLMSG_DONE
	nlmError     = 2 // NLMSG_ERROR
	nlmFRequest  = 0x1
	nlmFMulti    = 0x2
	nlmFAck      = 0x4
	nlmFDump     = 0x300
	rtmNewLink   = 16
	rtmGetLink   = 18
	rtmNewAddr   = 20
	rtmGetAddr   = 22
	solNetlink   = 270
	sockaddrNlSz = 12
	// autoPortStart is where automatic port IDs start (Linux gives
	// negative ones to a process's sockets after its first).
	autoPortStart = 0xffffefff
	// nlDatagramMax bounds one datagram of a dump (a page, what glibc's
	// and musl's buffers hold at least).
	nlDatagramMax = 4096
)

// netlinkState is what a netlink socket has besides a Socket's fields.
// Its fields are protected by mu.
//
// +stateify savable
type netlinkState struct {
	// portID is the socket's address (nl_pid), valid if bound.
	portID uint32
	bound  bool
	// host answers dumps with the host's interfaces (--network host);
	// immutable.
	host bool
}

// NewNetlink returns a new NETLINK_ROUTE socket (typ Dgram: SOCK_RAW and
// SOCK_DGRAM are the same to netlink), answering about the host's
// interfaces if host, about lo otherwise.
func NewNetlink(names *Names, host bool) *Socket {
	return &Socket{typ: Dgram, family: unix.AF_NETLINK, ino: inoCounter.Add(1), names: names,
		sndbuf: defaultBuf, rcvbuf: defaultBuf, nl: &netlinkState{host: host}}
}

// bindNetlinkLocked gives s port ID id, or a free one if id is 0:
// EADDRINUSE if another socket has id. Preconditions: mu is held.
func (s *Socket) bindNetlinkLocked(id uint32) error {
	if s.names.netlinkPorts == nil {
		s.names.netlinkPorts = map[uint32]*Socket{}
	}
	if s.nl.bound {
		if id == 0 || id == s.nl.portID {
			return nil
		}
		return unix.EINVAL
	}
	if id == 0 {
		for id = autoPortStart; s.names.netlinkPorts[id] != nil; id-- {
		}
	} else if s.names.netlinkPorts[id] != nil {
		return unix.EADDRINUSE
	}
	s.names.netlinkPorts[id] = s
	s.nl.portID, s.nl.bound = id, true
	return nil
}

// parseNetlink decodes a sockaddr_nl: its nl_pid.
func parseNetlink(b []byte) (uint32, error) {
	if len(b) < sockaddrNlSz || binary.LittleEndian.Uint16(b) != unix.AF_NETLINK {
		return 0, unix.EINVAL
	}
	return binary.LittleEndian.Uint32(b[4:]), nil
}

// sockaddrNl encodes a sockaddr_nl of port id.
func sockaddrNl(id uint32) []byte {
	b := make([]byte, sockaddrNlSz)
	binary.LittleEndian.PutUint16(b, unix.AF_NETLINK)
	binary.LittleEndian.PutUint32(b[4:], id)
	return b
}

func (s *Socket) bindNetlink(b []byte) error {
	id, err := parseNetlink(b)
	if err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(b[8:]) != 0 {
		return unix.EPERM // multicast groups: nothing is ever sent to them
	}
	mu.Lock()
	defer mu.Unlock()
	return s.bindNetlinkLocked(id)
}

// connectNetlink accepts the kernel (port 0) as destination.
func (s *Socket) connectNetlink(b []byte) error {
	if len(b) >= 2 && binary.LittleEndian.Uint16(b) == unix.AF_UNSPEC {
		return nil
	}
	id, err := parseNetlink(b)
	if err != nil {
		return err
	}
	if id != 0 {
		return unix.ECONNREFUSED // no other netlink peer exists
	}
	mu.Lock()
	defer mu.Unlock()
	return s.bindNetlinkLocked(0)
}

func (s *Socket) netlinkName() []byte {
	mu.Lock()
	defer mu.Unlock()
	return sockaddrNl(s.nl.portID)
}

// releaseNetlinkLocked frees s's port ID. Preconditions: mu is held.
func (s *Socket) releaseNetlinkLocked() {
	if s.nl.bound && s.names.netlinkPorts[s.nl.portID] == s {
		delete(s.names.netlinkPorts, s.nl.portID)
	}
}

// sendNetlink takes the requests in src and queues their answers.
func (s *Socket) sendNetlink(src []byte, a SendArgs) (int, error) {
	if a.ToAddr != nil {
		id, err := parseNetlink(a.ToAddr)
		if err != nil {
			return 0, err
		}
		if id != 0 {
			return 0, unix.ECONNREFUSED
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if err := s.bindNetlinkLocked(0); err != nil {
		return 0, err
	}
	for b := src; len(b) >= nlmsgHdrLen; {
		l := int(binary.LittleEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		s.answerLocked(b[:l])
		b = b[min(nlmAlign(l), len(b)):]
	}
	return len(src), nil
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

// nlMsg builds netlink messages for s's answers.
type nlMsg struct {
	buf     []byte
	seq, id uint32
}

// add appends a message of type typ and flags with payload.
func (m *nlMsg) add(typ, flags uint16, payload []byte) {
	h := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
	binary.LittleEndian.PutUint32(h, uint32(nlmsgHdrLen+len(payload)))
	binary.LittleEndian.PutUint16(h[4:], typ)
	binary.LittleEndian.PutUint16(h[6:], flags)
	binary.LittleEndian.PutUint32(h[8:], m.seq)
	binary.LittleEndian.PutUint32(h[12:], m.id)
	h = append(h, payload...)
	for len(h)%4 != 0 {
		h = append(h, 0)
	}
	m.buf = append(m.buf, h...)
}

// answerLocked queues the answer to one request. Preconditions: mu is
// held.
func (s *Socket) answerLocked(req []byte) {
	typ := binary.LittleEndian.Uint16(req[4:])
	flags := binary.LittleEndian.Uint16(req[6:])
	if flags&nlmFRequest == 0 {
		return
	}
	m := nlMsg{seq: binary.LittleEndian.Uint32(req[8:]), id: s.nl.portID}
	body := req[nlmsgHdrLen:]
	dump := flags&nlmFDump == nlmFDump
	var errno unix.Errno
	switch {
	case (typ == rtmGetLink || typ == rtmGetAddr) && dump:
		var family byte
		if len(body) > 0 {
			family = body[0]
		}
		msgs, err := s.dumpLocked(typ, family)
		if err != nil {
			errno = err.(unix.Errno)
			break
		}
		for _, msg := range msgs {
			if len(m.buf) > 0 && len(m.buf)+len(msg) > nlDatagramMax {
				s.queueNetlinkLocked(m.buf)
				m.buf = nil
			}
			m.add(binary.LittleEndian.Uint16(msg[4:]), nlmFMulti, msg[nlmsgHdrLen:])
		}
	case typ == rtmGetLink:
		link, err := s.linkLocked(body)
		if err != nil {
			errno = err.(unix.Errno)
			break
		}
		m.add(rtmNewLink, 0, link[nlmsgHdrLen:])
	default:
		errno = unix.EOPNOTSUPP
	}
	switch {
	case errno != 0 || flags&nlmFAck != 0 && !dump:
		m.add(nlmError, 0, nlError(errno, req))
	case dump:
		if len(m.buf) > 0 {
			s.queueNetlinkLocked(m.buf)
			m.buf = nil
		}
		m.add(nlmDone, nlmFMulti, make([]byte, 4))
	}
	s.queueNetlinkLocked(m.buf)
}

// dumpLocked returns the messages (headers included) of a RTM_GETLINK or
// RTM_GETADDR dump of family. Preconditions: mu is held.
func (s *Socket) dumpLocked(typ uint16, family byte) ([][]byte, error) {
	if s.nl.host {
		return hostDump(typ, family)
	}
	m := nlMsg{}
	if typ == rtmGetLink {
		m.add(rtmNewLink, 0, loLink())
		return [][]byte{m.buf}, nil
	}
	var out [][]byte
	for _, a := range loAddrs(family) {
		m := nlMsg{}
		m.add(rtmNewAddr, 0, a)
		out = append(out, m.buf)
	}
	return out, nil
}

// linkLocked answers an RTM_GETLINK for one link (by index or name): its
// message, or ENODEV. Preconditions: mu is held.
func (s *Socket) linkLocked(body []byte) ([]byte, error) {
	if !s.nl.host {
		if !isLoRequest(body) {
			return nil, unix.ENODEV
		}
		m := nlMsg{}
		m.add(rtmNewLink, 0, loLink())
		return m.buf, nil
	}
	if len(body) < 16 {
		return nil, unix.EINVAL
	}
	idx := int32(binary.LittleEndian.Uint32(body[4:]))
	name := ifname(body[16:])
	links, err := hostDump(rtmGetLink, 0)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if len(l) < nlmsgHdrLen+16 {
			continue
		}
		li := l[nlmsgHdrLen:]
		if (idx != 0 && int32(binary.LittleEndian.Uint32(li[4:])) == idx) || (idx == 0 && name != "" && ifname(li[16:]) == name) {
			return l, nil
		}
	}
	return nil, unix.ENODEV
}

// hostDump asks the host's rtnetlink for a dump of typ and family and
// returns its messages but NLMSG_DONE.
func hostDump(typ uint16, family byte) ([][]byte, error) {
	rib, err := syscall.NetlinkRIB(int(typ), int(family))
	if err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			return nil, unix.Errno(errno)
		}
		return nil, unix.EIO
	}
	var out [][]byte
	for b := rib; len(b) >= nlmsgHdrLen; {
		l := int(binary.LittleEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		if t := binary.LittleEndian.Uint16(b[4:]); t == rtmNewLink || t == rtmNewAddr {
			out = append(out, b[:l])
		}
		b = b[min(nlmAlign(l), len(b)):]
	}
	return out, nil
}

// queueNetlinkLocked queues one datagram of answers from the kernel (a
// full receive buffer drops it, as Linux does). Preconditions: mu is
// held.
func (s *Socket) queueNetlinkLocked(b []byte) {
	if len(b) == 0 || s.queued+len(b) > s.rcvbuf {
		return
	}
	s.deliverLocked(&message{data: b, from: &Addr{}})
}

// nlError is an NLMSG_ERROR payload: -errno and the request's header.
func nlError(errno unix.Errno, req []byte) []byte {
	b := make([]byte, 4, 4+nlmsgHdrLen)
	binary.LittleEndian.PutUint32(b, uint32(-int32(errno)))
	return append(b, req[:nlmsgHdrLen]...)
}

// isLoRequest reports whether an RTM_GETLINK's ifinfomsg and attributes
// name lo (index 1, or IFLA_IFNAME "lo").
func isLoRequest(body []byte) bool {
	if len(body) < 16 {
		return false
	}
	if idx := int32(binary.LittleEndian.Uint32(body[4:])); idx != 0 {
		return idx == loIndex
	}
	return ifname(body[16:]) == loName
}

// ifname returns the IFLA_IFNAME among attrs, "" if none.
func ifname(attrs []byte) string {
	for a := attrs; len(a) >= 4; {
		l := int(binary.LittleEndian.Uint16(a))
		if l < 4 || l > len(a) {
			break
		}
		if binary.LittleEndian.Uint16(a[2:]) == unix.IFLA_IFNAME {
			return string(trimNul(a[4:l]))
		}
		a = a[min(nlmAlign(l), len(a)):]
	}
	return ""
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// rtattr appends one attribute.
func rtattr(b []byte, typ uint16, data []byte) []byte {
	h := make([]byte, 4)
	binary.LittleEndian.PutUint16(h, uint16(4+len(data)))
	binary.LittleEndian.PutUint16(h[2:], typ)
	b = append(append(b, h...), data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// Interface attributes of lo as Linux reports them.
const (
	arphrdLoopback = 772
	iffLowerUp     = 0x10000
	loMTU          = 65536
	loTxqlen       = 1000
	ifaFPermanent  = 0x80
	rtScopeHost    = 254
	linkStatsSize  = 96 // struct rtnl_link_stats
)

// loLink is lo's ifinfomsg and attributes.
func loLink() []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[2:], arphrdLoopback)
	binary.LittleEndian.PutUint32(b[4:], loIndex)
	binary.LittleEndian.PutUint32(b[8:], loFlags|iffLowerUp)
	b = rtattr(b, unix.IFLA_IFNAME, append([]byte(loName), 0))
	b = rtattr(b, unix.IFLA_TXQLEN, u32(loTxqlen))
	b = rtattr(b, unix.IFLA_OPERSTATE, []byte{0}) // IF_OPER_UNKNOWN, as lo
	b = rtattr(b, unix.IFLA_LINKMODE, []byte{0})
	b = rtattr(b, unix.IFLA_MTU, u32(loMTU))
	b = rtattr(b, unix.IFLA_ADDRESS, make([]byte, 6))
	b = rtattr(b, unix.IFLA_BROADCAST, make([]byte, 6))
	return rtattr(b, unix.IFLA_STATS, make([]byte, linkStatsSize))
}

// loAddrs are lo's addresses of family (AF_UNSPEC: both), each an
// ifaddrmsg and attributes.
func loAddrs(family byte) [][]byte {
	var out [][]byte
	cache := append(u32(^uint32(0)), append(u32(^uint32(0)), make([]byte, 8)...)...)
	if family == unix.AF_UNSPEC || family == unix.AF_INET {
		b := []byte{unix.AF_INET, 8, ifaFPermanent, rtScopeHost, loIndex, 0, 0, 0}
		ip := []byte{127, 0, 0, 1}
		b = rtattr(b, unix.IFA_ADDRESS, ip)
		b = rtattr(b, unix.IFA_LOCAL, ip)
		b = rtattr(b, unix.IFA_LABEL, append([]byte(loName), 0))
		b = rtattr(b, unix.IFA_FLAGS, u32(ifaFPermanent))
		out = append(out, rtattr(b, unix.IFA_CACHEINFO, cache))
	}
	if family == unix.AF_UNSPEC || family == unix.AF_INET6 {
		b := []byte{unix.AF_INET6, 128, ifaFPermanent, rtScopeHost, loIndex, 0, 0, 0}
		b = rtattr(b, unix.IFA_ADDRESS, v6Loopback[:])
		b = rtattr(b, unix.IFA_CACHEINFO, cache)
		out = append(out, rtattr(b, unix.IFA_FLAGS, u32(ifaFPermanent)))
	}
	return out
}

// getNetlinkOption serves SOL_NETLINK: every option reads 0.
func (s *Socket) getNetlinkOption(level, name int) ([]byte, bool) {
	if level != solNetlink {
		return nil, false
	}
	return int32Bytes(0), true
}

// IsNetlink reports whether s is a netlink socket.
func (s *Socket) IsNetlink() bool { return s.nl != nil }

// SendFromKernel queues b at netlink socket s as one datagram from the
// kernel (port 0): mq_notify's SIGEV_THREAD cookies (kernel/ipc_mq.go).
// Unlike an answer it is queued whatever the receive buffer holds (Linux
// reserves its room when the registration is made); a released socket
// drops it.
func (s *Socket) SendFromKernel(b []byte) {
	mu.Lock()
	defer mu.Unlock()
	if s.released {
		return
	}
	s.deliverLocked(&message{data: append([]byte(nil), b...), from: &Addr{}})
}
