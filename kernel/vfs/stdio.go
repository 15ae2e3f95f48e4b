package vfs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// stdioChunk bounds one host write to a pipe or terminal: when poll reports
// POLLOUT, Linux guarantees room for PIPE_BUF bytes, so a chunk this size
// does not block.
const stdioChunk = 4096

// stdioFile is one of the sandbox's standard streams, backed by a host
// descriptor that the runner supplies (the terminal, or --stdout FILE).
//
// +stateify savable
type stdioFile struct {
	noImpl

	// index is 0, 1 or 2; immutable.
	index int

	// mu protects pgrp. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pgrp is the foreground process group TIOCGPGRP reports. It is the
	// sentry's (guest PIDs), not the host terminal's.
	pgrp int32

	// host keeps the host file alive; fd is the descriptor the sentry
	// uses, or -1 when no file was bound (reads see end of file, writes are
	// discarded). Host descriptors are not saved; afterLoad re-binds them.
	host *os.File `state:"nosave"`
	fd   int      `state:"nosave"`
	// own is fd when the sentry opened a description of its own for host
	// (see bind), which release closes; else -1.
	own int `state:"nosave"`
	// sock is set when the host descriptor is a socket: transfers then
	// pass MSG_DONTWAIT. Host-specific: recomputed on bind.
	sock bool `state:"nosave"`
	// regular is set when the host descriptor is a regular file (no
	// polling needed). Host-specific: recomputed on bind.
	regular bool `state:"nosave"`
	// hostType is the host descriptor's S_IF* type. Host-specific:
	// recomputed on bind.
	hostType uint32 `state:"nosave"`
}

func (s *stdioFile) fileType() uint32 {
	if s.fd < 0 {
		return unix.S_IFCHR
	}
	return s.hostType
}

// NewStdio returns a File for stdio stream index (0, 1 or 2) backed by host.
// A nil host behaves like /dev/null. The File's access mode is the host
// descriptor's. The caller keeps host open while the File lives.
func NewStdio(index int, host *os.File) (*File, error) {
	if index < 0 || index > 2 {
		return nil, fmt.Errorf("stdio index %d: %w", index, unix.EINVAL)
	}
	s := &stdioFile{index: index, pgrp: 1, own: -1}
	if err := s.bind(host); err != nil {
		return nil, err
	}
	flags := uint32(unix.O_WRONLY)
	if index == 0 {
		flags = unix.O_RDONLY
	}
	if s.fd >= 0 {
		fl, err := unix.FcntlInt(uintptr(s.fd), unix.F_GETFL, 0)
		if err != nil {
			return nil, fmt.Errorf("stdio %d: F_GETFL: %w", index, err)
		}
		flags = uint32(fl) & (unix.O_ACCMODE | unix.O_APPEND)
	}
	return newFile(flags, s), nil
}

// bind makes host the stream's file. A pipe, FIFO or terminal gets a
// description of the sentry's own, opened non-blocking through
// /proc/self/fd: the caller's description stays as it was (its flags are
// shared with whoever else holds it, the shell for one), and a transfer on
// ours can never block in the host kernel, even when another reader of
// the same pipe or terminal takes the data between the poll and the read.
// A task waits only in waitFD, which its interrupt (a signal, a kill, a
// save) ends. A socket keeps the caller's description and transfers with
// MSG_DONTWAIT. Where the own open fails (a pipe's write end without a
// reader at that moment), the caller's description is used as before.
func (s *stdioFile) bind(host *os.File) error {
	s.closeOwn()
	s.host, s.fd, s.regular, s.sock = host, -1, false, false
	if host == nil {
		return nil
	}
	s.fd = int(host.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return fmt.Errorf("stdio %d: fstat %s: %w", s.index, host.Name(), err)
	}
	s.hostType = st.Mode & unix.S_IFMT
	s.regular = s.hostType == unix.S_IFREG
	switch s.hostType {
	case unix.S_IFSOCK:
		s.sock = true
	case unix.S_IFIFO, unix.S_IFCHR:
		if own, err := ownDescription(s.fd); err == nil {
			s.fd, s.own = own, own
		}
	}
	return nil
}

// ownDescription opens a new non-blocking description of the file behind
// host descriptor fd, with its access mode and O_APPEND.
func ownDescription(fd int) (int, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, err
	}
	flags := fl&(unix.O_ACCMODE|unix.O_APPEND) | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	for {
		own, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags, 0)
		if err != unix.EINTR {
			return own, err
		}
	}
}

// closeOwn closes the sentry's own description, if any.
func (s *stdioFile) closeOwn() {
	if s.own > 0 {
		unix.Close(s.own)
	}
	s.own = -1
}

func (s *stdioFile) release() { s.closeOwn() }

// hostRead reads from the host descriptor without blocking if it is a
// socket (the others are non-blocking or regular).
func (s *stdioFile) hostRead(dst []byte) (int, error) {
	if s.sock {
		n, _, err := unix.Recvfrom(s.fd, dst, unix.MSG_DONTWAIT)
		return n, err
	}
	return unix.Read(s.fd, dst)
}

// hostWrite is hostRead's counterpart.
func (s *stdioFile) hostWrite(src []byte) (int, error) {
	if s.sock {
		return unix.SendmsgN(s.fd, src, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	}
	return unix.Write(s.fd, src)
}

// afterLoad re-binds the stream to the file WithRestoreStdio supplies.
// Invoked by stateify.
func (s *stdioFile) afterLoad(ctx context.Context) {
	var host *os.File
	if files, ok := ctx.Value(restoreStdioKey{}).([3]*os.File); ok {
		host = files[s.index]
	}
	s.own = -1 // loaded as 0, which is not ours
	if err := s.bind(host); err != nil {
		reportRestoreError(ctx, err)
		s.bind(nil)
	}
	if set, ok := ctx.Value(restoreStdioSetKey{}).(*StdioSet); ok {
		set.add(s)
	}
}

func (s *stdioFile) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if s.fd < 0 {
		return 0, nil
	}
	if off >= 0 {
		return retryEINTR(func() (int, error) { return unix.Pread(s.fd, dst, off) })
	}
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		if !s.regular {
			ev, err := pollNow(s.fd, unix.POLLIN)
			if err != nil {
				return 0, err
			}
			if ev == 0 {
				if f.nonblocking() {
					return 0, unix.EAGAIN
				}
				if err := waitFD(cancel, s.fd, unix.POLLIN); err != nil {
					return 0, err
				}
				continue
			}
		}
		n, err := retryEINTR(func() (int, error) { return s.hostRead(dst) })
		if err == unix.EAGAIN && !f.nonblocking() {
			// Another reader took the data since the poll: wait again.
			continue
		}
		return n, err
	}
}

func (s *stdioFile) write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if s.fd < 0 {
		return len(src), nil
	}
	if off >= 0 {
		return retryEINTR(func() (int, error) { return unix.Pwrite(s.fd, src, off) })
	}
	if s.regular {
		total := 0
		for total < len(src) {
			n, err := retryEINTR(func() (int, error) { return unix.Write(s.fd, src[total:]) })
			if err != nil {
				return partial(total, err)
			}
			total += n
		}
		return total, nil
	}
	total := 0
	for total < len(src) {
		ev, err := pollNow(s.fd, unix.POLLOUT)
		if err != nil {
			return partial(total, err)
		}
		if ev&unix.POLLOUT == 0 && ev&(unix.POLLERR|unix.POLLHUP) == 0 {
			if f.nonblocking() {
				return partial(total, unix.EAGAIN)
			}
			if err := waitFD(cancel, s.fd, unix.POLLOUT); err != nil {
				return partial(total, err)
			}
			continue
		}
		chunk := src[total:min(len(src), total+stdioChunk)]
		n, err := retryEINTR(func() (int, error) { return s.hostWrite(chunk) })
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return partial(total, err)
		}
		total += n
	}
	return total, nil
}

// partial returns what a blocking transfer returns when it stops early: the
// count if some bytes moved, else the error.
func partial(n int, err error) (int, error) {
	if n > 0 {
		return n, nil
	}
	return 0, err
}

func retryEINTR(op func() (int, error)) (int, error) {
	for {
		n, err := op()
		if err != unix.EINTR {
			if n < 0 {
				n = 0
			}
			return n, err
		}
	}
}

func (s *stdioFile) seek(_ *File, off int64, whence int) (int64, error) {
	if s.fd < 0 {
		return 0, nil
	}
	return unix.Seek(s.fd, off, whence)
}

func (s *stdioFile) stat(*File) (Stat, error) {
	if s.fd < 0 {
		return devNull.stat(), nil
	}
	return hostStat(s.fd)
}

func (s *stdioFile) ioctl(_ *File, cmd uint32, arg []byte) (int, error) {
	if s.fd < 0 {
		return 0, unix.ENOTTY
	}
	var buf [64]byte
	switch cmd {
	case unix.TCGETS, unix.TIOCGWINSZ, fionread:
		n, err := hostIoctl(s.fd, cmd, buf[:])
		if err != nil {
			return 0, err
		}
		sz, _, _ := IoctlArgSize(cmd)
		copy(arg[:sz], buf[:])
		return n, nil
	case unix.TCSETS, unix.TCSETSW, unix.TCSETSF, unix.TIOCSWINSZ:
		sz, _, _ := IoctlArgSize(cmd)
		copy(buf[:], arg[:sz])
		switch cmd {
		case unix.TCSETSW, unix.TCSETSF:
			// These first wait until the terminal has sent all output,
			// which a stopped terminal never does, and no interrupt ends
			// a host ioctl: set at once instead (what the sandbox wrote
			// has reached the host terminal already). TCSETSF also
			// discards pending input, which does not wait.
			if cmd == unix.TCSETSF {
				if err := unix.IoctlSetInt(s.fd, unix.TCFLSH, unix.TCIFLUSH); err != nil {
					return 0, err
				}
			}
			cmd = unix.TCSETS
		}
		return hostIoctl(s.fd, cmd, buf[:])
	case unix.TIOCGPGRP, unix.TIOCGSID, unix.TIOCSPGRP:
		// Process groups are the sentry's: only ask the host whether this
		// is a terminal.
		if _, err := hostIoctl(s.fd, unix.TCGETS, buf[:]); err != nil {
			return 0, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cmd == unix.TIOCSPGRP {
			pg := int32(le32(arg))
			if pg <= 0 {
				return 0, unix.EINVAL
			}
			s.pgrp = pg
			return 0, nil
		}
		putLE32(arg, uint32(s.pgrp))
		return 0, nil
	}
	return 0, unix.ENOTTY
}

func (s *stdioFile) readiness(_ *File, mask uint32) uint32 {
	if s.fd < 0 || s.regular {
		return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm)
	}
	ev, err := pollNow(s.fd, int16(mask))
	if err != nil {
		return unix.POLLERR
	}
	return uint32(uint16(ev))
}

func (s *stdioFile) watch(_ *File, mask uint32) (<-chan struct{}, func()) {
	if s.fd < 0 || s.regular {
		return nil, func() {}
	}
	ch, stop, err := watchFD(s.fd, int16(mask))
	if err != nil {
		// Cannot watch: report "changed" at once so the poller re-checks.
		return closedChan, func() {}
	}
	return ch, stop
}
