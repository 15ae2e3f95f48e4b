package vfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestHasAsync: the kinds of file O_ASYNC applies to, as Linux's fasync.
func TestHasAsync(t *testing.T) {
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	null, err := OpenDevice("/dev/null", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer null.DecRef()
	for _, tc := range []struct {
		name string
		f    *File
		want bool
	}{
		{"pipe read end", r, true},
		{"pipe write end", w, true},
		{"device", null, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.HasAsync(); got != tc.want {
				t.Errorf("HasAsync() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReleased: the channel closes with the last reference, also when
// asked for after it went.
func TestReleased(t *testing.T) {
	r, w := NewPipe(0)
	defer w.DecRef()
	r.IncRef()
	ch := r.Released()
	r.DecRef()
	select {
	case <-ch:
		t.Fatal("Released closed with a reference left")
	default:
	}
	r.DecRef()
	select {
	case <-ch:
	default:
		t.Fatal("Released not closed after the last reference")
	}
	select {
	case <-r.Released():
	default:
		t.Fatal("Released asked for after the last reference is not closed")
	}
}
