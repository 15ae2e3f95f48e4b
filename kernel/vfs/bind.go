package vfs

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// bindFS is a host directory bind-mounted into the sandbox (snap run -v
// HOST:PATH[:ro]): the one place where the sandbox writes to the host.
// Its files are the host's and are not saved in an image: the mount
// records its host directory, which must exist at restore (or be
// remapped: WithRestoreBinds).
//
// Confinement. Every lookup is openat2 from the bind directory with
// RESOLVE_IN_ROOT: ".." stops at the bind directory and absolute symlinks
// restart there, so nothing outside it on the host is reached, and a
// change (create, remove, rename, link) names its final component
// relative to a parent found that way, never following a final symlink
// on the host. The checks of Root apply: nothing on a host pseudo
// filesystem, no FIFO, device or socket opened, mknod of regular files
// only.
//
// +stateify savable
type bindFS struct {
	// point is the mount point; immutable.
	point string
	// hostDir is the host directory as given; changed only by a restore
	// that remaps it.
	hostDir string
	// ro makes the mount read-only (EROFS after Linux's checks); immutable.
	ro bool

	// mu protects fd and opened. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// fd is the O_PATH descriptor of the host directory; host state.
	fd int `state:"nosave"`
	// opened reports whether fd is valid.
	opened bool `state:"nosave"`
	// openErr is why reopening after a restore failed.
	openErr error `state:"nosave"`
}

type restoreBindsKey struct{}

// WithRestoreBinds returns a context in which restored bind mounts use
// binds[point] as their host directory instead of the saved one.
func WithRestoreBinds(ctx context.Context, binds map[string]string) context.Context {
	return context.WithValue(ctx, restoreBindsKey{}, binds)
}

func openBindDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := refuseHost(fd); err != nil {
		unix.Close(fd)
		return -1, ErrPseudoRoot
	}
	return fd, nil
}

// afterLoad reopens the host directory. Invoked by stateify.
func (b *bindFS) afterLoad(ctx context.Context) {
	if err := b.restore(ctx); err != nil {
		reportRestoreError(ctx, err)
	}
}

// restore reopens the host directory after a restore unless that is done
// already; it returns the failure only to its first caller.
func (b *bindFS) restore(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened || b.openErr != nil {
		return nil
	}
	if m, ok := ctx.Value(restoreBindsKey{}).(map[string]string); ok && m[b.point] != "" {
		b.hostDir = m[b.point]
	}
	fd, err := openBindDir(b.hostDir)
	if err != nil {
		b.openErr = fmt.Errorf("volume %s: host directory %s: %w", b.point, b.hostDir, err)
		return b.openErr
	}
	b.fd, b.opened = fd, true
	return nil
}

func (b *bindFS) dirFD() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.opened {
		return -1, unix.EIO
	}
	return b.fd, nil
}

func (b *bindFS) fsType() string { return "bind" }

// leaves returns the crossing for a path that climbs out of the mount
// with "..", which the mount table resolves from the mount point's
// parent (a lexical approximation of Linux's walk), or nil.
func (b *bindFS) leaves(rest string, second bool) error {
	if c := path.Clean(rest); c == ".." || strings.HasPrefix(c, "../") {
		full := path.Join(b.point, rest)
		if strings.HasSuffix(rest, "/") {
			full += "/"
		}
		return &crossing{full: full, second: second}
	}
	return nil
}

// lookup opens rest (relative to the bind directory) O_PATH, confined to
// it, and checks it as Root.lookupStat does.
func (b *bindFS) lookup(rest string, extra int) (int, Stat, error) {
	dfd, err := b.dirFD()
	if err != nil {
		return -1, Stat{}, err
	}
	if rest == "" {
		rest = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(unix.O_PATH | unix.O_CLOEXEC | extra&(unix.O_NOFOLLOW|unix.O_DIRECTORY)),
		Resolve: resolveFlags,
	}
	return openStatChecked(dfd, rest, &how)
}

// parent resolves the directory holding rest's final component; name is
// that component ("" for the mount's root).
func (b *bindFS) parent(rest string) (fd int, name string, trailing bool, err error) {
	trailing = strings.HasSuffix(rest, "/")
	clean := strings.TrimRight(rest, "/")
	dir, name := "", clean
	if i := strings.LastIndexByte(clean, '/'); i >= 0 {
		dir, name = clean[:i], clean[i+1:]
	}
	fd, st, err := b.lookup(dir, unix.O_DIRECTORY)
	if err != nil {
		return -1, "", false, err
	}
	if st.FileType() != unix.S_IFDIR {
		unix.Close(fd)
		return -1, "", false, unix.ENOTDIR
	}
	return fd, name, trailing, nil
}

// guestPathOf returns the guest path of a descriptor inside the mount.
func (b *bindFS) guestPathOf(fd int, rest string) string {
	dfd, err := b.dirFD()
	if err == nil {
		base, err1 := fdHostPath(dfd)
		hp, err2 := fdHostPath(fd)
		if err1 == nil && err2 == nil {
			if hp == base {
				return b.point
			}
			if strings.HasPrefix(hp, base+"/") {
				return b.point + hp[len(base):]
			}
		}
	}
	return path.Clean(b.point + "/" + rest)
}

func (b *bindFS) stat(_ *Creds, _ *Mount, rest string, follow bool) (Stat, error) {
	if err := b.leaves(rest, false); err != nil {
		return Stat{}, err
	}
	fd, st, err := b.lookup(rest, followFlag(follow))
	if err != nil {
		return Stat{}, err
	}
	unix.Close(fd)
	return st, nil
}

func (b *bindFS) readlink(_ *Creds, _ *Mount, rest string) (string, error) {
	if err := b.leaves(rest, false); err != nil {
		return "", err
	}
	fd, _, err := b.lookup(rest, unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return hostReadlink(fd)
}

func (b *bindFS) access(_ *Creds, _ *Mount, rest string, mode uint32, flags int) error {
	if err := b.leaves(rest, false); err != nil {
		return err
	}
	fd, _, err := b.lookup(rest, followFlag(flags&unix.AT_SYMLINK_NOFOLLOW == 0))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if b.ro {
		return hostAccess(fd, mode, flags)
	}
	return unix.Faccessat2(fd, "", mode, unix.AT_EMPTY_PATH|flags&unix.AT_EACCESS)
}

func (b *bindFS) chdir(_ *Creds, _ *Mount, rest string) (string, error) {
	if err := b.leaves(rest, false); err != nil {
		return "", err
	}
	fd, _, err := b.lookup(rest, unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if err := unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
		return "", err
	}
	return b.guestPathOf(fd, rest), nil
}

func (b *bindFS) statfs(_ *Creds, _ *Mount, rest string) ([StatfsSize]byte, error) {
	if err := b.leaves(rest, false); err != nil {
		return [StatfsSize]byte{}, err
	}
	fd, _, err := b.lookup(rest, 0)
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	defer unix.Close(fd)
	return b.statfsFD(fd)
}

func (b *bindFS) statfsFD(fd int) ([StatfsSize]byte, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return [StatfsSize]byte{}, err
	}
	out := encodeStatfs(st)
	if !b.ro {
		flags := uint64(st.Flags) &^ unix.ST_RDONLY
		for i := range 8 {
			out[statfsFlagsOffset+i] = byte(flags >> (8 * i))
		}
	}
	return out, nil
}

// change runs op on the parent of rest and the final name, after the
// checks that come before EROFS on a read-only mount: "." and ".." and
// the mount's root are refused as Linux refuses them (dotErr), an
// existing name with exists, a missing one with missing (nil: go on).
func (b *bindFS) change(rest string, dotErr error, op func(pfd int, name string, trailing bool) error) error {
	if err := b.leaves(rest, false); err != nil {
		return err
	}
	pfd, name, trailing, err := b.parent(rest)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if name == "" || name == "." || name == ".." {
		return dotErr
	}
	if len(name) > 255 {
		return unix.ENAMETOOLONG
	}
	return op(pfd, name, trailing)
}

// exists reports whether name exists in directory pfd (not following it).
func exists(pfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// createCheck is what creating name in pfd fails with on a read-only
// mount, or nil.
func (b *bindFS) createCheck(pfd int, name string) error {
	if exists(pfd, name) {
		return unix.EEXIST
	}
	if b.ro {
		return unix.EROFS
	}
	return nil
}

func (b *bindFS) mkdir(_ *Mount, rest string, mode uint32, _ Owner) error {
	return b.change(rest, unix.EEXIST, func(pfd int, name string, _ bool) error {
		if err := b.createCheck(pfd, name); err != nil {
			return err
		}
		return unix.Mkdirat(pfd, name, mode&0o7777)
	})
}

func (b *bindFS) mknod(_ *Mount, rest string, mode uint32, _ uint64, _ Owner) error {
	return b.change(rest, unix.EEXIST, func(pfd int, name string, _ bool) error {
		if err := b.createCheck(pfd, name); err != nil {
			return err
		}
		switch mode & unix.S_IFMT {
		case 0, unix.S_IFREG:
		default:
			// FIFOs, sockets and devices are never made on the host.
			return unix.EPERM
		}
		return unix.Mknodat(pfd, name, unix.S_IFREG|mode&0o7777, 0)
	})
}

func (b *bindFS) symlink(_ *Mount, target, rest string, _ Owner) error {
	return b.change(rest, unix.EEXIST, func(pfd int, name string, trailing bool) error {
		if err := b.createCheck(pfd, name); err != nil {
			return err
		}
		if trailing {
			return unix.ENOENT
		}
		return unix.Symlinkat(target, pfd, name)
	})
}

func (b *bindFS) link(_ *Creds, _ *Mount, oldRest, newRest string, follow bool) error {
	if err := b.leaves(oldRest, false); err != nil {
		return err
	}
	if err := b.leaves(newRest, true); err != nil {
		return err
	}
	ofd, st, err := b.lookup(oldRest, followFlag(follow))
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	return b.change(newRest, unix.EEXIST, func(pfd int, name string, trailing bool) error {
		if err := b.createCheck(pfd, name); err != nil {
			return err
		}
		if st.FileType() == unix.S_IFDIR {
			return unix.EPERM
		}
		if trailing {
			return unix.ENOENT
		}
		// Through the sentry's own descriptor: the file found inside
		// the mount, whatever its path on the host.
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(ofd), pfd, name, unix.AT_SYMLINK_FOLLOW)
	})
}

func (b *bindFS) unlink(_ *Creds, _ *Mount, rest string, dir bool) error {
	if err := b.leaves(rest, false); err != nil {
		return err
	}
	pfd, name, trailing, err := b.parent(rest)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	switch {
	case name == "" && dir:
		return unix.EBUSY
	case name == "":
		return unix.EISDIR
	case dir && name == ".":
		return unix.EINVAL
	case dir && name == "..":
		return unix.ENOTEMPTY
	case name == "." || name == "..":
		return unix.EISDIR
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case dir && !isDir:
		return unix.ENOTDIR
	case !dir && isDir:
		return unix.EISDIR
	case !dir && trailing:
		return unix.ENOTDIR
	case b.ro:
		return unix.EROFS
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	return unix.Unlinkat(pfd, name, flags)
}

func (b *bindFS) rename(_ *Creds, _ *Mount, oldRest, newRest string, flags uint32) error {
	if err := b.leaves(oldRest, false); err != nil {
		return err
	}
	if err := b.leaves(newRest, true); err != nil {
		return err
	}
	ofd, oname, _, err := b.parent(oldRest)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nname, _, err := b.parent(newRest)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	for _, n := range []string{oname, nname} {
		if n == "" || n == "." || n == ".." {
			return unix.EBUSY
		}
	}
	if !exists(ofd, oname) {
		return unix.ENOENT
	}
	if b.ro {
		return unix.EROFS
	}
	return unix.Renameat2(ofd, oname, nfd, nname, uint(flags))
}

func (b *bindFS) setAttr(_ *Mount, rest string, follow bool, a *SetAttr) error {
	if err := b.leaves(rest, false); err != nil {
		return err
	}
	fd, _, err := b.lookup(rest, followFlag(follow))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if a.Mask == 0 {
		return nil
	}
	if b.ro {
		return unix.EROFS
	}
	return hostSetAttr(fd, a)
}

// hostSetAttr applies a to the host file open O_PATH (or otherwise) on
// fd, through the sentry's own /proc/self/fd link to it.
func hostSetAttr(fd int, a *SetAttr) error {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if a.Mask&SetAttrSize != 0 {
		if err := unix.Truncate(p, a.Size); err != nil {
			return err
		}
	}
	if a.Mask&SetAttrMode != 0 {
		if err := unix.Chmod(p, a.Mode&0o7777); err != nil {
			return err
		}
	}
	if a.Mask&(SetAttrUID|SetAttrGID) != 0 {
		uid, gid := -1, -1
		if a.Mask&SetAttrUID != 0 {
			uid = int(a.UID)
		}
		if a.Mask&SetAttrGID != 0 {
			gid = int(a.GID)
		}
		if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return err
		}
	}
	if a.Mask&(SetAttrAtime|SetAttrMtime) != 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if a.Mask&SetAttrAtime != 0 {
			ts[0] = unix.Timespec{Sec: a.Atime.Sec, Nsec: int64(a.Atime.Nsec)}
		}
		if a.Mask&SetAttrMtime != 0 {
			ts[1] = unix.Timespec{Sec: a.Mtime.Sec, Nsec: int64(a.Mtime.Nsec)}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
			return err
		}
	}
	return nil
}

// bindOpenFlags are the open(2) flags a host file of a bind mount is
// reopened with (besides the access mode).
const bindOpenFlags = unix.O_APPEND

func (b *bindFS) open(_ *FS, m *Mount, rest string, flags, mode uint32, _ Owner) (*File, error) {
	if err := b.leaves(rest, false); err != nil {
		return nil, err
	}
	pathOnly := flags&unix.O_PATH != 0
	write := !pathOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0)
	if !pathOnly && flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return b.openTmpfile(m, rest, flags, mode)
	}
	lookupFlags := int(flags & (unix.O_NOFOLLOW | unix.O_DIRECTORY))
	if !pathOnly && flags&unix.O_CREAT != 0 {
		if flags&unix.O_EXCL != 0 {
			lookupFlags |= unix.O_NOFOLLOW
		}
		pfd, st, err := b.lookup(rest, lookupFlags)
		switch {
		case err == nil && flags&unix.O_EXCL != 0:
			unix.Close(pfd)
			return nil, unix.EEXIST
		case err == nil:
			return b.openFound(m, rest, pfd, st, flags, write)
		case err != unix.ENOENT:
			return nil, err
		}
		return b.create(m, rest, flags, mode)
	}
	pfd, st, err := b.lookup(rest, lookupFlags)
	if err != nil {
		return nil, err
	}
	return b.openFound(m, rest, pfd, st, flags, write)
}

// create makes the missing file rest (O_CREAT) and opens it. A dangling
// symlink in its place is followed inside the mount.
func (b *bindFS) create(m *Mount, rest string, flags, mode uint32) (*File, error) {
	var f *File
	err := b.change(rest, unix.EISDIR, func(pfd int, name string, trailing bool) error {
		if trailing {
			return unix.EISDIR
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFLNK || flags&unix.O_EXCL != 0 || flags&unix.O_NOFOLLOW != 0 {
				return unix.EEXIST
			}
			target, err := readlinkAt(pfd, name)
			if err != nil {
				return err
			}
			// Resolved inside the mount, as openat2's RESOLVE_IN_ROOT
			// does: ".." stops at its root, "/" is its root.
			dir := path.Dir("/" + strings.TrimRight(rest, "/"))
			if strings.HasPrefix(target, "/") {
				dir = "/"
			}
			return &crossing{full: joinGuest(b.point, strings.TrimPrefix(path.Join(dir, target), "/"))}
		}
		if b.ro {
			return unix.EROFS
		}
		// Made with mknod (which never follows a symlink), then opened
		// as any file of the mount.
		if err := unix.Mknodat(pfd, name, unix.S_IFREG|mode&0o7777, 0); err != nil {
			return err
		}
		ffd, fst, err := b.lookup(path.Clean(rest), unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		f, err = b.openFound(m, rest, ffd, fst, flags&^unix.O_TRUNC, true)
		return err
	})
	return f, err
}

// openFound opens the file found at rest on O_PATH descriptor pfd (which
// it takes over).
func (b *bindFS) openFound(m *Mount, rest string, pfd int, st Stat, flags uint32, write bool) (*File, error) {
	ok := false
	defer func() {
		if !ok {
			unix.Close(pfd)
		}
	}()
	h := &hostFile{
		bind:        b,
		path:        b.guestPathOf(pfd, rest),
		bindRel:     "",
		lookupFlags: unix.O_NOFOLLOW,
		pathOnly:    flags&unix.O_PATH != 0,
		mode:        st.Mode,
		ident:       identityOf(&st),
		fd:          -1,
	}
	h.bindRel = strings.TrimPrefix(strings.TrimPrefix(h.path, b.point), "/")
	if h.pathOnly {
		h.fd, ok = pfd, true
		return newFile(unix.O_PATH|flags&unix.O_ACCMODE, h), nil
	}
	switch st.FileType() {
	case unix.S_IFREG:
		if flags&unix.O_DIRECTORY != 0 {
			return nil, unix.ENOTDIR
		}
	case unix.S_IFDIR:
		if flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_CREAT != 0 {
			return nil, unix.EISDIR
		}
	case unix.S_IFLNK:
		return nil, unix.ELOOP
	}
	if !openable(st.FileType()) {
		return nil, unix.EACCES
	}
	if write && b.ro {
		return nil, unix.EROFS
	}
	acc := int(flags & unix.O_ACCMODE)
	h.hostFlags = acc | int(flags&bindOpenFlags)
	fd, err := reopenAs(pfd, h.isDir(), h.hostFlags|int(flags&unix.O_TRUNC))
	if err != nil {
		return nil, err
	}
	h.fd = fd
	if flags&unix.O_TRUNC != 0 {
		if st, err := hostStat(fd); err == nil {
			h.ident = identityOf(&st)
		}
	}
	return newFile(flags, h), nil
}

// openTmpfile implements O_TMPFILE in directory rest.
func (b *bindFS) openTmpfile(m *Mount, rest string, flags, mode uint32) (*File, error) {
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, unix.EINVAL
	}
	dfd, st, err := b.lookup(rest, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	if st.FileType() != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	if b.ro {
		return nil, unix.EROFS
	}
	fd, err := unix.Openat(dfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode&0o7777)
	if err != nil {
		return nil, err
	}
	fst, err := hostStat(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	dir := b.guestPathOf(dfd, rest)
	h := &hostFile{bind: b, path: dir + "/#tmpfile", mode: fst.Mode, ident: identityOf(&fst), fd: fd, hostFlags: unix.O_RDWR}
	return newFile(flags, h), nil
}

// reopenAs is reopen with access mode and flags for a bind mount's file.
func reopenAs(pathFD int, dir bool, flags int) (int, error) {
	if dir || flags&unix.O_ACCMODE == unix.O_RDONLY && flags&unix.O_TRUNC == 0 {
		return reopen(pathFD, dir)
	}
	for {
		fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathFD), flags|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&unix.O_APPEND); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
}

// reopenBind reopens a bind mount's file after a restore and checks its
// identity.
func (h *hostFile) reopenBind(ctx context.Context, portable bool) error {
	if err := h.bind.restore(ctx); err != nil {
		return err
	}
	if h.fd = -1; h.bindRel == "" && strings.HasSuffix(h.path, "/#tmpfile") {
		return fmt.Errorf("volume file %q: %w: an O_TMPFILE file of a volume is not saved", h.path, ErrHostFileChanged)
	}
	pfd, st, err := h.bind.lookup(h.bindRel, h.lookupFlags)
	if err != nil {
		return fmt.Errorf("reopen volume file %q: %w", h.path, err)
	}
	got := identityOf(&st)
	if portable {
		got.DevMajor, got.DevMinor, got.Ino = h.ident.DevMajor, h.ident.DevMinor, h.ident.Ino
	}
	if got != h.ident || st.Mode != h.mode {
		unix.Close(pfd)
		return fmt.Errorf("volume file %q: %w: %s", h.path, ErrHostFileChanged, identityDiff(h.ident, got, h.mode, st.Mode))
	}
	if h.pathOnly {
		h.fd = pfd
		return nil
	}
	fd, err := reopenAs(pfd, h.isDir(), h.hostFlags)
	unix.Close(pfd)
	if err != nil {
		return fmt.Errorf("reopen volume file %q: %w", h.path, err)
	}
	h.fd = fd
	return nil
}

// writeBind implements write(2) on a bind mount's file.
func (h *hostFile) writeBind(f *File, src []byte, off int64) (int, error) {
	if h.broken != nil {
		return 0, unix.EIO
	}
	if off >= 0 && h.hostFlags&unix.O_APPEND == 0 {
		return unix.Pwrite(h.fd, src, off)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int
	var err error
	if h.hostFlags&unix.O_APPEND != 0 {
		// The host descriptor appends.
		n, err = unix.Write(h.fd, src)
		if st, serr := hostStat(h.fd); serr == nil && off < 0 {
			h.off = int64(st.Size)
		}
		return n, err
	}
	n, err = unix.Pwrite(h.fd, src, h.off)
	if n > 0 {
		h.off += int64(n)
	}
	return n, err
}

// setAttrBind is File.SetAttr on a file of a bind mount.
func (h *hostFile) setAttrBind(a *SetAttr) error {
	if h.bind.ro {
		return unix.EROFS
	}
	if a == nil {
		return nil
	}
	return hostSetAttr(h.fd, a)
}

// IsVolumeFile reports whether f is a file of a bind mount, whose host
// file the sandbox may write (so a shared mapping cannot be a copy).
func (f *File) IsVolumeFile() bool {
	h, ok := f.impl.(*hostFile)
	return ok && h.bind != nil
}

func (b *bindFS) bindSocket(m *Mount, p string, mode uint32, o Owner, _ BoundSocket) error {
	return b.mknod(m, p, unix.S_IFSOCK|mode, 0, o)
}

func (b *bindFS) lookupSocket(c *Creds, m *Mount, p string) (BoundSocket, error) {
	return noSocket(c, b, m, p)
}
