package vfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Directory notification (fcntl F_NOTIFY, Linux's dnotify): a process asks
// for a signal when something happens in a directory it has open. The
// watches hang on the same Notifier as inotify's and are fed by the same
// notify functions (notify_events.go); each event a directory's inotify
// watches would see is matched against its dnotify watches too, and a
// match sends the owner of the watch's open file description a signal
// (SIGIO, or the one F_SETSIG chose) through the kernel's SigioSender.

// Directory notification bits (linux/fcntl.h).
const (
	DnAccess    = 0x1
	DnModify    = 0x2
	DnCreate    = 0x4
	DnDelete    = 0x8
	DnRename    = 0x10
	DnAttrib    = 0x20
	DnMultishot = 0x80000000
)

// Owner types of F_SETOWN_EX (linux/fcntl.h's f_owner_ex).
const (
	OwnerTID  = 0 // F_OWNER_TID: one thread
	OwnerPID  = 1 // F_OWNER_PID: a process
	OwnerPGRP = 2 // F_OWNER_PGRP: a process group
)

// FileOwner is who an open file description signals (F_SETOWN,
// F_SETOWN_EX): a thread, a process or a process group, by the ID the
// sandbox knows it by. ID 0 is no owner.
//
// +stateify savable
type FileOwner struct {
	Type int32
	ID   int32
}

// SigioSender sends the signals of open file descriptions (the kernel):
// signo to owner about descriptor fd, SIGIO with SI_KERNEL when signo is
// 0, else signo with si_code POLL_MSG, si_band and si_fd (Linux's
// send_sigio). It is called without any vfs lock held.
type SigioSender interface {
	SendSigio(owner FileOwner, signo int32, fd int32)
}

// SetSigioSender makes s send the signals of the sandbox's dnotify
// watches. The kernel calls it when it is made and after a restore.
func (mt *MountTable) SetSigioSender(s SigioSender) {
	n := mt.notifier
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sigio = s
}

// fileSigio is the signal state of an open file description; its fields
// are accessed atomically (dnotify reads them with the Notifier's lock
// held).
//
// +stateify savable
type fileSigio struct {
	// owner is FileOwner's Type<<32 | uint32(ID).
	owner atomic.Uint64
	// signo is F_SETSIG's signal, 0 for SIGIO.
	signo atomic.Int32
	// asyncFD is the descriptor through which O_ASYNC was last set, the
	// si_fd of its signals.
	asyncFD atomic.Int32
	// asyncReady is the readiness (POLLIN, POLLOUT) O_ASYNC last
	// signalled from, so that a change not yet signalled when the file
	// was saved is signalled after the restore.
	asyncReady atomic.Uint32
}

// AsyncReady returns the readiness O_ASYNC last signalled from.
func (f *File) AsyncReady() uint32 { return f.sigio.asyncReady.Load() }

// SetAsyncReady records the readiness O_ASYNC signalled from.
func (f *File) SetAsyncReady(r uint32) { f.sigio.asyncReady.Store(r) }

// HasAsync reports whether O_ASYNC means anything for f: pipes, FIFOs,
// sockets, terminals and inotify descriptors signal readiness changes;
// for other files (those without fasync in Linux) F_SETFL drops the flag
// and FIOASYNC fails with ENOTTY.
func (f *File) HasAsync() bool {
	switch f.impl.(type) {
	case *pipeReader, *pipeWriter, *fifoFile, *implFile, *ptyMaster, *ptySlave, *inotifyFile, *stdioFile:
		return !f.isPath()
	}
	return false
}

// AsyncFD returns the descriptor through which O_ASYNC was last set.
func (f *File) AsyncFD() int32 { return f.sigio.asyncFD.Load() }

// SetAsyncFD records the descriptor through which O_ASYNC is set.
func (f *File) SetAsyncFD(fd int32) { f.sigio.asyncFD.Store(fd) }

// Owner returns f's owner (F_GETOWN, F_GETOWN_EX).
func (f *File) Owner() FileOwner {
	v := f.sigio.owner.Load()
	return FileOwner{Type: int32(v >> 32), ID: int32(uint32(v))}
}

// SetOwner sets f's owner (F_SETOWN, F_SETOWN_EX, and F_NOTIFY, which
// makes the caller's process the owner).
func (f *File) SetOwner(o FileOwner) {
	f.sigio.owner.Store(uint64(uint32(o.Type))<<32 | uint64(uint32(o.ID)))
}

// SigioSignal returns F_GETSIG's signal (0: SIGIO).
func (f *File) SigioSignal() int32 { return f.sigio.signo.Load() }

// SetSigioSignal sets F_SETSIG's signal (0: SIGIO).
func (f *File) SetSigioSignal(signo int32) { f.sigio.signo.Store(signo) }

// dnotifyWatch is one F_NOTIFY request: an open directory's description,
// through one descriptor table, asking for some events.
//
// +stateify savable
type dnotifyWatch struct {
	// file is the directory's open description; the watch holds no
	// reference: it goes when a descriptor of it is closed in table.
	// Immutable.
	file *File
	// table is the descriptor table the request came through (Linux's
	// fl_owner); immutable.
	table *FDTable
	// key is the directory; immutable.
	key inodeKey
	// fd is the descriptor the signal names (si_fd), mask the DN_* bits;
	// protected by the Notifier's mu.
	fd   int32
	mask uint32
}

// sigioMsg is a signal a dnotify watch sends, held until the Notifier's
// lock is released.
type sigioMsg struct {
	owner FileOwner
	signo int32
	fd    int32
}

// Dnotify implements fcntl(fd, F_NOTIFY, arg) on f, reached through
// descriptor fd of table: arg without event bits removes the request of
// (f, table); otherwise f must be a directory (ENOTDIR) and the events
// are added to its request, or a new request is made. The caller makes
// itself f's owner, as Linux does.
func (f *File) Dnotify(table *FDTable, fd int32, arg uint32) error {
	n := f.notifier
	if arg&^DnMultishot == 0 {
		if n != nil {
			n.dnotifyFlush(f, table)
		}
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	if n == nil {
		// A directory of the sentry's own (/proc, /dev): nothing in it
		// changes through the calls that report events.
		return nil
	}
	key := keyOf(st)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.dnotify {
		if w.file == f && w.table == table {
			w.fd = fd
			w.mask |= arg
			return nil
		}
	}
	n.dnotify = append(n.dnotify, &dnotifyWatch{file: f, table: table, key: key, fd: fd, mask: arg})
	n.nwatches.Add(1)
	return nil
}

// dnotifyClosed removes the dnotify request f made through table when one
// of its descriptors there is closed, as Linux's dnotify_flush at every
// close.
func (f *File) dnotifyClosed(table *FDTable) {
	if n := f.notifier; n.active() {
		n.dnotifyFlush(f, table)
	}
}

func (n *Notifier) dnotifyFlush(f *File, table *FDTable) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, w := range n.dnotify {
		if w.file == f && w.table == table {
			n.removeDnotifyLocked(i)
			return
		}
	}
}

// removeDnotifyLocked removes the i-th dnotify watch.
//
// Preconditions: n.mu is held.
func (n *Notifier) removeDnotifyLocked(i int) {
	n.dnotify = append(n.dnotify[:i:i], n.dnotify[i+1:]...)
	n.nwatches.Add(-1)
}

// dnotifyBits maps an inotify event to the dnotify bits it matches
// (Linux's convert_arg the other way round).
func dnotifyBits(mask uint32) uint32 {
	var dn uint32
	if mask&InAccess != 0 {
		dn |= DnAccess
	}
	if mask&InModify != 0 {
		dn |= DnModify
	}
	if mask&InAttrib != 0 {
		dn |= DnAttrib
	}
	if mask&(InCreate|InMovedTo) != 0 {
		dn |= DnCreate
	}
	if mask&(InDelete|InMovedFrom) != 0 {
		dn |= DnDelete
	}
	return dn
}

// dnotifyLocked matches an event on directory key (dn: its DN_* bits)
// against the dnotify watches of key, queues a signal for each match and
// drops the matched watches without DN_MULTISHOT.
//
// Preconditions: n.mu is held.
func (n *Notifier) dnotifyLocked(key inodeKey, dn uint32) {
	if dn == 0 {
		return
	}
	for i := 0; i < len(n.dnotify); i++ {
		w := n.dnotify[i]
		if w.key != key || w.mask&dn == 0 {
			continue
		}
		n.outbox = append(n.outbox, sigioMsg{owner: w.file.Owner(), signo: w.file.SigioSignal(), fd: w.fd})
		if w.mask&DnMultishot == 0 {
			n.removeDnotifyLocked(i)
			i--
		}
	}
}

// dnotifyRename reports a rename inside directory dir to its dnotify
// watches (DN_RENAME: Linux reports a rename to dnotify only when the
// file stays in the same directory).
func (n *Notifier) dnotifyRename(dir inodeKey) {
	n.mu.Lock()
	defer n.unlock()
	n.dnotifyLocked(dir, DnRename)
}

// unlock releases n.mu, then sends the signals dnotify watches queued
// while it was held.
func (n *Notifier) unlock() {
	out, s := n.outbox, n.sigio
	n.outbox = nil
	n.mu.Unlock()
	if s == nil {
		return
	}
	for _, m := range out {
		if m.owner.ID != 0 {
			s.SendSigio(m.owner, m.signo, m.fd)
		}
	}
}
