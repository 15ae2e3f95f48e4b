package vfs

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// direntHeader is the size of linux_dirent64 before d_name.
const direntHeader = 19

// Dirent is one directory entry.
//
// +stateify savable
type Dirent struct {
	Ino uint64
	// Off is the d_off value: the position of the next entry.
	Off int64
	// Type is a DT_* value.
	Type uint8
	Name string
}

// direntSize returns d_reclen for a name: header, name, NUL, 8-aligned.
func direntSize(name string) int {
	return (direntHeader + len(name) + 1 + 7) &^ 7
}

// AppendDirent64 appends d as a linux_dirent64 record to b.
func AppendDirent64(b []byte, d Dirent) []byte {
	n := direntSize(d.Name)
	start := len(b)
	b = append(b, make([]byte, n)...)
	r := b[start:]
	binary.LittleEndian.PutUint64(r[0:], d.Ino)
	binary.LittleEndian.PutUint64(r[8:], uint64(d.Off))
	binary.LittleEndian.PutUint16(r[16:], uint16(n))
	r[18] = d.Type
	copy(r[direntHeader:], d.Name)
	return b
}

// ParseDirents64 decodes linux_dirent64 records (as getdents64 returns them).
// It fails with a descriptive error on a truncated or malformed record.
func ParseDirents64(b []byte) ([]Dirent, error) {
	var out []Dirent
	for off := 0; off < len(b); {
		if len(b)-off < direntHeader {
			return out, fmt.Errorf("dirent at %d: %d bytes left, need %d: %w", off, len(b)-off, direntHeader, unix.EINVAL)
		}
		r := b[off:]
		reclen := int(binary.LittleEndian.Uint16(r[16:]))
		if reclen <= direntHeader || reclen > len(r) {
			return out, fmt.Errorf("dirent at %d: bad d_reclen %d (%d bytes left): %w", off, reclen, len(r), unix.EINVAL)
		}
		name := r[direntHeader:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		out = append(out, Dirent{
			Ino:  binary.LittleEndian.Uint64(r[0:]),
			Off:  int64(binary.LittleEndian.Uint64(r[8:])),
			Type: r[18],
			Name: string(name),
		})
		off += reclen
	}
	return out, nil
}

// fillDirents encodes ents[*pos:] into dst while they fit, advances *pos
// past them and returns the bytes written. It fails with EINVAL when not
// even the first remaining record fits.
func fillDirents(dst []byte, ents []Dirent, pos *int) (int, error) {
	n := 0
	for *pos < len(ents) {
		sz := direntSize(ents[*pos].Name)
		if n+sz > len(dst) {
			if n == 0 {
				return 0, unix.EINVAL
			}
			break
		}
		d := ents[*pos]
		d.Off = int64(*pos + 1)
		AppendDirent64(dst[n:n:len(dst)], d)
		n += sz
		*pos++
	}
	return n, nil
}

// seekDir is lseek on a directory whose position is *pos, an index into
// its entries: SEEK_SET to any offset that is not negative (kept within
// 2^31), SEEK_CUR by 0 to read the position; anything else is EINVAL.
func seekDir(pos *int, off int64, whence int) (int64, error) {
	switch {
	case whence == unix.SEEK_SET && off >= 0:
		*pos = int(min(off, int64(1<<31)))
	case whence == unix.SEEK_CUR && off == 0:
	default:
		return 0, unix.EINVAL
	}
	return int64(*pos), nil
}
