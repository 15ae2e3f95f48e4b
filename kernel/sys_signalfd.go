package kernel

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

func sysSignalfd4(t *Task, a *sysArgs) (uint64, error) {
	return t.signalfd(a.Int(0), a[1], a[2], uint32(a[3]))
}

func sysSignalfd(t *Task, a *sysArgs) (uint64, error) { return t.signalfd(a.Int(0), a[1], a[2], 0) }

// signalfdSiginfoSize is sizeof(struct signalfd_siginfo).
const signalfdSiginfoSize = 128

// signalFD is a signalfd(2): reading it takes pending signals of its mask
// from the reader's queues (its thread's, then its process's) instead of
// delivering them. Poll reports it readable when the polling process, or
// one of its threads, has one of them pending: the kernel uses it through
// a signalfdView of that process (ThreadGroup.specialOf).
//
// +stateify savable
type signalFD struct {
	// tg is the process that made it, whose pending signals its own
	// readiness looks at. Immutable.
	tg *ThreadGroup
	// mu protects mask.
	mu sync.Mutex `state:"nosave"`
	// mask is the set of signals the descriptor takes.
	mask uint64
}

// signalfd implements signalfd4: a new descriptor for fd -1, or a new mask
// for an existing signalfd.
func (t *Task) signalfd(fd int32, maskAddr, size uint64, flags uint32) (uint64, error) {
	if size != sigsetSize || flags&^uint32(unix.SFD_CLOEXEC|unix.SFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	mask, err := t.copyInSigset(maskAddr)
	if err != nil {
		return 0, err
	}
	mask &^= unblockable
	if fd == -1 {
		return t.installSpecial(&signalFD{tg: t.tg, mask: mask}, flags&(unix.O_CLOEXEC|unix.O_NONBLOCK))
	}
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	v, ok := t.tg.specialOf(f).(signalfdView)
	if !ok {
		return 0, unix.EINVAL
	}
	s := v.signalFD
	s.mu.Lock()
	s.mask = mask
	s.mu.Unlock()
	return uint64(fd), nil
}

func (s *signalFD) getMask() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mask
}

func (s *signalFD) readiness(mask uint32) uint32 { return s.readinessFor(s.tg, mask) }

func (s *signalFD) changed() <-chan struct{} { return signalQueuedChan(s.tg) }

// signalfdView is a signalfd as process tg sees it.
type signalfdView struct {
	*signalFD
	tg *ThreadGroup
}

func (v signalfdView) readiness(mask uint32) uint32 { return v.readinessFor(v.tg, mask) }

func (v signalfdView) changed() <-chan struct{} { return signalQueuedChan(v.tg) }

// signalQueuedChan returns a channel closed when a signal is next queued
// for process tg.
func signalQueuedChan(tg *ThreadGroup) <-chan struct{} {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.signalQueuedChanLocked()
}

// readinessFor reports POLLIN when tg or one of its threads has a signal
// of the mask pending.
func (s *signalFD) readinessFor(tg *ThreadGroup, mask uint32) uint32 {
	set := s.getMask()
	tg.mu.Lock()
	pending := tg.sigs.Pending.Set
	for _, o := range tg.tasks {
		pending |= o.sig.Pending.Set
	}
	tg.mu.Unlock()
	if pending&set != 0 {
		return unix.POLLIN & mask
	}
	return 0
}

// read takes as many pending signals of the mask as dst holds records
// for, waiting for one if none is pending.
func (s *signalFD) read(t *Task, dst []byte, nonblock bool) (int, error) {
	if len(dst) < signalfdSiginfoSize {
		return 0, unix.EINVAL
	}
	tg := t.tg
	for {
		set := s.getMask()
		tg.mu.Lock()
		tg.checkItimersLocked(t.k.monotonicNow())
		n := 0
		for n+signalfdSiginfoSize <= len(dst) {
			info, ok := t.dequeueFromSetLocked(set)
			if !ok {
				break
			}
			marshalSignalfdSiginfo(dst[n:n+signalfdSiginfoSize], info)
			n += signalfdSiginfoSize
		}
		ch := tg.signalQueuedChanLocked()
		tg.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := t.block(ch); err != nil {
			return 0, err
		}
	}
}

func (s *signalFD) write(*Task, []byte, bool) (int, error) { return 0, unix.EINVAL }

// marshalSignalfdSiginfo writes info as a struct signalfd_siginfo, with
// the fields Linux fills for the kind of signal (signalfd_copyinfo).
func marshalSignalfdSiginfo(b []byte, info sigInfo) {
	clear(b)
	le := binary.LittleEndian
	if r := info.Raw; len(r) == siginfoLen {
		// A siginfo from rt_sigqueueinfo: its fields where siginfo_t
		// keeps them.
		info.Pid, info.UID = int32(le.Uint32(r[16:])), le.Uint32(r[20:])
		info.Status, info.Value = int32(le.Uint32(r[24:])), le.Uint64(r[24:])
		info.Addr = le.Uint64(r[16:])
	}
	le.PutUint32(b[0:], uint32(info.Signo))
	le.PutUint32(b[8:], uint32(info.Code))
	fault := info.Signo == int32(unix.SIGSEGV) || info.Signo == int32(unix.SIGBUS) ||
		info.Signo == int32(unix.SIGILL) || info.Signo == int32(unix.SIGFPE) || info.Signo == int32(unix.SIGTRAP)
	switch {
	case len(info.Raw) == siginfoLen && info.Code == pollMsg && !fault && info.Signo != int32(unix.SIGCHLD):
		// A file's signal (SendSigio): ssi_fd and ssi_band.
		le.PutUint32(b[20:], le.Uint32(info.Raw[24:]))
		le.PutUint32(b[28:], uint32(le.Uint64(info.Raw[16:])))
	case info.Code == siTimer:
		le.PutUint32(b[24:], uint32(info.Pid)) // ssi_tid: the timer ID
		le.PutUint32(b[32:], info.UID)         // ssi_overrun
		le.PutUint32(b[44:], uint32(info.Value))
		le.PutUint64(b[48:], info.Value)
	case fault && info.Code > 0 && info.Code != siKernel:
		le.PutUint64(b[72:], info.Addr)
	case info.Signo == int32(unix.SIGCHLD) && info.Code > 0:
		le.PutUint32(b[12:], uint32(info.Pid))
		le.PutUint32(b[16:], info.UID)
		le.PutUint32(b[40:], uint32(info.Status))
	default:
		le.PutUint32(b[12:], uint32(info.Pid))
		le.PutUint32(b[16:], info.UID)
		if info.Code < 0 && info.Code != siTkill {
			le.PutUint32(b[44:], uint32(info.Value))
			le.PutUint64(b[48:], info.Value)
		}
	}
}
