//go:build linux

package uffd

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// do runs an ioctl on u's descriptor, again while interrupted or while the
// watched process's mappings are changing (EAGAIN).
func do[T any](u *FD, req uintptr, arg *T) error {
	rc, err := u.f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ierr = ioctl(fd, req, arg)
			if ierr != unix.EINTR && ierr != unix.EAGAIN {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ierr
}

// ioctl makes one ioctl whose argument is the structure at arg.
func ioctl[T any](fd, req uintptr, arg *T) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(arg))); e != 0 {
		return e
	}
	return nil
}
