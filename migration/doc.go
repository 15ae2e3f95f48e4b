// Package migration is the wire protocol of live migration (snap migrate
// and snap receive): a mutually authenticated handshake over a shared
// token, then checksummed, optionally S2-compressed frames. It moves bytes
// only; runner drives it with a kernel on each side. docs/MIGRATION.md
// describes the whole exchange.
//
// Handshake (all integers little endian; the token never crosses the wire):
//
//	target -> source   "SNAPMIG\x00" | major u16 | minor u16 | nonceT [32]
//	source -> target   "SNAPMIG\x00" | major u16 | minor u16 | nonceS [32] |
//	                   HMAC-SHA256(token, "snap-migrate source" | nonceT | nonceS)
//	target -> source   status u8 (0 accepted, 1 refused) |
//	                   HMAC-SHA256(token, "snap-migrate target" | nonceS | nonceT)
//
// Each side checks the other's major version (equal) and MAC; a wrong
// token fails on both sides with ErrAuth before any frame is sent.
//
// Frame:
//
//	+------+-------+-------------+-------------+----------------+---------+
//	| type | flags | wire length | raw length  | CRC-32C of raw | payload |
//	| u8   | u8    | u32         | u32         | u32            |         |
//	+------+-------+-------------+-------------+----------------+---------+
//
// flags bit 0: the payload is S2 (block format) and decodes to raw length
// bytes. Both lengths are at most MaxFrame; a frame that does not decode or
// whose checksum differs is ErrCorrupt.
package migration
