package vfs

import (
	"slices"

	"golang.org/x/sys/unix"
)

// Creds are what a tmpfs checks a caller's access with, as Linux's
// generic_permission: the filesystem user and group IDs, the supplementary
// groups and the effective capabilities (bit N for capability N).
type Creds struct {
	FSUID, FSGID uint32
	Groups       []uint32
	Caps         uint64
	// Proc is /proc as the caller sees it (the kernel's, for the calling
	// thread); nil shows /proc empty.
	Proc ProcView
}

// Capabilities the permission checks honour (linux/capability.h).
const (
	capChown         = 0
	capDACOverride   = 1
	capDACReadSearch = 2
	capFowner        = 3
	capFsetid        = 4
)

// Access bits of a permission check (MAY_EXEC, MAY_WRITE, MAY_READ).
const (
	mayExec  = 1
	mayWrite = 2
	mayRead  = 4
)

// permits reports whether c may access n as want says: the owner's,
// group's (the file's group is c's or one of its supplementary groups) or
// others' bits of n's mode; otherwise CAP_DAC_OVERRIDE grants everything
// but executing a file without any execute bit, and CAP_DAC_READ_SEARCH
// reading files and reading and searching directories. A nil c is
// permitted everything.
func (c *Creds) permits(n *tmpNode, want uint32) bool {
	if c == nil {
		return true
	}
	bits := n.mode & 0o7
	switch {
	case c.FSUID == n.uid:
		bits = n.mode >> 6 & 0o7
	case c.FSGID == n.gid || slices.Contains(c.Groups, n.gid):
		bits = n.mode >> 3 & 0o7
	}
	if bits&want == want {
		return true
	}
	if c.Caps&(1<<capDACOverride) != 0 && (want&mayExec == 0 || n.isDir() || n.mode&0o111 != 0) {
		return true
	}
	if c.Caps&(1<<capDACReadSearch) != 0 && (want == mayRead || n.isDir() && want&mayWrite == 0) {
		return true
	}
	return false
}

// openAccess returns the access an open(2) with flags asks of a file:
// reading and/or writing by the access mode, writing for O_TRUNC; none for
// O_PATH.
func openAccess(flags uint32) uint32 {
	if flags&unix.O_PATH != 0 {
		return 0
	}
	var want uint32
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		want = mayRead
	case unix.O_WRONLY:
		want = mayWrite
	default:
		want = mayRead | mayWrite
	}
	if flags&unix.O_TRUNC != 0 {
		want |= mayWrite
	}
	return want
}

// searchesAll reports whether c may search every directory: nil, or
// CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH.
func (c *Creds) searchesAll() bool {
	return c == nil || c.has(capDACOverride) || c.has(capDACReadSearch)
}

// has reports whether c holds capability cp.
func (c *Creds) has(cp uint) bool { return c.Caps&(1<<cp) != 0 }

// inGroup reports whether gid is c's filesystem group or a supplementary
// one.
func (c *Creds) inGroup(gid uint32) bool { return c.FSGID == gid || slices.Contains(c.Groups, gid) }

// owns reports whether c may act as n's owner: it is, or has CAP_FOWNER.
func (c *Creds) owns(n *tmpNode) bool { return c.FSUID == n.uid || c.has(capFowner) }

// mayDelete is Linux's may_delete for removing (or renaming away) node
// from dir: EACCES without write and search permission on dir, EPERM in a
// sticky directory for a caller who owns neither it nor node (without
// CAP_FOWNER).
func (c *Creds) mayDelete(dir, node *tmpNode) error {
	if c == nil {
		return nil
	}
	if !c.permits(dir, mayWrite|mayExec) {
		return unix.EACCES
	}
	if dir.mode&unix.S_ISVTX != 0 && c.FSUID != dir.uid && !c.owns(node) {
		return unix.EPERM
	}
	return nil
}

// mayLink is Linux's may_linkat with protected_hardlinks on (the default
// of most distributions): a caller who does not own n (nor has
// CAP_FOWNER) may link only a regular file that is neither set-user-ID
// nor set-group-ID and group-executable, and that it may read and write
// (EPERM).
func (c *Creds) mayLink(n *tmpNode) error {
	if c == nil || c.owns(n) {
		return nil
	}
	sgidExec := n.mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP
	if n.fileType() != unix.S_IFREG || n.mode&unix.S_ISUID != 0 || sgidExec || !c.permits(n, mayRead|mayWrite) {
		return unix.EPERM
	}
	return nil
}

// mayRename checks a rename from ow to nw as Linux's vfs_rename: the
// source may be deleted from its directory, the target deleted (if it
// exists) or created, and a directory moved to another parent needs write
// permission on itself (its ".." changes).
func (c *Creds) mayRename(ow, nw walked) error {
	if c == nil {
		return nil
	}
	if err := c.mayDelete(ow.dir, ow.node); err != nil {
		return err
	}
	if nw.node != nil {
		if err := c.mayDelete(nw.dir, nw.node); err != nil {
			return err
		}
	} else if !c.permits(nw.dir, mayWrite|mayExec) {
		return unix.EACCES
	}
	if ow.dir != nw.dir {
		for _, d := range []*tmpNode{ow.node, nw.node} {
			if d != nil && d.isDir() && !c.permits(d, mayWrite) {
				return unix.EACCES
			}
		}
	}
	return nil
}

// maySetAttr checks a change of n's attributes as Linux's setattr_prepare:
// chmod and explicit times need the owner (or CAP_FOWNER), EPERM;
// changing the owner needs CAP_CHOWN, the group the owner moving it to a
// group of its own or CAP_CHOWN, EPERM; setting both times to now needs the
// owner or write permission, EACCES. (Truncating needs write permission:
// setAttrNode checks it after the file type.)
func (c *Creds) maySetAttr(n *tmpNode, a *SetAttr) error {
	if c == nil {
		return nil
	}
	if a.Mask&SetAttrMode != 0 && !c.owns(n) {
		return unix.EPERM
	}
	if a.Mask&SetAttrUID != 0 && (a.UID != n.uid || c.FSUID != n.uid) && !c.has(capChown) {
		return unix.EPERM
	}
	if a.Mask&SetAttrGID != 0 && (c.FSUID != n.uid || a.GID != n.gid && !c.inGroup(a.GID)) && !c.has(capChown) {
		return unix.EPERM
	}
	times := a.Mask & (SetAttrAtime | SetAttrMtime)
	if times == 0 || c.owns(n) {
		return nil
	}
	explicit := a.Mask&SetAttrAtime != 0 && a.Atime.Nsec != unix.UTIME_NOW ||
		a.Mask&SetAttrMtime != 0 && a.Mtime.Nsec != unix.UTIME_NOW
	if explicit {
		return unix.EPERM
	}
	if !c.permits(n, mayWrite) {
		return unix.EACCES
	}
	return nil
}

// SetAttrOf checks a change a of the attributes of a file with
// attributes st as maySetAttr does, and returns st changed: the mode as
// chmodMode gives it, the owner, and the times (UTIME_NOW as now, which
// is also the new ctime). A file kept by another part of the sentry (the
// mqueue filesystem's queues) is changed through it; a size change is
// EPERM there.
func (c *Creds) SetAttrOf(st Stat, a *SetAttr) (Stat, error) {
	n := &tmpNode{typ: st.Mode & unix.S_IFMT, mode: st.Mode, uid: st.UID, gid: st.GID}
	if err := c.maySetAttr(n, a); err != nil {
		return st, err
	}
	if a.Mask&SetAttrSize != 0 {
		return st, unix.EPERM
	}
	now := nowTimespec()
	if a.Mask&SetAttrMode != 0 {
		st.Mode = st.Mode&unix.S_IFMT | c.chmodMode(n, a.Mode&0o7777)
	}
	if a.Mask&SetAttrUID != 0 {
		st.UID = a.UID
	}
	if a.Mask&SetAttrGID != 0 {
		st.GID = a.GID
	}
	if a.Mask&SetAttrAtime != 0 {
		st.Atime = timeOrNow(a.Atime, now)
	}
	if a.Mask&SetAttrMtime != 0 {
		st.Mtime = timeOrNow(a.Mtime, now)
	}
	st.Ctime = now
	return st, nil
}

// MayDeleteFrom is mayDelete for a file with attributes node in a
// directory with attributes dir (the mqueue filesystem's).
func (c *Creds) MayDeleteFrom(dir, node Stat) error {
	d := &tmpNode{typ: dir.Mode & unix.S_IFMT, mode: dir.Mode, uid: dir.UID, gid: dir.GID}
	n := &tmpNode{typ: node.Mode & unix.S_IFMT, mode: node.Mode, uid: node.UID, gid: node.GID}
	return c.mayDelete(d, n)
}

// Now is the time a filesystem of the sentry stamps a change with.
func Now() Timespec { return nowTimespec() }

// chmodMode returns the mode bits chmod gives n: mode, less the
// set-group-ID bit when the caller is not in n's group and lacks
// CAP_FSETID, as Linux.
func (c *Creds) chmodMode(n *tmpNode, mode uint32) uint32 {
	if c != nil && mode&unix.S_ISGID != 0 && !c.inGroup(n.gid) && !c.has(capFsetid) {
		mode &^= unix.S_ISGID
	}
	return mode
}

// UnlinkatAs is Unlinkat for a caller o, whose permission a tmpfs or the
// overlay checks (write and search on the parent, the sticky-directory
// rule).
func (fs *FS) UnlinkatAs(o Owner, dir *File, p string, flags int) error {
	isDir := flags&unix.AT_REMOVEDIR != 0
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	np, watched := fs.beforeRemove(full)
	err = fs.do(dir, p, func(m *Mount, p string) error { return m.fs.unlink(o.Creds, m, p, isDir) })
	if err == nil && watched {
		fs.notifyRemoved(np)
	}
	return err
}

// RenameatAs is Renameat for a caller o, whose permission a tmpfs or the
// overlay checks (mayRename).
func (fs *FS) RenameatAs(o Owner, olddir *File, oldpath string, newdir *File, newpath string, flags uint32) error {
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
	src, watched := fs.beforeRemove(oldFull)
	dst, _ := fs.beforeRemove(newFull)
	err = resolve2(fs, oldFull, newFull, func(m *Mount, op, np string) error {
		return m.fs.rename(o.Creds, m, op, np, flags)
	})
	if err == nil && watched {
		fs.notifyMoved(src, dst, flags&unix.RENAME_EXCHANGE != 0)
	}
	return err
}

// accessAs is access(2)'s check of n for a caller with credentials c (nil:
// the sandbox's root without checks, tmpNode.access): F_OK passes, R_OK,
// W_OK and X_OK need the permission (EACCES).
func (n *tmpNode) accessAs(c *Creds, mode uint32) error {
	if c == nil {
		return n.access(mode)
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if !c.permits(n, mode&(mayRead|mayWrite|mayExec)) {
		return unix.EACCES
	}
	return nil
}

// FaccessatAs is Faccessat for a caller with credentials c (the real or,
// with AT_EACCESS, the effective ones: the kernel's choice), which a tmpfs
// or the overlay checks on the file and on every directory the lookup passes.
func (fs *FS) FaccessatAs(c *Creds, dir *File, p string, mode uint32, flags int) error {
	if mode&^uint32(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
		return unix.EINVAL
	}
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 && dir != nil {
		if d, ok := dir.impl.(*tmpfsFile); ok {
			return d.node.accessAs(c, mode)
		}
		return fs.Faccessat(dir, p, mode, flags)
	}
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 {
		p = "."
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	_, err = resolve(fs, full, func(m *Mount, p string) (struct{}, error) {
		return struct{}{}, m.fs.access(c, m, p, mode, flags)
	})
	return err
}

// FstatatAs is Fstatat for a caller with credentials c, who needs search
// permission on every directory the lookup passes (EACCES).
func (fs *FS) FstatatAs(c *Creds, dir *File, p string, flags int) (Stat, error) {
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
	return resolve(fs, full, func(m *Mount, p string) (Stat, error) { return m.fs.stat(c, m, p, follow) })
}

// ChdirAs is Chdir for a caller with credentials c, who needs search
// permission on every directory the lookup passes and on the new working
// directory itself (EACCES).
func (fs *FS) ChdirAs(c *Creds, dir *File, p string) error {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return err
	}
	cwd, err := resolve(fs, full, func(m *Mount, p string) (string, error) { return m.fs.chdir(c, m, p) })
	if err != nil {
		return err
	}
	fs.setCwd(cwd)
	return nil
}

// StatfsAs is Statfs for a caller with credentials c, who needs search
// permission on every directory the lookup passes (EACCES).
func (fs *FS) StatfsAs(c *Creds, dir *File, p string) ([StatfsSize]byte, error) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	return resolve(fs, full, func(m *Mount, p string) ([StatfsSize]byte, error) { return m.fs.statfs(c, m, p) })
}
