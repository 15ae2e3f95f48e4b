package kernel

import "golang.org/x/sys/unix"

func sysGetxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.ENODATA) }

func sysLgetxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.ENODATA)
}

func sysFgetxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.ENODATA) }

func sysListxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, nil) }

func sysLlistxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, nil)
}

func sysFlistxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), nil) }

func sysSetxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.EROFS) }

func sysLsetxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.EROFS)
}

func sysFsetxattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.EROFS) }

func sysRemovexattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.EROFS) }

func sysLremovexattr(t *Task, a *sysArgs) (uint64, error) {
	return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.EROFS)
}

func sysFremovexattr(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.EROFS) }

// The sandbox's files have no extended attributes: reads find none
// (ENODATA, an empty list) and writes hit the read-only filesystem. The
// file must still exist.

func (t *Task) noXattrAt(pathAddr uint64, flags int, result error) (uint64, error) {
	if _, err := t.fstatat(unix.AT_FDCWD, pathAddr, flags); err != nil {
		return 0, err
	}
	return 0, result
}

func (t *Task) noXattrFD(fd int32, result error) (uint64, error) {
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	f.DecRef()
	return 0, result
}
