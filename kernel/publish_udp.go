package kernel

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
)

// Published UDP ports (snap run -p HOSTPORT:PORT/udp): the sentry reads
// the host port and sends each datagram into the sandbox from a UDP socket
// of the sandbox's loopback kept for its sender (a session), connected to
// PORT; what the program sends back to that socket's address goes to the
// sender from the host port. A save drops every session (their sockets
// are never in an image) and the datagrams that come while it runs; the
// host port stays.

// maxUDPSessions bounds the senders a published UDP port keeps sockets
// for; a new sender beyond it replaces the oldest.
const maxUDPSessions = 256

// udpRelay serves one published UDP port. Host resources: never saved.
type udpRelay struct {
	names *socket.Names
	pc    net.PacketConn
	port  uint16

	mu sync.Mutex
	// sessions are the senders' sockets by sender address, order their
	// keys oldest first. Protected by mu.
	sessions map[string]*udpSession
	order    []string
	// frozen drops datagrams while a save runs. Protected by mu.
	frozen bool
	// stop is closed to end the sessions' waits. Protected by mu.
	stop chan struct{}
	// readWG counts the read loop, sessWG the sessions' reply loops.
	readWG, sessWG sync.WaitGroup
}

// udpSession is one host sender's socket in the sandbox.
type udpSession struct {
	s    *socket.Socket
	from net.Addr
}

func newUDPRelay(names *socket.Names, pc net.PacketConn, port uint16) *udpRelay {
	r := &udpRelay{names: names, pc: pc, port: port, sessions: map[string]*udpSession{}, stop: make(chan struct{})}
	r.readWG.Add(1)
	// S/R-SAFE: reads host datagrams only; deliver drops them while a
	// save runs (freeze), and close closes the host socket.
	go r.read()
	return r
}

func (r *udpRelay) read() {
	defer r.readWG.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.pc.ReadFrom(buf)
		if err != nil {
			return // closed by close
		}
		r.deliver(from, buf[:n])
	}
}

// deliver sends one datagram from a host sender into the sandbox.
func (r *udpRelay) deliver(from net.Addr, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return
	}
	key := from.String()
	sess := r.sessions[key]
	if sess == nil {
		if len(r.order) >= maxUDPSessions {
			old := r.order[0]
			r.order = r.order[1:]
			s := r.sessions[old].s
			s.Shutdown(unix.SHUT_RD) // its reply loop ends
			s.Release()
			delete(r.sessions, old)
		}
		s, err := socket.DialUDPLoopback(r.names, r.port)
		if err != nil {
			return
		}
		sess = &udpSession{s: s, from: from}
		r.sessions[key] = sess
		r.order = append(r.order, key)
		r.sessWG.Add(1)
		// S/R-SAFE: freeze closes stop and waits for it before a save
		// reads the kernel.
		go r.reply(sess, r.stop)
	}
	// A UDP send never waits: a full receiver drops the datagram.
	sess.s.Send(nil, r.stop, data, socket.SendArgs{})
}

// reply sends what the sandbox sends to sess's socket back to its host
// sender, until stop closes or the socket is released.
func (r *udpRelay) reply(sess *udpSession, stop chan struct{}) {
	defer r.sessWG.Done()
	buf := make([]byte, 64<<10)
	for {
		res, err := sess.s.Recv(nil, stop, buf, socket.RecvArgs{})
		switch {
		case err == unix.ECONNREFUSED:
			continue // nobody received an earlier datagram
		case err != nil || (res.N == 0 && res.From == nil):
			return
		}
		r.pc.WriteTo(buf[:res.N], sess.from)
	}
}

// freeze drops every session and the datagrams that come until thaw.
func (r *udpRelay) freeze() {
	r.mu.Lock()
	r.frozen = true
	if r.stop != nil {
		close(r.stop)
		r.stop = nil
	}
	r.mu.Unlock()
	r.sessWG.Wait()
	r.mu.Lock()
	for _, sess := range r.sessions {
		sess.s.Release()
	}
	r.sessions, r.order = map[string]*udpSession{}, nil
	r.mu.Unlock()
}

// thaw serves datagrams again after freeze.
func (r *udpRelay) thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = false
	if r.stop == nil {
		r.stop = make(chan struct{})
	}
}

// close stops relaying: the host socket closes and the sessions end.
func (r *udpRelay) close() {
	r.freeze()
	r.pc.Close()
	r.readWG.Wait()
}
