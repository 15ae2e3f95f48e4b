package vfs

import (
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Extended attributes. Files of the overlay's upper layer and of tmpfs
// keep theirs in memory (tmpNode.xattrs, saved): user.* (on regular files
// and directories, as Linux), trusted.* and security.* (the sandbox's
// root may set them). A caller's permission is checked as Linux's
// xattr_permission (Creds.mayXattr) on those files. Lower files
// show the host's user.* attributes (a copy-up copies them), volume files
// are the host's (user.* only). Another namespace reads as absent and
// cannot be set (EOPNOTSUPP); the read-only root and the sentry's files
// have none and refuse changes with EROFS.

// Xattr operations (XattrOp.Kind).
const (
	XattrGet = iota
	XattrSet
	XattrList
	XattrRemove
)

// XattrOp is one extended-attribute operation: Kind, the attribute's
// Name, the Value to set and setxattr's Flags (XATTR_CREATE,
// XATTR_REPLACE).
type XattrOp struct {
	Kind  int
	Name  string
	Value []byte
	Flags int
	// Creds, if not nil, are the caller's, whose permission a tmpfs or
	// the overlay checks: search on the way, and Creds.mayXattr on the
	// file.
	Creds *Creds
}

// xattrMaxValue is Linux's XATTR_SIZE_MAX.
const xattrMaxValue = 65536

const userPrefix = "user."

// memoryNamespace reports whether name's namespace is kept by the
// memory filesystems.
func memoryNamespace(name string) bool {
	for _, ns := range []string{userPrefix, "trusted.", "security."} {
		if strings.HasPrefix(name, ns) {
			return true
		}
	}
	return false
}

// check makes the checks that come before the file: the name's length
// and the value's size.
func (op *XattrOp) check() error {
	if op.Kind == XattrList {
		return nil
	}
	if op.Name == "" || len(op.Name) > 255 {
		return unix.ERANGE
	}
	if op.Kind == XattrSet {
		if len(op.Value) > xattrMaxValue {
			return unix.E2BIG
		}
		if op.Flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
			return unix.EINVAL
		}
	}
	return nil
}

// XattrAt runs op on the file at p relative to dir (nil: the working
// directory); follow resolves a final symlink. Get returns the value,
// List the names, each NUL-terminated.
func (fs *FS) XattrAt(dir *File, p string, follow bool, op *XattrOp) ([]byte, error) {
	if err := op.check(); err != nil {
		return nil, err
	}
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return nil, err
	}
	return resolve(fs, full, func(m *Mount, p string) ([]byte, error) {
		switch f := m.fs.(type) {
		case *overlayFS:
			return f.xattr(p, follow, op)
		case *tmpfs:
			f.mu.Lock()
			w, err := f.walkAsLocked(op.Creds, m, p, follow, false, false)
			if err != nil {
				f.mu.Unlock()
				return nil, err
			}
			defer f.mu.Unlock()
			return nodeXattrLocked(w.node, op)
		case *bindFS:
			if err := f.leaves(p, false); err != nil {
				return nil, err
			}
			fd, _, err := f.lookup(p, followFlag(follow))
			if err != nil {
				return nil, err
			}
			defer unix.Close(fd)
			return hostXattr(fd, op, f.ro)
		default:
			if _, err := m.fs.stat(nil, m, p, follow); err != nil {
				return nil, err
			}
			return noXattr(op)
		}
	})
}

// Xattr runs op on f itself (fgetxattr and the like).
func (f *File) Xattr(op *XattrOp) ([]byte, error) {
	if err := op.check(); err != nil {
		return nil, err
	}
	switch impl := f.impl.(type) {
	case *tmpfsFile:
		t := impl.node.fs
		t.mu.Lock()
		defer t.mu.Unlock()
		return nodeXattrLocked(impl.node, op)
	case *hostFile:
		if impl.broken != nil {
			return nil, unix.EIO
		}
		switch {
		case impl.bind != nil:
			return hostXattr(impl.fd, op, impl.bind.ro)
		case impl.ovl != nil && (op.Kind == XattrSet || op.Kind == XattrRemove):
			// A change copies the file up; this description keeps
			// the lower file, as for fchmod.
			return impl.ovl.xattr(impl.guestPath(), false, op)
		case impl.ovl != nil:
			return hostXattr(impl.fd, op, true)
		}
	}
	return noXattr(op)
}

// noXattr answers for a file without extended attributes on a read-only
// filesystem.
func noXattr(op *XattrOp) ([]byte, error) {
	switch op.Kind {
	case XattrGet:
		return nil, unix.ENODATA
	case XattrList:
		return nil, nil
	}
	return nil, unix.EROFS
}

// capSysAdmin is CAP_SYS_ADMIN, which the trusted.* and security.*
// namespaces ask of a caller.
const capSysAdmin = 21

// mayXattr is Linux's xattr_permission (with commoncap's rule for
// security.*) for op on n: trusted.* needs CAP_SYS_ADMIN (else a read
// finds nothing, ENODATA, and a change is EPERM), and so does changing
// security.*; user.* exists on regular files and directories only (as
// trusted.*'s answers), and in a sticky directory only its owner (or
// CAP_FOWNER) changes them; then reading needs read permission on the
// file, changing write permission (EACCES). Listing is not checked.
func (c *Creds) mayXattr(n *tmpNode, op *XattrOp) error {
	if c == nil || op.Kind == XattrList {
		return nil
	}
	write := op.Kind == XattrSet || op.Kind == XattrRemove
	denied := unix.ENODATA
	if write {
		denied = unix.EPERM
	}
	switch {
	case strings.HasPrefix(op.Name, "security."):
		if write && !c.has(capSysAdmin) {
			return unix.EPERM
		}
		return nil
	case strings.HasPrefix(op.Name, "trusted."):
		if !c.has(capSysAdmin) {
			return denied
		}
		return nil
	case strings.HasPrefix(op.Name, userPrefix):
		if t := n.fileType(); t != unix.S_IFREG && t != unix.S_IFDIR {
			return denied
		}
		if write && n.isDir() && n.mode&unix.S_ISVTX != 0 && !c.owns(n) {
			return unix.EPERM
		}
	}
	want := uint32(mayRead)
	if write {
		want = mayWrite
	}
	if !c.permits(n, want) {
		return unix.EACCES
	}
	return nil
}

// nodeXattrLocked runs op on a tmpfs node.
//
// Preconditions: the node's filesystem's mu is held.
func nodeXattrLocked(n *tmpNode, op *XattrOp) ([]byte, error) {
	if err := op.Creds.mayXattr(n, op); err != nil {
		return nil, err
	}
	user := strings.HasPrefix(op.Name, userPrefix)
	switch op.Kind {
	case XattrGet:
		v, ok := n.xattrs[op.Name]
		if !ok {
			return nil, unix.ENODATA
		}
		return v, nil
	case XattrList:
		names := make([]string, 0, len(n.xattrs))
		for name := range n.xattrs {
			// Linux's tmpfs lists trusted.* to CAP_SYS_ADMIN only.
			if op.Creds == nil || op.Creds.has(capSysAdmin) || !strings.HasPrefix(name, "trusted.") {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		var out []byte
		for _, name := range names {
			out = append(append(out, name...), 0)
		}
		return out, nil
	}
	if !memoryNamespace(op.Name) {
		return nil, unix.EOPNOTSUPP
	}
	if t := n.fileType(); user && t != unix.S_IFREG && t != unix.S_IFDIR {
		// Linux allows user.* only on regular files and directories.
		return nil, unix.EPERM
	}
	_, exists := n.xattrs[op.Name]
	switch {
	case op.Kind == XattrRemove && !exists:
		return nil, unix.ENODATA
	case op.Kind == XattrRemove:
		delete(n.xattrs, op.Name)
	case op.Flags&unix.XATTR_CREATE != 0 && exists:
		return nil, unix.EEXIST
	case op.Flags&unix.XATTR_REPLACE != 0 && !exists:
		return nil, unix.ENODATA
	default:
		if n.xattrs == nil {
			n.xattrs = map[string][]byte{}
		}
		n.xattrs[op.Name] = append([]byte(nil), op.Value...)
	}
	n.ctime = nowTimespec()
	return nil, nil
}

// hostXattr runs op on the host file open (O_PATH or not) on fd, through
// the sentry's own /proc/self/fd link; ro refuses changes with EROFS.
// Symlinks have no user attributes.
func hostXattr(fd int, op *XattrOp, ro bool) ([]byte, error) {
	st, err := hostStat(fd)
	if err != nil {
		return nil, err
	}
	user := strings.HasPrefix(op.Name, userPrefix)
	link := st.FileType() == unix.S_IFLNK
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	switch op.Kind {
	case XattrGet:
		if !user || link {
			return nil, unix.ENODATA
		}
		return getHostXattr(p, op.Name)
	case XattrList:
		if link {
			return nil, nil
		}
		return listHostXattrs(p)
	}
	switch {
	case ro:
		return nil, unix.EROFS
	case !user:
		return nil, unix.EOPNOTSUPP
	case link:
		return nil, unix.EPERM
	case op.Kind == XattrRemove:
		return nil, unix.Removexattr(p, op.Name)
	}
	return nil, unix.Setxattr(p, op.Name, op.Value, op.Flags)
}

func getHostXattr(p, name string) ([]byte, error) {
	buf := make([]byte, xattrMaxValue)
	n, err := unix.Getxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// listHostXattrs returns the user attributes' names of host file p.
func listHostXattrs(p string) ([]byte, error) {
	buf := make([]byte, xattrMaxValue)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	var out []byte
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(name, userPrefix) {
			out = append(append(out, name...), 0)
		}
	}
	return out, nil
}

// xattr runs op on the overlay's file at guest path full: reads from the
// layer that has it, changes after a copy-up.
func (o *overlayFS) xattr(full string, follow bool, op *XattrOp) ([]byte, error) {
	t := o.upper
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := o.walkAsLocked(op.Creds, full, follow, false, false)
	if err != nil {
		return nil, err
	}
	if err := op.Creds.mayXattr(w.ent.node(), op); err != nil {
		return nil, err
	}
	if w.ent.up == nil && (op.Kind == XattrGet || op.Kind == XattrList) {
		fd, err := o.lower.lookup(w.path, unix.O_NOFOLLOW)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return hostXattr(fd, op, true)
	}
	if op.Kind == XattrSet || op.Kind == XattrRemove {
		if !memoryNamespace(op.Name) {
			return nil, unix.EOPNOTSUPP
		}
		if _, err := o.copyUpEntLocked(&w); err != nil {
			return nil, err
		}
	}
	return nodeXattrLocked(w.ent.up, op)
}

// copyXattrs copies the user attributes of the lower file open
// O_PATH on fd to n (copy-up).
func copyXattrs(fd int, n *tmpNode) {
	names, err := hostXattr(fd, &XattrOp{Kind: XattrList}, true)
	if err != nil || len(names) == 0 {
		return
	}
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	for _, name := range strings.Split(strings.TrimSuffix(string(names), "\x00"), "\x00") {
		if v, err := getHostXattr(p, name); err == nil {
			if n.xattrs == nil {
				n.xattrs = map[string][]byte{}
			}
			n.xattrs[name] = v
		}
	}
}
