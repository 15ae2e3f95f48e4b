package migration

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

// pair authenticates both ends of a pipe, target with tokT and source with
// tokS.
func pair(t *testing.T, tokT, tokS string) (target, source *Conn, terr, serr error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		target, terr = Accept(a, []byte(tokT))
		if terr != nil {
			a.Close()
		}
	}()
	source, serr = Connect(b, []byte(tokS))
	if serr != nil {
		b.Close()
	}
	<-done
	return target, source, terr, serr
}

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tokT, tokS string
		wantErr    bool
	}{
		{"same token", "s3cret", "s3cret", false},
		{"wrong token", "s3cret", "guess", true},
		{"no token on one side", "s3cret", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, terr, serr := pair(t, tc.tokT, tc.tokS)
			if !tc.wantErr {
				if terr != nil || serr != nil {
					t.Fatalf("handshake = %v / %v, want success", terr, serr)
				}
				return
			}
			if !errors.Is(terr, ErrAuth) || !errors.Is(serr, ErrAuth) {
				t.Errorf("handshake = target %v, source %v; want ErrAuth on both", terr, serr)
			}
		})
	}
}

func TestFrames(t *testing.T) {
	target, source, terr, serr := pair(t, "tok", "tok")
	if terr != nil || serr != nil {
		t.Fatal(terr, serr)
	}
	page := bytes.Repeat([]byte("abcd"), 2048) // compresses
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(i * 7)
	}
	go func() {
		source.WritePages(0x3000, page)
		source.Write(FrameState, random)
		source.Write(FrameGo, nil)
		source.WriteError(errors.New("disk full"))
		source.Flush()
	}()
	for _, tc := range []struct {
		typ  byte
		want []byte
	}{
		{FramePages, append([]byte{0, 0x30, 0, 0, 0, 0, 0, 0}, page...)},
		{FrameState, random},
		{FrameGo, nil},
	} {
		typ, p, err := target.Read()
		if err != nil || typ != tc.typ || !bytes.Equal(p, tc.want) {
			t.Fatalf("Read() = type %d, %d bytes, %v; want type %d, %d bytes", typ, len(p), err, tc.typ, len(tc.want))
		}
	}
	if _, _, err := target.Read(); !errors.Is(err, ErrRemote) {
		t.Errorf("Read() of an error frame = %v, want ErrRemote", err)
	}
	if source.WireBytes >= source.RawBytes {
		t.Errorf("wire bytes %d, raw %d: want the page compressed", source.WireBytes, source.RawBytes)
	}
}

// TestCorruptFrame flips each byte of a frame in turn: every flip is
// refused (ErrCorrupt), none panics or passes.
func TestCorruptFrame(t *testing.T) {
	var buf bytes.Buffer
	w := &Conn{}
	w.bw = newBufWriter(&buf)
	payload := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 200)
	if err := w.Write(FrameState, payload); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	frame := buf.Bytes()
	for i := 2; i < len(frame); i++ { // the type byte is free to change
		b := bytes.Clone(frame)
		b[i] ^= 0x40
		r := &Conn{br: newBufReader(bytes.NewReader(b))}
		if _, p, err := r.Read(); err == nil && bytes.Equal(p, payload) {
			t.Fatalf("flip of byte %d: frame read back intact", i)
		} else if err == nil {
			t.Fatalf("flip of byte %d: read %d bytes without an error", i, len(p))
		}
	}
}
