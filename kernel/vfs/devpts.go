package vfs

import (
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// devptsOptions are the mount options /proc/self/mounts shows.
const devptsOptions = "rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000"

// devptsMinor is the device minor number of the files of /dev/pts: below
// the mount IDs (from 20), which tmpfs, /proc and /sys use as theirs, so
// that no other mount reports it (images from before devpts add its
// mount later, with whatever ID is next).
const devptsMinor = 19

// ptsMajor is the device major number of pty slaves (Linux's
// UNIX98_PTY_SLAVE_MAJOR).
const ptsMajor = 136

// JobControl is what the terminals need of the kernel, which knows the
// processes: signals for a process group (ISIG, SIGWINCH) and the hangup
// of a session whose terminal's master closed. The kernel gives it with
// MountTable.SetJobControl; both methods are called with no vfs lock held.
type JobControl interface {
	// SignalGroup sends sig to every process of process group pgrp.
	SignalGroup(pgrp int32, sig unix.Signal)
	// Hangup tells session sid that its controlling terminal hung up:
	// Linux sends its leader SIGHUP and SIGCONT.
	Hangup(sid int32)
}

// devpts is the filesystem at /dev/pts: one slave per open pty master,
// named by its index, and ptmx. Opening /dev/ptmx (or /dev/pts/ptmx) makes
// a new TTY at the lowest free index; its name goes when the master's last
// File closes.
//
// +stateify savable
type devpts struct {
	// mu protects ttys. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// ttys are the live terminals by index.
	ttys map[uint32]*TTY
	// jc is the kernel's (SetJobControl). Not saved: the restoring kernel
	// sets it again. Protected by mu.
	jc JobControl `state:"nosave"`
}

func newDevpts() *devpts { return &devpts{ttys: map[uint32]*TTY{}} }

func ptsName(index uint32) string { return "/dev/pts/" + strconv.FormatUint(uint64(index), 10) }

// SetJobControl gives the terminals of the table's /dev/pts the kernel's
// process signalling. The kernel calls it before the sandbox runs and
// after a restore.
func (mt *MountTable) SetJobControl(jc JobControl) {
	if d := mt.devpts(); d != nil {
		d.mu.Lock()
		d.jc = jc
		d.mu.Unlock()
	}
}

// devpts returns the table's /dev/pts filesystem, mounting one if the table
// has none (a table loaded from an image made before ptys).
func (mt *MountTable) devpts() *devpts {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if m := mt.byPoint("/dev/pts"); m != nil {
		if d, ok := m.fs.(*devpts); ok {
			return d
		}
		return nil
	}
	d := newDevpts()
	mt.add("/dev/pts", d, "devpts", devptsOptions)
	return d
}

// ControllingTTY returns the terminal that is the controlling terminal of
// session sid, or nil.
func (mt *MountTable) ControllingTTY(sid int32) *TTY {
	d := mt.devpts()
	if d == nil || sid <= 0 {
		return nil
	}
	d.mu.Lock()
	ttys := make([]*TTY, 0, len(d.ttys))
	for _, t := range d.ttys {
		ttys = append(ttys, t)
	}
	d.mu.Unlock()
	for _, t := range ttys {
		if s, _ := t.Session(); s == sid {
			return t
		}
	}
	return nil
}

// SessionEnded is told that the leader of session sid exited: its
// controlling terminal, if any, belongs to no session any more, and its
// foreground process group gets SIGHUP and SIGCONT, as Linux does for a
// pty.
func (mt *MountTable) SessionEnded(sid int32) {
	t := mt.ControllingTTY(sid)
	if t == nil {
		return
	}
	t.mu.Lock()
	pgrp := t.pgrp
	t.sid, t.pgrp = 0, 0
	t.mu.Unlock()
	t.send([]pending{{pgrp, unix.SIGHUP}, {pgrp, unix.SIGCONT}})
}

func (d *devpts) signalGroup(pgrp int32, sig unix.Signal) {
	d.mu.Lock()
	jc := d.jc
	d.mu.Unlock()
	if jc != nil {
		jc.SignalGroup(pgrp, sig)
	}
}

func (d *devpts) hangup(sid int32) {
	d.mu.Lock()
	jc := d.jc
	d.mu.Unlock()
	if jc != nil {
		jc.Hangup(sid)
	}
}

// openMaster makes a new TTY and returns its master.
func (d *devpts) openMaster(flags uint32) (*File, error) {
	if flags&unix.O_PATH != 0 {
		return newFile(flags, &device{kind: devPtmx}), nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var i uint32
	for d.ttys[i] != nil {
		i++
	}
	t := newTTY(d, i)
	t.masters = 1
	d.ttys[i] = t
	return newFile(flags&^unix.O_NOCTTY|oLargefile, &ptyMaster{tty: t}), nil
}

func (d *devpts) remove(t *TTY) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ttys[t.index] == t {
		delete(d.ttys, t.index)
	}
}

func (d *devpts) lookup(name string) *TTY {
	i, err := strconv.ParseUint(name, 10, 32)
	if err != nil || strconv.FormatUint(i, 10) != name {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ttys[uint32(i)]
}

// slaveStat is the stat of /dev/pts/N.
func (d *devpts) slaveStat(index uint32) Stat {
	return Stat{
		Mask:      unix.STATX_BASIC_STATS,
		Blksize:   1024,
		Nlink:     1,
		Mode:      unix.S_IFCHR | 0o620,
		GID:       5,
		Ino:       uint64(index) + 3,
		RdevMajor: ptsMajor + index>>20,
		RdevMinor: index & 0xfffff,
		DevMinor:  devptsMinor,
	}
}

func devptsRootStat() Stat {
	return Stat{Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: 2, Mode: unix.S_IFDIR | 0o755, Ino: 1, DevMinor: devptsMinor}
}

func devptsPtmxStat() Stat {
	return Stat{Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: 1, Mode: unix.S_IFCHR, Ino: 2, RdevMajor: 5, RdevMinor: 2, DevMinor: devptsMinor}
}

// resolve cleans the path below the mount point: "" for the directory, a
// name in it, or a crossing out of it.
func (d *devpts) resolve(rest string) (string, error) {
	full := path.Join("/dev/pts", rest)
	if full == "/dev/pts" {
		return "", nil
	}
	if !strings.HasPrefix(full, "/dev/pts/") {
		if strings.HasSuffix(rest, "/") {
			full += "/"
		}
		return "", &crossing{full: full}
	}
	name := full[len("/dev/pts/"):]
	if strings.Contains(name, "/") {
		return "", unix.ENOENT
	}
	return name, nil
}

// node returns the stat of a name in /dev/pts, or ENOENT.
func (d *devpts) node(name string) (Stat, *TTY, error) {
	switch name {
	case "":
		return devptsRootStat(), nil, nil
	case "ptmx":
		return devptsPtmxStat(), nil, nil
	}
	t := d.lookup(name)
	if t == nil {
		return Stat{}, nil, unix.ENOENT
	}
	return d.slaveStat(t.index), t, nil
}

func (d *devpts) fsType() string { return "devpts" }

func (d *devpts) open(_ *FS, _ *Mount, rest string, flags, _ uint32, _ Owner) (*File, error) {
	name, err := d.resolve(rest)
	if err != nil {
		if err == unix.ENOENT && flags&unix.O_CREAT != 0 {
			return nil, unix.EACCES
		}
		return nil, err
	}
	st, t, err := d.node(name)
	switch {
	case err != nil && flags&unix.O_CREAT != 0:
		return nil, unix.EACCES
	case err != nil:
		return nil, err
	case flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL:
		return nil, unix.EEXIST
	case name == "":
		if flags&unix.O_PATH == 0 && flags&unix.O_ACCMODE != unix.O_RDONLY {
			return nil, unix.EISDIR
		}
		return newFile(flags, &devptsDir{d: d}), nil
	case flags&unix.O_DIRECTORY != 0 || strings.HasSuffix(rest, "/"):
		return nil, unix.ENOTDIR
	case name == "ptmx":
		return d.openMaster(flags)
	case flags&unix.O_PATH != 0:
		return newFile(flags, &devptsPath{st: st, name: ptsName(t.index)}), nil
	}
	return t.openSlave(flags, false)
}

func (d *devpts) stat(_ *Creds, _ *Mount, rest string, _ bool) (Stat, error) {
	name, err := d.resolve(rest)
	if err != nil {
		return Stat{}, err
	}
	st, _, err := d.node(name)
	return st, err
}

func (d *devpts) readlink(_ *Creds, _ *Mount, rest string) (string, error) {
	if _, err := d.stat(nil, nil, rest, false); err != nil {
		return "", err
	}
	return "", unix.EINVAL
}

func (d *devpts) access(_ *Creds, _ *Mount, rest string, mode uint32, _ int) error {
	st, err := d.stat(nil, nil, rest, true)
	if err != nil {
		return err
	}
	if mode&unix.X_OK != 0 && st.FileType() != unix.S_IFDIR {
		return unix.EACCES
	}
	return nil
}

func (d *devpts) chdir(_ *Creds, _ *Mount, rest string) (string, error) {
	name, err := d.resolve(rest)
	if err != nil {
		return "", err
	}
	if _, _, err := d.node(name); err != nil {
		return "", err
	}
	if name != "" {
		return "", unix.ENOTDIR
	}
	return "/dev/pts", nil
}

func (d *devpts) statfs(_ *Creds, _ *Mount, rest string) ([StatfsSize]byte, error) {
	if _, err := d.stat(nil, nil, rest, true); err != nil {
		return [StatfsSize]byte{}, err
	}
	return syntheticStatfs(unix.DEVPTS_SUPER_MAGIC), nil
}

// mustExist is EPERM (devpts refuses changes) if rest names something.
func (d *devpts) mustExist(rest string) error {
	if _, err := d.stat(nil, nil, rest, false); err != nil {
		return err
	}
	return unix.EPERM
}

func (d *devpts) mustNotExist(rest string) error {
	name, err := d.resolve(rest)
	if err != nil {
		return err
	}
	if _, _, err := d.node(name); err == nil {
		return unix.EEXIST
	}
	return unix.EACCES
}

func (d *devpts) mkdir(_ *Mount, rest string, _ uint32, _ Owner) error { return d.mustNotExist(rest) }

func (d *devpts) mknod(_ *Mount, rest string, _ uint32, _ uint64, _ Owner) error {
	return d.mustNotExist(rest)
}

func (d *devpts) symlink(_ *Mount, _, rest string, _ Owner) error { return d.mustNotExist(rest) }

func (d *devpts) link(_ *Creds, _ *Mount, oldp, newp string, _ bool) error {
	if err := d.mustExist(oldp); err != unix.EPERM {
		return err
	}
	return d.mustNotExist(newp)
}

func (d *devpts) unlink(_ *Creds, _ *Mount, rest string, _ bool) error { return d.mustExist(rest) }

func (d *devpts) rename(_ *Creds, _ *Mount, oldp, _ string, _ uint32) error { return d.mustExist(oldp) }

func (d *devpts) setAttr(_ *Mount, rest string, _ bool, _ *SetAttr) error {
	// chmod and chown of a slave (grantpt) are accepted and not kept.
	_, err := d.stat(nil, nil, rest, true)
	return err
}

func (d *devpts) bindSocket(m *Mount, rest string, mode uint32, o Owner, _ BoundSocket) error {
	return d.mknod(m, rest, unix.S_IFSOCK|mode, 0, o)
}

func (d *devpts) lookupSocket(c *Creds, m *Mount, rest string) (BoundSocket, error) {
	return noSocket(c, d, m, rest)
}

// devptsDir is an open /dev/pts, listing the terminals open at the time
// of each read.
//
// +stateify savable
type devptsDir struct {
	noImpl
	// d is the filesystem; immutable.
	d *devpts

	// mu protects pos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pos is the index of the next entry.
	pos int
}

func (p *devptsDir) entries() []Dirent {
	ents := []Dirent{{Ino: 1, Type: unix.DT_DIR, Name: "."}, {Ino: devDirIno, Type: unix.DT_DIR, Name: ".."}, {Ino: 2, Type: unix.DT_CHR, Name: "ptmx"}}
	p.d.mu.Lock()
	idx := make([]int, 0, len(p.d.ttys))
	for i := range p.d.ttys {
		idx = append(idx, int(i))
	}
	p.d.mu.Unlock()
	sort.Ints(idx)
	for _, i := range idx {
		ents = append(ents, Dirent{Ino: uint64(i) + 3, Type: unix.DT_CHR, Name: strconv.Itoa(i)})
	}
	return ents
}

func (p *devptsDir) read(*File, <-chan struct{}, []byte, int64) (int, error) { return 0, unix.EISDIR }

func (p *devptsDir) getdents64(_ *File, dst []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fillDirents(dst, p.entries(), &p.pos)
}

func (p *devptsDir) seek(_ *File, off int64, whence int) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return seekDir(&p.pos, off, whence)
}

func (p *devptsDir) stat(*File) (Stat, error) { return devptsRootStat(), nil }

func (p *devptsDir) guestPath() string { return "/dev/pts" }

// devptsPath is a slave opened O_PATH: it only stats.
//
// +stateify savable
type devptsPath struct {
	noImpl
	// st and name are the slave's stat and path at open; immutable.
	st   Stat
	name string
}

func (p *devptsPath) stat(*File) (Stat, error) { return p.st, nil }

func (p *devptsPath) guestPath() string { return p.name }
