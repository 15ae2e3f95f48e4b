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
	return pairVersions(t, tokT, tokS, Version{}, Version{})
}

// pairVersions is pair with the target announcing vT and the source vS.
func pairVersions(t *testing.T, tokT, tokS string, vT, vS Version) (target, source *Conn, terr, serr error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		target, terr = AcceptVersion(a, []byte(tokT), vT)
		if terr != nil {
			a.Close()
		}
	}()
	source, serr = ConnectVersion(b, []byte(tokS), vS)
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
			target, source, terr, serr := pair(t, tc.tokT, tc.tokS)
			if !tc.wantErr {
				if terr != nil || serr != nil {
					t.Fatalf("handshake = %v / %v, want success", terr, serr)
				}
				if target.PeerMinor() != Minor || source.PeerMinor() != Minor {
					t.Errorf("PeerMinor = target %d, source %d; want %d on both", target.PeerMinor(), source.PeerMinor(), Minor)
				}
				return
			}
			if !errors.Is(terr, ErrAuth) || !errors.Is(serr, ErrAuth) {
				t.Errorf("handshake = target %v, source %v; want ErrAuth on both", terr, serr)
			}
		})
	}
}

// TestHandshakeVersions: both sides speak the lower of the two minors
// announced; another major is refused by the source, which reads the
// target's version first, before it sends anything.
func TestHandshakeVersions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vT, vS    Version
		wantMinor uint16
		wantErr   bool
	}{
		{name: "both current", wantMinor: Minor},
		{name: "older target", vT: Version{Major, 1}, wantMinor: 1},
		{name: "2.0 target", vT: Version{Major, 0}, wantMinor: 0},
		{name: "older source", vS: Version{Major, 1}, wantMinor: 1},
		{name: "newer target", vT: Version{Major, Minor + 1}, wantMinor: Minor},
		{name: "other major target", vT: Version{Major + 1, 0}, wantErr: true},
		{name: "1.0 target", vT: Version{1, 0}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, source, terr, serr := pairVersions(t, "tok", "tok", tc.vT, tc.vS)
			if tc.wantErr {
				if !errors.Is(serr, ErrIncompatibleVersion) || terr == nil {
					t.Fatalf("handshake = target %v, source %v; want the source's ErrIncompatibleVersion", terr, serr)
				}
				return
			}
			if terr != nil || serr != nil {
				t.Fatalf("handshake = %v / %v, want success", terr, serr)
			}
			if target.Minor() != tc.wantMinor || source.Minor() != tc.wantMinor {
				t.Errorf("Minor = target %d, source %d; want %d on both", target.Minor(), source.Minor(), tc.wantMinor)
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

// TestCorruptFrame flips each byte of a sealed frame in turn: every flip
// is refused (ErrCorrupt, or a short read where the length grew), none
// panics or passes; so is a frame replayed or taken out of order (its
// counter nonce differs).
func TestCorruptFrame(t *testing.T) {
	var buf bytes.Buffer
	w := keyedWriter(&buf)
	payload := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 200)
	if err := w.Write(FrameState, payload); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	frame := bytes.Clone(buf.Bytes())
	if bytes.Contains(frame, payload[:64]) {
		t.Fatalf("the sealed frame holds its payload in the clear")
	}
	if _, p, err := keyedReader(bytes.NewReader(frame)).Read(); err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("Read() of the frame = %d bytes, %v", len(p), err)
	}
	for i := 0; i < len(frame); i++ {
		b := bytes.Clone(frame)
		b[i] ^= 0x40
		if _, p, err := keyedReader(bytes.NewReader(b)).Read(); err == nil {
			t.Fatalf("flip of byte %d: read %d bytes without an error", i, len(p))
		} else if i >= lenSize && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip of byte %d: %v, want ErrCorrupt", i, err)
		}
	}
	// The same frame twice: the second is read with the next nonce. With
	// a read-ahead too, where the third (a good frame: the first one's
	// nonce came before) is refused as well, the sequence being broken.
	for _, ahead := range []bool{false, true} {
		var buf bytes.Buffer
		w := keyedWriter(&buf)
		w.Write(FrameState, payload)
		w.Flush()
		replayed := append(bytes.Clone(buf.Bytes()), buf.Bytes()...)
		w.Write(FrameState, payload) // frame 1
		w.Write(FrameState, payload) // frame 2
		w.Flush()
		r := keyedReader(bytes.NewReader(append(replayed, buf.Bytes()[len(frame):]...)))
		if ahead {
			if err := r.ReadAhead(2); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, _, err := r.Read(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("read-ahead %v: Read() %d after a replayed frame = %v, want ErrCorrupt", ahead, i, err)
			}
		}
	}
}

// TestKeysPerConnection: two connections with the same token have other
// keys (the nonces salt them), so a frame of one does not open in the
// other.
func TestKeysPerConnection(t *testing.T) {
	t1, s1, e1, e2 := pair(t, "tok", "tok")
	t2, _, e3, e4 := pair(t, "tok", "tok")
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil {
		t.Fatal(e1, e2, e3, e4)
	}
	var buf bytes.Buffer
	s1.bw = newBufWriter(&buf)
	s1.Write(FrameGo, nil)
	s1.Flush()
	frame := bytes.Clone(buf.Bytes())
	t1.br = newBufReader(bytes.NewReader(frame))
	if typ, _, err := t1.Read(); err != nil || typ != FrameGo {
		t.Fatalf("Read() on its own connection = %d, %v", typ, err)
	}
	t2.br = newBufReader(bytes.NewReader(frame))
	if _, _, err := t2.Read(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Read() on another connection = %v, want ErrCorrupt", err)
	}
}
