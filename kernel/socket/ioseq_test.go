package socket_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/socket"
	"snapshotter/kernel/vfs"
)

// errFault stands for a bad application address.
var errFault = errors.New("bad address")

// scattered is an IOSeq over several slices in order, as the kernel's
// view of an iovec array; bytes from bad on fail to copy, as memory past
// the end of a mapping.
var _ vfs.IOSeq = (*scattered)(nil)

type scattered struct {
	parts [][]byte
	bad   int
}

func newScattered(sizes []int, bad int) *scattered {
	q := &scattered{bad: bad}
	for _, n := range sizes {
		q.parts = append(q.parts, make([]byte, n))
	}
	return q
}

func (q *scattered) Len() int {
	n := 0
	for _, p := range q.parts {
		n += len(p)
	}
	return n
}

func (q *scattered) walk(off, n int, fn func(p []byte, from int)) error {
	if off+n > q.bad {
		return errFault
	}
	done := 0
	for _, p := range q.parts {
		if off >= len(p) {
			off -= len(p)
			continue
		}
		c := min(n-done, len(p)-off)
		fn(p[off:off+c], done)
		done += c
		off = 0
		if done == n {
			break
		}
	}
	return nil
}

func (q *scattered) CopyIn(off int, dst []byte) error {
	return q.walk(off, len(dst), func(p []byte, from int) { copy(dst[from:], p) })
}

func (q *scattered) CopyOut(off int, src []byte) error {
	return q.walk(off, len(src), func(p []byte, from int) { copy(p, src[from:]) })
}

func (q *scattered) bytes() []byte {
	var b []byte
	for _, p := range q.parts {
		b = append(b, p...)
	}
	return b
}

// TestSeqIO: SendSeq and RecvSeq copy straight between scattered memory
// and the queues, in order; a send that faults sends what it copied
// before, a stream receive that faults leaves its bytes queued, and a
// datagram receive that faults drops the datagram (as Linux).
func TestSeqIO(t *testing.T) {
	for _, tc := range []struct {
		name      string
		typ       int
		sendSizes []int
		sendBad   int // where the send's memory ends being readable
		wantSent  int
		sendErr   error
		recvSizes []int
		recvBad   int
		wantN     int
		recvErr   error
		left      int // bytes queued after the receive
	}{
		{name: "stream scattered", typ: socket.Stream, sendSizes: []int{3, 0, 5000, 7}, sendBad: 1 << 30, wantSent: 5010,
			recvSizes: []int{1, 4096, 0, 2000}, recvBad: 1 << 30, wantN: 5010},
		{name: "stream short read", typ: socket.Stream, sendSizes: []int{100}, sendBad: 1 << 30, wantSent: 100,
			recvSizes: []int{10, 20}, recvBad: 1 << 30, wantN: 30, left: 70},
		{name: "stream send faults", typ: socket.Stream, sendSizes: []int{100}, sendBad: 0, sendErr: errFault,
			recvSizes: []int{10}, recvBad: 1 << 30, recvErr: unix.EAGAIN},
		{name: "stream recv faults", typ: socket.Stream, sendSizes: []int{100}, sendBad: 1 << 30, wantSent: 100,
			recvSizes: []int{50}, recvBad: 10, recvErr: errFault, left: 100},
		{name: "seqpacket scattered", typ: socket.SeqPacket, sendSizes: []int{10, 20}, sendBad: 1 << 30, wantSent: 30,
			recvSizes: []int{5, 25}, recvBad: 1 << 30, wantN: 30},
		{name: "seqpacket recv faults", typ: socket.SeqPacket, sendSizes: []int{10}, sendBad: 1 << 30, wantSent: 10,
			recvSizes: []int{10}, recvBad: 5, recvErr: errFault},
		{name: "dgram send faults", typ: socket.Dgram, sendSizes: []int{10}, sendBad: 3, sendErr: errFault,
			recvSizes: []int{10}, recvBad: 1 << 30, recvErr: unix.EAGAIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pairFiles(t, socket.NewNames(), tc.typ)
			defer a.DecRef()
			defer b.DecRef()
			src := newScattered(tc.sendSizes, tc.sendBad)
			want := src.bytes()
			for i := range want {
				want[i] = byte(i*7 + 1)
			}
			src.CopyOut(0, want)
			n, err := socket.Of(a).SendSeq(a, nil, src, socket.SendArgs{})
			if n != tc.wantSent || !errors.Is(err, tc.sendErr) {
				t.Fatalf("SendSeq = %d, %v, want %d, %v", n, err, tc.wantSent, tc.sendErr)
			}
			dst := newScattered(tc.recvSizes, tc.recvBad)
			r, err := socket.Of(b).RecvSeq(b, nil, dst, socket.RecvArgs{})
			if r.N != tc.wantN || !errors.Is(err, tc.recvErr) {
				t.Fatalf("RecvSeq = %d, %v, want %d, %v", r.N, err, tc.wantN, tc.recvErr)
			}
			if got := dst.bytes()[:r.N]; string(got) != string(want[:r.N]) {
				t.Errorf("RecvSeq read %v, want %v", got, want[:r.N])
			}
			rest := make([]byte, 1<<16)
			r2, err := socket.Of(b).Recv(b, nil, rest, socket.RecvArgs{})
			if tc.left == 0 {
				if !errors.Is(err, unix.EAGAIN) {
					t.Errorf("Recv after = %d, %v, want EAGAIN (nothing left)", r2.N, err)
				}
				return
			}
			if err != nil || string(rest[:r2.N]) != string(want[r.N:r.N+tc.left]) {
				t.Errorf("Recv after = %d bytes, %v, want the %d bytes left", r2.N, err, tc.left)
			}
		})
	}
}
