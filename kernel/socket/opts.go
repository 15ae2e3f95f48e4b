package socket

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// GetOption implements getsockopt(2): the option's value as Linux
// encodes it (the caller copies out as much as the application's length
// allows). ENOPROTOOPT for an option it does not know; a Unix socket has
// options at SOL_SOCKET only (EOPNOTSUPP at other levels), a socket of
// the network also at its protocols' levels (inet_opts.go).
func (s *Socket) GetOption(level, name int) ([]byte, error) {
	if s.host != nil {
		return s.getHostOption(level, name)
	}
	if b, ok := s.getNetlinkOption(level, name); ok && s.nl != nil {
		return b, nil
	}
	if level != unix.SOL_SOCKET {
		if s.inet == nil {
			return nil, unix.EOPNOTSUPP
		}
		return s.getInetOption(level, name)
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := s.getInetSocketOptionLocked(name); ok {
		return b, nil
	}
	var v int
	switch name {
	case unix.SO_TYPE:
		v = s.typ
	case unix.SO_DOMAIN:
		v = s.Family()
	case unix.SO_PROTOCOL:
		v = 0
	case unix.SO_ERROR:
		v = int(s.err)
		s.err = 0
	case unix.SO_SNDBUF:
		v = s.sndbuf
	case unix.SO_RCVBUF:
		v = s.rcvbuf
	case unix.SO_PASSCRED:
		v = b2i(s.passcred)
	case unix.SO_ACCEPTCONN:
		v = b2i(s.state == stateListening)
	case soRcvtimeo, soRcvtimeoNew:
		return timeval(s.rcvtimeo), nil
	case soSndtimeo, soSndtimeoNew:
		return timeval(s.sndtimeo), nil
	case unix.SO_PEERCRED:
		c := Cred{PID: 0, UID: ^uint32(0), GID: ^uint32(0)}
		if s.hasPeerCred {
			c = s.peerCred
		}
		b := make([]byte, 12)
		binary.LittleEndian.PutUint32(b, uint32(c.PID))
		binary.LittleEndian.PutUint32(b[4:], c.UID)
		binary.LittleEndian.PutUint32(b[8:], c.GID)
		return b, nil
	default:
		if !keptOptions[name] {
			return nil, unix.ENOPROTOOPT
		}
		v = int(s.kept[int32(name)])
	}
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(int32(v)))
	return b, nil
}

// SO_RCVTIMEO and SO_SNDTIMEO, in their old and new numbers (the same
// struct timeval on x86-64).
const (
	soRcvtimeo    = 20
	soSndtimeo    = 21
	soRcvtimeoNew = 66
	soSndtimeoNew = 67
	timevalSize   = 16
)

// timeval encodes a timeout as getsockopt returns it: {0, 0} for none.
func timeval(ns int64) []byte {
	b := make([]byte, timevalSize)
	if ns > 0 {
		binary.LittleEndian.PutUint64(b, uint64(ns/1e9))
		binary.LittleEndian.PutUint64(b[8:], uint64(ns%1e9/1e3))
	}
	return b
}

// parseTimeout decodes a struct timeval as Linux's sock_set_timeout:
// EINVAL if short, EDOM for microseconds out of range; {0, 0} is no
// timeout, a negative time one that never waits (-1).
func parseTimeout(v []byte) (int64, error) {
	if len(v) < timevalSize {
		return 0, unix.EINVAL
	}
	sec, usec := int64(binary.LittleEndian.Uint64(v)), int64(binary.LittleEndian.Uint64(v[8:]))
	switch {
	case usec < 0 || usec >= 1e6:
		return 0, unix.EDOM
	case sec < 0:
		return -1, nil
	case sec == 0 && usec == 0:
		return 0, nil
	}
	return min(sec, 1<<32)*1e9 + usec*1e3, nil
}

// keptOptions are boolean options that mean nothing for a Unix socket:
// Linux keeps and reports them, and so does Socket.
var keptOptions = map[int]bool{
	unix.SO_REUSEADDR: true, unix.SO_REUSEPORT: true, unix.SO_KEEPALIVE: true,
	unix.SO_BROADCAST: true, unix.SO_DONTROUTE: true, unix.SO_OOBINLINE: true,
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SetOption implements setsockopt(2): at SOL_SOCKET for the options
// GetOption knows that may be set: SO_SNDBUF and SO_RCVBUF (doubled and
// clamped as Linux at its default limits), SO_PASSCRED, SO_RCVTIMEO and
// SO_SNDTIMEO, and keptOptions (and SO_LINGER for a socket of the
// network), at other levels as GetOption. EINVAL for a value shorter than
// an int; ENOPROTOOPT for options it does not know.
func (s *Socket) SetOption(level, name int, val []byte) error {
	if s.host != nil {
		return s.setHostOption(level, name, val)
	}
	if s.nl != nil && level == solNetlink {
		return nil // NETLINK_EXT_ACK and the like: nothing to change
	}
	if level != unix.SOL_SOCKET {
		if s.inet == nil {
			return unix.EOPNOTSUPP
		}
		return s.setInetOption(level, name, val)
	}
	if s.inet != nil && name == unix.SO_LINGER {
		return s.setLinger(val)
	}
	if o, ok := s.lookupOpt(unix.SOL_SOCKET, name); ok && s.inet != nil {
		return s.setInetSocketOption(name, o, val)
	}
	switch name {
	case soRcvtimeo, soSndtimeo, soRcvtimeoNew, soSndtimeoNew:
		return s.setTimeoutOption(name, val)
	case unix.SO_SNDBUF, unix.SO_RCVBUF, unix.SO_PASSCRED:
	default:
		if !keptOptions[name] {
			return unix.ENOPROTOOPT
		}
	}
	if len(val) < 4 {
		return unix.EINVAL
	}
	v := int32(binary.LittleEndian.Uint32(val))
	mu.Lock()
	defer mu.Unlock()
	switch name {
	case unix.SO_SNDBUF:
		s.sndbuf = bufSize(v, minSndbuf)
	case unix.SO_RCVBUF:
		s.rcvbuf = bufSize(v, minRcvbuf)
	case unix.SO_PASSCRED:
		s.passcred = v != 0
	default:
		if s.kept == nil {
			s.kept = map[int32]int32{}
		}
		s.kept[int32(name)] = int32(b2i(v != 0))
	}
	s.notifyLocked()
	return nil
}

// bufSize is Linux's rule for SO_SNDBUF and SO_RCVBUF: the value, at most
// the limit, doubled, at least lo.
func bufSize(v int32, lo int) int {
	n := int(min(uint32(v), maxBuf/2))
	return max(2*n, lo)
}

// boolOptLocked reports whether the kept boolean option name is set.
// Preconditions: mu is held.
func (s *Socket) boolOptLocked(name int) bool { return s.kept[int32(name)] != 0 }

// setTimeoutOption sets SO_RCVTIMEO or SO_SNDTIMEO (old or new layout)
// from val.
func (s *Socket) setTimeoutOption(name int, val []byte) error {
	t, err := parseTimeout(val)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if name == soRcvtimeo || name == soRcvtimeoNew {
		s.rcvtimeo = t
	} else {
		s.sndtimeo = t
	}
	return nil
}
