package vfs

import (
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// devDirIno is the inode number of the synthetic /dev (devices use 2..6).
const devDirIno = 7

// deviceNames returns the names of the sentry's devices in /dev, sorted.
func deviceNames() []string {
	names := make([]string, 0, len(devices))
	for name := range devices {
		names = append(names, name[len("/dev/"):])
	}
	sort.Strings(names)
	return names
}

// devDirStat is /dev's stat: as any Linux directory, it has a link for
// its entry in /, one for its ".", and one for each subdirectory's "..".
func devDirStat() Stat {
	nodes := sentryNodes()
	nlink := uint32(2)
	for _, name := range nodes["/dev"].children {
		if nodes["/dev/"+name].fileType() == unix.S_IFDIR {
			nlink++
		}
	}
	return Stat{
		Mask:     unix.STATX_BASIC_STATS,
		Blksize:  4096,
		Nlink:    nlink,
		Mode:     unix.S_IFDIR | 0o755,
		Ino:      devDirIno,
		DevMinor: 5,
	}
}

// devDir is the sentry's /dev, whatever the root holds there. It lists the
// sentry's devices and the links to the process's own descriptors.
//
// +stateify savable
type devDir struct {
	noImpl

	// mu protects pos. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// pos is the index of the next directory entry.
	pos int
}

func (d *devDir) entries() []Dirent {
	ents := []Dirent{
		{Ino: devDirIno, Type: unix.DT_DIR, Name: "."},
		{Ino: 1, Type: unix.DT_DIR, Name: ".."},
	}
	nodes := sentryNodes()
	for _, name := range nodes["/dev"].children {
		p := "/dev/" + name
		n := nodes[p]
		ents = append(ents, Dirent{Ino: sentryStat(p, n).Ino, Type: uint8(n.fileType() >> 12), Name: name})
	}
	return ents
}

func (d *devDir) read(*File, <-chan struct{}, []byte, int64) (int, error) { return 0, unix.EISDIR }

func (d *devDir) getdents64(_ *File, dst []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fillDirents(dst, d.entries(), &d.pos)
}

func (d *devDir) seek(_ *File, off int64, whence int) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return seekDir(&d.pos, off, whence)
}

func (d *devDir) stat(*File) (Stat, error) { return devDirStat(), nil }

func (d *devDir) guestPath() string { return "/dev" }
