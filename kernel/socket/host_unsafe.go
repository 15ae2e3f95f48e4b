package socket

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The host socket calls with addresses as raw bytes, as the application
// gave them: the host kernel checks them, so its errors are Linux's own.

func bytePtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// hostBind is bind(2) of fd to the address in b.
func hostBind(fd int, b []byte) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(bytePtr(b)), uintptr(len(b)))
	return errnoErr(e)
}

// hostConnectRaw is connect(2) of fd to the address in b.
func hostConnectRaw(fd int, b []byte) error {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(bytePtr(b)), uintptr(len(b)))
	return errnoErr(e)
}

// hostSendto is sendto(2); to may be nil.
func hostSendto(fd int, p []byte, flags int, to []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(bytePtr(p)), uintptr(len(p)), uintptr(flags), uintptr(bytePtr(to)), uintptr(len(to)))
	return int(n), errnoErr(e)
}

// hostRecvmsg is recvmsg(2) into p: the length the call returned, the
// message's flags and the sender's address (nil if none).
func hostRecvmsg(fd int, p []byte, flags int) (int, int, []byte, error) {
	var from [sockaddrStorage]byte
	var iov unix.Iovec
	var dummy byte
	if len(p) > 0 {
		iov.Base = &p[0]
	} else {
		iov.Base = &dummy
	}
	iov.SetLen(len(p))
	msg := unix.Msghdr{Name: &from[0], Namelen: sockaddrStorage, Iov: &iov, Iovlen: 1}
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, nil, e
	}
	var sa []byte
	if msg.Namelen > 0 {
		sa = append([]byte(nil), from[:min(int(msg.Namelen), sockaddrStorage)]...)
	}
	return int(n), int(msg.Flags), sa, nil
}

// hostAccept is accept4(2) with flags: the new descriptor and the peer's
// address.
func hostAccept(fd int, flags int) (int, []byte, error) {
	var sa [sockaddrStorage]byte
	l := uint32(sockaddrStorage)
	nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(unsafe.Pointer(&l)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, nil, e
	}
	return int(nfd), append([]byte(nil), sa[:min(int(l), sockaddrStorage)]...), nil
}

// hostName is getsockname(2), or getpeername(2) with peer.
func hostName(fd int, peer bool) ([]byte, error) {
	nr := uintptr(unix.SYS_GETSOCKNAME)
	if peer {
		nr = unix.SYS_GETPEERNAME
	}
	var sa [sockaddrStorage]byte
	l := uint32(sockaddrStorage)
	_, _, e := unix.Syscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return nil, e
	}
	return append([]byte(nil), sa[:min(int(l), sockaddrStorage)]...), nil
}

// hostGetsockopt is getsockopt(2) into a buffer of hostOptMax bytes.
func hostGetsockopt(fd, level, name int) ([]byte, error) {
	b := make([]byte, hostOptMax)
	l := uint32(len(b))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return nil, e
	}
	return b[:min(int(l), len(b))], nil
}

// hostSetsockopt is setsockopt(2) with val as given.
func hostSetsockopt(fd, level, name int, val []byte) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(bytePtr(val)), uintptr(len(val)), 0)
	return errnoErr(e)
}
