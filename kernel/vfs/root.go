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

// resolveFlags confine every lookup to the root: ".." stops at the root,
// absolute symlinks restart at the root, and /proc magic links (which could
// point anywhere) are refused.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// Root is the host directory the sandbox sees as "/". It is shared by every
// FS of a sandbox and holds one host O_PATH descriptor.
//
// +stateify savable
type Root struct {
	// hostDir is the host directory as given to OpenRoot; immutable.
	hostDir string

	// mu protects the fields below. Not saved: no lookup runs at save time.
	mu sync.Mutex `state:"nosave"`
	// opened reports whether fd and prefix are valid. After restore it is
	// false until afterLoad (of the Root or of the first file that needs
	// it, whichever stateify runs first) reopens the directory.
	opened bool `state:"nosave"`
	// closed is set by Close; lookups then fail.
	closed bool `state:"nosave"`
	// fd is the O_PATH descriptor of the root. Host descriptors are not
	// saved.
	fd int `state:"nosave"`
	// prefix is the canonical host path of the root, used to turn host
	// paths of opened files into guest paths. Host-specific: recomputed.
	prefix string `state:"nosave"`
	// openErr is why reopening after restore failed, reported once.
	openErr error `state:"nosave"`
	// mntID is the host mount id of the root directory (statx's
	// stx_mnt_id), 0 if the host does not report it. fd pins that mount,
	// so while fd is open no other mount has this id, and a file that
	// statx says is on it is on the filesystem refuseHost accepted for
	// the root: lookups skip their fstatfs for it (statCheckedIn). Not
	// saved: host mount ids, found again when the root is reopened.
	mntID uint64 `state:"nosave"`

	// mounts is the sandbox's mount table, "/" being this root. Images
	// from before mount tables load with nil; mountTable then builds the
	// default one. Protected by mu.
	mounts *MountTable
}

// mountTable returns the sandbox's mount table.
func (r *Root) mountTable() *MountTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mounts == nil {
		r.mounts = newMountTable(r)
	}
	if r.mounts.notifier == nil {
		// An image from before inotify.
		r.mounts.setNotifier(newNotifier(r))
	}
	return r.mounts
}

// Mounts returns the sandbox's mount table.
func (r *Root) Mounts() *MountTable { return r.mountTable() }

// OpenRoot opens dir as the sandbox root. The caller must Close it when the
// sandbox ends.
func OpenRoot(dir string) (*Root, error) {
	r := &Root{hostDir: dir}
	if err := r.openLocked(dir); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Root) openLocked(dir string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root directory %q: %w", dir, err)
	}
	prefix, err := fdHostPath(fd)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("resolve root directory %q: %w", dir, err)
	}
	if err := refuseHost(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("open root directory %q: %w", dir, ErrPseudoRoot)
	}
	st, err := hostStat(fd)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("stat root directory %q: %w", dir, err)
	}
	r.fd, r.prefix, r.opened, r.hostDir, r.mntID = fd, prefix, true, dir, mountOf(&st)
	return nil
}

// mountOf returns the host mount id statx reported in st, 0 if it did
// not report one.
func mountOf(st *Stat) uint64 {
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0
	}
	return st.MntID
}

// HostDir returns the host directory the root was opened from.
func (r *Root) HostDir() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hostDir
}

// Close releases the root's host descriptor and those of the bind mounts.
func (r *Root) Close() error {
	r.mu.Lock()
	mounts := r.mounts
	r.mu.Unlock()
	if mounts != nil {
		mounts.Release()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if !r.opened {
		return nil
	}
	r.opened = false
	return unix.Close(r.fd)
}

// afterLoad reopens the root directory: the one WithRestoreRoot gives, else
// the saved one. Invoked by stateify.
func (r *Root) afterLoad(ctx context.Context) {
	if err := r.restore(ctx); err != nil {
		reportRestoreError(ctx, err)
	}
}

// restore reopens the root after a restore unless that is done already; it
// returns the failure only to its first caller.
func (r *Root) restore(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opened || r.closed || r.openErr != nil {
		return nil
	}
	dir := r.hostDir
	if d, ok := ctx.Value(restoreRootKey{}).(string); ok && d != "" {
		dir = d
	}
	if err := r.openLocked(dir); err != nil {
		r.openErr = err
		return err
	}
	return nil
}

// emptyDir reports whether guest path p is missing on the host or an empty
// directory there.
func (r *Root) emptyDir(p string) bool {
	pfd, err := r.lookup(p, unix.O_DIRECTORY)
	if err == unix.ENOENT {
		return true
	}
	if err != nil {
		return false
	}
	defer unix.Close(pfd)
	fd, err := reopen(pfd, true)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	empty, err := hostDirEmpty(fd)
	return err == nil && empty
}

// hostDirEmpty reports whether the host directory open at fd has no entry
// besides "." and "..". It reads only until it finds one: a run checks
// the host's /tmp, which may hold thousands.
func hostDirEmpty(fd int) (bool, error) {
	var buf [1024]byte
	for {
		n, err := unix.Getdents(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
		ents, err := ParseDirents64(buf[:n])
		if err != nil {
			return false, unix.EIO
		}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				return false, nil
			}
		}
	}
}

// descriptor returns the root descriptor and its host path.
func (r *Root) descriptor() (int, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.opened {
		return -1, "", unix.EBADF
	}
	return r.fd, r.prefix, nil
}

// lookup opens guest path p (absolute, or relative to the root) O_PATH
// inside the root. extra may hold O_NOFOLLOW and O_DIRECTORY. It returns
// the host descriptor.
func (r *Root) lookup(p string, extra int) (int, error) {
	fd, _, err := r.lookupStat(p, extra)
	return fd, err
}

// lookupStat is lookup that also returns the file's attributes. A file on
// a host pseudo filesystem is refused with EACCES (refuseHost).
func (r *Root) lookupStat(p string, extra int) (int, Stat, error) {
	return r.lookupStatResolve(p, extra, 0)
}

// lookupStatResolve is lookupStat with more RESOLVE_* flags (the overlay's
// RESOLVE_NO_SYMLINKS, with which a symlink on the way is ELOOP).
func (r *Root) lookupStatResolve(p string, extra int, resolve uint64) (int, Stat, error) {
	fd, mnt, err := r.openat2Mount(p, extra, resolve)
	if err != nil {
		if err == unix.ELOOP && resolve != 0 {
			return -1, Stat{}, err
		}
		return -1, Stat{}, r.failedLookup(p, err)
	}
	return statCheckedIn(fd, mnt)
}

// failedLookup returns the error for a lookup of p that failed with err:
// EACCES if the lookup stopped inside a host pseudo filesystem, else err.
// Otherwise which names exist there would show: ENOENT for
// /mnt/proc/12345 but EACCES for /mnt/proc/1 tells which host processes
// exist. The deepest ancestor of p that resolves decides; walking up costs
// a failed lookup one more lookup in the common case (the parent exists).
func (r *Root) failedLookup(p string, err error) error {
	if err == unix.EIO {
		return err // the root is gone
	}
	for q := path.Dir(p); ; q = path.Dir(q) {
		fd, qerr := r.openat2(q, 0)
		if qerr == nil {
			refused := refuseHost(fd)
			unix.Close(fd)
			if refused != nil {
				return refused
			}
			return err
		}
		if q == "/" || q == "." {
			return err
		}
	}
}

func (r *Root) openat2(p string, extra int) (int, error) { return r.openat2Resolve(p, extra, 0) }

func (r *Root) openat2Resolve(p string, extra int, resolve uint64) (int, error) {
	fd, _, err := r.openat2Mount(p, extra, resolve)
	return fd, err
}

// openat2Mount is openat2Resolve that also returns the root's mount id
// (Root.mntID), read with the descriptor it looked up from.
func (r *Root) openat2Mount(p string, extra int, resolve uint64) (int, uint64, error) {
	r.mu.Lock()
	rootFD, mnt, opened := r.fd, r.mntID, r.opened
	r.mu.Unlock()
	if !opened {
		return -1, 0, unix.EIO
	}
	how := unix.OpenHow{
		Flags:   uint64(unix.O_PATH | unix.O_CLOEXEC | extra&(unix.O_NOFOLLOW|unix.O_DIRECTORY)),
		Resolve: resolveFlags | resolve,
	}
	fd, err := openat2Retry(rootFD, p, &how)
	return fd, mnt, err
}

// openat2Retry is openat2(2), tried again on EAGAIN (a concurrent rename
// on the host: the kernel asks to retry) and EINTR, up to 16 times.
func openat2Retry(dfd int, p string, how *unix.OpenHow) (int, error) {
	var fd int
	var err error
	for range 16 {
		fd, err = unix.Openat2(dfd, p, how)
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// openStatChecked opens p relative to dfd with openat2Retry and returns
// the descriptor with its attributes, refusing (EACCES) a file on a host
// pseudo filesystem (refuseHost); nothing is left open on an error.
func openStatChecked(dfd int, p string, how *unix.OpenHow) (int, Stat, error) {
	fd, err := openat2Retry(dfd, p, how)
	if err != nil {
		return -1, Stat{}, err
	}
	return statChecked(fd)
}

// statChecked returns fd with its attributes, or closes it and fails with
// EACCES if it is a file on a host pseudo filesystem (refuseHost).
func statChecked(fd int) (int, Stat, error) { return statCheckedIn(fd, 0) }

// statCheckedIn is statChecked that knows host mount checked (a mount id,
// 0 for none) to be on no pseudo filesystem, and the mount to stay that
// one while the call runs (a descriptor the caller holds pins it, so its
// id is not reused): a file on it needs no fstatfs.
func statCheckedIn(fd int, checked uint64) (int, Stat, error) {
	st, err := hostStat(fd)
	if err == nil && (checked == 0 || mountOf(&st) != checked) {
		err = refuseHost(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, Stat{}, err
	}
	return fd, st, nil
}

// guestPath returns the canonical guest path of a descriptor opened by
// lookup of p (p is the fallback if the host path is not under the root).
func (r *Root) guestPath(fd int, p string) string {
	_, prefix, err := r.descriptor()
	if err != nil {
		return cleanPath(p)
	}
	hp, err := fdHostPath(fd)
	if err != nil {
		return cleanPath(p)
	}
	return guestPathFromHost(prefix, hp, p)
}

// fdHostPath returns the host path of an open descriptor.
func fdHostPath(fd int) (string, error) {
	dirFD, name := selfFDs(), strconv.Itoa(fd)
	if dirFD < 0 {
		dirFD, name = unix.AT_FDCWD, "/proc/self/fd/"+name
	}
	return readlinkAt(dirFD, name)
}

// guestPathFromHost strips the root prefix from a host path. If the host
// path is not under the prefix (the root was moved on the host), it falls
// back to the lexically cleaned lookup path.
func guestPathFromHost(prefix, host, lookedUp string) string {
	if prefix == "/" {
		return host
	}
	if host == prefix {
		return "/"
	}
	if strings.HasPrefix(host, prefix) && host[len(prefix)] == '/' {
		return host[len(prefix):]
	}
	return cleanPath(lookedUp)
}

// reopen opens the file behind an O_PATH descriptor for reading. The
// caller has checked that it is a regular file or a directory (openable),
// and the reopen cannot land elsewhere: it goes through the descriptor's
// own link, not a path. O_NONBLOCK still guards the open itself (were it
// a FIFO, it would not wait for a writer); it is cleared afterwards, so
// that reads behave as on a blocking descriptor.
func reopen(pathFD int, dir bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK
	if dir {
		flags |= unix.O_DIRECTORY
	}
	dirFD, name := selfFDs(), strconv.Itoa(pathFD)
	if dirFD < 0 {
		dirFD, name = unix.AT_FDCWD, "/proc/self/fd/"+name
	}
	for {
		fd, err := unix.Openat(dirFD, name, flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_RDONLY); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
}

// selfFDsOnce opens the sentry's /proc/self/fd directory once per process
// (a restored sentry is another process, which opens its own).
var selfFDsOnce = sync.OnceValue(func() int {
	fd, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
})

// selfFDs returns a descriptor of the sentry's /proc/self/fd directory,
// or -1 if it cannot be opened: reopen then names the link by its whole
// path. Opening "N" relative to it is the same magic link as
// "/proc/self/fd/N" (the directory is the process's, and every thread
// shares one descriptor table) without walking /proc and its "self"
// link on every reopen.
func selfFDs() int { return selfFDsOnce() }
