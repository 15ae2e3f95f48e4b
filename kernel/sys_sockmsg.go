package kernel

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
)

// Layouts of struct msghdr, struct mmsghdr and struct cmsghdr on x86-64.
const (
	msghdrSize  = 56
	mmsghdrSize = 64
	cmsghdrSize = 16
	ucredSize   = 12
	// msgControlMax bounds the control buffer a call copies in.
	msgControlMax = 1 << 20
	// msgWaitForOne is MSG_WAITFORONE.
	msgWaitForOne = 0x10000
)

// msghdr is struct msghdr as the application passed it.
type msghdr struct {
	name       uint64
	namelen    uint32
	iov        uint64
	iovlen     uint64
	control    uint64
	controllen uint64
	flags      int32
}

func (t *Task) copyInMsghdr(addr uint64) (msghdr, error) {
	var b [msghdrSize]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return msghdr{}, err
	}
	le := binary.LittleEndian
	return msghdr{
		name: le.Uint64(b[0:]), namelen: le.Uint32(b[8:]), iov: le.Uint64(b[16:]), iovlen: le.Uint64(b[24:]),
		control: le.Uint64(b[32:]), controllen: le.Uint64(b[40:]), flags: int32(le.Uint32(b[48:])),
	}, nil
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }

// sendArgs parses a message's destination and control messages as Linux's
// __scm_send: SCM_RIGHTS (EBADF for a bad descriptor, EINVAL past
// SCM_MAX_FD) and SCM_CREDENTIALS (EPERM for IDs the caller may not
// claim). The caller drops the references in Rights.
func (t *Task) sendArgs(s *socket.Socket, m msghdr, flags int) (socket.SendArgs, error) {
	sa := socket.SendArgs{Flags: flags, Sender: t.senderCred(), Paths: sockPaths{t}}
	if m.name != 0 && m.namelen != 0 {
		b, err := t.copyInSockaddr(m.name, uint64(m.namelen))
		if err != nil {
			return sa, err
		}
		if s.IsInet() {
			sa.ToAddr = b
			return sa, nil // control messages mean nothing to the network
		}
		to, _, err := socket.ParseAddr(b)
		if err != nil {
			return sa, err
		}
		sa.To = &to
	}
	if m.controllen < cmsghdrSize || s.IsInet() {
		return sa, nil
	}
	if m.controllen > msgControlMax {
		return sa, unix.ENOBUFS
	}
	ctl := make([]byte, m.controllen)
	if err := t.tg.mm.CopyIn(m.control, ctl); err != nil {
		return sa, err
	}
	for off := 0; off+cmsghdrSize <= len(ctl); {
		l := binary.LittleEndian.Uint64(ctl[off:])
		if l < cmsghdrSize || l > uint64(len(ctl)-off) {
			return sa, dropRights(&sa, unix.EINVAL)
		}
		level, typ := int32(binary.LittleEndian.Uint32(ctl[off+8:])), int32(binary.LittleEndian.Uint32(ctl[off+12:]))
		data := ctl[off+cmsghdrSize : off+int(l)]
		if level == unix.SOL_SOCKET {
			if err := t.parseCmsg(&sa, typ, data); err != nil {
				return sa, dropRights(&sa, err)
			}
		}
		off += cmsgAlign(int(l))
	}
	return sa, nil
}

// parseCmsg adds one SOL_SOCKET control message to sa.
func (t *Task) parseCmsg(sa *socket.SendArgs, typ int32, data []byte) error {
	switch typ {
	case unix.SCM_RIGHTS:
		n := len(data) / 4
		if len(sa.Rights)+n > 253 {
			return unix.EINVAL
		}
		for i := range n {
			f, err := t.getFile(int32(binary.LittleEndian.Uint32(data[4*i:])))
			if err != nil {
				return err
			}
			sa.Rights = append(sa.Rights, f)
		}
	case unix.SCM_CREDENTIALS:
		if len(data) != ucredSize {
			return unix.EINVAL
		}
		c := socket.Cred{PID: int32(binary.LittleEndian.Uint32(data)), UID: binary.LittleEndian.Uint32(data[4:]), GID: binary.LittleEndian.Uint32(data[8:])}
		cr := &t.creds
		ok := (c.PID == t.tg.tgid || cr.capable(capSysAdmin)) &&
			(c.UID == cr.UID || c.UID == cr.EUID || c.UID == cr.SUID || cr.capable(capSetuid)) &&
			(c.GID == cr.GID || c.GID == cr.EGID || c.GID == cr.SGID || cr.capable(capSetgid))
		if !ok {
			return unix.EPERM
		}
		if c.PID != t.tg.tgid {
			if _, err := t.processByPID(c.PID); err != nil || c.PID <= 0 {
				return unix.ESRCH
			}
		}
		sa.Cred = &c
	default:
		return unix.EINVAL
	}
	return nil
}

func dropRights(sa *socket.SendArgs, err error) error {
	for _, f := range sa.Rights {
		f.DecRef()
	}
	sa.Rights = nil
	return err
}

// sendSource returns the bytes a send of iovs (total bytes) takes: the
// application's memory itself for a socket that copies straight from it
// (socket.Socket.DirectIO), else a copy.
func (t *Task) sendSource(s *socket.Socket, iovs []iovec, total uint64) (vfs.IOSeq, error) {
	if s.DirectIO() {
		return t.appIovecs(iovs, total), nil
	}
	buf := make([]byte, 0, total)
	for _, iov := range iovs {
		start := len(buf)
		buf = buf[:start+int(iov.len)]
		if err := t.tg.mm.CopyIn(iov.base, buf[start:]); err != nil {
			return nil, err
		}
	}
	return vfs.Bytes(buf), nil
}

// send sends src on s with sa; EPIPE sends SIGPIPE unless MSG_NOSIGNAL
// or the socket is not a stream one (Linux signals for streams only).
func (t *Task) send(f *vfs.File, s *socket.Socket, src vfs.IOSeq, sa socket.SendArgs) (uint64, error) {
	defer dropRights(&sa, nil)
	n, err := s.SendSeq(f, t.cancelChan(), src, sa)
	if err != nil {
		if errors.Is(err, unix.EPIPE) && sa.Flags&unix.MSG_NOSIGNAL == 0 && sigpipeOnEPIPE(f) {
			t.pipeBroken()
		}
		return 0, vfsErr(err)
	}
	return uint64(n), nil
}

func sysSendto(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	count := min(a[2], maxRWCount)
	if !s.DirectIO() {
		count = min(count, vectorMax)
	}
	src, err := t.sendSource(s, []iovec{{a[1], count}}, count)
	if err != nil {
		return 0, err
	}
	m := msghdr{name: a[4], namelen: uint32(a[5])}
	sa, err := t.sendArgs(s, m, int(a.Int(3)))
	if err != nil {
		return 0, err
	}
	return t.send(f, s, src, sa)
}

func sysSendmsg(t *Task, a *sysArgs) (uint64, error) { return t.oneMsg(a, (*Task).sendmsg) }

// msgOp sends or receives the one message whose struct msghdr is at addr.
type msgOp func(t *Task, f *vfs.File, s *socket.Socket, addr uint64, flags int) (uint64, error)

// oneMsg is sendmsg(fd, msg, flags) and recvmsg(fd, msg, flags) around op:
// the socket at fd, and flags without MSG_CMSG_COMPAT (EINVAL: only 32-bit
// callers set it).
func (t *Task) oneMsg(a *sysArgs, op msgOp) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if a[2]&msgCmsgCompat != 0 {
		return 0, unix.EINVAL
	}
	return op(t, f, s, a[1], int(a.Int(2)))
}

func (t *Task) sendmsg(f *vfs.File, s *socket.Socket, addr uint64, flags int) (uint64, error) {
	m, err := t.copyInMsghdr(addr)
	if err != nil {
		return 0, err
	}
	if m.iovlen > uioMaxIOV {
		return 0, unix.EMSGSIZE
	}
	iovs, total, err := t.copyInIovecs(m.iov, m.iovlen)
	if err != nil {
		return 0, err
	}
	src, err := t.sendSource(s, iovs, total)
	if err != nil {
		return 0, err
	}
	sa, err := t.sendArgs(s, m, flags)
	if err != nil {
		return 0, err
	}
	return t.send(f, s, src, sa)
}

func sysSendmmsg(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if a[3]&msgCmsgCompat != 0 {
		return 0, unix.EINVAL
	}
	send := func(h uint64) (uint64, error) { return t.sendmsg(f, s, h, int(a.Int(3))) }
	return t.eachMmsg(a[1], min(a[2], uioMaxIOV), send, func() bool { return true })
}

// eachMmsg runs op on each of the vlen struct mmsghdr at addr in turn and
// stores what it returns in that one's msg_len. An error from op is the
// call's result when it comes first; after a message went through, an
// error, or a msg_len that cannot be written, ends the call with the count
// so far. more runs after each message; false ends the call there, that
// message counted.
func (t *Task) eachMmsg(addr, vlen uint64, op func(h uint64) (uint64, error), more func() bool) (uint64, error) {
	var i uint64
	for ; i < vlen; i++ {
		h := addr + i*mmsghdrSize
		n, err := op(h)
		if err != nil {
			if i > 0 {
				break
			}
			return 0, err
		}
		if err := t.copyOutUint32(h+msghdrSize, uint32(n)); err != nil {
			break
		}
		if !more() {
			i++
			break
		}
	}
	return i, nil
}

func sysRecvfrom(t *Task, a *sysArgs) (uint64, error) {
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	flags := int(a.Int(3))
	var r socket.RecvResult
	if s.DirectIO() {
		r, err = s.RecvSeq(f, t.cancelChan(), t.appRange(a[1], min(a[2], maxRWCount)), socket.RecvArgs{Flags: flags})
		if err != nil {
			return 0, vfsErr(err)
		}
		t.dropReceived(r.Rights)
	} else {
		buf := getRWBuf(min(a[2], maxRWCount, vectorMax))
		defer putRWBuf(buf)
		r, err = s.Recv(f, t.cancelChan(), buf, socket.RecvArgs{Flags: flags})
		if err != nil {
			return 0, vfsErr(err)
		}
		t.dropReceived(r.Rights)
		if err := t.tg.mm.CopyOut(a[1], buf[:r.N]); err != nil {
			return 0, err
		}
	}
	if a[4] != 0 {
		if err := t.copyOutSockaddr(a[4], a[5], fromAddr(s, r.From)); err != nil {
			return 0, err
		}
	}
	return uint64(r.Len), nil
}

// fromAddr is the sender's address as recvfrom reports it: nothing (length
// 0) for an unbound sender.
func fromAddr(s *socket.Socket, a *socket.Addr) []byte {
	if a == nil {
		return nil
	}
	return s.MarshalAddr(a)
}

// dropReceived closes files received where the caller takes no control
// messages, as Linux does.
func (t *Task) dropReceived(files []*vfs.File) {
	for _, f := range files {
		f.DecRef()
	}
}

func sysRecvmsg(t *Task, a *sysArgs) (uint64, error) { return t.oneMsg(a, (*Task).recvmsg) }

func (t *Task) recvmsg(f *vfs.File, s *socket.Socket, addr uint64, flags int) (uint64, error) {
	m, err := t.copyInMsghdr(addr)
	if err != nil {
		return 0, err
	}
	if m.iovlen > uioMaxIOV {
		return 0, unix.EMSGSIZE
	}
	iovs, total, err := t.copyInIovecs(m.iov, m.iovlen)
	if err != nil {
		return 0, err
	}
	r, err := t.recvInto(f, s, iovs, total, flags)
	if err != nil {
		return 0, err
	}
	outFlags := int32(flags & unix.MSG_CMSG_CLOEXEC)
	if r.Truncated {
		outFlags |= unix.MSG_TRUNC
	}
	ctl, ctrunc := t.controlOut(r, int(min(m.controllen, msgControlMax)), flags)
	if ctrunc {
		outFlags |= unix.MSG_CTRUNC
	}
	if len(ctl) > 0 {
		if err := t.tg.mm.CopyOut(m.control, ctl); err != nil {
			return 0, err
		}
	}
	var b [4]byte
	var b8 [8]byte
	if m.name != 0 {
		// Linux writes msg_namelen only when there is a msg_name.
		sa := fromAddr(s, r.From)
		if err := t.tg.mm.CopyOut(m.name, sa[:min(int(m.namelen), len(sa))]); err != nil {
			return 0, err
		}
		binary.LittleEndian.PutUint32(b[:], uint32(len(sa)))
		if err := t.tg.mm.CopyOut(addr+8, b[:]); err != nil {
			return 0, err
		}
	}
	binary.LittleEndian.PutUint64(b8[:], uint64(len(ctl)))
	if err := t.tg.mm.CopyOut(addr+40, b8[:]); err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint32(b[:], uint32(outFlags))
	if err := t.tg.mm.CopyOut(addr+48, b[:]); err != nil {
		return 0, err
	}
	return uint64(r.Len), nil
}

// recvInto receives into iovs (total bytes): straight into the
// application's memory for a socket that copies there itself
// (socket.Socket.DirectIO), else through a buffer.
func (t *Task) recvInto(f *vfs.File, s *socket.Socket, iovs []iovec, total uint64, flags int) (socket.RecvResult, error) {
	if s.DirectIO() {
		r, err := s.RecvSeq(f, t.cancelChan(), t.appIovecs(iovs, total), socket.RecvArgs{Flags: flags})
		return r, vfsErr(err)
	}
	buf := make([]byte, total)
	r, err := s.Recv(f, t.cancelChan(), buf, socket.RecvArgs{Flags: flags})
	if err != nil {
		return r, vfsErr(err)
	}
	if err := t.appIovecs(iovs, total).CopyOut(0, buf[:r.N]); err != nil {
		t.dropReceived(r.Rights)
		return socket.RecvResult{}, err
	}
	return r, nil
}

// controlOut builds the control messages of a receive into a buffer of
// room bytes, as Linux's put_cmsg and scm_detach_fds: SCM_CREDENTIALS,
// then SCM_RIGHTS with as many received files as fit installed as new
// descriptors (the rest are closed). It reports whether anything was cut
// (MSG_CTRUNC).
func (t *Task) controlOut(r socket.RecvResult, room int, flags int) ([]byte, bool) {
	var ctl []byte
	ctrunc := false
	put := func(typ int32, data []byte) {
		left := room - len(ctl)
		if left < cmsghdrSize {
			ctrunc = true
			return
		}
		cmlen := cmsghdrSize + len(data)
		if left < cmlen {
			ctrunc = true
			cmlen = left
		}
		h := make([]byte, cmsghdrSize)
		binary.LittleEndian.PutUint64(h, uint64(cmlen))
		binary.LittleEndian.PutUint32(h[8:], unix.SOL_SOCKET)
		binary.LittleEndian.PutUint32(h[12:], uint32(typ))
		ctl = append(append(ctl, h...), data[:cmlen-cmsghdrSize]...)
		pad := min(cmsgAlign(cmlen), left) - cmlen
		ctl = append(ctl, make([]byte, pad)...)
	}
	if r.Cred != nil {
		d := make([]byte, ucredSize)
		binary.LittleEndian.PutUint32(d, uint32(r.Cred.PID))
		binary.LittleEndian.PutUint32(d[4:], r.Cred.UID)
		binary.LittleEndian.PutUint32(d[8:], r.Cred.GID)
		put(unix.SCM_CREDENTIALS, d)
	}
	if len(r.Rights) == 0 {
		return ctl, ctrunc
	}
	defer t.dropReceived(r.Rights)
	fdmax := 0
	if left := room - len(ctl); left > cmsghdrSize {
		fdmax = min((left-cmsghdrSize)/4, len(r.Rights))
	}
	var data []byte
	cloexec := vfs.FDFlags{CloseOnExec: flags&unix.MSG_CMSG_CLOEXEC != 0}
	for _, f := range r.Rights[:fdmax] {
		fd, err := t.tg.fdTable.NewFD(0, f, cloexec)
		if err != nil {
			break
		}
		data = binary.LittleEndian.AppendUint32(data, uint32(fd))
	}
	if len(data) > 0 {
		put(unix.SCM_RIGHTS, data)
	}
	if len(data)/4 < len(r.Rights) {
		ctrunc = true
	}
	return ctl, ctrunc
}

func sysRecvmmsg(t *Task, a *sysArgs) (uint64, error) {
	if a[3]&msgCmsgCompat != 0 {
		return 0, unix.EINVAL
	}
	f, s, err := t.getSocket(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	deadline := int64(-1)
	if a[4] != 0 {
		d, err := t.copyInTimespec(a[4])
		if err != nil {
			return 0, err
		}
		deadline = t.k.monotonicNow() + d
	}
	flags := int(a.Int(3))
	recv := func(h uint64) (uint64, error) { return t.recvmsg(f, s, h, flags&^msgWaitForOne) }
	more := func() bool {
		if flags&msgWaitForOne != 0 {
			flags |= unix.MSG_DONTWAIT
		}
		return deadline < 0 || t.k.monotonicNow() < deadline
	}
	return t.eachMmsg(a[1], min(a[2], uioMaxIOV), recv, more)
}

// sigpipeOnEPIPE reports whether EPIPE from a write to f comes with
// SIGPIPE: for pipes and stream sockets, not for datagram and seqpacket
// sockets (Linux's unix_dgram_sendmsg sends none).
func sigpipeOnEPIPE(f *vfs.File) bool {
	s := socket.Of(f)
	return s == nil || s.Type() == socket.Stream
}
