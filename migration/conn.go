package migration

import (
	"bufio"
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

	"github.com/klauspost/compress/s2"
)

// Protocol version. A peer accepts the same major version; minor versions
// add frame types a peer of an older minor never receives unasked. 2.0
// encrypts the frames (1.0 sent them in the clear); 2.1 adds the query a
// source sends on a new connection when it lost the first one after the
// hand-over (FrameQuery, FrameAnswer); 2.2 the source's wait for the
// target to store what was sent (FrameSync, FrameSynced).
const (
	Major = 2
	Minor = 2
)

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
	// place, and decompressed); pbuf is a frame's prefix and payload
	// joined, wbuf the compression buffer, sbuf the frame being sealed:
	// all kept from frame to frame, so that a stream of memory allocates
	// nothing per frame.
	rbuf, dbuf, pbuf, wbuf, sbuf []byte
	// seal encrypts the frames this side writes, open decrypts the
	// peer's; sealN and openN count them (each frame's GCM nonce).
	seal, open   cipher.AEAD
	sealN, openN uint64
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

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// NetConn returns the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

func mac(token []byte, label string, a, b []byte) []byte {
	h := hmac.New(sha256.New, token)
	h.Write([]byte(label))
	h.Write(a)
	h.Write(b)
	return h.Sum(nil)
}

func hello(v Version, nonce []byte) []byte {
	b := make([]byte, 0, len(magic)+4+nonceSize)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, v.Major)
	b = binary.LittleEndian.AppendUint16(b, v.Minor)
	return append(b, nonce...)
}

// readHello reads the peer's greeting and returns its nonce and minor
// version; a peer of another major version than ours is
// ErrIncompatibleVersion.
func readHello(r io.Reader, ours Version) ([]byte, uint16, error) {
	b := make([]byte, len(magic)+4+nonceSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, 0, fmt.Errorf("read greeting: %w", err)
	}
	if string(b[:len(magic)]) != magic {
		return nil, 0, fmt.Errorf("%w: greeting %q is not a snap migration", ErrCorrupt, b[:len(magic)])
	}
	minor := binary.LittleEndian.Uint16(b[len(magic)+2:])
	if major := binary.LittleEndian.Uint16(b[len(magic):]); major != ours.Major {
		return nil, 0, fmt.Errorf("%w: the peer speaks %d.%d, this side %v (the major versions must be equal)",
			ErrIncompatibleVersion, major, minor, ours)
	}
	return b[len(magic)+4:], minor, nil
}

// Accept authenticates the source on nc, for the target: it sends a
// challenge and checks the source's answer. A source with another token
// is told it was refused and gets ErrAuth; one of another major version
// gets ErrIncompatibleVersion.
func Accept(nc net.Conn, token []byte) (*Conn, error) {
	return AcceptVersion(nc, token, Version{})
}

// AcceptVersion is Accept announcing version v (zero: Current).
func AcceptVersion(nc net.Conn, token []byte, v Version) (*Conn, error) {
	c := newConn(nc, v)
	nonceT := make([]byte, nonceSize)
	rand.Read(nonceT)
	if _, err := nc.Write(hello(c.version, nonceT)); err != nil {
		return nil, fmt.Errorf("send greeting: %w", err)
	}
	nonceS, minor, err := readHello(c.br, c.version)
	if err != nil {
		return nil, err
	}
	c.peerMinor = minor
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c.br, got); err != nil {
		return nil, fmt.Errorf("read source's proof: %w", err)
	}
	if !hmac.Equal(got, mac(token, "snap-migrate source", nonceT, nonceS)) {
		nc.Write(append([]byte{1}, make([]byte, sha256.Size)...))
		return nil, fmt.Errorf("%w: the source's token differs from ours", ErrAuth)
	}
	if _, err := nc.Write(append([]byte{0}, mac(token, "snap-migrate target", nonceS, nonceT)...)); err != nil {
		return nil, fmt.Errorf("send proof: %w", err)
	}
	if err := c.deriveKeys(token, nonceT, nonceS, false); err != nil {
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
	gcm := func(k []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	var err error
	if c.seal, err = gcm(sealKey); err != nil {
		return fmt.Errorf("frame cipher: %w", err)
	}
	if c.open, err = gcm(openKey); err != nil {
		return fmt.Errorf("frame cipher: %w", err)
	}
	c.sealN, c.openN = 0, 0
	return nil
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
	nonceT, minor, err := readHello(c.br, c.version)
	if err != nil {
		return nil, err
	}
	c.peerMinor = minor
	nonceS := make([]byte, nonceSize)
	rand.Read(nonceS)
	if _, err := nc.Write(append(hello(c.version, nonceS), mac(token, "snap-migrate source", nonceT, nonceS)...)); err != nil {
		return nil, fmt.Errorf("send greeting: %w", err)
	}
	ans := make([]byte, 1+sha256.Size)
	if _, err := io.ReadFull(c.br, ans); err != nil {
		return nil, fmt.Errorf("read target's answer: %w", err)
	}
	if ans[0] != 0 {
		return nil, fmt.Errorf("%w: the target refused our token", ErrAuth)
	}
	if !hmac.Equal(ans[1:], mac(token, "snap-migrate target", nonceS, nonceT)) {
		return nil, fmt.Errorf("%w: the target's proof does not match our token", ErrAuth)
	}
	if err := c.deriveKeys(token, nonceT, nonceS, true); err != nil {
		return nil, err
	}
	return c, nil
}

// minCompress is the smallest payload worth compressing.
const minCompress = 512

// Write sends one frame. Payloads of minCompress bytes or more are
// compressed with S2 when that makes them smaller. It buffers: Flush
// sends what is buffered.
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
	raw := payload
	if len(pre) > 0 {
		c.pbuf = append(append(c.pbuf[:0], pre...), payload...)
		raw = c.pbuf
	}
	if len(raw) > MaxFrame {
		return fmt.Errorf("migration frame of %d bytes exceeds %d", len(raw), MaxFrame)
	}
	wire, flags := raw, byte(0)
	if len(raw) >= minCompress {
		if n := s2.MaxEncodedLen(len(raw)); cap(c.wbuf) < n {
			c.wbuf = make([]byte, n)
		}
		if enc := s2.Encode(c.wbuf[:cap(c.wbuf)], raw); len(enc) < len(raw) {
			wire, flags = enc, flagS2
		}
	}
	// The sealed frame: header and payload, encrypted in place and
	// followed by the tag; the clear length is authenticated with it.
	n := headerSize + len(wire)
	if cap(c.sbuf) < n+c.seal.Overhead() {
		c.sbuf = make([]byte, n+c.seal.Overhead())
	}
	plain := c.sbuf[:n]
	plain[0], plain[1] = typ, flags
	binary.LittleEndian.PutUint32(plain[2:], uint32(len(raw)))
	binary.LittleEndian.PutUint32(plain[6:], crc32.Checksum(raw, castagnoli))
	copy(plain[headerSize:], wire)
	var prefix [lenSize]byte
	binary.LittleEndian.PutUint32(prefix[:], uint32(n+c.seal.Overhead()))
	sealed := c.seal.Seal(plain[:0], frameNonce(c.sealN), plain, prefix[:])
	c.sealN++
	if _, err := c.bw.Write(prefix[:]); err != nil {
		return err
	}
	if _, err := c.bw.Write(sealed); err != nil {
		return err
	}
	c.WireBytes += uint64(lenSize + len(sealed))
	c.RawBytes += uint64(len(raw))
	return nil
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
	var prefix [lenSize]byte
	if _, err := io.ReadFull(c.br, prefix[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(prefix[:])
	if n < uint32(headerSize+c.open.Overhead()) || n > maxSealed {
		return 0, nil, fmt.Errorf("%w: frame %d of %d sealed bytes", ErrCorrupt, c.openN, n)
	}
	if cap(c.rbuf) < int(n) {
		c.rbuf = make([]byte, n)
	}
	sealed := c.rbuf[:n]
	if _, err := io.ReadFull(c.br, sealed); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated frame: %v", ErrCorrupt, err)
	}
	plain, err := c.open.Open(sealed[:0], frameNonce(c.openN), sealed, prefix[:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: frame %d fails authentication (altered on the way, or not from this peer)", ErrCorrupt, c.openN)
	}
	c.openN++
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
		if cap(c.dbuf) < int(rawLen) {
			c.dbuf = make([]byte, rawLen)
		}
		if raw, err = s2.Decode(c.dbuf[:rawLen], wire); err != nil {
			return 0, nil, fmt.Errorf("%w: frame of type %d: %v", ErrCorrupt, typ, err)
		}
	}
	if crc32.Checksum(raw, castagnoli) != sum {
		return 0, nil, fmt.Errorf("%w: frame of type %d fails its checksum", ErrCorrupt, typ)
	}
	if typ == FrameError {
		return typ, raw, fmt.Errorf("%w: %s", ErrRemote, raw)
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
