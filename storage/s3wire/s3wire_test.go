package s3wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"snapshotter/storage/s3wire"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		msg     s3wire.Msg
		payload []byte
	}{
		{"empty", s3wire.Msg{ID: 1, Op: s3wire.OpList, Obj: 2}, nil},
		{"small payload", s3wire.Msg{ID: 3, Op: s3wire.OpWrite, Obj: 4}, []byte("hello")},
		{"chunk", s3wire.Msg{ID: 5, Op: s3wire.OpData, Off: 1 << 20}, bytes.Repeat([]byte{7}, s3wire.ChunkSize)},
		{"config", s3wire.Msg{ID: 6, Op: s3wire.OpBackend, New: 9, Config: &s3wire.Config{Endpoint: "h:1", Bucket: "b", Threads: 3}}, nil},
		{"error", s3wire.Msg{ID: 7, Op: s3wire.OpDone, Failed: true, Code: s3wire.CodeCorrupt, Err: "blob truncated"}, nil},
		{"names", s3wire.Msg{ID: 8, Op: s3wire.OpDone, Names: []string{"a", "b"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := s3wire.WriteFrame(&buf, &tc.msg, tc.payload); err != nil {
				t.Fatalf("WriteFrame = %v", err)
			}
			var got s3wire.Msg
			n, err := s3wire.ReadHeader(&buf, &got)
			if err != nil {
				t.Fatalf("ReadHeader = %v", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("ReadHeader = %+v, want %+v", got, tc.msg)
			}
			p, err := s3wire.ReadPayload(&buf, n)
			if err != nil || !bytes.Equal(p, tc.payload) {
				t.Errorf("ReadPayload = %d bytes, %v; want %d bytes", len(p), err, len(tc.payload))
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes left after the frame, want 0", buf.Len())
			}
		})
	}
}

func TestFrameBad(t *testing.T) {
	frame := func(hl, pl uint32, rest []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, hl)
		b = binary.LittleEndian.AppendUint32(b, pl)
		return append(b, rest...)
	}
	var good bytes.Buffer
	if err := s3wire.WriteFrame(&good, &s3wire.Msg{ID: 1, Op: s3wire.OpList}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"clean end", nil, io.EOF},
		{"short prefix", []byte{1, 2, 3}, io.ErrUnexpectedEOF},
		{"huge header", frame(s3wire.MaxHeader+1, 0, nil), s3wire.ErrProtocol},
		{"huge payload", frame(4, s3wire.MaxPayload+1, nil), s3wire.ErrProtocol},
		{"short header", frame(10, 0, []byte{0x80}), io.ErrUnexpectedEOF},
		{"not msgpack", frame(1, 0, []byte{0xc1}), s3wire.ErrProtocol},
		{"truncated", good.Bytes()[:good.Len()-1], io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m s3wire.Msg
			if _, err := s3wire.ReadHeader(bytes.NewReader(tc.in), &m); !errors.Is(err, tc.want) {
				t.Errorf("ReadHeader(%x) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
	if err := s3wire.WriteFrame(io.Discard, &s3wire.Msg{}, make([]byte, s3wire.MaxPayload+1)); !errors.Is(err, s3wire.ErrProtocol) {
		t.Errorf("WriteFrame(payload over MaxPayload) = %v, want ErrProtocol", err)
	}
	if _, err := s3wire.ReadPayload(bytes.NewReader([]byte{1}), 2); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadPayload(short) = %v, want io.ErrUnexpectedEOF", err)
	}
}
