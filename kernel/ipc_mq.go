package kernel

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
)

// POSIX message queues: mq_open, mq_unlink, mq_timedsend, mq_timedreceive,
// mq_notify and mq_getsetattr. A queue lives
// in the IPC namespace by name (what the libcs pass without its leading
// slash); a descriptor is a kernel-made file (vfs.Impl) holding the queue, readable
// and writable through poll, select and epoll, whose read(2) gives the
// queue's status line; closing any descriptor of a queue drops the
// closing process's notification, as on Linux. The queues are also the
// files of the mqueue filesystem at /dev/mqueue (ipc_mqfs.go).
//
// mq_notify's SIGEV_THREAD is the kernel's half of what glibc and musl
// build on it: the libc passes a netlink socket in sigev_signo and the
// address of a cookie of mqCookieLen bytes in sigev_value; the kernel
// keeps a copy and sends it on the socket, as a datagram from the kernel
// (port 0) with its last byte set to mqNotifyWokenUp, when a message
// arrives in the empty queue, or to mqNotifyRemoved when the
// registration is removed (mq_notify(NULL), or a close of a descriptor of
// the queue by the process that registered); a libc thread reading the
// socket then runs the function.

// Message queue limits: Linux's defaults (fs.mqueue sysctls) and hard
// limits, the latter for callers with CAP_SYS_RESOURCE.
const (
	mqDefMaxMsg   = 10
	mqDefMsgSize  = 8192
	mqHardMaxMsg  = 65536
	mqHardMsgSize = 16 << 20
	mqPrioMax     = 32768
	mqAttrSize    = 64
	// siMesgq is SI_MESGQ, the si_code of a notification signal.
	siMesgq = -3
	// mqCookieLen is NOTIFY_COOKIE_LEN, the size of a SIGEV_THREAD
	// cookie; its last byte says why it was sent: mqNotifyWokenUp
	// (NOTIFY_WOKENUP) or mqNotifyRemoved (NOTIFY_REMOVED).
	mqCookieLen     = 32
	mqNotifyWokenUp = 1
	mqNotifyRemoved = 2
	nameMax         = 255
)

// mqueue is one POSIX message queue.
//
// +stateify savable
type mqueue struct {
	Perm    ipcPerm
	MaxMsg  int64
	MsgSize int64
	// Msgs are kept by decreasing priority, oldest first within one.
	Msgs []mqMsg
	// Notify is the registered notification; NotifyTG is nil when none.
	NotifyTG    *ThreadGroup
	NotifyKind  int32
	NotifySigno int32
	NotifyValue uint64
	// NotifySock and NotifyCookie are a SIGEV_THREAD registration's: the
	// netlink socket the cookie goes to (kept after its descriptors
	// close, as Linux holds the socket) and the mqCookieLen bytes the
	// registering call gave.
	NotifySock   *socket.Socket
	NotifyCookie []byte
	// Unlinked is set once mq_unlink removed the name; open descriptors
	// keep the queue.
	Unlinked bool
	// User is the real user ID of the creator, whose RLIMIT_MSGQUEUE the
	// queue counts against.
	User uint32
	// Atime, Mtime and Ctime are the times of the queue's file, changed
	// as Linux changes them (a send all three, a receive and mq_notify
	// atime and ctime, utimes, chmod and chown); zero in images from
	// before, whose queues show Perm.Ctime.
	Atime, Mtime, Ctime vfs.Timespec
	// receivers counts tasks blocked in mq_timedreceive (a notification is
	// not sent while one waits). Not saved: waiters retry after a restore.
	receivers int32 `state:"nosave"`
}

// mqMsg is one queued message.
//
// +stateify savable
type mqMsg struct {
	Prio uint32
	Data []byte
}

// mqFD is an open message queue descriptor: the vfs.Impl of its File
// (mqFile); images from before that carry it as a special file.
//
// +stateify savable
type mqFD struct {
	Q *mqueue
	// Read and Write are the access mode it was opened with. Immutable.
	Read, Write bool
	// ns is the namespace holding Q. Immutable.
	NS *ipcNamespace
	// Pos is the file position read(2) advances through the status
	// line; protected by NS.mu.
	Pos int64
	// Path is what /proc/PID/fd shows: "/NAME" for mq_open's,
	// /dev/mqueue/NAME for one opened by path; empty in images from
	// before. Immutable.
	Path string
}

// read implements read(2) on a queue descriptor: the queue's status line
// from the file position, as Linux's mqueue_read_file. EBADF for a
// descriptor opened write-only.
func (m *mqFD) read(_ *Task, dst []byte, _ bool) (int, error) {
	if !m.Read {
		return 0, unix.EBADF
	}
	m.NS.mu.Lock()
	defer m.NS.mu.Unlock()
	n := m.Q.readStatusLocked(dst, m.Pos)
	m.Pos += int64(n)
	return n, nil
}

// readStatusLocked copies the status line from offset off into dst.
//
// Preconditions: the namespace's mu is held.
func (q *mqueue) readStatusLocked(dst []byte, off int64) int {
	line := q.statusLocked()
	if off >= int64(len(line)) {
		return 0
	}
	return copy(dst, line[off:])
}

// seek implements lseek(2) on a queue descriptor as Linux's
// default_llseek, the file's size being mqFileSize.
func (m *mqFD) seek(off int64, whence int) (int64, error) {
	m.NS.mu.Lock()
	defer m.NS.mu.Unlock()
	switch whence {
	case unix.SEEK_CUR:
		off += m.Pos
	case unix.SEEK_END:
		off += mqFileSize
	case unix.SEEK_DATA, unix.SEEK_HOLE:
		if off >= mqFileSize {
			return 0, unix.ENXIO
		}
		if whence == unix.SEEK_HOLE {
			off = mqFileSize
		}
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	m.Pos = off
	return off, nil
}

// flush is a close of a descriptor of the queue by process tg: the
// notification tg registered goes, whichever descriptor registered it
// (Linux's mqueue_flush_file).
func (m *mqFD) flush(tg *ThreadGroup) {
	m.NS.mu.Lock()
	var n mqNotice
	if m.Q.NotifyTG == tg {
		n = m.Q.removeNotifyLocked()
	}
	m.NS.mu.Unlock()
	n.send()
}

// mqNotice is a notification taken from a queue under the namespace's
// mu, sent once it is released: a signal to a process, or a cookie to a
// netlink socket. The zero mqNotice sends nothing.
type mqNotice struct {
	tg     *ThreadGroup
	info   sigInfo
	sock   *socket.Socket
	cookie []byte
}

func (n mqNotice) send() {
	if n.tg != nil {
		n.tg.sendSignal(n.info, nil)
	}
	if n.sock != nil {
		n.sock.SendFromKernel(n.cookie)
	}
}

// cookieNoticeLocked clears a SIGEV_THREAD registration and returns its
// cookie, marked with why (mqNotifyWokenUp or mqNotifyRemoved), for its
// socket.
//
// Preconditions: the namespace's mu is held; q.NotifyKind is sigevThread.
func (q *mqueue) cookieNoticeLocked(why byte) mqNotice {
	c := append([]byte(nil), q.NotifyCookie...)
	c[mqCookieLen-1] = why
	n := mqNotice{sock: q.NotifySock, cookie: c}
	q.NotifySock, q.NotifyCookie = nil, nil
	return n
}

// removeNotifyLocked removes the registration (Linux's
// remove_notification): a SIGEV_THREAD one's socket is told so.
//
// Preconditions: the namespace's mu is held.
func (q *mqueue) removeNotifyLocked() mqNotice {
	var n mqNotice
	if q.NotifyTG != nil && q.NotifyKind == sigevThread {
		n = q.cookieNoticeLocked(mqNotifyRemoved)
	}
	q.NotifyTG = nil
	return n
}

// statusLocked is the line a read of the queue's file gives: the bytes
// queued and the registered notification.
//
// Preconditions: the namespace's mu is held.
func (q *mqueue) statusLocked() string {
	var size uint64
	for _, msg := range q.Msgs {
		size += uint64(len(msg.Data))
	}
	var kind, signo, pid int32
	if q.NotifyTG != nil {
		kind, pid = q.NotifyKind, q.NotifyTG.tgid
		if kind == sigevSignal {
			signo = q.NotifySigno
		}
	}
	return fmt.Sprintf("QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n", size, kind, signo, pid)
}

func (m *mqFD) write(*Task, []byte, bool) (int, error) { return 0, unix.EINVAL }

func (m *mqFD) readiness(mask uint32) uint32 {
	m.NS.mu.Lock()
	defer m.NS.mu.Unlock()
	var r uint32
	if len(m.Q.Msgs) > 0 {
		r |= unix.POLLIN | pollRdnorm
	}
	if int64(len(m.Q.Msgs)) < m.Q.MaxMsg {
		r |= unix.POLLOUT | 0x100 // POLLWRNORM
	}
	return r & mask
}

func (m *mqFD) changed() <-chan struct{} {
	m.NS.mu.Lock()
	defer m.NS.mu.Unlock()
	return m.NS.changedLocked()
}

// mqName checks a queue name as the kernel gets it (without the libc's
// leading slash).
func (t *Task) mqName(addr uint64) (string, error) {
	name, err := t.tg.mm.CopyInString(addr, nameMax+2)
	if err != nil {
		return "", err
	}
	switch {
	case len(name) > nameMax:
		return "", unix.ENAMETOOLONG
	case name == "":
		return "", unix.ENOENT
	case strings.Contains(name, "/"), name == ".", name == "..":
		return "", unix.EACCES
	}
	return name, nil
}

func sysMqOpen(t *Task, a *sysArgs) (uint64, error) {
	name, err := t.mqName(a[0])
	if err != nil {
		return 0, err
	}
	flags, mode := uint32(a[1]), uint32(a[2])
	acc := flags & unix.O_ACCMODE
	if acc == unix.O_ACCMODE {
		return 0, unix.EINVAL
	}
	ns := t.k.ipc()
	ns.mu.Lock()
	q, ok := ns.mqs[name]
	switch {
	case ok && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL:
		ns.mu.Unlock()
		return 0, unix.EEXIST
	case ok:
		want := uint32(4)
		switch acc {
		case unix.O_WRONLY:
			want = 2
		case unix.O_RDWR:
			want = 6
		}
		if !t.ipcAccess(&q.Perm, want) {
			ns.mu.Unlock()
			return 0, unix.EACCES
		}
	case flags&unix.O_CREAT == 0:
		ns.mu.Unlock()
		return 0, unix.ENOENT
	default:
		if q, err = t.newMqueue(a[3], mode&^t.umask()); err != nil {
			ns.mu.Unlock()
			return 0, err
		}
		if err := t.mqLimits(ns, q); err != nil {
			ns.mu.Unlock()
			return 0, err
		}
		ns.mqs[name] = q
		ns.touchMqDirLocked()
	}
	ns.mu.Unlock()
	m := &mqFD{Q: q, NS: ns, Read: acc != unix.O_WRONLY, Write: acc != unix.O_RDONLY, Path: "/" + name}
	f := vfs.NewImplFile(acc|flags&unix.O_NONBLOCK, &mqFile{M: m})
	defer f.DecRef()
	fd, err := t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	if err != nil {
		return 0, err
	}
	return uint64(fd), nil
}

// mqLimits checks a new queue against fs.mqueue.queues_max (ENOSPC,
// unless CAP_SYS_RESOURCE) and the bytes its user's queues may take
// (RLIMIT_MSGQUEUE, EMFILE), as Linux counts them. Queues are counted
// while they have a name (Linux: until the last descriptor closes).
//
// Preconditions: ns.mu is held.
func (t *Task) mqLimits(ns *ipcNamespace, q *mqueue) error {
	if len(ns.mqs) >= mqQueuesMax && !t.creds.capable(capSysResource) {
		return unix.ENOSPC
	}
	q.User = t.creds.UID
	used := q.bytes()
	for _, o := range ns.mqs {
		if o.User == q.User {
			used += o.bytes()
		}
	}
	t.tg.mu.Lock()
	limit := t.tg.limits[unix.RLIMIT_MSGQUEUE].Cur
	t.tg.mu.Unlock()
	if used > limit {
		return unix.EMFILE
	}
	return nil
}

// bytes is what the queue counts against RLIMIT_MSGQUEUE: Linux's
// mq_bytes (a struct msg_msg per message, a priority tree node per
// message up to MQ_PRIO_MAX, and the messages' room).
func (q *mqueue) bytes() uint64 {
	const msgMsgSize, treeNodeSize = 48, 48
	n := uint64(q.MaxMsg)
	return n*msgMsgSize + min(n, mqPrioMax)*treeNodeSize + n*uint64(q.MsgSize)
}

// newMqueue makes a queue with the attributes at attrAddr (0: the
// defaults).
func (t *Task) newMqueue(attrAddr uint64, mode uint32) (*mqueue, error) {
	q := &mqueue{Perm: t.newPerm(0, mode), MaxMsg: mqDefMaxMsg, MsgSize: mqDefMsgSize}
	q.Perm.Ctime = t.k.realtimeNow() / nsPerSec
	now := vfs.Now()
	q.Atime, q.Mtime, q.Ctime = now, now, now
	if attrAddr == 0 {
		return q, nil
	}
	var b [mqAttrSize]byte
	if err := t.tg.mm.CopyIn(attrAddr, b[:]); err != nil {
		return nil, err
	}
	q.MaxMsg = int64(binary.LittleEndian.Uint64(b[8:]))
	q.MsgSize = int64(binary.LittleEndian.Uint64(b[16:]))
	if q.MaxMsg <= 0 || q.MsgSize <= 0 || q.MaxMsg > mqHardMaxMsg || q.MsgSize > mqHardMsgSize {
		return nil, unix.EINVAL
	}
	if (q.MaxMsg > mqDefMaxMsg || q.MsgSize > mqDefMsgSize) && !t.creds.capable(capSysResource) {
		return nil, unix.EINVAL
	}
	return q, nil
}

func sysMqUnlink(t *Task, a *sysArgs) (uint64, error) {
	name, err := t.mqName(a[0])
	if err != nil {
		return 0, err
	}
	o := t.fsOwner()
	return 0, t.k.ipc().MqueueUnlink(name, o.Creds)
}

// mqOf returns the queue behind descriptor fd and whether the descriptor
// is non-blocking: EBADF for anything else.
func (t *Task) mqOf(fd int32) (*mqFD, bool, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, false, err
	}
	defer f.DecRef()
	var m *mqFD
	if mf, ok := f.Impl().(*mqFile); ok {
		m = mf.M
	} else if m, ok = t.tg.specialOf(f).(*mqFD); !ok {
		return nil, false, unix.EBADF
	}
	return m, f.StatusFlags()&unix.O_NONBLOCK != 0, nil
}

// mqNoDeadline is mqDeadline's answer for no timeout.
const mqNoDeadline = -1 << 63

// mqDeadline reads an absolute CLOCK_REALTIME timeout (0: none) as a
// kernel-monotonic deadline (mqNoDeadline: none).
func (t *Task) mqDeadline(addr uint64) (int64, error) {
	if addr == 0 {
		return mqNoDeadline, nil
	}
	abs, err := t.copyInTimespec(addr)
	if err != nil {
		return 0, err
	}
	return max(t.k.monotonicNow()+(abs-t.k.realtimeNow()), 0), nil
}

// mqWait waits for the namespace to change until deadline: ETIMEDOUT once
// it has passed.
func (t *Task) mqWait(ch <-chan struct{}, deadline int64) error {
	if deadline == mqNoDeadline {
		return t.block(ch)
	}
	timedOut, err := t.blockUntil(ch, deadline)
	if err != nil {
		return err
	}
	if timedOut {
		return unix.ETIMEDOUT
	}
	return nil
}

func sysMqTimedsend(t *Task, a *sysArgs) (uint64, error) {
	m, nonblock, err := t.mqOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	if !m.Write {
		return 0, unix.EBADF
	}
	size, prio := int64(a[2]), uint32(a[3])
	if prio >= mqPrioMax {
		return 0, unix.EINVAL
	}
	deadline, err := t.mqDeadline(a[4])
	if err != nil {
		return 0, err
	}
	q, ns := m.Q, m.NS
	if size < 0 || size > q.MsgSize {
		return 0, unix.EMSGSIZE
	}
	data := make([]byte, size)
	if err := t.tg.mm.CopyIn(a[1], data); err != nil {
		return 0, err
	}
	for {
		ns.mu.Lock()
		if int64(len(q.Msgs)) < q.MaxMsg {
			q.insert(mqMsg{Prio: prio, Data: data})
			now := vfs.Now()
			q.Atime, q.Mtime, q.Ctime = now, now, now
			var n mqNotice
			if len(q.Msgs) == 1 && q.receivers == 0 {
				n = q.takeNotifyLocked(t)
			}
			ns.notifyLocked()
			ns.mu.Unlock()
			n.send()
			return 0, nil
		}
		ch := ns.changedLocked()
		ns.mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := t.mqWait(ch, deadline); err != nil {
			return 0, err
		}
	}
}

// insert queues msg after every message of its priority or higher.
func (q *mqueue) insert(msg mqMsg) {
	i := len(q.Msgs)
	for i > 0 && q.Msgs[i-1].Prio < msg.Prio {
		i--
	}
	q.Msgs = append(q.Msgs, mqMsg{})
	copy(q.Msgs[i+1:], q.Msgs[i:])
	q.Msgs[i] = msg
}

// takeNotifyLocked consumes the registered notification, once a message
// arrived in an empty queue that no receiver waits on: what the caller
// sends after releasing the namespace's mu (nothing for none or
// SIGEV_NONE).
//
// Preconditions: the namespace's mu is held.
func (q *mqueue) takeNotifyLocked(sender *Task) mqNotice {
	tg := q.NotifyTG
	if tg == nil {
		return mqNotice{}
	}
	q.NotifyTG = nil
	switch q.NotifyKind {
	case sigevSignal:
		return mqNotice{tg: tg, info: sigInfo{Signo: q.NotifySigno, Code: siMesgq, Pid: sender.tg.tgid, UID: sender.creds.UID, Value: q.NotifyValue}}
	case sigevThread:
		return q.cookieNoticeLocked(mqNotifyWokenUp)
	}
	return mqNotice{}
}

func sysMqTimedreceive(t *Task, a *sysArgs) (uint64, error) {
	m, nonblock, err := t.mqOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	if !m.Read {
		return 0, unix.EBADF
	}
	q, ns := m.Q, m.NS
	if int64(a[2]) < q.MsgSize {
		return 0, unix.EMSGSIZE
	}
	deadline, err := t.mqDeadline(a[4])
	if err != nil {
		return 0, err
	}
	for {
		ns.mu.Lock()
		if len(q.Msgs) > 0 {
			msg := q.Msgs[0]
			if err := t.tg.mm.CopyOut(a[1], msg.Data); err != nil {
				ns.mu.Unlock()
				return 0, err
			}
			if a[3] != 0 {
				if err := t.copyOutUint32(a[3], msg.Prio); err != nil {
					ns.mu.Unlock()
					return 0, err
				}
			}
			q.Msgs = q.Msgs[1:]
			now := vfs.Now()
			q.Atime, q.Ctime = now, now
			ns.notifyLocked()
			ns.mu.Unlock()
			return uint64(len(msg.Data)), nil
		}
		ch := ns.changedLocked()
		if !nonblock {
			q.receivers++
		}
		ns.mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		err := t.mqWait(ch, deadline)
		ns.mu.Lock()
		q.receivers--
		ns.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
}

// sysMqNotify registers or removes (a NULL sigevent) the caller's
// notification, checking as Linux's do_mq_notify does and in its order:
// the sigevent, a SIGEV_THREAD's cookie and socket, then the queue.
func sysMqNotify(t *Task, a *sysArgs) (uint64, error) {
	var kind, signo int32
	var value uint64
	var sock *socket.Socket
	var cookie []byte
	if a[1] != 0 {
		var b [sigeventSize]byte
		if err := t.tg.mm.CopyIn(a[1], b[:]); err != nil {
			return 0, err
		}
		le := binary.LittleEndian
		value, signo, kind = le.Uint64(b[0:]), int32(le.Uint32(b[8:])), int32(le.Uint32(b[12:]))
		switch kind {
		case sigevNone:
		case sigevSignal:
			if !validSigno(signo) {
				return 0, unix.EINVAL
			}
		case sigevThread:
			var err error
			if sock, cookie, err = t.mqNotifySocket(signo, value); err != nil {
				return 0, err
			}
		default:
			return 0, unix.EINVAL
		}
	}
	m, _, err := t.mqOf(a.Int(0))
	if err != nil {
		return 0, err
	}
	q, ns := m.Q, m.NS
	ns.mu.Lock()
	if a[1] == 0 {
		var n mqNotice
		if q.NotifyTG == t.tg {
			n = q.removeNotifyLocked()
			now := vfs.Now()
			q.Atime, q.Ctime = now, now
		}
		ns.mu.Unlock()
		n.send()
		return 0, nil
	}
	defer ns.mu.Unlock()
	if q.NotifyTG != nil {
		return 0, unix.EBUSY
	}
	q.NotifyTG, q.NotifyKind, q.NotifySigno, q.NotifyValue = t.tg, kind, signo, value
	if kind != sigevSignal {
		q.NotifySigno, q.NotifyValue = 0, 0
	}
	q.NotifySock, q.NotifyCookie = sock, cookie
	now := vfs.Now()
	q.Atime, q.Ctime = now, now
	return 0, nil
}

// mqNotifySocket reads a SIGEV_THREAD registration: the cookie at addr
// and the netlink socket at descriptor fd (EBADF, ENOTSOCK, or EINVAL for
// another socket).
func (t *Task) mqNotifySocket(fd int32, addr uint64) (*socket.Socket, []byte, error) {
	cookie := make([]byte, mqCookieLen)
	if err := t.tg.mm.CopyIn(addr, cookie); err != nil {
		return nil, nil, err
	}
	f, s, err := t.getSocket(fd)
	if err != nil {
		return nil, nil, err
	}
	f.DecRef()
	if !s.IsNetlink() {
		return nil, nil, unix.EINVAL
	}
	return s, cookie, nil
}

func sysMqGetsetattr(t *Task, a *sysArgs) (uint64, error) {
	fd := a.Int(0)
	m, nonblock, err := t.mqOf(fd)
	if err != nil {
		return 0, err
	}
	var nb [mqAttrSize]byte
	if a[1] != 0 {
		if err := t.tg.mm.CopyIn(a[1], nb[:]); err != nil {
			return 0, err
		}
		if binary.LittleEndian.Uint64(nb[0:])&^uint64(unix.O_NONBLOCK) != 0 {
			return 0, unix.EINVAL
		}
	}
	if a[2] != 0 {
		m.NS.mu.Lock()
		var b [mqAttrSize]byte
		le := binary.LittleEndian
		if nonblock {
			le.PutUint64(b[0:], unix.O_NONBLOCK)
		}
		le.PutUint64(b[8:], uint64(m.Q.MaxMsg))
		le.PutUint64(b[16:], uint64(m.Q.MsgSize))
		le.PutUint64(b[24:], uint64(len(m.Q.Msgs)))
		m.NS.mu.Unlock()
		if err := t.tg.mm.CopyOut(a[2], b[:]); err != nil {
			return 0, err
		}
	}
	if a[1] != 0 {
		f, err := t.getFile(fd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef()
		fl := f.StatusFlags() &^ unix.O_NONBLOCK
		f.SetStatusFlags(fl | uint32(binary.LittleEndian.Uint64(nb[0:]))&unix.O_NONBLOCK)
	}
	return 0, nil
}
