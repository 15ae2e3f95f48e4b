package vfs

import "golang.org/x/sys/unix"

// poll(2) event bits x/sys/unix does not name.
const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
)

// Terminal and generic ioctl requests the sentry understands.
const (
	fionbio   = 0x5421
	fionread  = 0x541b
	tiocoutq  = 0x5411
	termiosSz = 36 // struct termios as TCGETS copies it (NCCS = 19)
	ifreqSize = 40 // struct ifreq: the interface ioctls of sockets
)

// IoctlArgSize returns how many bytes ioctl request cmd's argument points to,
// and whether the kernel must copy them in before calling File.Ioctl and out
// after it. Unknown requests return (0, false, false); File.Ioctl then fails
// with ENOTTY. FIOCLEX and FIONCLEX change the descriptor, not the file: the
// kernel handles them with FDTable.SetFlags.
func IoctlArgSize(cmd uint32) (size int, in, out bool) {
	switch cmd {
	case unix.TCGETS:
		return termiosSz, false, true
	case unix.TCSETS, unix.TCSETSW, unix.TCSETSF:
		return termiosSz, true, false
	case unix.TIOCGWINSZ:
		return 8, false, true
	case unix.TIOCSWINSZ:
		return 8, true, false
	case unix.TIOCGPGRP, unix.TIOCGSID, fionread, tiocoutq:
		return 4, false, true
	case unix.TIOCSPGRP, fionbio, unix.TIOCSPTLCK, unix.TIOCPKT:
		return 4, true, false
	case unix.TIOCGPTN, unix.TIOCGPTLCK, unix.TIOCGPKT:
		return 4, false, true
	case unix.SIOCGIFINDEX, unix.SIOCGIFNAME, unix.SIOCGIFFLAGS:
		return ifreqSize, true, true
	}
	if IoctlArgByValue(cmd) {
		return 8, false, false
	}
	return 0, false, false
}

// IoctlArgByValue reports whether ioctl request cmd takes its argument as
// a value, not a pointer: the kernel then passes File.Ioctl the value as 8
// little-endian bytes. TIOCNOTTY takes none.
func IoctlArgByValue(cmd uint32) bool {
	switch cmd {
	case unix.TCFLSH, unix.TCXONC, unix.TCSBRK, unix.TCSBRKP, unix.TIOCSCTTY, unix.TIOCGPTPEER, unix.TIOCNOTTY:
		return true
	}
	return false
}
