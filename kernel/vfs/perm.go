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
}

// Capabilities the permission checks honour (linux/capability.h).
const (
	capDACOverride   = 1
	capDACReadSearch = 2
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
