package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// System V message queues: msgget, msgsnd, msgrcv and msgctl with Linux's
// default limits.

// Message queue limits (Linux's defaults) and flags (linux/msg.h).
const (
	msgMax    = 8192  // largest message
	msgMNB    = 16384 // default bytes per queue
	msgNoerr  = 0o10000
	msgExcept = 0o20000
	msgCopy   = 0o40000
	// msqidDsSize is sizeof(struct msqid64_ds).
	msqidDsSize = 120
)

// msgQueue is one message queue.
//
// +stateify savable
type msgQueue struct {
	Perm ipcPerm
	Msgs []sysvMsg
	// Bytes is the text bytes queued; QBytes the most allowed.
	Bytes, QBytes uint64
	// Stime, Rtime: last msgsnd and msgrcv (seconds); Lspid, Lrpid: their
	// processes.
	Stime, Rtime int64
	Lspid, Lrpid int32
}

func (q *msgQueue) perm() *ipcPerm { return &q.Perm }

// sysvMsg is one queued message.
//
// +stateify savable
type sysvMsg struct {
	Type int64
	Text []byte
}

func sysMsgget(t *Task, a *sysArgs) (uint64, error) {
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ipcGet(t, ns, &ns.msgIDs, msgMNI, ns.msgs, a.Int(0), uint32(a[1]), func(*msgQueue) error { return nil },
		func(p ipcPerm) (*msgQueue, error) { return &msgQueue{Perm: p, QBytes: msgMNB}, nil })
}

// msgWait waits for the namespace to change after a msgsnd or msgrcv found
// it could not proceed.
func (t *Task) msgWait(ch <-chan struct{}) error {
	if err := t.block(ch); err != nil {
		return errRestartNoHand // EINTR with a handler, as Linux
	}
	return nil
}

func sysMsgsnd(t *Task, a *sysArgs) (uint64, error) {
	id, addr, size, flags := a.Int(0), a[1], int64(a[2]), uint32(a[3])
	if size < 0 || size > msgMax || id < 0 {
		return 0, unix.EINVAL
	}
	raw := make([]byte, 8+size)
	if err := t.tg.mm.CopyIn(addr, raw); err != nil {
		return 0, err
	}
	typ := int64(binary.LittleEndian.Uint64(raw))
	if typ < 1 {
		return 0, unix.EINVAL
	}
	return t.msgQueueOp(id, 2, flags&ipcNowait != 0, unix.EAGAIN, func(q *msgQueue) (uint64, bool, error) {
		if q.Bytes+uint64(size) > q.QBytes || uint64(len(q.Msgs))+1 > q.QBytes {
			return 0, false, nil
		}
		q.Msgs = append(q.Msgs, sysvMsg{Type: typ, Text: raw[8:]})
		q.Bytes += uint64(size)
		q.Stime, q.Lspid = t.k.realtimeNow()/nsPerSec, t.tg.tgid
		return 0, true, nil
	})
}

// msgQueueOp is the loop msgsnd and msgrcv share. With the namespace
// locked it finds queue id, checks the caller's access (want as for
// ipcAccess) and runs try (ns.mu held), which reports done when the call
// ends with its result; a success wakes the other waiters. Otherwise the call fails with
// busy under IPC_NOWAIT or waits for the namespace to change and tries
// again; a queue gone by then is EIDRM.
func (t *Task) msgQueueOp(id int32, want uint32, nowait bool, busy error, try func(q *msgQueue) (uint64, bool, error)) (uint64, error) {
	ns := t.k.ipc()
	for first := true; ; first = false {
		ns.mu.Lock()
		q, err := ipcLookup(ns.msgs, id)
		if err != nil {
			ns.mu.Unlock()
			if !first {
				return 0, unix.EIDRM
			}
			return 0, err
		}
		if !t.ipcAccess(&q.Perm, want) {
			ns.mu.Unlock()
			return 0, unix.EACCES
		}
		if n, done, err := try(q); done {
			if err == nil {
				ns.notifyLocked()
			}
			ns.mu.Unlock()
			return n, err
		}
		ch := ns.changedLocked()
		ns.mu.Unlock()
		if nowait {
			return 0, busy
		}
		if err := t.msgWait(ch); err != nil {
			return 0, err
		}
	}
}

// pick returns the index of the message msgrcv takes, or -1.
func (q *msgQueue) pick(typ int64, except bool) int {
	best := -1
	for i, m := range q.Msgs {
		switch {
		case typ == 0:
			return i
		case typ > 0 && !except && m.Type == typ, typ > 0 && except && m.Type != typ:
			return i
		case typ < 0 && m.Type <= -typ && (best < 0 || m.Type < q.Msgs[best].Type):
			best = i
		}
	}
	return best
}

func sysMsgrcv(t *Task, a *sysArgs) (uint64, error) {
	id, addr, size, typ, flags := a.Int(0), a[1], int64(a[2]), int64(a[3]), uint32(a[4])
	if size < 0 || id < 0 || flags&msgCopy != 0 {
		return 0, unix.EINVAL
	}
	return t.msgQueueOp(id, 4, flags&ipcNowait != 0, unix.ENOMSG, func(q *msgQueue) (uint64, bool, error) {
		i := q.pick(typ, flags&msgExcept != 0)
		if i < 0 {
			return 0, false, nil
		}
		m := q.Msgs[i]
		if int64(len(m.Text)) > size && flags&msgNoerr == 0 {
			return 0, true, unix.E2BIG
		}
		text := m.Text[:min(int64(len(m.Text)), size)]
		out := make([]byte, 8+len(text))
		binary.LittleEndian.PutUint64(out, uint64(m.Type))
		copy(out[8:], text)
		if err := t.tg.mm.CopyOut(addr, out); err != nil {
			return 0, true, err
		}
		q.Msgs = append(q.Msgs[:i], q.Msgs[i+1:]...)
		q.Bytes -= uint64(len(m.Text))
		q.Rtime, q.Lrpid = t.k.realtimeNow()/nsPerSec, t.tg.tgid
		return uint64(len(text)), true, nil
	})
}

// statBytes is the queue's struct msqid64_ds.
func (q *msgQueue) statBytes() []byte {
	b := make([]byte, msqidDsSize)
	putPerm(b, &q.Perm)
	le := binary.LittleEndian
	le.PutUint64(b[48:], uint64(q.Stime))
	le.PutUint64(b[56:], uint64(q.Rtime))
	le.PutUint64(b[64:], uint64(q.Perm.Ctime))
	le.PutUint64(b[72:], q.Bytes)
	le.PutUint64(b[80:], uint64(len(q.Msgs)))
	le.PutUint64(b[88:], q.QBytes)
	le.PutUint32(b[96:], uint32(q.Lspid))
	le.PutUint32(b[100:], uint32(q.Lrpid))
	return b
}

func sysMsgctl(t *Task, a *sysArgs) (uint64, error) {
	id, cmd, arg := a.Int(0), a.Int(1)&^ipc64, a[2]
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	switch cmd {
	case ipcInfo, msgInfoCmd:
		return t.msgInfo(ns, cmd, arg)
	case msgStatCmd, msgStatAnyCmd:
		q, err := ipcStatAt(t, ns.msgs, id, cmd == msgStatAnyCmd)
		if err != nil {
			return 0, err
		}
		return uint64(q.Perm.ID), t.tg.mm.CopyOut(arg, q.statBytes())
	}
	q, err := ipcLookup(ns.msgs, id)
	if err != nil {
		return 0, err
	}
	switch cmd {
	case ipcStat:
		if !t.ipcAccess(&q.Perm, 4) {
			return 0, unix.EACCES
		}
		return 0, t.tg.mm.CopyOut(arg, q.statBytes())
	case ipcSet:
		b := make([]byte, msqidDsSize)
		if err := t.tg.mm.CopyIn(arg, b); err != nil {
			return 0, err
		}
		if !t.ipcOwner(&q.Perm) {
			return 0, unix.EPERM
		}
		qbytes := binary.LittleEndian.Uint64(b[88:])
		if qbytes > msgMNB && !t.creds.capable(capSysResource) {
			return 0, unix.EPERM
		}
		setPerm(&q.Perm, b)
		q.QBytes = qbytes
		q.Perm.Ctime = t.k.realtimeNow() / nsPerSec
	case ipcRmid:
		if !t.ipcOwner(&q.Perm) {
			return 0, unix.EPERM
		}
		delete(ns.msgs, id%ipcMNI)
	default:
		return 0, unix.EINVAL
	}
	ns.notifyLocked()
	return 0, nil
}
