package vfs

import (
	"path"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// pathMax is Linux's PATH_MAX, including the NUL.
const pathMax = 4096

// FS is a process's filesystem context: the root and the working directory
// (Linux's fs_struct). Threads created with CLONE_FS share one FS; fork
// copies it with Fork.
//
// +stateify savable
type FS struct {
	// root is the sandbox root; immutable.
	root *Root

	// mu protects cwd. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// cwd is the canonical guest path of the working directory.
	cwd string
}

// NewFS returns an FS for root with working directory "/".
func NewFS(root *Root) *FS { return &FS{root: root, cwd: "/"} }

// Fork returns a copy of fs (fork without CLONE_FS).
func (fs *FS) Fork() *FS {
	return &FS{root: fs.root, cwd: fs.Getcwd()}
}

// Root returns the sandbox root.
func (fs *FS) Root() *Root { return fs.root }

// Getcwd returns the working directory's guest path (getcwd(2)).
func (fs *FS) Getcwd() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cwd
}

func cleanPath(p string) string { return path.Clean("/" + p) }

// fullPath returns the guest path to resolve for (dir, p): p if absolute,
// else p under dir (nil: the working directory). It is not cleaned, so the
// host resolves "..", symlinks and trailing slashes with Linux's rules.
func (fs *FS) fullPath(dir *File, p string) (string, error) {
	if p == "" {
		return "", unix.ENOENT
	}
	if len(p) >= pathMax {
		return "", unix.ENAMETOOLONG
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", unix.EINVAL
	}
	if p[0] == '/' {
		return foldSentryPath(p), nil
	}
	var base string
	if dir == nil {
		base = fs.Getcwd()
	} else {
		switch d := dir.impl.(type) {
		case *hostFile:
			if !d.isDir() {
				return "", unix.ENOTDIR
			}
			base = d.guestPath()
		case *devDir:
			base = d.guestPath()
		case *synthDir:
			if !d.isDir() {
				return "", unix.ENOTDIR
			}
			base = d.guestPath()
		case *tmpfsFile:
			var err error
			if base, err = d.dirPath(); err != nil {
				return "", err
			}
		default:
			return "", unix.ENOTDIR
		}
	}
	if base == "/" {
		return "/" + p, nil
	}
	return foldSentryPath(base + "/" + p), nil
}

// OpenAt opens path relative to dir (nil means AT_FDCWD) with open(2)
// flags and returns a new File. mode is used only with O_CREAT. Write
// intents on host files fail with EROFS; see the package doc. O_CLOEXEC is
// the caller's business (FDTable).
func (fs *FS) OpenAt(dir *File, p string, flags uint32, mode uint32) (*File, error) {
	return fs.OpenAtAs(Owner{}, dir, p, flags, mode)
}

// OpenAtAs is OpenAt for a caller whose created file o owns.
func (fs *FS) OpenAtAs(o Owner, dir *File, p string, flags uint32, mode uint32) (*File, error) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return nil, err
	}
	if flags&unix.O_PATH == 0 {
		flags |= oLargefile
	}
	return resolve(fs, full, func(m *Mount, p string) (*File, error) { return m.fs.open(fs, m, p, flags, mode, o) })
}

// Fstatat implements newfstatat(2) and statx(2)'s lookup: flags may hold
// AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH (an empty path then means dir
// itself, or the working directory if dir is nil).
func (fs *FS) Fstatat(dir *File, p string, flags int) (Stat, error) {
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 {
		if dir != nil {
			return dir.Stat()
		}
		p = "."
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return Stat{}, err
	}
	follow := flags&unix.AT_SYMLINK_NOFOLLOW == 0
	return resolve(fs, full, func(m *Mount, p string) (Stat, error) { return m.fs.stat(m, p, follow) })
}

// Readlinkat returns the target of the symlink at path (readlinkat(2)); an
// empty path reads dir itself when dir is an O_PATH symlink. EINVAL if it is
// not a symlink.
func (fs *FS) Readlinkat(dir *File, p string) (string, error) {
	if p == "" && dir != nil {
		switch d := dir.impl.(type) {
		case *hostFile:
			return hostReadlink(d.fd)
		case *tmpfsFile:
			return d.readlink()
		}
		return "", unix.ENOENT
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return "", err
	}
	return resolve(fs, full, func(m *Mount, p string) (string, error) { return m.fs.readlink(m, p) })
}

// Faccessat implements faccessat2(2): mode is F_OK or a mask of R_OK, W_OK,
// X_OK; flags may hold AT_SYMLINK_NOFOLLOW, AT_EACCESS and AT_EMPTY_PATH.
// W_OK on a host file fails with EROFS.
func (fs *FS) Faccessat(dir *File, p string, mode uint32, flags int) error {
	if mode&^uint32(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
		return unix.EINVAL
	}
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 {
		if dir == nil {
			p = "."
		} else {
			switch d := dir.impl.(type) {
			case *hostFile:
				return hostAccess(d.fd, mode, flags)
			case *devDir:
				return devDirAccess(mode)
			case *synthDir:
				return sentryAccess(&sentryNode{mode: d.mode}, mode)
			case *tmpfsFile:
				return d.node.access(mode)
			default:
				return deviceAccess(mode)
			}
		}
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	_, err = resolve(fs, full, func(m *Mount, p string) (struct{}, error) {
		return struct{}{}, m.fs.access(m, p, mode, flags)
	})
	return err
}

// devDirAccess is access(2) on the synthetic /dev: searchable and
// readable, not writable.
func devDirAccess(mode uint32) error {
	if mode&unix.W_OK != 0 {
		return unix.EROFS
	}
	return nil
}

func deviceAccess(mode uint32) error {
	if mode&unix.X_OK != 0 {
		return unix.EACCES
	}
	return nil
}

// Chdir changes the working directory to path relative to dir (chdir(2)
// with dir nil).
func (fs *FS) Chdir(dir *File, p string) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	cwd, err := resolve(fs, full, func(m *Mount, p string) (string, error) { return m.fs.chdir(m, p) })
	if err != nil {
		return err
	}
	fs.setCwd(cwd)
	return nil
}

func (fs *FS) setCwd(guest string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.cwd = guest
}

// Fchdir changes the working directory to the directory f (fchdir(2)).
func (fs *FS) Fchdir(f *File) error {
	switch d := f.impl.(type) {
	case *devDir:
		fs.setCwd("/dev")
		return nil
	case *synthDir:
		if !d.isDir() {
			return unix.ENOTDIR
		}
		fs.setCwd(d.path)
		return nil
	case *tmpfsFile:
		p, err := d.dirPath()
		if err != nil {
			return err
		}
		fs.setCwd(p)
		return nil
	}
	h, ok := f.impl.(*hostFile)
	if !ok || !h.isDir() {
		return unix.ENOTDIR
	}
	if h.broken != nil {
		return unix.EIO
	}
	if err := unix.Faccessat2(h.fd, "", unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	fs.setCwd(h.guestPath())
	return nil
}

// do runs a mutating operation on the mount path p routes to.
func (fs *FS) do(dir *File, p string, op func(m *Mount, p string) error) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	_, err = resolve(fs, full, func(m *Mount, p string) (struct{}, error) { return struct{}{}, op(m, p) })
	return err
}

// Mkdirat implements mkdirat(2) for a caller whose new directory o owns.
func (fs *FS) Mkdirat(o Owner, dir *File, p string, mode uint32) error {
	return fs.do(dir, p, func(m *Mount, p string) error { return m.fs.mkdir(m, p, mode, o) })
}

// Mknodat implements mknodat(2) for a caller whose new file o owns.
func (fs *FS) Mknodat(o Owner, dir *File, p string, mode uint32, dev uint64) error {
	return fs.do(dir, p, func(m *Mount, p string) error { return m.fs.mknod(m, p, mode, dev, o) })
}

// Symlinkat implements symlinkat(2) for a caller whose new symlink o owns.
func (fs *FS) Symlinkat(o Owner, target string, dir *File, p string) error {
	if target == "" {
		return unix.ENOENT
	}
	return fs.do(dir, p, func(m *Mount, p string) error { return m.fs.symlink(m, target, p, o) })
}

// Linkat implements linkat(2); flags may hold AT_SYMLINK_FOLLOW and
// AT_EMPTY_PATH (olddir itself, an O_TMPFILE file given a name).
func (fs *FS) Linkat(olddir *File, oldpath string, newdir *File, newpath string, flags int) error {
	if oldpath == "" && flags&unix.AT_EMPTY_PATH != 0 && olddir != nil {
		t, ok := olddir.impl.(*tmpfsFile)
		if !ok {
			if olddir.impl.guestPath() == "" {
				return unix.ENOENT
			}
			oldpath = olddir.impl.guestPath()
		} else {
			return fs.do(newdir, newpath, func(m *Mount, p string) error { return t.linkTo(m, p) })
		}
	}
	oldFull, err := fs.fullPath(olddir, oldpath)
	if err != nil {
		return err
	}
	newFull, err := fs.fullPath(newdir, newpath)
	if err != nil {
		return err
	}
	follow := flags&unix.AT_SYMLINK_FOLLOW != 0
	return resolve2(fs, oldFull, newFull, func(m *Mount, o, n string) error { return m.fs.link(m, o, n, follow) })
}

// Unlinkat implements unlinkat(2) (with AT_REMOVEDIR: rmdir).
func (fs *FS) Unlinkat(dir *File, p string, flags int) error {
	return fs.do(dir, p, func(m *Mount, p string) error { return m.fs.unlink(m, p, flags&unix.AT_REMOVEDIR != 0) })
}

// renameFlags are the renameat2 flags Renameat implements.
const renameFlags = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE

// Renameat implements renameat2(2) with flags 0, RENAME_NOREPLACE or
// RENAME_EXCHANGE (RENAME_WHITEOUT: EINVAL).
func (fs *FS) Renameat(olddir *File, oldpath string, newdir *File, newpath string, flags uint32) error {
	if flags&^renameFlags != 0 || flags == renameFlags {
		return unix.EINVAL
	}
	oldFull, err := fs.fullPath(olddir, oldpath)
	if err != nil {
		return err
	}
	newFull, err := fs.fullPath(newdir, newpath)
	if err != nil {
		return err
	}
	return resolve2(fs, oldFull, newFull, func(m *Mount, o, n string) error { return m.fs.rename(m, o, n, flags) })
}

// SetAttr is a change of attributes: chmod, chown, truncate and utimes.
// Mask says which fields apply.
type SetAttr struct {
	Mask uint32
	// Mode holds the permission bits (07777) for SetAttrMode.
	Mode uint32
	// UID and GID for SetAttrUID and SetAttrGID.
	UID, GID uint32
	// Size for SetAttrSize.
	Size int64
	// Atime and Mtime for SetAttrAtime and SetAttrMtime; a Nsec of
	// UTIME_NOW means the current time.
	Atime, Mtime Timespec
	// Creds, if not nil, are the caller's, whose right to the change a
	// tmpfs checks (perm.go).
	Creds *Creds
}

// SetAttr mask bits.
const (
	SetAttrMode = 1 << iota
	SetAttrUID
	SetAttrGID
	SetAttrSize
	SetAttrAtime
	SetAttrMtime
)

// SetAttrAt implements the path forms of chmod, chown, utimensat,
// truncate, setxattr and removexattr; flags may hold AT_SYMLINK_NOFOLLOW.
// a nil changes nothing (setxattr: only the checks).
func (fs *FS) SetAttrAt(dir *File, p string, flags int, a *SetAttr) error {
	if a == nil {
		a = &SetAttr{}
	}
	follow := flags&unix.AT_SYMLINK_NOFOLLOW == 0
	return fs.do(dir, p, func(m *Mount, p string) error { return m.fs.setAttr(m, p, follow, a) })
}

// SetAttr implements the descriptor forms (fchmod, fchown, futimens,
// ftruncate, fsetxattr) on f: EROFS for host files, the change for tmpfs
// files, success for sentry devices (their attributes are fixed; Linux
// allows the call). a nil changes nothing.
func (f *File) SetAttr(a *SetAttr) error {
	switch impl := f.impl.(type) {
	case *hostFile:
		return unix.EROFS
	case *tmpfsFile:
		if a == nil {
			return nil
		}
		return impl.node.fs.setAttrNode(impl.node, a)
	default:
		return nil
	}
}

// FDAlias reports whether path (relative to dir) names one of the
// process's own descriptors: /dev/stdin, /dev/stdout, /dev/stderr,
// /dev/fd/N or /proc/self/fd/N, matched on the lexically cleaned guest
// path. On the host these are /proc magic links, which the sentry never
// follows; the kernel opens such a path by duplicating descriptor fd from
// its FDTable instead.
func (fs *FS) FDAlias(dir *File, p string) (fd int32, ok bool) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return -1, false
	}
	c := cleanPath(full)
	switch c {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, prefix := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if rest, found := strings.CutPrefix(c, prefix); found {
			n, err := strconv.ParseInt(rest, 10, 32)
			if err != nil || n < 0 || rest[0] == '+' {
				return -1, false
			}
			return int32(n), true
		}
	}
	return -1, false
}
