package kernel

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// maxRWCount bounds one read or write, as Linux's MAX_RW_COUNT.
const maxRWCount = 0x7ffff000

// rwChunk is the most one host read or write moves through a Go buffer.
const rwChunk = 1 << 20

// vectorMax bounds one readv or writev, which stage their data in one Go
// buffer so that a pipe sees a single operation. Transferring less than
// asked is within the syscalls' contract; it keeps a hostile iovec array
// from making the sentry allocate gigabytes.
const vectorMax = 16 << 20

// getFile returns the file at fd with a reference the caller must drop.
func (t *Task) getFile(fd int32) (*vfs.File, error) {
	f, _, err := t.tg.fdTable.Get(fd)
	return f, err
}

// vfsErr maps vfs.ErrInterrupted to the kernel's interruption error.
func vfsErr(err error) error {
	if errors.Is(err, vfs.ErrInterrupted) {
		return errInterrupted
	}
	return err
}

// readInto reads up to count bytes from f (at off if off >= 0) into
// application memory at addr. Regular files are read in chunks until
// count or end of file; other files get one read, which may block.
func (t *Task) readInto(f *vfs.File, addr, count uint64, off int64) (uint64, error) {
	if err := t.ttyCheck(f, unix.SIGTTIN); err != nil {
		return 0, err
	}
	count = min(count, maxRWCount)
	if off < 0 && f.SeqIO() != nil {
		n, err := f.ReadSeq(t.cancelChan(), t.appRange(addr, count))
		if err != nil && n == 0 {
			return 0, vfsErr(err)
		}
		return uint64(n), nil
	}
	if f.SeqAt() {
		n, err := f.ReadSeqAt(t.appRange(addr, count), off)
		if err != nil && n == 0 {
			return 0, err
		}
		return uint64(n), nil
	}
	buf := getRWBuf(min(count, rwChunk))
	defer putRWBuf(buf)
	var done uint64
	for done < count {
		b := buf[:min(count-done, uint64(len(buf)))]
		var n int
		var err error
		if off >= 0 {
			n, err = f.PRead(b, off+int64(done))
		} else {
			n, err = f.Read(t.cancelChan(), b)
		}
		if n > 0 {
			if cerr := t.tg.mm.CopyOut(addr+done, b[:n]); cerr != nil {
				if done > 0 {
					return done, nil
				}
				return 0, cerr
			}
			done += uint64(n)
		}
		if err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, vfsErr(err)
		}
		if n < len(b) || !t.isRegular(f) {
			break
		}
	}
	return done, nil
}

// writeFrom writes count bytes of application memory at addr to f (at off
// if off >= 0).
func (t *Task) writeFrom(f *vfs.File, addr, count uint64, off int64) (uint64, error) {
	if err := t.ttyWriteCheck(f); err != nil {
		return 0, err
	}
	count = min(count, maxRWCount)
	if off < 0 && f.SeqIO() != nil {
		return t.writeSeq(f, t.appRange(addr, count))
	}
	if f.SeqAt() {
		n, err := f.WriteSeqAt(t.appRange(addr, count), off)
		if err != nil && n == 0 {
			return 0, err
		}
		return uint64(n), nil
	}
	buf := getRWBuf(min(count, rwChunk))
	defer putRWBuf(buf)
	var done uint64
	for done < count {
		b := buf[:min(count-done, uint64(len(buf)))]
		if err := t.tg.mm.CopyIn(addr+done, b); err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
		var n int
		var err error
		if off >= 0 {
			n, err = f.PWrite(b, off+int64(done))
		} else {
			n, err = f.Write(t.cancelChan(), b)
		}
		done += uint64(n)
		if err != nil {
			if done > 0 {
				return done, nil
			}
			if errors.Is(err, unix.EPIPE) && sigpipeOnEPIPE(f) {
				t.pipeBroken()
			}
			return 0, vfsErr(err)
		}
		if n < len(b) {
			break
		}
	}
	return done, nil
}

// isRegular reports whether f is a regular file, so a large read may span
// several host reads without blocking.
func (t *Task) isRegular(f *vfs.File) bool {
	st, err := f.Stat()
	return err == nil && st.FileType() == unix.S_IFREG
}

func sysRead(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if s := t.tg.specialOf(f); s != nil {
		buf := make([]byte, min(a[2], specialReadMax))
		n, err := s.read(t, buf, f.StatusFlags()&unix.O_NONBLOCK != 0)
		if err != nil {
			return 0, err
		}
		return uint64(n), t.tg.mm.CopyOut(a[1], buf[:n])
	}
	return t.readInto(f, a[1], a[2], -1)
}

func sysWrite(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if s := t.tg.specialOf(f); s != nil {
		buf := make([]byte, min(a[2], 8))
		if err := t.tg.mm.CopyIn(a[1], buf); err != nil {
			return 0, err
		}
		n, err := s.write(t, buf, f.StatusFlags()&unix.O_NONBLOCK != 0)
		return uint64(n), err
	}
	return t.writeFrom(f, a[1], a[2], -1)
}

func sysPread64(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return t.readInto(f, a[1], a[2], int64(a[3]))
}

func sysPwrite64(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return t.writeFrom(f, a[1], a[2], int64(a[3]))
}

// iovec is one struct iovec.
type iovec struct{ base, len uint64 }

// uioMaxIOV is UIO_MAXIOV.
const uioMaxIOV = 1024

func (t *Task) copyInIovecs(addr uint64, n uint64) ([]iovec, uint64, error) {
	if n > uioMaxIOV {
		return nil, 0, unix.EINVAL
	}
	raw := make([]byte, 16*n)
	if err := t.tg.mm.CopyIn(addr, raw); err != nil {
		return nil, 0, err
	}
	iovs := make([]iovec, n)
	var total uint64
	for i := range iovs {
		iovs[i] = iovec{binary.LittleEndian.Uint64(raw[16*i:]), binary.LittleEndian.Uint64(raw[16*i+8:])}
		if int64(iovs[i].len) < 0 {
			return nil, 0, unix.EINVAL
		}
		total += iovs[i].len
		if total > vectorMax {
			iovs[i].len -= total - vectorMax
			total = vectorMax
			iovs = iovs[:i+1]
			break
		}
	}
	return iovs, total, nil
}

// writeSeq writes src to f, which moves bytes without staging
// (vfs.File.SeqIO), with write(2)'s EPIPE and SIGPIPE.
func (t *Task) writeSeq(f *vfs.File, src *appSeq) (uint64, error) {
	n, err := f.WriteSeq(t.cancelChan(), src)
	if err != nil && n == 0 {
		if errors.Is(err, unix.EPIPE) && sigpipeOnEPIPE(f) {
			t.pipeBroken()
		}
		return 0, vfsErr(err)
	}
	return uint64(n), nil
}

// readv reads into the iovecs: one read into a staging buffer, then
// scattered, so a pipe read is a single operation (a file that moves
// bytes without staging reads into them directly).
func (t *Task) readv(fd int32, iovAddr, iovCnt uint64, off int64) (uint64, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if err := t.ttyCheck(f, unix.SIGTTIN); err != nil {
		return 0, err
	}
	iovs, total, err := t.copyInIovecs(iovAddr, iovCnt)
	if err != nil {
		return 0, err
	}
	if off < 0 && f.SeqIO() != nil {
		n, err := f.ReadSeq(t.cancelChan(), t.appIovecs(iovs, total))
		if err != nil && n == 0 {
			return 0, vfsErr(err)
		}
		return uint64(n), nil
	}
	if f.SeqAt() {
		n, err := f.ReadSeqAt(t.appIovecs(iovs, total), off)
		if err != nil && n == 0 {
			return 0, err
		}
		return uint64(n), nil
	}
	buf := make([]byte, total)
	var n int
	if off >= 0 {
		n, err = f.PRead(buf, off)
	} else {
		n, err = f.Read(t.cancelChan(), buf)
	}
	if err != nil && n == 0 {
		return 0, vfsErr(err)
	}
	buf = buf[:n]
	for _, iov := range iovs {
		if len(buf) == 0 {
			break
		}
		c := min(uint64(len(buf)), iov.len)
		if err := t.tg.mm.CopyOut(iov.base, buf[:c]); err != nil {
			return 0, err
		}
		buf = buf[c:]
	}
	return uint64(n), nil
}

// writev gathers the iovecs and writes them with one write.
func (t *Task) writev(fd int32, iovAddr, iovCnt uint64, off int64) (uint64, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if err := t.ttyWriteCheck(f); err != nil {
		return 0, err
	}
	iovs, total, err := t.copyInIovecs(iovAddr, iovCnt)
	if err != nil {
		return 0, err
	}
	if off < 0 && f.SeqIO() != nil {
		return t.writeSeq(f, t.appIovecs(iovs, total))
	}
	if f.SeqAt() {
		n, err := f.WriteSeqAt(t.appIovecs(iovs, total), off)
		if err != nil && n == 0 {
			return 0, err
		}
		return uint64(n), nil
	}
	buf := make([]byte, 0, total)
	for _, iov := range iovs {
		start := len(buf)
		buf = buf[:start+int(iov.len)]
		if err := t.tg.mm.CopyIn(iov.base, buf[start:]); err != nil {
			return 0, err
		}
	}
	var n int
	if off >= 0 {
		n, err = f.PWrite(buf, off)
	} else {
		n, err = f.Write(t.cancelChan(), buf)
	}
	if err != nil && n == 0 {
		if errors.Is(err, unix.EPIPE) && sigpipeOnEPIPE(f) {
			t.pipeBroken()
		}
		return 0, vfsErr(err)
	}
	return uint64(n), nil
}

func sysReadv(t *Task, a *sysArgs) (uint64, error)  { return t.readv(a.Int(0), a[1], a[2], -1) }
func sysWritev(t *Task, a *sysArgs) (uint64, error) { return t.writev(a.Int(0), a[1], a[2], -1) }

func sysPreadv(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	return t.readv(a.Int(0), a[1], a[2], int64(a[3]))
}

func sysPwritev(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	return t.writev(a.Int(0), a[1], a[2], int64(a[3]))
}

// pipeBroken is called when a write hit a pipe with no reader. Linux sends
// SIGPIPE, whose default action kills the process; the signal code
// refines this when it queues signals.
func (t *Task) pipeBroken() {
	t.sendSignalToSelf(int(unix.SIGPIPE))
}

func sysSendfile(t *Task, a *sysArgs) (uint64, error) {
	out, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer out.DecRef()
	in, err := t.getFile(a.Int(1))
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	offAddr, count := a[2], min(a[3], maxRWCount)
	off := int64(-1)
	if offAddr != 0 {
		var b [8]byte
		if err := t.tg.mm.CopyIn(offAddr, b[:]); err != nil {
			return 0, err
		}
		if off = int64(binary.LittleEndian.Uint64(b[:])); off < 0 {
			return 0, unix.EINVAL
		}
	}
	buf := make([]byte, min(count, 1<<16))
	var done uint64
	for done < count {
		b := buf[:min(count-done, uint64(len(buf)))]
		var n int
		if off >= 0 {
			n, err = in.PRead(b, off+int64(done))
		} else {
			n, err = in.Read(t.cancelChan(), b)
		}
		if err != nil || n == 0 {
			break
		}
		w, werr := out.Write(t.cancelChan(), b[:n])
		done += uint64(w)
		if werr != nil {
			err = werr
			break
		}
		if w < n || !t.isRegular(in) {
			break
		}
	}
	if offAddr != 0 {
		if cerr := t.copyOutUint64(offAddr, uint64(off)+done); cerr != nil {
			return 0, cerr
		}
	}
	if done == 0 && err != nil {
		if errors.Is(err, unix.EPIPE) && sigpipeOnEPIPE(out) {
			t.pipeBroken()
		}
		return 0, vfsErr(err)
	}
	return done, nil
}

func sysLseek(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	off, err := f.Seek(int64(a[1]), int(a.Int(2)))
	return uint64(off), err
}

func sysGetdents64(t *Task, a *sysArgs) (uint64, error) {
	buf, err := t.readDirents64(a)
	if err != nil {
		return 0, err
	}
	return uint64(len(buf)), t.tg.mm.CopyOut(a[1], buf)
}

// readDirents64 reads the getdents64 records of the directory at argument
// 0 that fit in the count at argument 2 (at most rwChunk), as getdents and
// getdents64 take them.
func (t *Task) readDirents64(a *sysArgs) ([]byte, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return nil, err
	}
	defer f.DecRef()
	buf := make([]byte, min(uint64(uint32(a[2])), rwChunk))
	n, err := f.Getdents64(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// ioctl requests the kernel handles itself.
const (
	ioctlFIOCLEX  = 0x5451
	ioctlFIONCLEX = 0x5450
	ioctlFIOASYNC = 0x5452
)

func sysIoctl(t *Task, a *sysArgs) (uint64, error) {
	fd, cmd := a.Int(0), uint32(a[1])
	switch cmd {
	case ioctlFIOCLEX, ioctlFIONCLEX:
		return 0, t.tg.fdTable.SetFlags(fd, vfs.FDFlags{CloseOnExec: cmd == ioctlFIOCLEX})
	case unix.SIOCGIFCONF:
		return 0, t.ifconf(fd, a[2])
	}
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if cmd == ioctlFIOASYNC {
		if !f.HasAsync() {
			return 0, unix.ENOTTY
		}
		var b [4]byte
		if err := t.tg.mm.CopyIn(a[2], b[:]); err != nil {
			return 0, err
		}
		on := binary.LittleEndian.Uint32(b[:]) != 0
		if on != (f.StatusFlags()&unix.O_ASYNC != 0) {
			if on {
				t.ttyAsyncOwner(f)
			}
			t.k.setAsync(f, fd, on)
		}
		return 0, nil
	}
	if tty, master := f.TTY(); tty != nil {
		if n, done, err := t.ttyIoctl(f, tty, master, cmd, a); done {
			return n, err
		}
	}
	size, in, out := vfs.IoctlArgSize(cmd)
	arg := make([]byte, size)
	if vfs.IoctlArgByValue(cmd) {
		for i := range arg {
			arg[i] = byte(a[2] >> (8 * i))
		}
	}
	if in && size > 0 {
		if err := t.tg.mm.CopyIn(a[2], arg); err != nil {
			return 0, err
		}
	}
	n, err := f.Ioctl(cmd, arg)
	if err != nil {
		return 0, err
	}
	if out && size > 0 {
		if err := t.tg.mm.CopyOut(a[2], arg); err != nil {
			return 0, err
		}
	}
	return uint64(n), nil
}

func sysFsync(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	f.DecRef()
	return 0, nil
}
