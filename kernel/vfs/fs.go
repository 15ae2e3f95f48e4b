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
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return nil, err
	}
	if flags&unix.O_PATH == 0 {
		flags |= oLargefile
	}
	pathOnly := flags&unix.O_PATH != 0
	if sp, n, owned, err := sentryLookup(full, flags&unix.O_NOFOLLOW == 0); owned {
		if err == unix.ENOENT && !pathOnly && flags&unix.O_CREAT != 0 {
			return nil, sentryCreateError(full)
		}
		if err != nil {
			return nil, err
		}
		return openSentry(sp, n, flags)
	}
	const tmpfile = unix.O_TMPFILE
	lookupFlags := int(flags & (unix.O_NOFOLLOW | unix.O_DIRECTORY))
	if !pathOnly && flags&tmpfile == tmpfile {
		// O_TMPFILE creates an unnamed file in a directory.
		fd, err := fs.root.lookup(full, unix.O_DIRECTORY)
		if err != nil {
			return nil, err
		}
		unix.Close(fd)
		return nil, unix.EROFS
	}
	if !pathOnly && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		// O_CREAT|O_EXCL never follows a final symlink: a dangling one
		// is EEXIST too.
		lookupFlags |= unix.O_NOFOLLOW
	}
	pfd, st, err := fs.root.lookupStat(full, lookupFlags)
	if err != nil {
		if err == unix.ENOENT && !pathOnly && flags&unix.O_CREAT != 0 {
			return nil, fs.createError(full)
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(pfd)
		}
	}()
	if !pathOnly && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return nil, unix.EEXIST
	}
	h := &hostFile{
		root:        fs.root,
		lookedUp:    full,
		lookupFlags: lookupFlags,
		pathOnly:    pathOnly,
		mode:        st.Mode,
		ident:       identityOf(&st),
		fd:          -1,
	}
	if pathOnly {
		h.fd, ok = pfd, true
		return newFile(unix.O_PATH|flags&unix.O_ACCMODE, h), nil
	}
	switch st.FileType() {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		if flags&unix.O_ACCMODE != unix.O_RDONLY {
			return nil, unix.EISDIR
		}
	case unix.S_IFLNK:
		// Only reachable with O_NOFOLLOW.
		return nil, unix.ELOOP
	}
	if !openable(st.FileType()) {
		// Host devices, FIFOs and sockets are never opened: see openable.
		return nil, unix.EACCES
	}
	if flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0 {
		return nil, unix.EROFS
	}
	fd, err := reopen(pfd, h.isDir())
	if err != nil {
		return nil, err
	}
	h.fd = fd
	return newFile(flags, h), nil
}

// sentryCreateError is the error for creating full in a sentry directory,
// where it does not exist: EROFS if its parent is a directory, else the
// parent's lookup error.
func sentryCreateError(full string) error {
	parent := strings.TrimRight(full, "/")
	parent = parent[:strings.LastIndexByte(parent, '/')+1]
	if _, _, _, err := sentryLookup(parent, true); err != nil {
		return err
	}
	return unix.EROFS
}

// createError is the error for creating full, which does not exist: EROFS
// if its parent is a directory, else the parent's lookup error.
func (fs *FS) createError(full string) error {
	parent := full
	if i := strings.LastIndexByte(strings.TrimRight(full, "/"), '/'); i >= 0 {
		parent = full[:i+1]
	}
	fd, err := fs.root.lookup(parent, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return unix.EROFS
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
	if sp, n, owned, err := sentryLookup(full, flags&unix.AT_SYMLINK_NOFOLLOW == 0); owned {
		if err != nil {
			return Stat{}, err
		}
		return sentryStat(sp, n), nil
	}
	lf := 0
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		lf = unix.O_NOFOLLOW
	}
	fd, st, err := fs.root.lookupStat(full, lf)
	if err != nil {
		return Stat{}, err
	}
	unix.Close(fd)
	return st, nil
}

// Readlinkat returns the target of the symlink at path (readlinkat(2)); an
// empty path reads dir itself when dir is an O_PATH symlink. EINVAL if it is
// not a symlink.
func (fs *FS) Readlinkat(dir *File, p string) (string, error) {
	var fd int
	if p == "" && dir != nil {
		h, ok := dir.impl.(*hostFile)
		if !ok {
			return "", unix.ENOENT
		}
		fd = h.fd
	} else {
		full, err := fs.fullPath(dir, p)
		if err != nil {
			return "", err
		}
		if _, n, owned, err := sentryLookup(full, false); owned {
			if err != nil {
				return "", err
			}
			if n.fileType() != unix.S_IFLNK {
				return "", unix.EINVAL
			}
			return n.target, nil
		}
		var lerr error
		fd, lerr = fs.root.lookup(full, unix.O_NOFOLLOW)
		if lerr != nil {
			return "", lerr
		}
		defer unix.Close(fd)
	}
	buf := make([]byte, pathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		if err == unix.ENOENT {
			// readlinkat on an empty path of a non-symlink.
			return "", unix.EINVAL
		}
		return "", err
	}
	return string(buf[:n]), nil
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
		} else if h, ok := dir.impl.(*hostFile); ok {
			return hostAccess(h.fd, mode, flags)
		} else if _, ok := dir.impl.(*devDir); ok {
			return devDirAccess(mode)
		} else if d, ok := dir.impl.(*synthDir); ok {
			return sentryAccess(&sentryNode{mode: d.mode}, mode)
		} else {
			return deviceAccess(mode)
		}
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	if _, n, owned, err := sentryLookup(full, flags&unix.AT_SYMLINK_NOFOLLOW == 0); owned {
		if err != nil {
			return err
		}
		return sentryAccess(n, mode)
	}
	lf := 0
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		lf = unix.O_NOFOLLOW
	}
	fd, err := fs.root.lookup(full, lf)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return hostAccess(fd, mode, flags)
}

// devDirAccess is access(2) on the synthetic /dev: searchable and
// readable, not writable.
func devDirAccess(mode uint32) error {
	if mode&unix.W_OK != 0 {
		return unix.EROFS
	}
	return nil
}

func hostAccess(fd int, mode uint32, flags int) error {
	if mode&unix.W_OK != 0 {
		st, err := hostStat(fd)
		if err != nil {
			return err
		}
		switch st.FileType() {
		case unix.S_IFREG, unix.S_IFDIR, unix.S_IFLNK:
			return unix.EROFS
		}
	}
	return unix.Faccessat2(fd, "", mode&^unix.W_OK, unix.AT_EMPTY_PATH|flags&unix.AT_EACCESS)
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
	if sp, n, owned, err := sentryLookup(full, true); owned {
		if err != nil {
			return err
		}
		if n.fileType() != unix.S_IFDIR {
			return unix.ENOTDIR
		}
		fs.setCwd(sp)
		return nil
	}
	fd, err := fs.root.lookup(full, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	fs.setCwd(fs.root.guestPath(fd, full))
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
	p := h.guestPath()
	fs.mu.Lock()
	fs.cwd = p
	fs.mu.Unlock()
	return nil
}

// mustExist returns EROFS if path names something (the operation would
// modify it) and the lookup error otherwise.
func (fs *FS) mustExist(dir *File, p string, flags int) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	if _, _, owned, err := sentryLookup(full, flags&unix.O_NOFOLLOW == 0); owned {
		if err != nil {
			return err
		}
		return unix.EROFS
	}
	fd, err := fs.root.lookup(full, flags)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return unix.EROFS
}

// mustNotExist returns EEXIST if path names something and otherwise what
// creating it fails with (EROFS, or the parent's lookup error).
func (fs *FS) mustNotExist(dir *File, p string) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	if _, _, owned, err := sentryLookup(full, false); owned {
		switch err {
		case nil:
			return unix.EEXIST
		case unix.ENOENT:
			return sentryCreateError(full)
		default:
			return err
		}
	}
	fd, err := fs.root.lookup(full, unix.O_NOFOLLOW)
	if err == nil {
		unix.Close(fd)
		return unix.EEXIST
	}
	if err != unix.ENOENT {
		return err
	}
	return fs.createError(full)
}

// Mkdirat implements mkdirat(2): EEXIST or EROFS.
func (fs *FS) Mkdirat(dir *File, p string, mode uint32) error { return fs.mustNotExist(dir, p) }

// Mknodat implements mknodat(2): EEXIST or EROFS.
func (fs *FS) Mknodat(dir *File, p string, mode uint32, dev uint64) error {
	return fs.mustNotExist(dir, p)
}

// Symlinkat implements symlinkat(2): EEXIST or EROFS.
func (fs *FS) Symlinkat(target string, dir *File, p string) error {
	if target == "" {
		return unix.ENOENT
	}
	return fs.mustNotExist(dir, p)
}

// Linkat implements linkat(2): the source must exist, then EEXIST or EROFS.
func (fs *FS) Linkat(olddir *File, oldpath string, newdir *File, newpath string, flags int) error {
	lf := unix.O_NOFOLLOW
	if flags&unix.AT_SYMLINK_FOLLOW != 0 {
		lf = 0
	}
	if err := fs.mustExist(olddir, oldpath, lf); err != unix.EROFS {
		return err
	}
	return fs.mustNotExist(newdir, newpath)
}

// Unlinkat implements unlinkat(2) (with AT_REMOVEDIR: rmdir): EROFS if the
// path exists.
func (fs *FS) Unlinkat(dir *File, p string, flags int) error {
	return fs.mustExist(dir, p, unix.O_NOFOLLOW)
}

// Renameat implements renameat2(2): EROFS if the source exists.
func (fs *FS) Renameat(olddir *File, oldpath string, newdir *File, newpath string) error {
	if err := fs.mustExist(olddir, oldpath, unix.O_NOFOLLOW); err != unix.EROFS {
		return err
	}
	if _, err := fs.fullPath(newdir, newpath); err != nil {
		return err
	}
	return unix.EROFS
}

// SetAttrAt implements the path forms of chmod, chown, utimensat,
// truncate, setxattr and removexattr: EROFS if the path exists. flags may
// hold AT_SYMLINK_NOFOLLOW.
func (fs *FS) SetAttrAt(dir *File, p string, flags int) error {
	lf := 0
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		lf = unix.O_NOFOLLOW
	}
	return fs.mustExist(dir, p, lf)
}

// SetAttr implements the descriptor forms (fchmod, fchown, futimens,
// ftruncate, fsetxattr) on f: EROFS for host files, success for sentry
// devices (their attributes are fixed; Linux allows the call), EINVAL for
// ftruncate-like changes on pipes and stdio is the caller's choice.
func (f *File) SetAttr() error {
	switch f.impl.(type) {
	case *hostFile:
		return unix.EROFS
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
