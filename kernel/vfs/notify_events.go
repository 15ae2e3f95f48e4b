package vfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The notify functions: one per event, called by the FS and File methods
// where operations are dispatched, whatever filesystem serves them. Each
// returns at once while the sandbox has no watch. They resolve the files
// an event is about by path, after the operation (before it for a file
// the operation removes or moves), so they see what any Filesystem
// reports through stat.

func (fs *FS) notifier() *Notifier { return fs.root.mountTable().notifier }

// notifyPath is a file as events name it: its key and type, and its
// directory's key and its name there.
type notifyPath struct {
	key    inodeKey
	isDir  uint32 // InIsdir or 0
	nlink  uint32
	found  bool
	parent inodeKey
	name   string
	// parentFound says parent and name are valid (the file itself may
	// be missing).
	parentFound bool
}

// splitLast returns the directory part and the last component of an
// absolute guest path, without cleaning it ("/a/b/" gives "/a", "b").
func splitLast(full string) (string, string) {
	for len(full) > 1 && full[len(full)-1] == '/' {
		full = full[:len(full)-1]
	}
	i := strings.LastIndexByte(full, '/')
	if i <= 0 {
		return "/", full[i+1:]
	}
	return full[:i], full[i+1:]
}

// lookupNotify resolves guest path full (from the sandbox's root, as
// fullPath returns it) for events; follow resolves a final symlink.
func (fs *FS) lookupNotify(full string, follow bool) notifyPath {
	var np notifyPath
	dir, name := splitLast(full)
	if st, err := fs.statFull(dir, true); err == nil && name != "" {
		np.parent, np.name, np.parentFound = keyOf(st), name, true
	}
	if st, err := fs.statFull(full, follow); err == nil {
		np.key, np.nlink, np.found = keyOf(st), st.Nlink, true
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			np.isDir = InIsdir
		}
	}
	return np
}

// statFull is stat of guest path full, already resolved against the
// context's root and working directory.
func (fs *FS) statFull(full string, follow bool) (Stat, error) {
	return resolve(fs, full, func(m *Mount, p string) (Stat, error) { return m.fs.stat(nil, m, p, follow) })
}

// lookupNotifyAt is lookupNotify for (dir, p) as the *at calls take it;
// ok is false if the path is not one.
func (fs *FS) lookupNotifyAt(dir *File, p string, follow bool) (notifyPath, bool) {
	full, err := fs.fullPath(dir, p)
	if err != nil {
		return notifyPath{}, false
	}
	return fs.lookupNotify(full, follow), true
}

// childEvent sends an event about entry name of directory parent to the
// directory's watches (IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO).
func (n *Notifier) childEvent(np notifyPath, mask, cookie uint32) {
	if !np.parentFound {
		return
	}
	n.mu.Lock()
	defer n.unlock()
	n.deliverLocked(np.parent, mask|np.isDir, cookie, np.name, false)
}

// selfEvent sends an event to the watches of the file itself only
// (IN_MOVE_SELF, and IN_ATTRIB for a change of its link count).
func (n *Notifier) selfEvent(np notifyPath, mask uint32) {
	if !np.found {
		return
	}
	n.mu.Lock()
	defer n.unlock()
	n.deliverLocked(np.key, mask, 0, "", false)
}

// fileEvent sends an event about a file to the watches of its directory
// (with its name), then to its own (IN_OPEN, IN_ACCESS, IN_MODIFY,
// IN_ATTRIB, IN_CLOSE_*). unlinked marks a file with no name left.
func (n *Notifier) fileEvent(np notifyPath, mask uint32, unlinked bool) {
	if !np.found {
		return
	}
	mask |= np.isDir
	n.mu.Lock()
	defer n.unlock()
	if np.parentFound && mask&parentEvents != 0 {
		n.deliverLocked(np.parent, mask, 0, np.name, unlinked)
	}
	n.deliverLocked(np.key, mask, 0, "", unlinked)
}

// notifyCreate reports a new name (mkdir, mknod, symlink, link, and
// open with O_CREAT).
func (fs *FS) notifyCreate(dir *File, p string) {
	n := fs.notifier()
	if !n.active() {
		return
	}
	if np, ok := fs.lookupNotifyAt(dir, p, false); ok {
		n.childEvent(np, InCreate, 0)
	}
}

// notifyLink reports a new link newFull to the file at oldFull (or to
// file f, linkat's AT_EMPTY_PATH): its link count changed (IN_ATTRIB),
// then the new name (IN_CREATE). Both paths are full guest paths.
func (fs *FS) notifyLink(f *File, oldFull string, follow bool, newFull string) {
	n := fs.notifier()
	if !n.active() {
		return
	}
	var target notifyPath
	if f != nil {
		if st, err := f.Stat(); err == nil {
			target = notifyPath{key: keyOf(st), found: true}
		}
	} else {
		target = fs.lookupNotify(oldFull, follow)
	}
	n.selfEvent(target, InAttrib)
	n.childEvent(fs.lookupNotify(newFull, false), InCreate, 0)
}

// beforeRemove looks up the file at full guest path full that an
// operation is about to remove or move, while the sandbox has watches.
func (fs *FS) beforeRemove(full string) (notifyPath, bool) {
	if !fs.notifier().active() {
		return notifyPath{}, false
	}
	return fs.lookupNotify(full, false), true
}

// notifyRemoved reports the removal of np (unlink, rmdir): IN_ATTRIB for
// a file's link count, IN_DELETE_SELF if that was its last link and it is
// not open, then IN_DELETE in its directory.
func (fs *FS) notifyRemoved(np notifyPath) {
	n := fs.notifier()
	if np.isDir == 0 {
		n.selfEvent(np, InAttrib)
	}
	n.flushGone()
	n.childEvent(np, InDelete, 0)
}

// notifyMoved reports a rename of src to dst (dst found if it existed):
// IN_MOVED_FROM and IN_MOVED_TO with one cookie, IN_ATTRIB for a replaced
// file, IN_MOVE_SELF, and IN_DELETE_SELF for a replaced file gone.
func (fs *FS) notifyMoved(src, dst notifyPath, exchange bool) {
	n := fs.notifier()
	if !src.found || dst.found && src.key == dst.key {
		return
	}
	moved := func(from, to notifyPath, isDir uint32) {
		if from.parentFound && to.parentFound && from.parent == to.parent {
			n.dnotifyRename(from.parent)
		}
		cookie := n.nextCookie()
		from.isDir, to.isDir = isDir, isDir
		n.childEvent(from, InMovedFrom, cookie)
		n.childEvent(to, InMovedTo, cookie)
	}
	moved(src, dst, src.isDir)
	if exchange {
		n.selfEvent(src, InMoveSelf)
		moved(dst, src, dst.isDir)
		n.selfEvent(dst, InMoveSelf)
		return
	}
	n.selfEvent(dst, InAttrib)
	n.selfEvent(src, InMoveSelf)
	n.flushGone()
}

// attrEvents is the event a change of attributes makes (Linux's
// fsnotify_change).
func attrEvents(a *SetAttr) uint32 {
	var mask uint32
	if a.Mask&(SetAttrUID|SetAttrGID|SetAttrMode) != 0 {
		mask |= InAttrib
	}
	if a.Mask&SetAttrSize != 0 {
		mask |= InModify
	}
	switch a.Mask & (SetAttrAtime | SetAttrMtime) {
	case SetAttrAtime | SetAttrMtime:
		mask |= InAttrib
	case SetAttrAtime:
		mask |= InAccess
	case SetAttrMtime:
		mask |= InModify
	}
	return mask
}

// notifyAttr reports a change of attributes of the file at (dir, p).
func (fs *FS) notifyAttr(dir *File, p string, follow bool, a *SetAttr) {
	n := fs.notifier()
	if !n.active() || a == nil || attrEvents(a) == 0 {
		return
	}
	if np, ok := fs.lookupNotifyAt(dir, p, follow); ok {
		n.fileEvent(np, attrEvents(a), false)
	}
}

// notify sends a file event about f (opened by path) to the watches of
// its directory and its own.
func (f *File) notify(mask uint32) {
	n := f.notifier
	if !n.active() || mask == 0 {
		return
	}
	st, err := f.impl.stat(f)
	if err != nil {
		return
	}
	np := notifyPath{key: keyOf(st), nlink: st.Nlink, found: true}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		np.isDir = InIsdir
	}
	if p := f.notifyName(); strings.HasPrefix(p, "/") {
		dir, name := splitLast(p)
		if pst, err := NewFS(n.root).Fstatat(nil, dir, 0); err == nil && name != "" {
			np.parent, np.name, np.parentFound = keyOf(pst), name, true
		}
	}
	n.fileEvent(np, mask, st.Nlink == 0 && np.isDir == 0)
}

// notifyName is the guest path f was opened by, for its directory's
// watches.
func (f *File) notifyName() string {
	if t, ok := f.impl.(*tmpfsFile); ok {
		return t.path
	}
	return f.impl.guestPath()
}

// notifyClose reports the last close of f: IN_CLOSE_WRITE if it was open
// for writing, else IN_CLOSE_NOWRITE.
func (f *File) notifyClose() {
	if f.isPath() {
		return
	}
	if f.writable() {
		f.notify(InCloseWrite)
	} else {
		f.notify(InCloseNowrite)
	}
}
