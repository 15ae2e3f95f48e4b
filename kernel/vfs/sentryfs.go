package vfs

import (
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The sentry's own directories. /dev, /proc and /sys are never looked up
// on the host, whatever the root holds there: the host's would describe
// the host (its devices, its processes, its hardware). A guest path whose
// first component is one of them is cleaned lexically (these trees hold no
// host symlinks) and answered from sentryNodes here, or, under /proc, by
// procFS (procfs.go), which asks the kernel's view of /proc. Anything else
// under them does not exist (ENOENT).

// Filesystem magic numbers statfs reports for the sentry's directories.
const (
	procMagic  = unix.PROC_SUPER_MAGIC
	sysfsMagic = unix.SYSFS_MAGIC
)

// sentryMounts maps each sentry directory to its filesystem magic and the
// device minor number its files report: /proc's and /sys's are their
// mount IDs (newMountTable numbers the mounts in a fixed order), which no
// tmpfs or overlay (whose minor is its mount's ID) can have.
var sentryMounts = map[string]struct {
	magic int64
	minor uint32
}{
	"dev":  {tmpfsMagic, 5},
	"proc": {procMagic, 22},
	"sys":  {sysfsMagic, 23},
}

// sentryNode is one file of the sentry's directories.
type sentryNode struct {
	// mode is the file type and permissions.
	mode uint32
	// dev is the device of a character device.
	dev deviceKind
	// target is a symlink's target.
	target string
	// data returns a regular file's contents.
	data func() []byte
	// children are a directory's entry names, in listing order.
	children []string
}

func (n *sentryNode) fileType() uint32 { return n.mode & unix.S_IFMT }

// sentryNodes are the files vfs serves under /dev and /sys, by guest path.
var sentryNodes = sync.OnceValue(func() map[string]*sentryNode {
	dir := func(children ...string) *sentryNode {
		return &sentryNode{mode: unix.S_IFDIR | 0o555, children: children}
	}
	link := func(target string) *sentryNode { return &sentryNode{mode: unix.S_IFLNK | 0o777, target: target} }
	cpus := func() []byte { return fmt.Appendf(nil, "0-%d\n", runtime.NumCPU()-1) }
	if runtime.NumCPU() == 1 {
		cpus = func() []byte { return []byte("0\n") }
	}
	nodes := map[string]*sentryNode{
		"/dev":                           {mode: unix.S_IFDIR | 0o755},
		"/dev/fd":                        link("/proc/self/fd"),
		"/dev/stdin":                     link("/proc/self/fd/0"),
		"/dev/stdout":                    link("/proc/self/fd/1"),
		"/dev/stderr":                    link("/proc/self/fd/2"),
		"/sys":                           dir("devices"),
		"/sys/devices":                   dir("system"),
		"/sys/devices/system":            dir("cpu"),
		"/sys/devices/system/cpu":        dir("online", "possible"),
		"/sys/devices/system/cpu/online": {mode: unix.S_IFREG | 0o444, data: cpus},
		// The sentry offers runtime.NumCPU CPUs (sched_getaffinity).
		"/sys/devices/system/cpu/possible": {mode: unix.S_IFREG | 0o444, data: cpus},
	}
	for _, d := range deviceNames() {
		nodes["/dev/"+d] = &sentryNode{mode: unix.S_IFCHR | 0o666, dev: devices["/dev/"+d]}
	}
	nodes["/dev/pts"] = &sentryNode{mode: unix.S_IFDIR | 0o755}
	nodes["/dev"].children = append(deviceNames(), "fd", "pts", "stderr", "stdin", "stdout")
	return nodes
})

// sentryMountOf returns the sentry directory ("dev", "proc", "sys") that
// the first component of an absolute guest path names, or "".
func sentryMountOf(full string) string {
	first, _, _ := strings.Cut(strings.TrimLeft(full, "/"), "/")
	if _, ok := sentryMounts[first]; ok {
		return first
	}
	return ""
}

// foldSentryPath cleans an absolute guest path lexically if it starts in,
// or lexically leads into, /dev or /sys ("/dev/../etc/x" is "/etc/x": the
// host may have no /dev to resolve ".." in; "/etc/../dev/null" is
// "/dev/null"), keeping a trailing slash, which asks for a directory.
// /proc walks its paths itself (procfs.go): ".." after a magic link there
// climbs from the link's target.
func foldSentryPath(full string) string {
	c := cleanPath(full)
	if lexicalSentryMount(c) == "" && lexicalSentryMount(full) == "" {
		return full
	}
	if strings.HasSuffix(full, "/") && c != "/" {
		c += "/"
	}
	return c
}

// lexicalSentryMount is sentryMountOf for the directories cleaned
// lexically: "dev" and "sys".
func lexicalSentryMount(full string) string {
	if name := sentryMountOf(full); name != "proc" {
		return name
	}
	return ""
}

// maxSentryLinks bounds the symlinks followed in one sentry lookup.
const maxSentryLinks = 8

// sentryLookup resolves a guest path (as fullPath returns it) in the
// sentry's directories. owned is false if the path is not in one (the host
// root answers it). Otherwise it returns the resolved path and node, or
// ENOENT, ENOTDIR or ELOOP. follow makes a final symlink resolve.
func sentryLookup(full string, follow bool) (p string, n *sentryNode, owned bool, err error) {
	full = foldSentryPath(full)
	if sentryMountOf(full) == "" {
		return "", nil, false, nil
	}
	for range maxSentryLinks {
		wantDir := strings.HasSuffix(full, "/")
		p = cleanPath(full)
		if sentryMountOf(p) == "" {
			// A sentry symlink that leads out (none does today).
			return "", nil, true, unix.ENOENT
		}
		n, rest, err := walkSentry(p)
		if err != nil {
			return "", nil, true, err
		}
		if n.fileType() == unix.S_IFLNK && (rest != "" || follow || wantDir) {
			full = n.target + rest
			if wantDir {
				full += "/"
			}
			continue
		}
		if wantDir && n.fileType() != unix.S_IFDIR {
			return "", nil, true, unix.ENOTDIR
		}
		return p, n, true, nil
	}
	return "", nil, true, unix.ELOOP
}

// walkSentry finds the node of clean path p, stopping at a symlink, whose
// node and the remainder of p (starting with "/", or "") it returns.
func walkSentry(p string) (*sentryNode, string, error) {
	nodes := sentryNodes()
	comps := strings.Split(p[1:], "/")
	cur := ""
	for i, c := range comps {
		cur += "/" + c
		n, ok := nodes[cur]
		if !ok {
			return nil, "", unix.ENOENT
		}
		last := i == len(comps)-1
		if last {
			return n, "", nil
		}
		switch n.fileType() {
		case unix.S_IFLNK:
			return n, "/" + strings.Join(comps[i+1:], "/"), nil
		case unix.S_IFDIR:
		default:
			return nil, "", unix.ENOTDIR
		}
	}
	return nil, "", unix.ENOENT
}

// sentryStat returns the attributes of the node at guest path p.
func sentryStat(p string, n *sentryNode) Stat {
	if n.fileType() == unix.S_IFCHR {
		return n.dev.stat()
	}
	if p == "/dev" {
		return devDirStat()
	}
	st := syntheticNodeStat(p, n.mode)
	switch n.fileType() {
	case unix.S_IFLNK:
		st.Size = uint64(len(n.target))
	case unix.S_IFREG:
		st.Size = 4096
	}
	return st
}

// syntheticNodeStat is the stat of a sentry file or directory at guest path
// p other than a device: a stable inode number derived from the path.
func syntheticNodeStat(p string, mode uint32) Stat {
	h := fnv.New64a()
	h.Write([]byte(p))
	st := Stat{
		Mask:     unix.STATX_BASIC_STATS,
		Blksize:  4096,
		Nlink:    1,
		Mode:     mode,
		Ino:      h.Sum64()>>1 | 1<<32,
		DevMinor: sentryMounts[sentryMountOf(p)].minor,
	}
	if mode&unix.S_IFMT == unix.S_IFDIR {
		st.Nlink = 2
	}
	return st
}

// openSentry opens the node n at guest path p with open(2) flags.
func openSentry(p string, n *sentryNode, flags uint32) (*File, error) {
	pathOnly := flags&unix.O_PATH != 0
	if !pathOnly && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return nil, unix.EEXIST
	}
	switch n.fileType() {
	case unix.S_IFCHR:
		return openDevice(n.dev, p, flags)
	case unix.S_IFLNK:
		// Only reached with O_NOFOLLOW.
		if pathOnly {
			return newFile(unix.O_PATH|flags&unix.O_ACCMODE, &synthDir{path: p, mode: n.mode}), nil
		}
		return nil, unix.ELOOP
	case unix.S_IFDIR:
		if !pathOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC) != 0) {
			return nil, unix.EISDIR
		}
		if p == "/dev" {
			return newFile(flags, &devDir{}), nil
		}
		return NewSyntheticDir(p, n.children, nil, flags)
	default:
		if flags&unix.O_DIRECTORY != 0 {
			return nil, unix.ENOTDIR
		}
		if !pathOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0) {
			return nil, unix.EACCES
		}
		return NewSynthetic(p, n.data(), flags)
	}
}

// sentryAccess is access(2) on a sentry node: devices are read-write,
// the rest read-only; only directories are searchable.
func sentryAccess(n *sentryNode, mode uint32) error {
	switch n.fileType() {
	case unix.S_IFCHR:
		return deviceAccess(mode)
	case unix.S_IFDIR:
		return devDirAccess(mode)
	}
	if mode&unix.W_OK != 0 {
		return unix.EROFS
	}
	if mode&unix.X_OK != 0 {
		return unix.EACCES
	}
	return nil
}

// sentryStatfs returns statfs for a path in a sentry directory.
func sentryStatfs(p string) [StatfsSize]byte {
	return syntheticStatfs(sentryMounts[sentryMountOf(p)].magic)
}

// synthDir is a directory of the sentry's /proc or /sys, listed with the
// entries it had when it was opened (or an O_PATH symlink there).
//
// +stateify savable
type synthDir struct {
	noImpl
	// path is the guest path; immutable.
	path string
	// mode is the file type and permissions; immutable.
	mode uint32
	// ents are the entries, "." and ".." first; immutable.
	ents []Dirent

	// mu protects pos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pos is the index of the next entry.
	pos int
}

// NewSyntheticDir returns a directory File at guest path p (in /proc or
// /sys) that lists names, each of DT_* type types[i] (DT_DIR if types is
// nil), after "." and "..". The kernel uses it for the per-process
// directories of /proc.
func NewSyntheticDir(p string, names []string, types []uint8, flags uint32) (*File, error) {
	if flags&unix.O_PATH == 0 && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC) != 0) {
		return nil, unix.EISDIR
	}
	parent := p[:strings.LastIndexByte(p, '/')]
	if parent == "" {
		parent = "/"
	}
	ents := []Dirent{
		{Ino: syntheticNodeStat(p, unix.S_IFDIR).Ino, Type: unix.DT_DIR, Name: "."},
		{Ino: syntheticNodeStat(parent, unix.S_IFDIR).Ino, Type: unix.DT_DIR, Name: ".."},
	}
	if parent == "/" {
		ents[1].Ino = 1
	}
	for i, name := range names {
		typ := uint8(unix.DT_DIR)
		if types != nil {
			typ = types[i]
		} else if n, ok := sentryNodes()[p+"/"+name]; ok {
			typ = uint8(n.fileType() >> 12)
		}
		ents = append(ents, Dirent{Ino: syntheticNodeStat(p+"/"+name, uint32(typ)<<12).Ino, Type: typ, Name: name})
	}
	return newFile(flags|oLargefile, &synthDir{path: p, mode: unix.S_IFDIR | 0o555, ents: ents}), nil
}

// SyntheticDirStat returns the attributes of a directory the kernel
// generates at guest path p (see NewSyntheticDir).
func SyntheticDirStat(p string) Stat { return syntheticNodeStat(p, unix.S_IFDIR|0o555) }

// SyntheticLinkStat returns the attributes of a symlink the kernel
// generates at guest path p with the given target.
func SyntheticLinkStat(p, target string) Stat {
	st := syntheticNodeStat(p, unix.S_IFLNK|0o777)
	st.Size = uint64(len(target))
	return st
}

func (d *synthDir) isDir() bool { return d.mode&unix.S_IFMT == unix.S_IFDIR }

func (d *synthDir) read(*File, <-chan struct{}, []byte, int64) (int, error) {
	return 0, unix.EISDIR
}

func (d *synthDir) getdents64(_ *File, dst []byte) (int, error) {
	if !d.isDir() {
		return 0, unix.ENOTDIR
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return fillDirents(dst, d.ents, &d.pos)
}

func (d *synthDir) seek(_ *File, off int64, whence int) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return seekDir(&d.pos, off, whence)
}

func (d *synthDir) stat(*File) (Stat, error) { return syntheticNodeStat(d.path, d.mode), nil }

func (d *synthDir) guestPath() string { return d.path }

// sentryFS is one of the sentry's directories (/dev or /sys) as a
// mounted Filesystem. Its paths are whole guest paths, cleaned lexically
// (sentryLookup); nothing in it can be created, removed or changed
// (EROFS once the path resolves, as before).
//
// +stateify savable
type sentryFS struct {
	// name is "dev" or "sys" ("proc" in images from before procFS, which
	// Mount.afterLoad replaces); immutable.
	name string
}

func (s *sentryFS) fsType() string {
	switch s.name {
	case "proc":
		return "proc"
	case "sys":
		return "sysfs"
	}
	return "tmpfs"
}

func (s *sentryFS) open(fs *FS, _ *Mount, full string, flags, _ uint32, _ Owner) (*File, error) {
	sp, n, _, err := sentryLookup(full, flags&unix.O_NOFOLLOW == 0)
	if err == unix.ENOENT && flags&unix.O_PATH == 0 && flags&unix.O_CREAT != 0 {
		return nil, sentryCreateError(full)
	}
	if err != nil {
		return nil, err
	}
	if n.dev == devPtmx && flags&unix.O_PATH == 0 && !strings.HasSuffix(full, "/") && flags&unix.O_DIRECTORY == 0 {
		if d := fs.root.mountTable().devpts(); d != nil {
			return d.openMaster(flags | oLargefile)
		}
	}
	return openSentry(sp, n, flags)
}

// sentryCreateError is the error for creating full in a sentry directory,
// where it does not exist: EROFS if its parent is a directory, else the
// parent's lookup error.
func sentryCreateError(full string) error {
	parent := strings.TrimRight(full, "/")
	parent = parent[:strings.LastIndexByte(parent, '/')+1]
	if _, _, _, err := sentryLookup(parent, true); err != nil {
		return err
	}
	return unix.EROFS
}

func (s *sentryFS) stat(_ *Creds, _ *Mount, full string, follow bool) (Stat, error) {
	sp, n, _, err := sentryLookup(full, follow)
	if err != nil {
		return Stat{}, err
	}
	return sentryStat(sp, n), nil
}

func (s *sentryFS) readlink(_ *Creds, _ *Mount, full string) (string, error) {
	_, n, _, err := sentryLookup(full, false)
	if err != nil {
		return "", err
	}
	if n.fileType() != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return n.target, nil
}

func (s *sentryFS) access(_ *Creds, _ *Mount, full string, mode uint32, flags int) error {
	_, n, _, err := sentryLookup(full, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if err != nil {
		return err
	}
	return sentryAccess(n, mode)
}

func (s *sentryFS) chdir(_ *Creds, _ *Mount, full string) (string, error) {
	sp, n, _, err := sentryLookup(full, true)
	if err != nil {
		return "", err
	}
	if n.fileType() != unix.S_IFDIR {
		return "", unix.ENOTDIR
	}
	return sp, nil
}

func (s *sentryFS) statfs(_ *Creds, _ *Mount, full string) ([StatfsSize]byte, error) {
	sp, _, _, err := sentryLookup(full, true)
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	return sentryStatfs(sp), nil
}

// mustExist returns EROFS if full names something and its lookup error
// otherwise.
func (s *sentryFS) mustExist(full string, follow bool) error {
	if _, _, _, err := sentryLookup(full, follow); err != nil {
		return err
	}
	return unix.EROFS
}

// mustNotExist returns EEXIST if full names something and otherwise what
// creating it fails with.
func (s *sentryFS) mustNotExist(full string) error {
	switch _, _, _, err := sentryLookup(full, false); err {
	case nil:
		return unix.EEXIST
	case unix.ENOENT:
		return sentryCreateError(full)
	default:
		return err
	}
}

func (s *sentryFS) mkdir(_ *Mount, full string, _ uint32, _ Owner) error { return s.mustNotExist(full) }

func (s *sentryFS) mknod(_ *Mount, full string, _ uint32, _ uint64, _ Owner) error {
	return s.mustNotExist(full)
}

func (s *sentryFS) symlink(_ *Mount, _, full string, _ Owner) error { return s.mustNotExist(full) }

func (s *sentryFS) link(_ *Creds, _ *Mount, oldFull, newFull string, follow bool) error {
	if err := s.mustExist(oldFull, follow); err != unix.EROFS {
		return err
	}
	return s.mustNotExist(newFull)
}

func (s *sentryFS) unlink(_ *Creds, _ *Mount, full string, _ bool) error {
	return s.mustExist(full, false)
}

func (s *sentryFS) rename(_ *Creds, _ *Mount, oldFull, _ string, _ uint32) error {
	return s.mustExist(oldFull, false)
}

func (s *sentryFS) setAttr(_ *Mount, full string, follow bool, _ *SetAttr) error {
	return s.mustExist(full, follow)
}

func (s *sentryFS) bindSocket(m *Mount, p string, mode uint32, o Owner, _ BoundSocket) error {
	return s.mknod(m, p, unix.S_IFSOCK|mode, 0, o)
}

func (s *sentryFS) lookupSocket(c *Creds, m *Mount, p string) (BoundSocket, error) {
	return noSocket(c, s, m, p)
}
