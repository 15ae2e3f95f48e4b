package kernel

import (
	"snapshotter/kernel/vfs"

	"golang.org/x/sys/unix"
)

// Terminals (vfs.TTY, the sentry's ptys) know their session and foreground
// process group; the kernel knows processes. This file joins them: the
// controlling terminal of a process is the TTY whose session is the
// process's (MountTable.ControllingTTY), so setsid loses it and fork keeps
// it without a field of the process. The kernel checks job control before
// reads, writes and ioctls of a terminal, serves the ioctls that need the
// caller (TIOCSCTTY, TIOCNOTTY, TIOCGPGRP, TIOCSPGRP, TIOCGSID,
// TIOCGPTPEER) and signals process groups for the terminals (jobControl).
// A non-leader's TIOCNOTTY detaches only the caller (ThreadGroup.noCtty):
// it and the children it forks have no controlling terminal until setsid.

// jobControl is the kernel as vfs.JobControl.
type jobControl struct{ k *Kernel }

// SignalGroup implements vfs.JobControl.SignalGroup.
func (j jobControl) SignalGroup(pgrp int32, sig unix.Signal) {
	info := sigInfo{Signo: int32(sig), Code: siKernel}
	for _, tg := range j.k.threadGroups() {
		tg.mu.Lock()
		in := tg.pgid == pgrp && !tg.exiting
		tg.mu.Unlock()
		if in {
			tg.sendSignal(info, nil)
		}
	}
}

// Hangup implements vfs.JobControl.Hangup.
func (j jobControl) Hangup(sid int32) {
	for _, tg := range j.k.threadGroups() {
		tg.mu.Lock()
		leader := tg.tgid == sid && tg.sid == sid && !tg.exiting
		tg.mu.Unlock()
		if leader {
			tg.sendSignal(sigInfo{Signo: int32(unix.SIGHUP), Code: siKernel}, nil)
			tg.sendSignal(sigInfo{Signo: int32(unix.SIGCONT), Code: siKernel}, nil)
		}
	}
}

// ctty returns the process's controlling terminal, or nil.
func (t *Task) ctty() *vfs.TTY {
	t.tg.mu.Lock()
	sid, none := t.tg.sid, t.tg.noCtty
	t.tg.mu.Unlock()
	if none {
		return nil
	}
	return t.k.controllingTTY(sid)
}

// controllingTTY returns the controlling terminal of session sid, or nil.
func (k *Kernel) controllingTTY(sid int32) *vfs.TTY {
	if k.root == nil {
		return nil
	}
	return k.root.Mounts().ControllingTTY(sid)
}

// isCtty reports whether tty is the caller's controlling terminal.
func (t *Task) isCtty(tty *vfs.TTY) bool {
	sid, _ := tty.Session()
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return sid != 0 && sid == t.tg.sid && !t.tg.noCtty
}

// ttyOpened finishes an open: /dev/tty becomes the caller's controlling
// terminal (ENXIO without one), and a session leader without one that
// opens a slave without O_NOCTTY acquires it, as on Linux. It consumes f's
// reference and returns the File to install.
func (t *Task) ttyOpened(f *vfs.File, flags uint32) (*vfs.File, error) {
	if f.IsControllingTTYAlias() && flags&unix.O_PATH == 0 {
		f.DecRef()
		tty := t.ctty()
		if tty == nil {
			return nil, unix.ENXIO
		}
		return tty.OpenPeer(flags, true)
	}
	tty, master := f.TTY()
	if tty == nil || master || flags&unix.O_NOCTTY != 0 {
		return f, nil
	}
	t.tg.mu.Lock()
	sid, pgid, leader := t.tg.sid, t.tg.pgid, t.tg.sid == t.tg.tgid
	t.tg.mu.Unlock()
	if cur, _ := tty.Session(); leader && cur == 0 && t.k.controllingTTY(sid) == nil {
		tty.SetSession(sid, pgid)
	}
	return f, nil
}

// ttyCheck is Linux's job control check for a terminal access by a
// process of a background group of the terminal's session: sig is
// SIGTTIN (reads) or SIGTTOU (writes with TOSTOP, changes). A reader
// that ignores or blocks SIGTTIN gets EIO; a writer that does proceeds.
// A process of an orphaned group gets EIO: nobody would continue it.
// Otherwise the group gets sig and the call restarts after it.
func (t *Task) ttyCheck(f *vfs.File, sig unix.Signal) error {
	tty, master := f.TTY()
	if tty == nil || master {
		return nil
	}
	sid, fg := tty.Session()
	tg := t.tg
	tg.mu.Lock()
	if sid == 0 || sid != tg.sid || tg.noCtty || fg == 0 || fg == tg.pgid {
		tg.mu.Unlock()
		return nil
	}
	pgid := tg.pgid
	ignored := tg.sigs.Actions[sig-1].Handler == sigIGN || t.sig.Mask&sigBit(int(sig)) != 0
	tg.mu.Unlock()
	switch {
	case ignored && sig == unix.SIGTTIN:
		return unix.EIO
	case ignored:
		return nil
	case t.k.orphanedPgrp(pgid, sid):
		return unix.EIO
	}
	jobControl{t.k}.SignalGroup(pgid, sig)
	return errRestartSys
}

// ttyWriteCheck is ttyCheck for a write: only with TOSTOP.
func (t *Task) ttyWriteCheck(f *vfs.File) error {
	if tty, master := f.TTY(); tty == nil || master || !tty.StopsBackgroundWrites() {
		return nil
	}
	return t.ttyCheck(f, unix.SIGTTOU)
}

// ttyChangeIoctls are the requests that change a terminal, which a
// background process may not make without SIGTTOU.
var ttyChangeIoctls = map[uint32]bool{
	unix.TCSETS: true, unix.TCSETSW: true, unix.TCSETSF: true, unix.TCFLSH: true,
	unix.TCXONC: true, unix.TCSBRK: true, unix.TCSBRKP: true, unix.TIOCSPGRP: true,
}

// ttyIoctl serves the requests of a terminal that need the caller; done is
// false for the others, which File.Ioctl serves.
func (t *Task) ttyIoctl(f *vfs.File, tty *vfs.TTY, master bool, cmd uint32, a *sysArgs) (n uint64, done bool, err error) {
	if ttyChangeIoctls[cmd] {
		if err := t.ttyCheck(f, unix.SIGTTOU); err != nil {
			return 0, true, err
		}
	}
	switch cmd {
	case unix.TIOCSCTTY:
		return 0, true, t.tiocsctty(tty, a[2] == 1)
	case unix.TIOCNOTTY:
		if !t.isCtty(tty) {
			return 0, true, unix.ENOTTY
		}
		t.tg.mu.Lock()
		leader := t.tg.sid == t.tg.tgid
		t.tg.noCtty = !leader
		t.tg.mu.Unlock()
		if leader {
			t.k.root.Mounts().SessionEnded(t.tg.sid)
		}
		return 0, true, nil
	case unix.TIOCGPGRP, unix.TIOCGSID:
		if !master && !t.isCtty(tty) {
			return 0, true, unix.ENOTTY
		}
		sid, pgrp := tty.Session()
		v := pgrp
		if cmd == unix.TIOCGSID {
			if sid == 0 {
				return 0, true, unix.ENOTTY
			}
			v = sid
		}
		var b [4]byte
		b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return 0, true, t.tg.mm.CopyOut(a[2], b[:])
	case unix.TIOCSPGRP:
		return 0, true, t.tiocspgrp(tty, a[2])
	case unix.TIOCGPTPEER:
		if !master {
			return 0, true, unix.ENOTTY
		}
		flags := uint32(a[2])
		if flags&^uint32(unix.O_ACCMODE|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC) != 0 {
			return 0, true, unix.EINVAL
		}
		peer, err := tty.OpenPeer(flags&^unix.O_CLOEXEC, false)
		if err != nil {
			return 0, true, err
		}
		defer peer.DecRef()
		n, err := fdResult(t.tg.fdTable.NewFD(0, peer, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}))
		return n, true, err
	}
	return 0, false, nil
}

// tiocsctty makes tty the controlling terminal of the caller's session;
// steal takes it from another session (with CAP_SYS_ADMIN).
func (t *Task) tiocsctty(tty *vfs.TTY, steal bool) error {
	t.tg.mu.Lock()
	sid, pgid, leader := t.tg.sid, t.tg.pgid, t.tg.sid == t.tg.tgid
	t.tg.mu.Unlock()
	cur, _ := tty.Session()
	switch {
	case leader && cur == sid:
		return nil
	case !leader || t.k.controllingTTY(sid) != nil:
		return unix.EPERM
	case cur != 0 && !(steal && t.creds.capable(capSysAdmin)):
		return unix.EPERM
	}
	tty.SetSession(sid, pgid)
	return nil
}

// tiocspgrp makes the process group at addr the terminal's foreground
// group: one of the caller's session, on the caller's controlling terminal.
func (t *Task) tiocspgrp(tty *vfs.TTY, addr uint64) error {
	if !t.isCtty(tty) {
		return unix.ENOTTY
	}
	var b [4]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return err
	}
	pgrp := int32(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
	if pgrp < 0 {
		return unix.EINVAL
	}
	sid, _ := tty.Session()
	found, same := false, false
	for _, tg := range t.k.threadGroups() {
		tg.mu.Lock()
		if tg.pgid == pgrp && !tg.exiting {
			found = true
			same = same || tg.sid == sid
		}
		tg.mu.Unlock()
	}
	switch {
	case !found:
		return unix.ESRCH
	case !same:
		return unix.EPERM
	}
	tty.SetForeground(pgrp)
	return nil
}

// sessionLeaderExited lets the controlling terminal of a session whose
// leader tg exits go (Linux's disassociate_ctty on exit).
func (k *Kernel) sessionLeaderExited(tg *ThreadGroup) {
	tg.mu.Lock()
	sid := tg.sid
	leader := sid == tg.tgid
	tg.mu.Unlock()
	if leader && k.root != nil {
		k.root.Mounts().SessionEnded(sid)
	}
}

// orphanedPgrp reports whether process group pgid of session sid is
// orphaned: no member has a parent in another group of the session (POSIX;
// unlike Linux, a parent that is the sandbox's init counts, as the host's
// init would not be a program's parent natively).
func (k *Kernel) orphanedPgrp(pgid, sid int32) bool {
	tgs := k.threadGroups()
	ts := k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, tg := range tgs {
		tg.mu.Lock()
		in := tg.pgid == pgid && !tg.exiting
		tg.mu.Unlock()
		p := tg.parent
		if !in || p == nil {
			continue
		}
		p.mu.Lock()
		connects := p.pgid != pgid && p.sid == sid
		p.mu.Unlock()
		if connects {
			return false
		}
	}
	return true
}
