package vfs

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// recordingJC records the signals terminals send.
type recordingJC struct {
	sigs    []unix.Signal
	hangups []int32
}

func (r *recordingJC) SignalGroup(_ int32, sig unix.Signal) { r.sigs = append(r.sigs, sig) }
func (r *recordingJC) Hangup(sid int32)                     { r.hangups = append(r.hangups, sid) }

// openPair opens /dev/ptmx, unlocks it and opens its slave by name.
func openPair(t *testing.T, fs *FS) (m, s *File) {
	t.Helper()
	m, err := fs.OpenAt(nil, "/dev/ptmx", unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx = %v", err)
	}
	arg := make([]byte, 8)
	if _, err := m.Ioctl(unix.TIOCSPTLCK, arg); err != nil {
		t.Fatalf("TIOCSPTLCK = %v", err)
	}
	if _, err := m.Ioctl(unix.TIOCGPTN, arg); err != nil {
		t.Fatalf("TIOCGPTN = %v", err)
	}
	s, err = fs.OpenAt(nil, ptsName(le32(arg)), unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open %s = %v", ptsName(le32(arg)), err)
	}
	return m, s
}

// ttyRead reads what f holds now ("" when it would block).
func ttyRead(f *File) string {
	buf := make([]byte, 256)
	n, err := f.Read(nil, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// TestLineDiscipline types at the master and checks what the slave reads,
// what the master sees echoed and which signals go to the foreground
// group, with the default termios (canonical, echo, ISIG, ICRNL, ONLCR).
func TestLineDiscipline(t *testing.T) {
	cases := []struct {
		name     string
		typed    string
		read     string
		echo     string
		sigs     []unix.Signal
		setLflag uint32 // if not 0, the local flags before typing
	}{
		{name: "line with CR", typed: "ab\r", read: "ab\n", echo: "ab\r\n"},
		{name: "partial line", typed: "ab", read: "", echo: "ab"},
		{name: "erase", typed: "abc\x7fd\n", read: "abd\n", echo: "abc\b \bd\r\n"},
		{name: "kill", typed: "xy\x15ok\n", read: "ok\n", echo: "xy\b \b\b \bok\r\n"},
		{name: "word erase", typed: "one two\x17three\n", read: "one three\n", echo: "one two\b \b\b \b\b \bthree\r\n"},
		{name: "eof ends a line", typed: "ab\x04", read: "ab", echo: "ab"},
		{name: "literal next", typed: "a\x16\x03\n", read: "a\x03\n", echo: "a^\b^C\r\n"},
		{name: "interrupt", typed: "abc\x03", read: "", echo: "^C", sigs: []unix.Signal{unix.SIGINT}},
		// Each signal character flushes the output, the echo before it too.
		{name: "suspend and quit", typed: "\x1a\x1c", read: "", echo: "^\\", sigs: []unix.Signal{unix.SIGTSTP, unix.SIGQUIT}},
		{name: "raw", typed: "a\x7f\r", read: "a\x7f\n", echo: "", setLflag: unix.ISIG},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fs := testTree(t)
			jc := &recordingJC{}
			fs.root.mountTable().SetJobControl(jc)
			m, s := openPair(t, fs)
			defer m.DecRef()
			defer s.DecRef()
			tty, _ := s.TTY()
			tty.SetSession(1, 1)
			if tc.setLflag != 0 {
				tios := make([]byte, termiosSz)
				s.Ioctl(unix.TCGETS, tios)
				putLE32(tios[tcLflag:], tc.setLflag)
				tios[tcCC+unix.VMIN] = 0
				if _, err := s.Ioctl(unix.TCSETS, tios); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := m.Write(nil, []byte(tc.typed)); n != len(tc.typed) || err != nil {
				t.Fatalf("master write = %d, %v", n, err)
			}
			if got := ttyRead(s); got != tc.read {
				t.Errorf("slave read = %q, want %q", got, tc.read)
			}
			if got := ttyRead(m); got != tc.echo {
				t.Errorf("echo = %q, want %q", got, tc.echo)
			}
			if len(jc.sigs) != len(tc.sigs) || (len(tc.sigs) > 0 && jc.sigs[0] != tc.sigs[0]) {
				t.Errorf("signals = %v, want %v", jc.sigs, tc.sigs)
			}
		})
	}
}

// TestPtyHangup: the master's last close hangs the slave up (reads end,
// writes EIO, the name goes) and tells the session.
func TestPtyHangup(t *testing.T) {
	_, fs := testTree(t)
	jc := &recordingJC{}
	fs.root.mountTable().SetJobControl(jc)
	m, s := openPair(t, fs)
	defer s.DecRef()
	tty, master := s.TTY()
	if tty == nil || master {
		t.Fatalf("TTY() of the slave = %v, %v", tty, master)
	}
	tty.SetSession(7, 7)
	m.DecRef()
	if n, err := s.Read(nil, make([]byte, 4)); n != 0 || err != nil {
		t.Errorf("slave read after hangup = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.Write(nil, []byte("x")); err != unix.EIO {
		t.Errorf("slave write after hangup = %v, want EIO", err)
	}
	if _, err := fs.Fstatat(nil, ptsName(tty.Index()), 0); err != unix.ENOENT {
		t.Errorf("stat of the slave's name after hangup = %v, want ENOENT", err)
	}
	if len(jc.hangups) != 1 || jc.hangups[0] != 7 {
		t.Errorf("hangups = %v, want [7]", jc.hangups)
	}
}

// TestPtyStateify saves a pair with data queued both ways, changed
// termios, a window size and a session, and checks all of it after the
// load.
func TestPtyStateify(t *testing.T) {
	_, fs := testTree(t)
	m, s := openPair(t, fs)
	tbl := NewFDTable()
	for _, f := range []*File{m, s} {
		if _, err := tbl.NewFD(0, f, FDFlags{}); err != nil {
			t.Fatal(err)
		}
		f.DecRef()
	}
	tios := make([]byte, termiosSz)
	m.Ioctl(unix.TCGETS, tios)
	putLE32(tios[tcLflag:], le32(tios[tcLflag:])&^unix.ECHO)
	m.Ioctl(unix.TCSETS, tios)
	m.Ioctl(unix.TIOCSWINSZ, []byte{24, 0, 80, 0, 0, 0, 0, 0})
	m.Write(nil, []byte("line\nhal"))
	s.Write(nil, []byte("out\n"))
	tty, _ := s.TTY()
	tty.SetSession(3, 4)

	out := roundTrip(t, context.Background(), tbl)
	defer out.Close()
	m2, s2 := getFD(t, out, 0), getFD(t, out, 1)
	if got := ttyRead(s2); got != "line\n" {
		t.Errorf("restored slave reads %q, want %q", got, "line\n")
	}
	if got := ttyRead(m2); got != "out\r\n" {
		t.Errorf("restored master reads %q, want %q", got, "out\r\n")
	}
	m2.Write(nil, []byte("f\n"))
	if got := ttyRead(s2); got != "half\n" {
		t.Errorf("restored slave then reads %q, want %q", got, "half\n")
	}
	ws := make([]byte, 8)
	s2.Ioctl(unix.TIOCGWINSZ, ws)
	s2.Ioctl(unix.TCGETS, tios)
	tty2, _ := s2.TTY()
	sid, pgrp := tty2.Session()
	if ws[0] != 24 || ws[2] != 80 || le32(tios[tcLflag:])&unix.ECHO != 0 || sid != 3 || pgrp != 4 {
		t.Errorf("restored window %v, lflag %#x, session %d/%d; want 24x80, no ECHO, 3/4", ws[:4], le32(tios[tcLflag:]), sid, pgrp)
	}
}
