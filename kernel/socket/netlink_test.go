package socket

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// nlRequest encodes one request with a one-byte family payload.
func nlRequest(typ, flags uint16, seq uint32, family byte) []byte {
	b := make([]byte, nlmsgHdrLen+4)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], typ)
	binary.LittleEndian.PutUint16(b[6:], flags)
	binary.LittleEndian.PutUint32(b[8:], seq)
	b[nlmsgHdrLen] = family
	return b
}

// nlTypes reads every queued datagram and returns its messages' types.
func nlTypes(t *testing.T, s *Socket, seq uint32) []uint16 {
	t.Helper()
	var types []uint16
	for {
		buf := make([]byte, 8192)
		r, err := s.Recv(nil, nil, buf, RecvArgs{Flags: unix.MSG_DONTWAIT})
		if err == unix.EAGAIN {
			return types
		}
		if err != nil {
			t.Fatalf("Recv = %v", err)
		}
		for b := buf[:r.N]; len(b) >= nlmsgHdrLen; {
			l := int(binary.LittleEndian.Uint32(b))
			if got := binary.LittleEndian.Uint32(b[8:]); got != seq {
				t.Errorf("answer's seq = %d, want %d", got, seq)
			}
			types = append(types, binary.LittleEndian.Uint16(b[4:]))
			b = b[min(nlmAlign(l), len(b)):]
		}
	}
}

func TestNetlinkAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    []byte
		want   []uint16
		errno  unix.Errno
		nerror int
	}{
		{name: "links", req: nlRequest(rtmGetLink, nlmFRequest|nlmFDump, 1, 0), want: []uint16{rtmNewLink, nlmDone}},
		{name: "addrs", req: nlRequest(rtmGetAddr, nlmFRequest|nlmFDump, 2, unix.AF_UNSPEC), want: []uint16{rtmNewAddr, rtmNewAddr, nlmDone}},
		{name: "addrs-v4", req: nlRequest(rtmGetAddr, nlmFRequest|nlmFDump, 3, unix.AF_INET), want: []uint16{rtmNewAddr, nlmDone}},
		{name: "addrs-v6", req: nlRequest(rtmGetAddr, nlmFRequest|nlmFDump, 4, unix.AF_INET6), want: []uint16{rtmNewAddr, nlmDone}},
		{name: "routes", req: nlRequest(26 /* RTM_GETROUTE */, nlmFRequest|nlmFDump, 5, 0), want: []uint16{nlmError}},
		{name: "not-a-request", req: nlRequest(rtmGetLink, nlmFDump, 6, 0), want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewNetlink(NewNames(), false)
			defer s.Release()
			if n, err := s.Send(nil, nil, tc.req, SendArgs{}); err != nil || n != len(tc.req) {
				t.Fatalf("Send = %d, %v, want %d", n, err, len(tc.req))
			}
			seq := binary.LittleEndian.Uint32(tc.req[8:])
			got := nlTypes(t, s, seq)
			if len(got) != len(tc.want) {
				t.Fatalf("answer types = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("answer types = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNetlinkPorts(t *testing.T) {
	names := NewNames()
	a, b := NewNetlink(names, false), NewNetlink(names, false)
	defer a.Release()
	defer b.Release()
	if err := a.BindInet(sockaddrNl(4242), false); err != nil {
		t.Fatalf("bind 4242 = %v", err)
	}
	if err := b.BindInet(sockaddrNl(4242), false); err != unix.EADDRINUSE {
		t.Errorf("second bind 4242 = %v, want EADDRINUSE", err)
	}
	if err := b.BindInet(sockaddrNl(0), false); err != nil {
		t.Fatalf("autobind = %v", err)
	}
	if got := binary.LittleEndian.Uint32(b.SockName()[4:]); got == 0 || got == 4242 {
		t.Errorf("autobound port = %d, want another, nonzero", got)
	}
}
