package kernel

import (
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// splice, tee, vmsplice and copy_file_range copy through a Go buffer: no
// page ever moves between a pipe and a file, so nothing about them needs
// saving. A pipe's bytes are looked at first and dropped only once they
// have been written elsewhere, so a short write loses nothing.

// splice flags (SPLICE_F_*).
const (
	spliceMove     = 1
	spliceNonblock = 2
	spliceMore     = 4
	spliceGift     = 8
	spliceAll      = spliceMove | spliceNonblock | spliceMore | spliceGift
)

// spliceChunk bounds what one call moves: a pipe's largest default
// capacity.
const spliceChunk = 1 << 20

// readableFile and writableFile report whether f was opened for reading or
// for writing.
func readableFile(f *vfs.File) bool {
	fl := f.StatusFlags()
	return fl&unix.O_PATH == 0 && fl&unix.O_ACCMODE != unix.O_WRONLY
}

func writableFile(f *vfs.File) bool {
	fl := f.StatusFlags()
	return fl&unix.O_PATH == 0 && fl&unix.O_ACCMODE != unix.O_RDONLY
}

// copyInOffset reads a loff_t argument: -1 when addr is 0, EINVAL if
// negative.
func (t *Task) copyInOffset(addr uint64) (int64, error) {
	if addr == 0 {
		return -1, nil
	}
	var b [8]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, err
	}
	off := int64(binary.LittleEndian.Uint64(b[:]))
	if off < 0 {
		return 0, unix.EINVAL
	}
	return off, nil
}

// spliceFiles gets splice's and tee's two descriptors: EBADF unless in is
// open for reading and out for writing.
func (t *Task) spliceFiles(inFD, outFD int32) (in, out *vfs.File, err error) {
	if in, err = t.getFile(inFD); err != nil {
		return nil, nil, err
	}
	if out, err = t.getFile(outFD); err != nil {
		in.DecRef()
		return nil, nil, err
	}
	if !readableFile(in) || !writableFile(out) {
		in.DecRef()
		out.DecRef()
		return nil, nil, unix.EBADF
	}
	return in, out, nil
}

// spliceResult turns a transfer's outcome into the call's: bytes moved, or
// the error (EPIPE also raises SIGPIPE).
func (t *Task) spliceResult(n int, err error) (uint64, error) {
	if n > 0 {
		return uint64(n), nil
	}
	if errors.Is(err, unix.EPIPE) {
		t.pipeBroken()
	}
	if err != nil {
		return 0, vfsErr(err)
	}
	return 0, nil
}

func sysSplice(t *Task, a *sysArgs) (uint64, error) {
	inFD, offInAddr, outFD, offOutAddr, length, flags := a.Int(0), a[1], a.Int(2), a[3], a[4], uint32(a[5])
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	in, out, err := t.spliceFiles(inFD, outFD)
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	defer out.DecRef()
	inPipe, outPipe := in.IsPipe(), out.IsPipe()
	switch {
	case !inPipe && !outPipe:
		return 0, unix.EINVAL
	case inPipe && outPipe && in.SamePipe(out):
		return 0, unix.EINVAL
	case inPipe && offInAddr != 0, outPipe && offOutAddr != 0:
		return 0, unix.ESPIPE
	case !outPipe && out.StatusFlags()&unix.O_APPEND != 0:
		return 0, unix.EINVAL
	}
	offIn, err := t.copyInOffset(offInAddr)
	if err != nil {
		return 0, err
	}
	offOut, err := t.copyInOffset(offOutAddr)
	if err != nil {
		return 0, err
	}
	if length == 0 {
		return 0, nil
	}
	nonblock := flags&spliceNonblock != 0
	count := int(min(length, spliceChunk))
	var n int
	if inPipe {
		n, err = t.spliceFromPipe(in, out, count, offOut, nonblock)
	} else {
		n, err = t.spliceToPipe(in, out, count, offIn, nonblock)
	}
	if n > 0 {
		off, addr := offIn, offInAddr
		if inPipe {
			off, addr = offOut, offOutAddr
		}
		if addr != 0 {
			if err := t.copyOutUint64(addr, uint64(off+int64(n))); err != nil {
				return 0, err
			}
		}
	}
	return t.spliceResult(n, err)
}

// spliceFromPipe moves up to count bytes from the pipe in to out (at off
// unless it is -1): what out took is dropped from the pipe.
func (t *Task) spliceFromPipe(in, out *vfs.File, count int, off int64, nonblock bool) (int, error) {
	w, err := t.copyFromPipe(in, out, count, off, nonblock)
	in.PipeDiscard(w)
	return w, err
}

// copyFromPipe writes up to count bytes from the head of the pipe in to out
// (at off unless it is -1), no more than a pipe out has room for, and
// leaves them in the pipe: tee's transfer, and splice's before the pipe
// drops what out took.
func (t *Task) copyFromPipe(in, out *vfs.File, count int, off int64, nonblock bool) (int, error) {
	buf := make([]byte, count)
	n, err := in.PipePeek(t.cancelChan(), buf, nonblock)
	if n == 0 {
		return 0, err
	}
	buf = buf[:n]
	if out.IsPipe() {
		room, err := out.PipeRoom(t.cancelChan(), nonblock)
		if err != nil {
			return 0, err
		}
		buf = buf[:min(n, room)]
	}
	var w int
	if off >= 0 {
		w, err = out.PWrite(buf, off)
	} else {
		w, err = out.Write(t.cancelChan(), buf)
	}
	return w, err
}

// spliceToPipe moves up to count bytes from in (at off unless it is -1)
// into the pipe out, no more than it has room for.
func (t *Task) spliceToPipe(in, out *vfs.File, count int, off int64, nonblock bool) (int, error) {
	room, err := out.PipeRoom(t.cancelChan(), nonblock)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, min(count, room))
	var n int
	if off >= 0 {
		n, err = in.PRead(buf, off)
	} else {
		n, err = in.Read(t.cancelChan(), buf)
	}
	if n == 0 {
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return 0, err
	}
	return out.Write(t.cancelChan(), buf[:n])
}

func sysTee(t *Task, a *sysArgs) (uint64, error) {
	inFD, outFD, length, flags := a.Int(0), a.Int(1), a[2], uint32(a[3])
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	in, out, err := t.spliceFiles(inFD, outFD)
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	defer out.DecRef()
	if !in.IsPipeReader() || !out.IsPipeWriter() || in.SamePipe(out) {
		return 0, unix.EINVAL
	}
	if length == 0 {
		return 0, nil
	}
	return t.spliceResult(t.copyFromPipe(in, out, int(min(length, spliceChunk)), -1, flags&spliceNonblock != 0))
}

func sysVmsplice(t *Task, a *sysArgs) (uint64, error) {
	fd, iovAddr, nr, flags := a.Int(0), a[1], a[2], uint32(a[3])
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if !f.IsPipe() {
		return 0, unix.EBADF
	}
	if nr > uioMaxIOV {
		return 0, unix.EINVAL
	}
	if nr == 0 {
		return 0, nil
	}
	nonblock := flags&spliceNonblock != 0
	if f.IsPipeWriter() {
		if !writableFile(f) {
			return 0, unix.EBADF
		}
		if nonblock {
			if _, err := f.PipeRoom(t.cancelChan(), true); err != nil {
				return t.spliceResult(0, err)
			}
		}
		n, err := t.writev(fd, iovAddr, nr, -1)
		if errors.Is(err, unix.EPIPE) {
			return t.spliceResult(0, err)
		}
		return n, err
	}
	if nonblock {
		var one [1]byte
		if _, err := f.PipePeek(t.cancelChan(), one[:], true); err != nil {
			return 0, vfsErr(err)
		}
	}
	return t.readv(fd, iovAddr, nr, -1)
}

func sysCopyFileRange(t *Task, a *sysArgs) (uint64, error) {
	inFD, offInAddr, outFD, offOutAddr, length, flags := a.Int(0), a[1], a.Int(2), a[3], a[4], a[5]
	if flags != 0 {
		return 0, unix.EINVAL
	}
	in, out, err := t.spliceFiles(inFD, outFD)
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	defer out.DecRef()
	if out.StatusFlags()&unix.O_APPEND != 0 {
		return 0, unix.EBADF
	}
	inSt, err := in.Stat()
	if err != nil {
		return 0, vfsErr(err)
	}
	outSt, err := out.Stat()
	if err != nil {
		return 0, vfsErr(err)
	}
	if inSt.FileType() == unix.S_IFDIR || outSt.FileType() == unix.S_IFDIR {
		return 0, unix.EISDIR
	}
	if inSt.FileType() != unix.S_IFREG || outSt.FileType() != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	offIn, err := t.copyInOffset(offInAddr)
	if err != nil {
		return 0, err
	}
	offOut, err := t.copyInOffset(offOutAddr)
	if err != nil {
		return 0, err
	}
	if offIn < 0 {
		if offIn, err = in.Seek(0, io.SeekCurrent); err != nil {
			return 0, vfsErr(err)
		}
	}
	if offOut < 0 {
		if offOut, err = out.Seek(0, io.SeekCurrent); err != nil {
			return 0, vfsErr(err)
		}
	}
	count := int64(min(length, maxRWCount))
	if inSt.Ino == outSt.Ino && inSt.DevMajor == outSt.DevMajor && inSt.DevMinor == outSt.DevMinor && offIn < offOut+count && offOut < offIn+count {
		return 0, unix.EINVAL // overlapping ranges of one file
	}
	n, err := copyRange(in, offIn, out, offOut, count)
	if n == 0 && err != nil {
		return 0, vfsErr(err)
	}
	if err := t.finishRange(in, offInAddr, offIn+n); err != nil {
		return 0, err
	}
	if err := t.finishRange(out, offOutAddr, offOut+n); err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// copyRange copies up to count bytes from in at offIn to out at offOut,
// stopping at in's end; it returns the bytes copied.
func copyRange(in *vfs.File, offIn int64, out *vfs.File, offOut int64, count int64) (int64, error) {
	buf := make([]byte, min(count, rwChunk))
	var done int64
	for done < count {
		b := buf[:min(count-done, int64(len(buf)))]
		n, err := in.PRead(b, offIn+done)
		if n == 0 {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return done, err
		}
		w, err := out.PWrite(b[:n], offOut+done)
		done += int64(w)
		if err != nil || w < n {
			return done, err
		}
	}
	return done, nil
}

// finishRange stores a file's new offset: at addr, or as its position
// when copy_file_range was given none.
func (t *Task) finishRange(f *vfs.File, addr uint64, off int64) error {
	if addr != 0 {
		return t.copyOutUint64(addr, uint64(off))
	}
	_, err := f.Seek(off, io.SeekStart)
	return vfsErr(err)
}
