package kernel

import "golang.org/x/sys/unix"

// Calls on descriptors that need no file kind of their own.

// sysNotSocket serves the socket calls that take a descriptor (connect,
// getsockname, shutdown, ...): there are no sockets, so a valid descriptor
// is ENOTSOCK and an invalid one EBADF, as Linux answers for a file that is
// not a socket. (accept4 and recvmmsg check their flags first, as Linux.)
func sysNotSocket(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	f.DecRef()
	return 0, unix.ENOTSOCK
}

func sysAccept4(t *Task, a *sysArgs) (uint64, error) {
	if a[3]&^uint64(unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	return sysNotSocket(t, a)
}

// msgCmsgCompat is MSG_CMSG_COMPAT, which a 64-bit caller may not pass.
const msgCmsgCompat = 0x80000000

func sysRecvmmsg(t *Task, a *sysArgs) (uint64, error) {
	if a[3]&msgCmsgCompat != 0 {
		return 0, unix.EINVAL
	}
	return sysNotSocket(t, a)
}

// sysFallocate implements fallocate(fd, mode, offset, len): see
// vfs.File.Fallocate for the errors.
func sysFallocate(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.Fallocate(uint32(a[1]), int64(a[2]), int64(a[3]))
}

// sysReadahead checks readahead(fd, offset, count) as Linux does; there is
// no page cache to fill.
func sysReadahead(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.Readahead()
}
