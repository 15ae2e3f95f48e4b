package vfs

import (
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
)

func TestStdioPipe(t *testing.T) {
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	defer hw.Close()
	in, err := NewStdio(0, hr)
	if err != nil {
		t.Fatal(err)
	}
	defer in.DecRef()
	out, err := NewStdio(1, hw)
	if err != nil {
		t.Fatal(err)
	}
	defer out.DecRef()

	t.Run("write reaches host and read returns it", func(t *testing.T) {
		if n, err := out.Write(nil, []byte("to host")); n != 7 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		buf := make([]byte, 64)
		n, err := in.Read(nil, buf)
		if err != nil || string(buf[:n]) != "to host" {
			t.Errorf("Read = %q, %v; want \"to host\"", buf[:n], err)
		}
	})
	t.Run("blocked read is cancelled", func(t *testing.T) {
		cancel := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := in.Read(cancel, make([]byte, 8))
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Read of an empty host pipe returned %v before cancel", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(cancel)
		if err := <-done; err != ErrInterrupted {
			t.Errorf("cancelled Read = %v, want ErrInterrupted", err)
		}
		// The stream still works after an interruption.
		hw.Write([]byte("after"))
		buf := make([]byte, 8)
		if n, err := in.Read(nil, buf); err != nil || string(buf[:n]) != "after" {
			t.Errorf("Read after cancel = %q, %v; want \"after\"", buf[:n], err)
		}
	})
	t.Run("nonblocking read", func(t *testing.T) {
		in.SetStatusFlags(unix.O_NONBLOCK)
		defer in.SetStatusFlags(0)
		if _, err := in.Read(nil, make([]byte, 8)); err != unix.EAGAIN {
			t.Errorf("Read(O_NONBLOCK, empty) = %v, want EAGAIN", err)
		}
	})
	t.Run("readiness and watch", func(t *testing.T) {
		if got := in.Readiness(unix.POLLIN); got != 0 {
			t.Errorf("Readiness(POLLIN) of empty stdin = %#x, want 0", got)
		}
		ch, stop := in.Watch(unix.POLLIN)
		hw.Write([]byte("z"))
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not fire after the host wrote")
		}
		stop()
		if got := in.Readiness(unix.POLLIN); got&unix.POLLIN == 0 {
			t.Errorf("Readiness(POLLIN) = %#x, want POLLIN", got)
		}
		in.Read(nil, make([]byte, 1))
	})
	t.Run("not a terminal", func(t *testing.T) {
		for _, cmd := range []uint32{unix.TCGETS, unix.TIOCGWINSZ, unix.TIOCGPGRP} {
			if _, err := out.Ioctl(cmd, make([]byte, 64)); err != unix.ENOTTY {
				t.Errorf("Ioctl(%#x) on a pipe = %v, want ENOTTY", cmd, err)
			}
		}
		if _, err := out.Ioctl(0x1234, nil); err != unix.ENOTTY {
			t.Errorf("Ioctl(unknown) = %v, want ENOTTY", err)
		}
	})
	t.Run("file type", func(t *testing.T) {
		if got := in.FileType(); got != unix.S_IFIFO {
			t.Errorf("FileType() of a host pipe = %#o, want S_IFIFO", got)
		}
	})
	t.Run("flags", func(t *testing.T) {
		if got := in.StatusFlags() & unix.O_ACCMODE; got != unix.O_RDONLY {
			t.Errorf("stdin access mode = %d, want O_RDONLY", got)
		}
		if got := out.StatusFlags() & unix.O_ACCMODE; got != unix.O_WRONLY {
			t.Errorf("stdout access mode = %d, want O_WRONLY", got)
		}
	})
}

func TestStdioRegularFile(t *testing.T) {
	p := t.TempDir() + "/out"
	hf, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	out, err := NewStdio(2, hf)
	if err != nil {
		t.Fatal(err)
	}
	defer out.DecRef()
	big := make([]byte, 100000)
	for i := range big {
		big[i] = byte(i)
	}
	if n, err := out.Write(nil, big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got, err := os.ReadFile(p)
	if err != nil || len(got) != len(big) || string(got) != string(big) {
		t.Errorf("host file holds %d bytes, %v; want the %d written", len(got), err, len(big))
	}
}

func TestStdioPTY(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		prereq.Missing(t, "a pseudo-terminal (/dev/ptmx): %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	f, err := NewStdio(1, pts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	ws := make([]byte, 8)
	if _, err := f.Ioctl(unix.TIOCGWINSZ, ws); err != nil || le16(ws[0:]) != 33 || le16(ws[2:]) != 101 {
		t.Errorf("TIOCGWINSZ = rows %d cols %d, %v; want 33, 101", le16(ws[0:]), le16(ws[2:]), err)
	}
	tio := make([]byte, 36)
	if _, err := f.Ioctl(unix.TCGETS, tio); err != nil {
		t.Errorf("TCGETS on a pty = %v, want success", err)
	}
	want, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if got := le32(tio[12:]); got != want.Lflag {
		t.Errorf("TCGETS c_lflag = %#x, want the host's %#x", got, want.Lflag)
	}
	// Clear ECHO through TCSETS and read it back from the host.
	putLE32(tio[12:], want.Lflag&^unix.ECHO)
	if _, err := f.Ioctl(unix.TCSETS, tio); err != nil {
		t.Fatalf("TCSETS = %v", err)
	}
	if now, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS); err != nil || now.Lflag&unix.ECHO != 0 {
		t.Errorf("host c_lflag after TCSETS without ECHO = %#x, %v; want ECHO clear", now.Lflag, err)
	}
	// A read blocked on the terminal is cancelled.
	in, err := NewStdio(0, pts)
	if err != nil {
		t.Fatal(err)
	}
	defer in.DecRef()
	cancel := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := in.Read(cancel, make([]byte, 8))
		done <- err
	}()
	close(cancel)
	if err := <-done; err != ErrInterrupted {
		t.Errorf("cancelled terminal Read = %v, want ErrInterrupted", err)
	}
	pg := make([]byte, 4)
	putLE32(pg, 7)
	if _, err := f.Ioctl(unix.TIOCSPGRP, pg); err != nil {
		t.Fatalf("TIOCSPGRP = %v", err)
	}
	clear(pg)
	if _, err := f.Ioctl(unix.TIOCGPGRP, pg); err != nil || le32(pg) != 7 {
		t.Errorf("TIOCGPGRP = %d, %v; want 7 (the sentry's value)", le32(pg), err)
	}
	if _, err := f.Write(nil, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	ptmx.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAtLeast(ptmx, buf, 2)
	if err != nil || string(buf[:got]) != "hi" {
		t.Errorf("terminal received %q, %v; want \"hi\"", buf[:got], err)
	}
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

func TestStdioWriteCancel(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	hr, hw := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	defer hr.Close()
	defer hw.Close()
	size, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	out, err := NewStdio(1, hw)
	if err != nil {
		t.Fatal(err)
	}
	defer out.DecRef()
	// Fill the host pipe.
	if n, err := out.Write(nil, make([]byte, size)); n != size || err != nil {
		t.Fatalf("Write(%d) = %d, %v", size, n, err)
	}
	out.SetStatusFlags(unix.O_NONBLOCK)
	if _, err := out.Write(nil, []byte("x")); err != unix.EAGAIN {
		t.Errorf("Write(full host pipe, O_NONBLOCK) = %v, want EAGAIN", err)
	}
	out.SetStatusFlags(0)
	cancel := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := out.Write(cancel, []byte("blocked"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write to a full host pipe returned %v before cancel", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(cancel)
	if err := <-done; err != ErrInterrupted {
		t.Errorf("cancelled Write = %v, want ErrInterrupted", err)
	}
	// Draining the host pipe lets writes through again.
	if _, err := io.ReadFull(hr, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if n, err := out.Write(nil, []byte("ok")); n != 2 || err != nil {
		t.Errorf("Write after drain = %d, %v; want 2, nil", n, err)
	}
}

func TestStdioEPIPE(t *testing.T) {
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hw.Close()
	out, err := NewStdio(1, hw)
	if err != nil {
		t.Fatal(err)
	}
	defer out.DecRef()
	hr.Close()
	if _, err := out.Write(nil, []byte("x")); err != unix.EPIPE {
		t.Errorf("Write with the host reader gone = %v, want EPIPE", err)
	}
}

// TestStdioOwnDescription: for a pipe or terminal, the sentry transfers on
// a non-blocking description of its own, so that no host read or write can
// block a task (another reader of the same pipe may take the data between
// the poll and the read); the caller's description keeps its flags, and
// the sentry's is closed with the last reference.
func TestStdioOwnDescription(t *testing.T) {
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	defer hw.Close()
	for _, tc := range []struct {
		name  string
		index int
		host  *os.File
	}{
		{"pipe read end", 0, hr},
		{"pipe write end", 1, hw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewStdio(tc.index, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			s := f.impl.(*stdioFile)
			own := s.fd
			if own == int(tc.host.Fd()) {
				t.Fatalf("stdio %d uses the caller's descriptor %d, want one of its own", tc.index, own)
			}
			if fl, err := unix.FcntlInt(uintptr(own), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
				t.Errorf("F_GETFL of the sentry's descriptor = %#x, %v; want O_NONBLOCK", fl, err)
			}
			if fl, err := unix.FcntlInt(tc.host.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
				t.Errorf("F_GETFL of the caller's descriptor = %#x, %v; want it unchanged (blocking)", fl, err)
			}
			f.DecRef()
			if _, err := unix.FcntlInt(uintptr(own), unix.F_GETFD, 0); err != unix.EBADF {
				t.Errorf("the sentry's descriptor after the last DecRef: F_GETFD = %v, want EBADF (closed)", err)
			}
		})
	}
	// Both ends through the sentry's descriptors.
	in, err := NewStdio(0, hr)
	if err != nil {
		t.Fatal(err)
	}
	defer in.DecRef()
	if _, err := hw.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := in.Read(nil, buf); err != nil || string(buf[:n]) != "data" {
		t.Errorf("Read = %q, %v; want data", buf[:n], err)
	}
	cancel := make(chan struct{})
	close(cancel)
	if _, err := in.Read(cancel, buf); err != ErrInterrupted {
		t.Errorf("Read of an empty pipe with cancel closed = %v, want ErrInterrupted", err)
	}
}

// TestStdioSocket: a socket stdin keeps the caller's description and is
// read without blocking (MSG_DONTWAIT), so a wait is interruptible.
func TestStdioSocket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(fds[0]), "socket")
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer host.Close()
	defer peer.Close()
	in, err := NewStdio(0, host)
	if err != nil {
		t.Fatal(err)
	}
	defer in.DecRef()
	cancel := make(chan struct{})
	close(cancel)
	buf := make([]byte, 8)
	if _, err := in.Read(cancel, buf); err != ErrInterrupted {
		t.Errorf("Read of an empty socket with cancel closed = %v, want ErrInterrupted", err)
	}
	if _, err := peer.Write([]byte("sock")); err != nil {
		t.Fatal(err)
	}
	if n, err := in.Read(nil, buf); err != nil || string(buf[:n]) != "sock" {
		t.Errorf("Read = %q, %v; want sock", buf[:n], err)
	}
}
