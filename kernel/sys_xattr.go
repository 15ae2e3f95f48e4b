package kernel

import "golang.org/x/sys/unix"

func init() {
	registerSyscall(unix.SYS_GETXATTR, "getxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.ENODATA) })
	registerSyscall(unix.SYS_LGETXATTR, "lgetxattr", func(t *Task, a *sysArgs) (uint64, error) {
		return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.ENODATA)
	})
	registerSyscall(unix.SYS_FGETXATTR, "fgetxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.ENODATA) })
	registerSyscall(unix.SYS_LISTXATTR, "listxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, nil) })
	registerSyscall(unix.SYS_LLISTXATTR, "llistxattr", func(t *Task, a *sysArgs) (uint64, error) {
		return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, nil)
	})
	registerSyscall(unix.SYS_FLISTXATTR, "flistxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), nil) })
	registerSyscall(unix.SYS_SETXATTR, "setxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.EROFS) })
	registerSyscall(unix.SYS_LSETXATTR, "lsetxattr", func(t *Task, a *sysArgs) (uint64, error) {
		return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.EROFS)
	})
	registerSyscall(unix.SYS_FSETXATTR, "fsetxattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.EROFS) })
	registerSyscall(unix.SYS_REMOVEXATTR, "removexattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrAt(a[0], 0, unix.EROFS) })
	registerSyscall(unix.SYS_LREMOVEXATTR, "lremovexattr", func(t *Task, a *sysArgs) (uint64, error) {
		return t.noXattrAt(a[0], unix.AT_SYMLINK_NOFOLLOW, unix.EROFS)
	})
	registerSyscall(unix.SYS_FREMOVEXATTR, "fremovexattr", func(t *Task, a *sysArgs) (uint64, error) { return t.noXattrFD(a.Int(0), unix.EROFS) })
}

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
