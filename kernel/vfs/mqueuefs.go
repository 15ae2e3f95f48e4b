package vfs

import (
	"hash/fnv"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// MqueueSource is the IPC namespace's POSIX message queues, which an
// mqueue filesystem shows: one regular file per queue, named as mq_open
// names it without the leading slash. The kernel implements it; its
// concrete type must be savable, since the mount holds it.
//
// Failures are unix.Errno values with Linux's meaning (ENOENT for a
// queue that does not exist, EACCES for a denied open or removal).
type MqueueSource interface {
	// MqueueNames returns the names of the queues, sorted.
	MqueueNames() []string
	// MqueueStat returns the attributes of queue name, or of the
	// directory for "": its type and mode, owner, size and times (zero
	// times for a directory never changed). The filesystem fills the
	// rest.
	MqueueStat(name string) (Stat, error)
	// MqueueSetAttr changes the attributes of queue name (the directory
	// for "") as a says, checking a.Creds as Creds.SetAttrOf does.
	MqueueSetAttr(name string, a *SetAttr) error
	// MqueueOpen opens queue name for o as open(2) with flags does
	// (O_CREAT creates it with mode and default attributes), giving a
	// descriptor that is the same queue as mq_open's.
	MqueueOpen(name string, flags, mode uint32, o Owner) (*File, error)
	// MqueueUnlink removes the name of queue name for a caller with
	// creds c (nil: the kernel), as mq_unlink does: EPERM for another
	// user's queue in the sticky directory.
	MqueueUnlink(name string, c *Creds) error
}

// mqueueFS is the mqueue filesystem: a view of an IPC namespace's
// message queues (MqueueSource), a flat directory of one file per queue
// that holds nothing of its own. Queues are created by open(2) with
// O_CREAT and removed by unlink; nothing else can be made in it (EPERM,
// as Linux, which has no such operations there). chmod, chown and utimes
// change the source's attributes of a queue or of the directory.
//
// +stateify savable
type mqueueFS struct {
	// src holds the queues; immutable.
	src MqueueSource
	// minor is the device minor number its files report; immutable.
	minor uint32
	// mounted is when it was mounted, the times its directory shows
	// (zero in images from before); immutable.
	mounted Timespec
}

// MountMqueue mounts an mqueue filesystem showing src's queues at
// /dev/mqueue, unless one is mounted there already. Call it before the
// sandbox runs (or while restoring an image from before the mount).
func (mt *MountTable) MountMqueue(src MqueueSource) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if mt.byPoint("/dev/mqueue") != nil {
		return
	}
	mt.add("/dev/mqueue", &mqueueFS{src: src, minor: mt.nextID, mounted: nowTimespec()}, "mqueue", "rw,nosuid,nodev,noexec,relatime")
}

func (q *mqueueFS) fsType() string { return "mqueue" }

// lookup resolves rest (below the mount point) to "" for the root
// directory or a queue name; ".." at the root leaves the filesystem.
// wantDir reports a trailing slash.
func (q *mqueueFS) lookup(m *Mount, rest string) (name string, wantDir bool, err error) {
	wantDir = strings.HasSuffix(rest, "/")
	comps := strings.Split(rest, "/")
	for i, c := range comps {
		switch c {
		case "", ".":
			continue
		case "..":
			if name != "" {
				name = ""
				continue
			}
			return "", false, &crossing{full: path.Dir(m.point) + "/" + strings.Join(comps[i+1:], "/")}
		}
		if name != "" {
			if _, err := q.src.MqueueStat(name); err != nil {
				return "", false, err
			}
			return "", false, unix.ENOTDIR
		}
		name = c
	}
	return name, wantDir, nil
}

// rootStat is the directory's attributes: the source's, its times the
// mount's until something changed them.
func (q *mqueueFS) rootStat() Stat {
	n := len(q.src.MqueueNames())
	st, _ := q.src.MqueueStat("")
	if st.Ctime == (Timespec{}) {
		st.Atime, st.Mtime, st.Ctime = q.mounted, q.mounted, q.mounted
	}
	st.Mask = unix.STATX_BASIC_STATS
	st.Blksize = 4096
	st.Nlink = 2
	st.Ino = 1
	st.Size = uint64(n+2) * bogoDirentSize
	st.DevMinor = q.minor
	return st
}

// queueStat is the attributes of queue name.
func (q *mqueueFS) queueStat(name string) (Stat, error) {
	st, err := q.src.MqueueStat(name)
	if err != nil {
		return Stat{}, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	st.Mask = unix.STATX_BASIC_STATS
	st.Blksize = 4096
	st.Nlink = 1
	st.Ino = h.Sum64()>>1 | 1<<32
	st.DevMinor = q.minor
	return st, nil
}

func (q *mqueueFS) stat(_ *Creds, m *Mount, rest string, _ bool) (Stat, error) {
	name, wantDir, err := q.lookup(m, rest)
	switch {
	case err != nil:
		return Stat{}, err
	case name == "":
		return q.rootStat(), nil
	}
	st, err := q.queueStat(name)
	if err == nil && wantDir {
		return Stat{}, unix.ENOTDIR
	}
	return st, err
}

func (q *mqueueFS) open(_ *FS, m *Mount, rest string, flags, mode uint32, o Owner) (*File, error) {
	name, wantDir, err := q.lookup(m, rest)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if flags&unix.O_PATH == 0 && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC) != 0) {
			return nil, unix.EISDIR
		}
		return q.openRoot(m, flags), nil
	}
	if wantDir || flags&unix.O_DIRECTORY != 0 {
		if _, err := q.src.MqueueStat(name); err != nil && flags&unix.O_CREAT == 0 {
			return nil, err
		}
		if wantDir && flags&unix.O_CREAT != 0 {
			return nil, unix.EISDIR
		}
		return nil, unix.ENOTDIR
	}
	if flags&unix.O_PATH != 0 {
		st, err := q.queueStat(name)
		if err != nil {
			return nil, err
		}
		return newFile(unix.O_PATH|flags&unix.O_ACCMODE, &synthDir{path: m.point + "/" + name, mode: st.Mode}), nil
	}
	return q.src.MqueueOpen(name, flags, mode, o)
}

// openRoot opens the directory, listing the queues it holds now.
func (q *mqueueFS) openRoot(m *Mount, flags uint32) *File {
	st := q.rootStat()
	ents := []Dirent{
		{Ino: st.Ino, Type: unix.DT_DIR, Name: "."},
		{Ino: syntheticNodeStat(path.Dir(m.point), unix.S_IFDIR).Ino, Type: unix.DT_DIR, Name: ".."},
	}
	for _, name := range q.src.MqueueNames() {
		if qs, err := q.queueStat(name); err == nil {
			ents = append(ents, Dirent{Ino: qs.Ino, Type: unix.DT_REG, Name: name})
		}
	}
	return newFile(flags|oLargefile, &synthDir{path: m.point, mode: st.Mode, ents: ents})
}

func (q *mqueueFS) readlink(_ *Creds, m *Mount, rest string) (string, error) {
	if _, err := q.stat(nil, m, rest, false); err != nil {
		return "", err
	}
	return "", unix.EINVAL
}

func (q *mqueueFS) access(_ *Creds, m *Mount, rest string, mode uint32, _ int) error {
	st, err := q.stat(nil, m, rest, true)
	if err != nil {
		return err
	}
	if mode&unix.X_OK != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

func (q *mqueueFS) chdir(_ *Creds, m *Mount, rest string) (string, error) {
	name, _, err := q.lookup(m, rest)
	if err != nil {
		return "", err
	}
	if name != "" {
		if _, err := q.src.MqueueStat(name); err != nil {
			return "", err
		}
		return "", unix.ENOTDIR
	}
	return m.point, nil
}

func (q *mqueueFS) statfs(_ *Creds, m *Mount, rest string) ([StatfsSize]byte, error) {
	if _, err := q.stat(nil, m, rest, true); err != nil {
		return [StatfsSize]byte{}, err
	}
	return syntheticStatfs(mqueueMagic), nil
}

// refuse is what creating p other than by open(2) gets: EEXIST for a
// name that exists, else EPERM (the filesystem has no such operation).
func (q *mqueueFS) refuse(m *Mount, p string) error {
	name, _, err := q.lookup(m, p)
	switch {
	case err != nil:
		return err
	case name == "":
		return unix.EEXIST
	}
	if _, err := q.src.MqueueStat(name); err == nil {
		return unix.EEXIST
	}
	return unix.EPERM
}

func (q *mqueueFS) mkdir(m *Mount, p string, _ uint32, _ Owner) error { return q.refuse(m, p) }

func (q *mqueueFS) mknod(m *Mount, p string, _ uint32, _ uint64, _ Owner) error {
	return q.refuse(m, p)
}

func (q *mqueueFS) symlink(m *Mount, _, p string, _ Owner) error { return q.refuse(m, p) }

func (q *mqueueFS) link(_ *Creds, m *Mount, oldp, newp string, _ bool) error {
	if _, err := q.stat(nil, m, oldp, false); err != nil {
		return err
	}
	return q.refuse(m, newp)
}

func (q *mqueueFS) unlink(c *Creds, m *Mount, p string, dir bool) error {
	name, _, err := q.lookup(m, p)
	switch {
	case err != nil:
		return err
	case name == "" && dir:
		return unix.EBUSY
	case name == "":
		return unix.EISDIR
	}
	if _, err := q.src.MqueueStat(name); err != nil {
		return err
	}
	if dir {
		return unix.ENOTDIR
	}
	return q.src.MqueueUnlink(name, c)
}

func (q *mqueueFS) rename(_ *Creds, m *Mount, oldp, _ string, _ uint32) error {
	if _, err := q.stat(nil, m, oldp, false); err != nil {
		return err
	}
	return unix.EPERM
}

func (q *mqueueFS) setAttr(m *Mount, p string, _ bool, a *SetAttr) error {
	if _, err := q.stat(nil, m, p, false); err != nil {
		return err
	}
	name, _, _ := q.lookup(m, p)
	if a == nil {
		return nil
	}
	return q.src.MqueueSetAttr(name, a)
}

// bindSocket refuses a socket file as mknod does (EPERM).
func (q *mqueueFS) bindSocket(m *Mount, p string, mode uint32, o Owner, _ BoundSocket) error {
	return q.mknod(m, p, unix.S_IFSOCK|mode, 0, o)
}

func (q *mqueueFS) lookupSocket(c *Creds, m *Mount, p string) (BoundSocket, error) {
	return noSocket(c, q, m, p)
}
