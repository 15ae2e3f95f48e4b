package vfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The host root as a Filesystem: read-only. Lookups resolve on the host
// (Root.lookupStat); every mutating operation fails with EROFS after the
// checks Linux makes first on a read-only mount.

func (r *Root) fsType() string { return "ro-host" }

func (r *Root) open(_ *FS, _ *Mount, full string, flags, _ uint32, _ Owner) (*File, error) {
	pathOnly := flags&unix.O_PATH != 0
	lookupFlags := int(flags & (unix.O_NOFOLLOW | unix.O_DIRECTORY))
	if !pathOnly && flags&unix.O_TMPFILE == unix.O_TMPFILE {
		// O_TMPFILE creates an unnamed file in a directory.
		fd, err := r.lookup(full, unix.O_DIRECTORY)
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
	pfd, st, err := r.lookupStat(full, lookupFlags)
	if err != nil {
		if err == unix.ENOENT && !pathOnly && flags&unix.O_CREAT != 0 {
			return nil, r.createError(full)
		}
		return nil, err
	}
	if !pathOnly && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		unix.Close(pfd)
		return nil, unix.EEXIST
	}
	return r.openFound(full, pfd, st, flags)
}

// openFound opens the file at guest path full that a lookup with flags'
// O_NOFOLLOW and O_DIRECTORY found: pfd, an O_PATH descriptor it takes
// over, whose attributes are st. A lookup made without O_DIRECTORY is
// checked here (ENOTDIR), as the host's would have failed.
func (r *Root) openFound(full string, pfd int, st Stat, flags uint32) (*File, error) {
	pathOnly := flags&unix.O_PATH != 0
	lookupFlags := int(flags & (unix.O_NOFOLLOW | unix.O_DIRECTORY))
	if !pathOnly && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		lookupFlags |= unix.O_NOFOLLOW
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(pfd)
		}
	}()
	if lookupFlags&unix.O_DIRECTORY != 0 && st.FileType() != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	h := &hostFile{
		root:        r,
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

// createError is the error for creating full, which does not exist: EROFS
// if its parent is a directory, else the parent's lookup error.
func (r *Root) createError(full string) error {
	parent := full
	if i := strings.LastIndexByte(strings.TrimRight(full, "/"), '/'); i >= 0 {
		parent = full[:i+1]
	}
	fd, err := r.lookup(parent, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return unix.EROFS
}

func followFlag(follow bool) int {
	if follow {
		return 0
	}
	return unix.O_NOFOLLOW
}

func (r *Root) stat(_ *Creds, _ *Mount, full string, follow bool) (Stat, error) {
	fd, st, err := r.lookupStat(full, followFlag(follow))
	if err != nil {
		return Stat{}, err
	}
	unix.Close(fd)
	return st, nil
}

func (r *Root) readlink(_ *Creds, _ *Mount, full string) (string, error) {
	fd, err := r.lookup(full, unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return hostReadlink(fd)
}

// hostReadlink reads the symlink a host O_PATH descriptor is open on:
// EINVAL for another file.
func hostReadlink(fd int) (string, error) {
	target, err := readlinkAt(fd, "")
	if err == unix.ENOENT {
		// readlinkat on an empty path of a non-symlink.
		return "", unix.EINVAL
	}
	return target, err
}

// readlinkAt reads the symlink name in the host directory open at dirfd
// (name "": the symlink dirfd itself is open on): EINVAL for another file.
func readlinkAt(dirfd int, name string) (string, error) {
	var small [256]byte
	buf := small[:]
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) || len(buf) >= pathMax {
			return string(buf[:n]), nil
		}
		buf = make([]byte, pathMax)
	}
}

func (r *Root) access(_ *Creds, _ *Mount, full string, mode uint32, flags int) error {
	fd, err := r.lookup(full, followFlag(flags&unix.AT_SYMLINK_NOFOLLOW == 0))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return hostAccess(fd, mode, flags)
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

func (r *Root) chdir(_ *Creds, _ *Mount, full string) (string, error) {
	fd, err := r.lookup(full, unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if err := unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
		return "", err
	}
	return r.guestPath(fd, full), nil
}

func (r *Root) statfs(_ *Creds, _ *Mount, full string) ([StatfsSize]byte, error) {
	fd, err := r.lookup(full, 0)
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return [StatfsSize]byte{}, err
	}
	return encodeStatfs(st), nil
}

// mustExist returns EROFS if full names something (the operation would
// modify it) and the lookup error otherwise.
func (r *Root) mustExist(full string, follow bool) error {
	fd, err := r.lookup(full, followFlag(follow))
	if err != nil {
		return err
	}
	unix.Close(fd)
	return unix.EROFS
}

// mustNotExist returns EEXIST if full names something and otherwise what
// creating it fails with (EROFS, or the parent's lookup error).
func (r *Root) mustNotExist(full string) error {
	fd, err := r.lookup(full, unix.O_NOFOLLOW)
	if err == nil {
		unix.Close(fd)
		return unix.EEXIST
	}
	if err != unix.ENOENT {
		return err
	}
	return r.createError(full)
}

func (r *Root) mkdir(_ *Mount, full string, _ uint32, _ Owner) error { return r.mustNotExist(full) }

func (r *Root) mknod(_ *Mount, full string, _ uint32, _ uint64, _ Owner) error {
	return r.mustNotExist(full)
}

func (r *Root) symlink(_ *Mount, _, full string, _ Owner) error { return r.mustNotExist(full) }

func (r *Root) link(_ *Creds, _ *Mount, oldFull, newFull string, follow bool) error {
	if err := r.mustExist(oldFull, follow); err != unix.EROFS {
		return err
	}
	return r.mustNotExist(newFull)
}

func (r *Root) unlink(_ *Creds, _ *Mount, full string, _ bool) error { return r.mustExist(full, false) }

func (r *Root) rename(_ *Creds, _ *Mount, oldFull, _ string, _ uint32) error {
	return r.mustExist(oldFull, false)
}

func (r *Root) setAttr(_ *Mount, full string, follow bool, _ *SetAttr) error {
	return r.mustExist(full, follow)
}

func (r *Root) bindSocket(m *Mount, p string, mode uint32, o Owner, _ BoundSocket) error {
	return r.mknod(m, p, unix.S_IFSOCK|mode, 0, o)
}

func (r *Root) lookupSocket(c *Creds, m *Mount, p string) (BoundSocket, error) {
	return noSocket(c, r, m, p)
}
