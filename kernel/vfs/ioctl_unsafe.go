package vfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hostIoctl forwards an ioctl whose argument is a buffer to a host
// descriptor. buf must be at least as large as the request's argument.
func hostIoctl(fd int, cmd uint32, buf []byte) (int, error) {
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(p))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
