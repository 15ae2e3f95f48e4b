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

	// mu protects cwd and chroot. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// cwd is the canonical guest path of the working directory, from the
	// sandbox's root.
	cwd string
	// chroot is the canonical guest path of the context's root directory
	// (chroot(2)); "" is the sandbox's root.
	chroot string
}

// NewFS returns an FS for root with working directory "/".
func NewFS(root *Root) *FS { return &FS{root: root, cwd: "/"} }

// Fork returns a copy of fs (fork without CLONE_FS).
func (fs *FS) Fork() *FS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return &FS{root: fs.root, cwd: fs.cwd, chroot: fs.chroot}
}

// Root returns the sandbox root.
func (fs *FS) Root() *Root { return fs.root }

// Getcwd returns the working directory's path as the process sees it
// (getcwd(2)): below its root directory, or "(unreachable)" followed by
// the sandbox path for a directory outside it, as Linux.
func (fs *FS) Getcwd() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.viewLocked(fs.cwd, "(unreachable)")
}

// viewLocked returns guest path p as seen from the context's root
// directory: outside marks a path that is not below it.
//
// Preconditions: fs.mu is held.
func (fs *FS) viewLocked(p, outside string) string {
	switch {
	case fs.chroot == "":
		return p
	case p == fs.chroot:
		return "/"
	case strings.HasPrefix(p, fs.chroot+"/"):
		return p[len(fs.chroot):]
	}
	return outside + p
}

// View returns guest path p (from the sandbox's root) as the context sees
// it: below its root directory, or p itself when p lies outside it (as
// Linux's /proc links show what the reader cannot reach).
func (fs *FS) View(p string) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.viewLocked(p, "")
}

// RootPath returns the guest path of the context's root directory from
// the sandbox's root ("/" unless chrooted).
func (fs *FS) RootPath() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.chroot == "" {
		return "/"
	}
	return fs.chroot
}

// CwdPath returns the guest path of the working directory from the
// sandbox's root (where /proc/PID/cwd leads).
func (fs *FS) CwdPath() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cwd
}

func (fs *FS) cwdAndRoot() (string, string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cwd, fs.chroot
}

// Chroot makes the directory at p (relative to dir) the context's root
// directory (chroot(2)) for a caller with credentials c (whose Proc
// resolves /proc/PID/root): the lookup's errors first, then EPERM unless
// permitted (the caller has CAP_SYS_CHROOT). The working directory stays
// where it is, possibly outside the new root.
func (fs *FS) Chroot(c *Creds, dir *File, p string, permitted bool) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	d, err := resolve(fs, full, func(m *Mount, p string) (string, error) { return m.fs.chdir(c, m, p) })
	if err != nil {
		return err
	}
	if !permitted {
		return unix.EPERM
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if d == "/" {
		d = ""
	}
	fs.chroot = d
	return nil
}

// inRoot confines guest path full to the context's root directory: an
// absolute path (from a symlink's target when abs) starts at it, and ".."
// stops at it. Outside a chroot, full is returned as is and the
// filesystems resolve ".." themselves.
func (fs *FS) inRoot(full string, abs bool) string {
	_, root := fs.cwdAndRoot()
	if root == "" {
		return full
	}
	if abs {
		full = root + full
	}
	return confine(full, root)
}

// confine resolves "." and ".." of absolute path full lexically, never
// climbing above root when the walk reaches it (a path that starts
// outside root climbs to "/"), and keeps a trailing slash.
func confine(full, root string) string {
	var out []string
	for _, c := range strings.Split(full, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(out) > 0 && "/"+strings.Join(out, "/") != root {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, c)
		}
	}
	s := "/" + strings.Join(out, "/")
	if strings.HasSuffix(full, "/") && s != "/" {
		s += "/"
	}
	return s
}

// cleanPath returns p cleaned lexically as an absolute path. An absolute
// path that is clean already costs no allocation.
func cleanPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Clean("/" + p)
}

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
	cwd, root := fs.cwdAndRoot()
	if p[0] == '/' {
		if root != "" {
			return confine(root+p, root), nil
		}
		return foldSentryPath(p), nil
	}
	var base string
	if dir == nil {
		base = cwd
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
	if root != "" {
		return confine(base+"/"+p, root), nil
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
	n := fs.notifier()
	watched := n.active() && flags&unix.O_PATH == 0
	existed := true
	if watched && flags&unix.O_CREAT != 0 {
		_, err := fs.Fstatat(dir, p, 0)
		existed = err == nil
	}
	f, err := resolve(fs, full, func(m *Mount, p string) (*File, error) { return m.fs.open(fs, m, p, flags, mode, o) })
	if err != nil || flags&unix.O_PATH != 0 {
		return f, err
	}
	f.notifier = n
	if watched {
		if !existed {
			fs.notifyCreate(dir, p)
		}
		f.notify(InOpen)
		if existed && flags&unix.O_TRUNC != 0 && f.writable() && f.FileType() == unix.S_IFREG {
			f.notify(InModify)
		}
	}
	return f, nil
}

// Fstatat implements newfstatat(2) and statx(2)'s lookup: flags may hold
// AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH (an empty path then means dir
// itself, or the working directory if dir is nil).
func (fs *FS) Fstatat(dir *File, p string, flags int) (Stat, error) {
	return fs.FstatatAs(nil, dir, p, flags)
}

// Readlinkat returns the target of the symlink at path (readlinkat(2)); an
// empty path reads dir itself when dir is an O_PATH symlink. EINVAL if it is
// not a symlink.
func (fs *FS) Readlinkat(dir *File, p string) (string, error) {
	return fs.ReadlinkatAs(nil, dir, p)
}

// ReadlinkatAs is Readlinkat for a caller with credentials c, who needs
// search permission on every directory the lookup passes (EACCES).
func (fs *FS) ReadlinkatAs(c *Creds, dir *File, p string) (string, error) {
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
	return resolve(fs, full, func(m *Mount, p string) (string, error) { return m.fs.readlink(c, m, p) })
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
				switch {
				case d.bind != nil && !d.bind.ro:
					return unix.Faccessat2(d.fd, "", mode, unix.AT_EMPTY_PATH|flags&unix.AT_EACCESS)
				case d.ovl != nil:
					// The overlay is writable: a change copies up.
					return unix.Faccessat2(d.fd, "", mode&^unix.W_OK, unix.AT_EMPTY_PATH|flags&unix.AT_EACCESS)
				}
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
		return struct{}{}, m.fs.access(nil, m, p, mode, flags)
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
	return fs.ChdirAs(nil, dir, p)
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
	return fs.created(dir, p, fs.do(dir, p, func(m *Mount, p string) error { return m.fs.mkdir(m, p, mode, o) }))
}

// created reports the new name (dir, p) if err is nil, and returns err.
func (fs *FS) created(dir *File, p string, err error) error {
	if err == nil {
		fs.notifyCreate(dir, p)
	}
	return err
}

// Mknodat implements mknodat(2) for a caller whose new file o owns.
func (fs *FS) Mknodat(o Owner, dir *File, p string, mode uint32, dev uint64) error {
	return fs.created(dir, p, fs.do(dir, p, func(m *Mount, p string) error { return m.fs.mknod(m, p, mode, dev, o) }))
}

// Symlinkat implements symlinkat(2) for a caller whose new symlink o owns.
func (fs *FS) Symlinkat(o Owner, target string, dir *File, p string) error {
	if target == "" {
		return unix.ENOENT
	}
	return fs.created(dir, p, fs.do(dir, p, func(m *Mount, p string) error { return m.fs.symlink(m, target, p, o) }))
}

// Linkat implements linkat(2); flags may hold AT_SYMLINK_FOLLOW and
// AT_EMPTY_PATH (olddir itself, an O_TMPFILE file given a name).
func (fs *FS) Linkat(olddir *File, oldpath string, newdir *File, newpath string, flags int) error {
	return fs.LinkatAs(nil, olddir, oldpath, newdir, newpath, flags)
}

// LinkatAs is Linkat for a caller with credentials c: search permission on
// the way to both paths, write and search permission on the new name's
// directory, and Linux's protected_hardlinks rule (Creds.mayLink), for a
// file given by path or by descriptor (an O_TMPFILE file made with O_EXCL
// is ENOENT). Unlike Linux, AT_EMPTY_PATH does not ask for
// CAP_DAC_READ_SEARCH of a caller other than the one who opened the file.
func (fs *FS) LinkatAs(c *Creds, olddir *File, oldpath string, newdir *File, newpath string, flags int) error {
	if oldpath == "" && flags&unix.AT_EMPTY_PATH != 0 && olddir != nil {
		t, ok := olddir.impl.(*tmpfsFile)
		if !ok {
			if olddir.impl.guestPath() == "" {
				return unix.ENOENT
			}
			oldpath = olddir.impl.guestPath()
		} else {
			err := fs.do(newdir, newpath, func(m *Mount, p string) error { return t.linkTo(c, m, p) })
			if newFull, ferr := fs.fullPath(newdir, newpath); err == nil && ferr == nil {
				fs.notifyLink(olddir, "", false, newFull)
			}
			return err
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
	err = resolve2(fs, oldFull, newFull, func(m *Mount, o, n string) error { return m.fs.link(c, m, o, n, follow) })
	if err == nil {
		fs.notifyLink(nil, oldFull, follow, newFull)
	}
	return err
}

// Unlinkat implements unlinkat(2) (with AT_REMOVEDIR: rmdir).
func (fs *FS) Unlinkat(dir *File, p string, flags int) error {
	return fs.UnlinkatAs(Owner{}, dir, p, flags)
}

// renameFlags are the renameat2 flags Renameat implements.
const renameFlags = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE

// Renameat implements renameat2(2) with flags 0, RENAME_NOREPLACE or
// RENAME_EXCHANGE (RENAME_WHITEOUT: EINVAL).
func (fs *FS) Renameat(olddir *File, oldpath string, newdir *File, newpath string, flags uint32) error {
	return fs.RenameatAs(Owner{}, olddir, oldpath, newdir, newpath, flags)
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
	err := fs.do(dir, p, func(m *Mount, p string) error { return m.fs.setAttr(m, p, follow, a) })
	if err == nil {
		fs.notifyAttr(dir, p, follow, a)
	}
	return err
}

// SetAttr implements the descriptor forms (fchmod, fchown, futimens,
// ftruncate, fsetxattr) on f: EROFS for host files, the change for tmpfs
// files, success for sentry devices (their attributes are fixed; Linux
// allows the call). a nil changes nothing.
func (f *File) SetAttr(a *SetAttr) error {
	switch impl := f.impl.(type) {
	case *hostFile:
		if impl.bind != nil {
			return impl.setAttrBind(a)
		}
		if impl.ovl != nil {
			if a == nil {
				return nil
			}
			// Linux's overlayfs copies the file up; this description
			// keeps reading the lower one.
			return impl.ovl.setAttrPath(impl.guestPath(), a)
		}
		return unix.EROFS
	case *tmpfsFile:
		if a == nil {
			return nil
		}
		err := impl.node.fs.setAttrNode(impl.node, a)
		if err == nil {
			f.notify(attrEvents(a))
		}
		return err
	case *implFile:
		if s, ok := impl.impl.(ImplSetAttr); ok && a != nil {
			return s.SetAttr(f, a)
		}
		return nil
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
	who, _, fd, ok := fs.DescriptorAlias(dir, p)
	if !ok || who != "" {
		return -1, false
	}
	return fd, true
}

// DescriptorAlias is FDAlias (who "") that also matches the descriptors of
// any process through /proc: /proc/<pid>/fd/N, /proc/<pid>/task/<tid>/fd/N,
// /proc/self/task/<tid>/fd/N and /proc/thread-self/fd/N. who is then
// <pid>, "self" or "thread-self", and tid is <tid> or "".
func (fs *FS) DescriptorAlias(dir *File, p string) (who, tid string, fd int32, ok bool) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return "", "", -1, false
	}
	c := cleanPath(full)
	switch c {
	case "/dev/stdin":
		return "", "", 0, true
	case "/dev/stdout":
		return "", "", 1, true
	case "/dev/stderr":
		return "", "", 2, true
	}
	var n string
	if rest, found := strings.CutPrefix(c, "/dev/fd/"); found {
		n = rest
	} else if rest, found := strings.CutPrefix(c, "/proc/"); found {
		comps := strings.Split(rest, "/")
		switch {
		case len(comps) == 3 && comps[0] == "self" && comps[1] == "fd":
		case len(comps) == 3 && comps[1] == "fd":
			who = comps[0]
		case len(comps) == 5 && comps[0] != "thread-self" && comps[1] == "task" && comps[3] == "fd":
			who, tid = comps[0], comps[2]
		default:
			return "", "", -1, false
		}
		n = comps[len(comps)-1]
	} else {
		return "", "", -1, false
	}
	v, err := strconv.ParseInt(n, 10, 32)
	if err != nil || v < 0 || n[0] == '+' || (who != "" || tid != "") && strconv.FormatInt(v, 10) != n {
		return "", "", -1, false
	}
	return who, tid, int32(v), true
}
