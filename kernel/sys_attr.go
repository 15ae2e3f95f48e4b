package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// The calls that change a file's attributes: chmod, chown, truncate and
// the utimes family, by path or by descriptor. vfs applies them on a
// tmpfs; the host root answers EROFS after the lookup.

func sysChmod(t *Task, a *sysArgs) (uint64, error) {
	return t.setAttrAt(unix.AT_FDCWD, a[0], 0, chmodAttr(a[1]))
}

func sysFchmodat(t *Task, a *sysArgs) (uint64, error) {
	return t.setAttrAt(a.Int(0), a[1], 0, chmodAttr(a[2]))
}

func sysFchmod(t *Task, a *sysArgs) (uint64, error) { return t.fdSetAttr(a.Int(0), chmodAttr(a[1])) }

func chmodAttr(mode uint64) *vfs.SetAttr {
	return &vfs.SetAttr{Mask: vfs.SetAttrMode, Mode: uint32(mode) & 0o7777}
}

// chownAttr is the change chown(uid, gid) makes: -1 leaves an ID as it is.
func chownAttr(uid, gid uint64) *vfs.SetAttr {
	a := &vfs.SetAttr{UID: uint32(uid), GID: uint32(gid)}
	if int32(uid) != -1 {
		a.Mask |= vfs.SetAttrUID
	}
	if int32(gid) != -1 {
		a.Mask |= vfs.SetAttrGID
	}
	return a
}

func sysChown(t *Task, a *sysArgs) (uint64, error) {
	return t.setAttrAt(unix.AT_FDCWD, a[0], 0, chownAttr(a[1], a[2]))
}

func sysLchown(t *Task, a *sysArgs) (uint64, error) {
	return t.setAttrAt(unix.AT_FDCWD, a[0], unix.AT_SYMLINK_NOFOLLOW, chownAttr(a[1], a[2]))
}

func sysFchownat(t *Task, a *sysArgs) (uint64, error) {
	flags := int(a.Int(4))
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	return t.setAttrAt(a.Int(0), a[1], flags, chownAttr(a[2], a[3]))
}

func sysFchown(t *Task, a *sysArgs) (uint64, error) {
	return t.fdSetAttr(a.Int(0), chownAttr(a[1], a[2]))
}

func sysTruncate(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[1]) < 0 {
		return 0, unix.EINVAL
	}
	return t.setAttrAt(unix.AT_FDCWD, a[0], 0, &vfs.SetAttr{Mask: vfs.SetAttrSize, Size: int64(a[1])})
}

// setAttrAt applies attr to the file at pathAddr (relative to dirfd); flags
// may hold AT_SYMLINK_NOFOLLOW, and AT_EMPTY_PATH with an empty path for
// dirfd itself.
func (t *Task) setAttrAt(dirfd int32, pathAddr uint64, flags int, attr *vfs.SetAttr) (uint64, error) {
	if attr != nil {
		attr.Creds = t.fsOwner().Creds
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 {
		if dir == nil {
			p = "."
		} else {
			return 0, dir.SetAttr(attr)
		}
	}
	return 0, t.tg.fs.SetAttrAt(dir, p, flags, attr)
}

func (t *Task) fdSetAttr(fd int32, attr *vfs.SetAttr) (uint64, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if attr != nil {
		attr.Creds = t.fsOwner().Creds
	}
	return 0, f.SetAttr(attr)
}

// utimeNsecNow and utimeNsecOmit are utimensat's special tv_nsec values.
const (
	utimeNsecNow  = (1 << 30) - 1
	utimeNsecOmit = (1 << 30) - 2
)

// timesAttr is the change utimensat makes with times ts (nil: both now).
func timesAttr(ts *[2]vfs.Timespec) *vfs.SetAttr {
	a := &vfs.SetAttr{Mask: vfs.SetAttrAtime | vfs.SetAttrMtime}
	if ts == nil {
		a.Atime.Nsec, a.Mtime.Nsec = utimeNsecNow, utimeNsecNow
		return a
	}
	a.Atime, a.Mtime = ts[0], ts[1]
	if ts[0].Nsec == utimeNsecOmit {
		a.Mask &^= vfs.SetAttrAtime
	}
	if ts[1].Nsec == utimeNsecOmit {
		a.Mask &^= vfs.SetAttrMtime
	}
	return a
}

func sysUtimensat(t *Task, a *sysArgs) (uint64, error) {
	flags := int(a.Int(3))
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	var ts *[2]vfs.Timespec
	if a[2] != 0 {
		var b [32]byte
		if err := t.tg.mm.CopyIn(a[2], b[:]); err != nil {
			return 0, err
		}
		ts = new([2]vfs.Timespec)
		for i := range 2 {
			sec, nsec := int64(binary.LittleEndian.Uint64(b[16*i:])), int64(binary.LittleEndian.Uint64(b[16*i+8:]))
			if nsec != utimeNsecNow && nsec != utimeNsecOmit && (nsec < 0 || nsec >= 1e9) {
				return 0, unix.EINVAL
			}
			ts[i] = vfs.Timespec{Sec: sec, Nsec: uint32(nsec)}
		}
	}
	attr := timesAttr(ts)
	if a[1] == 0 {
		// futimens(fd, ...): the descriptor itself.
		return t.fdSetAttr(a.Int(0), attr)
	}
	return t.setAttrAt(a.Int(0), a[1], flags, attr)
}

// utimesAt implements utime (usec false: struct utimbuf, no checks),
// utimes and futimesat (struct timeval[2], EINVAL for microseconds out of
// range), then acts as utimensat. futimesat with no path acts on dirfd
// itself.
func (t *Task) utimesAt(dirfd int32, pathAddr, timesAddr uint64, usec bool) (uint64, error) {
	var ts *[2]vfs.Timespec
	if timesAddr != 0 {
		var b [32]byte
		n := 16
		if usec {
			n = 32
		}
		if err := t.tg.mm.CopyIn(timesAddr, b[:n]); err != nil {
			return 0, err
		}
		ts = new([2]vfs.Timespec)
		for i := range 2 {
			if !usec {
				ts[i].Sec = int64(binary.LittleEndian.Uint64(b[8*i:]))
				continue
			}
			us := int64(binary.LittleEndian.Uint64(b[16*i+8:]))
			if us < 0 || us >= 1e6 {
				return 0, unix.EINVAL
			}
			ts[i] = vfs.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[16*i:])), Nsec: uint32(us * 1000)}
		}
	}
	attr := timesAttr(ts)
	if pathAddr == 0 && dirfd != unix.AT_FDCWD {
		return t.fdSetAttr(dirfd, attr)
	}
	return t.setAttrAt(dirfd, pathAddr, 0, attr)
}
