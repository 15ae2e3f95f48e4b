package socket

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// sunPathMax is sizeof(sockaddr_un.sun_path).
const sunPathMax = 108

// familyLen is sizeof(sa_family_t), the offset of sun_path.
const familyLen = 2

// Addr is a Unix socket address, or with Inet an address of the
// sandbox's network.
//
// +stateify savable
type Addr struct {
	// Abstract marks a name in the abstract namespace; Name then holds
	// the bytes after the leading NUL (NULs included). Otherwise Name is a
	// path.
	Abstract bool
	Name     string
	// Inet marks an AF_INET or AF_INET6 address: IP (an IPv4 address in
	// its v4-mapped form, ::ffff:a.b.c.d) and Port.
	Inet bool
	IP   [16]byte
	Port uint16
}

// ParseAddr decodes a sockaddr_un of len(b) bytes as bind, connect and
// sendto take it. autobind is set for an address of the family alone
// (bind then picks an abstract name). EINVAL for a short address or
// another family, as Linux.
func ParseAddr(b []byte) (a Addr, autobind bool, err error) {
	if len(b) < familyLen || len(b) > familyLen+sunPathMax {
		return Addr{}, false, unix.EINVAL
	}
	if binary.LittleEndian.Uint16(b) != unix.AF_UNIX {
		return Addr{}, false, unix.EINVAL
	}
	path := b[familyLen:]
	if len(path) == 0 {
		return Addr{}, true, nil
	}
	if path[0] == 0 {
		return Addr{Abstract: true, Name: string(path[1:])}, false, nil
	}
	if i := bytes.IndexByte(path, 0); i >= 0 {
		path = path[:i]
	}
	return Addr{Name: string(path)}, false, nil
}

// Marshal encodes a as the sockaddr_un getsockname and accept return, of
// the length Linux reports; a nil address is the family alone.
func (a *Addr) Marshal() []byte {
	b := []byte{unix.AF_UNIX, 0}
	switch {
	case a == nil:
	case a.Abstract:
		b = append(append(b, 0), a.Name...)
	default:
		b = append(append(b, a.Name...), 0)
	}
	return b
}
