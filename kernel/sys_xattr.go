package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Extended attributes: user.* on the files of the overlay root, tmpfs and
// volumes (vfs/xattr.go); the read-only root and the sentry's files have
// none.

func sysGetxattr(t *Task, a *sysArgs) (uint64, error) { return t.getxattr(a, 0) }

func sysLgetxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.getxattr(a, unix.AT_SYMLINK_NOFOLLOW)
}

func sysFgetxattr(t *Task, a *sysArgs) (uint64, error) { return t.getxattr(a, -1) }

func sysListxattr(t *Task, a *sysArgs) (uint64, error) { return t.listxattr(a, 0) }

func sysLlistxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.listxattr(a, unix.AT_SYMLINK_NOFOLLOW)
}

func sysFlistxattr(t *Task, a *sysArgs) (uint64, error) { return t.listxattr(a, -1) }

func sysSetxattr(t *Task, a *sysArgs) (uint64, error) { return t.setxattr(a, 0) }

func sysLsetxattr(t *Task, a *sysArgs) (uint64, error) {
	return t.setxattr(a, unix.AT_SYMLINK_NOFOLLOW)
}

func sysFsetxattr(t *Task, a *sysArgs) (uint64, error) { return t.setxattr(a, -1) }

func sysRemovexattr(t *Task, a *sysArgs) (uint64, error) { return t.removexattr(a, 0) }

func sysLremovexattr(t *Task, a *sysArgs) (uint64, error) {
	return t.removexattr(a, unix.AT_SYMLINK_NOFOLLOW)
}

func sysFremovexattr(t *Task, a *sysArgs) (uint64, error) { return t.removexattr(a, -1) }

// xattrNameMax is XATTR_NAME_MAX.
const xattrNameMax = 255

// copyInXattrName reads an attribute name: ERANGE when too long.
func (t *Task) copyInXattrName(addr uint64) (string, error) {
	s, err := t.tg.mm.CopyInString(addr, xattrNameMax+1)
	if err == errNameTooLong || err == nil && len(s) > xattrNameMax {
		return "", unix.ERANGE
	}
	return s, err
}

// xattrOn runs op on argument 0: a path (flags 0 or AT_SYMLINK_NOFOLLOW)
// or, with flags -1, a descriptor.
func (t *Task) xattrOn(a *sysArgs, flags int, op *vfs.XattrOp) ([]byte, error) {
	op.Creds = t.fsOwner().Creds
	if flags < 0 {
		f, err := t.getFile(a.Int(0))
		if err != nil {
			return nil, err
		}
		defer f.DecRef()
		if f.StatusFlags()&unix.O_PATH != 0 {
			return nil, unix.EBADF
		}
		return f.Xattr(op)
	}
	p, err := t.copyInPath(a[0])
	if err != nil {
		return nil, err
	}
	return t.tg.fs.XattrAt(nil, p, flags&unix.AT_SYMLINK_NOFOLLOW == 0, op)
}

// copyOutXattr copies v to the buffer at addr of size bytes: its length
// when size is 0, ERANGE when it does not fit.
func (t *Task) copyOutXattr(v []byte, addr, size uint64) (uint64, error) {
	switch {
	case size == 0:
		return uint64(len(v)), nil
	case uint64(len(v)) > size:
		return 0, unix.ERANGE
	}
	if err := t.tg.mm.CopyOut(addr, v); err != nil {
		return 0, err
	}
	return uint64(len(v)), nil
}

func (t *Task) getxattr(a *sysArgs, flags int) (uint64, error) {
	name, err := t.copyInXattrName(a[1])
	if err != nil {
		return 0, err
	}
	v, err := t.xattrOn(a, flags, &vfs.XattrOp{Kind: vfs.XattrGet, Name: name})
	if err != nil {
		return 0, err
	}
	return t.copyOutXattr(v, a[2], a[3])
}

func (t *Task) listxattr(a *sysArgs, flags int) (uint64, error) {
	v, err := t.xattrOn(a, flags, &vfs.XattrOp{Kind: vfs.XattrList})
	if err != nil {
		return 0, err
	}
	return t.copyOutXattr(v, a[1], a[2])
}

func (t *Task) setxattr(a *sysArgs, flags int) (uint64, error) {
	name, err := t.copyInXattrName(a[1])
	if err != nil {
		return 0, err
	}
	if a[3] > 65536 {
		return 0, unix.E2BIG
	}
	v := make([]byte, a[3])
	if err := t.tg.mm.CopyIn(a[2], v); err != nil {
		return 0, err
	}
	_, err = t.xattrOn(a, flags, &vfs.XattrOp{Kind: vfs.XattrSet, Name: name, Value: v, Flags: int(a.Int(4))})
	return 0, err
}

func (t *Task) removexattr(a *sysArgs, flags int) (uint64, error) {
	name, err := t.copyInXattrName(a[1])
	if err != nil {
		return 0, err
	}
	_, err = t.xattrOn(a, flags, &vfs.XattrOp{Kind: vfs.XattrRemove, Name: name})
	return 0, err
}
