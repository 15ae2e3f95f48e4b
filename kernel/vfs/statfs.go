package vfs

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// StatfsSize is sizeof(struct statfs) on x86-64.
const StatfsSize = 120

// Filesystem magic numbers reported for files that are not host files.
const (
	tmpfsMagic  = 0x01021994
	pipefsMagic = 0x50495045
)

// encodeStatfs encodes st as a Linux x86-64 struct statfs, adding
// ST_RDONLY: the sandbox sees every host filesystem read-only.
func encodeStatfs(st unix.Statfs_t) [StatfsSize]byte {
	st.Flags |= unix.ST_RDONLY
	var buf bytes.Buffer
	buf.Grow(StatfsSize)
	binary.Write(&buf, binary.LittleEndian, &st) // fixed-size struct: cannot fail
	var out [StatfsSize]byte
	copy(out[:], buf.Bytes())
	return out
}

// syntheticStatfs describes the in-sentry filesystems (devices, pipes).
func syntheticStatfs(magic int64) [StatfsSize]byte {
	return encodeStatfs(unix.Statfs_t{Type: magic, Bsize: 4096, Frsize: 4096, Namelen: 255})
}

// Statfs implements fstatfs(2) on f.
func (f *File) Statfs() ([StatfsSize]byte, error) {
	switch impl := f.impl.(type) {
	case *hostFile:
		if impl.broken != nil {
			return [StatfsSize]byte{}, unix.EIO
		}
		if impl.bind != nil {
			return impl.bind.statfsFD(impl.fd)
		}
		var st unix.Statfs_t
		if err := unix.Fstatfs(impl.fd, &st); err != nil {
			return [StatfsSize]byte{}, err
		}
		return encodeStatfs(st), nil
	case *pipeReader, *pipeWriter:
		return syntheticStatfs(pipefsMagic), nil
	case *synthDir:
		return sentryStatfs(impl.path), nil
	case *syntheticFile:
		if sentryMountOf(impl.path) != "" {
			return sentryStatfs(impl.path), nil
		}
	case *tmpfsFile:
		return impl.node.fs.statfsBytes(), nil
	case *stdioFile:
		if impl.fd >= 0 {
			var st unix.Statfs_t
			if err := unix.Fstatfs(impl.fd, &st); err != nil {
				return [StatfsSize]byte{}, err
			}
			return encodeStatfs(st), nil
		}
	}
	return syntheticStatfs(tmpfsMagic), nil
}

// Statfs implements statfs(2) on path relative to dir (nil: the working
// directory).
func (fs *FS) Statfs(dir *File, p string) ([StatfsSize]byte, error) {
	return fs.StatfsAs(nil, dir, p)
}
