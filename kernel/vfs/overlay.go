package vfs

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayFS is the sandbox's writable root: the host root (or --rootfs)
// as a read-only lower layer under a tmpfs upper layer, whose file data
// lives in the kernel's memory file like every tmpfs's (so it is saved
// with the sandbox and counted against --memory).
//
// Lookup. A name is looked up in the upper directory first; a whiteout
// there hides the lower entry of that name, and a directory of the upper
// layer shows the lower directory at the same path only if it was copied
// up from it (tmpNode.lower; a directory made in the overlay is opaque).
// Below a directory the upper layer lacks, the walk is the host's, in one
// openat2 while no symlink and no ".." is on the way; a name in a merged
// directory is looked up relative to the lower directory, which the
// overlay keeps open (overlay_lowerdirs.go). Symlinks of either
// layer resolve in the merged view (the walk continues from the root
// through the mount table), never on the host.
//
// Copy-up. The first change of a lower file (open for writing, truncate,
// chmod, chown, utimes, link, rename) copies it into the upper layer,
// its directories first: data, mode, owner and times, and its device and
// inode numbers, which stat keeps reporting (tmpNode.origin). A
// description opened read-only before the copy-up keeps reading the lower
// file, as on Linux's overlayfs. Removing a lower entry leaves a whiteout;
// renaming a directory that has lower content is EXDEV, as Linux's
// overlayfs without redirect_dir answers, so that mv copies instead.
//
// Permissions. A caller's credentials (Owner.Creds, the *As methods of
// FS) are checked as in a tmpfs (perm.go): an upper file by its own mode
// and owner, a lower one by the host's as stat reports them, before any
// copy-up.
//
// Named pipes and socket files are made in the upper layer and served as
// a tmpfs serves them (tmpfs_fifo.go); a lower FIFO or socket is never
// opened.
//
// The host is never modified: the lower layer is opened read-only, only
// regular files and directories, with the checks of Root.
//
// +stateify savable
type overlayFS struct {
	// lower is the host root; immutable.
	lower *Root
	// upper holds everything written; immutable. Its mu protects the
	// walk and every change (the lower layer is looked up under it).
	upper *tmpfs
	// lowerOpen are the open descriptions of lower regular files, which
	// their copy-up switches to the copy (overlay_copyup.go); protected
	// by upper.mu. Not saved: the restored files track themselves again.
	lowerOpen lowerOpens `state:"nosave"`
	// lowerDirs are the lower directories kept open for lookups
	// (overlay_lowerdirs.go); protected by upper.mu. Not saved: host
	// descriptors, opened again as needed.
	lowerDirs lowerDirs `state:"nosave"`
}

// overlayMagic is Linux's OVERLAYFS_SUPER_MAGIC, what statfs reports.
const overlayMagic = 0x794c7630

// overlayInoBase is the first inode number of a file made in the upper
// layer, far above the inode numbers of host filesystems, which lower
// files and copied-up files report.
const overlayInoBase = 1 << 48

// ovlOrigin is the lower file a copied-up file came from.
//
// +stateify savable
type ovlOrigin struct {
	DevMajor, DevMinor uint32
	Ino                uint64
}

func newOverlay(lower *Root, limit uint64, minor uint32) (*overlayFS, error) {
	t := newTmpfs(limit, minor)
	t.keepSpare = true
	t.inoBase = overlayInoBase
	t.nextIno = overlayInoBase + 1
	o := &overlayFS{lower: lower, upper: t}
	t.ovl = o
	st, err := lower.stat(nil, nil, "/", true)
	if err != nil {
		return nil, err
	}
	r := t.root
	r.lower = true
	r.mode = st.Mode
	r.uid, r.gid = st.UID, st.GID
	r.atime, r.mtime, r.ctime = st.Atime, st.Mtime, st.Ctime
	r.origin = &ovlOrigin{DevMajor: st.DevMajor, DevMinor: st.DevMinor, Ino: st.Ino}
	return o, nil
}

func (o *overlayFS) fsType() string { return "overlay" }

// ovlEnt is one file as the overlay shows it.
type ovlEnt struct {
	// up is the upper file, or nil.
	up *tmpNode
	// low reports that the lower layer has a file at the entry's path
	// that shows through: the file itself if up is nil, else the lower
	// directory under a merged one.
	low bool
	// lst is the lower file's attributes when up is nil (for a
	// directory on a walk's way, only its type may be set).
	lst Stat
	// target is a lower symlink's target when the lookup that found it
	// read it too (fastLocked), else "" (no symlink's target is empty).
	target string
	// absent reports that the entry does not exist and the lower layer
	// was asked: a file made there is the upper layer's only.
	absent bool
}

func (e ovlEnt) exists() bool { return e.up != nil || e.low }

func (e ovlEnt) fileType() uint32 {
	if e.up != nil {
		return e.up.fileType()
	}
	return e.lst.FileType()
}

func (e ovlEnt) isDir() bool { return e.fileType() == unix.S_IFDIR }

// node returns what the permission checks read of e (perm.go): its upper
// node, or a detached node with the lower file's type, mode and owner.
//
// Preconditions: o.upper.mu is held.
func (e ovlEnt) node() *tmpNode {
	if e.up != nil {
		return e.up
	}
	return &tmpNode{typ: e.lst.FileType(), mode: e.lst.Mode, uid: e.lst.UID, gid: e.lst.GID}
}

// ovlStep is a directory on a walk's way, with its guest path.
type ovlStep struct {
	name string
	path string
	ent  ovlEnt
}

// ovlWalk is the result of a walk: the directories from the root to the
// final component's parent, the final name and what it names (which may
// not exist for a parent walk).
type ovlWalk struct {
	stack    []ovlStep
	name     string
	path     string
	ent      ovlEnt
	trailing bool
	// fd, when hasFD, is an O_PATH descriptor of the lower file ent
	// names, from the lookup that found it (walkInLocked with keep): the
	// open takes it over (takeFD) instead of looking the file up again.
	fd    int
	hasFD bool
}

// takeFD hands the walk's descriptor to the caller, who closes it.
func (w *ovlWalk) takeFD() (int, bool) {
	ok := w.hasFD
	w.hasFD = false
	return w.fd, ok
}

// release closes the walk's descriptor if no one took it.
func (w *ovlWalk) release() {
	if fd, ok := w.takeFD(); ok {
		unix.Close(fd)
	}
}

// dir returns the parent step; false for the root itself.
func (w *ovlWalk) dir() (*ovlStep, bool) {
	if len(w.stack) == 0 {
		return nil, false
	}
	return &w.stack[len(w.stack)-1], true
}

// guestDir returns the directory of guest path p, which is
// joinGuest(dir, name).
func guestDir(p, name string) string {
	if d := p[:len(p)-len(name)-1]; d != "" {
		return d
	}
	return "/"
}

// joinIn is joinGuest(dir, name) for a walk of full: the prefix of full
// it is when full starts with it (a clean path), which costs no
// allocation.
func joinIn(full, dir, name string) string {
	if dir == "/" {
		dir = ""
	}
	n := len(dir) + 1 + len(name)
	if len(full) >= n && full[len(dir)] == '/' && full[len(dir)+1:n] == name && full[:len(dir)] == dir {
		return full[:n]
	}
	return joinGuest(dir, name)
}

func joinGuest(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func (o *overlayFS) rootStep() ovlStep {
	return ovlStep{path: "/", ent: ovlEnt{up: o.upper.root, low: true}}
}

// childLocked looks name up in directory d.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) childLocked(d *ovlStep, name string) (ovlEnt, error) {
	if up := d.ent.up; up != nil {
		if c := up.children[name]; c != nil {
			return ovlEnt{up: c, low: c.isDir() && c.lower}, nil
		}
		if up.whiteouts[name] || !up.lower {
			return ovlEnt{}, nil
		}
	} else if !d.ent.low {
		return ovlEnt{}, nil
	}
	var seen *Stat
	if d.ent.up == nil {
		seen = &d.ent.lst
	}
	st, err := o.lowerChildLocked(d.path, name, seen)
	switch err {
	case nil:
		return ovlEnt{low: true, lst: st}, nil
	case unix.ENOENT, unix.ENOTDIR:
		return ovlEnt{absent: true}, nil
	}
	return ovlEnt{}, err
}

// lowerOnlyLocked reports whether name in directory e, and everything
// below it, is the lower layer's only: e has no upper directory, or a
// merged one that neither has nor hides name.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerOnlyLocked(e ovlEnt, name string) bool {
	if up := e.up; up != nil {
		return up.lower && up.children[name] == nil && !up.whiteouts[name]
	}
	return e.low
}

// fastLocked resolves comps below d, whose first component is the lower
// layer's only (lowerOnlyLocked),
// on the host in one lookup when none but the last is a symlink. A
// symlink at the end is not followed: the entry is the symlink, with its
// target read on the same descriptor (ovlEnt.target). With keep, the
// descriptor of any other file found is returned (fd, else -1) for the
// caller to close. ok is false when the walk must go component by
// component: also for a "." or "..", which the caller's stack of
// directories must not record as a directory of that name (a copy-up
// would make one). err is then ELOOP when a symlink is on the way, and a
// later try before the walk reaches it would meet it again.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) fastLocked(d ovlStep, comps []string, keep bool) (e ovlEnt, fd int, ok bool, err error) {
	for _, c := range comps {
		if c == "." || c == ".." || len(c) > 255 {
			return ovlEnt{}, -1, false, nil
		}
	}
	p := joinGuest(d.path, strings.Join(comps, "/"))
	fd, mnt, err := o.lower.openat2Mount(p, unix.O_NOFOLLOW, unix.RESOLVE_NO_SYMLINKS)
	switch {
	case err == unix.ELOOP:
		return ovlEnt{}, -1, false, err
	case err != nil:
		err = o.failedFastLocked(p, err)
	default:
		var st Stat
		fd, st, err = statCheckedIn(fd, mnt)
		if err != nil {
			break
		}
		e = ovlEnt{low: true, lst: st}
		if st.FileType() == unix.S_IFLNK {
			e.target, err = hostReadlink(fd)
		}
		if err != nil || !keep || st.FileType() == unix.S_IFLNK {
			unix.Close(fd)
			fd = -1
		}
	}
	switch err {
	case nil:
		return e, fd, true, nil
	case unix.ENOENT, unix.ENOTDIR, unix.EACCES, unix.ENAMETOOLONG:
		return ovlEnt{}, -1, true, err
	}
	return ovlEnt{}, -1, false, nil
}

// failedFastLocked is Root.failedLookup for fastLocked's lookup of p
// (clean, no "." or ".." in it), which failed with err: when the
// directory p names a file in is one the overlay keeps open (or can
// open), that directory is known to be on no pseudo filesystem and err
// stands, with no walk up the ancestors.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) failedFastLocked(p string, err error) error {
	if err == unix.ENOENT {
		if _, ok := o.lowerDirLocked(path.Dir(p)); ok {
			return err
		}
	}
	return o.lower.failedLookup(p, err)
}

// walkLocked resolves full, an absolute guest path. With parent it stops
// at the final component without following it (w.ent may not exist);
// otherwise the final component must exist and follow resolves it if it
// is a symlink. A symlink on the way returns a *crossing (second is
// copied into it).
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) walkLocked(full string, follow, parent, second bool) (ovlWalk, error) {
	return o.walkAsLocked(nil, full, follow, parent, second)
}

// walkAsLocked is walkLocked for a caller with credentials creds (nil: no
// checks), who needs search permission on every directory it looks a name
// up in (EACCES): an upper directory's mode and owner, a lower one's as
// the host's stat reports them. The host's one-lookup walk is taken only
// for a caller who may search every directory.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) walkAsLocked(creds *Creds, full string, follow, parent, second bool) (ovlWalk, error) {
	return o.walkInLocked(creds, full, follow, parent, second, false)
}

// walkInLocked is walkAsLocked that, with keep, leaves in the walk the
// host descriptor of a lower file it ends at when its last lookup opened
// one (ovlWalk.fd); the caller then releases the walk.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) walkInLocked(creds *Creds, full string, follow, parent, second, keep bool) (ovlWalk, error) {
	var compsBuf [16]string
	comps := splitComponents(full, compsBuf[:0])
	w := ovlWalk{trailing: strings.HasSuffix(full, "/") && len(comps) > 0}
	finalFD := -1
	// linkAhead is set when the host walk met a symlink on the way; the
	// walk goes name by name until it crosses it.
	linkAhead := false
	cur := o.rootStep()
	stack := make([]ovlStep, 0, len(comps))
	for i := 0; i < len(comps); i++ {
		c := comps[i]
		if !cur.ent.isDir() {
			return w, unix.ENOTDIR
		}
		if !creds.permits(cur.ent.node(), mayExec) {
			return w, unix.EACCES
		}
		if len(c) > 255 {
			return w, unix.ENAMETOOLONG
		}
		last := i == len(comps)-1
		if parent && last {
			w.stack, w.name, w.path = append(stack, cur), c, joinIn(full, cur.path, c)
			switch c {
			case ".":
				w.ent = cur.ent
			case "..":
				w.ent = cur.ent
				if len(stack) > 0 {
					w.ent = stack[len(stack)-1].ent
				}
			default:
				e, err := o.childLocked(&cur, c)
				if err != nil {
					return w, err
				}
				w.ent = e
			}
			return w, nil
		}
		switch c {
		case ".":
			continue
		case "..":
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
			continue
		}
		if !linkAhead && o.lowerOnlyLocked(cur.ent, c) && creds.searchesAll() {
			end := len(comps)
			if parent {
				end--
			}
			if end > i {
				e, fd, ok, err := o.fastLocked(cur, comps[i:end], keep && end == len(comps))
				if err == unix.ELOOP && !ok {
					linkAhead, err = true, nil
				}
				if err != nil {
					return w, err
				}
				if ok {
					for _, d := range comps[i : end-1] {
						stack = append(stack, cur)
						cur = ovlStep{name: d, path: joinIn(full, cur.path, d), ent: ovlEnt{low: true, lst: Stat{Mode: unix.S_IFDIR}}}
					}
					c = comps[end-1]
					if e.fileType() == unix.S_IFLNK && (end < len(comps) || follow || w.trailing) {
						return w, o.followLocked(&cur, c, e, comps[end:], w.trailing, second)
					}
					stack = append(stack, cur)
					cur = ovlStep{name: c, path: joinIn(full, cur.path, c), ent: e}
					finalFD = fd
					i = end - 1
					continue
				}
			}
		}
		e, err := o.childLocked(&cur, c)
		if err != nil {
			return w, err
		}
		if !e.exists() {
			return w, unix.ENOENT
		}
		if e.fileType() == unix.S_IFLNK && (!last || follow || w.trailing) {
			return w, o.followLocked(&cur, c, e, comps[i+1:], w.trailing, second)
		}
		stack = append(stack, cur)
		cur = ovlStep{name: c, path: joinIn(full, cur.path, c), ent: e}
	}
	if parent {
		// No component: the root itself, the mount point.
		w.ent, w.path = cur.ent, cur.path
		return w, nil
	}
	if w.trailing && !cur.ent.isDir() {
		if finalFD >= 0 {
			unix.Close(finalFD)
		}
		return w, unix.ENOTDIR
	}
	w.stack, w.name, w.path, w.ent = stack, cur.name, cur.path, cur.ent
	w.fd, w.hasFD = finalFD, finalFD >= 0
	return w, nil
}

// splitComponents appends the non-empty components of path p to comps
// (strings.FieldsFunc at each slash, without allocating when they fit).
func splitComponents(p string, comps []string) []string {
	for p != "" {
		var c string
		c, p, _ = strings.Cut(p, "/")
		if c != "" {
			comps = append(comps, c)
		}
	}
	return comps
}

// followLocked returns the crossing that resolves symlink e, named name
// in d, followed by the rest of the path.
func (o *overlayFS) followLocked(d *ovlStep, name string, e ovlEnt, rest []string, trailing, second bool) error {
	target, err := o.targetLocked(joinGuest(d.path, name), e)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(target, "/") {
		target = joinGuest(d.path, target)
	}
	if len(rest) > 0 {
		target += "/" + strings.Join(rest, "/")
	}
	if trailing {
		target += "/"
	}
	return &crossing{full: target, second: second}
}

// targetLocked returns the target of symlink e at guest path p: read when
// e was looked up, else now.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) targetLocked(p string, e ovlEnt) (string, error) {
	if e.up != nil {
		return e.up.target, nil
	}
	if e.target != "" {
		return e.target, nil
	}
	if target, ok, err := o.lowerTargetLocked(p); ok {
		return target, err
	}
	fd, err := o.lower.lookup(p, unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return hostReadlink(fd)
}

// statEnt returns e's attributes.
func statEnt(e ovlEnt) Stat {
	if e.up != nil {
		return e.up.statLocked()
	}
	return e.lst
}

func (o *overlayFS) stat(c *Creds, _ *Mount, full string, follow bool) (Stat, error) {
	return o.statAs(c, full, follow)
}

func (o *overlayFS) readlink(c *Creds, _ *Mount, full string) (string, error) {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(c, full, false, false, false)
	if err != nil {
		return "", err
	}
	if w.ent.fileType() != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return o.targetLocked(w.path, w.ent)
}

func (o *overlayFS) access(c *Creds, _ *Mount, full string, mode uint32, flags int) error {
	if c != nil {
		return o.accessAs(c, full, mode, flags)
	}
	t := o.upper
	t.mu.Lock()
	w, err := o.walkLocked(full, flags&unix.AT_SYMLINK_NOFOLLOW == 0, false, false)
	t.unlockNotify()
	if err != nil {
		return err
	}
	if w.ent.up != nil {
		return w.ent.up.access(mode)
	}
	return o.lowerAccess(w.path, mode, flags)
}

// accessAs is access(2) for a caller with credentials c, checked on the
// file and on every directory the lookup passes (EACCES).
func (o *overlayFS) accessAs(c *Creds, full string, mode uint32, flags int) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(c, full, flags&unix.AT_SYMLINK_NOFOLLOW == 0, false, false)
	if err != nil {
		return err
	}
	if !c.permits(w.ent.node(), mode&(mayRead|mayWrite|mayExec)) {
		return unix.EACCES
	}
	if w.ent.up != nil {
		return nil
	}
	// What the host refuses the sentry, the sandbox cannot read either.
	return o.lowerAccess(w.path, mode, flags)
}

// lowerAccess is access(2) on the host of the lower file at guest path p
// for the sentry's host identity: only the read and execute bits, the
// overlay being writable.
func (o *overlayFS) lowerAccess(p string, mode uint32, flags int) error {
	fd, err := o.lower.lookup(p, unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Faccessat2(fd, "", mode&^unix.W_OK, unix.AT_EMPTY_PATH|flags&unix.AT_EACCESS)
}

// statAs is stat for a caller with credentials c (nil: no checks), who
// needs search permission on every directory the lookup passes (EACCES).
func (o *overlayFS) statAs(c *Creds, full string, follow bool) (Stat, error) {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(c, full, follow, false, false)
	if err != nil {
		return Stat{}, err
	}
	return statEnt(w.ent), nil
}

// chdirAs is chdir for a caller with credentials c, who needs search
// permission on the way and on the directory itself (EACCES).
func (o *overlayFS) chdirAs(c *Creds, full string) (string, error) {
	t := o.upper
	t.mu.Lock()
	w, err := o.walkAsLocked(c, full, true, false, false)
	var n *tmpNode
	if err == nil {
		n = w.ent.node()
	}
	t.unlockNotify()
	switch {
	case err != nil:
		return "", err
	case !w.ent.isDir():
		return "", unix.ENOTDIR
	case !c.permits(n, mayExec):
		return "", unix.EACCES
	case w.ent.up == nil:
		if err := o.lowerAccess(w.path, unix.X_OK, 0); err != nil {
			return "", err
		}
	}
	return w.path, nil
}

func (o *overlayFS) chdir(c *Creds, _ *Mount, full string) (string, error) {
	if c != nil {
		return o.chdirAs(c, full)
	}
	t := o.upper
	t.mu.Lock()
	w, err := o.walkLocked(full, true, false, false)
	t.unlockNotify()
	if err != nil {
		return "", err
	}
	if !w.ent.isDir() {
		return "", unix.ENOTDIR
	}
	if w.ent.up == nil {
		fd, err := o.lower.lookup(w.path, unix.O_NOFOLLOW|unix.O_DIRECTORY)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		if err := unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
			return "", err
		}
	}
	return w.path, nil
}

func (o *overlayFS) statfs(c *Creds, _ *Mount, full string) ([StatfsSize]byte, error) {
	t := o.upper
	t.mu.Lock()
	_, err := o.walkAsLocked(c, full, true, false, false)
	t.unlockNotify()
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	return t.statfsBytes(), nil
}

// copyUpDirsLocked gives every directory of stack an upper node (the
// lower directory's attributes, merged) and returns the last one's.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) copyUpDirsLocked(stack []ovlStep) (*tmpNode, error) {
	for i := range stack {
		s := &stack[i]
		if s.ent.up != nil {
			continue
		}
		up, err := o.copyUpLocked(stack[i-1].ent.up, s.name, s.path)
		if err != nil {
			return nil, err
		}
		s.ent.up = up
	}
	return stack[len(stack)-1].ent.up, nil
}

// copyUpEntLocked gives the file w names an upper node, its directories
// first, and returns it.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) copyUpEntLocked(w *ovlWalk) (*tmpNode, error) {
	if w.ent.up != nil {
		return w.ent.up, nil
	}
	dir, err := o.copyUpDirsLocked(w.stack)
	if err != nil {
		return nil, err
	}
	up, err := o.copyUpLocked(dir, w.name, w.path)
	if err != nil {
		return nil, err
	}
	w.ent.up = up
	return up, nil
}

// copyUpLocked copies the lower file at guest path p into the upper
// directory dir as name: a directory (merged), a regular file with its
// data, or a symlink; other kinds of files are EPERM. The parent's times
// do not change.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) copyUpLocked(dir *tmpNode, name, p string) (*tmpNode, error) {
	t := o.upper
	fd, st, err := o.lower.lookupStat(p, unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := t.newNodeLocked(st.Mode, st.UID, st.GID)
	switch st.FileType() {
	case unix.S_IFDIR:
		n.lower = true
	case unix.S_IFLNK:
		if n.target, err = hostReadlink(fd); err != nil {
			return nil, err
		}
	case unix.S_IFREG:
		if err := o.copyDataLocked(n, fd); err != nil {
			t.freePagesFromLocked(n, 0)
			return nil, err
		}
	default:
		return nil, unix.EPERM
	}
	n.origin = &ovlOrigin{DevMajor: st.DevMajor, DevMinor: st.DevMinor, Ino: st.Ino}
	if st.FileType() != unix.S_IFLNK {
		copyXattrs(fd, n)
	}
	dm, dc := dir.mtime, dir.ctime
	t.linkLocked(dir, name, n)
	dir.mtime, dir.ctime = dm, dc
	n.atime, n.mtime, n.ctime, n.btime = st.Atime, st.Mtime, st.Ctime, st.Btime
	if st.FileType() == unix.S_IFREG {
		o.copiedUpLocked(*n.origin, n, p)
	}
	return n, nil
}

// copyChunk is how much of a lower file copy-up reads at once.
const copyChunk = 1 << 20

// copyDataLocked copies the lower regular file open O_PATH on pfd into n,
// keeping its holes.
func (o *overlayFS) copyDataLocked(n *tmpNode, pfd int) error {
	fd, err := reopen(pfd, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf := make([]byte, copyChunk)
	var off int64
	for {
		m, err := preadFull(fd, buf, off)
		if err != nil {
			return err
		}
		if m == 0 {
			return nil
		}
		for i := 0; i < m; i += pageSize {
			page := buf[i:min(m, i+pageSize)]
			if isZero(page) {
				continue
			}
			if _, err := o.upper.writeLocked(n, page, off+int64(i)); err != nil {
				return err
			}
		}
		off += int64(m)
		n.size = off
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// createAsLocked walks to the parent of a new name: EEXIST if it exists,
// else the parent's upper node (copied up). The caller, with credentials
// c (nil: no checks), needs write and search permission on the parent.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) createAsLocked(c *Creds, full string, second bool) (ovlWalk, *tmpNode, error) {
	w, err := o.walkAsLocked(c, full, false, true, second)
	if err != nil {
		return w, nil, err
	}
	d, ok := w.dir()
	if !ok || w.ent.exists() {
		return w, nil, unix.EEXIST
	}
	if !c.permits(d.ent.node(), mayWrite|mayExec) {
		return w, nil, unix.EACCES
	}
	dir, err := o.copyUpDirsLocked(w.stack)
	if err != nil {
		return w, nil, err
	}
	if dir.nlink == 0 {
		return w, nil, unix.ENOENT
	}
	return w, dir, nil
}

// linkNewLocked enters n in the upper directory dir as name, replacing a
// whiteout. absent reports that the lower layer was just found to have no
// file of that name (ovlEnt.absent): its removal then needs no lookup.
func (o *overlayFS) linkNewLocked(dir *tmpNode, name string, n *tmpNode, absent bool) {
	delete(dir.whiteouts, name)
	o.upper.linkLocked(dir, name, n)
	if absent && dir.lower {
		if dir.lowerAbsent == nil {
			dir.lowerAbsent = map[string]bool{}
		}
		dir.lowerAbsent[name] = true
	}
}

func (o *overlayFS) mkdir(_ *Mount, full string, mode uint32, ow Owner) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, dir, err := o.createAsLocked(ow.Creds, full, false)
	if err != nil {
		return err
	}
	o.linkNewLocked(dir, w.name, t.newOwnedLocked(dir, unix.S_IFDIR|mode&0o7777, ow), w.ent.absent)
	return nil
}

// mknod makes a regular file, a named pipe or a socket file in the upper
// layer, as a tmpfs does (tmpfs.mknod): the FIFO's pipe and a bound
// socket are the sentry's, never the host's.
func (o *overlayFS) mknod(_ *Mount, full string, mode uint32, _ uint64, ow Owner) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, dir, err := o.createAsLocked(ow.Creds, full, false)
	if err != nil {
		return err
	}
	typ, err := mknodType(mode)
	if err != nil {
		return err
	}
	o.linkNewLocked(dir, w.name, t.newOwnedLocked(dir, typ|mode&0o7777, ow), w.ent.absent)
	return nil
}

// bindSocket makes the socket file full for s in the upper layer:
// EADDRINUSE if full exists in either layer.
func (o *overlayFS) bindSocket(_ *Mount, full string, mode uint32, ow Owner, s BoundSocket) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, dir, err := o.createAsLocked(ow.Creds, full, false)
	if err == unix.EEXIST {
		return unix.EADDRINUSE
	}
	if err != nil {
		return err
	}
	n := t.newOwnedLocked(dir, unix.S_IFSOCK|mode&0o7777, ow)
	n.sock = s
	o.linkNewLocked(dir, w.name, n, w.ent.absent)
	return nil
}

// lookupSocket returns the socket bound at full: EACCES if c may not
// write the file (its mode and owner as stat reports them), ECONNREFUSED
// for a file that holds none (a lower file, even a host socket, never
// does).
func (o *overlayFS) lookupSocket(c *Creds, _ *Mount, full string) (BoundSocket, error) {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(c, full, true, false, false)
	if err != nil {
		return nil, err
	}
	if !c.permits(w.ent.node(), mayWrite) {
		return nil, unix.EACCES
	}
	if n := w.ent.up; n != nil && n.fileType() == unix.S_IFSOCK && n.sock != nil {
		return n.sock, nil
	}
	return nil, unix.ECONNREFUSED
}

func (o *overlayFS) symlink(_ *Mount, target, full string, ow Owner) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, dir, err := o.createAsLocked(ow.Creds, full, false)
	if err != nil {
		return err
	}
	if w.trailing {
		return unix.ENOENT
	}
	n := t.newOwnedLocked(dir, unix.S_IFLNK|0o777, ow)
	n.target = target
	o.linkNewLocked(dir, w.name, n, w.ent.absent)
	return nil
}

// link checks the caller's permission as tmpfs.link does (the lower
// file's mode and owner as stat reports them).
func (o *overlayFS) link(c *Creds, _ *Mount, oldFull, newFull string, follow bool) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	ow, err := o.walkAsLocked(c, oldFull, follow, false, false)
	if err != nil {
		return err
	}
	nw, err := o.walkAsLocked(c, newFull, false, true, true)
	if err != nil {
		return err
	}
	if nw.ent.exists() {
		return unix.EEXIST
	}
	if err := c.mayLink(ow.ent.node()); err != nil {
		return err
	}
	if d, ok := nw.dir(); ok && !c.permits(d.ent.node(), mayWrite|mayExec) {
		return unix.EACCES
	}
	if ow.ent.isDir() {
		return unix.EPERM
	}
	if nw.trailing {
		return unix.ENOENT
	}
	n, err := o.copyUpEntLocked(&ow)
	if err != nil {
		return err
	}
	return o.linkNodeLocked(c, n, newFull)
}

// linkNodeLocked gives upper file n the new name full (link, linkat of an
// O_TMPFILE file) for a caller with credentials c: search permission on
// the way, Creds.mayLink, and write and search permission on the new
// name's directory, in the order of Linux's linkat.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) linkNodeLocked(c *Creds, n *tmpNode, full string) error {
	w, err := o.walkAsLocked(c, full, false, true, true)
	if err != nil {
		return err
	}
	if _, ok := w.dir(); !ok || w.ent.exists() {
		return unix.EEXIST
	}
	if err := c.mayLink(n); err != nil {
		return err
	}
	w, dir, err := o.createAsLocked(c, full, true)
	switch {
	case err != nil:
		return err
	case n.isDir():
		return unix.EPERM
	case n.nlink == 0 && n.noLink, w.trailing:
		return unix.ENOENT
	}
	o.linkNewLocked(dir, w.name, n, w.ent.absent)
	return nil
}

// emptyLocked reports whether directory e at guest path p is empty in the
// merged view.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) emptyLocked(p string, e ovlEnt) (bool, error) {
	if e.up != nil && len(e.up.children) > 0 {
		return false, nil
	}
	if !e.low {
		return true, nil
	}
	ents, err := o.lowerListingLocked(p)
	if err != nil {
		return false, err
	}
	for _, d := range ents {
		if d.Name != "." && d.Name != ".." && (e.up == nil || !e.up.whiteouts[d.Name]) {
			return false, nil
		}
	}
	return true, nil
}

// lowerListingLocked reads the lower directory at guest path p.
func (o *overlayFS) lowerListingLocked(p string) ([]Dirent, error) {
	pfd, err := o.lower.lookup(p, unix.O_NOFOLLOW|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	fd, err := reopen(pfd, true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readHostDir(fd)
}

// removeLocked removes name from the upper directory dir (whose entry
// there is up, or nil) and leaves a whiteout if the lower layer has the
// name.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) removeLocked(dir *tmpNode, name, p string, up *tmpNode) {
	t := o.upper
	if up != nil {
		t.unlinkLocked(dir, name, up)
	}
	if !dir.lower {
		return
	}
	if dir.lowerAbsent[name] {
		delete(dir.lowerAbsent, name)
		return
	}
	if _, err := o.lowerChildLocked(guestDir(p, name), name, nil); err != nil {
		return
	}
	if dir.whiteouts == nil {
		dir.whiteouts = map[string]bool{}
	}
	dir.whiteouts[name] = true
	if up == nil {
		now := nowTimespec()
		dir.mtime, dir.ctime = now, now
	}
}

// unlink needs write and search permission on the parent, and the
// sticky-directory rule (Creds.mayDelete).
func (o *overlayFS) unlink(c *Creds, _ *Mount, full string, isDir bool) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(c, full, false, true, false)
	if err != nil {
		return err
	}
	_, hasDir := w.dir()
	e := w.ent
	switch {
	case !hasDir:
		if isDir {
			return unix.EBUSY
		}
		return unix.EISDIR
	case isDir && w.name == ".":
		return unix.EINVAL
	case isDir && w.name == "..":
		return unix.ENOTEMPTY
	case !e.exists():
		return unix.ENOENT
	}
	d, _ := w.dir()
	if err := c.mayDelete(d.ent.node(), e.node()); err != nil {
		return err
	}
	switch {
	case !isDir && e.isDir():
		return unix.EISDIR
	case isDir && !e.isDir():
		return unix.ENOTDIR
	case !isDir && w.trailing:
		return unix.ENOTDIR
	case !isDir && (w.name == "." || w.name == ".."):
		return unix.EISDIR
	}
	if isDir {
		empty, err := o.emptyLocked(w.path, e)
		if err != nil {
			return err
		}
		if !empty {
			return unix.ENOTEMPTY
		}
	}
	dir, err := o.copyUpDirsLocked(w.stack)
	if err != nil {
		return err
	}
	o.removeLocked(dir, w.name, w.path, e.up)
	return nil
}

// ovlCanMove reports whether a directory may be renamed: only one without
// lower content (Linux's overlayfs without redirect_dir).
func ovlCanMove(e ovlEnt) bool { return !e.isDir() || e.up != nil && !e.low }

// rename checks the caller's permission as Creds.mayRename.
func (o *overlayFS) rename(c *Creds, _ *Mount, oldFull, newFull string, flags uint32) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	ow, err := o.walkAsLocked(c, oldFull, false, true, false)
	if err != nil {
		return err
	}
	nw, err := o.walkAsLocked(c, newFull, false, true, true)
	if err != nil {
		return err
	}
	if err := ovlRenameCheck(&ow, &nw, flags); err != nil {
		return err
	}
	if ow.path == nw.path || ow.ent.up != nil && ow.ent.up == nw.ent.up {
		return nil
	}
	if c != nil {
		owk, nwk := ovlWalked(&ow), ovlWalked(&nw)
		od, _ := ow.dir()
		nd, _ := nw.dir()
		if od.path == nd.path {
			nwk.dir = owk.dir
		}
		if err := c.mayRename(owk, nwk); err != nil {
			return err
		}
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	if !ovlCanMove(ow.ent) || exchange && !ovlCanMove(nw.ent) {
		return unix.EXDEV
	}
	if !exchange && nw.ent.isDir() {
		empty, err := o.emptyLocked(nw.path, nw.ent)
		if err != nil {
			return err
		}
		if !empty {
			return unix.ENOTEMPTY
		}
	}
	src, err := o.copyUpEntLocked(&ow)
	if err != nil {
		return err
	}
	// The new name's walk may have been made stale by the copy-up.
	if nw, err = o.walkLocked(newFull, false, true, true); err != nil {
		return err
	}
	if src.isDir() && isAncestor(src, nw.stack[len(nw.stack)-1].ent.up) {
		return unix.EINVAL
	}
	if exchange {
		dst, err := o.copyUpEntLocked(&nw)
		if err != nil {
			return err
		}
		odir := ow.stack[len(ow.stack)-1].ent.up
		ndir := nw.stack[len(nw.stack)-1].ent.up
		if dst.isDir() && isAncestor(dst, odir) {
			return unix.EINVAL
		}
		t.exchangeLocked(walked{dir: odir, name: ow.name, node: src}, walked{dir: ndir, name: nw.name, node: dst})
		return nil
	}
	ndir, err := o.copyUpDirsLocked(nw.stack)
	if err != nil {
		return err
	}
	odir := ow.stack[len(ow.stack)-1].ent.up
	if nw.ent.up != nil {
		t.unlinkLocked(ndir, nw.name, nw.ent.up)
	}
	delete(odir.children, ow.name)
	if src.isDir() {
		odir.nlink--
		src.nlink -= 2
	} else {
		src.nlink--
	}
	o.linkNewLocked(ndir, nw.name, src, nw.ent.absent)
	o.removeLocked(odir, ow.name, ow.path, nil)
	now := nowTimespec()
	odir.mtime, odir.ctime = now, now
	return nil
}

// ovlWalked is what Creds.mayRename reads of an overlay walk: the
// parent's and the file's modes and owners (nodes detached for lower
// files, so that the caller makes two walks' parents one node when their
// paths are the same).
//
// Preconditions: o.upper.mu is held.
func ovlWalked(w *ovlWalk) walked {
	d, _ := w.dir()
	out := walked{dir: d.ent.node(), name: w.name}
	if w.ent.exists() {
		out.node = w.ent.node()
	}
	return out
}

// ovlRenameCheck is renameCheck for the overlay's walks.
func ovlRenameCheck(ow, nw *ovlWalk, flags uint32) error {
	_, oldDir := ow.dir()
	_, newDir := nw.dir()
	switch {
	case !oldDir || !newDir:
		return unix.EBUSY
	case ow.name == "." || ow.name == ".." || nw.name == "." || nw.name == "..":
		return unix.EBUSY
	case !ow.ent.exists():
		return unix.ENOENT
	case flags&unix.RENAME_EXCHANGE != 0 && !nw.ent.exists():
		return unix.ENOENT
	case flags&unix.RENAME_NOREPLACE != 0 && nw.ent.exists():
		return unix.EEXIST
	case (ow.trailing || nw.trailing) && !ow.ent.isDir():
		return unix.ENOTDIR
	case flags&unix.RENAME_EXCHANGE != 0:
		return nil
	case nw.ent.exists() && ow.ent.isDir() && !nw.ent.isDir():
		return unix.ENOTDIR
	case nw.ent.exists() && !ow.ent.isDir() && nw.ent.isDir():
		return unix.EISDIR
	}
	if d := nw.stack[len(nw.stack)-1].ent.up; d != nil && d.nlink == 0 {
		return unix.ENOENT
	}
	return nil
}

func (o *overlayFS) setAttr(_ *Mount, full string, follow bool, a *SetAttr) error {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	w, err := o.walkAsLocked(a.Creds, full, follow, false, false)
	if err != nil {
		return err
	}
	if a.Mask == 0 {
		return nil
	}
	if a.Mask&SetAttrSize != 0 && w.ent.isDir() {
		return unix.EISDIR
	}
	if w.ent.up == nil {
		// Checked before the copy-up, which a refused change must not
		// make; setAttrLocked checks the copy again.
		n := w.ent.node()
		if err := a.Creds.maySetAttr(n, a); err != nil {
			return err
		}
		if a.Mask&SetAttrSize != 0 && n.fileType() == unix.S_IFREG && !a.Creds.permits(n, mayWrite) {
			return unix.EACCES
		}
	}
	n, err := o.copyUpEntLocked(&w)
	if err != nil {
		return err
	}
	return t.setAttrLocked(n, a)
}

// setAttrPath changes the attributes of the file at guest path full (not
// following a final symlink), copying it up: fchmod and the like on a
// description of a lower file.
func (o *overlayFS) setAttrPath(full string, a *SetAttr) error {
	return o.setAttr(nil, full, false, a)
}

func (o *overlayFS) open(fs *FS, m *Mount, full string, flags, mode uint32, ow Owner) (*File, error) {
	t := o.upper
	t.mu.Lock()
	defer t.unlockNotify()
	pathOnly := flags&unix.O_PATH != 0
	follow := flags&unix.O_NOFOLLOW == 0
	if !pathOnly && flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return o.openTmpfileLocked(m, full, flags, mode, ow)
	}
	if pathOnly || flags&unix.O_CREAT == 0 {
		w, err := o.walkInLocked(ow.Creds, full, follow, false, false, true)
		if err != nil {
			return nil, err
		}
		defer w.release()
		if !ow.Creds.permits(w.ent.node(), openAccess(flags)) {
			return nil, unix.EACCES
		}
		return o.openEntLocked(fs, m, &w, flags)
	}
	w, err := o.walkAsLocked(ow.Creds, full, false, true, false)
	if err != nil {
		return nil, err
	}
	excl := flags&unix.O_EXCL != 0
	d, hasDir := w.dir()
	switch {
	case !w.ent.exists() && w.trailing:
		return nil, unix.EISDIR
	case !w.ent.exists() && hasDir && !ow.Creds.permits(d.ent.node(), mayWrite|mayExec):
		return nil, unix.EACCES
	case !w.ent.exists():
		dir, err := o.copyUpDirsLocked(w.stack)
		if err != nil {
			return nil, err
		}
		if dir.nlink == 0 {
			return nil, unix.ENOENT
		}
		n := t.newOwnedLocked(dir, unix.S_IFREG|mode&0o7777, ow)

		o.linkNewLocked(dir, w.name, n, w.ent.absent)
		w.ent = ovlEnt{up: n}
	case excl:
		return nil, unix.EEXIST
	case w.ent.fileType() == unix.S_IFLNK && follow:
		return nil, o.followLocked(d, w.name, w.ent, nil, false, false)
	case !ow.Creds.permits(w.ent.node(), openAccess(flags)):
		return nil, unix.EACCES
	}
	if hasDir && (w.name == "." || w.name == "..") {
		w.path = path.Clean(w.path)
	}
	return o.openEntLocked(fs, m, &w, flags)
}

// openEntLocked opens the file w reached: an upper file as a tmpfs file
// (a merged directory lists both layers), a lower one read-only on the
// host unless the open writes, which copies it up first.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) openEntLocked(fs *FS, m *Mount, w *ovlWalk, flags uint32) (*File, error) {
	pathOnly := flags&unix.O_PATH != 0
	write := !pathOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0)
	if w.ent.up == nil && write && w.ent.fileType() == unix.S_IFREG {
		if _, err := o.copyUpEntLocked(w); err != nil {
			return nil, err
		}
	}
	if w.ent.up != nil {
		return o.upper.openLocked(m, w.ent.up, w.path, flags)
	}
	var f *File
	var err error
	if pfd, ok := w.takeFD(); ok {
		f, err = o.lower.openFound(w.path, pfd, w.ent.lst, flags|unix.O_NOFOLLOW)
	} else {
		f, err = o.lower.open(fs, m, w.path, flags|unix.O_NOFOLLOW, 0, Owner{})
	}
	if err != nil {
		return nil, err
	}
	if h, ok := f.impl.(*hostFile); ok {
		// The walk's path is canonical (it resolved every symlink
		// itself), so the file's guest path need not be read back
		// from the host descriptor (hostFile.pathLocked).
		h.ovl, h.ovlMount, h.path = o, m, w.path
		o.trackLowerLocked(h)
	}
	return f, nil
}

// openTmpfileLocked implements O_TMPFILE in directory full.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) openTmpfileLocked(m *Mount, full string, flags, mode uint32, ow Owner) (*File, error) {
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, unix.EINVAL
	}
	w, err := o.walkAsLocked(ow.Creds, full, true, false, false)
	if err != nil {
		return nil, err
	}
	if !w.ent.isDir() {
		return nil, unix.ENOTDIR
	}
	if !ow.Creds.permits(w.ent.node(), mayWrite|mayExec) {
		return nil, unix.EACCES
	}
	dir, err := o.copyUpEntLocked(&w)
	if err != nil {
		return nil, err
	}
	return o.upper.tmpfileInLocked(m, dir, w.path, flags, mode, ow), nil
}

// lowerEntries are the entries of the lower directory under merged
// directory d (guest path p) that the upper layer neither has nor hides.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerEntriesLocked(d *tmpNode, p string) []Dirent {
	ents, err := o.lowerListingLocked(p)
	if err != nil {
		return nil
	}
	var out []Dirent
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." || d.children[e.Name] != nil || d.whiteouts[e.Name] {
			continue
		}
		out = append(out, e)
	}
	return out
}
