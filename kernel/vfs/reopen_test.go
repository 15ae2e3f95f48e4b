package vfs

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReopen checks what opening /proc/self/fd/N gives for each kind of
// file: a new description for host files, devices and pipe ends (the end
// chosen by the new access mode), the same description otherwise.
func TestReopen(t *testing.T) {
	_, fs := testTree(t)
	host, err := fs.OpenAt(nil, "/etc/hello.txt", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer host.DecRef()
	var two [2]byte
	if _, err := host.Read(nil, two[:]); err != nil {
		t.Fatal(err)
	}
	dev, err := fs.OpenAt(nil, "/dev/zero", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.DecRef()
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	stdio, err := NewStdio(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stdio.DecRef()

	tests := []struct {
		name     string
		f        *File
		flags    uint32
		wantSame bool
		wantErr  error
		check    func(t *testing.T, nf *File)
	}{
		{name: "host file has its own offset", f: host, flags: unix.O_RDONLY, check: func(t *testing.T, nf *File) {
			if got := readAll(t, nf); got != "hello\n" {
				t.Errorf("read of reopened file = %q, want %q", got, "hello\n")
			}
		}},
		{name: "host file for writing", f: host, flags: unix.O_WRONLY, wantErr: unix.EROFS},
		{name: "O_CREAT|O_EXCL", f: host, flags: unix.O_RDONLY | unix.O_CREAT | unix.O_EXCL, wantErr: unix.EEXIST},
		{name: "device", f: dev, flags: unix.O_RDWR, check: func(t *testing.T, nf *File) {
			if got := nf.StatusFlags() & unix.O_ACCMODE; got != unix.O_RDWR {
				t.Errorf("access mode = %#o, want O_RDWR", got)
			}
		}},
		{name: "write end read", f: w, flags: unix.O_RDONLY, check: func(t *testing.T, nf *File) {
			if _, err := w.Write(nil, []byte("xyz")); err != nil {
				t.Fatal(err)
			}
			var b [8]byte
			n, err := nf.Read(nil, b[:])
			if err != nil || string(b[:n]) != "xyz" {
				t.Errorf("Read = %q, %v, want \"xyz\", nil", b[:n], err)
			}
		}},
		{name: "read end written", f: r, flags: unix.O_WRONLY | unix.O_NONBLOCK, check: func(t *testing.T, nf *File) {
			if n, err := nf.Write(nil, []byte("ab")); n != 2 || err != nil {
				t.Errorf("Write = %d, %v, want 2, nil", n, err)
			}
			var b [8]byte
			if n, err := r.Read(nil, b[:]); string(b[:n]) != "ab" || err != nil {
				t.Errorf("Read = %q, %v, want \"ab\", nil", b[:n], err)
			}
		}},
		{name: "pipe O_RDWR shares", f: r, flags: unix.O_RDWR, wantSame: true},
		{name: "stdio shares", f: stdio, flags: unix.O_WRONLY, wantSame: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nf, err := fs.Reopen(tc.f, tc.flags)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Reopen(%#o) = %v, want %v", tc.flags, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Reopen(%#o) = %v, want nil", tc.flags, err)
			}
			defer nf.DecRef()
			if same := nf == tc.f; same != tc.wantSame {
				t.Errorf("Reopen(%#o) same File = %v, want %v", tc.flags, same, tc.wantSame)
			}
			if tc.check != nil {
				tc.check(t, nf)
			}
		})
	}
}

// TestReopenPipeEndCounts checks that a reopened pipe end counts as an open
// end: the pipe reports EOF (no writers) only when it is closed too.
func TestReopenPipeEndCounts(t *testing.T) {
	_, fs := testTree(t)
	r, w := NewPipe(0)
	defer r.DecRef()
	w2, err := fs.Reopen(w, unix.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	w.DecRef()
	if got := r.Readiness(unix.POLLIN); got&unix.POLLHUP != 0 {
		t.Errorf("Readiness with a reopened writer = %#x, want no POLLHUP", got)
	}
	w2.DecRef()
	if got := r.Readiness(unix.POLLIN); got&unix.POLLHUP == 0 {
		t.Errorf("Readiness with no writer = %#x, want POLLHUP", got)
	}
}
