package vfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// lowerDirSlots is how many lower directories the overlay keeps open.
const lowerDirSlots = 8

// lowerDirs keeps the lower directories the overlay looked names up in
// last open (O_PATH, checked by refuseHost when opened), most recent
// first, so that a name is looked up with one openat2 relative to its
// directory instead of a walk of the whole path from the root, and a
// missing name costs no walk up its ancestors (Root.failedLookup): the
// directory is known to be on no pseudo filesystem. The directory stays
// the one the path led to when it was opened, as Linux's overlayfs keeps
// the lower dentries it looked up: the lower layer is not meant to change
// under a mounted overlay. Still, a walk that has just looked the
// directory up in its parent passes what it found (lowerChildLocked's
// seen), and a kept directory that is no longer the one at its path (the
// host renamed another into its place) is closed and the path opened
// again: a name is looked up in the directory the walk went through.
//
// A merged directory's guest path never leads elsewhere while the overlay
// runs (a directory with lower content is never renamed: EXDEV), so the
// guest path is the key.
type lowerDirs struct {
	ents [lowerDirSlots]lowerDir
}

// lowerDir is one open lower directory; an empty path marks a free slot.
type lowerDir struct {
	path string
	fd   int
	// mnt is the directory's host mount id (0 if the host does not
	// report it), which fd pins: refuseHost accepted the directory, so
	// a name in it on the same mount is on no pseudo filesystem.
	mnt uint64
	// ino, devMajor and devMinor are the directory's inode and device.
	ino                uint64
	devMajor, devMinor uint32
}

// is reports whether d is the directory whose attributes are st.
func (d *lowerDir) is(st *Stat) bool {
	return d.ino == st.Ino && d.devMajor == st.DevMajor && d.devMinor == st.DevMinor
}

// lowerDirLocked returns a descriptor of the lower directory at guest path p
// (canonical), opening it if it is not open yet. ok is false when it
// cannot be opened: the caller then looks up by path, which reports why.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerDirLocked(p string) (int, bool) {
	d, ok := o.lowerDirEntLocked(p, nil)
	return d.fd, ok
}

// lowerDirEntLocked is lowerDirLocked that returns the kept directory's
// slot (a copy: valid until the next call evicts it). seen, if not nil
// and with an inode number, is what a lookup of p found just now: a kept
// directory that is another is replaced.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerDirEntLocked(p string, seen *Stat) (lowerDir, bool) {
	c := &o.lowerDirs
	for i := range c.ents {
		e := c.ents[i]
		if e.path == "" {
			break
		}
		if e.path != p {
			continue
		}
		if seen != nil && seen.Ino != 0 && !e.is(seen) {
			unix.Close(e.fd)
			copy(c.ents[i:], c.ents[i+1:])
			c.ents[lowerDirSlots-1] = lowerDir{}
			break
		}
		copy(c.ents[1:i+1], c.ents[:i])
		c.ents[0] = e
		return e, true
	}
	fd, st, err := o.lower.lookupStat(p, unix.O_NOFOLLOW|unix.O_DIRECTORY)
	if err != nil {
		return lowerDir{fd: -1}, false
	}
	if st.FileType() != unix.S_IFDIR {
		unix.Close(fd)
		return lowerDir{fd: -1}, false
	}
	if last := c.ents[lowerDirSlots-1]; last.path != "" {
		unix.Close(last.fd)
	}
	copy(c.ents[1:], c.ents[:lowerDirSlots-1])
	c.ents[0] = lowerDir{path: p, fd: fd, mnt: mountOf(&st), ino: st.Ino, devMajor: st.DevMajor, devMinor: st.DevMinor}
	return c.ents[0], true
}

// closeLowerDirsLocked closes every kept directory.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) closeLowerDirsLocked() {
	for i, e := range o.lowerDirs.ents {
		if e.path != "" {
			unix.Close(e.fd)
		}
		o.lowerDirs.ents[i] = lowerDir{}
	}
}

// lowerChildLocked looks name up (not following a symlink) in the lower
// directory at guest path dir, as o.lower.lookupStat of the joined path
// does: the attributes of what it names, ENOENT or ENOTDIR if nothing,
// EACCES for a file on a host pseudo filesystem.
//
// One statx relative to the kept directory answers when the name is on
// the directory's own mount: a single name can neither climb out of the
// directory nor pass a symlink or magic link on the way, so the openat2
// with RESOLVE_BENEATH it stands for would name the same file, and the
// mount is one refuseHost accepted. A mount point (another mount) is
// looked up and checked as the whole path would be.
//
// seen is what the walk found at dir, if it looked it up (see
// lowerDirEntLocked), else nil.
//
// Preconditions: o.upper.mu is held; name is one component, neither "."
// nor "..".
func (o *overlayFS) lowerChildLocked(dir, name string, seen *Stat) (Stat, error) {
	d, ok := o.lowerDirEntLocked(dir, seen)
	if ok && d.mnt != 0 && oneName(name) {
		st, err := statAt(d.fd, name)
		if err != nil {
			return Stat{}, err
		}
		if mountOf(&st) == d.mnt {
			return st, nil
		}
	}
	var fd int
	var st Stat
	var err error
	if ok {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		fd, st, err = openStatChecked(d.fd, name, &how)
	} else {
		fd, st, err = o.lower.lookupStat(joinGuest(dir, name), unix.O_NOFOLLOW)
	}
	if err != nil {
		return Stat{}, err
	}
	unix.Close(fd)
	return st, nil
}

// oneName reports whether name is one name of a directory: not "." or
// "..", no slash. lowerChildLocked's callers pass no other; were one to,
// it would be looked up as before (RESOLVE_BENEATH refuses "..") rather
// than statx'ed.
func oneName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.Contains(name, "/")
}

// lowerTargetLocked reads the lower symlink at guest path p (canonical)
// relative to its kept directory; ok is false when the directory cannot
// be kept, and the caller then looks p up from the root.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerTargetLocked(p string) (string, bool, error) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 || !oneName(p[i+1:]) {
		return "", false, nil
	}
	dir := "/"
	if i > 0 {
		dir = p[:i]
	}
	dfd, ok := o.lowerDirLocked(dir)
	if !ok {
		return "", false, nil
	}
	target, err := readlinkAt(dfd, p[i+1:])
	return target, true, err
}
