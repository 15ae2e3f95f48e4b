package vfs

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Sizes of the Linux x86-64 structures Stat encodes.
const (
	// StatSize is sizeof(struct stat) on x86-64.
	StatSize = 144
	// StatxSize is sizeof(struct statx).
	StatxSize = 256
)

// Timespec is a time in seconds and nanoseconds since the Unix epoch.
//
// +stateify savable
type Timespec struct {
	Sec  int64
	Nsec uint32
}

// Stat is a file's attributes: the union of struct stat and struct statx.
//
// +stateify savable
type Stat struct {
	// Mask is the set of STATX_* bits whose fields are valid.
	Mask uint32
	// Blksize is the preferred I/O block size.
	Blksize uint32
	// Attributes and AttributesMask are STATX_ATTR_* bits.
	Attributes     uint64
	AttributesMask uint64
	Nlink          uint32
	UID            uint32
	GID            uint32
	// Mode is the file type (S_IF*) and permission bits.
	Mode   uint32
	Ino    uint64
	Size   uint64
	Blocks uint64
	Atime  Timespec
	Btime  Timespec
	Ctime  Timespec
	Mtime  Timespec
	// RdevMajor and RdevMinor identify a device file's device.
	RdevMajor uint32
	RdevMinor uint32
	// DevMajor and DevMinor identify the device holding the file.
	DevMajor uint32
	DevMinor uint32
	MntID    uint64
}

// statFromStatx converts a host statx result.
func statFromStatx(x *unix.Statx_t) Stat {
	ts := func(t unix.StatxTimestamp) Timespec { return Timespec{Sec: t.Sec, Nsec: t.Nsec} }
	return Stat{
		Mask:           x.Mask,
		Blksize:        x.Blksize,
		Attributes:     x.Attributes,
		AttributesMask: x.Attributes_mask,
		Nlink:          x.Nlink,
		UID:            x.Uid,
		GID:            x.Gid,
		Mode:           uint32(x.Mode),
		Ino:            x.Ino,
		Size:           x.Size,
		Blocks:         x.Blocks,
		Atime:          ts(x.Atime),
		Btime:          ts(x.Btime),
		Ctime:          ts(x.Ctime),
		Mtime:          ts(x.Mtime),
		RdevMajor:      x.Rdev_major,
		RdevMinor:      x.Rdev_minor,
		DevMajor:       x.Dev_major,
		DevMinor:       x.Dev_minor,
		MntID:          x.Mnt_id,
	}
}

// hostStat stats a host descriptor (any kind, O_PATH included).
func hostStat(fd int) (Stat, error) {
	var x unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME|unix.STATX_MNT_ID, &x); err != nil {
		return Stat{}, err
	}
	return statFromStatx(&x), nil
}

// statAt stats name in the host directory open at dirfd, not following a
// final symlink, with the fields hostStat asks for.
func statAt(dirfd int, name string) (Stat, error) {
	var x unix.Statx_t
	if err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME|unix.STATX_MNT_ID, &x); err != nil {
		return Stat{}, err
	}
	return statFromStatx(&x), nil
}

// FileType returns the S_IFMT bits of Mode.
func (s *Stat) FileType() uint32 { return s.Mode & unix.S_IFMT }

// EncodeStat returns s as a Linux x86-64 struct stat (fstat, newfstatat).
func (s *Stat) EncodeStat() [StatSize]byte {
	var b [StatSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], unix.Mkdev(s.DevMajor, s.DevMinor))
	le.PutUint64(b[8:], s.Ino)
	le.PutUint64(b[16:], uint64(s.Nlink))
	le.PutUint32(b[24:], s.Mode)
	le.PutUint32(b[28:], s.UID)
	le.PutUint32(b[32:], s.GID)
	// b[36:40] is padding.
	le.PutUint64(b[40:], unix.Mkdev(s.RdevMajor, s.RdevMinor))
	le.PutUint64(b[48:], s.Size)
	le.PutUint64(b[56:], uint64(s.Blksize))
	le.PutUint64(b[64:], s.Blocks)
	for i, t := range []Timespec{s.Atime, s.Mtime, s.Ctime} {
		le.PutUint64(b[72+16*i:], uint64(t.Sec))
		le.PutUint64(b[80+16*i:], uint64(t.Nsec))
	}
	// b[120:144] is reserved.
	return b
}

// EncodeStatx returns s as a Linux struct statx. Like Linux, it may fill
// more fields than requested; stx_mask says which are valid.
func (s *Stat) EncodeStatx() [StatxSize]byte {
	var b [StatxSize]byte
	le := binary.LittleEndian
	le.PutUint32(b[0:], s.Mask)
	le.PutUint32(b[4:], s.Blksize)
	le.PutUint64(b[8:], s.Attributes)
	le.PutUint32(b[16:], s.Nlink)
	le.PutUint32(b[20:], s.UID)
	le.PutUint32(b[24:], s.GID)
	binary.LittleEndian.PutUint16(b[28:], uint16(s.Mode))
	le.PutUint64(b[32:], s.Ino)
	le.PutUint64(b[40:], s.Size)
	le.PutUint64(b[48:], s.Blocks)
	le.PutUint64(b[56:], s.AttributesMask)
	for i, t := range []Timespec{s.Atime, s.Btime, s.Ctime, s.Mtime} {
		le.PutUint64(b[64+16*i:], uint64(t.Sec))
		le.PutUint32(b[72+16*i:], t.Nsec)
	}
	le.PutUint32(b[128:], s.RdevMajor)
	le.PutUint32(b[132:], s.RdevMinor)
	le.PutUint32(b[136:], s.DevMajor)
	le.PutUint32(b[140:], s.DevMinor)
	le.PutUint64(b[144:], s.MntID)
	return b
}
