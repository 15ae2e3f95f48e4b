package storage

import (
	"context"
	"errors"

	"snapshotter/storage/s3wire"
)

// wireSentinels maps the error codes of the snap-s3 protocol to the
// sentinels they stand for. The order is the order of errors.Is checks when
// encoding: an error wrapping several sentinels crosses as the first.
var wireSentinels = [s3wire.NumCodes]error{
	s3wire.CodeNotFound:            ErrNotFound,
	s3wire.CodeCorrupt:             ErrCorrupt,
	s3wire.CodeIncompatibleVersion: ErrIncompatibleVersion,
	s3wire.CodeWrongArch:           ErrWrongArch,
	s3wire.CodeAlreadyExists:       ErrAlreadyExists,
	s3wire.CodeInvalidArgument:     ErrInvalidArgument,
	s3wire.CodeUnavailable:         ErrUnavailable,
	s3wire.CodeCanceled:            context.Canceled,
	s3wire.CodeDeadlineExceeded:    context.DeadlineExceeded,
}

// S3WireCode returns the snap-s3 protocol code of the sentinel (of this
// package, or context.Canceled or context.DeadlineExceeded) that err wraps,
// or s3wire.CodeNone. The helper uses it to send errors; the client rebuilds
// them with the same text, wrapping the same sentinel.
func S3WireCode(err error) s3wire.Code {
	for c, s := range wireSentinels {
		if s != nil && errors.Is(err, s) {
			return s3wire.Code(c)
		}
	}
	return s3wire.CodeNone
}

// wireError is an error rebuilt from the snap-s3 protocol: the helper's
// text, wrapping the sentinel its code names (if any).
type wireError struct {
	msg      string
	sentinel error
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.sentinel }

// s3WireError rebuilds an error sent with code and text msg. An unknown
// code is kept as text only.
func s3WireError(code s3wire.Code, msg string) error {
	var s error
	if code < s3wire.NumCodes {
		s = wireSentinels[code]
	}
	return &wireError{msg: msg, sentinel: s}
}
