// Package migration is the wire protocol of live migration (snap migrate
// and snap receive): a mutually authenticated handshake over a shared
// token, then encrypted and authenticated (AES-256-GCM), checksummed,
// optionally S2-compressed frames. It moves bytes
// only; runner drives it with a kernel on each side. docs/MIGRATION.md
// describes the whole exchange.
//
// Handshake (all integers little endian; the token never crosses the wire;
// helloT and helloS are the two greetings whole, as each side sent or
// read them):
//
//	target -> source   helloT = "SNAPMIG\x00" | major u16 | minor u16 | nonceT [32]
//	source -> target   helloS = "SNAPMIG\x00" | major u16 | minor u16 | nonceS [32] |
//	                   HMAC-SHA256(token, "snap-migrate 2.3 source" | helloT | helloS)
//	target -> source   status u8 (0 accepted, 1 refused) |
//	                   HMAC-SHA256(token, "snap-migrate 2.3 target" | helloS | helloT)
//
// Each side checks the other's major version (equal) and MAC; a wrong
// token, or a greeting changed on the way (its minor version, say), fails
// on both sides with ErrAuth before any frame is sent. A 2.3 side's nonce
// ends with "SNAPBIND"; with a peer older than 2.3 (minor below 3 and no
// such mark) it uses that peer's proofs, which cover the nonces only
// (labels "snap-migrate source" and "snap-migrate target", nonceT | nonceS
// and nonceS | nonceT; see minorBound). Then each direction has its own
// AES-256-GCM key, HKDF-SHA256 of the token salted with nonceT | nonceS
// (info "snap-migrate 2.0 source to target", "... target to source"), so
// every connection has fresh keys.
//
// Frame (the sealed part is encrypted; the clear length is its additional
// data; the GCM nonce is the frame's number in its direction, counting
// from 0, as a 12-byte little-endian integer, so a frame replayed, dropped
// or reordered fails too):
//
//	+-------------+-------------------------------------------------------------+
//	| length u32  | sealed: type u8 | flags u8 | raw length u32 | CRC-32C of raw |
//	| (clear)     |         u32 | payload | GCM tag [16]                          |
//	+-------------+-------------------------------------------------------------+
//
// flags bit 0: the payload is S2 (block format) and decodes to raw length
// bytes. The raw length is at most MaxFrame; a frame that fails
// authentication, does not decode or whose checksum differs is ErrCorrupt.
//
// Pipelines: a PageWriter seals FramePages frames on worker goroutines
// while its caller reads the next memory and one goroutine writes them in
// order, and a read-ahead (Conn.ReadAhead) reads and opens frames on other
// goroutines while its caller handles earlier ones. Frame numbers are
// given in stream order before the work is shared out, so the frames are
// those of the plain Write and Read, and a peer cannot tell the
// difference.
//
// Versions: a side announces a Version (Current unless a test plays an
// older peer, AcceptVersion and ConnectVersion); both speak the lower
// minor (Conn.Minor), and another major is ErrIncompatibleVersion.
package migration
