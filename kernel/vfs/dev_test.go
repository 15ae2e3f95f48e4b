package vfs

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDevices(t *testing.T) {
	_, fs := testTree(t) // the root has no /dev: devices are the sentry's
	tests := []struct {
		path      string
		minor     uint32
		readEOF   bool
		readZero  bool
		writeErr  error
		wantWrite int
	}{
		{path: "/dev/null", minor: 3, readEOF: true, wantWrite: 5},
		{path: "/dev/zero", minor: 5, readZero: true, wantWrite: 5},
		{path: "/dev/full", minor: 7, readZero: true, writeErr: unix.ENOSPC},
		{path: "/dev/random", minor: 8, wantWrite: 5},
		{path: "/dev/urandom", minor: 9, wantWrite: 5},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			f, err := fs.OpenAt(nil, tc.path, unix.O_RDWR, 0)
			if err != nil {
				t.Fatalf("OpenAt(%s, O_RDWR) = %v", tc.path, err)
			}
			defer f.DecRef()
			buf := bytes.Repeat([]byte{0xAA}, 64)
			n, err := f.Read(nil, buf)
			switch {
			case err != nil:
				t.Errorf("Read(%s) = %v", tc.path, err)
			case tc.readEOF && n != 0:
				t.Errorf("Read(%s) = %d, want 0 (EOF)", tc.path, n)
			case !tc.readEOF && n != len(buf):
				t.Errorf("Read(%s) = %d, want %d", tc.path, n, len(buf))
			case tc.readZero && !bytes.Equal(buf, make([]byte, 64)):
				t.Errorf("Read(%s) = %x, want zeros", tc.path, buf)
			case !tc.readEOF && !tc.readZero && bytes.Equal(buf, bytes.Repeat([]byte{0xAA}, 64)):
				t.Errorf("Read(%s) left the buffer unchanged, want random bytes", tc.path)
			}
			n, err = f.Write(nil, []byte("hello"))
			if err != tc.writeErr || n != tc.wantWrite {
				t.Errorf("Write(%s) = %d, %v; want %d, %v", tc.path, n, err, tc.wantWrite, tc.writeErr)
			}
			st, err := f.Stat()
			if err != nil || st.FileType() != unix.S_IFCHR || st.RdevMajor != 1 || st.RdevMinor != tc.minor {
				t.Errorf("Stat(%s) = type %#o rdev %d:%d, %v; want S_IFCHR 1:%d", tc.path, st.FileType(), st.RdevMajor, st.RdevMinor, err, tc.minor)
			}
			pst, err := fs.Fstatat(nil, tc.path, 0)
			if err != nil || pst != st {
				t.Errorf("Fstatat(%s) = %+v, %v; want %+v", tc.path, pst, err, st)
			}
			if got := f.Path(); got != tc.path {
				t.Errorf("Path() = %q, want %q", got, tc.path)
			}
		})
	}
	t.Run("relative path", func(t *testing.T) {
		if err := fs.Chdir(nil, "/etc"); err != nil {
			t.Fatal(err)
		}
		f, err := fs.OpenAt(nil, "../dev/null", unix.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("OpenAt(../dev/null) = %v", err)
		}
		f.DecRef()
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			path  string
			flags uint32
			want  error
		}{
			{"/dev/null", unix.O_DIRECTORY, unix.ENOTDIR},
			{"/dev/null/", 0, unix.ENOTDIR},
			{"/dev/null", unix.O_CREAT | unix.O_EXCL, unix.EEXIST},
		} {
			if _, err := fs.OpenAt(nil, tc.path, tc.flags, 0); err != tc.want {
				t.Errorf("OpenAt(%q, %#x) = %v, want %v", tc.path, tc.flags, err, tc.want)
			}
		}
		if _, err := OpenDevice("/dev/sda", 0); err != unix.ENOENT {
			t.Errorf("OpenDevice(/dev/sda) = %v, want ENOENT", err)
		}
	})
}

func TestFileTypeNoSyscall(t *testing.T) {
	_, fs := testTree(t)
	reg, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.DecRef()
	null := openNull(t)
	defer null.DecRef()
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	unbound, err := NewStdio(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unbound.DecRef()
	for _, tc := range []struct {
		name string
		f    *File
		want uint32
	}{
		{"regular", reg, unix.S_IFREG},
		{"device", null, unix.S_IFCHR},
		{"pipe read end", r, unix.S_IFIFO},
		{"pipe write end", w, unix.S_IFIFO},
		{"unbound stdio", unbound, unix.S_IFCHR},
	} {
		if got := tc.f.FileType(); got != tc.want {
			t.Errorf("FileType(%s) = %#o, want %#o", tc.name, got, tc.want)
		}
	}
}
