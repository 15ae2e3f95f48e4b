package vfs

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A TTY is one pseudo-terminal: the pair of a master (/dev/ptmx) and a
// slave (/dev/pts/N), with the one line discipline between them, a subset
// of Linux's n_tty:
//
//   - Input: what the master writes goes through the input flags (ISTRIP,
//     INLCR, IGNCR, ICRNL, IXON's START and STOP characters, which are
//     swallowed) and the local flags: ISIG turns VINTR, VQUIT and VSUSP
//     into SIGINT, SIGQUIT and SIGTSTP for the foreground process group,
//     discarding queued input and output unless NOFLSH; ICANON edits a
//     line (VERASE, VWERASE, VKILL, VLNEXT, VEOF, VEOL, VEOL2) that the
//     slave reads once it ends; without ICANON the slave reads what is
//     there, VMIN and VTIME deciding when a read returns.
//   - Echo: ECHO, ECHOE, ECHOK, ECHOKE, ECHONL and ECHOCTL write to the
//     output queue what Linux writes.
//   - Output: what the slave writes goes through OPOST's ONLCR, OCRNL,
//     ONOCR and ONLRET and waits for the master to read it.
//
// One termios and one window size serve both sides, as on Linux, where
// the master's termios requests act on the slave. The TTY also holds the
// session whose controlling terminal it is and that session's foreground
// process group; the kernel (which knows processes) checks and sets them
// (TIOCSCTTY, TIOCSPGRP, job control) through the exported methods.
// Packet mode (TIOCPKT) reports flushes and changes of IXON's stop
// characters. Parity, baud rates, flow control stops and break are not
// modelled: their flags are kept and reported only.
//
// +stateify savable
type TTY struct {
	// index is N of /dev/pts/N; immutable.
	index uint32
	// pts is the devpts that lists the TTY; immutable.
	pts *devpts

	// mu protects the fields below. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// termios is struct termios as TCGETS copies it.
	termios [termiosSz]byte
	// winsize is struct winsize (TIOCGWINSZ).
	winsize [8]byte
	// locked is set until unlockpt (TIOCSPTLCK 0): the slave does not open.
	locked bool
	// in holds the input the slave may read; bounds are the offsets in
	// in where lines end in canonical mode (a line ended by VEOF has no
	// terminator, so an empty one reads as end of file). line is the
	// canonical line being edited.
	in     []byte
	bounds []int
	line   []byte
	// lnext is set when VLNEXT made the next input byte literal.
	lnext bool
	// out holds the output the master may read.
	out []byte
	// masters and slaves count the open Files of each side.
	masters int
	slaves  int
	// slaveClosed is set when the slave's last File closed (master reads
	// then fail with EIO once out is empty), cleared when one opens.
	slaveClosed bool
	// hungUp is set when the master's last File closed: slave reads see
	// end of file and writes EIO.
	hungUp bool
	// packet is set by TIOCPKT on the master: its reads then start with
	// a status byte, pktStatus (TIOCPKT_FLUSHREAD...) alone when set,
	// else TIOCPKT_DATA before the data.
	packet    bool
	pktStatus byte
	// sid is the session whose controlling terminal this is, 0 for none;
	// pgrp is its foreground process group.
	sid, pgrp int32
	// changed is closed (and replaced) when data, room or state changes.
	// Not saved: no one waits at save time.
	changed chan struct{} `state:"nosave"`
}

// Sizes of the TTY's queues (Linux's N_TTY_BUF_SIZE for input; the output
// queue stands for the master's receive buffer).
const (
	ttyInMax  = 4095
	ttyOutMax = 64 << 10
)

// Offsets in struct termios and its flag bits the line discipline reads.
const (
	tcIflag = 0
	tcOflag = 4
	tcCflag = 8
	tcLflag = 12
	tcCC    = 17
)

// Default termios of a new pty (Linux's tty_std_termios with the cflag
// of its pts driver).
var defaultTermios = func() [termiosSz]byte {
	var t [termiosSz]byte
	putLE32(t[tcIflag:], unix.ICRNL|unix.IXON)
	putLE32(t[tcOflag:], unix.OPOST|unix.ONLCR)
	putLE32(t[tcCflag:], unix.B38400|unix.CS8|unix.CREAD)
	putLE32(t[tcLflag:], unix.ISIG|unix.ICANON|unix.ECHO|unix.ECHOE|unix.ECHOK|unix.ECHOCTL|unix.ECHOKE|unix.IEXTEN)
	copy(t[tcCC:], "\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00")
	return t
}()

func newTTY(pts *devpts, index uint32) *TTY {
	return &TTY{index: index, pts: pts, termios: defaultTermios, locked: true, changed: make(chan struct{})}
}

// afterLoad makes the wait channel. Invoked by stateify.
func (t *TTY) afterLoad(context.Context) { t.changed = make(chan struct{}) }

func (t *TTY) iflag() uint32     { return le32(t.termios[tcIflag:]) }
func (t *TTY) oflag() uint32     { return le32(t.termios[tcOflag:]) }
func (t *TTY) lflag() uint32     { return le32(t.termios[tcLflag:]) }
func (t *TTY) cc(i int) byte     { return t.termios[tcCC+i] }
func (t *TTY) canon() bool       { return t.lflag()&unix.ICANON != 0 }
func (t *TTY) lon(f uint32) bool { return t.lflag()&f != 0 }

// flowControl is Linux's test for packet mode's DOSTOP: IXON with the
// usual ^S and ^Q.
func (t *TTY) flowControl() bool {
	return t.iflag()&unix.IXON != 0 && t.cc(unix.VSTOP) == 0x13 && t.cc(unix.VSTART) == 0x11
}

// notifyLocked wakes every waiter. Preconditions: t.mu is held.
func (t *TTY) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Index is N of the slave's name, /dev/pts/N.
func (t *TTY) Index() uint32 { return t.index }

// Session returns the session whose controlling terminal t is (0: none)
// and its foreground process group.
func (t *TTY) Session() (sid, pgrp int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sid, t.pgrp
}

// SetSession makes t the controlling terminal of session sid with
// foreground group pgrp (TIOCSCTTY, or a session leader's open), or of no
// session with sid 0.
func (t *TTY) SetSession(sid, pgrp int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sid, t.pgrp = sid, pgrp
}

// SetForeground makes pgrp the foreground process group (TIOCSPGRP).
func (t *TTY) SetForeground(pgrp int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pgrp = pgrp
}

// StopsBackgroundWrites reports TOSTOP: a background process that writes
// gets SIGTTOU.
func (t *TTY) StopsBackgroundWrites() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lon(unix.TOSTOP)
}

// HungUp reports whether the master has closed.
func (t *TTY) HungUp() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hungUp
}

// pending is a signal for a process group, sent once t.mu is released.
type pending struct {
	pgrp int32
	sig  unix.Signal
}

func (t *TTY) send(sigs []pending) {
	for _, s := range sigs {
		if s.pgrp > 0 {
			t.pts.signalGroup(s.pgrp, s.sig)
		}
	}
}

// inLen is the number of input bytes held. Preconditions: t.mu is held.
func (t *TTY) inLen() int { return len(t.in) + len(t.line) }

// echoLocked queues b as echo, with output processing. Preconditions:
// t.mu is held.
func (t *TTY) echoLocked(b ...byte) {
	if len(t.out) >= ttyOutMax {
		return // nobody reads the master: echo is dropped, as Linux
	}
	for _, c := range b {
		t.outputLocked(c)
	}
}

// echoCharLocked echoes input byte c as ECHOCTL shows it.
func (t *TTY) echoCharLocked(c byte) {
	if t.lon(unix.ECHOCTL) && (c < 32 && c != '\t' && c != '\n' || c == 0x7f) {
		t.echoLocked('^', c^0x40)
		return
	}
	t.echoLocked(c)
}

// outputLocked appends c to the output queue as OPOST processes it.
// Preconditions: t.mu is held.
func (t *TTY) outputLocked(c byte) {
	o := t.oflag()
	if o&unix.OPOST == 0 {
		t.out = append(t.out, c)
		return
	}
	switch {
	case c == '\n' && o&unix.ONLCR != 0:
		t.out = append(t.out, '\r', '\n')
	case c == '\r' && o&unix.ONOCR != 0 && (len(t.out) == 0 || t.out[len(t.out)-1] == '\n'):
	case c == '\r' && o&unix.OCRNL != 0:
		t.out = append(t.out, '\n')
	default:
		t.out = append(t.out, c)
	}
}

// endLineLocked ends the canonical line, with c appended unless eof.
func (t *TTY) endLineLocked(c byte, eof bool) {
	if !eof {
		t.line = append(t.line, c)
	}
	t.in = append(t.in, t.line...)
	t.line = t.line[:0]
	t.bounds = append(t.bounds, len(t.in))
}

// eraseLocked removes the last byte of the line, echoing the erasure.
func (t *TTY) eraseLocked() bool {
	if len(t.line) == 0 {
		return false
	}
	c := t.line[len(t.line)-1]
	t.line = t.line[:len(t.line)-1]
	if t.lon(unix.ECHO) {
		w := 1
		if t.lon(unix.ECHOCTL) && (c < 32 && c != '\t' || c == 0x7f) {
			w = 2
		}
		for range w {
			t.echoLocked('\b', ' ', '\b')
		}
	}
	return true
}

// receiveLocked runs input byte c through the line discipline and returns
// a signal to send, if any. It returns false when c does not fit (the
// caller waits for room). Preconditions: t.mu is held.
func (t *TTY) receiveLocked(c byte) (pending, bool) {
	in := t.iflag()
	if in&unix.ISTRIP != 0 {
		c &= 0x7f
	}
	if t.lnext {
		t.lnext = false
		return pending{}, t.literalLocked(c)
	}
	switch {
	case c == '\r' && in&unix.IGNCR != 0:
		return pending{}, true
	case c == '\r' && in&unix.ICRNL != 0:
		c = '\n'
	case c == '\n' && in&unix.INLCR != 0:
		c = '\r'
	}
	if in&unix.IXON != 0 && (c == t.cc(unix.VSTART) || c == t.cc(unix.VSTOP)) && c != 0 {
		return pending{}, true
	}
	if t.lon(unix.ISIG) && c != 0 {
		for _, s := range []struct {
			cc  int
			sig unix.Signal
		}{{unix.VINTR, unix.SIGINT}, {unix.VQUIT, unix.SIGQUIT}, {unix.VSUSP, unix.SIGTSTP}} {
			if c == t.cc(s.cc) {
				if !t.lon(unix.NOFLSH) {
					t.in, t.bounds, t.line, t.out = nil, nil, t.line[:0], nil
					t.pktLocked(unix.TIOCPKT_FLUSHREAD | unix.TIOCPKT_FLUSHWRITE)
				}
				if t.lon(unix.ECHO) {
					t.echoCharLocked(c)
				}
				return pending{t.pgrp, s.sig}, true
			}
		}
	}
	if t.lon(unix.IEXTEN) && c == t.cc(unix.VLNEXT) && c != 0 {
		t.lnext = true
		if t.lon(unix.ECHO) && t.lon(unix.ECHOCTL) {
			t.echoLocked('^', '\b')
		}
		return pending{}, true
	}
	if !t.canon() {
		return pending{}, t.literalLocked(c)
	}
	return pending{}, t.canonLocked(c)
}

// canonLocked edits the canonical line with c.
func (t *TTY) canonLocked(c byte) bool {
	switch {
	case c == 0:
	case c == t.cc(unix.VERASE):
		if !t.lon(unix.ECHOE) {
			if len(t.line) > 0 && t.lon(unix.ECHO) {
				t.echoCharLocked(c)
			}
			if len(t.line) > 0 {
				t.line = t.line[:len(t.line)-1]
			}
			return true
		}
		t.eraseLocked()
		return true
	case c == t.cc(unix.VWERASE) && t.lon(unix.IEXTEN):
		for len(t.line) > 0 && t.line[len(t.line)-1] == ' ' {
			t.eraseLocked()
		}
		for len(t.line) > 0 && t.line[len(t.line)-1] != ' ' {
			t.eraseLocked()
		}
		return true
	case c == t.cc(unix.VKILL):
		if t.lon(unix.ECHOKE) && t.lon(unix.ECHOE) {
			for t.eraseLocked() {
			}
			return true
		}
		t.line = t.line[:0]
		if t.lon(unix.ECHO) {
			t.echoCharLocked(c)
			if t.lon(unix.ECHOK) {
				t.echoLocked('\n')
			}
		}
		return true
	case c == t.cc(unix.VEOF):
		t.endLineLocked(c, true)
		return true
	case c == '\n' || c == t.cc(unix.VEOL) || c == t.cc(unix.VEOL2) && t.lon(unix.IEXTEN):
		if t.lon(unix.ECHO) || c == '\n' && t.lon(unix.ECHONL) {
			t.echoCharLocked(c)
		}
		t.endLineLocked(c, false)
		return true
	}
	return t.literalLocked(c)
}

// literalLocked adds c to the input as it is: to the canonical line or
// to what the slave reads.
func (t *TTY) literalLocked(c byte) bool {
	if t.inLen() >= ttyInMax {
		// A full canonical line drops what it cannot hold, as Linux;
		// raw input waits for the reader.
		return t.canon() && len(t.bounds) == 0
	}
	if t.lon(unix.ECHO) {
		t.echoCharLocked(c)
	}
	if t.canon() {
		t.line = append(t.line, c)
	} else {
		t.in = append(t.in, c)
	}
	return true
}

// masterWrite feeds src to the line discipline (a write on the master).
func (t *TTY) masterWrite(f *File, cancel <-chan struct{}, src []byte) (int, error) {
	done := 0
	for {
		t.mu.Lock()
		var sigs []pending
		for done < len(src) {
			s, ok := t.receiveLocked(src[done])
			if !ok {
				break
			}
			if s.sig != 0 {
				sigs = append(sigs, s)
			}
			done++
		}
		t.notifyLocked()
		if done == len(src) || f.nonblocking() {
			t.mu.Unlock()
			t.send(sigs)
			if done == 0 && len(src) > 0 {
				return 0, unix.EAGAIN
			}
			return done, nil
		}
		ch := t.changed
		t.mu.Unlock()
		t.send(sigs)
		if err := wait(cancel, ch); err != nil {
			return partial(done, err)
		}
	}
}

// pktLocked records status bits for a master in packet mode.
// Preconditions: t.mu is held.
func (t *TTY) pktLocked(bits byte) {
	if t.packet {
		t.pktStatus |= bits
	}
}

// masterRead takes output from the queue.
func (t *TTY) masterRead(f *File, cancel <-chan struct{}, dst []byte) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		t.mu.Lock()
		if t.packet && t.pktStatus != 0 {
			dst[0], t.pktStatus = t.pktStatus, 0
			t.mu.Unlock()
			return 1, nil
		}
		if t.packet && len(t.out) > 0 {
			dst[0] = unix.TIOCPKT_DATA
			n := copy(dst[1:], t.out)
			t.out = t.out[n:]
			t.notifyLocked()
			t.mu.Unlock()
			return n + 1, nil
		}
		if len(t.out) > 0 {
			n := copy(dst, t.out)
			t.out = t.out[n:]
			if len(t.out) == 0 {
				t.out = nil
			}
			t.notifyLocked()
			t.mu.Unlock()
			return n, nil
		}
		if t.slaveClosed {
			t.mu.Unlock()
			return 0, unix.EIO
		}
		ch := t.changed
		t.mu.Unlock()
		if f.nonblocking() {
			return 0, unix.EAGAIN
		}
		if err := wait(cancel, ch); err != nil {
			return 0, err
		}
	}
}

// slaveWrite queues src for the master, as OPOST processes it.
func (t *TTY) slaveWrite(f *File, cancel <-chan struct{}, src []byte) (int, error) {
	done := 0
	for {
		t.mu.Lock()
		if t.hungUp {
			t.mu.Unlock()
			return partial(done, unix.EIO)
		}
		for done < len(src) && len(t.out) < ttyOutMax {
			t.outputLocked(src[done])
			done++
		}
		t.notifyLocked()
		if done == len(src) || f.nonblocking() {
			t.mu.Unlock()
			if done == 0 && len(src) > 0 {
				return 0, unix.EAGAIN
			}
			return done, nil
		}
		ch := t.changed
		t.mu.Unlock()
		if err := wait(cancel, ch); err != nil {
			return partial(done, err)
		}
	}
}

// readableLocked returns how many bytes a read of the slave may take now
// (the rest of the first line in canonical mode) and whether one may
// return: a line ended, or min bytes are there.
func (t *TTY) readableLocked(min int) (int, bool) {
	if t.canon() {
		if len(t.bounds) == 0 {
			return 0, false
		}
		return t.bounds[0], true
	}
	return len(t.in), len(t.in) >= min
}

// takeLocked moves n input bytes to dst.
func (t *TTY) takeLocked(dst []byte, n int) int {
	n = copy(dst[:min(n, len(dst))], t.in)
	t.in = t.in[n:]
	if len(t.in) == 0 {
		t.in = nil
	}
	if t.canon() && len(t.bounds) > 0 {
		for i := range t.bounds {
			t.bounds[i] -= n
		}
		if t.bounds[0] == 0 {
			t.bounds = t.bounds[1:]
		}
	}
	t.notifyLocked()
	return n
}

// slaveRead reads a line in canonical mode, else what VMIN and VTIME
// ask for.
func (t *TTY) slaveRead(f *File, cancel <-chan struct{}, dst []byte) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	var timer <-chan time.Time
	timed := false
	for {
		t.mu.Lock()
		if t.hungUp {
			t.mu.Unlock()
			return 0, nil
		}
		vmin, vtime := int(t.cc(unix.VMIN)), int(t.cc(unix.VTIME))
		want := max(min(vmin, len(dst)), 1)
		if !t.canon() && vmin == 0 {
			want = 1
		}
		n, ok := t.readableLocked(want)
		switch {
		case ok:
			n = t.takeLocked(dst, n)
			t.mu.Unlock()
			return n, nil
		case !t.canon() && vmin == 0 && vtime == 0:
			t.mu.Unlock()
			return 0, nil
		case !t.canon() && n > 0 && vtime > 0 && timed:
			// VMIN > 0, VTIME > 0: the inter-byte timer ran out.
			n = t.takeLocked(dst, n)
			t.mu.Unlock()
			return n, nil
		}
		ch := t.changed
		t.mu.Unlock()
		if f.nonblocking() {
			return 0, unix.EAGAIN
		}
		if !t.canon() && vtime > 0 && (vmin == 0 || n > 0) && timer == nil {
			timer = time.After(time.Duration(vtime) * 100 * time.Millisecond)
		}
		select {
		case <-ch:
			if vmin > 0 && timer != nil {
				timer = nil // a new byte restarts the inter-byte timer
			}
		case <-timer:
			if vmin == 0 {
				return 0, nil
			}
			timed = true
		case <-cancel:
			return 0, ErrInterrupted
		}
	}
}

// ioctl serves the requests of either side that need no process: termios,
// window size, queue sizes, flushing and the pty's own.
func (t *TTY) ioctl(master bool, cmd uint32, arg []byte) (int, error) {
	t.mu.Lock()
	var sigs []pending
	defer func() {
		t.mu.Unlock()
		t.send(sigs)
	}()
	if !master && t.hungUp {
		return 0, unix.EIO
	}
	switch cmd {
	case unix.TCGETS:
		copy(arg, t.termios[:])
	case unix.TCSETS, unix.TCSETSW, unix.TCSETSF:
		if cmd == unix.TCSETSF {
			t.in, t.bounds, t.line = nil, nil, nil
		}
		wasCanon, wasFlow := t.canon(), t.flowControl()
		copy(t.termios[:], arg[:termiosSz])
		if flow := t.flowControl(); flow != wasFlow && t.packet {
			t.pktStatus &^= unix.TIOCPKT_DOSTOP | unix.TIOCPKT_NOSTOP
			t.pktStatus |= unix.TIOCPKT_NOSTOP
			if flow {
				t.pktStatus ^= unix.TIOCPKT_NOSTOP | unix.TIOCPKT_DOSTOP
			}
		}
		switch {
		case wasCanon && !t.canon():
			t.in, t.bounds, t.line = append(t.in, t.line...), nil, nil
		case !wasCanon && t.canon():
			t.line, t.in, t.bounds = append(t.in, t.line...), nil, nil
		}
		t.notifyLocked()
	case unix.TIOCGWINSZ:
		copy(arg, t.winsize[:])
	case unix.TIOCSWINSZ:
		if [8]byte(arg[:8]) != t.winsize {
			copy(t.winsize[:], arg[:8])
			sigs = append(sigs, pending{t.pgrp, unix.SIGWINCH})
		}
	case fionread:
		n := len(t.out)
		if !master {
			// Every byte of complete lines in canonical mode.
			n = len(t.in)
			if t.canon() {
				n = 0
				if len(t.bounds) > 0 {
					n = t.bounds[len(t.bounds)-1]
				}
			}
		}
		putLE32(arg, uint32(n))
	case tiocoutq:
		n := len(t.out)
		if master {
			n = t.inLen()
		}
		putLE32(arg, uint32(n))
	case unix.TCFLSH:
		q := le32(arg)
		if master {
			// The master's input queue is the slave's output.
			q = [3]uint32{unix.TCOFLUSH, unix.TCIFLUSH, unix.TCIOFLUSH}[min(q, 2)]
		}
		switch q {
		case unix.TCIFLUSH:
			t.in, t.bounds, t.line = nil, nil, nil
			t.pktLocked(unix.TIOCPKT_FLUSHREAD)
		case unix.TCOFLUSH:
			t.out = nil
			t.pktLocked(unix.TIOCPKT_FLUSHWRITE)
		case unix.TCIOFLUSH:
			t.in, t.bounds, t.line, t.out = nil, nil, nil, nil
			t.pktLocked(unix.TIOCPKT_FLUSHREAD | unix.TIOCPKT_FLUSHWRITE)
		default:
			return 0, unix.EINVAL
		}
		t.notifyLocked()
	case unix.TCXONC, unix.TCSBRK, unix.TCSBRKP:
		// No flow control stops and no line to break: done.
	case unix.TIOCPKT:
		if !master {
			return 0, unix.ENOTTY
		}
		on := le32(arg) != 0
		if on && !t.packet {
			t.pktStatus = 0
		}
		t.packet = on
	case unix.TIOCGPKT:
		if !master {
			return 0, unix.ENOTTY
		}
		v := uint32(0)
		if t.packet {
			v = 1
		}
		putLE32(arg, v)
	case unix.TIOCGPTN:
		if !master {
			return 0, unix.ENOTTY
		}
		putLE32(arg, t.index)
	case unix.TIOCSPTLCK:
		if !master {
			return 0, unix.ENOTTY
		}
		t.locked = le32(arg) != 0
	case unix.TIOCGPTLCK:
		if !master {
			return 0, unix.ENOTTY
		}
		v := uint32(0)
		if t.locked {
			v = 1
		}
		putLE32(arg, v)
	default:
		return 0, unix.ENOTTY
	}
	return 0, nil
}

// readiness is poll's view of one side.
func (t *TTY) readiness(master bool, mask uint32) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ev uint32
	if master {
		if len(t.out) > 0 {
			ev |= unix.POLLIN | pollRdNorm
		}
		if t.packet && t.pktStatus != 0 {
			ev |= unix.POLLIN | pollRdNorm | unix.POLLPRI
		}
		if t.slaveClosed {
			ev |= unix.POLLHUP
		}
		if t.inLen() < ttyInMax || t.canon() && len(t.bounds) == 0 {
			ev |= unix.POLLOUT | pollWrNorm
		}
		return ev & (mask | unix.POLLHUP | unix.POLLERR)
	}
	if t.hungUp {
		return (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm | unix.POLLHUP | unix.POLLERR) & (mask | unix.POLLHUP | unix.POLLERR)
	}
	want := 1
	if vmin := int(t.cc(unix.VMIN)); !t.canon() && t.cc(unix.VTIME) == 0 && vmin > 0 {
		want = vmin
	}
	if _, ok := t.readableLocked(want); ok && (t.canon() || len(t.in) > 0) {
		ev |= unix.POLLIN | pollRdNorm
	}
	if len(t.out) < ttyOutMax {
		ev |= unix.POLLOUT | pollWrNorm
	}
	return ev & (mask | unix.POLLHUP | unix.POLLERR)
}

func (t *TTY) watch() (<-chan struct{}, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed, func() {}
}

// closeSide drops one open File of a side. The master's last close hangs
// the terminal up: the slave's name goes away and the session leader of
// the session it controlled gets SIGHUP and SIGCONT.
func (t *TTY) closeSide(master bool) {
	t.mu.Lock()
	var sid int32
	hangup := false
	if master {
		t.masters--
		if t.masters == 0 {
			t.hungUp, hangup = true, true
			sid = t.sid
			t.sid, t.pgrp = 0, 0
		}
	} else {
		t.slaves--
		if t.slaves == 0 {
			t.slaveClosed = true
		}
	}
	t.notifyLocked()
	t.mu.Unlock()
	if hangup {
		t.pts.remove(t)
		if sid > 0 {
			t.pts.hangup(sid)
		}
	}
}

// openSlave returns a new File of the slave: EIO while locked or after a
// hangup.
func (t *TTY) openSlave(flags uint32, alias bool) (*File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locked || t.hungUp {
		return nil, unix.EIO
	}
	t.slaves++
	t.slaveClosed = false
	t.notifyLocked()
	return newFile(flags&^unix.O_NOCTTY|oLargefile, &ptySlave{tty: t, alias: alias}), nil
}

// OpenPeer opens the slave of the master's TTY (TIOCGPTPEER, or /dev/tty
// for a process whose controlling terminal t is, with alias set) with
// open(2) flags.
func (t *TTY) OpenPeer(flags uint32, alias bool) (*File, error) {
	return t.openSlave(flags, alias)
}

// ptyMaster is an open master of a TTY.
//
// +stateify savable
type ptyMaster struct {
	noImpl
	// tty is the terminal; immutable.
	tty *TTY
}

func (m *ptyMaster) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return m.tty.masterRead(f, cancel, dst)
}

func (m *ptyMaster) write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return m.tty.masterWrite(f, cancel, src)
}

func (m *ptyMaster) stat(*File) (Stat, error) { return devPtmx.stat(), nil }

func (m *ptyMaster) ioctl(_ *File, cmd uint32, arg []byte) (int, error) {
	return m.tty.ioctl(true, cmd, arg)
}

func (m *ptyMaster) readiness(_ *File, mask uint32) uint32 { return m.tty.readiness(true, mask) }

func (m *ptyMaster) watch(*File, uint32) (<-chan struct{}, func()) { return m.tty.watch() }

func (m *ptyMaster) guestPath() string { return "/dev/ptmx" }

func (m *ptyMaster) release() { m.tty.closeSide(true) }

// ptySlave is an open slave of a TTY.
//
// +stateify savable
type ptySlave struct {
	noImpl
	// tty is the terminal; immutable.
	tty *TTY
	// alias is set when it was opened as /dev/tty, which fstat shows;
	// immutable.
	alias bool
}

func (s *ptySlave) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return s.tty.slaveRead(f, cancel, dst)
}

func (s *ptySlave) write(f *File, cancel <-chan struct{}, src []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	return s.tty.slaveWrite(f, cancel, src)
}

func (s *ptySlave) stat(*File) (Stat, error) {
	if s.alias {
		return devTTY.stat(), nil
	}
	return s.tty.pts.slaveStat(s.tty.index), nil
}

func (s *ptySlave) ioctl(_ *File, cmd uint32, arg []byte) (int, error) {
	return s.tty.ioctl(false, cmd, arg)
}

func (s *ptySlave) readiness(_ *File, mask uint32) uint32 { return s.tty.readiness(false, mask) }

func (s *ptySlave) watch(*File, uint32) (<-chan struct{}, func()) { return s.tty.watch() }

func (s *ptySlave) guestPath() string {
	if s.alias {
		return "/dev/tty"
	}
	return ptsName(s.tty.index)
}

func (s *ptySlave) release() { s.tty.closeSide(false) }

// TTY returns the terminal of a pty master or slave File, and whether it
// is the master; nil for other files.
func (f *File) TTY() (*TTY, bool) {
	switch impl := f.impl.(type) {
	case *ptyMaster:
		return impl.tty, true
	case *ptySlave:
		return impl.tty, false
	}
	return nil, false
}

// IsControllingTTYAlias reports whether f was opened by the name /dev/tty,
// which the kernel replaces by the caller's controlling terminal
// (TTY.OpenPeer) or fails with ENXIO.
func (f *File) IsControllingTTYAlias() bool {
	d, ok := f.impl.(*device)
	return ok && d.kind == devTTY
}
