package stateify_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/statetest"
)

// checkLoadError asserts that err is nil or one of the documented input
// errors: never ErrHook, which is what a decoder panic would turn into.
func checkLoadError(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, want := range []error{stateify.ErrCorrupt, stateify.ErrVersion, stateify.ErrSchema, stateify.ErrWaitCycle} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("%s: Load = %v, want nil or a corrupt/version/schema error", what, err)
}

// TestFlipEveryByte flips each byte of a valid stream. With the checksum in
// place every flip must be detected; with the checksum recomputed the
// decoder itself sees the damage and must fail cleanly or load a graph.
func TestFlipEveryByte(t *testing.T) {
	stream := save(t, newGraph())
	for i := range stream {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			s := append([]byte(nil), stream...)
			s[i] ^= mask
			var g statetest.Graph
			err := stateify.Load(context.Background(), bytes.NewReader(s), &g)
			if err == nil {
				t.Fatalf("Load(stream with byte %d ^= %#x) = nil, want an error", i, mask)
			}
			checkLoadError(t, "flipped", err)
			if i >= 24 && i < len(s)-4 {
				var g2 statetest.Graph
				checkLoadError(t, "flipped and re-checksummed", stateify.Load(context.Background(), bytes.NewReader(reframe(s)), &g2))
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	stream := save(t, newGraph())
	for n := 0; n < len(stream); n++ {
		var g statetest.Graph
		err := stateify.Load(context.Background(), bytes.NewReader(stream[:n]), &g)
		if !errors.Is(err, stateify.ErrCorrupt) {
			t.Fatalf("Load(first %d of %d bytes) = %v, want ErrCorrupt", n, len(stream), err)
		}
	}
}

// frame wraps a hand-written payload in a valid header and checksum.
func frame(payload []byte) []byte {
	s := make([]byte, 24, 24+len(payload)+4)
	copy(s, stateify.Magic)
	binary.BigEndian.PutUint16(s[8:], stateify.MajorVersion)
	binary.BigEndian.PutUint16(s[10:], stateify.MinorVersion)
	s = append(s, payload...)
	s = append(s, 0, 0, 0, 0)
	return reframe(s)
}

// TestForgedLengths feeds streams whose lengths promise far more data than
// they hold. Each must fail with ErrCorrupt without allocating in
// proportion to the promise.
func TestForgedLengths(t *testing.T) {
	hugeHeader := frame(nil)
	binary.BigEndian.PutUint64(hugeHeader[16:], 1<<35)
	tests := []struct {
		name   string
		stream []byte
	}{
		{"payload length", hugeHeader},
		{"type table array32", frame([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})},
		{"type name str32", frame([]byte{0x91, 0x92, 0xdb, 0x7f, 0xff, 0xff, 0xff})},
		{"field list array32", frame([]byte{0x91, 0x92, 0xa1, 'x', 0xdd, 0x10, 0, 0, 0})},
		{"object count", frame([]byte{0x90, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		{"no objects", frame([]byte{0x90, 0x00})},
		{"payload too short", frame([]byte{0x90})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var g statetest.Graph
			err := stateify.Load(context.Background(), bytes.NewReader(tc.stream), &g)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, stateify.ErrCorrupt) {
				t.Errorf("Load = %v, want ErrCorrupt", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("Load allocated %d bytes for a %d-byte stream, want < 4 MiB", got, len(tc.stream))
			}
		})
	}
}

// trailing returns a valid Node stream with extra bytes after the last
// object.
func trailing() []byte {
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, &statetest.Node{ID: 1}); err != nil {
		panic(err)
	}
	s := buf.Bytes()
	s = append(s[:len(s)-4:len(s)-4], 0xc0, 0xc0, 0, 0, 0, 0)
	return reframe(s)
}

func TestTrailingBytes(t *testing.T) {
	var n statetest.Node
	if err := stateify.Load(context.Background(), bytes.NewReader(trailing()), &n); !errors.Is(err, stateify.ErrCorrupt) {
		t.Errorf("Load(stream with bytes after the last object) = %v, want ErrCorrupt", err)
	}
}

// TestForgedSliceLength edits a real stream so that a slice claims more
// elements than remain, with a valid checksum.
func TestForgedSliceLength(t *testing.T) {
	n := &statetest.Node{ID: 1, Children: []*statetest.Node{{ID: 2}}}
	stream := save(t, n)
	// Children is encoded as fixarray(1) 0x91 followed by object ID 2.
	i := bytes.Index(stream[24:], []byte{0x91, 0x02})
	if i < 0 {
		t.Fatal("children array not found in stream")
	}
	s := append([]byte(nil), stream[:24+i]...)
	s = append(s, 0xdd, 0x7f, 0xff, 0xff, 0xff)
	s = append(s, stream[24+i+1:]...)
	var got statetest.Node
	err := stateify.Load(context.Background(), bytes.NewReader(reframe(s)), &got)
	if !errors.Is(err, stateify.ErrCorrupt) {
		t.Errorf("Load(slice length 2^31-1) = %v, want ErrCorrupt", err)
	}
}

// FuzzLoad loads arbitrary bytes as a stream, and again with a valid
// checksum so that mutations reach the decoder. It must never panic or
// return anything but a documented error.
func FuzzLoad(f *testing.F) {
	f.Add(saveF(f, newGraph()))
	f.Add(saveF(f, &statetest.Node{ID: 1, Name: "n"}))
	f.Add(frame([]byte{0x90, 0x00}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var g statetest.Graph
		checkLoadError(t, "raw", stateify.Load(context.Background(), bytes.NewReader(data), &g))
		if len(data) >= 28 {
			var g2 statetest.Graph
			checkLoadError(t, "re-checksummed", stateify.Load(context.Background(), bytes.NewReader(reframe(data)), &g2))
			var n statetest.Node
			checkLoadError(t, "as Node", stateify.Load(context.Background(), bytes.NewReader(reframe(data)), &n))
			checkLoadError(t, "Dump", stateify.Dump(io.Discard, bytes.NewReader(reframe(data))))
		}
	})
}

func saveF(f *testing.F, root any) []byte {
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, root); err != nil {
		f.Fatalf("Save(%T) = %v", root, err)
	}
	return buf.Bytes()
}

// TestCorruptErrorNamesObject checks that a decoding error says which
// object (ID and type) was being decoded.
func TestCorruptErrorNamesObject(t *testing.T) {
	stream := save(t, &statetest.Node{ID: 1, Name: "abc", Peer: &statetest.Node{ID: 2, Name: "xyz"}})
	i := bytes.LastIndex(stream, []byte("xyz"))
	s := append([]byte(nil), stream...)
	s[i-1] = 0xc1 // the string header of the second node's name: never valid msgpack
	var n statetest.Node
	err := stateify.Load(context.Background(), bytes.NewReader(reframe(s)), &n)
	if !errors.Is(err, stateify.ErrCorrupt) {
		t.Fatalf("Load = %v, want ErrCorrupt", err)
	}
	if want := "object #2 (snapshotter/stateify/internal/statetest.Node)"; !strings.Contains(err.Error(), want) {
		t.Errorf("Load error %q does not name %q", err, want)
	}
}
