package vfs

import (
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tmpfs is a memory filesystem: directories, regular files, symlinks and
// hard links whose tree is savable kernel state and whose file data lives
// in Pages (the kernel's memory file, saved with the application's
// memory). It is the sandbox's writable storage (/dev/shm, /run, --tmpfs).
//
// Space. limit bounds the file data (counted in pages, as Linux's tmpfs
// counts its blocks); a write or fallocate past it fails with ENOSPC. A
// file's data is released when its last link and its last open
// description are gone.
//
// +stateify savable
type tmpfs struct {
	// mu protects every field of the filesystem and of its nodes, and
	// the data of its files. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// root is the root directory; immutable.
	root *tmpNode
	// limit is the most bytes of file data; protected by mu.
	limit uint64
	// used is the bytes of file data, counted in whole pages; protected
	// by mu.
	used uint64
	// nextIno is the next inode number; protected by mu.
	nextIno uint64
	// pages holds the file data; nil until the kernel gives its memory
	// file (MountTable.SetPages) or, without a kernel, the first use
	// (heapPages). Protected by mu.
	pages Pages
	// minor is the device minor number stat reports; immutable.
	minor uint32
	// inoBase is subtracted from nextIno to count the files made (the
	// overlay's upper layer numbers its inodes from overlayInoBase);
	// immutable.
	inoBase uint64
	// ovl is the overlay whose upper layer this is, or nil; immutable.
	ovl *overlayFS
	// shrunk are the mapped files cut short under mu, for unlockNotify.
	// Empty whenever mu is free, hence not saved.
	shrunk []shrink `state:"nosave"`
	// notifier is told when a file is gone (IN_DELETE_SELF); nil until
	// the mount table sets it. Protected by mu.
	notifier *Notifier
	// spare are pages of the Pages, cleared, that no file holds: given
	// to the next single pages files need (newPageLocked), so that a
	// small file made and removed costs no page given back to the Pages
	// and a fresh one faulted in. At most spareMax; protected by mu.
	spare []uint64
	// keepSpare is set on a mounted tmpfs, which lives as long as the
	// sandbox and keeps spare pages (a memfd's own tmpfs keeps none: it
	// goes with the memfd); immutable.
	keepSpare bool
	// memorySized is set on a tmpfs sized by the sandbox's memory rather
	// than by a size of its own (/tmp mounted because the root's is
	// empty; the overlay's upper layer is always one): the application's
	// memory and the other tmpfs mounts use the same space, which statfs
	// counts as used. Immutable once the sandbox runs.
	memorySized bool
}

// tmpNode is one file of a tmpfs (an inode). Every field but fs, ino and
// writeMu is protected by fs.mu.
//
// +stateify savable
type tmpNode struct {
	// fs is the filesystem; immutable.
	fs *tmpfs
	// ino is the inode number; immutable.
	ino uint64
	// typ is the file type (S_IFMT bits of mode); immutable.
	typ uint32

	mode                       uint32
	uid, gid                   uint32
	nlink                      uint32
	atime, mtime, ctime, btime Timespec

	// parent and name place a directory in the tree (a directory has one
	// link); parent is nil for the root and for a removed directory.
	parent *tmpNode
	name   string
	// children are a directory's entries.
	children map[string]*tmpNode

	// target is a symlink's target.
	target string

	// pages maps a regular file's page indexes to their offsets in the
	// filesystem's Pages; a missing page is a hole and reads as zero.
	// Pages may lie past size (fallocate with FALLOC_FL_KEEP_SIZE); bytes
	// past size in an allocated page are zero.
	pages map[uint64]uint64
	// size is a regular file's size.
	size int64
	// copies counts the reads and writes copying to or from the file's
	// pages without fs.mu held (tmpfs_io.go). Not saved: none runs at
	// save time.
	copies int `state:"nosave"`
	// held are pages taken from the file while copies ran, freed when
	// the last one ends. Not saved: empty when no copy runs.
	held []uint64 `state:"nosave"`
	// taken counts the times pages were taken from the file, so that a
	// write can tell whether its pages are still the file's. Not saved:
	// only compared within one write.
	taken uint64 `state:"nosave"`
	// writeMu serializes the file's writes; taken before fs.mu. Not
	// saved: idle at save time.
	writeMu sync.Mutex `state:"nosave"`
	// opens counts the open descriptions of the node.
	opens int
	// noLink is set for an O_TMPFILE|O_EXCL file, which linkat may not
	// give a name.
	noLink bool

	// The fields below serve the overlay's upper layer (overlay.go) and
	// are zero in a plain tmpfs.

	// whiteouts are the names of a directory's lower entries that were
	// removed: the lower layer's entry does not show.
	whiteouts map[string]bool
	// lowerAbsent are names of a merged directory's upper entries that
	// the lower layer was found not to have when they were made, so that
	// their removal leaves no whiteout without asking the host again.
	// Not saved: the host may differ after a restore.
	lowerAbsent map[string]bool `state:"nosave"`
	// lower is set on a directory copied up from the lower layer: the
	// lower directory at the same path shows through it (merged). A
	// directory made in the overlay is opaque.
	lower bool
	// origin is the lower file this one was copied up from, whose device
	// and inode numbers stat reports; nil for a file made in the overlay.
	origin *ovlOrigin
	// xattrs are the file's extended attributes (user.* only; xattr.go).
	xattrs map[string][]byte
	// seals are a regular file's seals (F_ADD_SEALS): F_SEAL_SEAL for a
	// tmpfs file, as on Linux, so that only memfds can be sealed.
	seals uint32
	// fifo is a named pipe's pipe, made at its first open.
	fifo *pipe
	// sock is the socket bound to a socket file (nil for one mknod made).
	sock BoundSocket
	// mapped is set once a shared mapping has mapped the file's pages
	// (MapShared): from then on its pages are never given back before
	// the file itself goes (truncation and hole punching clear them
	// instead), so that every mapping keeps seeing the file's own pages.
	mapped bool
}

// bogoDirentSize is the size Linux's tmpfs gives each directory entry in
// a directory's st_size.
const bogoDirentSize = 20

func newTmpfs(limit uint64, minor uint32) *tmpfs {
	t := &tmpfs{limit: limit, nextIno: 1, minor: minor}
	t.root = t.newNodeLocked(unix.S_IFDIR|0o1777, 0, 0)
	t.root.nlink = 2
	return t
}

func (t *tmpfs) fsType() string { return "tmpfs" }

func (t *tmpfs) setLimit(n uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.limit = n
}

func nowTimespec() Timespec {
	n := time.Now()
	return Timespec{Sec: n.Unix(), Nsec: uint32(n.Nanosecond())}
}

// newNodeLocked returns a new node of mode with no links.
//
// Preconditions: t.mu is held (or t is not yet shared).
func (t *tmpfs) newNodeLocked(mode, uid, gid uint32) *tmpNode {
	now := nowTimespec()
	n := &tmpNode{fs: t, ino: t.nextIno, typ: mode & unix.S_IFMT, mode: mode, uid: uid, gid: gid, atime: now, mtime: now, ctime: now, btime: now, seals: sealSeal}
	t.nextIno++
	if mode&unix.S_IFMT == unix.S_IFDIR {
		n.children = map[string]*tmpNode{}
	}
	return n
}

func (n *tmpNode) fileType() uint32 { return n.typ }
func (n *tmpNode) isDir() bool      { return n.fileType() == unix.S_IFDIR }

// linkLocked enters child in dir as name.
func (t *tmpfs) linkLocked(dir *tmpNode, name string, child *tmpNode) {
	dir.children[name] = child
	child.nlink++
	if child.isDir() {
		child.parent, child.name = dir, name
		child.nlink++ // its "."
		dir.nlink++   // its ".."
	}
	now := nowTimespec()
	dir.mtime, dir.ctime, child.ctime = now, now, now
}

// unlinkLocked removes name (child) from dir.
func (t *tmpfs) unlinkLocked(dir *tmpNode, name string, child *tmpNode) {
	delete(dir.children, name)
	if child.isDir() {
		child.nlink, child.parent = 0, nil
		dir.nlink--
	} else {
		child.nlink--
	}
	now := nowTimespec()
	dir.mtime, dir.ctime, child.ctime = now, now, now
	t.maybeFreeLocked(child)
}

// maybeFreeLocked releases a file's data once it has neither links nor
// open descriptions.
func (t *tmpfs) maybeFreeLocked(n *tmpNode) {
	if n.nlink == 0 && n.opens == 0 {
		t.freePagesFromLocked(n, 0)
		t.notifier.inodeGone(inodeKey{Dev: uint64(t.minor), Ino: n.ino})
	}
}

// walked is the result of a walk.
type walked struct {
	// dir and name are the parent directory and final component when
	// the walk stopped before it (parent); dir is nil for the root.
	dir  *tmpNode
	name string
	// node is the file reached, or nil if the final component of a
	// parent walk does not exist.
	node *tmpNode
	// trailing reports a trailing slash (the file must be a directory).
	trailing bool
}

// walkLocked resolves rest, a path relative to the root of mount m. With
// parent it stops before the final component ("", ".", ".." included) and
// does not follow it. follow resolves a final symlink otherwise. A walk
// that leaves the filesystem returns a *crossing (second is copied into
// it).
//
// Preconditions: t.mu is held.
func (t *tmpfs) walkLocked(m *Mount, rest string, follow, parent, second bool) (walked, error) {
	return t.walkAsLocked(nil, m, rest, follow, parent, second)
}

// walkAsLocked is walkLocked for a caller with credentials c (nil: no
// checks), who needs search permission on every directory it looks a name
// up in (EACCES).
//
// Preconditions: t.mu is held.
func (t *tmpfs) walkAsLocked(creds *Creds, m *Mount, rest string, follow, parent, second bool) (walked, error) {
	var comps []string
	for _, c := range strings.Split(rest, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	w := walked{trailing: strings.HasSuffix(rest, "/")}
	cur := t.root
	for i, c := range comps {
		if !cur.isDir() {
			return w, unix.ENOTDIR
		}
		if !creds.permits(cur, mayExec) {
			return w, unix.EACCES
		}
		if len(c) > 255 {
			return w, unix.ENAMETOOLONG
		}
		last := i == len(comps)-1
		remaining := strings.Join(comps[i+1:], "/")
		if w.trailing && remaining != "" {
			remaining += "/"
		} else if w.trailing && last {
			remaining = "/"
		}
		if parent && last {
			w.dir, w.name = cur, c
			switch c {
			case ".":
				w.node = cur
			case "..":
				w.node = cur
				if cur.parent != nil {
					w.node = cur.parent
				}
			default:
				w.node = cur.children[c]
			}
			return w, nil
		}
		switch c {
		case ".":
			continue
		case "..":
			if cur == t.root {
				return w, &crossing{full: path.Dir(m.point) + "/" + remaining, second: second}
			}
			if cur.parent == nil {
				return w, unix.ENOENT
			}
			cur = cur.parent
			continue
		}
		child := cur.children[c]
		if child == nil {
			return w, unix.ENOENT
		}
		if child.fileType() == unix.S_IFLNK && (!last || follow || w.trailing) {
			return w, t.followLocked(m, cur, child, remaining, second)
		}
		cur = child
	}
	if parent {
		// The root itself (the mount point).
		w.node = t.root
		return w, nil
	}
	if w.trailing && !cur.isDir() {
		return w, unix.ENOTDIR
	}
	w.node = cur
	return w, nil
}

// followLocked returns the crossing that resolves symlink link, found in
// dir, followed by the rest of the path.
func (t *tmpfs) followLocked(m *Mount, dir, link *tmpNode, remaining string, second bool) error {
	target := link.target
	abs := strings.HasPrefix(target, "/")
	if !abs {
		base, err := t.pathLocked(m, dir)
		if err != nil {
			return err
		}
		target = base + "/" + target
	}
	if remaining != "" {
		target += "/" + remaining
	}
	return &crossing{full: target, second: second, abs: abs}
}

// pathLocked returns the guest path of directory d, ENOENT if it was
// removed.
func (t *tmpfs) pathLocked(m *Mount, d *tmpNode) (string, error) {
	var names []string
	for n := d; n != t.root; n = n.parent {
		if n.parent == nil {
			return "", unix.ENOENT
		}
		names = append(names, n.name)
	}
	p := m.point
	if p == "/" {
		if len(names) == 0 {
			return "/", nil
		}
		p = ""
	}
	for i := len(names) - 1; i >= 0; i-- {
		p += "/" + names[i]
	}
	return p, nil
}

// newOwnedLocked returns a new node of mode in dir owned by o, or by
// dir's group if dir has the set-group-ID bit (which a new directory
// inherits).
//
// Preconditions: t.mu is held.
func (t *tmpfs) newOwnedLocked(dir *tmpNode, mode uint32, o Owner) *tmpNode {
	gid := o.GID
	if dir != nil && dir.mode&unix.S_ISGID != 0 {
		gid = dir.gid
		if mode&unix.S_IFMT == unix.S_IFDIR {
			mode |= unix.S_ISGID
		}
	}
	return t.newNodeLocked(mode, o.UID, gid)
}

// createLocked is the common part of mkdir, symlink and mknod: the walk to
// the parent and the checks before a new name is made, for a caller with
// credentials c (nil: none), who needs write and search permission on the
// parent.
func (t *tmpfs) createLocked(c *Creds, m *Mount, rest string) (walked, error) {
	w, err := t.walkAsLocked(c, m, rest, false, true, false)
	if err != nil {
		return w, err
	}
	if w.node != nil {
		return w, unix.EEXIST
	}
	if w.dir.nlink == 0 {
		return w, unix.ENOENT
	}
	if !c.permits(w.dir, mayWrite|mayExec) {
		return w, unix.EACCES
	}
	return w, nil
}

func (t *tmpfs) mkdir(m *Mount, rest string, mode uint32, o Owner) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.createLocked(o.Creds, m, rest)
	if err != nil {
		return err
	}
	t.linkLocked(w.dir, w.name, t.newOwnedLocked(w.dir, unix.S_IFDIR|mode&0o7777, o))
	return nil
}

func (t *tmpfs) mknod(m *Mount, rest string, mode uint32, _ uint64, o Owner) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.createLocked(o.Creds, m, rest)
	if err != nil {
		return err
	}
	typ, err := mknodType(mode)
	if err != nil {
		return err
	}
	t.linkLocked(w.dir, w.name, t.newOwnedLocked(w.dir, typ|mode&0o7777, o))
	return nil
}

// mknodType returns the file type mknod(2) makes for mode: a regular file
// (also for type 0), a named pipe or a socket file; EPERM for device nodes
// and directories, EINVAL for an unknown type.
func mknodType(mode uint32) (uint32, error) {
	typ := mode & unix.S_IFMT
	switch typ {
	case 0:
		return unix.S_IFREG, nil
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
		return typ, nil
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFDIR:
		// Device nodes need CAP_MKNOD, which the sandbox's root does
		// not have here: devices are the sentry's /dev only.
		return 0, unix.EPERM
	}
	return 0, unix.EINVAL
}

func (t *tmpfs) symlink(m *Mount, target, rest string, o Owner) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.createLocked(o.Creds, m, rest)
	if err != nil {
		return err
	}
	if w.trailing {
		return unix.ENOENT
	}
	n := t.newOwnedLocked(w.dir, unix.S_IFLNK|0o777, o)
	n.target = target
	t.linkLocked(w.dir, w.name, n)
	return nil
}

func (t *tmpfs) stat(c *Creds, m *Mount, rest string, follow bool) (Stat, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.walkAsLocked(c, m, rest, follow, false, false)
	if err != nil {
		return Stat{}, err
	}
	return w.node.statLocked(), nil
}

// statIno is the inode number stat reports: a copied-up file's lower one.
func (n *tmpNode) statIno() uint64 {
	if n.origin != nil {
		return n.origin.Ino
	}
	return n.ino
}

// statLocked returns n's attributes.
func (n *tmpNode) statLocked() Stat {
	st := Stat{
		Mask:     unix.STATX_BASIC_STATS | unix.STATX_BTIME,
		Blksize:  4096,
		Nlink:    n.nlink,
		UID:      n.uid,
		GID:      n.gid,
		Mode:     n.mode,
		Ino:      n.statIno(),
		Blocks:   uint64(len(n.pages)) * pageSize / 512,
		Atime:    n.atime,
		Btime:    n.btime,
		Ctime:    n.ctime,
		Mtime:    n.mtime,
		DevMinor: n.fs.minor,
	}
	if n.origin != nil {
		st.DevMajor, st.DevMinor = n.origin.DevMajor, n.origin.DevMinor
	}
	if n.lower {
		// A merged directory's subdirectories are not all counted
		// here: 1, as Linux's overlayfs reports, tells tools such as
		// find not to count on st_nlink.
		st.Nlink = 1
	}
	switch n.fileType() {
	case unix.S_IFREG:
		st.Size = uint64(n.size)
	case unix.S_IFDIR:
		st.Size = uint64(len(n.children)+2) * bogoDirentSize
	case unix.S_IFLNK:
		st.Size = uint64(len(n.target))
	}
	return st
}

func (t *tmpfs) readlink(c *Creds, m *Mount, rest string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.walkAsLocked(c, m, rest, false, false, false)
	if err != nil {
		return "", err
	}
	if w.node.fileType() != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return w.node.target, nil
}

// access checks mode for the sandbox, which is root: reading and writing
// are allowed, executing needs an execute bit (or a directory).
func (n *tmpNode) access(mode uint32) error {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if mode&unix.X_OK != 0 && !n.isDir() && n.mode&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

func (t *tmpfs) access(c *Creds, m *Mount, rest string, mode uint32, flags int) error {
	t.mu.Lock()
	w, err := t.walkAsLocked(c, m, rest, flags&unix.AT_SYMLINK_NOFOLLOW == 0, false, false)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return w.node.accessAs(c, mode)
}

// chdir needs search permission on the new working directory too.
func (t *tmpfs) chdir(c *Creds, m *Mount, rest string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.walkAsLocked(c, m, rest, true, false, false)
	if err != nil {
		return "", err
	}
	if !w.node.isDir() {
		return "", unix.ENOTDIR
	}
	if !c.permits(w.node, mayExec) {
		return "", unix.EACCES
	}
	return t.pathLocked(m, w.node)
}

func (t *tmpfs) statfs(c *Creds, m *Mount, rest string) ([StatfsSize]byte, error) {
	t.mu.Lock()
	_, err := t.walkAsLocked(c, m, rest, true, false, false)
	t.mu.Unlock()
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	return t.statfsBytes(), nil
}

// MemoryInUse is implemented by the Pages of a filesystem (the kernel's
// memory file) that can say how many bytes the whole sandbox uses: its
// application's memory and the data of every tmpfs.
type MemoryInUse interface {
	InUse() uint64
}

// statfsBytes is statfs(2) of the filesystem: its size limit as the total
// and its own file data as used, or, for one sized by the sandbox's memory
// (memorySized, the overlay's upper layer), everything the sandbox uses,
// which is what a write there competes with (as runsc reports a
// memory-backed overlay).
func (t *tmpfs) statfsBytes() [StatfsSize]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	used := t.used
	if m, ok := t.pages.(MemoryInUse); ok && (t.memorySized || t.ovl != nil) {
		used = max(used, m.InUse())
	}
	free := (t.limit - min(used, t.limit)) / 4096
	magic := int64(tmpfsMagic)
	if t.ovl != nil {
		magic = overlayMagic
	}
	st := unix.Statfs_t{
		Type: magic, Bsize: 4096, Frsize: 4096, Namelen: 255,
		Blocks: t.limit / 4096, Bfree: free, Bavail: free,
		Files: 1 << 20, Ffree: 1<<20 - min(t.nextIno-t.inoBase, 1<<20),
		Flags: unix.ST_NOSUID | unix.ST_NODEV,
	}
	b := encodeStatfs(st)
	// encodeStatfs marks host filesystems read-only; this one is not.
	flags := uint64(unix.ST_NOSUID | unix.ST_NODEV)
	for i := range 8 {
		b[statfsFlagsOffset+i] = byte(flags >> (8 * i))
	}
	return b
}

// statfsFlagsOffset is the offset of f_flags in struct statfs.
const statfsFlagsOffset = 112

// unlink needs write and search permission on the parent, and the
// sticky-directory rule (Creds.mayDelete).
func (t *tmpfs) unlink(c *Creds, m *Mount, rest string, dir bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := t.walkAsLocked(c, m, rest, false, true, false)
	if err != nil {
		return err
	}
	switch {
	case w.dir == nil:
		if dir {
			return unix.EBUSY // the mount point
		}
		return unix.EISDIR
	case dir && w.name == ".":
		return unix.EINVAL
	case dir && w.name == "..":
		return unix.ENOTEMPTY
	case w.node == nil:
		return unix.ENOENT
	}
	if err := c.mayDelete(w.dir, w.node); err != nil {
		return err
	}
	switch {
	case !dir && w.node.isDir():
		return unix.EISDIR
	case dir && !w.node.isDir():
		return unix.ENOTDIR
	case !dir && w.trailing:
		return unix.ENOTDIR
	case dir && len(w.node.children) > 0:
		return unix.ENOTEMPTY
	case !dir && (w.name == "." || w.name == ".."):
		return unix.EISDIR
	}
	t.unlinkLocked(w.dir, w.name, w.node)
	return nil
}

// link needs search permission on the way to both names, write and
// search permission on the new name's directory, and (Linux's
// protected_hardlinks) the file's owner or a regular file the caller may
// read and write (Creds.mayLink).
func (t *tmpfs) link(c *Creds, m *Mount, oldRest, newRest string, follow bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ow, err := t.walkAsLocked(c, m, oldRest, follow, false, false)
	if err != nil {
		return err
	}
	return t.linkNodeLocked(c, m, ow.node, newRest)
}

// linkNodeLocked gives n the new name newRest (link, linkat of an
// O_TMPFILE file) for a caller with credentials c.
func (t *tmpfs) linkNodeLocked(c *Creds, m *Mount, n *tmpNode, newRest string) error {
	nw, err := t.walkAsLocked(c, m, newRest, false, true, true)
	if err != nil {
		return err
	}
	if nw.node != nil {
		return unix.EEXIST
	}
	if err := c.mayLink(n); err != nil {
		return err
	}
	switch {
	case !c.permits(nw.dir, mayWrite|mayExec):
		return unix.EACCES
	case n.isDir():
		return unix.EPERM
	case nw.dir.nlink == 0, n.nlink == 0 && n.noLink:
		return unix.ENOENT
	case nw.trailing:
		return unix.ENOENT
	}
	t.linkLocked(nw.dir, nw.name, n)
	return nil
}

// rename checks the caller's permission as Creds.mayRename.
func (t *tmpfs) rename(c *Creds, m *Mount, oldRest, newRest string, flags uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ow, err := t.walkAsLocked(c, m, oldRest, false, true, false)
	if err != nil {
		return err
	}
	nw, err := t.walkAsLocked(c, m, newRest, false, true, true)
	if err != nil {
		return err
	}
	if err := renameCheck(ow, nw, flags); err != nil {
		return err
	}
	src, dst := ow.node, nw.node
	if src == dst {
		return nil
	}
	if err := c.mayRename(ow, nw); err != nil {
		return err
	}
	if src.isDir() && isAncestor(src, nw.dir) {
		return unix.EINVAL
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		if dst.isDir() && isAncestor(dst, ow.dir) {
			return unix.EINVAL
		}
		t.exchangeLocked(ow, nw)
		return nil
	}
	if dst != nil {
		if src.isDir() && len(dst.children) > 0 {
			return unix.ENOTEMPTY
		}
		t.unlinkLocked(nw.dir, nw.name, dst)
	}
	delete(ow.dir.children, ow.name)
	if src.isDir() {
		ow.dir.nlink--
		src.nlink -= 2
	} else {
		src.nlink--
	}
	t.linkLocked(nw.dir, nw.name, src)
	now := nowTimespec()
	ow.dir.mtime, ow.dir.ctime = now, now
	return nil
}

// renameCheck makes rename's checks that need no change, in Linux's order.
func renameCheck(ow, nw walked, flags uint32) error {
	switch {
	case ow.dir == nil || nw.dir == nil:
		return unix.EBUSY
	case ow.name == "." || ow.name == ".." || nw.name == "." || nw.name == "..":
		return unix.EBUSY
	case ow.node == nil:
		return unix.ENOENT
	case flags&unix.RENAME_EXCHANGE != 0 && nw.node == nil:
		return unix.ENOENT
	case flags&unix.RENAME_NOREPLACE != 0 && nw.node != nil:
		return unix.EEXIST
	case (ow.trailing || nw.trailing) && !ow.node.isDir():
		return unix.ENOTDIR
	case flags&unix.RENAME_EXCHANGE != 0:
		return nil
	case nw.node != nil && ow.node.isDir() && !nw.node.isDir():
		return unix.ENOTDIR
	case nw.node != nil && !ow.node.isDir() && nw.node.isDir():
		return unix.EISDIR
	case nw.dir.nlink == 0:
		return unix.ENOENT
	}
	return nil
}

// isAncestor reports whether dir is d or one of its ancestors.
func isAncestor(dir, d *tmpNode) bool {
	for n := d; n != nil; n = n.parent {
		if n == dir {
			return true
		}
	}
	return false
}

// exchangeLocked swaps the files two names refer to (RENAME_EXCHANGE).
func (t *tmpfs) exchangeLocked(ow, nw walked) {
	a, b := ow.node, nw.node
	ow.dir.children[ow.name], nw.dir.children[nw.name] = b, a
	if a.isDir() {
		a.parent, a.name = nw.dir, nw.name
		ow.dir.nlink--
		nw.dir.nlink++
	}
	if b.isDir() {
		b.parent, b.name = ow.dir, ow.name
		nw.dir.nlink--
		ow.dir.nlink++
	}
	now := nowTimespec()
	ow.dir.mtime, ow.dir.ctime, nw.dir.mtime, nw.dir.ctime = now, now, now, now
	a.ctime, b.ctime = now, now
}

func (t *tmpfs) setAttr(m *Mount, rest string, follow bool, a *SetAttr) error {
	t.mu.Lock()
	w, err := t.walkLocked(m, rest, follow, false, false)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return t.setAttrNode(w.node, a)
}

// setAttrNode changes n's attributes as a says.
func (t *tmpfs) setAttrNode(n *tmpNode, a *SetAttr) error {
	t.mu.Lock()
	defer t.unlockNotify()
	return t.setAttrLocked(n, a)
}

// setAttrLocked is setAttrNode with t.mu held.
func (t *tmpfs) setAttrLocked(n *tmpNode, a *SetAttr) error {
	if err := a.Creds.maySetAttr(n, a); err != nil {
		return err
	}
	if a.Mask&SetAttrSize != 0 {
		switch {
		case n.isDir():
			return unix.EISDIR
		case n.fileType() != unix.S_IFREG:
			return unix.EINVAL
		case !a.Creds.permits(n, mayWrite):
			return unix.EACCES
		}
		if err := n.resizeSealedLocked(a.Size); err != nil {
			return err
		}
		t.truncateLocked(n, a.Size)
	}
	now := nowTimespec()
	if a.Mask&SetAttrMode != 0 && n.seals&sealExec != 0 && (a.Mode^n.mode)&0o111 != 0 {
		return unix.EPERM
	}
	if a.Mask&SetAttrMode != 0 {
		n.mode = n.mode&unix.S_IFMT | a.Creds.chmodMode(n, a.Mode&0o7777)
	}
	if a.Mask&(SetAttrUID|SetAttrGID) != 0 {
		if a.Mask&SetAttrUID != 0 {
			n.uid = a.UID
		}
		if a.Mask&SetAttrGID != 0 {
			n.gid = a.GID
		}
		if !n.isDir() {
			// chown drops set-user-ID, and set-group-ID of a group
			// executable, even for root.
			n.mode &^= unix.S_ISUID
			if n.mode&unix.S_IXGRP != 0 {
				n.mode &^= unix.S_ISGID
			}
		}
	}
	if a.Mask&SetAttrAtime != 0 {
		n.atime = timeOrNow(a.Atime, now)
	}
	if a.Mask&SetAttrMtime != 0 {
		n.mtime = timeOrNow(a.Mtime, now)
	}
	n.ctime = now
	return nil
}

func timeOrNow(ts, now Timespec) Timespec {
	if ts.Nsec == unix.UTIME_NOW {
		return now
	}
	return ts
}

// truncateLocked sets a regular file's size; the pages past a smaller
// size are released and the rest of the last one cleared.
func (t *tmpfs) truncateLocked(n *tmpNode, size int64) {
	switch {
	case size < n.size && n.mapped:
		t.clearLocked(n, size, n.size)
		t.noteShrinkLocked(n, size)
	case size < n.size:
		first := uint64((size + pageSize - 1) / pageSize)
		t.freePagesFromLocked(n, first)
		if size%pageSize != 0 {
			t.zeroLocked(n, size, int64(first)*pageSize)
		}
	case size > n.size:
		t.growLocked(n, size)
	}
	if size != n.size {
		now := nowTimespec()
		n.mtime, n.ctime = now, now
	}
	n.size = size
}

// openLocked opens node n (whose guest path is p) with open(2) flags.
func (t *tmpfs) openLocked(m *Mount, n *tmpNode, p string, flags uint32) (*File, error) {
	pathOnly := flags&unix.O_PATH != 0
	switch n.fileType() {
	case unix.S_IFDIR:
		if !pathOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_CREAT != 0) {
			return nil, unix.EISDIR
		}
	case unix.S_IFLNK:
		// Only reached with O_NOFOLLOW.
		if !pathOnly {
			return nil, unix.ELOOP
		}
		if flags&unix.O_DIRECTORY != 0 {
			return nil, unix.ENOTDIR
		}
	default:
		if flags&unix.O_DIRECTORY != 0 {
			return nil, unix.ENOTDIR
		}
		switch {
		case pathOnly:
		case n.fileType() == unix.S_IFIFO:
			return t.openFifoLocked(n, p, flags)
		case n.fileType() == unix.S_IFSOCK:
			return nil, unix.ENXIO
		case flags&unix.O_TRUNC != 0 && flags&unix.O_ACCMODE != unix.O_RDONLY && n.fileType() == unix.S_IFREG:
			t.truncateLocked(n, 0)
		}
	}
	n.opens++
	if pathOnly {
		flags = unix.O_PATH | flags&unix.O_ACCMODE
	}
	return newFile(flags, &tmpfsFile{node: n, mount: m, path: p}), nil
}

func (t *tmpfs) open(_ *FS, m *Mount, rest string, flags, mode uint32, o Owner) (*File, error) {
	t.mu.Lock()
	defer t.unlockNotify()
	pathOnly := flags&unix.O_PATH != 0
	follow := flags&unix.O_NOFOLLOW == 0
	if !pathOnly && flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return t.openTmpfileLocked(m, rest, flags, mode, o)
	}
	if pathOnly || flags&unix.O_CREAT == 0 {
		w, err := t.walkAsLocked(o.Creds, m, rest, follow, false, false)
		if err != nil {
			return nil, err
		}
		if !o.Creds.permits(w.node, openAccess(flags)) {
			return nil, unix.EACCES
		}
		p, err := t.nodePathLocked(m, w.node, rest)
		if err != nil {
			return nil, err
		}
		return t.openLocked(m, w.node, p, flags)
	}
	w, err := t.walkAsLocked(o.Creds, m, rest, false, true, false)
	if err != nil {
		return nil, err
	}
	n := w.node
	excl := flags&unix.O_EXCL != 0
	switch {
	case n == nil && w.trailing:
		return nil, unix.EISDIR
	case n == nil && w.dir.nlink == 0:
		return nil, unix.ENOENT
	case n == nil && !o.Creds.permits(w.dir, mayWrite|mayExec):
		return nil, unix.EACCES
	case n == nil:
		n = t.newOwnedLocked(w.dir, unix.S_IFREG|mode&0o7777, o)
		t.linkLocked(w.dir, w.name, n)
	case excl:
		return nil, unix.EEXIST
	case n.fileType() == unix.S_IFLNK && follow:
		return nil, t.followLocked(m, w.dir, n, "", false)
	case !o.Creds.permits(n, openAccess(flags)):
		return nil, unix.EACCES
	}
	base := m.point
	if w.dir != nil {
		if base, err = t.pathLocked(m, w.dir); err != nil {
			return nil, err
		}
		base += "/" + w.name
	}
	return t.openLocked(m, n, path.Clean(base), flags)
}

// nodePathLocked is the guest path of a node reached by walking rest: the
// canonical path of a directory, else the lexical one.
func (t *tmpfs) nodePathLocked(m *Mount, n *tmpNode, rest string) (string, error) {
	if n.isDir() {
		return t.pathLocked(m, n)
	}
	return path.Clean(m.point + "/" + rest), nil
}

// openTmpfileLocked implements O_TMPFILE: an unnamed regular file in the
// directory rest.
func (t *tmpfs) openTmpfileLocked(m *Mount, rest string, flags, mode uint32, o Owner) (*File, error) {
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, unix.EINVAL
	}
	w, err := t.walkAsLocked(o.Creds, m, rest, true, false, false)
	if err != nil {
		return nil, err
	}
	if !w.node.isDir() {
		return nil, unix.ENOTDIR
	}
	if !o.Creds.permits(w.node, mayWrite|mayExec) {
		return nil, unix.EACCES
	}
	dir, err := t.pathLocked(m, w.node)
	if err != nil {
		return nil, err
	}
	return t.tmpfileInLocked(m, w.node, dir, flags, mode, o), nil
}

// tmpfileInLocked makes the unnamed file of O_TMPFILE in directory d,
// whose guest path is dir.
func (t *tmpfs) tmpfileInLocked(m *Mount, d *tmpNode, dir string, flags, mode uint32, o Owner) *File {
	n := t.newOwnedLocked(d, unix.S_IFREG|mode&0o7777, o)
	n.noLink = flags&unix.O_EXCL != 0
	n.opens++
	f := &tmpfsFile{node: n, mount: m, path: joinGuest(dir, "#"+itoa(n.ino))}
	return newFile(flags, f)
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// tmpfsFile is an open description of a tmpfs file.
//
// +stateify savable
type tmpfsFile struct {
	noImpl
	// node is the file; immutable.
	node *tmpNode
	// mount is where the file's filesystem is mounted; immutable.
	mount *Mount
	// path is the guest path it was opened by; immutable.
	path string
	// memfd is set for a memfd_create file; immutable.
	memfd bool

	// mu protects off, dirents and dirPos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// off is a regular file's offset.
	off int64
	// dirents is a directory's listing, taken when it is read from the
	// start.
	dirents []Dirent
	// dirPos is the index of the next directory entry.
	dirPos int
}

func (f *tmpfsFile) release() {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	f.node.opens--
	t.maybeFreeLocked(f.node)
}

// reopen returns a new description of the same file (/proc/self/fd/N).
func (f *tmpfsFile) reopen(c *Creds, flags uint32) (*File, error) {
	t := f.node.fs
	t.mu.Lock()
	defer t.unlockNotify()
	if !c.permits(f.node, openAccess(flags)) {
		return nil, unix.EACCES
	}
	nf, err := t.openLocked(f.mount, f.node, f.path, flags&^(unix.O_CREAT|unix.O_EXCL))
	if tf, ok := nf.impl.(*tmpfsFile); ok {
		tf.memfd = f.memfd
	}
	return nf, err
}

// dirPath is the guest path of a directory file: ENOTDIR for another file,
// ENOENT once removed.
func (f *tmpfsFile) dirPath() (string, error) {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	if !f.node.isDir() {
		return "", unix.ENOTDIR
	}
	return t.pathLocked(f.mount, f.node)
}

func (f *tmpfsFile) readlink() (string, error) {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.node.fileType() != unix.S_IFLNK {
		return "", unix.ENOENT
	}
	return f.node.target, nil
}

func (f *tmpfsFile) guestPath() string {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.node.nlink == 0 {
		return f.path + " (deleted)"
	}
	return f.path
}

func (f *tmpfsFile) read(file *File, _ <-chan struct{}, dst []byte, off int64) (int, error) {
	return f.readSeq(Bytes(dst), off)
}

// readSeq reads into dst at off, or at the file offset if off < 0.
func (f *tmpfsFile) readSeq(dst IOSeq, off int64) (int, error) {
	if f.node.isDir() {
		return 0, unix.EISDIR
	}
	if off >= 0 {
		return f.readSeqAt(dst, off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.readSeqAt(dst, f.off)
	f.off += int64(n)
	return n, err
}

func (f *tmpfsFile) write(file *File, _ <-chan struct{}, src []byte, off int64) (int, error) {
	return f.writeSeq(file, Bytes(src), off)
}

// writeSeq writes src at off, or at the file offset if off < 0.
func (f *tmpfsFile) writeSeq(file *File, src IOSeq, off int64) (int, error) {
	appendMode := file.flags.Load()&unix.O_APPEND != 0
	if off >= 0 {
		// pwrite on an O_APPEND file appends, as on Linux.
		n, _, err := f.writeSeqAt(src, off, appendMode)
		return n, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, end, err := f.writeSeqAt(src, f.off, appendMode)
	if n > 0 {
		f.off = end
	}
	return n, err
}

func (f *tmpfsFile) seek(_ *File, off int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.node.isDir() {
		return seekDir(&f.dirPos, off, whence)
	}
	t := f.node.fs
	t.mu.Lock()
	size := f.node.size
	t.mu.Unlock()
	n, err := seekNoHoles(f.off, size, off, whence)
	if err != nil {
		return 0, err
	}
	f.off = n
	return n, nil
}

func (f *tmpfsFile) stat(*File) (Stat, error) {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	return f.node.statLocked(), nil
}

func (f *tmpfsFile) getdents64(_ *File, dst []byte) (int, error) {
	if !f.node.isDir() {
		return 0, unix.ENOTDIR
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirPos == 0 || f.dirents == nil {
		f.dirents = f.listing()
	}
	return fillDirents(dst, f.dirents, &f.dirPos)
}

// listing returns the directory's entries: ".", "..", then the names in
// order.
func (f *tmpfsFile) listing() []Dirent {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	d := f.node
	parentIno := d.statIno()
	if d.parent != nil {
		parentIno = d.parent.statIno()
	}
	ents := []Dirent{{Ino: d.statIno(), Type: unix.DT_DIR, Name: "."}, {Ino: parentIno, Type: unix.DT_DIR, Name: ".."}}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := d.children[name]
		ents = append(ents, Dirent{Ino: c.statIno(), Type: uint8(c.fileType() >> 12), Name: name})
	}
	if d.lower && t.ovl != nil && d.nlink > 0 {
		if p, err := t.pathLocked(f.mount, d); err == nil {
			ents = append(ents, t.ovl.lowerEntriesLocked(d, p)...)
		}
	}
	return ents
}

// linkTo gives an O_TMPFILE file the name rest in mount m (linkat with
// AT_EMPTY_PATH) for a caller with credentials c, checked as for link.
func (f *tmpfsFile) linkTo(c *Creds, m *Mount, rest string) error {
	t := f.node.fs
	if o, ok := m.fs.(*overlayFS); ok && o.upper == t {
		t.mu.Lock()
		defer t.mu.Unlock()
		return o.linkNodeLocked(c, f.node, rest)
	}
	if m.fs != Filesystem(t) {
		return unix.EXDEV
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.linkNodeLocked(c, m, f.node, rest)
}

// truncate implements ftruncate(2).
func (f *tmpfsFile) truncate(size int64) error {
	t := f.node.fs
	t.mu.Lock()
	defer t.unlockNotify()
	if err := f.node.resizeSealedLocked(size); err != nil {
		return err
	}
	t.truncateLocked(f.node, size)
	return nil
}

// resizeSealedLocked returns EPERM if a seal forbids making n size bytes
// long.
//
// Preconditions: n.fs.mu is held.
func (n *tmpNode) resizeSealedLocked(size int64) error {
	if (size < n.size && n.seals&sealShrink != 0) || (size > n.size && n.seals&sealGrow != 0) {
		return unix.EPERM
	}
	return nil
}

// fallocate implements fallocate(2) with mode 0, FALLOC_FL_KEEP_SIZE and
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.
func (f *tmpfsFile) fallocate(mode uint32, off, length int64) error {
	t := f.node.fs
	t.mu.Lock()
	defer t.mu.Unlock()
	n := f.node
	end := off + length
	if (mode&fallocPunchHole != 0 && n.seals&(sealWrite|sealFutureWrite) != 0) ||
		(mode == 0 && end > n.size && n.seals&sealGrow != 0) {
		return unix.EPERM
	}
	switch mode {
	case 0, fallocKeepSize:
		for i := uint64(off / pageSize); i < uint64((end+pageSize-1)/pageSize); i++ {
			if _, err := t.pageLocked(n, i, true); err != nil {
				return err
			}
		}
		if mode == 0 && end > n.size {
			t.growLocked(n, end)
			n.size = end
		}
	case fallocPunchHole | fallocKeepSize:
		if n.mapped {
			t.clearLocked(n, off, end)
		} else {
			t.zeroLocked(n, off, end)
		}
	default:
		return unix.EOPNOTSUPP
	}
	now := nowTimespec()
	n.mtime, n.ctime = now, now
	return nil
}

// IsTmpfs reports whether f is a file of a tmpfs.
func (f *File) IsTmpfs() bool {
	_, ok := f.impl.(*tmpfsFile)
	return ok
}
