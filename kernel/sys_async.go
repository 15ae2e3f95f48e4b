package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// O_ASYNC: a file description with the flag set (F_SETFL or FIOASYNC)
// signals its owner (F_SETOWN, F_SETOWN_EX) when input becomes available
// or output possible. Files tell poll and epoll of readiness changes only
// through channels (vfs.File.Watch), so each such description gets a
// watcher goroutine that waits on them and compares readiness before and
// after: a signal goes out when POLLIN or POLLOUT turns on, or for a pipe
// when its other end's last descriptor closes. Linux signals a pipe's
// reader at every write and its writer at every read; here a write to a
// pipe that already holds data signals nothing more. Other files (regular
// files, devices, and the kernel's eventfd, epoll, signalfd, timerfd,
// pidfd and message queues) have no fasync in Linux: F_SETFL does not
// keep the flag (vfs.File.HasAsync).
//
// The watcher holds no reference to the file: it ends when the last
// reference goes (vfs.File.Released) or O_ASYNC is cleared. The flag,
// the owner, the signal, the descriptor and the readiness last signalled
// from are saved with the file; a restore starts the watchers again
// (rearmAsync), and they signal what changed before the save but was not
// signalled yet.

// si_code and si_band of O_ASYNC's signals (Linux's band_table).
const (
	pollIn      = 1
	pollOut     = 2
	pollInBand  = 0x41  // EPOLLIN | EPOLLRDNORM
	pollOutBand = 0x304 // EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND
)

// setAsync sets or clears f's O_ASYNC, as F_SETFL or FIOASYNC through
// descriptor fd, and starts or stops its watcher.
func (k *Kernel) setAsync(f *vfs.File, fd int32, on bool) {
	fl := f.StatusFlags() &^ unix.O_ASYNC
	if on {
		fl |= unix.O_ASYNC
		f.SetAsyncFD(fd)
		f.SetAsyncReady(asyncReadiness(f))
	}
	f.SetStatusFlags(fl)
	if on {
		k.armAsync(f)
		return
	}
	k.asyncMu.Lock()
	defer k.asyncMu.Unlock()
	if stop, ok := k.asyncs[f]; ok {
		close(stop)
		delete(k.asyncs, f)
	}
}

// ttyAsyncOwner gives a terminal without an owner one as O_ASYNC is set
// through it, as Linux's tty_fasync: a slave's foreground process group
// if it has one, else the caller's process.
func (t *Task) ttyAsyncOwner(f *vfs.File) {
	tty, master := f.TTY()
	if tty == nil || f.Owner().ID != 0 {
		return
	}
	if _, pgrp := tty.Session(); !master && pgrp != 0 {
		f.SetOwner(vfs.FileOwner{Type: vfs.OwnerPGRP, ID: pgrp})
		return
	}
	f.SetOwner(vfs.FileOwner{Type: vfs.OwnerPID, ID: t.tg.tgid})
}

// armAsync starts f's watcher unless it runs.
func (k *Kernel) armAsync(f *vfs.File) {
	k.asyncMu.Lock()
	defer k.asyncMu.Unlock()
	if _, ok := k.asyncs[f]; ok {
		return
	}
	if k.asyncs == nil {
		k.asyncs = make(map[*vfs.File]chan struct{})
	}
	stop := make(chan struct{})
	k.asyncs[f] = stop
	// S/R-SAFE: the watcher only reads readiness and sends signals, after
	// waiting out any pause (waitUnpaused); it is not saved, and a
	// restore starts it again from the saved flag.
	go k.watchAsync(f, stop, f.Released())
}

// watchAsync is f's watcher: it signals f's owner each time POLLIN or
// POLLOUT turns on, until stop or released is closed. The readiness it
// compares with is saved with f (AsyncReady), and recorded only after the
// signal is sent: a watcher held back by a save has the restored one
// send its signal.
func (k *Kernel) watchAsync(f *vfs.File, stop <-chan struct{}, released <-chan struct{}) {
	for {
		ch, done := f.Watch(unix.POLLIN | unix.POLLOUT)
		if done == nil {
			done = func() {}
		}
		cur := asyncReadiness(f)
		if on := asyncEvents(cur &^ f.AsyncReady()); on != 0 {
			k.waitUnpaused()
			k.sendAsync(f, on)
		}
		f.SetAsyncReady(cur)
		if ch == nil {
			done()
			return
		}
		select {
		case <-ch:
		case <-stop:
		case <-released:
		}
		done()
		select {
		case <-stop:
			return
		case <-released:
			k.asyncMu.Lock()
			delete(k.asyncs, f)
			k.asyncMu.Unlock()
			return
		default:
		}
	}
}

// asyncReadiness is the readiness O_ASYNC follows: POLLIN and POLLOUT,
// and for a pipe the other end's last close (POLLHUP for a reader,
// POLLERR for a writer), which Linux signals as POLL_IN and POLL_OUT.
func asyncReadiness(f *vfs.File) uint32 {
	r := f.Readiness(unix.POLLIN | unix.POLLOUT)
	out := r & (unix.POLLIN | unix.POLLOUT)
	if f.IsPipe() {
		out |= r & (unix.POLLHUP | unix.POLLERR)
	}
	return out
}

// asyncEvents maps the readiness bits that turned on to the POLLIN and
// POLLOUT they are signalled as.
func asyncEvents(on uint32) uint32 {
	var ev uint32
	if on&(unix.POLLIN|unix.POLLHUP) != 0 {
		ev |= unix.POLLIN
	}
	if on&(unix.POLLOUT|unix.POLLERR) != 0 {
		ev |= unix.POLLOUT
	}
	return ev
}

// waitUnpaused returns once no Pause is in force, so that a watcher does
// not change a process's signals while it is being saved.
func (k *Kernel) waitUnpaused() {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	for k.stopCount > 0 {
		k.stopCond.Wait()
	}
}

// sendAsync sends f's signal for the readiness bits that turned on:
// SIGIO (SI_KERNEL) without F_SETSIG, else the F_SETSIG signal with
// si_code POLL_IN or POLL_OUT, si_band and si_fd, once per kind.
func (k *Kernel) sendAsync(f *vfs.File, on uint32) {
	if f.StatusFlags()&unix.O_ASYNC == 0 {
		return
	}
	o, signo := f.Owner(), f.SigioSignal()
	if o.ID == 0 {
		return
	}
	var infos []sigInfo
	if signo == 0 {
		infos = append(infos, sigInfo{Signo: int32(unix.SIGIO), Code: siKernel})
	} else {
		for _, e := range []struct {
			bit        uint32
			code, band int32
		}{{unix.POLLIN, pollIn, pollInBand}, {unix.POLLOUT, pollOut, pollOutBand}} {
			if on&e.bit == 0 {
				continue
			}
			raw := make([]byte, siginfoLen)
			binary.LittleEndian.PutUint64(raw[16:], uint64(e.band))
			binary.LittleEndian.PutUint32(raw[24:], uint32(f.AsyncFD()))
			infos = append(infos, sigInfo{Signo: signo, Code: e.code, Raw: raw})
		}
	}
	for _, r := range k.sigioTargets(o) {
		for _, info := range infos {
			r.tg.sendSignal(info, r.thread)
		}
	}
}

// rearmAsync starts the watchers of the restored files that have O_ASYNC
// set.
func (k *Kernel) rearmAsync() {
	for _, tg := range k.threadGroups() {
		if tg.fdTable == nil {
			continue
		}
		var files []*vfs.File
		tg.fdTable.ForEach(func(_ int32, f *vfs.File, _ vfs.FDFlags) {
			if f.StatusFlags()&unix.O_ASYNC != 0 {
				files = append(files, f)
			}
		})
		for _, f := range files {
			k.armAsync(f)
		}
	}
}
