package runner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"snapshotter/migration"
)

// ProtocolVersion is the control protocol version a client puts in every
// request. A server refuses a request with another version.
const ProtocolVersion = 1

// MaxFrame bounds one control message. Messages are small; anything larger
// is a protocol error, rejected before allocating.
const MaxFrame = 1 << 20

// Request types.
const (
	// ReqInfo returns the sandbox's Metadata.
	ReqInfo = "info"
	// ReqKill sends Request.Signal to the sandbox's init task.
	ReqKill = "kill"
	// ReqWait waits until the program exits and returns its ExitStatus.
	ReqWait = "wait"
	// ReqSave checkpoints the sandbox (Request.Save); progress events
	// precede the result, which carries the image URI.
	ReqSave = "save"
	// ReqTake hands a waiting pool member its stdio (three descriptors
	// passed with SCM_RIGHTS in the same message) and resumes it.
	ReqTake = "take"
	// ReqPrime has a waiting pool member copy, while it waits, the chunks
	// of its pool's base that a take would copy before the program runs
	// (the pool's replenisher primes one member: pool_prime.go). Its
	// result's Primed says whether there were any to copy.
	ReqPrime = "prime"
	// ReqTrim has a waiting pool member over a shared base drop from its
	// stubs the base's pages that its take would copy first (it never
	// reads them from the base): a member restored before its pool
	// recorded them populated them (pool_prime.go).
	ReqTrim = "trim"
)

// Response kinds.
const (
	// KindProgress is an intermediate event of a long operation; more
	// frames with the same ID follow.
	KindProgress = "progress"
	// KindResult ends a request successfully.
	KindResult = "result"
	// KindError ends a request with Response.Error.
	KindError = "error"
)

// Request is a client-to-sentry message. ID is chosen by the client and
// echoed in every response frame for that request.
type Request struct {
	Version int          `msgpack:"v"`
	ID      uint64       `msgpack:"id"`
	Type    string       `msgpack:"type"`
	Signal  int          `msgpack:"signal,omitempty"`
	Save    *SaveRequest `msgpack:"save,omitempty"`
	// Publish, with ReqTake, are the ports ([HOSTADDR:]HOSTPORT:PORT)
	// the member publishes before it resumes.
	Publish []string `msgpack:"publish,omitempty"`
}

// SaveRequest holds the arguments of a save.
type SaveRequest struct {
	// To is the image URI or name; empty means a generated name in Store.
	To string `msgpack:"to,omitempty"`
	// Store is the client's --store value, used to resolve To.
	Store string `msgpack:"store,omitempty"`
	// LeaveRunning keeps the sandbox running after a committed save;
	// otherwise it exits.
	LeaveRunning bool `msgpack:"leave_running,omitempty"`
	// Compression is the memory codec (storage.CodecS2 or
	// storage.CodecZstd); empty means storage.DefaultCodec.
	Compression string `msgpack:"compression,omitempty"`
	// Level is the codec's level; 0 means its default (see
	// storage.CreateOptions.Level).
	Level int `msgpack:"level,omitempty"`
	// SignKey, if set, is the ed25519 private key that signs the image
	// (storage.CreateOptions.SignKey), read from the client's key file:
	// the sentry keeps no key of its own.
	SignKey []byte `msgpack:"sign_key,omitempty"`
	// Timeout bounds the whole save (snap save --timeout); zero means
	// DefaultSaveTimeout. Past it the save is aborted, nothing is
	// published, and the sandbox runs on.
	Timeout time.Duration `msgpack:"timeout,omitempty"`
	// Parent, if set, is an earlier image of this sandbox in the same
	// store (URI or name, resolved like To) that the image is saved
	// against (snap save --parent): recorded in the image, whose chunks
	// equal to the parent's are shared.
	Parent string `msgpack:"parent,omitempty"`
	// Track keeps dirty tracking on after a LeaveRunning save (snap save
	// --track), so that a later save naming this image as Parent reads
	// and stores only the pages written since. A LeaveRunning save with
	// a Parent keeps it on too (a chain is in use); any other stops it
	// once its memory is read.
	Track bool `msgpack:"track,omitempty"`
	// Env holds the client's values of SaveEnvKeys (absent: unset), so that
	// the store is reached as the client would reach it, whatever the
	// sentry's own environment was when it started.
	Env map[string]string `msgpack:"env,omitempty"`
	// Migrate, if set, makes the request a live migration to the target
	// it names, tcp://HOST:PORT (snap migrate; docs/MIGRATION.md) instead
	// of a save: on success the sandbox runs there and stops here.
	Migrate string `msgpack:"migrate,omitempty"`
	// Token is the migration's shared secret (snap migrate --token-file),
	// proved to the target, never sent.
	Token []byte `msgpack:"token,omitempty"`
	// MaxDowntime is the pause a migration aims at (zero:
	// DefaultMaxDowntime).
	MaxDowntime time.Duration `msgpack:"max_downtime,omitempty"`
	// MigrateVersion is the protocol version a migration announces (zero:
	// migration.Current). Not sent to the sentry: set by tests that call
	// Save in process to play an older source.
	MigrateVersion migration.Version `msgpack:"-"`
}

// SaveEnvKeys are the environment variables that locate and authenticate
// image stores; a save uses the client's values.
var SaveEnvKeys = []string{
	"SNAP_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
	"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
	"XDG_DATA_HOME", "HOME",
}

// clientSaveEnv returns this process's values of SaveEnvKeys.
func clientSaveEnv() map[string]string {
	env := map[string]string{}
	for _, k := range SaveEnvKeys {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// applySaveEnv makes the process environment's SaveEnvKeys those of env.
func applySaveEnv(env map[string]string) {
	for _, k := range SaveEnvKeys {
		if v, ok := env[k]; ok {
			os.Setenv(k, v)
		} else {
			os.Unsetenv(k)
		}
	}
}

// Response is a sentry-to-client message: zero or more KindProgress frames,
// then exactly one KindResult or KindError frame per request.
type Response struct {
	ID       uint64      `msgpack:"id"`
	Kind     string      `msgpack:"kind"`
	Error    *WireError  `msgpack:"error,omitempty"`
	Info     *Metadata   `msgpack:"info,omitempty"`
	Exit     *ExitStatus `msgpack:"exit,omitempty"`
	URI      string      `msgpack:"uri,omitempty"`
	Progress *Progress   `msgpack:"progress,omitempty"`
	// Primed, in the result of ReqPrime, says that the member copied
	// chunks (false: its pool recorded none yet).
	Primed bool `msgpack:"primed,omitempty"`
}

// WireError is an error as it crosses the socket: a stable code the client
// maps back to a sentinel, and the one-line message.
type WireError struct {
	Code    string `msgpack:"code"`
	Message string `msgpack:"message"`
}

// Progress reports how far a long operation is: Done of Total units (bytes
// for memory phases) in Phase ("pause", "state", "memory", "commit"...).
// Total is 0 when unknown.
type Progress struct {
	Phase string `msgpack:"phase"`
	Done  uint64 `msgpack:"done"`
	Total uint64 `msgpack:"total"`
	// Note, if set, is a line for the user whatever the terminal (snap
	// save prints it on stderr): how the save went differently from what
	// was asked.
	Note string `msgpack:"note,omitempty"`
}

// ExitStatus is how a sandboxed program ended: it exited with Code, or a
// signal (Signal != 0) killed it.
type ExitStatus struct {
	Code   int `msgpack:"code" json:"code"`
	Signal int `msgpack:"signal,omitempty" json:"signal,omitempty"`
}

// ExitCode is the status a shell would report: Code, or 128+Signal.
func (e ExitStatus) ExitCode() int {
	if e.Signal != 0 {
		return 128 + e.Signal
	}
	return e.Code
}

func (e ExitStatus) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d", e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// WriteFrame writes v as one frame: a 4-byte big-endian length, then the
// msgpack encoding of v. It is not safe for concurrent use on one writer.
func WriteFrame(w io.Writer, v any) error {
	buf, err := encodeFrame(v)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// warmProtocol decodes a take request and encodes the answers a take
// gets (its result, then the wait's exit status) once, so that msgpack's
// codecs for Request and Response, made by reflection at their first use
// (about 0.1 ms, and 0.05 ms for the answer, measured), are made before a
// pool member waits rather than on its take's path.
func warmProtocol() {
	frame, err := encodeFrame(&Request{Version: ProtocolVersion, ID: 1, Type: ReqTake})
	if err == nil {
		var req Request
		ReadFrame(bytes.NewReader(frame), &req)
	}
	encodeFrame(&Response{ID: 1, Kind: KindResult})
	encodeFrame(&Response{ID: 2, Kind: KindResult, Exit: &ExitStatus{}})
}

// encodeFrame returns the frame of v.
func encodeFrame(v any) ([]byte, error) {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode control message: %w", err)
	}
	if len(body) > MaxFrame {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrProtocol, len(body), MaxFrame)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	return buf, nil
}

// ReadFrame reads one frame from r into v. It returns io.EOF if r ends
// cleanly before a frame, and an ErrProtocol error for a truncated,
// oversized or undecodable frame.
func ReadFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated frame header", ErrProtocol)
		}
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, n, MaxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("%w: truncated frame (%d bytes announced): %v", ErrProtocol, n, err)
	}
	if err := msgpack.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: decode frame: %v", ErrProtocol, err)
	}
	return nil
}

// Error codes on the wire. Codes not listed decode to a plain error.
var wireCodes = []struct {
	code string
	err  error
}{
	{"busy", ErrBusy},
	{"save_timeout", ErrSaveTimeout},
	{"unsupported", ErrUnsupported},
	{"bad_signal", ErrBadSignal},
	{"not_running", ErrNotRunning},
	{"protocol", ErrProtocol},
	{"not_waiting", ErrNotWaiting},
	{"take_publish", ErrTakePublish},
}

// extraWireCodes lets other files of the package (storage errors) add codes.
var extraWireCodes []struct {
	code string
	err  error
}

func allWireCodes() []struct {
	code string
	err  error
} {
	return append(wireCodes[:len(wireCodes):len(wireCodes)], extraWireCodes...)
}

// toWire converts err for the socket.
func toWire(err error) *WireError {
	for _, c := range allWireCodes() {
		if errors.Is(err, c.err) {
			return &WireError{Code: c.code, Message: err.Error()}
		}
	}
	return &WireError{Code: "failed", Message: err.Error()}
}

// RemoteError is an error reported by a sentry. errors.Is matches the
// sentinel its code stands for.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinel for the code, if any.
func (e *RemoteError) Unwrap() error {
	for _, c := range allWireCodes() {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}
