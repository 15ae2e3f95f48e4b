package socket

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Options of the sandbox's network at IPPROTO_TCP, IPPROTO_IP and
// IPPROTO_IPV6, and the SOL_SOCKET ones only its sockets have. Most mean
// nothing on a loopback that never loses, reorders or delays a byte: they
// are kept and reported as Linux does (TCP_NODELAY, TCP_CORK, the
// keepalive timers, IP_TOS...). IPV6_V6ONLY and SO_LINGER change what the
// network does.

// intOpt describes an integer option: its default, the range a set
// accepts (EINVAL outside it), whether it is a boolean (stored as 0 or
// 1), and which sockets have it.
type intOpt struct {
	def      int32
	min, max int32
	boolean  bool
	// tcpOnly and v6Only limit the option to TCP and to AF_INET6 sockets.
	tcpOnly, v6Only bool
}

// optKey is the key of an option in inetState.opts and inetOpts.
func optKey(level, name int) int32 { return int32(level)<<16 | int32(name) }

const (
	tcpMaxsegDefault = 536
	tcpLinger2       = 8
	tcpQuickack      = 12
	tcpCongestion    = 13
	tcpUserTimeout   = 18
	tcpNotsentLowat  = 25
	ipRecverr        = 11
	ipv6Recverr      = 25
)

var boolOpt = intOpt{min: -1 << 31, max: 1<<31 - 1, boolean: true}

func anyInt(def int32) intOpt { return intOpt{def: def, min: -1 << 31, max: 1<<31 - 1} }

func tcpBool() intOpt { o := boolOpt; o.tcpOnly = true; return o }

func tcpInt(def, lo, hi int32) intOpt { return intOpt{def: def, min: lo, max: hi, tcpOnly: true} }

func v6Bool() intOpt { o := boolOpt; o.v6Only = true; return o }

func v6Int(def, lo, hi int32) intOpt { return intOpt{def: def, min: lo, max: hi, v6Only: true} }

// inetOpts are the integer options of the network's sockets besides
// Unix's SOL_SOCKET ones.
var inetOpts = map[int32]intOpt{
	optKey(unix.SOL_SOCKET, unix.SO_PRIORITY): {def: 0, min: 0, max: 6},
	optKey(unix.SOL_SOCKET, unix.SO_RCVLOWAT): {def: 1, min: -1 << 31, max: 1<<31 - 1},

	optKey(unix.IPPROTO_TCP, unix.TCP_NODELAY):      tcpBool(),
	optKey(unix.IPPROTO_TCP, unix.TCP_CORK):         tcpBool(),
	optKey(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE):     tcpInt(7200, 1, 32767),
	optKey(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL):    tcpInt(75, 1, 32767),
	optKey(unix.IPPROTO_TCP, unix.TCP_KEEPCNT):      tcpInt(9, 1, 127),
	optKey(unix.IPPROTO_TCP, unix.TCP_SYNCNT):       tcpInt(6, 1, 127),
	optKey(unix.IPPROTO_TCP, tcpLinger2):            tcpInt(60, -1<<31, 1<<31-1),
	optKey(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT): tcpInt(0, -1<<31, 1<<31-1),
	optKey(unix.IPPROTO_TCP, tcpQuickack):           tcpInt(1, -1<<31, 1<<31-1),
	optKey(unix.IPPROTO_TCP, tcpUserTimeout):        tcpInt(0, 0, 1<<31-1),
	optKey(unix.IPPROTO_TCP, unix.TCP_FASTOPEN):     tcpInt(0, 0, 1<<31-1),
	optKey(unix.IPPROTO_TCP, tcpNotsentLowat):       tcpInt(-1, -1<<31, 1<<31-1),
	optKey(unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP): tcpInt(0, 0, 1<<31-1),

	optKey(unix.IPPROTO_IP, unix.IP_TOS):            anyInt(0),
	optKey(unix.IPPROTO_IP, unix.IP_TTL):            {def: 64, min: -1, max: 255},
	optKey(unix.IPPROTO_IP, unix.IP_MTU_DISCOVER):   {def: unix.IP_PMTUDISC_WANT, min: 0, max: unix.IP_PMTUDISC_OMIT},
	optKey(unix.IPPROTO_IP, ipRecverr):              boolOpt,
	optKey(unix.IPPROTO_IP, unix.IP_PKTINFO):        boolOpt,
	optKey(unix.IPPROTO_IP, unix.IP_RECVTOS):        boolOpt,
	optKey(unix.IPPROTO_IP, unix.IP_RECVTTL):        boolOpt,
	optKey(unix.IPPROTO_IP, unix.IP_FREEBIND):       boolOpt,
	optKey(unix.IPPROTO_IP, unix.IP_MULTICAST_TTL):  {def: 1, min: -1, max: 255},
	optKey(unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP): {def: 1, min: -1 << 31, max: 1<<31 - 1, boolean: true},

	optKey(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY):         v6Bool(),
	optKey(unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS):   v6Int(64, -1, 255),
	optKey(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS): v6Int(1, -1, 255),
	optKey(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP): func() intOpt { o := v6Bool(); o.def = 1; return o }(),
	optKey(unix.IPPROTO_IPV6, unix.IPV6_TCLASS):         v6Int(0, -1, 255),
	optKey(unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO):    v6Bool(),
	optKey(unix.IPPROTO_IPV6, ipv6Recverr):              v6Bool(),
}

// lookupOpt returns the integer option at level and name s has.
func (s *Socket) lookupOpt(level, name int) (intOpt, bool) {
	o, ok := inetOpts[optKey(level, name)]
	if !ok || (o.tcpOnly && s.typ != Stream) || (o.v6Only && s.family != unix.AF_INET6) {
		return intOpt{}, false
	}
	return o, true
}

// getInetSocketOptionLocked answers the SOL_SOCKET options whose value
// for a socket of the network differs from a Unix socket's, or that only
// it has; ok is false for the others. Preconditions: mu is held.
func (s *Socket) getInetSocketOptionLocked(name int) ([]byte, bool) {
	if s.inet == nil {
		return nil, false
	}
	switch name {
	case unix.SO_PROTOCOL:
		if s.typ == Stream {
			return int32Bytes(unix.IPPROTO_TCP), true
		}
		return int32Bytes(unix.IPPROTO_UDP), true
	case unix.SO_LINGER:
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(b2i(s.inet.linger)))
		binary.LittleEndian.PutUint32(b[4:], uint32(s.inet.lingerSecs))
		return b, true
	}
	if o, ok := s.lookupOpt(unix.SOL_SOCKET, name); ok {
		return int32Bytes(s.intOptLocked(unix.SOL_SOCKET, name, o)), true
	}
	return nil, false
}

func int32Bytes(v int32) []byte {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(v))
	return b
}

// intOptLocked returns an integer option's value. Preconditions: mu is
// held.
func (s *Socket) intOptLocked(level, name int, o intOpt) int32 {
	if level == unix.IPPROTO_IPV6 && name == unix.IPV6_V6ONLY {
		return int32(b2i(s.inet.v6only))
	}
	if v, ok := s.inet.opts[optKey(level, name)]; ok {
		return v
	}
	return o.def
}

// getInetOption is GetOption at IPPROTO_TCP, IPPROTO_IP and IPPROTO_IPV6.
func (s *Socket) getInetOption(level, name int) ([]byte, error) {
	mu.Lock()
	defer mu.Unlock()
	if level == unix.IPPROTO_TCP && s.typ == Stream {
		switch name {
		case unix.TCP_INFO:
			return s.tcpInfoLocked(), nil
		case unix.TCP_MAXSEG:
			return int32Bytes(s.mssLocked()), nil
		case tcpCongestion:
			b := make([]byte, 16)
			copy(b, "cubic")
			return b, nil
		}
	}
	o, ok := s.lookupOpt(level, name)
	if !ok {
		if s.family == unix.AF_INET && !s.knownLevel(level) {
			return nil, unix.EOPNOTSUPP // ip_getsockopt's answer
		}
		return nil, unix.ENOPROTOOPT
	}
	return int32Bytes(s.intOptLocked(level, name, o)), nil
}

// mssLocked is TCP_MAXSEG: Linux's default before a connection, the
// loopback's (its 64 KiB MTU less the headers) on one. Preconditions: mu
// is held.
func (s *Socket) mssLocked() int32 {
	if v, ok := s.inet.opts[optKey(unix.IPPROTO_TCP, unix.TCP_MAXSEG)]; ok && s.state != stateConnected {
		return v
	}
	switch {
	case s.state != stateConnected:
		return tcpMaxsegDefault
	case s.family == unix.AF_INET6:
		return 65476
	}
	return 65483
}

// TCP states as tcp_info reports them.
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpListen      = 10
	tcpInfoSize    = 232
)

// tcpInfoLocked is struct tcp_info: the state, the loopback's segment
// sizes and window, and an RTO of 200 ms (Linux's minimum); counters
// that a loopback without loss keeps at zero stay zero. Preconditions: mu
// is held.
func (s *Socket) tcpInfoLocked() []byte {
	b := make([]byte, tcpInfoSize)
	state := byte(tcpClose)
	switch {
	case s.state == stateListening:
		state = tcpListen
	case s.state == stateConnected && s.shutdown&rcvShutdown != 0:
		state = tcpCloseWait
	case s.state == stateConnected:
		state = tcpEstablished
	}
	b[0] = state
	le := binary.LittleEndian
	if s.state == stateConnected {
		mss := uint32(s.mssLocked())
		le.PutUint32(b[8:], 200000)      // tcpi_rto (us)
		le.PutUint32(b[12:], 40000)      // tcpi_ato
		le.PutUint32(b[16:], mss)        // tcpi_snd_mss
		le.PutUint32(b[20:], mss)        // tcpi_rcv_mss
		le.PutUint32(b[60:], 65535)      // tcpi_pmtu
		le.PutUint32(b[64:], tcpRcvbuf)  // tcpi_rcv_ssthresh
		le.PutUint32(b[68:], 50)         // tcpi_rtt (us)
		le.PutUint32(b[72:], 25)         // tcpi_rttvar
		le.PutUint32(b[76:], 0x7fffffff) // tcpi_snd_ssthresh
		le.PutUint32(b[80:], 10)         // tcpi_snd_cwnd
		le.PutUint32(b[84:], mss)        // tcpi_advmss
		le.PutUint32(b[88:], 3)          // tcpi_reordering
	}
	return b
}

// setInetOption is SetOption at IPPROTO_TCP, IPPROTO_IP and IPPROTO_IPV6.
func (s *Socket) setInetOption(level, name int, val []byte) error {
	if level == unix.IPPROTO_TCP && s.typ == Stream {
		switch name {
		case tcpCongestion:
			return setCongestion(val)
		case unix.TCP_MAXSEG:
			return s.setMaxseg(val)
		}
	}
	o, ok := s.lookupOpt(level, name)
	if !ok {
		return unix.ENOPROTOOPT
	}
	if len(val) < 4 {
		return unix.EINVAL
	}
	v := int32(binary.LittleEndian.Uint32(val))
	if v < o.min || v > o.max {
		return unix.EINVAL
	}
	if o.boolean {
		v = int32(b2i(v != 0))
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case level == unix.IPPROTO_IPV6 && name == unix.IPV6_V6ONLY:
		if s.addr != nil {
			return unix.EINVAL
		}
		s.inet.v6only = v != 0
		return nil
	case v == -1 && (name == unix.IP_TTL || name == unix.IP_MULTICAST_TTL) && level == unix.IPPROTO_IP,
		v == -1 && level == unix.IPPROTO_IPV6:
		v = o.def // -1 asks for the default
	case level == unix.IPPROTO_IP && name == unix.IP_TOS:
		v &= 0xff
		if s.typ == Stream {
			v &^= 3 // TCP keeps the ECN bits to itself
		}
	case level == unix.IPPROTO_IP && name == unix.IP_TTL && v == 0:
		return unix.EINVAL
	}
	if s.inet.opts == nil {
		s.inet.opts = map[int32]int32{}
	}
	s.inet.opts[optKey(level, name)] = v
	return nil
}

// setCongestion accepts the congestion controls Linux builds in.
func setCongestion(val []byte) error {
	name := string(val)
	for i := range len(name) {
		if name[i] == 0 {
			name = name[:i]
			break
		}
	}
	switch name {
	case "cubic", "reno":
		return nil
	}
	return unix.ENOENT
}

// setMaxseg is TCP_MAXSEG: 0 or 88 to 32767, as Linux.
func (s *Socket) setMaxseg(val []byte) error {
	if len(val) < 4 {
		return unix.EINVAL
	}
	v := int32(binary.LittleEndian.Uint32(val))
	if v != 0 && (v < 88 || v > 32767) {
		return unix.EINVAL
	}
	mu.Lock()
	defer mu.Unlock()
	if s.inet.opts == nil {
		s.inet.opts = map[int32]int32{}
	}
	s.inet.opts[optKey(unix.IPPROTO_TCP, unix.TCP_MAXSEG)] = v
	return nil
}

// setLinger is SO_LINGER: struct linger {l_onoff, l_linger}. A socket of
// the network closed with l_onoff set and l_linger 0 resets its
// connection; with a time it closes at once (everything queued at the
// peer is already delivered).
func (s *Socket) setLinger(val []byte) error {
	if len(val) < 8 {
		return unix.EINVAL
	}
	mu.Lock()
	defer mu.Unlock()
	s.inet.linger = binary.LittleEndian.Uint32(val) != 0
	s.inet.lingerSecs = max(int32(binary.LittleEndian.Uint32(val[4:])), 0)
	return nil
}

// setInetSocketOption stores a SOL_SOCKET integer option only the
// network's sockets have (lookupOpt knows it): EINVAL for a short value or
// one out of its range.
func (s *Socket) setInetSocketOption(name int, o intOpt, val []byte) error {
	if len(val) < 4 {
		return unix.EINVAL
	}
	v := int32(binary.LittleEndian.Uint32(val))
	if v < o.min || v > o.max {
		return unix.EINVAL
	}
	mu.Lock()
	defer mu.Unlock()
	if s.inet.opts == nil {
		s.inet.opts = map[int32]int32{}
	}
	s.inet.opts[optKey(unix.SOL_SOCKET, name)] = v
	return nil
}

// knownLevel reports whether s has options at level.
func (s *Socket) knownLevel(level int) bool {
	switch level {
	case unix.IPPROTO_IP:
		return true
	case unix.IPPROTO_TCP:
		return s.typ == Stream
	case unix.IPPROTO_UDP:
		return s.typ == Dgram
	case unix.IPPROTO_IPV6:
		return s.family == unix.AF_INET6
	}
	return false
}
