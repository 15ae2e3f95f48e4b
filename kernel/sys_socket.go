package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
)

// The socket calls. The Unix domain, the sandbox's loopback network
// (AF_INET and AF_INET6, TCP and UDP; host sockets under --network host,
// socket.NewHost) and NETLINK_ROUTE's interface queries (socket.NewNetlink)
// exist (package socket); every other family is EAFNOSUPPORT, as a family
// Linux was built without.

// sockaddrMax is sizeof(struct sockaddr_storage): the longest address a
// call copies in.
const sockaddrMax = 128

// socketType splits socket(2)'s type into the type and the descriptor
// flags (O_NONBLOCK, O_CLOEXEC), checking them in Linux's order.
func socketType(domain int32, typ uint64) (int, uint32, error) {
	flags := typ &^ 0xf
	if flags&^uint64(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0 {
		return 0, 0, unix.EINVAL
	}
	if domain < 0 || domain >= unix.AF_MAX {
		return 0, 0, unix.EAFNOSUPPORT
	}
	t := int(typ & 0xf)
	if t > unix.SOCK_PACKET {
		return 0, 0, unix.EINVAL
	}
	switch domain {
	case unix.AF_UNIX:
	case unix.AF_INET, unix.AF_INET6:
		if t != unix.SOCK_STREAM && t != unix.SOCK_DGRAM {
			return 0, 0, unix.ESOCKTNOSUPPORT
		}
	case unix.AF_NETLINK:
		if t != unix.SOCK_RAW && t != unix.SOCK_DGRAM {
			return 0, 0, unix.ESOCKTNOSUPPORT
		}
	default:
		return 0, 0, unix.EAFNOSUPPORT
	}
	if t == unix.SOCK_RAW {
		t = unix.SOCK_DGRAM // Linux's unix_create and netlink do the same
	}
	var fl uint32
	if flags&unix.SOCK_NONBLOCK != 0 {
		fl |= unix.O_NONBLOCK
	}
	if flags&unix.SOCK_CLOEXEC != 0 {
		fl |= unix.O_CLOEXEC
	}
	return t, fl, nil
}

// sysSocket implements socket(domain, type, protocol).
func sysSocket(t *Task, a *sysArgs) (uint64, error) {
	typ, flags, err := socketType(a.Int(0), a[1])
	if err != nil {
		return 0, err
	}
	s, err := t.newSocket(a.Int(0), typ, a.Int(2))
	if err != nil {
		return 0, err
	}
	f := socket.NewFile(s, flags)
	defer f.DecRef()
	fd, err := t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	return uint64(fd), err
}

// sysSocketpair implements socketpair(domain, type, protocol, sv).
func sysSocketpair(t *Task, a *sysArgs) (uint64, error) {
	typ, flags, err := socketType(a.Int(0), a[1])
	if err != nil {
		return 0, err
	}
	if d := a.Int(0); d == unix.AF_INET || d == unix.AF_INET6 {
		return 0, unix.EOPNOTSUPP
	}
	if p := a.Int(2); p != 0 && p != unix.AF_UNIX {
		return 0, unix.EPROTONOSUPPORT
	}
	s0, s1, err := socket.NewPair(t.k.unixNames, typ, t.peerCred())
	if err != nil {
		return 0, err
	}
	f0, f1 := socket.NewFile(s0, flags), socket.NewFile(s1, flags)
	defer f0.DecRef()
	defer f1.DecRef()
	fds, err := t.tg.fdTable.NewFDs([]*vfs.File{f0, f1}, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	if err != nil {
		return 0, err
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:], uint32(fds[0]))
	binary.LittleEndian.PutUint32(b[4:], uint32(fds[1]))
	if err := t.tg.mm.CopyOut(a[3], b[:]); err != nil {
		t.tg.fdTable.Remove(fds[0])
		t.tg.fdTable.Remove(fds[1])
		return 0, err
	}
	return 0, nil
}

// newSocket makes a socket of domain and type typ with protocol proto:
// EPROTONOSUPPORT for a protocol the type does not take.
func (t *Task) newSocket(domain int32, typ int, proto int32) (*socket.Socket, error) {
	if domain == unix.AF_UNIX {
		if proto != 0 && proto != unix.AF_UNIX {
			return nil, unix.EPROTONOSUPPORT
		}
		return socket.New(t.k.unixNames, typ)
	}
	if domain == unix.AF_NETLINK {
		if proto != unix.NETLINK_ROUTE {
			return nil, unix.EPROTONOSUPPORT
		}
		return socket.NewNetlink(t.k.unixNames, t.k.network == NetworkHost), nil
	}
	want := int32(unix.IPPROTO_TCP)
	if typ == unix.SOCK_DGRAM {
		want = unix.IPPROTO_UDP
	}
	if proto != 0 && proto != want {
		return nil, unix.EPROTONOSUPPORT
	}
	if t.k.network == NetworkHost {
		return socket.NewHost(t.k.unixNames, int(domain), typ, int(proto))
	}
	return socket.NewInet(t.k.unixNames, int(domain), typ)
}

// peerCred is what SO_PEERCRED reports for the calling thread: its
// process and effective IDs.
func (t *Task) peerCred() socket.Cred {
	return socket.Cred{PID: t.tg.tgid, UID: t.creds.EUID, GID: t.creds.EGID}
}

// senderCred is what a message carries for SCM_CREDENTIALS: the process
// and real IDs.
func (t *Task) senderCred() socket.Cred {
	return socket.Cred{PID: t.tg.tgid, UID: t.creds.UID, GID: t.creds.GID}
}

// getSocket returns the file at fd and its socket: EBADF for a bad
// descriptor, ENOTSOCK for another file. The caller drops the reference.
func (t *Task) getSocket(fd int32) (*vfs.File, *socket.Socket, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, nil, err
	}
	s := socket.Of(f)
	if s == nil {
		f.DecRef()
		return nil, nil, unix.ENOTSOCK
	}
	return f, s, nil
}

// copyInSockaddr copies in an address of addrlen bytes.
func (t *Task) copyInSockaddr(addr uint64, addrlen uint64) ([]byte, error) {
	if int32(addrlen) < 0 || addrlen > sockaddrMax {
		return nil, unix.EINVAL
	}
	b := make([]byte, addrlen)
	if err := t.tg.mm.CopyIn(addr, b); err != nil {
		return nil, err
	}
	return b, nil
}

// copyOutSockaddr writes an address to addr, truncated to the length at
// lenAddr, and its full length to lenAddr. Nothing happens if addr is 0.
func (t *Task) copyOutSockaddr(addr, lenAddr uint64, sa []byte) error {
	if addr == 0 {
		return nil
	}
	l, err := t.copyInUint32(lenAddr)
	if err != nil {
		return err
	}
	if int32(l) < 0 {
		return unix.EINVAL
	}
	if err := t.tg.mm.CopyOut(addr, sa[:min(int(l), len(sa))]); err != nil {
		return err
	}
	return t.copyOutUint32(lenAddr, uint32(len(sa)))
}

// sockPaths binds and finds path-named sockets in the task's filesystem:
// a socket file in a tmpfs or the overlay root holds its socket
// (vfs.FS.BindSocket); elsewhere a bind fails as mknod does there (EROFS
// on a read-only root, EPERM in a volume, or EADDRINUSE where something
// exists) and no path holds a socket of the sandbox (a host socket is
// never connected to).
type sockPaths struct{ t *Task }

// BindPath makes the socket file, mode 0777 less the umask, as Linux's
// unix_bind.
func (p sockPaths) BindPath(path string, s *socket.Socket) error {
	return p.t.tg.fs.BindSocket(p.t.fsOwner(), nil, path, 0o777&^p.t.umask(), s)
}

func (p sockPaths) LookupPath(path string) (*socket.Socket, error) {
	b, err := p.t.tg.fs.LookupSocket(p.t.fsOwner().Creds, nil, path)
	if err != nil {
		return nil, err
	}
	s, ok := b.(*socket.Socket)
	if !ok {
		return nil, unix.ECONNREFUSED
	}
	return s, nil
}

// getSocketAndAddr returns the socket at argument 0 and the bytes of the
// address at argument 1 whose length is argument 2, as bind and connect
// take them. The caller drops the reference on the file.
func (t *Task) getSocketAndAddr(a *sysArgs) (*vfs.File, *socket.Socket, []byte, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := t.copyInSockaddr(a[1], a[2])
	if err != nil {
		f.DecRef()
		return nil, nil, nil, err
	}
	return f, s, b, nil
}

func sysBind(t *Task, a *sysArgs) (uint64, error) {
	f, s, b, err := t.getSocketAndAddr(a)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if s.IsInet() {
		return 0, s.BindInet(b, t.creds.capable(capNetBindService))
	}
	addr, auto, err := socket.ParseAddr(b)
	if err != nil {
		return 0, err
	}
	return 0, s.Bind(addr, auto, sockPaths{t})
}

func sysListen(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, s.Listen(a.Int(1), t.peerCred())
}

func sysConnect(t *Task, a *sysArgs) (uint64, error) {
	f, s, b, err := t.getSocketAndAddr(a)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if s.IsInet() {
		return 0, vfsErr(s.ConnectInet(t.cancelChan(), b, f.Nonblocking()))
	}
	unspec := len(b) >= 2 && binary.LittleEndian.Uint16(b) == unix.AF_UNSPEC
	var addr socket.Addr
	if !unspec {
		var auto bool
		if addr, auto, err = socket.ParseAddr(b); err != nil {
			return 0, err
		}
		if auto {
			return 0, unix.EINVAL
		}
	} else if s.Type() != socket.Dgram {
		return 0, unix.EINVAL
	}
	return 0, vfsErr(s.Connect(t.cancelChan(), addr, unspec, f.Nonblocking(), t.peerCred(), sockPaths{t}))
}

func sysAccept(t *Task, a *sysArgs) (uint64, error) { return t.accept(a, 0) }

func sysAccept4(t *Task, a *sysArgs) (uint64, error) {
	if a[3]&^uint64(unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	return t.accept(a, a[3])
}

// accept implements accept4(fd, addr, addrlen, flags).
func (t *Task) accept(a *sysArgs, flags uint64) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	var fl uint32
	if flags&unix.SOCK_NONBLOCK != 0 {
		fl = unix.O_NONBLOCK
	}
	nf, peer, err := s.Accept(t.cancelChan(), f.Nonblocking(), fl)
	if err != nil {
		return 0, vfsErr(err)
	}
	defer nf.DecRef()
	fd, err := t.tg.fdTable.NewFD(0, nf, vfs.FDFlags{CloseOnExec: flags&unix.SOCK_CLOEXEC != 0})
	if err != nil {
		return 0, err
	}
	if err := t.copyOutSockaddr(a[1], a[2], s.MarshalAddr(peer)); err != nil {
		t.tg.fdTable.Remove(fd)
		return 0, err
	}
	return uint64(fd), nil
}

func sysGetsockname(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, t.copyOutSockaddr(a[1], a[2], s.SockName())
}

func sysGetpeername(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	p, err := s.PeerSockName()
	if err != nil {
		return 0, err
	}
	return 0, t.copyOutSockaddr(a[1], a[2], p)
}

func sysShutdown(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, s.Shutdown(a.Int(1))
}

func sysGetsockopt(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	l, err := t.copyInUint32(a[4])
	if err != nil {
		return 0, err
	}
	if int32(l) < 0 {
		return 0, unix.EINVAL
	}
	v, err := s.GetOption(int(a.Int(1)), int(a.Int(2)))
	if err != nil {
		return 0, err
	}
	v = v[:min(int(l), len(v))]
	if err := t.tg.mm.CopyOut(a[3], v); err != nil {
		return 0, err
	}
	return 0, t.copyOutUint32(a[4], uint32(len(v)))
}

func sysSetsockopt(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if int32(a[4]) < 0 {
		return 0, unix.EINVAL
	}
	v := make([]byte, min(a[4], 16)) // an int, a struct timeval or linger, a name
	if err := t.tg.mm.CopyIn(a[3], v); err != nil {
		return 0, err
	}
	return 0, s.SetOption(int(a.Int(1)), int(a.Int(2)), v)
}

// Layouts of struct ifconf and struct ifreq on x86-64.
const (
	ifconfSize = 16
	ifreqSize  = 40
)

// ifconf implements ioctl(fd, SIOCGIFCONF, arg) on a socket: the IPv4
// addresses of the sandbox's interfaces, lo's 127.0.0.1, as struct ifreq
// entries in ifc_buf (with ifc_buf NULL: the length they need). ENOTTY
// on another file, as Linux.
func (t *Task) ifconf(fd int32, arg uint64) error {
	f, _, err := t.getSocket(fd)
	if err == unix.ENOTSOCK {
		return unix.ENOTTY
	}
	if err != nil {
		return err
	}
	f.DecRef()
	var ic [ifconfSize]byte
	if err := t.tg.mm.CopyIn(arg, ic[:]); err != nil {
		return err
	}
	l, buf := int32(binary.LittleEndian.Uint32(ic[:])), binary.LittleEndian.Uint64(ic[8:])
	var reqs []byte
	req := make([]byte, ifreqSize)
	copy(req, "lo")
	binary.LittleEndian.PutUint16(req[16:], unix.AF_INET)
	copy(req[20:], []byte{127, 0, 0, 1})
	reqs = append(reqs, req...)
	n := len(reqs)
	if buf != 0 {
		n = min(max(int(l), 0)/ifreqSize*ifreqSize, len(reqs))
		if err := t.tg.mm.CopyOut(buf, reqs[:n]); err != nil {
			return err
		}
	}
	binary.LittleEndian.PutUint32(ic[:], uint32(n))
	return t.tg.mm.CopyOut(arg, ic[:4])
}
