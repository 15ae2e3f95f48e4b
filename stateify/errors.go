package stateify

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Save and Load wraps exactly one of
// them (test with errors.Is) together with what failed.
var (
	// ErrCorrupt means the stream is malformed: bad magic, checksum
	// mismatch, truncation, a value of the wrong msgpack kind, a length that
	// the remaining input cannot hold, a dangling object reference.
	ErrCorrupt = errors.New("stateify: corrupt state stream")
	// ErrVersion means the stream's format major version differs from ours,
	// or its minor version is newer than ours.
	ErrVersion = errors.New("stateify: incompatible state format version")
	// ErrSchema means the stream is well formed but does not fit the types
	// compiled into this binary: an unknown type, a field whose type changed,
	// an object of an unexpected type.
	ErrSchema = errors.New("stateify: state schema mismatch")
	// ErrNotSavable means Save met a value it cannot encode: a root or
	// interface value whose dynamic type is not registered, a non-zero
	// `state:"zerovalue"` field, or a pointer into the middle of another
	// saved object.
	ErrNotSavable = errors.New("stateify: value not savable")
	// ErrWaitCycle means the `state:"wait"` dependencies among loaded
	// objects form a cycle, so no afterLoad order exists.
	ErrWaitCycle = errors.New("stateify: afterLoad wait cycle")
	// ErrHook means a beforeSave or afterLoad hook (or a saveX/loadX
	// conversion) panicked.
	ErrHook = errors.New("stateify: hook panicked")
	// ErrRegister means the program registered two savable types under
	// one saved name (Register), so that a stream could not say which
	// one it holds: every Save and Load of the process fails with it.
	ErrRegister = errors.New("stateify: savable types registered under one saved name")
)

// stateError is the panic payload used inside the engine; Save and Load
// recover it and return err.
type stateError struct{ err error }

// detailError is an engine error: a sentinel, where in the stream it
// happened (if known) and what went wrong.
type detailError struct {
	sentinel error
	where    string
	msg      string
}

func (e *detailError) Error() string {
	if e.where == "" {
		return e.sentinel.Error() + ": " + e.msg
	}
	return e.sentinel.Error() + ": " + e.where + ": " + e.msg
}

func (e *detailError) Unwrap() error { return e.sentinel }

func failf(sentinel error, format string, args ...any) {
	panic(stateError{&detailError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}})
}

// recoverError converts a panic raised while encoding or decoding into an
// error. Panics that did not originate in the engine (a hook's bug, or a
// runtime error provoked by a bug) become ErrHook errors so that no input
// can crash the caller.
func recoverError(r any, errp *error) {
	if r == nil {
		return
	}
	if se, ok := r.(stateError); ok {
		*errp = se.err
		return
	}
	*errp = fmt.Errorf("%w: %v", ErrHook, r)
}
