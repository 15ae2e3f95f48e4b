package socket

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// SendArgs are sendmsg's arguments besides the bytes.
type SendArgs struct {
	// To is the destination (sendto, msg_name), or nil.
	To *Addr
	// Flags are the MSG_* flags; MSG_DONTWAIT is honoured here,
	// MSG_NOSIGNAL by the caller (which sends SIGPIPE on EPIPE).
	Flags int
	// Rights are the files of SCM_RIGHTS; the message takes references of
	// its own.
	Rights []*vfs.File
	// Cred is SCM_CREDENTIALS as given (the caller checked it), or nil.
	Cred *Cred
	// Sender is the caller's process ID and real IDs, attached when
	// either end has SO_PASSCRED.
	Sender Cred
	// Paths looks up a path destination.
	Paths Paths
	// ToAddr is the destination of a socket of the network as the
	// application gave it (a sockaddr_in or sockaddr_in6), or nil.
	ToAddr []byte
}

// RecvArgs are recvmsg's arguments besides the buffer.
type RecvArgs struct {
	// Flags are MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL and MSG_TRUNC.
	Flags int
}

// RecvResult is what a receive returns besides its error.
type RecvResult struct {
	// N is the number of bytes copied; Len the length recv returns (a
	// datagram's full length with MSG_TRUNC).
	N, Len int
	// Truncated is MSG_TRUNC in msg_flags: a datagram did not fit.
	Truncated bool
	// From is the sender's address, nil if it has none.
	From *Addr
	// Rights are the files received; the caller owns a reference to each.
	Rights []*vfs.File
	// Cred is the message's credentials, set when the receiver has
	// SO_PASSCRED.
	Cred *Cred
}

// Send implements sendmsg(2) for src. It returns the bytes sent, or EPIPE
// (the caller then sends SIGPIPE unless MSG_NOSIGNAL), EAGAIN, or what
// Linux returns for the socket's state.
func (s *Socket) Send(f *vfs.File, cancel <-chan struct{}, src []byte, a SendArgs) (int, error) {
	if s.host != nil {
		return s.sendHost(f, cancel, src, a)
	}
	if s.nl != nil {
		return s.sendNetlink(src, a)
	}
	return s.sendSeq(f, cancel, vfs.Bytes(src), a)
}

// DirectIO reports whether SendSeq and RecvSeq copy straight between the
// caller's IOSeq and the socket's queues: true for every socket of the
// sentry's own, false for host and netlink sockets, which stage the
// bytes in a buffer first.
func (s *Socket) DirectIO() bool { return s.host == nil && s.nl == nil }

// SendSeq is Send from an IOSeq: a stream send copies each part of src
// straight into the message that queues it at the peer, a datagram send
// into its datagram.
func (s *Socket) SendSeq(f *vfs.File, cancel <-chan struct{}, src vfs.IOSeq, a SendArgs) (int, error) {
	if !s.DirectIO() {
		b, ok := src.(vfs.Bytes)
		if !ok {
			b = make([]byte, src.Len())
			if err := src.CopyIn(0, b); err != nil {
				return 0, err
			}
		}
		return s.Send(f, cancel, b, a)
	}
	return s.sendSeq(f, cancel, src, a)
}

func (s *Socket) sendSeq(f *vfs.File, cancel <-chan struct{}, src vfs.IOSeq, a SendArgs) (int, error) {
	nonblock := a.Flags&unix.MSG_DONTWAIT != 0 || (f != nil && f.Nonblocking())
	if len(a.Rights) > maxRights {
		return 0, unix.EINVAL
	}
	if s.typ == Stream {
		return s.sendStream(cancel, src, a, nonblock)
	}
	if s.inet != nil {
		// One datagram of at most 64 KiB: copied here, and sendUDP
		// sees a length past its limit as one.
		b, ok := src.(vfs.Bytes)
		if !ok {
			b = make([]byte, min(src.Len(), max(maxUDP4, maxUDP6)+1))
			if err := src.CopyIn(0, b); err != nil {
				return 0, err
			}
		}
		return s.sendUDP(b, a)
	}
	return s.sendDgram(cancel, src, a, nonblock)
}

// newMessage makes a message from s carrying data, charged to s.
// Preconditions: mu is held.
func (s *Socket) newMessageLocked(to *Socket, data []byte, a *SendArgs, first bool) *message {
	m := &message{data: data, sender: s, cost: len(data) + msgOverhead}
	if s.addr != nil {
		addr := *s.addr
		m.from = &addr
	}
	if first {
		if len(a.Rights) > 0 {
			m.rights = make([]*vfs.File, len(a.Rights))
			for i, r := range a.Rights {
				r.IncRef()
				m.rights[i] = r
			}
		}
		if a.Cred != nil {
			c := *a.Cred
			m.cred = &c
		}
	}
	if m.cred == nil && (s.passcred || to.passcred) {
		c := a.Sender
		m.cred = &c
	}
	s.wmem += m.cost
	return m
}

// deliverLocked queues m at to. Preconditions: mu is held.
func (to *Socket) deliverLocked(m *message) {
	to.queue = append(to.queue, m)
	to.queued += len(m.data)
	to.notifyLocked()
}

// sendStream queues src at the peer in messages of at most half the
// window. Each message's bytes are copied from src without mu held (src
// may be the application's memory, whose access may take time), charged
// to s meanwhile as Linux charges a buffer when it allocates it; the
// socket's state is checked again before the message is queued.
func (s *Socket) sendStream(cancel <-chan struct{}, src vfs.IOSeq, a SendArgs, nonblock bool) (int, error) {
	if a.To != nil {
		mu.Lock()
		st := s.state
		mu.Unlock()
		if st == stateConnected {
			return 0, unix.EISCONN
		}
		return 0, unix.EOPNOTSUPP
	}
	size := src.Len()
	sent := 0
	first := true
	_, dl := s.timeouts()
	for {
		mu.Lock()
		if done, err := s.streamSendableLocked(size - sent); done || err != nil {
			mu.Unlock()
			if err != nil {
				return partial(sent, err)
			}
			return size, nil
		}
		if sent == size {
			// Done, or nothing to send: Linux queues nothing for an
			// empty write (and no files with it) and returns 0.
			mu.Unlock()
			return sent, nil
		}
		if window := s.windowLocked(); s.wmem < window {
			n := min(size-sent, max(window/2-64, 1))
			s.wmem += n + msgOverhead
			mu.Unlock()
			data := newStreamData(n)
			err := src.CopyIn(sent, data)
			mu.Lock()
			s.wmem -= n + msgOverhead
			done := false
			if err == nil {
				done, err = s.streamSendableLocked(size - sent)
			}
			if done || err != nil {
				if s.writableLocked() {
					s.notifyLocked()
				}
				mu.Unlock()
				freeStreamData(data)
				if err != nil {
					return partial(sent, err)
				}
				return size, nil
			}
			p := s.peer
			p.deliverLocked(s.newMessageLocked(p, data, &a, first))
			first = false
			sent += n
			mu.Unlock()
			continue
		}
		ch := s.waitChanLocked()
		mu.Unlock()
		if nonblock {
			return partial(sent, unix.EAGAIN)
		}
		if err := wait(cancel, ch, dl); err != nil {
			return partial(sent, err)
		}
	}
}

// streamSendableLocked checks that s may queue more bytes at its stream
// peer, left of them still to send: done (with no error) when a TCP send
// to a closed peer takes them all (tcpSendCheckLocked).
// Preconditions: mu is held.
func (s *Socket) streamSendableLocked(left int) (done bool, err error) {
	p := s.peer
	if s.inet != nil {
		if done, err := s.tcpSendCheckLocked(left); done || err != nil {
			return done, err
		}
	}
	switch {
	case s.state != stateConnected || p == nil:
		return false, unix.ENOTCONN
	case s.shutdown&sendShutdown != 0 || p.released || (s.inet == nil && p.shutdown&rcvShutdown != 0):
		return false, unix.EPIPE
	}
	return false, nil
}

// partial returns n if something was transferred, else err.
func partial(n int, err error) (int, error) {
	if n > 0 {
		return n, nil
	}
	return 0, err
}

func (s *Socket) sendDgram(cancel <-chan struct{}, src vfs.IOSeq, a SendArgs, nonblock bool) (int, error) {
	to := a.To
	if s.typ == SeqPacket {
		to = nil
		mu.Lock()
		st := s.state
		mu.Unlock()
		if st != stateConnected {
			return 0, unix.ENOTCONN
		}
	}
	mu.Lock()
	if s.passcred {
		if err := s.autobindLocked(); err != nil {
			mu.Unlock()
			return 0, err
		}
	}
	mu.Unlock()
	var dst *Socket
	if to != nil {
		d, err := s.names.lookup(*to, s.typ, a.Paths)
		if err != nil {
			return 0, err
		}
		dst = d
	}
	if src.Len() > s.sndbufNow()-32 {
		return 0, unix.EMSGSIZE
	}
	// Copied before the destination is checked, as Linux's
	// unix_dgram_sendmsg.
	data := make([]byte, src.Len())
	if err := src.CopyIn(0, data); err != nil {
		return 0, err
	}
	_, dl := s.timeouts()
	for {
		mu.Lock()
		if s.shutdown&sendShutdown != 0 {
			mu.Unlock()
			return 0, unix.EPIPE
		}
		d := dst
		if d == nil {
			d = s.peer
			if d == nil {
				mu.Unlock()
				return 0, unix.ENOTCONN
			}
		}
		if err := s.checkDgramDestLocked(d); err != nil {
			mu.Unlock()
			return 0, err
		}
		ownFull := s.wmem >= s.sndbuf
		if !ownFull && (d.peer == s || len(d.queue) <= maxDgramQlen) {
			d.deliverLocked(s.newMessageLocked(d, data, &a, true))
			mu.Unlock()
			return len(data), nil
		}
		// Wait for what is full: s's buffer (its messages consumed) or
		// d's queue (d's messages consumed).
		ch := d.waitChanLocked()
		if ownFull {
			ch = s.waitChanLocked()
		}
		mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := wait(cancel, ch, dl); err != nil {
			return 0, err
		}
	}
}

// checkDgramDestLocked checks that s may send a datagram to d.
// Preconditions: mu is held.
func (s *Socket) checkDgramDestLocked(d *Socket) error {
	switch {
	case d.released:
		if s.peer == d {
			if s.typ == SeqPacket {
				return unix.EPIPE
			}
			s.peer = nil
			s.state = stateUnconnected
		}
		return unix.ECONNREFUSED
	case d.typ != s.typ:
		return unix.EPROTOTYPE
	case s.typ == SeqPacket && d.shutdown&rcvShutdown != 0:
		return unix.EPIPE
	case d.typ == Dgram && d.peer != nil && d.peer != s:
		return unix.EPERM
	}
	return nil
}

func (s *Socket) sndbufNow() int {
	mu.Lock()
	defer mu.Unlock()
	return s.sndbuf
}

// Recv implements recvmsg(2) into dst.
func (s *Socket) Recv(f *vfs.File, cancel <-chan struct{}, dst []byte, a RecvArgs) (RecvResult, error) {
	if s.host != nil {
		return s.recvHost(f, cancel, dst, a)
	}
	return s.recvSeq(f, cancel, vfs.Bytes(dst), a)
}

// RecvSeq is Recv into an IOSeq: a receive copies straight from the
// queued messages into dst. Bytes that cannot be copied there (a bad
// address) stay queued for a stream socket; a datagram is dropped, as
// Linux does.
func (s *Socket) RecvSeq(f *vfs.File, cancel <-chan struct{}, dst vfs.IOSeq, a RecvArgs) (RecvResult, error) {
	if s.host == nil {
		return s.recvSeq(f, cancel, dst, a)
	}
	b, ok := dst.(vfs.Bytes)
	if !ok {
		b = make([]byte, dst.Len())
	}
	r, err := s.recvHost(f, cancel, b, a)
	if err == nil && !ok {
		if err := dst.CopyOut(0, b[:r.N]); err != nil {
			dropRights(r.Rights)
			return RecvResult{}, err
		}
	}
	return r, err
}

func (s *Socket) recvSeq(f *vfs.File, cancel <-chan struct{}, dst vfs.IOSeq, a RecvArgs) (RecvResult, error) {
	nonblock := a.Flags&unix.MSG_DONTWAIT != 0 || (f != nil && f.Nonblocking())
	if s.typ == Stream {
		r, err := s.recvStream(cancel, dst, a.Flags, nonblock)
		if s.inet != nil {
			r.From = nil // TCP reports no sender
		}
		return r, err
	}
	return s.recvDgram(cancel, dst, a.Flags, nonblock)
}

// recvDgram takes the first datagram off the queue (or peeks at it) and
// copies it into dst without mu held: a datagram's bytes are its own, not
// a pooled buffer, and stay valid after it left the queue.
func (s *Socket) recvDgram(cancel <-chan struct{}, dst vfs.IOSeq, flags int, nonblock bool) (RecvResult, error) {
	dl, _ := s.timeouts()
	for {
		mu.Lock()
		if s.typ == SeqPacket && s.state != stateConnected {
			mu.Unlock()
			return RecvResult{}, unix.ENOTCONN
		}
		if len(s.queue) > 0 {
			m := s.queue[0]
			r := RecvResult{From: m.from, Len: len(m.data)}
			r.N = min(dst.Len(), len(m.data))
			r.Truncated = r.N < len(m.data)
			if flags&unix.MSG_TRUNC == 0 {
				r.Len = r.N
			}
			r.Cred = s.credOfLocked(m)
			data := m.data
			if flags&unix.MSG_PEEK != 0 {
				for _, f := range m.rights {
					f.IncRef()
				}
				r.Rights = append([]*vfs.File(nil), m.rights...)
			} else {
				s.queue[0] = nil
				s.queue = s.queue[1:]
				s.queued -= len(m.data)
				r.Rights = m.rights
				m.rights = nil
				m.uncharge()
				s.notifyLocked()
			}
			mu.Unlock()
			if err := dst.CopyOut(0, data[:r.N]); err != nil {
				dropRights(r.Rights)
				return RecvResult{}, err
			}
			return r, nil
		}
		if err := s.takeErrLocked(); err != nil {
			mu.Unlock()
			return RecvResult{}, err
		}
		if s.shutdown&rcvShutdown != 0 {
			mu.Unlock()
			return RecvResult{}, nil
		}
		ch := s.waitChanLocked()
		mu.Unlock()
		if nonblock {
			return RecvResult{}, unix.EAGAIN
		}
		if err := wait(cancel, ch, dl); err != nil {
			return RecvResult{}, err
		}
	}
}

// credOfLocked returns what SCM_CREDENTIALS says for m, or nil if s does
// not ask. Preconditions: mu is held.
func (s *Socket) credOfLocked(m *message) *Cred {
	if !s.passcred {
		return nil
	}
	if m.cred == nil {
		c := noCred
		return &c
	}
	c := *m.cred
	return &c
}

// takeErrLocked returns and clears the pending error. Preconditions: mu
// is held.
func (s *Socket) takeErrLocked() error {
	if s.err == 0 {
		return nil
	}
	err := s.err
	s.err = 0
	return err
}

// recvStream reads queued stream data into dst. It holds readMu while it
// copies, with mu released around each copy (dst may be the application's
// memory), so that no other reader consumes, and frees, the data it is
// copying.
func (s *Socket) recvStream(cancel <-chan struct{}, dst vfs.IOSeq, flags int, nonblock bool) (RecvResult, error) {
	var r RecvResult
	size := dst.Len()
	target := 1
	// TCP waits for the whole length also when peeking (each round peeks
	// from the start again); a Unix socket does not.
	peekAll := s.inet != nil && flags&unix.MSG_PEEK != 0
	if flags&unix.MSG_WAITALL != 0 && (flags&unix.MSG_PEEK == 0 || peekAll) {
		target = size
	}
	dl, _ := s.timeouts()
	for {
		if peekAll {
			r = RecvResult{}
		}
		s.readMu.Lock()
		mu.Lock()
		if s.state != stateConnected {
			mu.Unlock()
			s.readMu.Unlock()
			if s.inet != nil {
				return r, unix.ENOTCONN
			}
			return r, unix.EINVAL
		}
		stop, err := s.readStreamLocked(&r, dst, flags)
		s.readMu.Unlock()
		if err != nil {
			mu.Unlock()
			if r.N > 0 {
				r.Len = r.N
				return r, nil
			}
			return r, err
		}
		if stop || r.N >= target || r.N == size {
			mu.Unlock()
			r.Len = r.N
			return r, nil
		}
		if r.N == 0 {
			if err := s.takeErrLocked(); err != nil {
				mu.Unlock()
				return r, err
			}
		}
		if s.shutdown&rcvShutdown != 0 {
			mu.Unlock()
			r.Len = r.N
			return r, nil
		}
		ch := s.waitChanLocked()
		mu.Unlock()
		if nonblock {
			if r.N > 0 {
				r.Len = r.N
				return r, nil
			}
			return r, unix.EAGAIN
		}
		if err := wait(cancel, ch, dl); err != nil {
			if r.N > 0 && err == unix.EAGAIN {
				r.Len = r.N // the timeout ran out: what arrived, as Linux
				return r, nil
			}
			if r.N > 0 {
				s.unread(dst, r)
			}
			return RecvResult{}, err
		}
	}
}

// unread puts back at the head of the queue what an interrupted
// MSG_WAITALL receive took (bytes, files, credentials), so that the call
// restarts with them: a save in the middle of such a receive is invisible.
// (Linux returns the bytes read so far to a signal handler; this returns
// EINTR then, with nothing lost.) The bytes are read back from dst, where
// the receive put them; if that fails they are lost.
func (s *Socket) unread(dst vfs.IOSeq, r RecvResult) {
	data := make([]byte, r.N)
	if err := dst.CopyIn(0, data); err != nil {
		data = nil
	}
	m := &message{data: data, from: r.From, rights: r.Rights, cred: r.Cred}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	s.queue = append([]*message{m}, s.queue...)
	s.queued += len(data)
	s.notifyLocked()
}

// readStreamLocked copies queued stream data into dst after r.N bytes, as
// Linux's unix_stream_read_generic: it stops after a message that carried
// files, and does not join messages with different credentials when s has
// SO_PASSCRED. It reports whether the read must end here, and the error
// of a copy that failed (the bytes it was to copy stay queued).
// Preconditions: mu and readMu are held; mu is released around each copy.
func (s *Socket) readStreamLocked(r *RecvResult, dst vfs.IOSeq, flags int) (bool, error) {
	peek := flags&unix.MSG_PEEK != 0
	size := dst.Len()
	for i := 0; i < len(s.queue) && r.N < size; i++ {
		m := s.queue[i]
		if s.passcred {
			c := s.credOfLocked(m)
			if r.Cred != nil && *r.Cred != *c {
				return true, nil
			}
			r.Cred = c
		}
		if r.From == nil {
			r.From = m.from
		}
		n := min(size-r.N, len(m.data)-m.off)
		if n > 0 {
			// readMu keeps m's bytes from being consumed; writers
			// only append to the queue.
			chunk := m.data[m.off : m.off+n]
			mu.Unlock()
			err := dst.CopyOut(r.N, chunk)
			mu.Lock()
			if err != nil {
				return true, err
			}
			if s.released || i >= len(s.queue) || s.queue[i] != m {
				return true, nil // purged meanwhile (the socket's release)
			}
		}
		r.N += n
		hadRights := len(m.rights) > 0
		if peek {
			for _, f := range m.rights {
				f.IncRef()
			}
			r.Rights = append(r.Rights, m.rights...)
			if hadRights {
				return true, nil
			}
			continue
		}
		m.off += n
		s.queued -= n
		r.Rights = append(r.Rights, m.rights...)
		m.rights = nil
		if m.off < len(m.data) {
			return true, nil
		}
		m.uncharge()
		freeStreamData(m.data)
		m.data = nil
		s.queue[i] = nil
		s.queue = s.queue[i+1:]
		i = -1
		s.notifyLocked()
		if hadRights {
			return true, nil
		}
	}
	return false, nil
}

// windowLocked is how many bytes s may have queued at its stream peer
// before a send waits. Preconditions: mu is held.
func (s *Socket) windowLocked() int {
	if s.inet != nil {
		return tcpWindow
	}
	return s.sndbuf
}

// tcpSendCheckLocked does what a TCP send checks before the Unix checks,
// as Linux's tcp_sendmsg: a pending error first (ECONNRESET, or EPIPE
// after a reset), EPIPE for a socket never connected or shut down for
// writing. A send to a peer that closed (CLOSE_WAIT) is taken whole and
// dropped, and the peer's answer, a reset, makes the next send EPIPE
// (done is then true). Preconditions: mu is held.
func (s *Socket) tcpSendCheckLocked(n int) (done bool, err error) {
	if err := s.takeErrLocked(); err != nil {
		return false, err
	}
	if s.state != stateConnected || s.shutdown&sendShutdown != 0 {
		return false, unix.EPIPE
	}
	if p := s.peer; p != nil && p.released {
		// An empty send to a peer that closed returns 0, as Linux's in
		// CLOSE_WAIT; a send of bytes is taken and answered by a reset.
		if n > 0 {
			s.err = unix.EPIPE
			s.shutdown = rcvShutdown | sendShutdown
			s.notifyLocked()
		}
		return true, nil
	}
	return false, nil
}
