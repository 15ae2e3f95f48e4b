// Package s3wire is the protocol between package storage and the snap-s3
// helper process, which holds the S3 client (minio-go) so that the snap
// binary does not link it.
//
// The two ends exchange frames over a pair of pipes (the helper's stdin and
// stdout):
//
//	+-----------+-----------+------------------+-------------------+
//	| u32 LE H  | u32 LE P  | H bytes: msgpack | P bytes: payload  |
//	| header len| payload   | of Msg           | (raw blob bytes)  |
//	+-----------+-----------+------------------+-------------------+
//
// H is at most MaxHeader and P at most MaxPayload; a frame over either
// limit is a protocol error and ends the connection.
//
// Requests go from the client to the helper. Each carries an ID chosen by
// the client, unique on the connection, and the helper serves requests
// concurrently. Every request except OpCancel gets exactly one final
// response (OpDone) with the same ID, preceded, for OpReadAt, by OpData
// frames carrying the bytes at offset Off of the requested range. Objects
// the helper keeps (a backend per store configuration, stagings, blob
// writers, image handles, blob readers) are named by IDs the client picks
// (Msg.New when creating, Msg.Obj when using them).
//
// Bulk data is bounded: a blob write carries at most ChunkSize bytes, and
// the client keeps at most WriteWindow writes of one blob unacknowledged
// (each OpWrite gets its OpDone once the upload took the bytes). The helper
// serves the OpWrite and then OpClose of one writer in the order received,
// and requests of different objects concurrently. It answers a read in
// OpData frames of at most ChunkSize bytes.
//
// Errors cross as a Code naming the sentinel of package storage that the
// error wraps (or CodeNone) and the error's text, so that the client can
// rebuild an error with the same text for which errors.Is holds.
//
// Cancellation: OpCancel with ID set cancels the context of that in-flight
// request; with Obj set it cancels the context of that staging (the context
// the image write was begun with). It has no response.
package s3wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Limits of one frame.
const (
	// MaxHeader bounds the msgpack header (a List answer carries every
	// image name).
	MaxHeader = 16 << 20
	// MaxPayload bounds the payload: a blob write chunk, a read chunk or a
	// manifest (at most 16 MiB).
	MaxPayload = 17 << 20
	// ChunkSize is the most bytes of a blob one OpWrite or OpData carries.
	ChunkSize = 1 << 20
	// WriteWindow is the most OpWrite requests of one blob writer a client
	// has in flight.
	WriteWindow = 8
)

// ErrProtocol means a frame is malformed or over a limit.
var ErrProtocol = errors.New("s3 helper protocol error")

// Op is a request or response kind.
type Op uint8

// Requests (client to helper) and responses (helper to client).
const (
	// OpBackend creates backend New for Config.
	OpBackend Op = iota + 1
	// OpExists asks whether image Name is published in backend Obj (Flag).
	OpExists
	// OpBegin begins writing image Name in backend Obj as staging New.
	OpBegin
	// OpKey returns (Key) the key of blob base name Name in staging Obj.
	OpKey
	// OpCreate starts blob writer New for Key in staging Obj; Flag asks
	// for a parallel upload.
	OpCreate
	// OpWrite writes the payload (at most ChunkSize bytes) to writer Obj,
	// after the writes sent before it.
	OpWrite
	// OpClose finishes writer Obj and reports its error.
	OpClose
	// OpFail stops writer Obj with the error in Code and Err.
	OpFail
	// OpCommit publishes staging Obj with the payload as manifest; Flag
	// replaces an existing image.
	OpCommit
	// OpAbort deletes what staging Obj wrote.
	OpAbort
	// OpOpen opens image Name of backend Obj as handle New.
	OpOpen
	// OpManifest returns handle Obj's manifest as the payload.
	OpManifest
	// OpBlob opens blob Key of size N in handle Obj as reader New.
	OpBlob
	// OpReadAt reads N bytes at Off of reader Obj, answered by OpData
	// frames and then OpDone.
	OpReadAt
	// OpSize returns the stored size (N) of reader Obj.
	OpSize
	// OpRelease closes and forgets object Obj (a handle or a reader).
	OpRelease
	// OpList lists backend Obj's images (Names).
	OpList
	// OpRemove removes image Name of backend Obj.
	OpRemove
	// OpPrune prunes backend Obj of leftovers older than N nanoseconds and
	// returns the URIs of what it removed (Names).
	OpPrune
	// OpCancel cancels request ID or staging Obj; no response.
	OpCancel
	// OpData carries payload bytes for offset Off of the answer to ID.
	OpData
	// OpDone is the final response to request ID.
	OpDone
	// OpPutChunk stores the payload as content-addressed chunk Key of
	// backend Obj unless it is stored; Flag in the answer says it was
	// (its age is then refreshed).
	OpPutChunk
	// OpChunk opens chunk Key of backend Obj as reader New.
	OpChunk
	// OpListChunks lists backend Obj's chunks (Names: "SUM UNIXNANO",
	// the time it was stored or last refreshed).
	OpListChunks
	// OpRemoveChunk deletes chunk Key of backend Obj if it is older than
	// N nanoseconds; Flag in the answer says it did.
	OpRemoveChunk
	// OpAux returns, as the payload, the object Key kept beside the blobs
	// of handle Obj's image (at most 1 MiB; the working set).
	OpAux
	// OpPutAux stores the payload (at most 1 MiB) as the object Key beside
	// the blobs of handle Obj's image, in one PUT.
	OpPutAux
)

// Code names the sentinel error of package storage (or of package context)
// that an error wraps.
type Code uint8

// Error codes.
const (
	CodeNone Code = iota
	CodeNotFound
	CodeCorrupt
	CodeIncompatibleVersion
	CodeWrongArch
	CodeAlreadyExists
	CodeInvalidArgument
	CodeUnavailable
	CodeCanceled
	CodeDeadlineExceeded
	// NumCodes is one more than the largest code.
	NumCodes
)

// Config is storage.S3Config on the wire.
type Config struct {
	Endpoint     string `msgpack:"endpoint"`
	Secure       bool   `msgpack:"secure,omitempty"`
	Region       string `msgpack:"region,omitempty"`
	AccessKey    string `msgpack:"access_key,omitempty"`
	SecretKey    string `msgpack:"secret_key,omitempty"`
	SessionToken string `msgpack:"session_token,omitempty"`
	Bucket       string `msgpack:"bucket"`
	Prefix       string `msgpack:"prefix,omitempty"`
	PartSize     uint64 `msgpack:"part_size,omitempty"`
	Threads      int    `msgpack:"threads,omitempty"`
	MaxRetries   int    `msgpack:"max_retries,omitempty"`
	// Request deadlines; zero takes the helper's defaults.
	DialTimeout   time.Duration `msgpack:"dial_timeout,omitempty"`
	HeaderTimeout time.Duration `msgpack:"header_timeout,omitempty"`
	IdleTimeout   time.Duration `msgpack:"idle_timeout,omitempty"`
	// StaleAge is storage.S3Config.StaleAge; zero takes the default.
	StaleAge time.Duration `msgpack:"stale_age,omitempty"`
}

// Msg is the header of a frame. Which fields mean something depends on Op
// (see the Op constants); the others are zero.
type Msg struct {
	ID     uint64   `msgpack:"id"`
	Op     Op       `msgpack:"op"`
	Obj    uint64   `msgpack:"obj,omitempty"`
	New    uint64   `msgpack:"new,omitempty"`
	Name   string   `msgpack:"name,omitempty"`
	Key    string   `msgpack:"key,omitempty"`
	Off    int64    `msgpack:"off,omitempty"`
	N      int64    `msgpack:"n,omitempty"`
	Flag   bool     `msgpack:"flag,omitempty"`
	Config *Config  `msgpack:"config,omitempty"`
	Names  []string `msgpack:"names,omitempty"`
	// Failed marks an OpDone (or OpFail) that carries an error: Code and
	// Err.
	Failed bool   `msgpack:"failed,omitempty"`
	Code   Code   `msgpack:"code,omitempty"`
	Err    string `msgpack:"err,omitempty"`
}

// WriteFrame writes one frame. The caller serializes calls on w.
func WriteFrame(w io.Writer, m *Msg, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("frame payload of %d bytes is over %d: %w", len(payload), MaxPayload, ErrProtocol)
	}
	h, err := msgpack.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode frame header: %w", err)
	}
	if len(h) > MaxHeader {
		return fmt.Errorf("frame header of %d bytes is over %d: %w", len(h), MaxHeader, ErrProtocol)
	}
	buf := make([]byte, 8, 8+len(h)+min(len(payload), 64<<10))
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(h)))
	binary.LittleEndian.PutUint32(buf[4:8], uint32(len(payload)))
	buf = append(buf, h...)
	if len(payload) <= 64<<10 {
		// Small frames go in one write.
		buf = append(buf, payload...)
		payload = nil
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if len(payload) > 0 {
		if _, err := w.Write(payload); err != nil {
			return err
		}
	}
	return nil
}

// ReadHeader reads the next frame's header into m and returns the length
// of its payload, which the caller must then read (or Discard) from r.
// io.EOF means r ended cleanly between frames.
func ReadHeader(r io.Reader, m *Msg) (int, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return 0, err
	}
	hl, pl := binary.LittleEndian.Uint32(pre[0:4]), binary.LittleEndian.Uint32(pre[4:8])
	if hl > MaxHeader || pl > MaxPayload {
		return 0, fmt.Errorf("frame of %d+%d bytes is over the %d+%d limit: %w", hl, pl, MaxHeader, MaxPayload, ErrProtocol)
	}
	h := make([]byte, hl)
	if _, err := io.ReadFull(r, h); err != nil {
		return 0, unexpected(err)
	}
	*m = Msg{}
	if err := msgpack.Unmarshal(h, m); err != nil {
		return 0, fmt.Errorf("decode frame header: %v: %w", err, ErrProtocol)
	}
	return int(pl), nil
}

// ReadPayload reads a payload of n bytes into a new slice.
func ReadPayload(r io.Reader, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// Discard skips a payload of n bytes.
func Discard(r io.Reader, n int) error {
	_, err := io.CopyN(io.Discard, r, int64(n))
	return unexpected(err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
