package kernel

import (
	"sort"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// The mqueue filesystem at /dev/mqueue (vfs.MountMqueue) is a view of the
// IPC namespace's POSIX message queues: the namespace is its
// vfs.MqueueSource, and a queue opened there is an mqFD like mq_open's,
// carried by a vfs.File made with vfs.NewImplFile.

// mqFileSize is the size stat reports for a queue's file: Linux's
// FILENT_SIZE, whatever the status line holds.
const mqFileSize = 80

// MqueueNames implements vfs.MqueueSource.
func (ns *ipcNamespace) MqueueNames() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	names := make([]string, 0, len(ns.mqs))
	for name := range ns.mqs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// mqDirAttr is the mqueue filesystem directory's mode, owner and times,
// kept in the namespace since mq_open and mq_unlink change them too.
//
// +stateify savable
type mqDirAttr struct {
	Mode, UID, GID      uint32
	Atime, Mtime, Ctime vfs.Timespec
}

// mqDirLocked returns the directory's attributes, made (mode 01777, owner
// root, zero times: the mount's) on first use.
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) mqDirLocked() *mqDirAttr {
	if ns.mqDir == nil {
		ns.mqDir = &mqDirAttr{Mode: unix.S_IFDIR | 0o1777}
	}
	return ns.mqDir
}

// touchMqDirLocked stamps the directory with the time of a create or an
// unlink, as Linux (atime, mtime and ctime).
//
// Preconditions: ns.mu is held.
func (ns *ipcNamespace) touchMqDirLocked() {
	d := ns.mqDirLocked()
	now := vfs.Now()
	d.Atime, d.Mtime, d.Ctime = now, now, now
}

func (d *mqDirAttr) stat() vfs.Stat {
	return vfs.Stat{Mode: d.Mode, UID: d.UID, GID: d.GID, Atime: d.Atime, Mtime: d.Mtime, Ctime: d.Ctime, Btime: d.Ctime}
}

// MqueueStat implements vfs.MqueueSource.
func (ns *ipcNamespace) MqueueStat(name string) (vfs.Stat, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if name == "" {
		return ns.mqDirLocked().stat(), nil
	}
	q, ok := ns.mqs[name]
	if !ok {
		return vfs.Stat{}, unix.ENOENT
	}
	return q.stat(), nil
}

// MqueueSetAttr implements vfs.MqueueSource.
func (ns *ipcNamespace) MqueueSetAttr(name string, a *vfs.SetAttr) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if name == "" {
		d := ns.mqDirLocked()
		st, err := a.Creds.SetAttrOf(d.stat(), a)
		if err != nil {
			return err
		}
		d.Mode, d.UID, d.GID, d.Atime, d.Mtime, d.Ctime = st.Mode, st.UID, st.GID, st.Atime, st.Mtime, st.Ctime
		return nil
	}
	q, ok := ns.mqs[name]
	if !ok {
		return unix.ENOENT
	}
	return q.setAttrLocked(a)
}

// setAttrLocked changes the queue's file attributes as a says.
//
// Preconditions: the namespace's mu is held.
func (q *mqueue) setAttrLocked(a *vfs.SetAttr) error {
	st, err := a.Creds.SetAttrOf(q.stat(), a)
	if err != nil {
		return err
	}
	q.Perm.Mode, q.Perm.UID, q.Perm.GID = uint16(st.Mode&0o7777), st.UID, st.GID
	q.Atime, q.Mtime, q.Ctime = st.Atime, st.Mtime, st.Ctime
	return nil
}

// stat is the queue's file attributes (without inode and device).
func (q *mqueue) stat() vfs.Stat {
	st := vfs.Stat{
		Mode:  unix.S_IFREG | uint32(q.Perm.Mode),
		UID:   q.Perm.UID,
		GID:   q.Perm.GID,
		Size:  mqFileSize,
		Atime: q.Atime, Mtime: q.Mtime, Ctime: q.Ctime, Btime: q.Ctime,
	}
	if q.Ctime == (vfs.Timespec{}) {
		ts := vfs.Timespec{Sec: q.Perm.Ctime}
		st.Atime, st.Mtime, st.Ctime, st.Btime = ts, ts, ts, ts
	}
	return st
}

// MqueueOpen implements vfs.MqueueSource: open(2) of /dev/mqueue/NAME,
// with the checks of a regular file (mode bits for o's fsuid and groups,
// CAP_DAC_OVERRIDE) and O_CREAT making a queue of the default attributes.
// Linux counts such a queue against fs.mqueue.queues_max too; the
// opener's RLIMIT_MSGQUEUE is not known here and is not checked.
func (ns *ipcNamespace) MqueueOpen(name string, flags, mode uint32, o vfs.Owner) (*vfs.File, error) {
	acc := flags & unix.O_ACCMODE
	if acc == unix.O_ACCMODE {
		return nil, unix.EINVAL
	}
	ns.mu.Lock()
	q, ok := ns.mqs[name]
	switch {
	case ok && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL:
		ns.mu.Unlock()
		return nil, unix.EEXIST
	case ok:
		if !mqOwnerAccess(&q.Perm, o, accessWant(acc)) {
			ns.mu.Unlock()
			return nil, unix.EACCES
		}
	case flags&unix.O_CREAT == 0:
		ns.mu.Unlock()
		return nil, unix.ENOENT
	default:
		if len(ns.mqs) >= mqQueuesMax && (o.Creds == nil || o.Creds.Caps&(1<<capSysResource) == 0) {
			ns.mu.Unlock()
			return nil, unix.ENOSPC
		}
		now := vfs.Now()
		q = &mqueue{
			Perm:    ipcPerm{UID: o.UID, GID: o.GID, CUID: o.UID, CGID: o.GID, Mode: uint16(mode & 0o777), Ctime: now.Sec},
			MaxMsg:  mqDefMaxMsg,
			MsgSize: mqDefMsgSize,
			User:    o.UID,
			Atime:   now, Mtime: now, Ctime: now,
		}
		ns.mqs[name] = q
		ns.touchMqDirLocked()
		ns.notifyLocked()
	}
	ns.mu.Unlock()
	m := &mqFD{Q: q, NS: ns, Read: acc != unix.O_WRONLY, Write: acc != unix.O_RDONLY, Path: "/dev/mqueue/" + name}
	return vfs.NewImplFile(acc|flags&unix.O_NONBLOCK, &mqFile{M: m}), nil
}

// accessWant is the permission bits (4 read, 2 write) an access mode asks.
func accessWant(acc uint32) uint32 {
	switch acc {
	case unix.O_WRONLY:
		return 2
	case unix.O_RDWR:
		return 6
	}
	return 4
}

// mqOwnerAccess is the permission check of a queue's file for o: its
// mode bits for o's fsuid, then groups, then others, overridden by
// CAP_DAC_OVERRIDE. An Owner without Creds is the kernel's own.
func mqOwnerAccess(p *ipcPerm, o vfs.Owner, want uint32) bool {
	c := o.Creds
	if c == nil || c.Caps&(1<<capDACOverride) != 0 {
		return true
	}
	granted := uint32(p.Mode)
	switch {
	case c.FSUID == p.UID:
		granted >>= 6
	case c.FSGID == p.GID || containsUint32(c.Groups, p.GID):
		granted >>= 3
	}
	return want&^granted&7 == 0
}

func containsUint32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// MqueueUnlink implements vfs.MqueueSource: mq_unlink, and unlink(2) of
// /dev/mqueue/NAME.
func (ns *ipcNamespace) MqueueUnlink(name string, c *vfs.Creds) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	q, ok := ns.mqs[name]
	if !ok {
		return unix.ENOENT
	}
	if err := c.MayDeleteFrom(ns.mqDirLocked().stat(), q.stat()); err != nil {
		return err
	}
	q.Unlinked = true
	delete(ns.mqs, name)
	ns.touchMqDirLocked()
	ns.notifyLocked()
	return nil
}

// mqFile is a queue's descriptor opened through /dev/mqueue: an mqFD as
// the vfs.Impl of its File.
//
// +stateify savable
type mqFile struct {
	// M is the descriptor's queue and access; immutable.
	M *mqFD
}

// Read implements vfs.Impl: the queue's status line.
func (f *mqFile) Read(_ *vfs.File, _ <-chan struct{}, dst []byte) (int, error) {
	return f.M.read(nil, dst, false)
}

// Seek implements vfs.ImplSeeker.
func (f *mqFile) Seek(_ *vfs.File, off int64, whence int) (int64, error) {
	return f.M.seek(off, whence)
}

// ReadAt implements vfs.ImplSeeker: pread(2) of the status line.
func (f *mqFile) ReadAt(_ *vfs.File, dst []byte, off int64) (int, error) {
	if !f.M.Read {
		return 0, unix.EBADF
	}
	f.M.NS.mu.Lock()
	defer f.M.NS.mu.Unlock()
	return f.M.Q.readStatusLocked(dst, off), nil
}

// SetAttr implements vfs.ImplSetAttr: fchmod, fchown and futimens of a
// queue's descriptor (also mq_open's).
func (f *mqFile) SetAttr(_ *vfs.File, a *vfs.SetAttr) error {
	f.M.NS.mu.Lock()
	defer f.M.NS.mu.Unlock()
	return f.M.Q.setAttrLocked(a)
}

// Write implements vfs.Impl: a queue's file takes no writes.
func (f *mqFile) Write(*vfs.File, <-chan struct{}, []byte) (int, error) { return 0, unix.EINVAL }

// Stat implements vfs.Impl.
func (f *mqFile) Stat(*vfs.File) (vfs.Stat, error) {
	f.M.NS.mu.Lock()
	defer f.M.NS.mu.Unlock()
	st := f.M.Q.stat()
	st.Mask = unix.STATX_BASIC_STATS
	st.Blksize = 4096
	st.Nlink = 1
	if f.M.Q.Unlinked {
		st.Nlink = 0
	}
	return st, nil
}

// Ioctl implements vfs.Impl.
func (f *mqFile) Ioctl(*vfs.File, uint32, []byte) (int, error) { return 0, unix.ENOTTY }

// Readiness implements vfs.Impl.
func (f *mqFile) Readiness(_ *vfs.File, mask uint32) uint32 { return f.M.readiness(mask) }

// Watch implements vfs.Impl.
func (f *mqFile) Watch(*vfs.File, uint32) (<-chan struct{}, func()) { return f.M.changed(), func() {} }

// LinkName implements vfs.Impl.
func (f *mqFile) LinkName() string { return f.M.Path }

// FileType implements vfs.Impl.
func (f *mqFile) FileType() uint32 { return unix.S_IFREG }

// Release implements vfs.Impl: the queue stays in the namespace.
func (f *mqFile) Release() {}
