package kernel

import (
	"encoding/binary"
	"errors"
	"path"
	"strconv"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

func sysClose(t *Task, a *sysArgs) (uint64, error) { return 0, t.closeFD(a.Int(0)) }

func sysStat(t *Task, a *sysArgs) (uint64, error) { return t.stat(unix.AT_FDCWD, a[0], a[1], 0) }

func sysLstat(t *Task, a *sysArgs) (uint64, error) {
	return t.stat(unix.AT_FDCWD, a[0], a[1], unix.AT_SYMLINK_NOFOLLOW)
}

func sysNewfstatat(t *Task, a *sysArgs) (uint64, error) {
	return t.stat(a.Int(0), a[1], a[2], int(a.Int(3)))
}

func sysReadlink(t *Task, a *sysArgs) (uint64, error) {
	return t.readlink(unix.AT_FDCWD, a[0], a[1], a[2])
}

func sysReadlinkat(t *Task, a *sysArgs) (uint64, error) {
	return t.readlink(a.Int(0), a[1], a[2], a[3])
}

func sysAccess(t *Task, a *sysArgs) (uint64, error) { return t.access(unix.AT_FDCWD, a[0], a[1], 0) }

func sysFaccessat(t *Task, a *sysArgs) (uint64, error) { return t.access(a.Int(0), a[1], a[2], 0) }

func sysFaccessat2(t *Task, a *sysArgs) (uint64, error) {
	return t.access(a.Int(0), a[1], a[2], int(a.Int(3)))
}

func sysDup(t *Task, a *sysArgs) (uint64, error) { return fdResult(t.tg.fdTable.Dup(a.Int(0))) }

func sysDup2(t *Task, a *sysArgs) (uint64, error) {
	return t.dupOver(a.Int(0), a.Int(1), func() (int32, error) { return t.tg.fdTable.Dup2(a.Int(0), a.Int(1)) })
}

func sysPipe(t *Task, a *sysArgs) (uint64, error) { return t.pipe2(a[0], 0) }

func sysPipe2(t *Task, a *sysArgs) (uint64, error) { return t.pipe2(a[0], uint32(a[1])) }

// Operations that modify the filesystem: vfs routes them to the
// filesystem of the path (a tmpfs changes; the host root answers EROFS
// after the checks Linux makes first). The attribute changes are in
// sys_attr.go.

func sysMkdir(t *Task, a *sysArgs) (uint64, error) { return t.mkdirat(unix.AT_FDCWD, a[0], a[1]) }

func sysMkdirat(t *Task, a *sysArgs) (uint64, error) { return t.mkdirat(a.Int(0), a[1], a[2]) }

func sysUnlink(t *Task, a *sysArgs) (uint64, error) { return t.unlinkat(unix.AT_FDCWD, a[0], 0) }

func sysRmdir(t *Task, a *sysArgs) (uint64, error) {
	return t.unlinkat(unix.AT_FDCWD, a[0], unix.AT_REMOVEDIR)
}

func sysUnlinkat(t *Task, a *sysArgs) (uint64, error) {
	return t.unlinkat(a.Int(0), a[1], int(a.Int(2)))
}

func sysRename(t *Task, a *sysArgs) (uint64, error) {
	return t.renameat(unix.AT_FDCWD, a[0], unix.AT_FDCWD, a[1], 0)
}

func sysRenameat(t *Task, a *sysArgs) (uint64, error) {
	return t.renameat(a.Int(0), a[1], a.Int(2), a[3], 0)
}

func sysRenameat2(t *Task, a *sysArgs) (uint64, error) {
	return t.renameat(a.Int(0), a[1], a.Int(2), a[3], uint32(a[4]))
}

func sysSymlink(t *Task, a *sysArgs) (uint64, error) { return t.symlinkat(a[0], unix.AT_FDCWD, a[1]) }

func sysSymlinkat(t *Task, a *sysArgs) (uint64, error) { return t.symlinkat(a[0], a.Int(1), a[2]) }

func sysLink(t *Task, a *sysArgs) (uint64, error) {
	return t.linkat(unix.AT_FDCWD, a[0], unix.AT_FDCWD, a[1], 0)
}

func sysLinkat(t *Task, a *sysArgs) (uint64, error) {
	return t.linkat(a.Int(0), a[1], a.Int(2), a[3], int(a.Int(4)))
}

// pathMax is PATH_MAX: the longest path a syscall accepts, NUL included.
const pathMax = 4096

func (t *Task) copyInPath(addr uint64) (string, error) {
	p, err := t.tg.mm.CopyInString(addr, pathMax-1)
	if err == errNameTooLong {
		return "", unix.ENAMETOOLONG
	}
	return p, err
}

// dirFile returns the directory file for a *at syscall: nil for AT_FDCWD,
// or a reference the caller releases with the returned function.
func (t *Task) dirFile(dirfd int32) (*vfs.File, func(), error) {
	if dirfd == unix.AT_FDCWD {
		return nil, func() {}, nil
	}
	f, err := t.getFile(dirfd)
	if err != nil {
		return nil, nil, err
	}
	return f, f.DecRef, nil
}

// atPath reads the path argument and resolves the directory of a *at
// syscall. The caller must call release.
func (t *Task) atPath(dirfd int32, pathAddr uint64) (dir *vfs.File, p string, release func(), err error) {
	if p, err = t.copyInPath(pathAddr); err != nil {
		return nil, "", nil, err
	}
	// An absolute path ignores dirfd, even a bad one.
	if len(p) > 0 && p[0] == '/' {
		return nil, p, func() {}, nil
	}
	dir, release, err = t.dirFile(dirfd)
	return dir, p, release, err
}

func fdResult(fd int32, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	return uint64(fd), nil
}

func (t *Task) openat(dirfd int32, pathAddr uint64, flags, mode uint32) (uint64, error) {
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	mode &^= t.umask()
	var f *vfs.File
	old, alias, err := t.fdAliasFile(dir, p)
	if alias {
		// /dev/stdin, /proc/self/fd/N, /proc/<pid>/fd/N...: magic links
		// that Linux follows to the descriptor's file and opens again.
		if err != nil {
			return 0, err
		}
		if flags&unix.O_NOFOLLOW != 0 && flags&unix.O_PATH == 0 {
			old.DecRef()
			return 0, unix.ELOOP
		}
		f, err = t.tg.fs.ReopenAs(t.fsOwner().Creds, old, flags&^unix.O_CLOEXEC)
		old.DecRef()
		if err != nil {
			return 0, err
		}
	} else if f, err = t.tg.fs.OpenAtAs(t.fsOwner(), dir, p, flags&^unix.O_CLOEXEC, mode); err != nil {
		return 0, err
	}
	if f, err = t.ttyOpened(f, flags&^unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	// A named pipe opened for one end waits for the other.
	if err := f.WaitFifo(t.cancelChan()); err != nil {
		f.DecRef()
		return 0, vfsErr(err)
	}
	defer f.DecRef()
	return fdResult(t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}))
}

func sysOpen(t *Task, a *sysArgs) (uint64, error) {
	return t.openat(unix.AT_FDCWD, a[0], uint32(a[1]), uint32(a[2]))
}

func sysOpenat(t *Task, a *sysArgs) (uint64, error) {
	return t.openat(a.Int(0), a[1], uint32(a[2]), uint32(a[3]))
}

func sysCreat(t *Task, a *sysArgs) (uint64, error) {
	return t.openat(unix.AT_FDCWD, a[0], unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, uint32(a[1]))
}

func sysCloseRange(t *Task, a *sysArgs) (uint64, error) {
	first, last, flags := uint32(a[0]), uint32(a[1]), uint32(a[2])
	if first > last || flags&^uint32(unix.CLOSE_RANGE_CLOEXEC|unix.CLOSE_RANGE_UNSHARE) != 0 {
		return 0, unix.EINVAL
	}
	if flags&unix.CLOSE_RANGE_CLOEXEC != 0 {
		t.tg.fdTable.ForEach(func(fd int32, _ *vfs.File, _ vfs.FDFlags) {
			if uint32(fd) >= first && uint32(fd) <= last {
				t.tg.fdTable.SetFlags(fd, vfs.FDFlags{CloseOnExec: true})
			}
		})
		return 0, nil
	}
	t.tg.closingFiles(func(fd int32, _ vfs.FDFlags) bool { return uint32(fd) >= first && uint32(fd) <= last }, func() bool {
		t.tg.fdTable.CloseRange(first, last)
		return true
	})
	return 0, nil
}

func sysFstat(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := st.EncodeStat()
	return 0, t.tg.mm.CopyOut(a[1], b[:])
}

func (t *Task) stat(dirfd int32, pathAddr, statAddr uint64, flags int) (uint64, error) {
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT) != 0 {
		return 0, unix.EINVAL
	}
	st, err := t.fstatat(dirfd, pathAddr, flags)
	if err != nil {
		return 0, err
	}
	b := st.EncodeStat()
	return 0, t.tg.mm.CopyOut(statAddr, b[:])
}

func (t *Task) fstatat(dirfd int32, pathAddr uint64, flags int) (vfs.Stat, error) {
	p, err := t.copyInPath(pathAddr)
	if err != nil {
		return vfs.Stat{}, err
	}
	var dir *vfs.File
	if p == "" || p[0] != '/' {
		d, release, err := t.dirFile(dirfd)
		if err != nil {
			return vfs.Stat{}, err
		}
		defer release()
		dir = d
	}
	if fd, ok := t.tg.fs.FDAlias(dir, p); ok && flags&unix.AT_SYMLINK_NOFOLLOW == 0 {
		f, err := t.getFile(fd)
		if err != nil {
			return vfs.Stat{}, unix.ENOENT
		}
		defer f.DecRef()
		return f.Stat()
	}
	return t.tg.fs.FstatatAs(t.fsOwner().Creds, dir, p, flags&(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH))
}

// fdAliasFile returns the file of the descriptor that p (relative to dir)
// names through a magic link (vfs.FS.DescriptorAlias): /dev/std{in,out,err},
// /dev/fd/N and /proc/self/fd/N for the caller's own, /proc/<pid>/fd/N,
// /proc/<pid>/task/<tid>/fd/N and /proc/thread-self/fd/N for any process
// the caller may access as ptrace would; alias is false if p is none of
// them. A descriptor that is not open, or a process that does not exist,
// is ENOENT; one the caller may not access is EACCES.
func (t *Task) fdAliasFile(dir *vfs.File, p string) (f *vfs.File, alias bool, err error) {
	who, tid, fd, ok := t.tg.fs.DescriptorAlias(dir, p)
	if !ok {
		return nil, false, nil
	}
	if who == "" {
		if f, err = t.getFile(fd); err != nil {
			return nil, true, unix.ENOENT
		}
		return f, true, nil
	}
	target := t
	if who != "thread-self" && who != "self" {
		if target = t.procLookup(who); target == nil {
			return nil, true, unix.ENOENT
		}
	}
	if tid != "" {
		th := t.procLookup(tid)
		if th == nil || th.tg != target.tg {
			return nil, true, unix.ENOENT
		}
	}
	tg := target.tg
	tg.mu.Lock()
	creds, fdt := target.creds, tg.fdTable
	tg.mu.Unlock()
	if fdt == nil {
		return nil, true, unix.ENOENT
	}
	if tg != t.tg && !t.mayAccess(&creds) {
		return nil, true, unix.EACCES
	}
	if f, _, err = fdt.Get(fd); err != nil {
		return nil, true, unix.ENOENT
	}
	return f, true, nil
}

// errNotProcLink means a path is not one of the links the kernel answers.
var errNotProcLink = errors.New("not a process link")

// procLink answers readlink for the links that name one of the process's
// descriptors: /dev/fd/N, /dev/std{in,out,err} and /proc/self/fd/N.
func (t *Task) procLink(dir *vfs.File, p string) (string, error) {
	fd, ok := t.tg.fs.FDAlias(dir, p)
	if !ok {
		return "", errNotProcLink
	}
	switch path.Clean(p) {
	case "/dev/stdin", "/dev/stdout", "/dev/stderr":
		return "/proc/self/fd/" + strconv.Itoa(int(fd)), nil
	}
	f, err := t.getFile(fd)
	if err != nil {
		return "", unix.ENOENT
	}
	defer f.DecRef()
	return f.LinkName(), nil
}

// statx flags that only tune caching and are ignored here.
const statxSyncMask = unix.AT_STATX_FORCE_SYNC | unix.AT_STATX_DONT_SYNC

func sysStatx(t *Task, a *sysArgs) (uint64, error) {
	flags := int(a.Int(2))
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT|statxSyncMask) != 0 {
		return 0, unix.EINVAL
	}
	if uint32(a[3])&unix.STATX__RESERVED != 0 {
		return 0, unix.EINVAL
	}
	st, err := t.fstatat(a.Int(0), a[1], flags)
	if err != nil {
		return 0, err
	}
	b := st.EncodeStatx()
	return 0, t.tg.mm.CopyOut(a[4], b[:])
}

func (t *Task) readlink(dirfd int32, pathAddr, bufAddr, size uint64) (uint64, error) {
	if int64(size) <= 0 {
		return 0, unix.EINVAL
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	target, err := t.procLink(dir, p)
	if err == errNotProcLink {
		target, err = t.tg.fs.ReadlinkatAs(t.fsOwner().Creds, dir, p)
	}
	if err != nil {
		return 0, err
	}
	n := min(uint64(len(target)), size)
	return n, t.tg.mm.CopyOut(bufAddr, []byte(target[:n]))
}

func (t *Task) access(dirfd int32, pathAddr, mode uint64, flags int) (uint64, error) {
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EACCESS|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	p, err := t.copyInPath(pathAddr)
	if err != nil {
		return 0, err
	}
	var dir *vfs.File
	if p == "" || p[0] != '/' {
		d, release, err := t.dirFile(dirfd)
		if err != nil {
			return 0, err
		}
		defer release()
		dir = d
	}
	return 0, t.tg.fs.FaccessatAs(t.accessCreds(flags), dir, p, uint32(mode), flags)
}

// accessCreds are the credentials access(2) checks with: the effective
// ones with AT_EACCESS, else the real user and group IDs, with the
// permitted capabilities for a real root and none for anyone else (as
// Linux's access_override_creds).
func (t *Task) accessCreds(flags int) *vfs.Creds {
	c := t.fsOwner().Creds
	if flags&unix.AT_EACCESS != 0 {
		return c
	}
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	c.FSUID, c.FSGID, c.Caps = t.creds.UID, t.creds.GID, 0
	if t.creds.UID == 0 {
		c.Caps = t.creds.CapPermitted
	}
	return c
}

func sysGetcwd(t *Task, a *sysArgs) (uint64, error) {
	cwd := t.tg.fs.Getcwd()
	b := append([]byte(cwd), 0)
	if uint64(len(b)) > a[1] {
		return 0, unix.ERANGE
	}
	return uint64(len(b)), t.tg.mm.CopyOut(a[0], b)
}

func sysChdir(t *Task, a *sysArgs) (uint64, error) {
	p, err := t.copyInPath(a[0])
	if err != nil {
		return 0, err
	}
	return 0, t.tg.fs.ChdirAs(t.fsOwner().Creds, nil, p)
}

func sysFchdir(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, t.tg.fs.Fchdir(f)
}

func sysDup3(t *Task, a *sysArgs) (uint64, error) {
	flags := uint32(a[2])
	if flags&^unix.O_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	return t.dupOver(a.Int(0), a.Int(1), func() (int32, error) {
		return t.tg.fdTable.Dup3(a.Int(0), a.Int(1), vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	})
}

// dupOver runs dup, a dup2 or dup3 of oldfd onto newfd, which closes the
// file open at newfd (dropping the process's POSIX locks on it).
func (t *Task) dupOver(oldfd, newfd int32, dup func() (int32, error)) (uint64, error) {
	var fd int32
	var err error
	t.tg.closingFiles(func(fd int32, _ vfs.FDFlags) bool { return fd == newfd && newfd != oldfd }, func() bool {
		fd, err = dup()
		return err == nil
	})
	return fdResult(fd, err)
}

// File status flags that F_SETFL may change.
const setflMask = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_DIRECT | unix.O_NOATIME

func sysFcntl(t *Task, a *sysArgs) (uint64, error) {
	fd, cmd := a.Int(0), int(a.Int(1))
	fdt := t.tg.fdTable
	switch cmd {
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		min := a.Int(2)
		if min < 0 {
			return 0, unix.EINVAL
		}
		return fdResult(fdt.DupFD(fd, min, vfs.FDFlags{CloseOnExec: cmd == unix.F_DUPFD_CLOEXEC}))
	case unix.F_GETFD:
		fl, err := fdt.Flags(fd)
		return uint64(fl.ToLinux()), err
	case unix.F_SETFD:
		return 0, fdt.SetFlags(fd, vfs.FDFlagsFromLinux(int(a.Int(2))))
	}
	f, err := t.getFile(fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	if r, ok, err := t.fcntlOwner(f, fd, cmd, a[2]); ok {
		return r, err
	}
	switch cmd {
	case unix.F_GETFL:
		return uint64(f.StatusFlags()), nil
	case unix.F_SETFL:
		old, mask := f.StatusFlags(), uint32(setflMask)
		if !f.HasAsync() {
			mask &^= unix.O_ASYNC
		}
		f.SetStatusFlags(old&^mask | uint32(a[2])&mask)
		if on := uint32(a[2])&mask&unix.O_ASYNC != 0; on != (old&unix.O_ASYNC != 0) {
			if on {
				t.ttyAsyncOwner(f)
			}
			t.k.setAsync(f, fd, on)
		}
		return 0, nil
	case unix.F_GETLK, unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_GETLK, unix.F_OFD_SETLK, unix.F_OFD_SETLKW:
		return 0, t.fcntlLock(f, cmd, a[2])
	case unix.F_GETPIPE_SZ:
		n, err := f.PipeCapacity()
		return uint64(n), err
	case unix.F_SETPIPE_SZ:
		n, err := f.SetPipeCapacity(uint32(a[2]))
		return uint64(n), err
	case unix.F_ADD_SEALS:
		_, err := f.Seals(uint32(a[2]), false, t.k.writableShared)
		return 0, err
	case unix.F_GET_SEALS:
		seals, err := f.Seals(0, true, nil)
		return uint64(seals), err
	default:
		return 0, unix.EINVAL
	}
}

func (t *Task) pipe2(addr uint64, flags uint32) (uint64, error) {
	if flags&^uint32(unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_DIRECT) != 0 {
		return 0, unix.EINVAL
	}
	r, w := vfs.NewPipe(flags & unix.O_NONBLOCK)
	defer r.DecRef()
	defer w.DecRef()
	fds, err := t.tg.fdTable.NewFDs([]*vfs.File{r, w}, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	if err != nil {
		return 0, err
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:], uint32(fds[0]))
	binary.LittleEndian.PutUint32(b[4:], uint32(fds[1]))
	if err := t.tg.mm.CopyOut(addr, b[:]); err != nil {
		t.tg.fdTable.Remove(fds[0])
		t.tg.fdTable.Remove(fds[1])
		return 0, err
	}
	return 0, nil
}

// fsOwner returns who owns the files the task creates: its filesystem
// user and group IDs.
func (t *Task) fsOwner() vfs.Owner {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	c := t.creds
	return vfs.Owner{UID: c.FSUID, GID: c.FSGID, Creds: &vfs.Creds{FSUID: c.FSUID, FSGID: c.FSGID, Groups: c.Groups, Caps: c.CapEffective, Proc: procView{t}}}
}

// umask returns the process's file mode creation mask.
func (t *Task) umask() uint32 {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return t.tg.umask
}

func (t *Task) mkdirat(dirfd int32, pathAddr, mode uint64) (uint64, error) {
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	return 0, t.tg.fs.Mkdirat(t.fsOwner(), dir, p, uint32(mode)&0o7777&^t.umask())
}

func (t *Task) unlinkat(dirfd int32, pathAddr uint64, flags int) (uint64, error) {
	if flags&^unix.AT_REMOVEDIR != 0 {
		return 0, unix.EINVAL
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	return 0, t.tg.fs.UnlinkatAs(t.fsOwner(), dir, p, flags)
}

func (t *Task) renameat(olddirfd int32, oldAddr uint64, newdirfd int32, newAddr uint64, flags uint32) (uint64, error) {
	od, op, r1, err := t.atPath(olddirfd, oldAddr)
	if err != nil {
		return 0, err
	}
	defer r1()
	nd, np, r2, err := t.atPath(newdirfd, newAddr)
	if err != nil {
		return 0, err
	}
	defer r2()
	return 0, t.tg.fs.RenameatAs(t.fsOwner(), od, op, nd, np, flags)
}

func (t *Task) symlinkat(targetAddr uint64, dirfd int32, pathAddr uint64) (uint64, error) {
	target, err := t.copyInPath(targetAddr)
	if err != nil {
		return 0, err
	}
	dir, p, release, err := t.atPath(dirfd, pathAddr)
	if err != nil {
		return 0, err
	}
	defer release()
	return 0, t.tg.fs.Symlinkat(t.fsOwner(), target, dir, p)
}

func (t *Task) linkat(olddirfd int32, oldAddr uint64, newdirfd int32, newAddr uint64, flags int) (uint64, error) {
	if flags&^(unix.AT_SYMLINK_FOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	od, op, r1, err := t.atPath(olddirfd, oldAddr)
	if err != nil {
		return 0, err
	}
	defer r1()
	nd, np, r2, err := t.atPath(newdirfd, newAddr)
	if err != nil {
		return 0, err
	}
	defer r2()
	if fd, ok := t.tg.fs.FDAlias(od, op); ok && flags&unix.AT_SYMLINK_FOLLOW != 0 {
		// linkat of /proc/self/fd/N with AT_SYMLINK_FOLLOW links the
		// descriptor's file (an O_TMPFILE file given a name, as
		// open(2) suggests).
		f, err := t.getFile(fd)
		if err != nil {
			return 0, unix.ENOENT
		}
		defer f.DecRef()
		return 0, t.tg.fs.LinkatAs(t.fsOwner().Creds, f, "", nd, np, unix.AT_EMPTY_PATH)
	}
	return 0, t.tg.fs.LinkatAs(t.fsOwner().Creds, od, op, nd, np, flags)
}

func sysFtruncate(t *Task, a *sysArgs) (uint64, error) {
	if int64(a[1]) < 0 {
		return 0, unix.EINVAL // before the descriptor, as Linux
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.Truncate(int64(a[1]))
}

func sysStatfs(t *Task, a *sysArgs) (uint64, error) {
	p, err := t.copyInPath(a[0])
	if err != nil {
		return 0, err
	}
	b, err := t.tg.fs.StatfsAs(t.fsOwner().Creds, nil, p)
	if err != nil {
		return 0, err
	}
	return 0, t.tg.mm.CopyOut(a[1], b[:])
}

func sysFstatfs(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	b, err := f.Statfs()
	if err != nil {
		return 0, err
	}
	return 0, t.tg.mm.CopyOut(a[1], b[:])
}
