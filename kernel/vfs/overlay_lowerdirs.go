package vfs

import "golang.org/x/sys/unix"

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
// under a mounted overlay.
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
}

// lowerDirLocked returns a descriptor of the lower directory at guest path p
// (canonical), opening it if it is not open yet. ok is false when it
// cannot be opened: the caller then looks up by path, which reports why.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) lowerDirLocked(p string) (int, bool) {
	c := &o.lowerDirs
	for i := range c.ents {
		e := c.ents[i]
		if e.path == "" {
			break
		}
		if e.path == p {
			copy(c.ents[1:i+1], c.ents[:i])
			c.ents[0] = e
			return e.fd, true
		}
	}
	fd, st, err := o.lower.lookupStat(p, unix.O_NOFOLLOW|unix.O_DIRECTORY)
	if err != nil {
		return -1, false
	}
	if st.FileType() != unix.S_IFDIR {
		unix.Close(fd)
		return -1, false
	}
	if last := c.ents[lowerDirSlots-1]; last.path != "" {
		unix.Close(last.fd)
	}
	copy(c.ents[1:], c.ents[:lowerDirSlots-1])
	c.ents[0] = lowerDir{path: p, fd: fd}
	return fd, true
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
// does: the descriptor and attributes of what it names, ENOENT or ENOTDIR
// if nothing, EACCES for a file on a host pseudo filesystem.
//
// Preconditions: o.upper.mu is held; name is one component, neither "."
// nor "..".
func (o *overlayFS) lowerChildLocked(dir, name string) (int, Stat, error) {
	dfd, ok := o.lowerDirLocked(dir)
	if !ok {
		return o.lower.lookupStat(joinGuest(dir, name), unix.O_NOFOLLOW)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	return openStatChecked(dfd, name, &how)
}
