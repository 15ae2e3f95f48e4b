package socket

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The interface ioctls: the sandbox has one interface, lo.

// The sandbox's one network interface, as the interface ioctls report it.
const (
	loName  = "lo"
	loIndex = 1
	// loFlags are what SIOCGIFFLAGS reports for lo (its low 16 bits:
	// IFF_LOWER_UP is above them).
	loFlags = unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING
)

// loopbackIfreq answers SIOCGIFINDEX, SIOCGIFNAME and SIOCGIFFLAGS in the
// struct ifreq at arg (ifr_name, then the union at byte 16) for the
// sandbox's only interface, lo: ENODEV for any other.
func loopbackIfreq(cmd uint32, arg []byte) error {
	name := arg[:unix.IFNAMSIZ]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	switch cmd {
	case unix.SIOCGIFNAME:
		if int32(binary.LittleEndian.Uint32(arg[unix.IFNAMSIZ:])) != loIndex {
			return unix.ENODEV
		}
		clear(arg[:unix.IFNAMSIZ])
		copy(arg, loName)
		return nil
	case unix.SIOCGIFINDEX:
		if string(name) != loName {
			return unix.ENODEV
		}
		binary.LittleEndian.PutUint32(arg[unix.IFNAMSIZ:], loIndex)
		return nil
	}
	if string(name) != loName {
		return unix.ENODEV
	}
	binary.LittleEndian.PutUint16(arg[unix.IFNAMSIZ:], loFlags)
	return nil
}
