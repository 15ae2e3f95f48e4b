package vfs

import (
	"crypto/rand"
	"strings"

	"golang.org/x/sys/unix"
)

// deviceKind names a device the sentry implements itself.
type deviceKind uint8

const (
	devNull deviceKind = iota + 1
	devZero
	devFull
	devRandom
	devURandom
	// devPtmx makes a new pty (devpts.go); devTTY stands for the opener's
	// controlling terminal, which the kernel puts in its place.
	devPtmx
	devTTY
)

var devices = map[string]deviceKind{
	"/dev/null":    devNull,
	"/dev/zero":    devZero,
	"/dev/full":    devFull,
	"/dev/random":  devRandom,
	"/dev/urandom": devURandom,
	"/dev/ptmx":    devPtmx,
	"/dev/tty":     devTTY,
}

// devMinor is the Linux minor number (major 1, "mem" devices, but for
// ptmx and tty: major 5).
var devMinor = map[deviceKind]uint32{devNull: 3, devZero: 5, devFull: 7, devRandom: 8, devURandom: 9, devPtmx: 2, devTTY: 0}

// deviceByPath matches a guest path (lexically cleaned) against the
// sentry's devices.
func deviceByPath(full string) (deviceKind, bool) {
	d, ok := devices[cleanPath(full)]
	return d, ok
}

// device is a sentry-implemented character device.
//
// +stateify savable
type device struct {
	noImpl
	// kind is which device; immutable.
	kind deviceKind
}

// OpenDevice opens a sentry device by guest path ("/dev/null", "/dev/zero",
// "/dev/full", "/dev/random", "/dev/urandom") with open(2) flags. It fails
// with ENOENT for other paths.
func OpenDevice(p string, flags uint32) (*File, error) {
	d, ok := deviceByPath(p)
	if !ok {
		return nil, unix.ENOENT
	}
	return openDevice(d, p, flags)
}

func openDevice(d deviceKind, full string, flags uint32) (*File, error) {
	switch {
	case strings.HasSuffix(full, "/"), flags&unix.O_DIRECTORY != 0:
		return nil, unix.ENOTDIR
	case flags&unix.O_PATH == 0 && flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL:
		return nil, unix.EEXIST
	}
	return newFile(flags, &device{kind: d}), nil
}

func (d *device) guestPath() string {
	for p, k := range devices {
		if k == d.kind {
			return p
		}
	}
	return ""
}

func (k deviceKind) stat() Stat {
	major, ino := uint32(1), uint64(k)+1
	if k == devPtmx || k == devTTY {
		// After the /dev directory's inode (devDirIno).
		major, ino = 5, uint64(k)+2
	}
	return Stat{
		Mask:      unix.STATX_BASIC_STATS,
		Blksize:   4096,
		Nlink:     1,
		Mode:      unix.S_IFCHR | 0o666,
		Ino:       ino,
		RdevMajor: major,
		RdevMinor: devMinor[k],
		DevMajor:  0,
		DevMinor:  5,
	}
}

func (d *device) read(_ *File, _ <-chan struct{}, dst []byte, _ int64) (int, error) {
	switch d.kind {
	case devNull:
		return 0, nil
	case devPtmx, devTTY:
		return 0, unix.EIO
	case devZero, devFull:
		clear(dst)
		return len(dst), nil
	default:
		if _, err := rand.Read(dst); err != nil {
			return 0, unix.EIO
		}
		return len(dst), nil
	}
}

func (d *device) write(_ *File, _ <-chan struct{}, src []byte, _ int64) (int, error) {
	switch d.kind {
	case devFull:
		return 0, unix.ENOSPC
	case devPtmx, devTTY:
		return 0, unix.EIO
	}
	return len(src), nil
}

func (d *device) seek(*File, int64, int) (int64, error) { return 0, nil }

func (d *device) stat(*File) (Stat, error) { return d.kind.stat(), nil }
