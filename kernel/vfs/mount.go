package vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Filesystem is one mounted filesystem: the overlay root (overlayFS) or
// the read-only host root (Root), the sentry's /dev and /sys (sentryFS),
// its /proc (procFS), a memory filesystem (tmpfs) or a volume (bindFS). The mount table routes each guest path to one
// Filesystem; the FS methods then call exactly one method of it.
//
// Paths. A method receives the path the mount table routed to it (route):
// a lexical filesystem (the host root, the sentry's /dev and /sys) and the
// overlay root get the whole absolute guest path; a walked one (tmpfs,
// volume, /proc) gets the rest of the path below its mount point.
//
// Leaving. A walked filesystem that must leave itself in the middle of a
// walk (".." at its root, a symlink whose target is absolute or climbs out)
// returns a *crossing error holding the new absolute guest path; the FS
// method routes that path again (at most maxSymlinks times, then ELOOP).
//
// Callers. The methods that take Creds check the caller's permission with
// them as Linux's generic_permission does, on the file and on every
// directory the lookup passes (EACCES), where the filesystem keeps modes
// and owners of its own (tmpfs, the overlay root); a nil Creds checks
// nothing (the kernel's own lookups). The host's filesystems (the
// read-only root, volumes) leave the decision to the host, for the
// sentry's host identity, and the sentry's directories are read-only for
// everyone.
//
// Errors are unix.Errno values with Linux's meaning and Linux's order of
// checks: a read-only filesystem answers mutating operations with EROFS
// only after the lookups Linux makes first (ENOENT, ENOTDIR, EEXIST, ...).
// Operations on two paths (link, rename) reach a Filesystem only when both
// paths route to the same mount; otherwise FS answers EXDEV.
//
// The methods are unexported: every implementation lives in this package
// for now.
type Filesystem interface {
	// fsType is the type /proc/self/mounts shows ("tmpfs").
	fsType() string
	// open opens p with open(2) flags; mode applies to a created file
	// (umask already applied), which o owns.
	open(fs *FS, m *Mount, p string, flags, mode uint32, o Owner) (*File, error)
	// stat returns p's attributes; follow resolves a final symlink.
	stat(c *Creds, m *Mount, p string, follow bool) (Stat, error)
	// readlink returns a symlink's target; EINVAL for another file.
	readlink(c *Creds, m *Mount, p string) (string, error)
	// access is faccessat2(2) (mode already checked); c are the real or
	// the effective credentials, as the kernel chose.
	access(c *Creds, m *Mount, p string, mode uint32, flags int) error
	// chdir returns the canonical guest path of directory p.
	chdir(c *Creds, m *Mount, p string) (string, error)
	// statfs is statfs(2) on p.
	statfs(c *Creds, m *Mount, p string) ([StatfsSize]byte, error)
	// mkdir, mknod and symlink create a file that o owns.
	mkdir(m *Mount, p string, mode uint32, o Owner) error
	mknod(m *Mount, p string, mode uint32, dev uint64, o Owner) error
	symlink(m *Mount, target, p string, o Owner) error
	// link makes newp a hard link to oldp; follow resolves a final
	// symlink of oldp (AT_SYMLINK_FOLLOW).
	link(c *Creds, m *Mount, oldp, newp string, follow bool) error
	// unlink removes p: a directory with dir (rmdir), another file
	// without.
	unlink(c *Creds, m *Mount, p string, dir bool) error
	// rename is renameat2(2) with flags RENAME_NOREPLACE or
	// RENAME_EXCHANGE (already checked).
	rename(c *Creds, m *Mount, oldp, newp string, flags uint32) error
	// setAttr changes the attributes a says of p.
	setAttr(m *Mount, p string, follow bool, a *SetAttr) error
	// bindSocket makes the socket file p, which o owns, for s (bind(2)
	// of a Unix socket to a path): a filesystem that keeps no sockets
	// answers as mknod of one. EADDRINUSE if p exists.
	bindSocket(m *Mount, p string, mode uint32, o Owner, s BoundSocket) error
	// lookupSocket returns the socket bound at p (connect(2)) to a
	// caller with credentials c: EACCES without search permission on
	// the way or write permission on the socket file, ECONNREFUSED if no
	// socket of the sandbox is bound there.
	lookupSocket(c *Creds, m *Mount, p string) (BoundSocket, error)
}

// Owner is who owns the files a caller creates: its filesystem user and
// group IDs (fsuid, fsgid). The zero Owner is root. A directory with the
// set-group-ID bit gives its group (and, to directories, the bit) instead,
// as on Linux.
type Owner struct {
	UID, GID uint32
	// Creds, if not nil, are the caller's for tmpfs permission checks
	// (perm.go); nil checks nothing, as for the kernel's own opens.
	Creds *Creds
}

// maxSymlinks is Linux's MAXSYMLINKS: the most symlinks one lookup
// follows.
const maxSymlinks = 40

// crossing is returned by a walked filesystem whose walk leaves it: the
// lookup continues at guest path full (of the second path of link or
// rename if second).
type crossing struct {
	full   string
	second bool
	// abs marks the absolute target of a symlink, which a chrooted
	// context resolves from its root directory.
	abs bool
}

func (c *crossing) Error() string { return "lookup continues at " + c.full }

// Mount is one filesystem mounted at a guest path.
//
// +stateify savable
type Mount struct {
	// point is the clean absolute guest path of the mount point; immutable.
	point string
	// fs is the mounted filesystem; immutable.
	fs Filesystem
	// source and options are what /proc/self/mounts shows; immutable
	// once the sandbox runs (MountTmpfs may set a default mount's size
	// before).
	source  string
	options string
	// id is the mount ID mountinfo shows; immutable.
	id uint32
}

// afterLoad gives an image from before procFS its /proc. Invoked by
// stateify.
func (m *Mount) afterLoad(context.Context) {
	if s, ok := m.fs.(*sentryFS); ok && s.name == "proc" {
		m.fs = &procFS{}
	}
}

// Point returns the mount point.
func (m *Mount) Point() string { return m.point }

// walked reports whether the mount's filesystem walks paths itself (gets
// the rest of the path below the mount point).
func (m *Mount) walked() bool {
	switch m.fs.(type) {
	case *tmpfs, *overlayFS, *bindFS, *devpts, *mqueueFS, *procFS:
		return true
	}
	return false
}

// MountTable maps mount points to filesystems. "/" is the host root or
// the overlay over it; /dev, /proc and /sys are the sentry's; tmpfs instances are
// mounted at /dev/shm and /run by default and wherever the sandbox's
// configuration asks (MountTmpfs). The table is built before the sandbox
// starts and does not change while it runs.
//
// +stateify savable
type MountTable struct {
	// mu protects mounts and nextID.
	mu sync.Mutex `state:"nosave"`
	// mounts are sorted by mount point.
	mounts []*Mount
	nextID uint32
	// pages is where tmpfs mounts keep file data (SetPages).
	pages Pages
	// notifier routes the sandbox's file events to inotify watches; nil
	// in images from before inotify until Root.mountTable sets one.
	// Immutable once set.
	notifier *Notifier
}

// setNotifier makes n the notifier of the table and of its tmpfs mounts.
func (mt *MountTable) setNotifier(n *Notifier) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mt.notifier = n
	for _, m := range mt.mounts {
		if t := m.tmpfs(); t != nil {
			t.mu.Lock()
			t.notifier = n
			t.mu.Unlock()
		}
	}
}

// tmpfs returns the tmpfs that holds the files of m: a tmpfs mount's, or
// an overlay's upper layer; nil for other filesystems.
func (m *Mount) tmpfs() *tmpfs {
	switch fs := m.fs.(type) {
	case *tmpfs:
		return fs
	case *overlayFS:
		return fs.upper
	}
	return nil
}

// SetPages makes p (the kernel's memory file) hold the file data of every
// tmpfs mount that holds none yet, and of those mounted later. The kernel
// calls it before the sandbox runs, and after a restore for images from
// before mount tables.
func (mt *MountTable) SetPages(p Pages) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mt.pages = p
	for _, m := range mt.mounts {
		if t := m.tmpfs(); t != nil {
			t.mu.Lock()
			if t.pages == nil {
				t.pages = p
			}
			t.mu.Unlock()
		}
	}
}

// ErrBadMountPoint is returned (wrapped) by MountTmpfs for a mount point
// that is not an absolute path, is already a mount point, or lies in a
// directory the sentry generates or in another tmpfs.
var ErrBadMountPoint = errors.New("bad mount point")

// DefaultTmpfsSize is the size limit of a tmpfs mounted without one.
const DefaultTmpfsSize = 256 << 20

// defaultTmpfsMounts are the tmpfs mount points of every sandbox.
var defaultTmpfsMounts = []string{"/dev/shm", "/run"}

func newMountTable(root *Root) *MountTable {
	mt := &MountTable{nextID: 20, notifier: newNotifier(root)}
	mt.add("/", root, root.hostDir, "ro")
	for _, name := range []string{"dev", "proc", "sys"} {
		opts := "rw,nosuid,nodev,noexec,relatime" // as Linux mounts /proc and /sys
		var fs Filesystem = &sentryFS{name: name}
		switch name {
		case "dev":
			opts = "rw,nosuid"
		case "proc":
			fs = &procFS{}
		}
		mt.add("/"+name, fs, name, opts)
	}
	for _, p := range defaultTmpfsMounts {
		t := newTmpfs(DefaultTmpfsSize, mt.nextID)
		t.keepSpare = true
		t.notifier = mt.notifier
		if p == "/run" {
			// /run/lock, where /var/lock leads on most distributions.
			t.linkLocked(t.root, "lock", t.newNodeLocked(unix.S_IFDIR|0o1777, 0, 0))
		}
		mt.add(p, t, "tmpfs", tmpfsOptions(DefaultTmpfsSize))
	}
	mt.add("/dev/pts", newDevpts(), "devpts", devptsOptions)
	return mt
}

func tmpfsOptions(size uint64) string { return fmt.Sprintf("rw,nosuid,nodev,size=%dk", size>>10) }

func (mt *MountTable) add(point string, fs Filesystem, source, options string) {
	mt.mounts = append(mt.mounts, &Mount{point: point, fs: fs, source: source, options: options, id: mt.nextID})
	mt.nextID++
	sort.Slice(mt.mounts, func(i, j int) bool { return mt.mounts[i].point < mt.mounts[j].point })
}

// MountTmpfs mounts a new, empty tmpfs of size bytes (0: DefaultTmpfsSize)
// at point, an absolute guest path (--tmpfs); at a default tmpfs mount
// point it sets that mount's size instead. A point that another mount
// already holds, one inside /proc, /sys or another tmpfs, and one above
// another mount are refused with ErrBadMountPoint. Call it before the
// sandbox runs.
func (mt *MountTable) MountTmpfs(point string, size uint64) error {
	if size == 0 {
		size = DefaultTmpfsSize
	}
	if !strings.HasPrefix(point, "/") || path.Clean(point) == "/" {
		return fmt.Errorf("tmpfs at %q: %w: want an absolute path other than /", point, ErrBadMountPoint)
	}
	point = path.Clean(point)
	mt.mu.Lock()
	defer mt.mu.Unlock()
	for _, m := range mt.mounts {
		if m.point == point {
			if t, ok := m.fs.(*tmpfs); ok {
				// --tmpfs of a default mount point: set its size.
				t.setLimit(size)
				m.options = tmpfsOptions(size)
				return nil
			}
			return fmt.Errorf("tmpfs at %s: %w: already a mount point", point, ErrBadMountPoint)
		}
		if m.point != "/" && strings.HasPrefix(point, m.point+"/") && m.point != "/dev" {
			return fmt.Errorf("tmpfs at %s: %w: inside %s", point, ErrBadMountPoint, m.point)
		}
		if strings.HasPrefix(m.point, point+"/") {
			return fmt.Errorf("tmpfs at %s: %w: it would hide %s", point, ErrBadMountPoint, m.point)
		}
	}
	t := newTmpfs(size, mt.nextID)
	t.keepSpare = true
	t.pages = mt.pages
	t.notifier = mt.notifier
	mt.add(point, t, "tmpfs", tmpfsOptions(size))
	return nil
}

// MountOverlay makes the root writable: an overlay of a tmpfs upper layer
// of size bytes over the host root (see overlayFS). Call it before the
// sandbox runs; without it the root stays read-only.
func (mt *MountTable) MountOverlay(size uint64) error {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	m := mt.byPoint("/")
	r, ok := m.fs.(*Root)
	if !ok {
		return fmt.Errorf("overlay at /: %w: already writable", ErrBadMountPoint)
	}
	o, err := newOverlay(r, size, m.id)
	if err != nil {
		return fmt.Errorf("overlay root: %w", err)
	}
	o.upper.pages = mt.pages
	o.upper.notifier = mt.notifier
	m.fs = o
	m.options = fmt.Sprintf("rw,relatime,lowerdir=%s,size=%dk", r.HostDir(), size>>10)
	return nil
}

// MountTmpIfEmpty mounts a tmpfs of size bytes at /tmp when the host
// root's /tmp is empty or missing and nothing is mounted there or below
// yet (as runsc does); otherwise /tmp stays the root's. It reports whether it
// mounted one.
func (mt *MountTable) MountTmpIfEmpty(r *Root, size uint64) (bool, error) {
	mt.mu.Lock()
	taken := false
	for _, m := range mt.mounts {
		taken = taken || m.point == "/tmp" || strings.HasPrefix(m.point, "/tmp/")
	}
	mt.mu.Unlock()
	if taken || !r.emptyDir("/tmp") {
		return false, nil
	}
	if err := mt.MountTmpfs("/tmp", size); err != nil {
		return false, err
	}
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if t, ok := mt.byPoint("/tmp").fs.(*tmpfs); ok {
		t.memorySized = true
	}
	return true, nil
}

// MountBind mounts host directory hostDir at point (snap run -v), read-only
// with ro. hostDir must be a directory (else an error naming it); point is
// refused with ErrBadMountPoint as MountTmpfs refuses it. Call it before
// the sandbox runs.
func (mt *MountTable) MountBind(hostDir, point string, ro bool) error {
	if !strings.HasPrefix(point, "/") || path.Clean(point) == "/" {
		return fmt.Errorf("volume at %q: %w: want an absolute path other than /", point, ErrBadMountPoint)
	}
	point = path.Clean(point)
	fd, err := openBindDir(hostDir)
	if err != nil {
		return fmt.Errorf("volume %s: host directory %s: %w", point, hostDir, err)
	}
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if err := mt.checkPointLocked("volume", point); err != nil {
		unix.Close(fd)
		return err
	}
	opts := "rw"
	if ro {
		opts = "ro"
	}
	mt.add(point, &bindFS{point: point, hostDir: hostDir, ro: ro, fd: fd, opened: true}, hostDir, opts)
	return nil
}

// checkPointLocked refuses a mount point another mount holds, one inside
// /proc, /sys or another mount but the root and /dev, and one above
// another mount.
func (mt *MountTable) checkPointLocked(what, point string) error {
	for _, m := range mt.mounts {
		if m.point == point {
			return fmt.Errorf("%s at %s: %w: already a mount point", what, point, ErrBadMountPoint)
		}
		if m.point != "/" && strings.HasPrefix(point, m.point+"/") && m.point != "/dev" {
			return fmt.Errorf("%s at %s: %w: inside %s", what, point, ErrBadMountPoint, m.point)
		}
		if strings.HasPrefix(m.point, point+"/") {
			return fmt.Errorf("%s at %s: %w: it would hide %s", what, point, ErrBadMountPoint, m.point)
		}
	}
	return nil
}

// Release closes the host descriptors of the table's bind mounts and
// the lower directories the overlay root keeps open.
func (mt *MountTable) Release() {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	for _, m := range mt.mounts {
		switch fs := m.fs.(type) {
		case *bindFS:
			fs.mu.Lock()
			if fs.opened {
				unix.Close(fs.fd)
				fs.opened = false
			}
			fs.mu.Unlock()
		case *overlayFS:
			fs.upper.mu.Lock()
			fs.closeLowerDirsLocked()
			fs.upper.mu.Unlock()
		}
	}
}

// Mounts returns the mount table's entries in mount point order.
func (mt *MountTable) Mounts() []*Mount {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	return append([]*Mount(nil), mt.mounts...)
}

func (mt *MountTable) byPoint(p string) *Mount {
	for _, m := range mt.mounts {
		if m.point == p {
			return m
		}
	}
	return nil
}

// route returns the mount a guest path (absolute, as fullPath returns it)
// is in, and the path to give its filesystem (see Filesystem). The path is
// walked lexically up to the first walked mount point it reaches (as the
// sentry's directories always were: the host root resolves the rest with
// its own symlinks); a path that reaches none goes to the sentry's
// directory it lies in, or else to the host root.
func (mt *MountTable) route(full string) (*Mount, string) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	// cur is the directory reached so far, each component led by a
	// slash ("" for the root); on the stack for paths of usual length.
	var buf [256]byte
	cur := buf[:0]
	for start := 0; start <= len(full); {
		end := strings.IndexByte(full[start:], '/')
		next := len(full) + 1 // the rest after the component: none
		if end < 0 {
			end = len(full)
		} else {
			end += start
			next = end + 1
		}
		c := full[start:end]
		start = next
		switch c {
		case "", ".":
			continue
		case "..":
			cur = cur[:max(bytes.LastIndexByte(cur, '/'), 0)]
		default:
			cur = append(append(cur, '/'), c...)
		}
		if m := mt.walkedAtLocked(cur); m != nil {
			return m, full[min(next, len(full)):]
		}
	}
	if name := sentryMountOf(cleanPath(full)); name != "" {
		return mt.byPoint("/" + name), full
	}
	return mt.byPoint("/"), full
}

// walkedAtLocked returns the walked mount (Mount.walked) whose mount
// point is dir ("" for the root), or nil.
//
// Preconditions: mt.mu is held.
func (mt *MountTable) walkedAtLocked(dir []byte) *Mount {
	for _, m := range mt.mounts {
		if m.point == string(dir) || len(dir) == 0 && m.point == "/" {
			if m.walked() {
				return m
			}
			return nil
		}
	}
	return nil
}

// ProcMounts formats the table as /proc/self/mounts.
func (mt *MountTable) ProcMounts() []byte {
	var b strings.Builder
	for _, m := range mt.Mounts() {
		fmt.Fprintf(&b, "%s %s %s %s 0 0\n", m.sourceName(), m.point, m.fs.fsType(), m.options)
	}
	return []byte(b.String())
}

// ProcMountinfo formats the table as /proc/self/mountinfo.
func (mt *MountTable) ProcMountinfo() []byte {
	var b strings.Builder
	ms := mt.Mounts()
	for _, m := range ms {
		parent := m.id
		for _, p := range ms {
			if p != m && (p.point == "/" || strings.HasPrefix(m.point, p.point+"/")) {
				parent = p.id // the longest prefix comes last in point order
			}
		}
		perMount, super := splitMountOptions(m.options)
		major, minor := m.device()
		fmt.Fprintf(&b, "%d %d %d:%d / %s %s - %s %s %s\n", m.id, parent, major, minor, m.point, perMount, m.fs.fsType(), m.sourceName(), super)
	}
	return []byte(b.String())
}

// perMountFlags are the options of a mount rather than of its filesystem
// (mountinfo shows them before the separator).
var perMountFlags = map[string]bool{
	"nosuid": true, "nodev": true, "noexec": true, "relatime": true, "noatime": true, "nodiratime": true,
	"strictatime": true,
}

// splitMountOptions splits options as /proc/self/mounts shows them into
// mountinfo's mount options and superblock options, both led by rw or ro.
func splitMountOptions(options string) (string, string) {
	opts := strings.Split(options, ",")
	perMount, super := []string{opts[0]}, []string{opts[0]}
	for _, o := range opts[1:] {
		if perMountFlags[o] {
			perMount = append(perMount, o)
		} else {
			super = append(super, o)
		}
	}
	return strings.Join(perMount, ","), strings.Join(super, ",")
}

// sourceName is the mount's source as /proc/self/mounts shows it: for the
// root, the host directory it is open on now (a restore may move it).
func (m *Mount) sourceName() string {
	switch fs := m.fs.(type) {
	case *Root:
		return fs.HostDir()
	case *overlayFS:
		return "overlay"
	case *bindFS:
		return fs.hostDir
	}
	return m.source
}

// device returns the device numbers stat reports for the mount's files
// (mountinfo's third field, which tools match against st_dev).
func (m *Mount) device() (uint32, uint32) {
	switch fs := m.fs.(type) {
	case *tmpfs:
		return 0, fs.minor
	case *overlayFS:
		return 0, fs.upper.minor
	case *bindFS:
		if st, err := fs.stat(nil, m, "", true); err == nil {
			return st.DevMajor, st.DevMinor
		}
	case *sentryFS:
		return 0, sentryMounts[fs.name].minor
	case *procFS:
		return 0, sentryMounts["proc"].minor
	case *devpts:
		return 0, devptsMinor
	case *mqueueFS:
		return 0, fs.minor
	case *Root:
		if st, err := fs.stat(nil, m, "/", true); err == nil {
			return st.DevMajor, st.DevMinor
		}
	}
	return 0, m.id
}

// resolve runs op on the mount full routes to, routing again while op
// reports a crossing.
// A symlink's target is confined to fs's root directory.
func resolve[T any](fs *FS, full string, op func(m *Mount, p string) (T, error)) (T, error) {
	mt := fs.root.mountTable()
	for range maxSymlinks {
		m, p := mt.route(foldSentryPath(full))
		v, err := op(m, p)
		var c *crossing
		if errors.As(err, &c) {
			full = fs.inRoot(c.full, c.abs)
			continue
		}
		if next, ok := fs.root.redirect(m, p, err); ok {
			full = next
			continue
		}
		return v, err
	}
	var zero T
	return zero, unix.ELOOP
}

// resolve2 is resolve for an operation on two paths (link, rename): both
// must route to the same mount, else EXDEV once the first path's parent
// resolves.
func resolve2(fs *FS, oldFull, newFull string, op func(m *Mount, oldp, newp string) error) error {
	mt := fs.root.mountTable()
	for range maxSymlinks {
		om, op1 := mt.route(foldSentryPath(oldFull))
		nm, np := mt.route(foldSentryPath(newFull))
		if om != nm {
			if _, err := fs.parentStat(oldFull); err != nil {
				return err
			}
			if _, err := fs.parentStat(newFull); err != nil {
				return err
			}
			return unix.EXDEV
		}
		err := op(om, op1, np)
		var c *crossing
		if errors.As(err, &c) {
			if c.second {
				newFull = fs.inRoot(c.full, c.abs)
			} else {
				oldFull = fs.inRoot(c.full, c.abs)
			}
			continue
		}
		o, oldMoved := fs.root.redirect(om, op1, err)
		n, newMoved := fs.root.redirect(nm, np, err)
		if oldMoved || newMoved {
			if oldMoved {
				oldFull = o
			}
			if newMoved {
				newFull = n
			}
			continue
		}
		return err
	}
	return unix.ELOOP
}

// redirect handles a host symlink that leads into a tmpfs mount (Debian's
// /var/run -> /run): the host resolves it to its own directory, which the
// mount hides. When an operation on the host root fails with ENOENT or
// EROFS (what a lookup or a write there gets), the deepest ancestor of
// full that exists on the host is resolved to its canonical guest path
// (or a dangling host symlink to its target); if the path then leads into
// a tmpfs, redirect returns it and true. A
// file that exists on the host under such a symlink is still the host's.
func (r *Root) redirect(m *Mount, full string, err error) (string, bool) {
	if m.fs != Filesystem(r) || (err != unix.ENOENT && err != unix.EROFS) {
		return "", false
	}
	trailing := strings.HasSuffix(full, "/")
	comps := strings.FieldsFunc(full, func(c rune) bool { return c == '/' })
	for k := len(comps) - 1; k >= 1; k-- {
		prefix := "/" + strings.Join(comps[:k], "/")
		fd, lerr := r.lookup(prefix, 0)
		if lerr != nil {
			// A symlink dangling on the host may lead into a mount
			// point the host lacks.
			if target, err := r.readlink(nil, nil, prefix); err == nil {
				if !strings.HasPrefix(target, "/") {
					target = path.Join(path.Dir(prefix), target)
				}
				next := path.Join(target, strings.Join(comps[k:], "/"))
				if trailing {
					next += "/"
				}
				if nm, _ := r.mountTable().route(next); nm.walked() {
					return next, true
				}
			}
			continue
		}
		canon := r.guestPath(fd, prefix)
		unix.Close(fd)
		next := path.Join(canon, strings.Join(comps[k:], "/"))
		if trailing {
			next += "/"
		}
		if nm, _ := r.mountTable().route(next); nm.walked() {
			return next, true
		}
		return "", false
	}
	return "", false
}

// parentStat stats the directory that holds the final component of full.
func (fs *FS) parentStat(full string) (Stat, error) {
	parent := strings.TrimRight(full, "/")
	parent = parent[:strings.LastIndexByte(parent, '/')+1]
	if parent == "" {
		parent = "/"
	}
	st, err := resolve(fs, parent, func(m *Mount, p string) (Stat, error) { return m.fs.stat(nil, m, p, true) })
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return st, unix.ENOTDIR
	}
	return st, err
}
