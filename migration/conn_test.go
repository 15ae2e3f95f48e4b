package migration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
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
		{name: "2.2 target (proofs over nonces only)", vT: Version{Major, 2}, wantMinor: 2},
		{name: "2.2 source (proofs over nonces only)", vS: Version{Major, 2}, wantMinor: 2},
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

// relayed authenticates a target and a source (announcing vT and vS,
// one token) through a relay that passes each greeting through editT
// (the target's) or editS (the source's), nil meaning unchanged, and
// then every byte as it is.
func relayed(t *testing.T, vT, vS Version, editT, editS func(g []byte)) (target, source *Conn, terr, serr error) {
	t.Helper()
	ta, tb := net.Pipe() // the target's end, the relay's
	sa, sb := net.Pipe() // the source's end, the relay's
	t.Cleanup(func() { ta.Close(); tb.Close(); sa.Close(); sb.Close() })
	pass := func(dst, src net.Conn, edit func([]byte)) {
		defer dst.Close()
		defer src.Close()
		g := make([]byte, helloSize)
		if _, err := io.ReadFull(src, g); err != nil {
			return
		}
		if edit != nil {
			edit(g)
		}
		if _, err := dst.Write(g); err == nil {
			io.Copy(dst, src)
		}
	}
	go pass(sb, tb, editT)
	go pass(tb, sb, editS)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if target, terr = AcceptVersion(ta, []byte("tok"), vT); terr != nil {
			ta.Close()
		}
	}()
	if source, serr = ConnectVersion(sa, []byte("tok"), vS); serr != nil {
		sa.Close()
	}
	<-done
	return target, source, terr, serr
}

// setMinor returns an edit of a greeting that makes it say minor m.
func setMinor(m uint16) func([]byte) {
	return func(g []byte) { binary.LittleEndian.PutUint16(g[len(magic)+2:], m) }
}

// TestHandshakeRelayed: a man in the middle who rewrites the minor
// version of either side's greeting (to an older minor, to a newer one,
// on both greetings, also with the nonce's mark of a 2.3 side wiped so
// that it looks like an older peer) makes the handshake fail on both
// sides with ErrAuth, the one line of a wrong token: the proofs cover
// both greetings whole. A relay that changes nothing passes, and so does
// one between a current side and a 2.2 one, whose proofs cover the nonces
// only (2.2 speaks no other).
func TestHandshakeRelayed(t *testing.T) {
	wipeMark := func(g []byte) { copy(g[helloSize-len(boundMark):], "XXXXXXXX") }
	older := setMinor(Minor - 1)
	both := func(edits ...func([]byte)) func([]byte) {
		return func(g []byte) {
			for _, e := range edits {
				e(g)
			}
		}
	}
	for _, tc := range []struct {
		name         string
		vT, vS       Version
		editT, editS func([]byte)
		wantMinor    uint16
		wantAuthErr  bool
	}{
		{name: "unchanged", wantMinor: Minor},
		{name: "unchanged, 2.2 target", vT: Version{Major, 2}, wantMinor: 2},
		{name: "unchanged, 2.2 source", vS: Version{Major, 2}, wantMinor: 2},
		{name: "target's minor older", editT: older, wantAuthErr: true},
		{name: "target's minor 0", editT: setMinor(0), wantAuthErr: true},
		{name: "target's minor newer", editT: setMinor(Minor + 1), wantAuthErr: true},
		{name: "source's minor older", editS: older, wantAuthErr: true},
		{name: "source's minor newer", editS: setMinor(Minor + 1), wantAuthErr: true},
		{name: "both minors older", editT: older, editS: older, wantAuthErr: true},
		{name: "both older, marks wiped", editT: both(older, wipeMark), editS: both(older, wipeMark), wantAuthErr: true},
		{name: "target older, its mark wiped", editT: both(older, wipeMark), wantAuthErr: true},
		{name: "2.2 source's minor made current", vS: Version{Major, 2}, editS: setMinor(Minor), wantAuthErr: true},
		{name: "2.2 target's minor made current", vT: Version{Major, 2}, editT: setMinor(Minor), wantAuthErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, source, terr, serr := relayed(t, tc.vT, tc.vS, tc.editT, tc.editS)
			if tc.wantAuthErr {
				if !errors.Is(terr, ErrAuth) || !errors.Is(serr, ErrAuth) {
					t.Fatalf("handshake = target %v, source %v; want ErrAuth on both", terr, serr)
				}
				for _, err := range []error{terr, serr} {
					if strings.Contains(err.Error(), "\n") {
						t.Errorf("error %q is more than one line", err)
					}
				}
				return
			}
			if terr != nil || serr != nil {
				t.Fatalf("handshake = target %v, source %v; want success", terr, serr)
			}
			if target.Minor() != tc.wantMinor || source.Minor() != tc.wantMinor {
				t.Errorf("Minor = target %d, source %d; want %d on both", target.Minor(), source.Minor(), tc.wantMinor)
			}
			go func() {
				source.Write(FrameGo, nil)
				source.Flush()
			}()
			if typ, _, err := target.Read(); err != nil || typ != FrameGo {
				t.Errorf("Read() through the relay = %d, %v; want FrameGo", typ, err)
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
