package vfs

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// identity is what makes a host file "the same file" across save and
// restore.
//
// +stateify savable
type identity struct {
	DevMajor, DevMinor uint32
	Ino                uint64
	Size               uint64
	Mtime              Timespec
}

func identityOf(s *Stat) identity {
	return identity{DevMajor: s.DevMajor, DevMinor: s.DevMinor, Ino: s.Ino, Size: s.Size, Mtime: s.Mtime}
}

// hostFile is a host regular file, directory or (O_PATH only) symlink, open
// read-only.
//
// +stateify savable
type hostFile struct {
	noImpl

	// root is the root the file was resolved under; immutable.
	root *Root
	// ovl is the overlay whose lower layer the file is in, or nil (a
	// read-only root), and ovlMount the mount it was opened through;
	// immutable.
	ovl      *overlayFS
	ovlMount *Mount
	// bind is the bind mount the file is in, or nil (root is then set);
	// bindRel is its path relative to the mount's host directory and
	// hostFlags the access mode and O_APPEND it is open with (bind.go).
	// Immutable.
	bind      *bindFS
	bindRel   string
	hostFlags int
	// path is the canonical guest path, computed on first use from the
	// host descriptor (most files never need it); protected by mu.
	path string
	// lookedUp is the path given to open, the fallback for path.
	// Host-side detail: after restore, path is always set.
	lookedUp string `state:"nosave"`
	// lookupFlags are the O_NOFOLLOW/O_DIRECTORY flags of the lookup;
	// immutable.
	lookupFlags int
	// pathOnly is set for O_PATH files; immutable.
	pathOnly bool
	// mode is the file type and permissions at open; immutable.
	mode uint32
	// ident identifies the host file at open time; immutable.
	ident identity

	// mu protects path, off, dirents and dirPos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// off is the file offset of a regular file.
	off int64
	// dirents is the directory listing read at the first getdents64. Not
	// saved: re-read after restore (identity guarantees the same listing).
	dirents []Dirent `state:"nosave"`
	// direntsValid reports whether dirents has been read.
	direntsValid bool `state:"nosave"`
	// dirPos is the index of the next directory entry to return.
	dirPos int

	// fd is the host descriptor: O_PATH for pathOnly files, O_RDONLY
	// otherwise. Host descriptors are not saved; afterLoad reopens it.
	fd int `state:"nosave"`
	// broken is the restore failure that makes every operation fail with
	// EIO, or nil. Set by afterLoad only.
	broken error `state:"nosave"`

	// upMu protects up. It is taken under tmpfs.mu (copy-up) and holds no
	// other lock. Not saved: idle at save time.
	upMu sync.Mutex `state:"nosave"`
	// up is a read-only description of the file's copy in ovl's upper
	// layer once a change copied it up, which read, lseek and fstat then
	// follow (overlay_copyup.go); nil before.
	up *File
}

func (h *hostFile) isDir() bool { return h.mode&unix.S_IFMT == unix.S_IFDIR }

func (h *hostFile) guestPath() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pathLocked()
}

func (h *hostFile) release() {
	h.releaseLower()
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

func (h *hostFile) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if h.broken != nil {
		return 0, unix.EIO
	}
	if h.isDir() {
		return 0, unix.EISDIR
	}
	if up := h.upper(); up != nil {
		return h.readUpper(up, cancel, dst, off)
	}
	if off >= 0 {
		return preadFull(h.fd, dst, off)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := preadFull(h.fd, dst, h.off)
	h.off += int64(n)
	return n, err
}

// preadFull reads until dst is full, end of file, or an error after some
// bytes (then it returns the bytes).
func preadFull(fd int, dst []byte, off int64) (int, error) {
	total := 0
	for total < len(dst) {
		n, err := unix.Pread(fd, dst[total:], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

func (h *hostFile) write(f *File, _ <-chan struct{}, src []byte, off int64) (int, error) {
	if h.bind != nil {
		return h.writeBind(f, src, off)
	}
	// Never reached through File (host files outside bind mounts are
	// never writable): a read-only filesystem.
	return 0, unix.EROFS
}

func (h *hostFile) seek(_ *File, off int64, whence int) (int64, error) {
	if h.broken != nil {
		return 0, unix.EIO
	}
	if up := h.upper(); up != nil {
		return h.seekUpper(up, off, whence)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isDir() {
		return seekDir(&h.dirPos, off, whence)
	}
	n, err := seekHostFD(h.fd, h.off, off, whence)
	if err != nil {
		return 0, err
	}
	h.off = n
	return n, nil
}

// seekHostFD computes lseek's new offset for a file kept on host descriptor
// fd whose own offset is cur (the host descriptor's offset is unused:
// reads and writes are positional). SEEK_DATA and SEEK_HOLE ask the host.
func seekHostFD(fd int, cur, off int64, whence int) (int64, error) {
	var n int64
	switch whence {
	case unix.SEEK_SET:
		n = off
	case unix.SEEK_CUR:
		n = cur + off
	case unix.SEEK_END:
		st, err := hostStat(fd)
		if err != nil {
			return 0, err
		}
		n = int64(st.Size) + off
	case unix.SEEK_DATA, unix.SEEK_HOLE:
		r, err := unix.Seek(fd, off, whence)
		if err != nil {
			return 0, err
		}
		n = r
	default:
		return 0, unix.EINVAL
	}
	if n < 0 {
		return 0, unix.EINVAL
	}
	return n, nil
}

func (h *hostFile) stat(*File) (Stat, error) {
	if h.broken != nil {
		return Stat{}, unix.EIO
	}
	if up := h.upper(); up != nil {
		return up.impl.stat(up)
	}
	return hostStat(h.fd)
}

func (h *hostFile) getdents64(_ *File, dst []byte) (int, error) {
	if h.broken != nil {
		return 0, unix.EIO
	}
	if !h.isDir() {
		return 0, unix.ENOTDIR
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.direntsValid {
		ents, err := readHostDir(h.fd)
		if err != nil {
			return 0, err
		}
		if h.pathLocked() == "/" {
			// At the root, ".." is the root itself, not the host parent.
			fixRootDotDot(ents)
		}
		h.dirents, h.direntsValid = ents, true
	}
	return fillDirents(dst, h.dirents, &h.dirPos)
}

// readHostDir reads a whole host directory listing.
func readHostDir(fd int) ([]Dirent, error) {
	if _, err := unix.Seek(fd, 0, unix.SEEK_SET); err != nil {
		return nil, err
	}
	buf := make([]byte, 32<<10)
	var ents []Dirent
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return ents, nil
		}
		more, err := ParseDirents64(buf[:n])
		if err != nil {
			return nil, unix.EIO
		}
		ents = append(ents, more...)
	}
}

// pathLocked is guestPath with h.mu held.
func (h *hostFile) pathLocked() string {
	if h.path == "" {
		h.path = h.root.guestPath(h.fd, h.lookedUp)
	}
	return h.path
}

func fixRootDotDot(ents []Dirent) {
	var self uint64
	for _, e := range ents {
		if e.Name == "." {
			self = e.Ino
		}
	}
	for i := range ents {
		if ents[i].Name == ".." && self != 0 {
			ents[i].Ino = self
		}
	}
}

func (h *hostFile) readiness(_ *File, mask uint32) uint32 {
	return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm)
}

// HostFileID identifies one version of a host regular file: the device and
// inode it lives on, and its size and modification time.
type HostFileID struct {
	DevMajor, DevMinor uint32
	Ino                uint64
	Size               uint64
	Mtime              Timespec
}

// HostFileID returns the identity a host regular file had when it was
// opened, and false for every other kind of file and for a host file that a
// restore could not reopen. Two files with the same identity have the same
// contents: the sandbox never writes host files outside bind mounts (whose
// files have no HostFileID), and a restore checks the identity of every
// host file it reopens.
func (f *File) HostFileID() (HostFileID, bool) {
	h, ok := f.impl.(*hostFile)
	if !ok || h.broken != nil || h.pathOnly || h.mode&unix.S_IFMT != unix.S_IFREG || h.bind != nil {
		return HostFileID{}, false
	}
	return HostFileID(h.ident), true
}

// PageSource returns a new read-only File over a duplicate of the host
// descriptor of f, a file with a HostFileID, for the kernel to read the
// file's pages from later (a mapping that grows): it shares no offset,
// locks or notifications with f, and is never saved. The caller owns the
// reference. EINVAL for any other file.
func (f *File) PageSource() (*File, error) {
	if _, ok := f.HostFileID(); !ok {
		return nil, unix.EINVAL
	}
	h := f.impl.(*hostFile)
	fd, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate host file %q: %w", h.guestPath(), err)
	}
	d := &hostFile{root: h.root, ovl: h.ovl, path: h.guestPath(), lookupFlags: h.lookupFlags, mode: h.mode, ident: h.ident, fd: fd}
	return newFile(unix.O_RDONLY, d), nil
}
