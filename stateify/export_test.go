package stateify

import (
	"context"
	"io"
)

// SaveCold is Save with a fresh encoder instead of a pooled one, for the
// benchmark of a one-off checkpoint.
func SaveCold(_ context.Context, w io.Writer, root any) error {
	registerPending()
	s := root.(Savable)
	ti := s.StateTypeInfo()
	return newEncoder().save(w, ti.ptr(s), ti)
}
