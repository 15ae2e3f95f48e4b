package migration

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Protocol version. A peer accepts the same major version; minor versions
// add frame types a peer of an older minor never receives unasked. 2.0
// encrypts the frames (1.0 sent them in the clear); 2.1 adds the query a
// source sends on a new connection when it lost the first one after the
// hand-over (FrameQuery, FrameAnswer); 2.2 the source's wait for the
// target to store what was sent (FrameSync, FrameSynced); 2.3 proofs over
// both greetings whole, versions included (minorBound).
const (
	Major = 2
	Minor = 3
)

// minorBound is the first minor whose proofs cover both greetings whole
// (magic, versions and nonces), so that a greeting changed on the way
// fails authentication; before it they covered the nonces only. A side
// from minorBound on ends its nonce with boundMark, so that a peer of
// minorBound or later knows it, whatever minor its greeting was made to
// say: a man in the middle cannot have two such sides use the older
// proofs (nor speak an older minor) without failing them.
const minorBound = 3

// boundMark ends the nonce of a side of minorBound or later; the nonce's
// other 24 bytes are random.
const boundMark = "SNAPBIND"

// Version is a protocol version a connection announces and speaks. The
// zero Version stands for the current one (Major.Minor); a side may
// announce an older minor (tests do, to play an older peer) and then
// speaks only what that minor has.
type Version struct{ Major, Minor uint16 }

// Current is the version this snap speaks.
func Current() Version { return Version{Major, Minor} }

// orCurrent returns v, or the current version if v is zero.
func (v Version) orCurrent() Version {
	if v == (Version{}) {
		return Current()
	}
	return v
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

const magic = "SNAPMIG\x00"

// MaxFrame bounds a frame's payload, raw or on the wire.
const MaxFrame = 4<<20 + 64

// Frame types.
const (
	// FrameRound starts a round of memory: round u32 | memory size u64.
	// The target sizes its memory to the size before the pages follow.
	FrameRound byte = 1 + iota
	// FramePages holds pages: memory offset u64 | bytes (page aligned).
	FramePages
	// FrameState holds the next part of the kernel state blob.
	FrameState
	// FrameMeta holds the sandbox's metadata (JSON object of strings).
	FrameMeta
	// FrameCommit ends the transfer: memory size u64 | state length u64.
	// The target restores and answers FrameReady (or FrameError).
	FrameCommit
	// FrameReady: the target restored the sandbox; it is not running.
	FrameReady
	// FrameGo: the source stays paused for good; the target resumes.
	FrameGo
	// FrameRunning: the sandbox runs on the target.
	FrameRunning
	// FrameDone: the source has discarded its sandbox.
	FrameDone
	// FrameError: the sender failed; the payload is its one-line message.
	FrameError
	// FrameQuery (2.1), the first frame of a new connection: the source
	// asks what became of migration id (the payload: the id it sent in
	// its metadata), having lost its connection after FrameGo.
	FrameQuery
	// FrameAnswer (2.1): the target's answer to FrameQuery, one byte
	// (AnswerRunning, AnswerDiscarded or AnswerUnknown).
	FrameAnswer
	// FrameSync (2.2, empty): the target answers FrameSynced once it has
	// stored every frame sent before it. A source sends it after a round
	// sent while the program runs, so that the round paused next does
	// not wait for the target to work through a backlog of earlier ones
	// (the socket buffers hold megabytes).
	FrameSync
	// FrameSynced (2.2, empty): the target's answer to FrameSync.
	FrameSynced
)

// Answers to FrameQuery.
const (
	// AnswerUnknown: the target knows no migration of that id (it is
	// another process than the one that received it, or forgot it).
	AnswerUnknown byte = iota
	// AnswerRunning: the target got FrameGo and runs the sandbox.
	AnswerRunning
	// AnswerDiscarded: the target never got FrameGo and has discarded
	// what it received; it will never run it.
	AnswerDiscarded
)

const (
	flagS2 = 1
	// lenSize is the clear length before each sealed frame; headerSize
	// the sealed header: type, flags, raw length, CRC-32C of raw.
	lenSize    = 4
	headerSize = 1 + 1 + 4 + 4
	nonceSize  = 32
	keySize    = 32 // AES-256
	// maxSealed bounds a sealed frame: header, payload and GCM tag.
	maxSealed = headerSize + MaxFrame + 16
)

// Key derivation labels (HKDF-SHA256 info), one key per direction.
const (
	infoSourceToTarget = "snap-migrate 2.0 source to target"
	infoTargetToSource = "snap-migrate 2.0 target to source"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Conn is an authenticated migration stream. It is not safe for
// concurrent use, except that one goroutine may read while another writes.
type Conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// rbuf and dbuf are the last frame read (sealed, then opened in
	// place, and decompressed); sbuf the frame being sealed, sealer's
	// buffers the compression's: all kept from frame to frame, so that a
	// stream of memory allocates nothing per frame.
	rbuf, dbuf, sbuf []byte
	sealer           sealer
	// noCompress turns S2 off for the frames this side writes.
	noCompress bool
	// batches and sealers are what PageWriters left for the next one.
	batches []*pageBatch
	sealers []*sealer
	// ahead, once ReadAhead started it, reads and opens the frames.
	ahead *readAhead
	// readFailed is the first frame that did not open: every later Read
	// returns it (the frames after it may open, but the sequence is
	// broken).
	readFailed error
	// seal encrypts the frames this side writes, open decrypts the
	// peer's; sealN and openN count them (each frame's GCM nonce).
	seal, open   cipher.AEAD
	sealN, openN uint64
	// sealKey and openKey are their keys, for the PageWriter's workers
	// (each seals with its own AEAD) and the reader's.
	sealKey, openKey []byte
	// WireBytes and RawBytes count what was written (after and before
	// compression).
	WireBytes, RawBytes uint64
	// version is what this side announced; peerMinor the minor version
	// the peer announced (the major is the same, or the handshake failed).
	version   Version
	peerMinor uint16
}

func newConn(nc net.Conn, v Version) *Conn {
	return &Conn{nc: nc, br: bufio.NewReaderSize(nc, 256<<10), bw: bufio.NewWriterSize(nc, 256<<10), version: v.orCurrent()}
}

// PeerMinor returns the minor protocol version the peer announced.
func (c *Conn) PeerMinor() uint16 { return c.peerMinor }

// Minor returns the minor version both sides speak, the lower of the two
// announced: frame types newer than it are neither sent nor accepted.
func (c *Conn) Minor() uint16 { return min(c.version.Minor, c.peerMinor) }

// Close closes the connection (and ends its read-ahead, if any).
func (c *Conn) Close() error {
	if c.ahead != nil {
		c.ahead.stop()
	}
	return c.nc.Close()
}

// NetConn returns the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

func mac(token []byte, label string, a, b []byte) []byte {
	h := hmac.New(sha256.New, token)
	h.Write([]byte(label))
	h.Write(a)
	h.Write(b)
	return h.Sum(nil)
}

// newNonce returns a fresh nonce for a side announcing v: random, and
// ending with boundMark from minorBound on.
func newNonce(v Version) []byte {
	n := make([]byte, nonceSize)
	rand.Read(n)
	if v.Minor >= minorBound {
		copy(n[nonceSize-len(boundMark):], boundMark)
	}
	return n
}

// proofs returns the source's and the target's proofs over the target's
// greeting helloT and the source's helloS (each as this side sent or
// read it). bound (boundProofs) makes them cover both greetings whole,
// else only their nonces, as a peer older than minorBound computes them.
func proofs(token []byte, bound bool, helloT, helloS []byte) (source, target []byte) {
	if bound {
		return mac(token, "snap-migrate 2.3 source", helloT, helloS), mac(token, "snap-migrate 2.3 target", helloS, helloT)
	}
	nT, nS := helloNonce(helloT), helloNonce(helloS)
	return mac(token, "snap-migrate source", nT, nS), mac(token, "snap-migrate target", nS, nT)
}

// boundProofs reports whether a side announcing ours uses the proofs over
// whole greetings with the peer whose greeting is peer: if both sides are
// of minorBound or later, as the peer's minor or its nonce's mark says.
// Whatever a man in the middle changes of either greeting, the two sides
// then either decide alike and prove different greetings, or decide
// apart: authentication fails on both either way.
func boundProofs(ours Version, peer []byte) bool {
	return ours.Minor >= minorBound &&
		(helloMinor(peer) >= minorBound || bytes.HasSuffix(helloNonce(peer), []byte(boundMark)))
}

func hello(v Version, nonce []byte) []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, v.Major)
	b = binary.LittleEndian.AppendUint16(b, v.Minor)
	return append(b, nonce...)
}

// helloSize is the size of a greeting: magic, major, minor, nonce.
const helloSize = len(magic) + 4 + nonceSize

func helloMinor(h []byte) uint16 { return binary.LittleEndian.Uint16(h[len(magic)+2:]) }
func helloNonce(h []byte) []byte { return h[len(magic)+4:] }

// readHello reads the peer's greeting and returns it whole; a peer of
// another major version than ours is ErrIncompatibleVersion.
func readHello(r io.Reader, ours Version) ([]byte, error) {
	b := make([]byte, helloSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: greeting %q is not a snap migration", ErrCorrupt, b[:len(magic)])
	}
	if major := binary.LittleEndian.Uint16(b[len(magic):]); major != ours.Major {
		return nil, fmt.Errorf("%w: the peer speaks %d.%d, this side %v (the major versions must be equal)",
			ErrIncompatibleVersion, major, helloMinor(b), ours)
	}
	return b, nil
}

// authFailed is the one line of a handshake whose proofs do not match:
// the peer holds another token, or a greeting was changed on the way.
const authFailed = "another token, or a greeting changed on the way"

// Accept authenticates the source on nc, for the target: it sends a
// challenge and checks the source's answer. A source with another token,
// or whose greeting or ours was changed on the way, is told it was
// refused and gets ErrAuth; one of another major version gets
// ErrIncompatibleVersion.
func Accept(nc net.Conn, token []byte) (*Conn, error) {
	return AcceptVersion(nc, token, Version{})
}

// AcceptVersion is Accept announcing version v (zero: Current).
func AcceptVersion(nc net.Conn, token []byte, v Version) (*Conn, error) {
	c := newConn(nc, v)
	helloT := hello(c.version, newNonce(c.version))
	if _, err := nc.Write(helloT); err != nil {
		return nil, fmt.Errorf("send greeting: %w", err)
	}
	helloS, err := readHello(c.br, c.version)
	if err != nil {
		return nil, err
	}
	c.peerMinor = helloMinor(helloS)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c.br, got); err != nil {
		return nil, fmt.Errorf("read source's proof: %w", err)
	}
	wantS, proofT := proofs(token, boundProofs(c.version, helloS), helloT, helloS)
	if !hmac.Equal(got, wantS) {
		nc.Write(append([]byte{1}, make([]byte, sha256.Size)...))
		return nil, fmt.Errorf("%w: the source's proof does not match (%s)", ErrAuth, authFailed)
	}
	if _, err := nc.Write(append([]byte{0}, proofT...)); err != nil {
		return nil, fmt.Errorf("send proof: %w", err)
	}
	if err := c.deriveKeys(token, helloNonce(helloT), helloNonce(helloS), false); err != nil {
		return nil, err
	}
	return c, nil
}

// deriveKeys keys the frames of both directions: HKDF-SHA256 of the token,
// salted with both nonces (so every connection has its own keys), one
// AES-256-GCM key per direction.
func (c *Conn) deriveKeys(token, nonceT, nonceS []byte, source bool) error {
	salt := append(append([]byte{}, nonceT...), nonceS...)
	s2t, err := hkdf.Key(sha256.New, token, salt, infoSourceToTarget, keySize)
	if err != nil {
		return fmt.Errorf("derive keys: %w", err)
	}
	t2s, err := hkdf.Key(sha256.New, token, salt, infoTargetToSource, keySize)
	if err != nil {
		return fmt.Errorf("derive keys: %w", err)
	}
	if source {
		return c.setKeys(s2t, t2s)
	}
	return c.setKeys(t2s, s2t)
}

// setKeys makes sealKey the key of frames written and openKey that of
// frames read, both counters starting at zero.
func (c *Conn) setKeys(sealKey, openKey []byte) error {
	var err error
	if c.seal, err = gcm(sealKey); err != nil {
		return fmt.Errorf("frame cipher: %w", err)
	}
	if c.open, err = gcm(openKey); err != nil {
		return fmt.Errorf("frame cipher: %w", err)
	}
	c.sealN, c.openN = 0, 0
	c.sealKey, c.openKey = sealKey, openKey
	return nil
}

// gcm returns an AES-256-GCM AEAD of key k.
func gcm(k []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// frameNonce is the GCM nonce of frame n of a direction: n, little
// endian, in 12 bytes. Each direction has its own key, so no nonce is
// used twice with one key.
func frameNonce(n uint64) []byte {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], n)
	return b[:]
}

// Connect authenticates with the target on nc, for the source: it answers
// the target's challenge and checks the target's proof. A target of
// another major version is ErrIncompatibleVersion, found before anything
// is sent.
func Connect(nc net.Conn, token []byte) (*Conn, error) {
	return ConnectVersion(nc, token, Version{})
}

// ConnectVersion is Connect announcing version v (zero: Current).
func ConnectVersion(nc net.Conn, token []byte, v Version) (*Conn, error) {
	c := newConn(nc, v)
	helloT, err := readHello(c.br, c.version)
	if err != nil {
		return nil, err
	}
	c.peerMinor = helloMinor(helloT)
	helloS := hello(c.version, newNonce(c.version))
	proofS, wantT := proofs(token, boundProofs(c.version, helloT), helloT, helloS)
	if _, err := nc.Write(append(helloS, proofS...)); err != nil {
		return nil, fmt.Errorf("send greeting: %w", err)
	}
	ans := make([]byte, 1+sha256.Size)
	if _, err := io.ReadFull(c.br, ans); err != nil {
		return nil, fmt.Errorf("read target's answer: %w", err)
	}
	if ans[0] != 0 {
		return nil, fmt.Errorf("%w: the target refused our proof (%s)", ErrAuth, authFailed)
	}
	if !hmac.Equal(ans[1:], wantT) {
		return nil, fmt.Errorf("%w: the target's proof does not match (%s)", ErrAuth, authFailed)
	}
	if err := c.deriveKeys(token, helloNonce(helloT), helloNonce(helloS), true); err != nil {
		return nil, err
	}
	return c, nil
}

// minCompress is the smallest payload worth compressing.
const minCompress = 512

// SetCompression turns the S2 compression of the frames this side writes
// on (the default) or off. Off, a frame costs no compression at either
// end and takes its raw size on the wire: the better choice where the
// link is faster than S2 (loopback). The peer reads both.
func (c *Conn) SetCompression(on bool) { c.noCompress = !on }

// Write sends one frame. Payloads of minCompress bytes or more are
// compressed with S2 when that makes them smaller (unless compression is
// off). It buffers: Flush sends what is buffered.
func (c *Conn) Write(typ byte, payload []byte) error {
	return c.write(typ, nil, payload)
}

// WritePages sends a FramePages frame for data at memory offset off.
func (c *Conn) WritePages(off uint64, data []byte) error {
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], off)
	return c.write(FramePages, pre[:], data)
}

func (c *Conn) write(typ byte, pre, payload []byte) error {
	c.sealer.aead, c.sealer.compress = c.seal, !c.noCompress
	sealed, err := c.sealer.appendFrame(c.sbuf[:0], c.sealN, typ, pre, payload)
	if err != nil {
		return err
	}
	c.sbuf = sealed
	c.sealN++
	if _, err := c.bw.Write(sealed); err != nil {
		return err
	}
	c.WireBytes += uint64(len(sealed))
	c.RawBytes += uint64(len(pre) + len(payload))
	return nil
}

// sealer makes frames: one per goroutine (the connection's, or each of a
// PageWriter's workers), its scratch buffers kept from frame to frame.
type sealer struct {
	aead     cipher.AEAD
	compress bool
	// raw joins a frame's prefix and payload for the compressor; enc is
	// the compressor's output.
	raw, enc []byte
}

// appendFrame appends frame n of this direction to dst: its clear length,
// then the sealed header, payload (pre then payload, compressed if that
// makes it smaller) and tag.
func (s *sealer) appendFrame(dst []byte, n uint64, typ byte, pre, payload []byte) ([]byte, error) {
	rawLen := len(pre) + len(payload)
	if rawLen > MaxFrame {
		return dst, fmt.Errorf("migration frame of %d bytes exceeds %d", rawLen, MaxFrame)
	}
	sum := crc32.Update(crc32.Update(0, castagnoli, pre), castagnoli, payload)
	var wire []byte // the compressed payload, if it is used
	if s.compress && rawLen >= minCompress {
		raw := payload
		if len(pre) > 0 {
			s.raw = append(append(s.raw[:0], pre...), payload...)
			raw = s.raw
		}
		if m := s2.MaxEncodedLen(rawLen); cap(s.enc) < m {
			s.enc = make([]byte, m)
		}
		if enc := s2.Encode(s.enc[:cap(s.enc)], raw); len(enc) < rawLen {
			wire = enc
		}
	}
	wireLen, flags := rawLen, byte(0)
	if wire != nil {
		wireLen, flags = len(wire), flagS2
	}
	// The sealed frame: header and payload, encrypted in place and
	// followed by the tag; the clear length is authenticated with it.
	plainLen := headerSize + wireLen
	sealedLen := plainLen + s.aead.Overhead()
	start := len(dst)
	dst = slices.Grow(dst, lenSize+sealedLen)[:start+lenSize+plainLen]
	prefix := dst[start : start+lenSize]
	binary.LittleEndian.PutUint32(prefix, uint32(sealedLen))
	plain := dst[start+lenSize:]
	plain[0], plain[1] = typ, flags
	binary.LittleEndian.PutUint32(plain[2:], uint32(rawLen))
	binary.LittleEndian.PutUint32(plain[6:], sum)
	if wire != nil {
		copy(plain[headerSize:], wire)
	} else {
		copy(plain[headerSize+copy(plain[headerSize:], pre):], payload)
	}
	s.aead.Seal(plain[:0], frameNonce(n), plain, prefix)
	return dst[:start+lenSize+sealedLen], nil
}

// Flush sends what Write buffered.
func (c *Conn) Flush() error { return c.bw.Flush() }

// WriteError sends a FrameError with err's message, best effort.
func (c *Conn) WriteError(err error) {
	msg := err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	if c.Write(FrameError, []byte(msg)) == nil {
		c.Flush()
	}
}

// Read returns the next frame. The payload is valid until the next Read.
// A frame that fails authentication (altered on the way, or not sealed
// by the peer of this connection), does not decompress to its raw length
// or fails its checksum is ErrCorrupt. A FrameError from the peer is
// returned as an ErrRemote error.
func (c *Conn) Read() (byte, []byte, error) {
	if c.ahead != nil {
		return c.ahead.read()
	}
	if c.readFailed != nil {
		return 0, nil, c.readFailed
	}
	prefix, sealed, err := readSealed(c.br, &c.rbuf, c.openN)
	if err != nil {
		return 0, nil, err
	}
	typ, raw, err := openFrame(c.open, c.openN, prefix, sealed, &c.dbuf)
	if err != nil {
		c.readFailed = err
		return 0, nil, err
	}
	c.openN++
	return remoteError(typ, raw)
}

// remoteError returns the frame Read got, and for a FrameError the
// peer's error as an ErrRemote error.
func remoteError(typ byte, raw []byte) (byte, []byte, error) {
	if typ == FrameError {
		return typ, raw, fmt.Errorf("%w: %s", ErrRemote, raw)
	}
	return typ, raw, nil
}

// readSealed reads frame n's clear length and its sealed bytes into buf
// (grown as needed).
func readSealed(r io.Reader, buf *[]byte, n uint64) ([lenSize]byte, []byte, error) {
	var prefix [lenSize]byte
	if k, err := io.ReadFull(r, prefix[:]); err != nil {
		if k > 0 {
			return prefix, nil, fmt.Errorf("%w: truncated frame: %v", ErrCorrupt, err)
		}
		return prefix, nil, err
	}
	size := binary.LittleEndian.Uint32(prefix[:])
	if size < uint32(headerSize+gcmOverhead) || size > maxSealed {
		return prefix, nil, fmt.Errorf("%w: frame %d of %d sealed bytes", ErrCorrupt, n, size)
	}
	if cap(*buf) < int(size) {
		*buf = make([]byte, size)
	}
	sealed := (*buf)[:size]
	if _, err := io.ReadFull(r, sealed); err != nil {
		return prefix, nil, fmt.Errorf("%w: truncated frame: %v", ErrCorrupt, err)
	}
	return prefix, sealed, nil
}

// gcmOverhead is the GCM tag's size.
const gcmOverhead = 16

// openFrame opens sealed frame n in place, decompresses it into dbuf
// (grown as needed) if it is compressed, checks it and returns its type
// and raw payload.
func openFrame(aead cipher.AEAD, n uint64, prefix [lenSize]byte, sealed []byte, dbuf *[]byte) (byte, []byte, error) {
	plain, err := aead.Open(sealed[:0], frameNonce(n), sealed, prefix[:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: frame %d fails authentication (altered on the way, or not from this peer)", ErrCorrupt, n)
	}
	typ, flags := plain[0], plain[1]
	rawLen, sum := binary.LittleEndian.Uint32(plain[2:]), binary.LittleEndian.Uint32(plain[6:])
	wire := plain[headerSize:]
	if rawLen > MaxFrame || flags&^flagS2 != 0 || (flags == 0 && len(wire) != int(rawLen)) {
		return 0, nil, fmt.Errorf("%w: frame header type %d flags %#x lengths %d/%d", ErrCorrupt, typ, flags, len(wire), rawLen)
	}
	raw := wire
	if flags&flagS2 != 0 {
		if n, err := s2.DecodedLen(wire); err != nil || n != int(rawLen) {
			return 0, nil, fmt.Errorf("%w: frame of type %d does not decode to %d bytes", ErrCorrupt, typ, rawLen)
		}
		if cap(*dbuf) < int(rawLen) {
			*dbuf = make([]byte, rawLen)
		}
		if raw, err = s2.Decode((*dbuf)[:rawLen], wire); err != nil {
			return 0, nil, fmt.Errorf("%w: frame of type %d: %v", ErrCorrupt, typ, err)
		}
	}
	if crc32.Checksum(raw, castagnoli) != sum {
		return 0, nil, fmt.Errorf("%w: frame of type %d fails its checksum", ErrCorrupt, typ)
	}
	return typ, raw, nil
}

// Expect reads the next frame and fails unless it has type want.
func (c *Conn) Expect(want byte) ([]byte, error) {
	typ, p, err := c.Read()
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("%w: frame of type %d, want %d", ErrCorrupt, typ, want)
	}
	return p, nil
}
