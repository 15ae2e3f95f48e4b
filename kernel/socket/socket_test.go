package socket_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
	"snapshotter/stateify"
)

func sockaddr(path string) []byte {
	b := []byte{unix.AF_UNIX, 0}
	return append(b, path...)
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []byte
		want     socket.Addr
		autobind bool
		err      error
		marshal  int // length Marshal gives back, when err is nil and not autobind
	}{
		{name: "short", in: []byte{unix.AF_UNIX}, err: unix.EINVAL},
		{name: "other family", in: []byte{unix.AF_INET, 0, 'x'}, err: unix.EINVAL},
		{name: "too long", in: sockaddr(string(make([]byte, 109))), err: unix.EINVAL},
		{name: "family only", in: sockaddr(""), autobind: true},
		{name: "abstract", in: sockaddr("\x00name"), want: socket.Addr{Abstract: true, Name: "name"}, marshal: 7},
		{name: "abstract with NULs", in: sockaddr("\x00a\x00b\x00"), want: socket.Addr{Abstract: true, Name: "a\x00b\x00"}, marshal: 7},
		{name: "path", in: sockaddr("/tmp/s"), want: socket.Addr{Name: "/tmp/s"}, marshal: 9},
		{name: "path with NUL and junk", in: sockaddr("/s\x00junk"), want: socket.Addr{Name: "/s"}, marshal: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, auto, err := socket.ParseAddr(tc.in)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("ParseAddr(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if got != tc.want || auto != tc.autobind {
				t.Errorf("ParseAddr(%q) = %+v, %v, want %+v, %v", tc.in, got, auto, tc.want, tc.autobind)
			}
			if tc.err == nil && !tc.autobind {
				if m := got.Marshal(); len(m) != tc.marshal {
					t.Errorf("Marshal(%+v) = %q (%d bytes), want %d bytes", got, m, len(m), tc.marshal)
				}
			}
		})
	}
	var none *socket.Addr
	if m := none.Marshal(); len(m) != 2 {
		t.Errorf("Marshal(nil) = %q, want the family alone", m)
	}
}

func getInt(t *testing.T, s *socket.Socket, opt int) int32 {
	t.Helper()
	b, err := s.GetOption(unix.SOL_SOCKET, opt)
	if err != nil {
		t.Fatalf("GetOption(%d) = %v", opt, err)
	}
	return int32(binary.LittleEndian.Uint32(b))
}

func TestBufferSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  int
		set  int32
		want int32
	}{
		{"sndbuf doubled", unix.SO_SNDBUF, 65536, 131072},
		{"sndbuf minimum", unix.SO_SNDBUF, 1, 4608},
		{"rcvbuf minimum", unix.SO_RCVBUF, 1, 2304},
		{"sndbuf capped", unix.SO_SNDBUF, 1 << 30, 425984},
		{"negative is huge", unix.SO_RCVBUF, -1, 425984},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := socket.New(socket.NewNames(), socket.Stream)
			if err != nil {
				t.Fatal(err)
			}
			if got := getInt(t, s, tc.opt); got != 212992 {
				t.Errorf("default = %d, want 212992", got)
			}
			v := binary.LittleEndian.AppendUint32(nil, uint32(tc.set))
			if err := s.SetOption(unix.SOL_SOCKET, tc.opt, v); err != nil {
				t.Fatalf("SetOption(%d) = %v", tc.set, err)
			}
			if got := getInt(t, s, tc.opt); got != tc.want {
				t.Errorf("after SetOption(%d): %d, want %d", tc.set, got, tc.want)
			}
		})
	}
}

// pairFiles returns the two files of a new socketpair of type typ.
func pairFiles(t *testing.T, names *socket.Names, typ int) (*vfs.File, *vfs.File) {
	t.Helper()
	a, b, err := socket.NewPair(names, typ, socket.Cred{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	return socket.NewFile(a, unix.O_NONBLOCK), socket.NewFile(b, unix.O_NONBLOCK)
}

func send(t *testing.T, f *vfs.File, data string, a socket.SendArgs) {
	t.Helper()
	if n, err := socket.Of(f).Send(f, nil, []byte(data), a); err != nil || n != len(data) {
		t.Fatalf("Send(%q) = %d, %v", data, n, err)
	}
}

func recv(t *testing.T, f *vfs.File, n int) socket.RecvResult {
	t.Helper()
	buf := make([]byte, n)
	r, err := socket.Of(f).Recv(f, nil, buf, socket.RecvArgs{})
	if err != nil {
		t.Fatalf("Recv = %v", err)
	}
	return r
}

// TestReleaseDropsFilesInFlight: a file whose only reference is in a
// queue is released with the queue.
func TestReleaseDropsFilesInFlight(t *testing.T) {
	a, b := pairFiles(t, socket.NewNames(), socket.Dgram)
	r, w := vfs.NewPipe(unix.O_NONBLOCK)
	defer r.DecRef()
	send(t, a, "fd", socket.SendArgs{Rights: []*vfs.File{w}})
	w.DecRef()
	if _, err := r.Read(nil, make([]byte, 1)); err != unix.EAGAIN {
		t.Fatalf("read with the writer in flight = %v, want EAGAIN", err)
	}
	a.DecRef()
	b.DecRef()
	if n, err := r.Read(nil, make([]byte, 1)); n != 0 || err != nil {
		t.Errorf("read after the queue went = %d, %v, want end of file", n, err)
	}
}

// TestSaveRestore saves a descriptor table holding sockets with queued
// stream bytes both ways, datagrams with a sender address and a file in
// flight, and a listener with a pending connection, and checks each after
// loading.
func TestSaveRestore(t *testing.T) {
	names := socket.NewNames()
	tbl := vfs.NewFDTable()
	install := func(fs ...*vfs.File) {
		for _, f := range fs {
			if _, err := tbl.NewFD(0, f, vfs.FDFlags{}); err != nil {
				t.Fatal(err)
			}
			f.DecRef()
		}
	}
	s0, s1 := pairFiles(t, names, socket.Stream)
	send(t, s0, "to one", socket.SendArgs{})
	send(t, s1, "to zero", socket.SendArgs{})
	d0, d1 := pairFiles(t, names, socket.Dgram)
	if err := socket.Of(d0).Bind(socket.Addr{Abstract: true, Name: "sender"}, false, nil); err != nil {
		t.Fatal(err)
	}
	r, w := vfs.NewPipe(0)
	if _, err := w.Write(nil, []byte("piped")); err != nil {
		t.Fatal(err)
	}
	w.DecRef()
	send(t, d0, "dgram with a file", socket.SendArgs{Rights: []*vfs.File{r}})
	r.DecRef()
	ls, _ := socket.New(names, socket.Stream)
	l := socket.NewFile(ls, 0)
	addr := socket.Addr{Abstract: true, Name: "listener"}
	if err := ls.Bind(addr, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ls.Listen(4, socket.Cred{PID: 1}); err != nil {
		t.Fatal(err)
	}
	cs, _ := socket.New(names, socket.Stream)
	c := socket.NewFile(cs, 0)
	if err := cs.Connect(nil, addr, false, true, socket.Cred{PID: 2}, nil); err != nil {
		t.Fatal(err)
	}
	send(t, c, "queued before accept", socket.SendArgs{})
	install(s0, s1, d0, d1, l, c)

	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, tbl); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	var out vfs.FDTable
	if err := stateify.Load(context.Background(), &buf, &out); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	get := func(fd int32) *vfs.File {
		f, _, err := out.Get(fd)
		if err != nil || socket.Of(f) == nil {
			t.Fatalf("Get(%d) after load = %v, %v", fd, f, err)
		}
		t.Cleanup(f.DecRef)
		return f
	}
	if r := recv(t, get(1), 64); r.N != 6 {
		t.Errorf("stream bytes to one after load: %d, want 6", r.N)
	}
	if r := recv(t, get(0), 64); r.N != 7 {
		t.Errorf("stream bytes to zero after load: %d, want 7", r.N)
	}
	dr := recv(t, get(3), 64)
	if dr.N != 17 || dr.From == nil || dr.From.Name != "sender" || len(dr.Rights) != 1 {
		t.Fatalf("datagram after load = %+v, want 17 bytes from sender with one file", dr)
	}
	got := make([]byte, 8)
	if n, err := dr.Rights[0].Read(nil, got); err != nil || string(got[:n]) != "piped" {
		t.Errorf("file in flight reads %q, %v, want piped", got[:n], err)
	}
	dr.Rights[0].DecRef()
	lf := get(4)
	af, peer, err := socket.Of(lf).Accept(nil, true, 0)
	if err != nil {
		t.Fatalf("Accept after load = %v", err)
	}
	defer af.DecRef()
	if peer != nil {
		t.Errorf("peer of an unbound client = %+v, want none", peer)
	}
	if r := recv(t, af, 64); r.N != 20 {
		t.Errorf("accepted connection's data after load: %d bytes, want 20", r.N)
	}
	if n := socket.Of(get(5)).Type(); n != socket.Stream {
		t.Errorf("client type after load = %d", n)
	}
}

// TestBlockingStream moves 4 MiB between two goroutines over blocking
// stream sockets (so both wait on each other's buffer), in order.
func TestBlockingStream(t *testing.T) {
	a, b, err := socket.NewPair(socket.NewNames(), socket.Stream, socket.Cred{})
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := socket.NewFile(a, 0), socket.NewFile(b, 0)
	defer fb.DecRef()
	const total = 4 << 20
	done := make(chan error, 1)
	go func() {
		defer fa.DecRef()
		chunk := make([]byte, 100000)
		for sent := 0; sent < total; {
			n := min(len(chunk), total-sent)
			for i := range chunk[:n] {
				chunk[i] = byte(sent + i)
			}
			w, err := a.Send(fa, nil, chunk[:n], socket.SendArgs{})
			if err != nil {
				done <- err
				return
			}
			sent += w
		}
		done <- nil
	}()
	buf := make([]byte, 7000)
	got := 0
	for {
		r, err := b.Recv(fb, nil, buf, socket.RecvArgs{})
		if err != nil {
			t.Fatalf("Recv after %d bytes = %v", got, err)
		}
		if r.N == 0 {
			break
		}
		for i, c := range buf[:r.N] {
			if c != byte(got+i) {
				t.Fatalf("byte %d = %d, want %d", got+i, c, byte(got+i))
			}
		}
		got += r.N
	}
	if err := <-done; err != nil || got != total {
		t.Errorf("transferred %d bytes (writer: %v), want %d", got, err, total)
	}
}

// TestInterrupted: a closed cancel channel ends a blocked Recv, Accept
// and Send with vfs.ErrInterrupted, and a MSG_WAITALL receive interrupted
// after some bytes leaves them queued.
func TestInterrupted(t *testing.T) {
	cancel := make(chan struct{})
	close(cancel)
	a, b := pairFiles(t, socket.NewNames(), socket.Stream)
	defer a.DecRef()
	defer b.DecRef()
	sb := socket.Of(b)
	send(t, a, "part", socket.SendArgs{})
	buf := make([]byte, 10)
	_, err := sb.Recv(nil, cancel, buf, socket.RecvArgs{Flags: unix.MSG_WAITALL})
	if !errors.Is(err, vfs.ErrInterrupted) {
		t.Fatalf("interrupted MSG_WAITALL Recv = %v, want ErrInterrupted", err)
	}
	if r := recv(t, b, 10); r.N != 4 {
		t.Errorf("after the interrupted MSG_WAITALL: %d bytes queued, want 4", r.N)
	}
	if _, err := sb.Recv(nil, cancel, buf, socket.RecvArgs{}); !errors.Is(err, vfs.ErrInterrupted) {
		t.Errorf("interrupted Recv = %v, want ErrInterrupted", err)
	}
	l, _ := socket.New(socket.NewNames(), socket.SeqPacket)
	if err := l.Bind(socket.Addr{Abstract: true, Name: "l"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(0, socket.Cred{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Accept(cancel, false, 0); !errors.Is(err, vfs.ErrInterrupted) {
		t.Errorf("interrupted Accept = %v, want ErrInterrupted", err)
	}
	l.Release()
}
