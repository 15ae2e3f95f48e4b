package socket

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Socket types this package serves.
const (
	Stream    = unix.SOCK_STREAM
	Dgram     = unix.SOCK_DGRAM
	SeqPacket = unix.SOCK_SEQPACKET
)

// Buffer sizes and limits (Linux's defaults).
const (
	// defaultBuf is net.core.wmem_default and rmem_default.
	defaultBuf = 212992
	// maxBuf is twice net.core.wmem_max and rmem_max at their defaults:
	// the most SO_SNDBUF and SO_RCVBUF give.
	maxBuf = 2 * 212992
	// minSndbuf and minRcvbuf are SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF.
	minSndbuf = 4608
	minRcvbuf = 2304
	// maxDgramQlen is net.unix.max_dgram_qlen.
	maxDgramQlen = 10
	// somaxconn is net.core.somaxconn: the largest backlog.
	somaxconn = 4096
	// msgOverhead is what each queued message costs its sender's buffer
	// besides its bytes (Linux charges its buffers' real size).
	msgOverhead = 512
	// maxRights is SCM_MAX_FD: descriptors in one message.
	maxRights = 253
)

// Shutdown bits (Linux's RCV_SHUTDOWN and SEND_SHUTDOWN).
const (
	rcvShutdown  = 1
	sendShutdown = 2
)

type sockState uint8

const (
	stateUnconnected sockState = iota
	stateListening
	stateConnected
)

// mu protects every Socket's and every Names's mutable fields (see the
// package doc).
var mu sync.Mutex

// Cred is a process ID and user and group IDs, as struct ucred.
//
// +stateify savable
type Cred struct {
	PID      int32
	UID, GID uint32
}

// noCred is what Linux reports for a message or a peer without
// credentials: no process, the overflow IDs.
var noCred = Cred{PID: 0, UID: 65534, GID: 65534}

// Socket is one Unix domain socket.
//
// +stateify savable
type Socket struct {
	// typ is Stream, Dgram or SeqPacket; immutable.
	typ int
	// family is unix.AF_INET or AF_INET6 for a socket of the sandbox's
	// network (inet.go), 0 for a Unix socket (so that images from before
	// the network load as Unix sockets); immutable.
	family int
	// ino is the inode number fstat shows; immutable.
	ino uint64
	// names is the kernel's abstract namespace; immutable.
	names *Names

	// The fields below are protected by mu.

	state sockState
	// addr is the bound address, or nil.
	addr *Addr
	// peer is the connected peer (the default destination of a datagram
	// socket); it stays set after the peer is released, as in Linux.
	peer *Socket
	// queue holds the received messages, oldest first; queued counts
	// their unread bytes.
	queue  []*message
	queued int
	// wmem is what this socket's messages queued at receivers cost (see
	// msgOverhead), held against sndbuf.
	wmem int
	// backlog and pending are a listener's: the most connections waiting
	// to be accepted (plus one) and those connections, oldest first (each
	// a connected socket whose peer is the client).
	backlog int
	pending []*Socket
	// shutdown holds rcvShutdown and sendShutdown.
	shutdown int
	// err is the pending error SO_ERROR reports (ECONNRESET), or 0.
	err unix.Errno
	// sndbuf and rcvbuf are SO_SNDBUF and SO_RCVBUF.
	sndbuf, rcvbuf int
	// passcred is SO_PASSCRED.
	passcred bool
	// rcvtimeo and sndtimeo are SO_RCVTIMEO and SO_SNDTIMEO in
	// nanoseconds: 0 waits forever, -1 not at all.
	rcvtimeo, sndtimeo int64
	// kept holds the values of keptOptions that were set.
	kept map[int32]int32
	// peerCred is what SO_PEERCRED reports, valid if hasPeerCred; cred is
	// the creator's at listen (clients' SO_PEERCRED) or socketpair.
	peerCred    Cred
	hasPeerCred bool
	cred        Cred
	// embryo marks a connection not yet accepted.
	embryo bool
	// released is set when the socket's file is gone.
	released bool
	// inet holds what only a socket of the network has, or nil.
	inet *inetState
	// host holds what only a host socket (--network host, host.go) has,
	// or nil; immutable.
	host *hostSock
	// nl holds what only a netlink socket (netlink.go) has, or nil;
	// immutable.
	nl *netlinkState

	// readMu is held by a stream receive while it copies queued bytes
	// out, with mu released: readers of one socket take turns, as
	// Linux's iolock. Taken before mu. Not saved: no receive copies at
	// save time.
	readMu sync.Mutex `state:"nosave"`

	// changed is closed (and replaced) when the socket's state, queue or
	// buffer space changes, if watched. Not saved: nobody waits at save
	// time (every wait is interrupted first). Protected by mu.
	changed chan struct{} `state:"nosave"`
	watched bool          `state:"nosave"`
}

// message is one queued send: a datagram, or a part of a stream.
//
// +stateify savable
type message struct {
	data []byte
	// off is how much of data a stream reader consumed.
	off int
	// from is the sender's address at send time, or nil.
	from *Addr
	// sender is charged cost bytes of its buffer until the message is
	// consumed or dropped.
	sender *Socket
	cost   int
	// rights are the files in flight, one reference each.
	rights []*vfs.File
	// cred is the sender's credentials, or nil if neither end asked for
	// them.
	cred *Cred
}

var inoCounter atomic.Uint64

// New returns a new unbound socket of type typ (Stream, Dgram,
// SeqPacket); ESOCKTNOSUPPORT for another type.
func New(names *Names, typ int) (*Socket, error) {
	switch typ {
	case Stream, Dgram, SeqPacket:
	default:
		return nil, unix.ESOCKTNOSUPPORT
	}
	return &Socket{typ: typ, ino: inoCounter.Add(1), names: names, sndbuf: defaultBuf, rcvbuf: defaultBuf}, nil
}

// NewPair returns two sockets connected to each other (socketpair(2)),
// each with cred as its peer's credentials.
func NewPair(names *Names, typ int, cred Cred) (*Socket, *Socket, error) {
	a, err := New(names, typ)
	if err != nil {
		return nil, nil, err
	}
	b, _ := New(names, typ)
	for _, s := range []*Socket{a, b} {
		s.state = stateConnected
		s.peerCred, s.hasPeerCred, s.cred = cred, true, cred
	}
	a.peer, b.peer = b, a
	return a, b, nil
}

// NewFile wraps s in a new File (O_RDWR, plus O_NONBLOCK from flags).
func NewFile(s *Socket, flags uint32) *vfs.File {
	return vfs.NewImplFile(unix.O_RDWR|flags&unix.O_NONBLOCK, s)
}

// Of returns the socket behind f, or nil if f is not a socket.
func Of(f *vfs.File) *Socket {
	s, _ := f.Impl().(*Socket)
	return s
}

// Type returns Stream, Dgram or SeqPacket.
func (s *Socket) Type() int { return s.typ }

// notifyLocked wakes everyone waiting on s. Preconditions: mu is held.
func (s *Socket) notifyLocked() {
	if s.watched {
		close(s.changed)
		s.changed = nil
		s.watched = false
	}
}

// waitChanLocked returns the channel s's next change closes.
// Preconditions: mu is held.
func (s *Socket) waitChanLocked() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	s.watched = true
	return s.changed
}

// deadline is when a blocking call's SO_RCVTIMEO or SO_SNDTIMEO runs out.
type deadline struct {
	set bool
	end time.Time
}

// deadlineOf returns the deadline of a call starting now with timeout
// timeo (see Socket.rcvtimeo).
func deadlineOf(timeo int64) deadline {
	if timeo == 0 {
		return deadline{}
	}
	return deadline{set: true, end: time.Now().Add(time.Duration(max(timeo, 0)))}
}

// wait blocks on ch until it closes, cancel fires (vfs.ErrInterrupted) or
// the deadline passes (EAGAIN, as Linux when a socket timeout runs out).
// A call restarted after an interruption starts a new timeout.
func wait(cancel <-chan struct{}, ch <-chan struct{}, dl deadline) error {
	if !dl.set {
		select {
		case <-ch:
			return nil
		case <-cancel:
			return vfs.ErrInterrupted
		}
	}
	d := time.Until(dl.end)
	if d <= 0 {
		return unix.EAGAIN
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-cancel:
		return vfs.ErrInterrupted
	case <-timer.C:
		return unix.EAGAIN
	}
}

// timeouts returns the deadlines of a receive and of a send starting now.
func (s *Socket) timeouts() (rcv, snd deadline) {
	mu.Lock()
	r, w := s.rcvtimeo, s.sndtimeo
	mu.Unlock()
	return deadlineOf(r), deadlineOf(w)
}

// afterLoad keeps new sockets from reusing restored inode numbers.
// Invoked by stateify.
func (s *Socket) afterLoad(context.Context) {
	if s.host != nil && !s.released {
		s.host.fd = -1 // until ReopenHost: never a descriptor of the sentry's
		mu.Lock()
		s.names.addHostLocked(s) // for ReopenHost
		mu.Unlock()
	}
	for {
		cur := inoCounter.Load()
		if cur >= s.ino || inoCounter.CompareAndSwap(cur, s.ino) {
			return
		}
	}
}

// Release implements vfs.Impl: the socket's last file is gone. Its name
// is freed, its queued messages and the files in flight in them dropped,
// its connections not yet accepted closed, and a connected peer sees the
// end of the stream (ECONNRESET first if data was left unread).
func (s *Socket) Release() {
	if s.host != nil {
		s.releaseHost()
		return
	}
	mu.Lock()
	drop := s.releaseLocked()
	mu.Unlock()
	for _, f := range drop {
		f.DecRef()
	}
}

// releaseLocked does Release's work and returns the files to drop.
// Preconditions: mu is held.
func (s *Socket) releaseLocked() []*vfs.File {
	if s.released {
		return nil
	}
	s.released = true
	if s.nl != nil {
		s.releaseNetlinkLocked()
	}
	if s.addr != nil && s.addr.Abstract && s.names != nil {
		s.names.unbindLocked(*s.addr, s)
	}
	if s.inet != nil {
		s.names.unbindInetLocked(s)
	}
	unread := len(s.queue) > 0
	drop := s.purgeLocked()
	for _, p := range s.pending {
		drop = append(drop, p.releaseLocked()...)
	}
	s.pending = nil
	if p := s.peer; p != nil && s.typ != Dgram && !p.released {
		reset := unread || s.embryo
		switch {
		case s.inet == nil:
			p.shutdown = rcvShutdown | sendShutdown
		case reset || (s.inet.linger && s.inet.lingerSecs == 0):
			// A reset: the peer's calls fail once with ECONNRESET.
			reset = true
			p.shutdown = rcvShutdown | sendShutdown
		default:
			// A FIN: the peer reads the end of the stream and may
			// still send (see tcpSendCheckLocked).
			p.shutdown |= rcvShutdown
		}
		if reset {
			p.err = unix.ECONNRESET
		}
		p.notifyLocked()
	}
	s.notifyLocked()
	return drop
}

// purgeLocked empties the queue and returns the files in flight in it.
// Preconditions: mu is held.
func (s *Socket) purgeLocked() []*vfs.File {
	var drop []*vfs.File
	for _, m := range s.queue {
		drop = append(drop, m.rights...)
		m.uncharge()
	}
	s.queue, s.queued = nil, 0
	return drop
}

// uncharge returns the message's cost to its sender. A stream sender is
// woken only once it is writable again (Linux's sk_write_space): a
// sender blocked on a full buffer then sends a batch per wake-up instead
// of one message per message consumed.
// Preconditions: mu is held.
func (m *message) uncharge() {
	if m.sender != nil {
		snd := m.sender
		snd.wmem -= m.cost
		if snd.typ != Stream || snd.released || snd.writableLocked() {
			snd.notifyLocked()
		}
		m.sender = nil
	}
}

// Stat implements vfs.Impl: a socket inode of sockfs.
func (s *Socket) Stat(*vfs.File) (vfs.Stat, error) {
	return vfs.Stat{
		Mask:     unix.STATX_BASIC_STATS,
		Blksize:  4096,
		Nlink:    1,
		Mode:     unix.S_IFSOCK | 0o777,
		DevMinor: 8,
		Ino:      s.ino,
	}, nil
}

// LinkName implements vfs.Impl.
func (s *Socket) LinkName() string { return "socket:[" + strconv.FormatUint(s.ino, 10) + "]" }

// FileType implements vfs.Impl.
func (s *Socket) FileType() uint32 { return unix.S_IFSOCK }

// Ioctl implements vfs.Impl: FIONREAD (SIOCINQ) and TIOCOUTQ (SIOCOUTQ).
func (s *Socket) Ioctl(_ *vfs.File, cmd uint32, arg []byte) (int, error) {
	if s.host != nil {
		return s.ioctlHost(cmd, arg)
	}
	mu.Lock()
	defer mu.Unlock()
	var v int
	switch cmd {
	case fionread:
		if s.state == stateListening {
			return 0, unix.EINVAL
		}
		v = s.queued
		if s.typ != Stream && len(s.queue) > 0 {
			v = len(s.queue[0].data)
		}
	case unix.SIOCGIFINDEX, unix.SIOCGIFNAME, unix.SIOCGIFFLAGS:
		return 0, loopbackIfreq(cmd, arg)
	case tiocoutq:
		v = max(s.wmem, 0)
		if s.inet != nil {
			// Bytes delivered to a peer of the loopback are
			// acknowledged: nothing is ever left unacknowledged.
			v = 0
			if s.state == stateListening {
				return 0, unix.EINVAL
			}
		}
	default:
		return 0, unix.ENOTTY
	}
	arg[0], arg[1], arg[2], arg[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return 0, nil
}

// Read implements vfs.Impl: recv without flags.
func (s *Socket) Read(f *vfs.File, cancel <-chan struct{}, dst []byte) (int, error) {
	r, err := s.Recv(f, cancel, dst, RecvArgs{})
	dropRights(r.Rights)
	return r.N, err
}

// Write implements vfs.Impl: send without flags.
func (s *Socket) Write(f *vfs.File, cancel <-chan struct{}, src []byte) (int, error) {
	return s.Send(f, cancel, src, SendArgs{})
}

// ReadSeq implements vfs.SeqImpl: recv without flags.
func (s *Socket) ReadSeq(f *vfs.File, cancel <-chan struct{}, dst vfs.IOSeq) (int, error) {
	r, err := s.RecvSeq(f, cancel, dst, RecvArgs{})
	dropRights(r.Rights)
	return r.N, err
}

// dropRights closes files received by a read(2), which takes no control
// messages, as Linux does.
func dropRights(files []*vfs.File) {
	for _, f := range files {
		f.DecRef()
	}
}

// WriteSeq implements vfs.SeqImpl: send without flags.
func (s *Socket) WriteSeq(f *vfs.File, cancel <-chan struct{}, src vfs.IOSeq) (int, error) {
	return s.SendSeq(f, cancel, src, SendArgs{})
}

// Poll bits x/sys/unix does not name.
const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
	pollWrBand = 0x200
	pollRdHup  = 0x2000
)

// Readiness implements vfs.Impl as Linux's unix_poll and unix_dgram_poll.
func (s *Socket) Readiness(_ *vfs.File, mask uint32) uint32 {
	if s.host != nil {
		return s.readinessHost(mask)
	}
	mu.Lock()
	defer mu.Unlock()
	var ev uint32
	if s.err != 0 {
		ev |= unix.POLLERR
	}
	if s.shutdown == rcvShutdown|sendShutdown {
		ev |= unix.POLLHUP
	}
	if s.shutdown&rcvShutdown != 0 {
		ev |= pollRdHup | unix.POLLIN | pollRdNorm
	}
	if len(s.queue) > 0 || len(s.pending) > 0 {
		ev |= unix.POLLIN | pollRdNorm
	}
	if s.typ != Dgram && s.state == stateUnconnected {
		ev |= unix.POLLHUP
	}
	if s.writableLocked() {
		ev |= unix.POLLOUT | pollWrNorm | pollWrBand
	}
	return ev & (mask | unix.POLLERR | unix.POLLHUP)
}

// writableLocked is Linux's unix_writable, plus unix_dgram_poll's check
// of a full peer; for TCP, Linux's sk_stream_is_writeable: the free part
// of the window is at least half of what is queued.
// Preconditions: mu is held.
func (s *Socket) writableLocked() bool {
	if s.inet != nil {
		return s.state != stateListening && 3*s.wmem <= 2*s.windowLocked()
	}
	if s.state == stateListening || s.wmem*4 > s.sndbuf {
		return false
	}
	if s.typ != Stream {
		if p := s.peer; p != nil && p.peer != s && len(p.queue) > maxDgramQlen {
			return false
		}
	}
	return true
}

// Watch implements vfs.Impl.
func (s *Socket) Watch(*vfs.File, uint32) (<-chan struct{}, func()) {
	mu.Lock()
	defer mu.Unlock()
	return s.waitChanLocked(), func() {}
}

// ioctl requests (SIOCINQ and SIOCOUTQ are these numbers).
const (
	fionread = 0x541b
	tiocoutq = 0x5411
)
