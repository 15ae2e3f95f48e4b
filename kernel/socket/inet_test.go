package socket_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
	"snapshotter/stateify"
)

// in4 and in6 encode a sockaddr_in and a sockaddr_in6.
func in4(a, b, c, d byte, port uint16) []byte {
	s := make([]byte, unix.SizeofSockaddrInet4)
	binary.LittleEndian.PutUint16(s, unix.AF_INET)
	binary.BigEndian.PutUint16(s[2:], port)
	s[4], s[5], s[6], s[7] = a, b, c, d
	return s
}

func in6(ip string, port uint16) []byte {
	s := make([]byte, unix.SizeofSockaddrInet6)
	binary.LittleEndian.PutUint16(s, unix.AF_INET6)
	binary.BigEndian.PutUint16(s[2:], port)
	switch ip {
	case "::1":
		s[23] = 1
	case "::ffff:127.0.0.1":
		s[18], s[19], s[20], s[23] = 0xff, 0xff, 127, 1
	}
	return s
}

func portOf(sa []byte) uint16 { return binary.BigEndian.Uint16(sa[2:]) }

func newInet(t *testing.T, names *socket.Names, family, typ int) *socket.Socket {
	t.Helper()
	s, err := socket.NewInet(names, family, typ)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInetBind checks bind's address and port rules, one fresh namespace
// per case: a first socket binds first, then the second's result counts.
func TestInetBind(t *testing.T) {
	reuse := func(s *socket.Socket, opt int) {
		if err := s.SetOption(unix.SOL_SOCKET, opt, []byte{1, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name           string
		family1, typ   int
		addr1          []byte
		family2        int
		addr2          []byte
		listen1, reuse bool
		opt            int
		want           error
	}{
		{name: "same port", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), want: unix.EADDRINUSE},
		{name: "other loopback address", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 2, 5000)},
		{name: "wildcard over specific", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(0, 0, 0, 0, 5000), want: unix.EADDRINUSE},
		{name: "dual-stack wildcard holds IPv4", family1: unix.AF_INET6, typ: socket.Stream, addr1: in6("::", 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), want: unix.EADDRINUSE},
		{name: "::1 leaves IPv4", family1: unix.AF_INET6, typ: socket.Stream, addr1: in6("::1", 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000)},
		{name: "tcp and udp apart", family1: unix.AF_INET, typ: socket.Dgram, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), opt: -1},
		{name: "reuseaddr", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), reuse: true, opt: unix.SO_REUSEADDR},
		{name: "reuseaddr over a listener", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), reuse: true, opt: unix.SO_REUSEADDR, listen1: true,
			want: unix.EADDRINUSE},
		{name: "reuseport over a listener", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5000),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000), reuse: true, opt: unix.SO_REUSEPORT, listen1: true},
		{name: "outside address", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5001),
			family2: unix.AF_INET, addr2: in4(192, 0, 2, 1, 5000), want: unix.EADDRNOTAVAIL},
		{name: "low port", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5001),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 80), want: unix.EACCES},
		{name: "wrong family", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5001),
			family2: unix.AF_INET6, addr2: append(in4(127, 0, 0, 1, 5000), make([]byte, 12)...), want: unix.EAFNOSUPPORT},
		{name: "short", family1: unix.AF_INET, typ: socket.Stream, addr1: in4(127, 0, 0, 1, 5001),
			family2: unix.AF_INET, addr2: in4(127, 0, 0, 1, 5000)[:8], want: unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := socket.NewNames()
			a := newInet(t, names, tc.family1, tc.typ)
			defer a.Release()
			typ2 := tc.typ
			if tc.opt == -1 {
				typ2 = socket.Stream
			}
			b := newInet(t, names, tc.family2, typ2)
			defer b.Release()
			if tc.reuse {
				reuse(a, tc.opt)
				reuse(b, tc.opt)
			}
			if err := a.BindInet(tc.addr1, false); err != nil {
				t.Fatalf("first bind = %v", err)
			}
			if tc.listen1 {
				if err := a.Listen(1, socket.Cred{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.BindInet(tc.addr2, false); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("second bind = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestInetSaveRestore saves a TCP listener with a connection in its
// accept queue, an established connection with bytes queued both ways and
// one half closed, and a UDP socket with datagrams queued; after loading,
// each holds what it held, the ports stay taken and new connections go to
// the restored listener.
func TestInetSaveRestore(t *testing.T) {
	names := socket.NewNames()
	tbl := vfs.NewFDTable()
	var accepted *vfs.File
	install := func(ss ...*socket.Socket) {
		for _, s := range ss {
			f := socket.NewFile(s, unix.O_NONBLOCK)
			if s == socket.Of(accepted) {
				f = accepted
			}
			if _, err := tbl.NewFD(0, f, vfs.FDFlags{}); err != nil {
				t.Fatal(err)
			}
			f.DecRef()
		}
	}
	l := newInet(t, names, unix.AF_INET6, socket.Stream)
	if err := l.BindInet(in6("::", 0), false); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8, socket.Cred{}); err != nil {
		t.Fatal(err)
	}
	port := portOf(l.SockName())
	dial := func(sa []byte, family int) *socket.Socket {
		c := newInet(t, names, family, socket.Stream)
		if err := c.ConnectInet(nil, sa, false); err != nil {
			t.Fatalf("connect = %v", err)
		}
		return c
	}
	c1 := dial(in4(127, 0, 0, 1, port), unix.AF_INET)
	af, _, err := l.Accept(nil, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	accepted = af
	a1 := socket.Of(af)
	sendTo := func(s *socket.Socket, data string) {
		if n, err := s.Send(nil, nil, []byte(data), socket.SendArgs{}); err != nil || n != len(data) {
			t.Fatalf("Send(%q) = %d, %v", data, n, err)
		}
	}
	sendTo(c1, "client to server")
	sendTo(a1, "server to client")
	if err := a1.Shutdown(unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	c2 := dial(in6("::1", port), unix.AF_INET6)
	sendTo(c2, "waiting in the queue")
	u := newInet(t, names, unix.AF_INET, socket.Dgram)
	if err := u.BindInet(in4(127, 0, 0, 1, 0), false); err != nil {
		t.Fatal(err)
	}
	uc := newInet(t, names, unix.AF_INET, socket.Dgram)
	for _, d := range []string{"first", "second datagram"} {
		if _, err := uc.Send(nil, nil, []byte(d), socket.SendArgs{ToAddr: u.SockName()}); err != nil {
			t.Fatal(err)
		}
	}
	install(l, c1, a1, c2, u, uc)

	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, tbl); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	var out vfs.FDTable
	if err := stateify.Load(context.Background(), &buf, &out); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	get := func(fd int32) (*vfs.File, *socket.Socket) {
		f, _, err := out.Get(fd)
		if err != nil || socket.Of(f) == nil {
			t.Fatalf("Get(%d) after load = %v, %v", fd, f, err)
		}
		t.Cleanup(f.DecRef)
		return f, socket.Of(f)
	}
	read := func(fd int32) string {
		f, s := get(fd)
		b := make([]byte, 64)
		r, err := s.Recv(f, nil, b, socket.RecvArgs{})
		if err != nil {
			return err.Error()
		}
		return string(b[:r.N])
	}
	for _, tc := range []struct {
		fd   int32
		want string
	}{{1, "server to client"}, {1, ""}, {2, "client to server"}, {4, "first"}, {4, "second datagram"}} {
		if got := read(tc.fd); got != tc.want {
			t.Errorf("read fd %d after load = %q, want %q", tc.fd, got, tc.want)
		}
	}
	_, rl := get(0)
	qf, peer, err := rl.Accept(nil, true, 0)
	if err != nil {
		t.Fatalf("accept of the queued connection after load = %v", err)
	}
	defer qf.DecRef()
	_, rc2 := get(3)
	if want := in6("::1", portOf(rc2.SockName())); !bytes.Equal(rl.MarshalAddr(peer), want) {
		t.Errorf("queued connection's peer = %x, want %x", rl.MarshalAddr(peer), want)
	}
	b := make([]byte, 64)
	if r, err := socket.Of(qf).Recv(qf, nil, b, socket.RecvArgs{}); err != nil || string(b[:r.N]) != "waiting in the queue" {
		t.Errorf("queued connection's data = %q, %v", b[:r.N], err)
	}
	loaded := socket.NamesOf(rl)
	c3 := newInet(t, loaded, unix.AF_INET, socket.Stream)
	defer c3.Release()
	if err := c3.BindInet(in4(0, 0, 0, 0, port), false); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind to the restored listener's port = %v, want EADDRINUSE", err)
	}
	c4 := newInet(t, loaded, unix.AF_INET, socket.Stream)
	defer c4.Release()
	if err := c4.ConnectInet(nil, in4(127, 0, 0, 1, port), false); err != nil {
		t.Errorf("connect to the restored listener = %v", err)
	}
}

// TestInetInterrupted: a closed cancel channel ends a TCP connect waiting
// for room in a full accept queue, an accept and a receive with
// vfs.ErrInterrupted (the kernel restarts or fails the call), and the
// connect that waited goes through once there is room.
func TestInetInterrupted(t *testing.T) {
	cancel := make(chan struct{})
	close(cancel)
	names := socket.NewNames()
	l := newInet(t, names, unix.AF_INET, socket.Stream)
	defer l.Release()
	if err := l.BindInet(in4(127, 0, 0, 1, 0), false); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(0, socket.Cred{}); err != nil {
		t.Fatal(err)
	}
	sa := l.SockName()
	first := newInet(t, names, unix.AF_INET, socket.Stream)
	defer first.Release()
	if err := first.ConnectInet(nil, sa, false); err != nil {
		t.Fatalf("first connect = %v", err)
	}
	second := newInet(t, names, unix.AF_INET, socket.Stream)
	defer second.Release()
	if err := second.ConnectInet(cancel, sa, false); !errors.Is(err, vfs.ErrInterrupted) {
		t.Errorf("connect to a full accept queue, interrupted = %v, want ErrInterrupted", err)
	}
	if _, err := first.Recv(nil, cancel, make([]byte, 4), socket.RecvArgs{}); !errors.Is(err, vfs.ErrInterrupted) {
		t.Errorf("interrupted recv = %v, want ErrInterrupted", err)
	}
	af, _, err := l.Accept(nil, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	af.DecRef()
	if err := second.ConnectInet(cancel, sa, false); err != nil {
		t.Errorf("connect with room again = %v", err)
	}
	if f, _, err := l.Accept(cancel, false, 0); err != nil {
		t.Errorf("accept of the second connection = %v", err)
	} else {
		f.DecRef()
	}
	if _, _, err := l.Accept(cancel, false, 0); !errors.Is(err, vfs.ErrInterrupted) {
		t.Errorf("interrupted accept = %v, want ErrInterrupted", err)
	}
}

// TestTCPWritableAfterHalf: a TCP socket whose window is full turns
// writable again (POLLOUT, and a wake-up of a blocked sender) only once
// the free part of the window is at least half of what is still queued,
// as Linux's sk_stream_is_writeable, not at the first byte its peer reads.
func TestTCPWritableAfterHalf(t *testing.T) {
	names := socket.NewNames()
	l := newInet(t, names, unix.AF_INET, socket.Stream)
	defer l.Release()
	if err := l.BindInet(in4(127, 0, 0, 1, 0), false); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1, socket.Cred{}); err != nil {
		t.Fatal(err)
	}
	c, err := socket.DialLoopback(names, portOf(l.SockName()), nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := socket.NewFile(c, unix.O_NONBLOCK)
	defer fc.DecRef()
	af, _, err := l.Accept(nil, true, unix.O_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer af.DecRef()
	srv := af.Impl().(*socket.Socket)
	chunk := make([]byte, 64<<10)
	queued := 0
	for {
		n, err := c.Send(fc, nil, chunk, socket.SendArgs{})
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		queued += n
	}
	writable := func() bool { return c.Readiness(fc, unix.POLLOUT)&unix.POLLOUT != 0 }
	if writable() {
		t.Fatalf("POLLOUT with a full window (%d bytes queued)", queued)
	}
	// Read a chunk at a time; POLLOUT must appear exactly when at most two
	// thirds of the bytes queued at EAGAIN remain (plus each message's
	// overhead, which makes it come a chunk or so later).
	read := 0
	for !writable() {
		r, err := srv.Recv(af, nil, chunk, socket.RecvArgs{})
		if err != nil || r.N == 0 {
			t.Fatalf("Recv after %d bytes = %d, %v", read, r.N, err)
		}
		read += r.N
	}
	if left := queued - read; 3*left > 2*queued || 3*(left+2*len(chunk)) < 2*queued {
		t.Errorf("POLLOUT with %d of %d bytes still queued, want about two thirds", left, queued)
	}
}
