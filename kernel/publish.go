package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
)

// Publishing (snap run -p): the sentry listens on a host port, in the
// sentry, never handing the host socket to the sandbox, and turns each
// connection it accepts into a connection to the sandbox's listener on the
// mapped port, made from the sandbox's loopback (the program sees the peer
// at 127.0.0.1 or ::1 and an ephemeral port). Bytes are copied both ways
// by two goroutines per connection, each blocking in the sandbox socket's
// own waits, so a full side holds the other back. A save first closes
// every connection from outside (their host side with a reset, their
// sandbox side reset too: the kernel state never holds a host
// connection) and refuses new ones until the kernel runs again; the
// listeners stay. The mappings are kernel state, so an image knows what
// it published; a restore publishes them again or those it is given.
// UDP ports are relayed by publish_udp.go.

// ErrBadPortMapping means a -p value is not [HOSTADDR:]HOSTPORT:PORT[/PROTO].
var ErrBadPortMapping = errors.New("bad port mapping")

// PortMapping is one published port: connections to HostAddr:HostPort on
// the host go to the sandbox's listener on Port.
//
// +stateify savable
type PortMapping struct {
	// HostAddr is an IP address of the host (127.0.0.1 by default).
	HostAddr string
	// HostPort and Port are 1 to 65535.
	HostPort, Port uint16
	// Proto is "udp" for a UDP port, "" for a TCP one (images from
	// before UDP publishing hold only those).
	Proto string
}

// String formats m as -p takes it.
func (m PortMapping) String() string {
	s := net.JoinHostPort(m.HostAddr, strconv.Itoa(int(m.HostPort))) + ":" + strconv.Itoa(int(m.Port))
	if m.Proto == "udp" {
		s += "/udp"
	}
	return s
}

// ParsePortMapping parses [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp] (an IPv6
// HOSTADDR in brackets; tcp by default); ErrBadPortMapping for anything
// else, port 0 included.
func ParsePortMapping(v string) (PortMapping, error) {
	bad := func(why string) (PortMapping, error) {
		return PortMapping{}, fmt.Errorf("%q: %w: %s (want [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp])", v, ErrBadPortMapping, why)
	}
	m := PortMapping{HostAddr: "127.0.0.1"}
	rest := v
	if j := strings.LastIndexByte(v, '/'); j >= 0 {
		switch v[j+1:] {
		case "tcp":
		case "udp":
			m.Proto = "udp"
		default:
			return bad("protocol " + strconv.Quote(v[j+1:]) + " is not tcp or udp")
		}
		rest = v[:j]
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return bad("no sandbox port")
	}
	hostPart, portPart := rest[:i], rest[i+1:]
	if j := strings.LastIndexByte(hostPart, ':'); j >= 0 && !strings.HasSuffix(hostPart, "]") {
		m.HostAddr, hostPart = strings.Trim(hostPart[:j], "[]"), hostPart[j+1:]
		if _, err := netip.ParseAddr(m.HostAddr); err != nil {
			return bad("host address " + strconv.Quote(m.HostAddr) + " is not an IP address")
		}
	}
	var err error
	if m.HostPort, err = parsePort(hostPart); err != nil {
		return bad("host port " + strconv.Quote(hostPart) + " " + err.Error())
	}
	if m.Port, err = parsePort(portPart); err != nil {
		return bad("sandbox port " + strconv.Quote(portPart) + " " + err.Error())
	}
	return m, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, errors.New("is not a port from 1 to 65535")
	}
	return uint16(n), nil
}

// publisher serves a kernel's published ports. Host resources: never
// saved.
type publisher struct {
	names *socket.Names

	// relays serve the UDP ports; immutable.
	relays []*udpRelay

	mu sync.Mutex
	// listeners are the host listeners. Protected by mu.
	listeners []net.Listener
	// conns are the connections being served. Protected by mu.
	conns map[*bridge]struct{}
	// frozen refuses new connections while a save runs. Protected by mu.
	frozen bool
	// stop is closed to end every connection's sandbox waits. Protected
	// by mu.
	stop chan struct{}
	// wg counts the accept loops, connWG the goroutines serving
	// connections (Add only under mu while not frozen).
	wg, connWG sync.WaitGroup
	// closed makes close run once (a save that ends the sandbox closes
	// early, Release again).
	closed sync.Once
}

// bridge is one connection from outside.
type bridge struct {
	conn *net.TCPConn
	port uint16
}

// Publish listens on the host for each mapping and starts serving them,
// replacing the mappings the kernel had (a restored one its saved ones).
// Every host port is taken before any is served: a port the host cannot
// give is an error naming it, and then nothing is published. Call it
// before the program starts or resumes.
func (k *Kernel) Publish(ms []PortMapping) error {
	var ls []net.Listener
	var tcp []PortMapping
	var pcs []net.PacketConn
	var udp []PortMapping
	closeAll := func() {
		for _, o := range ls {
			o.Close()
		}
		for _, o := range pcs {
			o.Close()
		}
	}
	for _, m := range ms {
		hostAddr := net.JoinHostPort(m.HostAddr, strconv.Itoa(int(m.HostPort)))
		var err error
		if m.Proto == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", hostAddr); err == nil {
				pcs, udp = append(pcs, pc), append(udp, m)
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", hostAddr); err == nil {
				ls, tcp = append(ls, l), append(tcp, m)
			}
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("publish %s: host port %s: %w", m, hostAddr, hostErr(err))
		}
	}
	k.published = append([]PortMapping(nil), ms...)
	if len(ms) == 0 {
		return nil
	}
	p := &publisher{names: k.unixNames, listeners: ls, conns: map[*bridge]struct{}{}, stop: make(chan struct{})}
	for i, pc := range pcs {
		p.relays = append(p.relays, newUDPRelay(k.unixNames, pc, udp[i].Port))
	}
	k.pub = p
	for i, l := range ls {
		p.wg.Add(1)
		// S/R-SAFE: accepts host connections only; serve refuses them
		// while a save runs (freeze), and Release closes the listener.
		go p.accept(l, tcp[i].Port)
	}
	return nil
}

// hostErr shortens a net error to its system call error where it has one
// (EADDRINUSE reads "address already in use").
func hostErr(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// Published returns the kernel's port mappings.
func (k *Kernel) Published() []PortMapping { return append([]PortMapping(nil), k.published...) }

// ListeningPorts describes the sandbox's listening TCP sockets and bound
// UDP sockets ("tcp 127.0.0.1:8000").
func (k *Kernel) ListeningPorts() []string { return k.unixNames.Listening() }

func (p *publisher) accept(l net.Listener, port uint16) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed by close
		}
		p.serve(&bridge{conn: c.(*net.TCPConn), port: port})
	}
}

// serve starts serving b, or resets it while a save runs.
func (p *publisher) serve(b *bridge) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen || p.stop == nil {
		b.reset()
		return
	}
	p.conns[b] = struct{}{}
	p.connWG.Add(1)
	// S/R-SAFE: freeze closes stop and the host connection and waits for
	// it before a save reads the kernel.
	go p.run(b, p.stop)
}

// reset closes the host connection with a reset.
func (b *bridge) reset() {
	b.conn.SetLinger(0)
	b.conn.Close()
}

// run connects b to the sandbox's listener and copies both ways until
// both sides are done or stop closes.
func (p *publisher) run(b *bridge, stop chan struct{}) {
	defer p.connWG.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, b)
		p.mu.Unlock()
	}()
	s, err := socket.DialLoopback(p.names, b.port, stop)
	if err != nil {
		b.reset()
		return
	}
	done := make(chan bool, 1)
	// S/R-SAFE: as run, which waits for it.
	go func() { done <- b.toSandbox(s, stop) }()
	clean := b.fromSandbox(s, stop) && <-done
	if !clean {
		s.SetOption(unix.SOL_SOCKET, unix.SO_LINGER, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		b.reset()
	} else {
		b.conn.Close()
	}
	s.Release()
}

// toSandbox copies what the host side sends into s until its end, which
// it passes on as a shutdown; it reports whether it ended cleanly.
func (b *bridge) toSandbox(s *socket.Socket, stop chan struct{}) bool {
	buf := make([]byte, 256<<10)
	for {
		n, err := b.conn.Read(buf)
		for sent := 0; sent < n; {
			w, err := s.Send(nil, stop, buf[sent:n], socket.SendArgs{})
			if err != nil {
				b.conn.Close() // unblocks fromSandbox's write
				return false
			}
			sent += w
		}
		if err != nil {
			select {
			case <-stop:
				return false
			default:
			}
			s.Shutdown(unix.SHUT_WR)
			return true
		}
	}
}

// fromSandbox copies what s receives to the host side until the sandbox
// side's end, which it passes on as a half close; it reports whether it
// ended cleanly.
func (b *bridge) fromSandbox(s *socket.Socket, stop chan struct{}) bool {
	buf := make([]byte, 256<<10)
	for {
		r, err := s.Recv(nil, stop, buf, socket.RecvArgs{})
		if err != nil {
			b.conn.Close() // unblocks toSandbox's read
			return false
		}
		if r.N == 0 {
			b.conn.CloseWrite()
			return true
		}
		if _, err := b.conn.Write(buf[:r.N]); err != nil {
			b.conn.Close() // unblocks toSandbox's read
			return false
		}
	}
}

// freeze ends every connection from outside and refuses new ones until
// thaw: a save then finds no host connection in the kernel.
func (p *publisher) freeze() {
	p.mu.Lock()
	p.frozen = true
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	for b := range p.conns {
		b.reset()
	}
	p.mu.Unlock()
	p.connWG.Wait() // the connections only: the accept loops run on
	for _, r := range p.relays {
		r.freeze()
	}
}

// thaw serves new connections again after freeze.
func (p *publisher) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	if p.stop == nil {
		p.stop = make(chan struct{})
	}
	for _, r := range p.relays {
		r.thaw()
	}
}

// close stops publishing: the listeners close and the connections end.
// Calls after the first do nothing.
func (p *publisher) close() { p.closed.Do(p.closeOnce) }

func (p *publisher) closeOnce() {
	p.freeze()
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	p.listeners = nil
	p.mu.Unlock()
	p.wg.Wait()
	for _, r := range p.relays {
		r.close()
	}
}
