package storage

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
)

// The working set of an image: the memory chunks its first lazy restore
// touched before the background loader reached them (format in
// docs/IMAGE_FORMAT.md). It is a small object beside the image's blobs,
// NAME/workingset, bound to the image by its manifest's SHA-256: a
// working set whose image was replaced since is ignored, and a new image
// (a new name, or a replacing save) starts without one.
//
//	offset  size  field
//	     0     8  magic "SNAPWSET"
//	     8     2  major (uint16 LE) = 1
//	    10     2  minor (uint16 LE) = 0
//	    12     4  count N (uint32 LE)
//	    16    32  SHA-256 of the image's manifest bytes
//	    48    4N  chunk indices (uint32 LE), strictly ascending, < chunks
//	  48+4N    4  CRC-32C (Castagnoli) of bytes [0, 48+4N)

// WorkingSetKey is the working set's key beside the image's blobs.
const WorkingSetKey = "workingset"

const (
	wsMagic      = "SNAPWSET"
	wsMajor      = 1
	wsMinor      = 0
	wsHeaderSize = 48
	// maxWorkingSetSize bounds the object: 64 GiB of 1 MiB chunks fit.
	maxWorkingSetSize = maxAuxSize
)

// maxAuxSize bounds an object beside an image's blobs (handle.aux).
const maxAuxSize = 1 << 20

// encodeWorkingSet lays out a working set of chunks idx for the image
// whose manifest has SHA-256 digest (hex).
func encodeWorkingSet(digest string, idx []int) ([]byte, error) {
	sum, err := hex.DecodeString(digest)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("working set: manifest digest %q: %w", digest, ErrInvalidArgument)
	}
	b := make([]byte, wsHeaderSize, wsHeaderSize+4*len(idx)+4)
	copy(b, wsMagic)
	binary.LittleEndian.PutUint16(b[8:], wsMajor)
	binary.LittleEndian.PutUint16(b[10:], wsMinor)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(idx)))
	copy(b[16:], sum)
	for _, i := range idx {
		b = binary.LittleEndian.AppendUint32(b, uint32(i))
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if len(b) > maxWorkingSetSize {
		return nil, fmt.Errorf("working set of %d chunks over %d bytes: %w", len(idx), maxWorkingSetSize, ErrInvalidArgument)
	}
	return b, nil
}

// errStaleWorkingSet means a working set belongs to an earlier image of
// the same name.
var errStaleWorkingSet = errors.New("working set of another image")

// decodeWorkingSet parses b, the working set of an image with the given
// manifest digest (hex) and number of chunks.
func decodeWorkingSet(b []byte, digest string, chunks int) ([]int, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("working set: %s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
	}
	if len(b) < wsHeaderSize+4 || string(b[:8]) != wsMagic {
		return nil, bad("no header")
	}
	if major, minor := binary.LittleEndian.Uint16(b[8:]), binary.LittleEndian.Uint16(b[10:]); major != wsMajor || minor > wsMinor {
		return nil, fmt.Errorf("working set format %d.%d, this snap reads %d.0 to %d.%d: %w", major, minor, wsMajor, wsMajor, wsMinor, ErrIncompatibleVersion)
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	if n > chunks || len(b) != wsHeaderSize+4*n+4 {
		return nil, bad("%d bytes for %d chunks of %d", len(b), n, chunks)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, bad("checksum mismatch")
	}
	if hex.EncodeToString(b[16:48]) != digest {
		return nil, errStaleWorkingSet
	}
	idx := make([]int, n)
	for k := range idx {
		i := int(binary.LittleEndian.Uint32(b[wsHeaderSize+4*k:]))
		if i >= chunks || (k > 0 && i <= idx[k-1]) {
			return nil, bad("chunk %d out of range or order", i)
		}
		idx[k] = i
	}
	return idx, nil
}

// WorkingSet returns the image's working set: the chunk indices a lazy
// restore loads before the program starts, ascending. ok is false when
// the image has none (never restored lazily, or the working set is of an
// image it replaced). A damaged one is ErrCorrupt.
func (im *Image) WorkingSet(ctx context.Context) (idx []int, ok bool, err error) {
	b, err := im.h.aux(ctx, WorkingSetKey)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: read working set: %w", im.uri, err)
	}
	idx, err = decodeWorkingSet(b, im.m.Digest(), len(im.chunks))
	if errors.Is(err, errStaleWorkingSet) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", im.uri, err)
	}
	return idx, true, nil
}

// PutWorkingSet records idx (ascending chunk indices) as the image's
// working set, replacing any, atomically: a reader sees the old one or
// the new one.
func (im *Image) PutWorkingSet(ctx context.Context, idx []int) error {
	for k, i := range idx {
		if i < 0 || i >= len(im.chunks) || (k > 0 && i <= idx[k-1]) {
			return fmt.Errorf("%s: working set chunk %d of %d out of range or order: %w", im.uri, i, len(im.chunks), ErrInvalidArgument)
		}
	}
	b, err := encodeWorkingSet(im.m.Digest(), idx)
	if err != nil {
		return err
	}
	if err := im.h.putAux(ctx, WorkingSetKey, b); err != nil {
		return fmt.Errorf("%s: write working set: %w", im.uri, err)
	}
	return nil
}
