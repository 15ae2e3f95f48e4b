package kernel

import (
	"golang.org/x/sys/unix"
)

func sysMknod(t *Task, a *sysArgs) (uint64, error) {
	return t.mknodat(unix.AT_FDCWD, a[0], uint32(a[1]), a[2])
}

func sysMknodat(t *Task, a *sysArgs) (uint64, error) {
	return t.mknodat(a.Int(0), a[1], uint32(a[2]), a[3])
}

// mknodat implements mknodat(2): regular files, FIFOs and socket files
// (with no socket bound) in a tmpfs or the overlay root. The type is checked first, as
// Linux's may_mknod: EPERM for a directory and for device nodes (the
// sandbox's root lacks CAP_MKNOD here: its devices are the sentry's /dev),
// EINVAL for an unknown type.
func (t *Task) mknodat(dirfd int32, pathAddr uint64, mode uint32, dev uint64) (uint64, error) {
	switch mode & unix.S_IFMT {
	case 0, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFDIR:
		return 0, unix.EPERM
	default:
		return 0, unix.EINVAL
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	return 0, t.tg.fs.Mknodat(t.fsOwner(), dir, p, mode&unix.S_IFMT|mode&0o7777&^t.umask(), dev)
}
