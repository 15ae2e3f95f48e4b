package socket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Host sockets (snap run --network host): an AF_INET or AF_INET6 socket
// of the sandbox is a host socket the sentry holds on its behalf. The
// host kernel does the networking and checks the calls' arguments (so
// errors are Linux's own); the sentry keeps the descriptor non-blocking
// and waits itself, on the socket's change channel, which the host
// poller (host_poll.go) closes when the host reports readiness, so that
// every wait ends on the task's cancel channel (a signal, a kill, a save).
//
// A save records what can be made again: a listener's address and
// backlog, a bound UDP socket's address and destination, and whether a
// TCP socket was connected. A restore (Names.ReopenHost) listens on the
// same address and port again, binds UDP sockets again, and gives a
// connection that was established (or being established) a fresh socket
// whose next call fails with ECONNRESET, as if its peer had reset it. A
// live migration's source frees its ports for the target, which may be
// this host, after saving its state (ReleaseHostPorts) and takes them back
// if the migration fails (ReclaimHostPorts).

// ErrHostSocket means a host socket of a restored sandbox could not be
// made again (its port is taken).
var ErrHostSocket = errors.New("cannot re-create a host socket")

// sockaddrStorage is sizeof(struct sockaddr_storage); hostOptMax bounds
// what getsockopt returns (TCP_INFO is the largest option programs read).
const (
	sockaddrStorage = 128
	hostOptMax      = 512
)

// hostSock is what a host socket has besides a Socket's fields.
//
// +stateify savable
type hostSock struct {
	// fd is the host socket, non-blocking; valid while live. Not saved:
	// a host descriptor (ReopenHost makes a new one). Immutable while
	// live; live is set before the socket is used.
	fd   int  `state:"nosave"`
	live bool `state:"nosave"`
	// proto is socket(2)'s protocol; immutable.
	proto int
	// backlog is listen(2)'s. Protected by mu.
	backlog int32
	// The fields below record the host socket at save (beforeSave):
	// its address and peer's (nil if none), whether it listened and had
	// SO_REUSEADDR.
	addr, peer []byte
	listening  bool
	reuseAddr  bool
	// reset marks a connection a restore could not bring back: the
	// socket's next call fails with ECONNRESET, then dead is set and the
	// stream is over (recv 0, send EPIPE). Protected by mu.
	reset, dead bool
	// handed marks a socket ReleaseHostPorts closed and reuseLent one
	// it gave SO_REUSEADDR, until ReclaimHostPorts. Not saved: set only
	// while a paused sandbox is handed over, after its state was saved.
	// Exclusive to the caller of those two, the sandbox paused.
	handed    bool `state:"nosave"`
	reuseLent bool `state:"nosave"`
}

// NewHost returns a new host socket: family AF_INET or AF_INET6, typ
// Stream or Dgram, proto as socket(2) takes it (the host's error for one
// it refuses).
func NewHost(names *Names, family, typ, proto int) (*Socket, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	s := &Socket{typ: typ, family: family, ino: inoCounter.Add(1), names: names,
		host: &hostSock{fd: fd, live: true, proto: proto}}
	if err := s.startHost(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

// startHost watches s's host socket and adds it to its Names's host
// sockets.
func (s *Socket) startHost() error {
	if err := poller.add(s.host.fd, s); err != nil {
		return err
	}
	mu.Lock()
	s.names.addHostLocked(s)
	mu.Unlock()
	return nil
}

// addHostLocked records s as a host socket of n. Preconditions: mu is
// held.
func (n *Names) addHostLocked(s *Socket) {
	if n.hosts == nil {
		n.hosts = map[*Socket]struct{}{}
	}
	n.hosts[s] = struct{}{}
}

// IsHost reports whether s is a host socket.
func (s *Socket) IsHost() bool { return s.host != nil }

// releaseHost closes the host socket.
func (s *Socket) releaseHost() {
	mu.Lock()
	if s.released {
		mu.Unlock()
		return
	}
	s.released = true
	delete(s.names.hosts, s)
	h := s.host
	live := h.live
	h.live = false
	s.notifyLocked()
	mu.Unlock()
	if live {
		poller.remove(h.fd)
		if s.typ == Stream {
			noLingerWait(h.fd)
		}
		unix.Close(h.fd)
	}
}

// noLingerWait keeps close from waiting for unsent data under a positive
// SO_LINGER (a host wait nothing could interrupt): the host sends it in
// the background, as without SO_LINGER. SO_LINGER 0, a reset, stays.
func noLingerWait(fd int) {
	if l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && l.Onoff != 0 && l.Linger > 0 {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
	}
}

// beforeSave records what a restore makes again. Invoked by stateify.
func (h *hostSock) beforeSave() {
	if !h.live {
		return
	}
	h.addr, _ = hostName(h.fd, false)
	if a, err := parseInet(family(h.addr), h.addr); err == nil && a.Port == 0 {
		h.addr = nil
	}
	h.peer, _ = hostName(h.fd, true)
	h.listening = hostIntOpt(h.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN) != 0
	h.reuseAddr = hostIntOpt(h.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR) != 0
}

func hostIntOpt(fd, level, name int) int32 {
	b, err := hostGetsockopt(fd, level, name)
	if err != nil || len(b) < 4 {
		return 0
	}
	return int32(binary.LittleEndian.Uint32(b))
}

func family(sa []byte) int {
	if len(sa) < 2 {
		return 0
	}
	return int(binary.LittleEndian.Uint16(sa))
}

// ReopenHost makes the host sockets of a restored sandbox again (see
// above), before it runs: ErrHostSocket naming the address when a
// listener's or a bound socket's port is taken, and then no host socket
// is left open.
func (n *Names) ReopenHost() error {
	socks := n.hostSockets()
	for i, s := range socks {
		if err := s.reopenHost(); err != nil {
			for _, o := range socks[:i] {
				o.closeHost()
			}
			return err
		}
	}
	return nil
}

// hostSockets returns n's host sockets, oldest first.
func (n *Names) hostSockets() []*Socket {
	mu.Lock()
	socks := make([]*Socket, 0, len(n.hosts))
	for s := range n.hosts {
		socks = append(socks, s)
	}
	mu.Unlock()
	slices.SortFunc(socks, func(a, b *Socket) int { return int(a.ino - b.ino) })
	return socks
}

// ReleaseHostPorts frees the host ports of a paused sandbox whose state
// was just saved, so that a migration's target on this host can bind them
// (ReopenHost): it closes the listeners and the bound UDP sockets, and
// gives the TCP connections it leaves open SO_REUSEADDR (a connection
// accepted from a listener holds the listener's port, and a bind of it
// passes only if both ends of the conflict have SO_REUSEADDR). The
// connections of the listeners' accept queues are reset. ReclaimHostPorts
// undoes it when the sandbox runs on here.
//
// Preconditions: the sandbox is paused and stays paused until
// ReclaimHostPorts or its end; its state was saved since its last run.
func (n *Names) ReleaseHostPorts() {
	for _, s := range n.hostSockets() {
		h := s.host
		if !h.live {
			continue
		}
		switch {
		case s.typ == Stream && h.listening, s.typ == Dgram && h.addr != nil:
			s.closeHost()
			h.handed = true
		case s.typ == Stream:
			if hostIntOpt(h.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR) == 0 {
				hostSetsockopt(h.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(1))
				h.reuseLent = true
			}
		}
	}
}

// ReclaimHostPorts makes again the host sockets ReleaseHostPorts closed,
// as a restore does (the listeners' accept queues are empty), and takes
// back the SO_REUSEADDR it lent. A socket whose port was taken meanwhile
// fails its next call with ECONNRESET, as a connection a restore could
// not bring back; the error names every such port.
//
// Preconditions: as ReleaseHostPorts, which ran.
func (n *Names) ReclaimHostPorts() error {
	socks := n.hostSockets()
	var errs []error
	for _, s := range socks {
		h := s.host
		if !h.handed {
			continue
		}
		h.handed = false
		if err := s.reopenHost(); err != nil {
			errs = append(errs, err)
			mu.Lock()
			h.reset = true
			mu.Unlock()
		}
	}
	// Only now: the binds above pass the connections' ports because
	// they still have SO_REUSEADDR.
	for _, s := range socks {
		if h := s.host; h.reuseLent {
			hostSetsockopt(h.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(0))
			h.reuseLent = false
		}
	}
	return errors.Join(errs...)
}

// closeHost closes a reopened host socket again (a failed restore).
func (s *Socket) closeHost() {
	if h := s.host; h.live {
		h.live = false
		poller.remove(h.fd)
		unix.Close(h.fd)
	}
}

// reopenHost makes s's host socket again from what its save recorded.
func (s *Socket) reopenHost() error {
	h := s.host
	if h.live {
		return nil
	}
	fd, err := unix.Socket(s.family, s.typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, h.proto)
	if err != nil {
		return fmt.Errorf("%w: socket: %v", ErrHostSocket, err)
	}
	if err := s.rebindHost(fd); err != nil {
		unix.Close(fd)
		return err
	}
	h.fd, h.live = fd, true
	if err := poller.add(fd, s); err != nil {
		h.live = false
		unix.Close(fd)
		return fmt.Errorf("%w: %v", ErrHostSocket, err)
	}
	return nil
}

// rebindHost gives the new host socket fd what s's save recorded.
func (s *Socket) rebindHost(fd int) error {
	h := s.host
	proto := "udp"
	if s.typ == Stream {
		proto = "tcp"
	}
	switch {
	case s.typ == Stream && h.listening:
		// SO_REUSEADDR for the bind and the listen (which checks the
		// port again) only: the old listener's closed connections may
		// linger on the port, and a migration's source may still hold
		// connections on it (ReleaseHostPorts).
		hostSetsockopt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(1))
		if err := hostBind(fd, h.addr); err != nil {
			return fmt.Errorf("%w: listening %s %s: %v", ErrHostSocket, proto, sockaddrString(h.addr), err)
		}
		if err := unix.Listen(fd, int(h.backlog)); err != nil {
			return fmt.Errorf("%w: listening %s %s: %v", ErrHostSocket, proto, sockaddrString(h.addr), err)
		}
		hostSetsockopt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(int32(b2i(h.reuseAddr))))
	case s.typ == Stream && h.peer != nil:
		h.reset = true
	case s.typ == Dgram && h.addr != nil:
		hostSetsockopt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(int32(b2i(h.reuseAddr))))
		if err := hostBind(fd, h.addr); err != nil {
			return fmt.Errorf("%w: bound %s %s: %v", ErrHostSocket, proto, sockaddrString(h.addr), err)
		}
		if h.peer != nil {
			hostConnectRaw(fd, h.peer)
		}
	}
	return nil
}

// sockaddrString formats a sockaddr_in or sockaddr_in6 as ADDR:PORT.
func sockaddrString(sa []byte) string {
	a, err := parseInet(family(sa), sa)
	if err != nil {
		return "?"
	}
	return a.String()
}

// hostCheckLocked returns ECONNRESET once for a connection a restore
// reset. Preconditions: mu is held.
func (h *hostSock) hostCheckLocked() error {
	if h.reset {
		h.reset, h.dead = false, true
		return unix.ECONNRESET
	}
	return nil
}

// hostWait runs op on the host socket until it no longer fails with
// EAGAIN (or again, for connect, EINPROGRESS or EALREADY), waiting for the
// host's readiness in between: op's error at once if nonblock,
// vfs.ErrInterrupted if cancel closes, EAGAIN when dl passes.
func (s *Socket) hostWait(cancel <-chan struct{}, nonblock bool, dl deadline, op func(fd int) error) error {
	for {
		mu.Lock()
		if err := s.host.hostCheckLocked(); err != nil {
			mu.Unlock()
			return err
		}
		ch := s.waitChanLocked() // before op: a readiness after it wakes us
		mu.Unlock()
		err := op(s.host.fd)
		if (err != unix.EAGAIN && err != unix.EINPROGRESS && err != unix.EALREADY) || nonblock {
			return err
		}
		if err := wait(cancel, ch, dl); err != nil {
			return err
		}
	}
}

// hostDead reports whether s is a connection a restore reset, the reset
// reported.
func (s *Socket) hostDead() bool {
	mu.Lock()
	defer mu.Unlock()
	return s.host.dead
}

func (s *Socket) bindHost(b []byte, lowPorts bool) error {
	if len(b) >= 4 {
		if p := binary.BigEndian.Uint16(b[2:]); p != 0 && p < lowPortEnd && !lowPorts {
			return unix.EACCES
		}
	}
	return hostBind(s.host.fd, b)
}

func (s *Socket) listenHost(backlog int32) error {
	if s.hostDead() {
		return unix.EINVAL
	}
	if err := unix.Listen(s.host.fd, int(backlog)); err != nil {
		return err
	}
	mu.Lock()
	s.host.backlog = backlog
	mu.Unlock()
	return nil
}

// connectHost is connect(2): a blocking one waits for the host's
// connect to end (a restarted one goes on waiting, as Linux does).
func (s *Socket) connectHost(cancel <-chan struct{}, b []byte, nonblock bool) error {
	if s.hostDead() {
		return unix.EISCONN
	}
	_, dl := s.timeouts()
	// The host's connect reports EINPROGRESS, then EALREADY while it
	// goes on, then 0 or its error: wait until it does.
	err := s.hostWait(cancel, nonblock, dl, func(fd int) error { return hostConnectRaw(fd, b) })
	if err == unix.EAGAIN && !nonblock {
		return unix.EINPROGRESS // SO_SNDTIMEO ran out
	}
	return err
}

func (s *Socket) acceptHost(cancel <-chan struct{}, nonblock bool, flags uint32) (*vfs.File, *Addr, error) {
	if s.hostDead() {
		return nil, nil, unix.EINVAL
	}
	dl, _ := s.timeouts()
	var nfd int
	var sa []byte
	err := s.hostWait(cancel, nonblock, dl, func(fd int) error {
		var err error
		nfd, sa, err = hostAccept(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.ECONNABORTED {
			return unix.EAGAIN // the next one, as Linux skips it too
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	n := &Socket{typ: s.typ, family: s.family, ino: inoCounter.Add(1), names: s.names,
		host: &hostSock{fd: nfd, live: true, proto: s.host.proto}}
	if err := n.startHost(); err != nil {
		unix.Close(nfd)
		return nil, nil, err
	}
	var peer *Addr
	if a, err := parseInet(family(sa), sa); err == nil {
		peer = &a
	}
	return NewFile(n, flags), peer, nil
}

func (s *Socket) sendHost(f *vfs.File, cancel <-chan struct{}, src []byte, a SendArgs) (int, error) {
	if s.hostDead() {
		return 0, unix.EPIPE
	}
	nonblock := a.Flags&unix.MSG_DONTWAIT != 0 || (f != nil && f.Nonblocking())
	_, dl := s.timeouts()
	// MSG_ZEROCOPY is dropped: the host would read the sentry's buffer
	// after the call returned (SO_ZEROCOPY is refused anyway, without
	// which the host ignores the flag).
	flags := a.Flags&^unix.MSG_ZEROCOPY | unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	sent := 0
	for {
		var n int
		err := s.hostWait(cancel, nonblock, dl, func(fd int) error {
			var err error
			n, err = hostSendto(fd, src[sent:], flags, a.ToAddr)
			return err
		})
		if err != nil {
			return partial(sent, err)
		}
		sent += n
		if sent == len(src) || s.typ != Stream || nonblock {
			return sent, nil
		}
	}
}

func (s *Socket) recvHost(f *vfs.File, cancel <-chan struct{}, dst []byte, a RecvArgs) (RecvResult, error) {
	if s.hostDead() {
		return RecvResult{}, nil
	}
	nonblock := a.Flags&unix.MSG_DONTWAIT != 0 || (f != nil && f.Nonblocking())
	waitAll := a.Flags&unix.MSG_WAITALL != 0 && a.Flags&unix.MSG_PEEK == 0 && s.typ == Stream && !nonblock
	dl, _ := s.timeouts()
	flags := a.Flags&^unix.MSG_WAITALL | unix.MSG_DONTWAIT
	var r RecvResult
	for {
		var n, mflags int
		var sa []byte
		err := s.hostWait(cancel, nonblock, dl, func(fd int) error {
			var err error
			n, mflags, sa, err = hostRecvmsg(fd, dst[r.N:], flags)
			return err
		})
		if err != nil {
			if r.N > 0 {
				return r, nil
			}
			return r, err
		}
		if r.N == 0 && len(sa) > 0 {
			if from, err := parseInet(family(sa), sa); err == nil {
				r.From = &from
			}
		}
		r.Len += n
		r.N += min(n, len(dst)-r.N)
		r.Truncated = mflags&unix.MSG_TRUNC != 0
		if !waitAll || n == 0 || r.N == len(dst) {
			return r, nil
		}
	}
}

func (s *Socket) shutdownHost(how int32) error {
	if s.hostDead() {
		return unix.ENOTCONN
	}
	return unix.Shutdown(s.host.fd, int(how))
}

func (s *Socket) hostSockName(peer bool) ([]byte, error) {
	if peer && s.hostDead() {
		return nil, unix.ENOTCONN
	}
	return hostName(s.host.fd, peer)
}

// getHostOption is getsockopt(2) of the host socket, but for the
// timeouts (the sentry's waits honour them) and a reset's SO_ERROR.
func (s *Socket) getHostOption(level, name int) ([]byte, error) {
	if level == unix.SOL_SOCKET {
		mu.Lock()
		defer mu.Unlock()
		switch name {
		case soRcvtimeo, soRcvtimeoNew:
			return timeval(s.rcvtimeo), nil
		case soSndtimeo, soSndtimeoNew:
			return timeval(s.sndtimeo), nil
		case unix.SO_ERROR:
			if err := s.host.hostCheckLocked(); err != nil {
				return int32Bytes(int32(unix.ECONNRESET)), nil
			}
		}
	}
	return hostGetsockopt(s.host.fd, level, name)
}

// Netfilter's control options, which the host's setsockopt(2) hands to
// netfilter for any IPv4 or IPv6 socket: every IPv4 option Linux has is
// below netfilterIPMin (from it on: ip_tables 64-65, arp_tables 96-97,
// ebtables 128-129, IPVS from 1152), and ip6_tables sets the IPv6 options
// 64 and 65, which IPv6 itself leaves free.
const (
	netfilterIPMin       = 64
	ip6tSoSetReplace     = 64
	ip6tSoSetAddCounters = 65
)

// maxUnprivilegedPriority is the highest SO_PRIORITY a process without
// CAP_NET_ADMIN or CAP_NET_RAW may set.
const maxUnprivilegedPriority = 6

// refusedHostOptions are the options of host sockets that setsockopt
// refuses with EPERM whatever their value: those that take pointers into
// the application's memory (socket filters), and those Linux allows only
// with CAP_NET_ADMIN or CAP_NET_RAW, which the sentry may have (it often
// runs as root) and the sandbox must not: they reach past the socket, to
// the host's interfaces (SO_BINDTODEVICE and SO_BINDTOIFINDEX), its
// routing and firewall (SO_MARK, IPsec policies, transparent proxying),
// its memory (buffer sizes past the host's limits) or the state of
// connections (TCP repair).
var refusedHostOptions = map[[2]int]bool{
	{unix.SOL_SOCKET, unix.SO_ATTACH_FILTER}:         true,
	{unix.SOL_SOCKET, unix.SO_ATTACH_BPF}:            true,
	{unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF}: true,
	{unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_EBPF}: true,
	{unix.SOL_SOCKET, unix.SO_BINDTODEVICE}:          true,
	{unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX}:         true,
	{unix.SOL_SOCKET, unix.SO_MARK}:                  true,
	{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE}:           true,
	{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE}:           true,
	{unix.SOL_IP, unix.IP_TRANSPARENT}:               true,
	{unix.SOL_IP, unix.IP_IPSEC_POLICY}:              true,
	{unix.SOL_IP, unix.IP_XFRM_POLICY}:               true,
	{unix.SOL_IPV6, unix.IPV6_TRANSPARENT}:           true,
	{unix.SOL_IPV6, unix.IPV6_IPSEC_POLICY}:          true,
	{unix.SOL_IPV6, unix.IPV6_XFRM_POLICY}:           true,
	{unix.SOL_IPV6, unix.IPV6_HOPOPTS}:               true,
	{unix.SOL_IPV6, unix.IPV6_DSTOPTS}:               true,
	{unix.SOL_IPV6, unix.IPV6_RTHDRDSTOPTS}:          true,
	{unix.SOL_TCP, unix.TCP_REPAIR}:                  true,
	{unix.SOL_TCP, unix.TCP_REPAIR_QUEUE}:            true,
	{unix.SOL_TCP, unix.TCP_QUEUE_SEQ}:               true,
	{unix.SOL_TCP, unix.TCP_REPAIR_OPTIONS}:          true,
	{unix.SOL_TCP, unix.TCP_REPAIR_WINDOW}:           true,
}

// refuseHostOption returns the error setsockopt of a host socket fails
// with, before the host sees it, for an option a process without
// privileges could not set (refusedHostOptions, netfilter's, SO_DEBUG on
// and SO_PRIORITY above 6: what Linux answers such a process), or nil.
func refuseHostOption(level, name int, val []byte) error {
	if refusedHostOptions[[2]int{level, name}] {
		return unix.EPERM
	}
	if level == unix.SOL_SOCKET && name == unix.SO_ZEROCOPY {
		// With it, a MSG_ZEROCOPY send would have the host transmit
		// from the sentry's buffer after the send returned, when the
		// buffer may hold something else. What Linux answers for a
		// socket that cannot send without copying.
		return unix.EOPNOTSUPP
	}
	if level == unix.SOL_IP && name >= netfilterIPMin ||
		level == unix.SOL_IPV6 && (name == ip6tSoSetReplace || name == ip6tSoSetAddCounters) {
		// Netfilter's tables and IPVS's services are the host's; a
		// table replacement's structure also holds pointers, which
		// the host kernel would follow in the sentry's address space
		// (sysSetsockopt passes on at most 16 bytes of a value, too
		// few for one, but not for IPVS's flush or timeouts).
		return unix.EPERM
	}
	if level == unix.SOL_SOCKET && len(val) >= 4 {
		v := int32(binary.LittleEndian.Uint32(val))
		switch {
		case name == unix.SO_DEBUG && v != 0:
			return unix.EACCES
		case name == unix.SO_PRIORITY && (v < 0 || v > maxUnprivilegedPriority):
			return unix.EPERM
		}
	}
	return nil
}

func (s *Socket) setHostOption(level, name int, val []byte) error {
	if level == unix.SOL_SOCKET {
		switch name {
		case soRcvtimeo, soSndtimeo, soRcvtimeoNew, soSndtimeoNew:
			return s.setTimeoutOption(name, val)
		}
	}
	if err := refuseHostOption(level, name, val); err != nil {
		return err
	}
	return hostSetsockopt(s.host.fd, level, name, val)
}

// readinessHost is poll(2) of the host socket.
func (s *Socket) readinessHost(mask uint32) uint32 {
	mu.Lock()
	reset, dead := s.host.reset, s.host.dead
	mu.Unlock()
	always := uint32(unix.POLLERR | unix.POLLHUP)
	switch {
	case reset:
		return (unix.POLLIN | unix.POLLOUT | unix.POLLERR | unix.POLLHUP | pollRdHup) & (mask | always)
	case dead:
		return (unix.POLLIN | unix.POLLOUT | unix.POLLHUP | pollRdHup) & (mask | always)
	}
	fds := []unix.PollFd{{Fd: int32(s.host.fd), Events: int16(mask & 0xffff)}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 {
		return 0
	}
	return uint32(uint16(fds[0].Revents)) & (mask | always)
}

// ioctlHost serves FIONREAD and SIOCOUTQ from the host socket.
func (s *Socket) ioctlHost(cmd uint32, arg []byte) (int, error) {
	switch cmd {
	case fionread, tiocoutq:
		if s.hostDead() {
			binary.LittleEndian.PutUint32(arg, 0)
			return 0, nil
		}
		v, err := unix.IoctlGetInt(s.host.fd, uint(cmd))
		if err != nil {
			return 0, err
		}
		binary.LittleEndian.PutUint32(arg, uint32(v))
		return 0, nil
	case unix.SIOCGIFINDEX, unix.SIOCGIFNAME, unix.SIOCGIFFLAGS:
		return 0, loopbackIfreq(cmd, arg)
	}
	return 0, unix.ENOTTY
}

// hostListeningLocked describes s as Names.Listening does ("tcp
// 127.0.0.1:8000 (host)"), or "" if it neither listens nor is a bound UDP
// socket without a destination. Preconditions: mu is held.
func (s *Socket) hostListeningLocked() string {
	h := s.host
	addr, peer, listening := h.addr, h.peer, h.listening
	if h.live {
		addr, _ = hostName(h.fd, false)
		peer, _ = hostName(h.fd, true)
		listening = hostIntOpt(h.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN) != 0
	}
	a, err := parseInet(family(addr), addr)
	switch {
	case err != nil || a.Port == 0:
	case s.typ == Stream && listening:
		return "tcp " + a.String() + " (host)"
	case s.typ == Dgram && peer == nil:
		return "udp " + a.String() + " (host)"
	}
	return ""
}
