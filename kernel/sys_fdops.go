package kernel

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Calls on descriptors that need no file kind of their own.

// msgCmsgCompat is MSG_CMSG_COMPAT, which a 64-bit caller may not pass.
const msgCmsgCompat = 0x80000000

// sysFallocate implements fallocate(fd, mode, offset, len): see
// vfs.File.Fallocate for the errors.
func sysFallocate(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.Fallocate(uint32(a[1]), int64(a[2]), int64(a[3]))
}

// sysReadahead checks readahead(fd, offset, count) as Linux does; there is
// no page cache to fill.
func sysReadahead(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.Readahead()
}

// preadv2 and pwritev2 flags (linux/fs.h) that need nothing from a file,
// and RWF_NOWAIT, which regular files honour by never blocking. The others
// (APPEND, NOAPPEND, ATOMIC, DONTCACHE) need support that the sandbox's
// files do not give.
const (
	rwfHipri  = 0x01
	rwfDsync  = 0x02
	rwfSync   = 0x04
	rwfNowait = 0x08
)

// rwv2 checks preadv2/pwritev2's descriptor and flags and returns the
// offset (-1: the file position). HIPRI, DSYNC and SYNC change nothing for
// the sandbox's files, nor NOWAIT for regular files; other flags are
// EOPNOTSUPP, as Linux says for a file that cannot honour them (NOWAIT on
// pipes, which Linux honours, included).
func (t *Task) rwv2(a *sysArgs) (int64, error) {
	off := int64(a[3]) // pos_l: on x86-64 it holds the whole offset
	if off < -1 {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	ok := uint64(rwfHipri | rwfDsync | rwfSync)
	if f.FileType() == unix.S_IFREG {
		ok |= rwfNowait
	}
	if a[5]&^ok != 0 {
		return 0, unix.EOPNOTSUPP
	}
	return off, nil
}

func sysPreadv2(t *Task, a *sysArgs) (uint64, error) {
	off, err := t.rwv2(a)
	if err != nil {
		return 0, err
	}
	return t.readv(a.Int(0), a[1], a[2], off)
}

func sysPwritev2(t *Task, a *sysArgs) (uint64, error) {
	off, err := t.rwv2(a)
	if err != nil {
		return 0, err
	}
	return t.writev(a.Int(0), a[1], a[2], off)
}

// sysGetdents implements the old getdents: getdents64's records with the
// type moved from before the name to the record's last byte. A record of
// either kind is 19 bytes of header and type plus the name and its NUL,
// rounded up to 8, so the same entries fit and the conversion is in place.
func sysGetdents(t *Task, a *sysArgs) (uint64, error) {
	buf, err := t.readDirents64(a)
	if err != nil {
		return 0, err
	}
	n := len(buf)
	for off := 0; off+19 <= n; {
		reclen := int(binary.LittleEndian.Uint16(buf[off+16:]))
		if reclen < 20 || off+reclen > n {
			return 0, fmt.Errorf("getdents64 record of %d bytes at %d of %d", reclen, off, n)
		}
		rec := buf[off : off+reclen]
		typ := rec[18]
		copy(rec[18:], rec[19:])
		rec[reclen-1] = typ
		off += reclen
	}
	return uint64(n), t.tg.mm.CopyOut(a[1], buf[:n])
}

func sysUtime(t *Task, a *sysArgs) (uint64, error) {
	return t.utimesAt(unix.AT_FDCWD, a[0], a[1], false)
}

func sysUtimes(t *Task, a *sysArgs) (uint64, error) {
	return t.utimesAt(unix.AT_FDCWD, a[0], a[1], true)
}

func sysFutimesat(t *Task, a *sysArgs) (uint64, error) {
	return t.utimesAt(a.Int(0), a[1], a[2], true)
}
