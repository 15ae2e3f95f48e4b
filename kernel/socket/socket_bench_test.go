package socket_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
)

// BenchmarkStream moves bytes between two connected stream sockets in
// 64 KiB sends and receives, one goroutine each, without ptrace: the
// stack's own cost per chunk (copies, allocations, wake-ups), apart from
// the system calls around it. The baseline moves the same chunks through
// a channel with one copy each, as a lower bound for a hand-off.
func BenchmarkStream(b *testing.B) {
	const chunk = 64 << 10
	for _, tc := range []struct {
		name string
		pair func(b *testing.B) (send, recv *socket.Socket, fs, fr *vfs.File)
	}{
		{"unix", unixPair},
		{"tcp", tcpPair},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, r, fs, fr := tc.pair(b)
			defer fr.DecRef()
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() {
				defer fs.DecRef()
				src := make([]byte, chunk)
				for i := 0; i < b.N; i++ {
					if _, err := s.Send(fs, nil, src, socket.SendArgs{}); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			dst := make([]byte, chunk)
			got := 0
			for got < b.N*chunk {
				res, err := r.Recv(fr, nil, dst, socket.RecvArgs{})
				if err != nil || res.N == 0 {
					b.Fatalf("Recv after %d bytes = %d, %v", got, res.N, err)
				}
				got += res.N
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Run("baseline-chan", func(b *testing.B) {
		b.SetBytes(chunk)
		b.ReportAllocs()
		ch := make(chan []byte, 64)
		free := make(chan []byte, 64)
		for range cap(free) {
			free <- make([]byte, chunk)
		}
		n := b.N
		done := make(chan struct{})
		go func() {
			defer close(done)
			src := make([]byte, chunk)
			for range n {
				buf := <-free
				copy(buf, src)
				ch <- buf
			}
		}()
		dst := make([]byte, chunk)
		for range n {
			buf := <-ch
			copy(dst, buf)
			free <- buf
		}
		<-done
	})
}

func unixPair(b *testing.B) (send, recv *socket.Socket, fs, fr *vfs.File) {
	s, r, err := socket.NewPair(socket.NewNames(), socket.Stream, socket.Cred{})
	if err != nil {
		b.Fatal(err)
	}
	return s, r, socket.NewFile(s, 0), socket.NewFile(r, 0)
}

func tcpPair(b *testing.B) (send, recv *socket.Socket, fs, fr *vfs.File) {
	names := socket.NewNames()
	l, err := socket.NewInet(names, unix.AF_INET, socket.Stream)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Release()
	if err := l.BindInet(in4(127, 0, 0, 1, 0), false); err != nil {
		b.Fatal(err)
	}
	if err := l.Listen(1, socket.Cred{}); err != nil {
		b.Fatal(err)
	}
	c, err := socket.DialLoopback(names, portOf(l.SockName()), nil)
	if err != nil {
		b.Fatal(err)
	}
	af, _, err := l.Accept(nil, true, 0)
	if err != nil {
		b.Fatal(err)
	}
	return c, af.Impl().(*socket.Socket), socket.NewFile(c, 0), af
}
