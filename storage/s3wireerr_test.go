package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"snapshotter/storage/s3wire"
)

// TestS3WireErrorRoundTrip sends an error wrapping each sentinel through a
// real frame: the rebuilt error has the same text and errors.Is holds for
// the same sentinel.
func TestS3WireErrorRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		sentinel error
	}{
		{"not found", ErrNotFound},
		{"corrupt", ErrCorrupt},
		{"incompatible", ErrIncompatibleVersion},
		{"wrong arch", ErrWrongArch},
		{"exists", ErrAlreadyExists},
		{"invalid", ErrInvalidArgument},
		{"unavailable", ErrUnavailable},
		{"canceled", context.Canceled},
		{"deadline", context.DeadlineExceeded},
		{"none", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := errors.New("connection reset by peer")
			if tc.sentinel != nil {
				err = fmt.Errorf("publish s3://b/p/img: %w (after 3 tries)", tc.sentinel)
			}
			var buf bytes.Buffer
			if err := s3wire.WriteFrame(&buf, &s3wire.Msg{ID: 9, Op: s3wire.OpDone, Failed: true, Code: S3WireCode(err), Err: err.Error()}, nil); err != nil {
				t.Fatal(err)
			}
			var m s3wire.Msg
			if n, err := s3wire.ReadHeader(&buf, &m); err != nil || n != 0 {
				t.Fatalf("ReadHeader = %d, %v; want 0, nil", n, err)
			}
			got := s3WireError(m.Code, m.Err)
			if got.Error() != err.Error() {
				t.Errorf("rebuilt error text = %q, want %q", got, err)
			}
			for _, s := range wireSentinels {
				if s == nil {
					continue
				}
				if want := s == tc.sentinel; errors.Is(got, s) != want {
					t.Errorf("errors.Is(rebuilt %q, %v) = %v, want %v", got, s, !want, want)
				}
			}
		})
	}
	// Every sentinel of the package has a code.
	for _, s := range []error{ErrNotFound, ErrCorrupt, ErrIncompatibleVersion, ErrWrongArch, ErrAlreadyExists, ErrInvalidArgument, ErrUnavailable} {
		if c := S3WireCode(s); c == s3wire.CodeNone {
			t.Errorf("S3WireCode(%v) = CodeNone, want a code", s)
		}
	}
	if got := s3WireError(s3wire.NumCodes+3, "from a newer helper"); got.Error() != "from a newer helper" || errors.Unwrap(got) != nil {
		t.Errorf("s3WireError(unknown code) = %q wrapping %v, want the text alone", got, errors.Unwrap(got))
	}
}
