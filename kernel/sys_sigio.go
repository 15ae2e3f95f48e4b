package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// File owners and their signals: fcntl's F_SETOWN, F_GETOWN, F_SETOWN_EX,
// F_GETOWN_EX, F_SETSIG, F_GETSIG, and F_NOTIFY (dnotify, whose watches
// live in vfs and send their signals through Kernel.SendSigio). O_ASYNC's
// signals are in sys_async.go.

// pollMsg is si_code POLL_MSG; pollMsgBand is the si_band Linux gives it
// (EPOLLIN | EPOLLRDNORM | EPOLLMSG).
const (
	pollMsg     = 3
	pollMsgBand = 0x441
)

// fcntlOwner serves the owner and signal commands of fcntl on f; ok is
// false for another command.
func (t *Task) fcntlOwner(f *vfs.File, fd int32, cmd int, arg uint64) (r uint64, ok bool, err error) {
	switch cmd {
	case unix.F_GETOWN:
		return uint64(int64(t.getOwn(f))), true, nil
	case unix.F_SETOWN:
		who := int32(arg)
		o := vfs.FileOwner{Type: vfs.OwnerPID, ID: who}
		if who < 0 {
			if who == -1<<31 {
				return 0, true, unix.EINVAL
			}
			o = vfs.FileOwner{Type: vfs.OwnerPGRP, ID: -who}
		}
		return 0, true, t.setOwn(f, o)
	case unix.F_GETOWN_EX:
		o := f.Owner()
		var b [8]byte
		binary.LittleEndian.PutUint32(b[0:], uint32(o.Type))
		binary.LittleEndian.PutUint32(b[4:], uint32(o.ID))
		return 0, true, t.tg.mm.CopyOut(arg, b[:])
	case unix.F_SETOWN_EX:
		var b [8]byte
		if err := t.tg.mm.CopyIn(arg, b[:]); err != nil {
			return 0, true, err
		}
		o := vfs.FileOwner{Type: int32(binary.LittleEndian.Uint32(b[0:])), ID: int32(binary.LittleEndian.Uint32(b[4:]))}
		if o.Type < vfs.OwnerTID || o.Type > vfs.OwnerPGRP {
			return 0, true, unix.EINVAL
		}
		return 0, true, t.setOwn(f, o)
	case unix.F_GETSIG:
		return uint64(f.SigioSignal()), true, nil
	case unix.F_SETSIG:
		sig := int64(arg)
		if sig < 0 || sig > numSignals {
			return 0, true, unix.EINVAL
		}
		f.SetSigioSignal(int32(sig))
		return 0, true, nil
	case unix.F_NOTIFY:
		if uint32(arg)&^vfs.DnMultishot != 0 {
			// Linux makes the caller's process the owner first.
			f.SetOwner(vfs.FileOwner{Type: vfs.OwnerPID, ID: t.tg.tgid})
		}
		return 0, true, f.Dnotify(t.tg.fdTable, fd, uint32(arg))
	}
	return 0, false, nil
}

// getOwn is F_GETOWN: the owner's ID (negative for a process group), 0 if
// there is none or it is gone.
func (t *Task) getOwn(f *vfs.File) int32 {
	o := f.Owner()
	if o.ID == 0 || len(t.k.sigioTargets(o)) == 0 {
		return 0
	}
	if o.Type == vfs.OwnerPGRP {
		return -o.ID
	}
	return o.ID
}

// setOwn sets f's owner: ESRCH if no thread, process or process group has
// that ID (0 removes the owner).
func (t *Task) setOwn(f *vfs.File, o vfs.FileOwner) error {
	if o.ID < 0 {
		return unix.ESRCH
	}
	if o.ID != 0 && !t.k.idInUse(o.ID) {
		return unix.ESRCH
	}
	f.SetOwner(o)
	return nil
}

// idInUse reports whether a thread, process group or session has ID id
// (Linux's find_vpid).
func (k *Kernel) idInUse(id int32) bool {
	for _, tg := range k.threadGroups() {
		tg.mu.Lock()
		pgid, sid := tg.pgid, tg.sid
		tg.mu.Unlock()
		if pgid == id || sid == id {
			return true
		}
	}
	return k.taskByID(id) != nil
}

// taskByID returns the thread with ID tid, or nil.
func (k *Kernel) taskByID(tid int32) *Task {
	k.tasks.mu.Lock()
	defer k.tasks.mu.Unlock()
	return k.tasks.tids[tid]
}

// sigioTarget is one recipient of a file's signal: a process, or one
// thread of it.
type sigioTarget struct {
	tg     *ThreadGroup
	thread *Task
}

// sigioTargets returns who owner o addresses: the thread with that ID
// (OwnerTID), the process of the thread with that ID (OwnerPID, as Linux
// finds it), or every process of the group (OwnerPGRP).
func (k *Kernel) sigioTargets(o vfs.FileOwner) []sigioTarget {
	if o.Type != vfs.OwnerPGRP {
		t := k.taskByID(o.ID)
		switch {
		case t == nil || t.tg == nil:
			return nil
		case o.Type == vfs.OwnerTID:
			return []sigioTarget{{tg: t.tg, thread: t}}
		default:
			return []sigioTarget{{tg: t.tg}}
		}
	}
	var out []sigioTarget
	for _, tg := range k.threadGroups() {
		tg.mu.Lock()
		pgid, exiting := tg.pgid, tg.exiting
		tg.mu.Unlock()
		if !exiting && pgid == o.ID {
			out = append(out, sigioTarget{tg: tg})
		}
	}
	return out
}

// SendSigio sends a file's signal to its owner (Linux's send_sigio with
// POLL_MSG, the one reason dnotify gives): SIGIO from the kernel when
// signo is 0, else signo with si_code POLL_MSG, si_band and si_fd.
// Implements vfs.SigioSender.
func (k *Kernel) SendSigio(o vfs.FileOwner, signo int32, fd int32) {
	info := sigInfo{Signo: int32(unix.SIGIO), Code: siKernel}
	if signo != 0 {
		raw := make([]byte, siginfoLen)
		binary.LittleEndian.PutUint64(raw[16:], pollMsgBand)
		binary.LittleEndian.PutUint32(raw[24:], uint32(fd))
		info = sigInfo{Signo: signo, Code: pollMsg, Raw: raw}
	}
	for _, r := range k.sigioTargets(o) {
		r.tg.sendSignal(info, r.thread)
	}
}
