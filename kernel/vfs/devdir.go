package vfs

import (
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// devDirIno is the inode number of the synthetic /dev (devices use 2..6).
const devDirIno = 7

// isDevDir reports whether a guest path names /dev.
func isDevDir(full string) bool { return cleanPath(full) == "/dev" }

// missingDevDir reports whether a failed host lookup of full should find
// the sentry's synthetic /dev instead: the root has no /dev, but the
// sentry's devices live there.
func missingDevDir(full string, err error) bool { return err == unix.ENOENT && isDevDir(full) }

// deviceDirents returns the sentry's devices as directory entries, by name.
func deviceDirents() []Dirent {
	ents := make([]Dirent, 0, len(devices))
	for name, kind := range devices {
		ents = append(ents, Dirent{Ino: kind.stat().Ino, Type: unix.DT_CHR, Name: name[len("/dev/"):]})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

// addDevices appends the sentry devices a host /dev listing lacks.
func addDevices(ents []Dirent) []Dirent {
	have := make(map[string]bool, len(ents))
	for _, e := range ents {
		have[e.Name] = true
	}
	for _, d := range deviceDirents() {
		if !have[d.Name] {
			ents = append(ents, d)
		}
	}
	return ents
}

func devDirStat() Stat {
	return Stat{
		Mask:     unix.STATX_BASIC_STATS,
		Blksize:  4096,
		Nlink:    2,
		Mode:     unix.S_IFDIR | 0o755,
		Ino:      devDirIno,
		DevMinor: 5,
	}
}

// devDir is the sentry's /dev when the root has no /dev directory. It lists
// the sentry's devices.
//
// +stateify savable
type devDir struct {
	noImpl

	// mu protects pos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pos is the index of the next directory entry.
	pos int
}

func openDevDir(flags uint32) (*File, error) {
	if flags&unix.O_PATH == 0 && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC) != 0) {
		return nil, unix.EISDIR
	}
	return newFile(flags, &devDir{}), nil
}

func (d *devDir) entries() []Dirent {
	return append([]Dirent{
		{Ino: devDirIno, Type: unix.DT_DIR, Name: "."},
		{Ino: 1, Type: unix.DT_DIR, Name: ".."},
	}, deviceDirents()...)
}

func (d *devDir) read(*File, <-chan struct{}, []byte, int64) (int, error) { return 0, unix.EISDIR }

func (d *devDir) getdents64(_ *File, dst []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, pos, err := fillDirents(dst, d.entries(), d.pos)
	d.pos = pos
	return n, err
}

func (d *devDir) seek(_ *File, off int64, whence int) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case whence == unix.SEEK_SET && off >= 0:
		d.pos = int(min(off, int64(1<<31)))
	case whence == unix.SEEK_CUR && off == 0:
	default:
		return 0, unix.EINVAL
	}
	return int64(d.pos), nil
}

func (d *devDir) stat(*File) (Stat, error) { return devDirStat(), nil }

func (d *devDir) guestPath() string { return "/dev" }
