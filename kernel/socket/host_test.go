package socket

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// hostListener returns a host TCP socket listening on 127.0.0.1 at a port
// the host picks, and that address.
func hostListener(t *testing.T, names *Names) (*Socket, []byte) {
	t.Helper()
	l, err := NewHost(names, unix.AF_INET, Stream, 0)
	if err != nil {
		t.Fatalf("NewHost = %v", err)
	}
	if err := l.BindInet(marshalInet(unix.AF_INET, &Addr{Inet: true, IP: v4Loopback}), false); err != nil {
		t.Fatalf("bind = %v", err)
	}
	if err := l.Listen(4, Cred{}); err != nil {
		t.Fatalf("listen = %v", err)
	}
	return l, l.SockName()
}

// hostConnection connects a new host socket of names to listener l at
// addr and accepts the connection; both ends are released when the test
// ends.
func hostConnection(t *testing.T, names *Names, l *Socket, addr []byte) (*Socket, *vfs.File) {
	t.Helper()
	c, err := NewHost(names, unix.AF_INET, Stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	if err := c.ConnectInet(nil, addr, false); err != nil {
		t.Fatalf("connect = %v", err)
	}
	f, _, err := l.Accept(nil, false, 0)
	if err != nil {
		t.Fatalf("accept = %v", err)
	}
	t.Cleanup(f.DecRef)
	return c, f
}

// TestHostWaitsInterrupted: a blocking call on a host socket that has
// nothing to do ends with vfs.ErrInterrupted when its cancel channel
// closes (a signal, a kill or a save), and the socket works afterwards.
func TestHostWaitsInterrupted(t *testing.T) {
	names := NewNames()
	l, addr := hostListener(t, names)
	defer l.Release()
	c, f := hostConnection(t, names, l, addr)
	for _, tc := range []struct {
		name string
		op   func(cancel <-chan struct{}) error
	}{
		{name: "accept", op: func(cancel <-chan struct{}) error {
			_, _, err := l.Accept(cancel, false, 0)
			return err
		}},
		{name: "recv", op: func(cancel <-chan struct{}) error {
			_, err := c.Recv(nil, cancel, make([]byte, 16), RecvArgs{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cancel := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- tc.op(cancel) }()
			close(cancel)
			select {
			case err := <-done:
				if !errors.Is(err, vfs.ErrInterrupted) {
					t.Errorf("%s after cancel = %v, want vfs.ErrInterrupted", tc.name, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s did not end after cancel", tc.name)
			}
		})
	}
	// The wake-up path: a blocked recv gets what the peer sends.
	done := make(chan error, 1)
	buf := make([]byte, 16)
	go func() {
		r, err := c.Recv(nil, nil, buf, RecvArgs{})
		if err == nil && string(buf[:r.N]) != "hi" {
			err = errors.New("got " + string(buf[:r.N]))
		}
		done <- err
	}()
	if _, err := Of(f).Send(f, nil, []byte("hi"), SendArgs{}); err != nil {
		t.Fatalf("send = %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("blocked recv = %v, want \"hi\"", err)
	}
}

// TestReleaseHostPorts: ReleaseHostPorts frees a saved listener's port
// (the host lets another socket bind it) and ReclaimHostPorts listens on
// it again; a port taken in between fails the reclaim with ErrHostSocket
// naming it, and the listener's next call with ECONNRESET.
func TestReleaseHostPorts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		taken bool
		conn  bool // a connection accepted from the listener stays open
	}{
		{name: "free"},
		{name: "free with a connection", conn: true},
		{name: "taken", taken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := NewNames()
			l, addr := hostListener(t, names)
			defer l.Release()
			if tc.conn {
				c, f := hostConnection(t, names, l, addr)
				Of(f).host.beforeSave()
				c.host.beforeSave()
			}
			l.host.beforeSave() // what a save records
			names.ReleaseHostPorts()
			other, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(other)
			// As a restore binds a listener again.
			hostSetsockopt(other, unix.SOL_SOCKET, unix.SO_REUSEADDR, int32Bytes(1))
			if err := hostBind(other, addr); err != nil {
				t.Fatalf("bind of the released port %s = %v, want it free", sockaddrString(addr), err)
			}
			if err := unix.Listen(other, 1); err != nil {
				t.Fatalf("listen on the released port %s = %v", sockaddrString(addr), err)
			}
			if !tc.taken {
				unix.Close(other)
			}
			err = names.ReclaimHostPorts()
			if tc.taken {
				if !errors.Is(err, ErrHostSocket) || !strings.Contains(err.Error(), sockaddrString(addr)) {
					t.Errorf("ReclaimHostPorts on a taken port = %v, want ErrHostSocket naming %s", err, sockaddrString(addr))
				}
				if _, _, err := l.Accept(nil, true, 0); !errors.Is(err, unix.ECONNRESET) {
					t.Errorf("accept on the lost listener = %v, want ECONNRESET", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReclaimHostPorts = %v", err)
			}
			c, err := NewHost(names, unix.AF_INET, Stream, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			if err := c.ConnectInet(nil, addr, false); err != nil {
				t.Fatalf("connect to the reclaimed listener = %v", err)
			}
			f, _, err := l.Accept(nil, false, 0)
			if err != nil {
				t.Fatalf("accept on the reclaimed listener = %v", err)
			}
			f.DecRef()
		})
	}
}
