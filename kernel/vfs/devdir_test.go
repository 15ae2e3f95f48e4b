package vfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/stateify"
)

// listDir returns the names Getdents64 gives for f, in order.
func listDir(t *testing.T, f *File) []string {
	t.Helper()
	var names []string
	buf := make([]byte, 64)
	for {
		n, err := f.Getdents64(buf)
		if err != nil {
			t.Fatalf("Getdents64 = %v", err)
		}
		if n == 0 {
			return names
		}
		ents, err := ParseDirents64(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			names = append(names, e.Name)
		}
	}
}

var wantDevNames = []string{"full", "null", "ptmx", "random", "tty", "urandom", "zero"}

// wantDevListing is what a listing of /dev returns.
var wantDevListing = slices.Concat([]string{".", ".."}, wantDevNames, []string{"fd", "pts", "stderr", "stdin", "stdout"})

// TestSyntheticDevDir covers a root without /dev: the sentry's /dev is a
// directory that lists its devices.
func TestSyntheticDevDir(t *testing.T) {
	_, fs := testTree(t)
	d, err := fs.OpenAt(nil, "/dev", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("OpenAt(/dev) = %v", err)
	}
	defer d.DecRef()
	if got, want := listDir(t, d), wantDevListing; !slices.Equal(got, want) {
		t.Errorf("listing of /dev = %q, want %q", got, want)
	}
	if !d.IsDir() || d.Path() != "/dev" {
		t.Errorf("IsDir, Path of /dev = %v, %q; want true, /dev", d.IsDir(), d.Path())
	}
	if _, err := d.Seek(0, unix.SEEK_SET); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, d); len(got) != len(wantDevListing) {
		t.Errorf("listing after rewind = %q, want %d entries", got, len(wantDevListing))
	}
	z, err := fs.OpenAt(d, "zero", 0, 0)
	if err != nil {
		t.Fatalf("OpenAt(/dev dir, \"zero\") = %v", err)
	}
	z.DecRef()

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"stat", func() error {
			st, err := fs.Fstatat(nil, "/dev/", 0)
			if err == nil && st.FileType() != unix.S_IFDIR {
				return unix.ENOTDIR
			}
			return err
		}, nil},
		{"access X_OK", func() error { return fs.Faccessat(nil, "/dev", unix.X_OK, 0) }, nil},
		{"access W_OK", func() error { return fs.Faccessat(nil, "/dev", unix.W_OK, 0) }, unix.EROFS},
		{"open for writing", func() error { _, err := fs.OpenAt(nil, "/dev", unix.O_WRONLY, 0); return err }, unix.EISDIR},
		{"mkdir", func() error { return fs.Mkdirat(Owner{}, nil, "/dev", 0o755) }, unix.EEXIST},
		{"rmdir", func() error { return fs.Unlinkat(nil, "/dev", unix.AT_REMOVEDIR) }, unix.EROFS},
		{"readlink", func() error { _, err := fs.Readlinkat(nil, "/dev"); return err }, unix.EINVAL},
		{"statfs", func() error { _, err := fs.Statfs(nil, "/dev"); return err }, nil},
		{"not a prefix match", func() error { _, err := fs.OpenAt(nil, "/devices", 0, 0); return err }, unix.ENOENT},
		{"absolute /dev/..", func() error { _, err := fs.Fstatat(nil, "/dev/..", 0); return err }, nil},
		{"absolute /dev/../etc", func() error {
			f, err := fs.OpenAt(nil, "/dev/../etc/hello.txt", 0, 0)
			if err == nil {
				f.DecRef()
			}
			return err
		}, nil},
		{"/dev/..x is a name", func() error { _, err := fs.Fstatat(nil, "/dev/..x", 0); return err }, unix.ENOENT},
	}
	for _, tc := range tests {
		if err := tc.op(); err != tc.want {
			t.Errorf("%s of the synthetic /dev = %v, want %v", tc.name, err, tc.want)
		}
	}

	if err := fs.Chdir(nil, "/dev"); err != nil || fs.Getcwd() != "/dev" {
		t.Fatalf("Chdir(/dev) = %v, cwd %q", err, fs.Getcwd())
	}
	n, err := fs.OpenAt(nil, "null", unix.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("OpenAt(\"null\") in /dev = %v", err)
	}
	n.DecRef()
	if err := fs.Chdir(nil, ".."); err != nil || fs.Getcwd() != "/" {
		t.Errorf("Chdir(..) from /dev = %v, cwd %q; want /", err, fs.Getcwd())
	}
	if err := fs.Chdir(d, "../etc"); err != nil || fs.Getcwd() != "/etc" {
		t.Errorf("Chdir(/dev dir, ../etc) = %v, cwd %q; want /etc", err, fs.Getcwd())
	}
	if err := fs.Fchdir(d); err != nil || fs.Getcwd() != "/dev" {
		t.Errorf("Fchdir(/dev) = %v, cwd %q; want /dev", err, fs.Getcwd())
	}
}

// TestHostDevDirGetsDevices covers a root with its own /dev: the listing
// holds the sentry's devices once each, next to the host's entries.
// TestHostDevDirIgnored checks that /dev is the sentry's even when the
// root has one: the host's entries are neither listed nor reachable.
func TestHostDevDirIgnored(t *testing.T) {
	rootDir, fs := testTree(t)
	if err := os.Mkdir(filepath.Join(rootDir, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"null", "extra"} {
		if err := os.WriteFile(filepath.Join(rootDir, "dev", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := fs.OpenAt(nil, "/dev", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.DecRef()
	if got := listDir(t, d); !slices.Equal(got, wantDevListing) {
		t.Errorf("listing of /dev with a host /dev = %q, want %q", got, wantDevListing)
	}
	if _, err := fs.Fstatat(nil, "/dev/extra", 0); err != unix.ENOENT {
		t.Errorf("Fstatat(/dev/extra) = %v, want ENOENT (the host's /dev is not seen)", err)
	}
	st, err := fs.Fstatat(nil, "/dev/null", 0)
	if err != nil || st.FileType() != unix.S_IFCHR {
		t.Errorf("Fstatat(/dev/null) type = %#o, %v; want the sentry's character device", st.FileType(), err)
	}
}

func TestDevDirStateify(t *testing.T) {
	_, fs := testTree(t)
	d, err := fs.OpenAt(nil, "/dev", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tbl := NewFDTable()
	defer tbl.Close()
	tbl.NewFD(0, d, FDFlags{})
	d.DecRef()
	if _, err := d.Getdents64(make([]byte, 48)); err != nil { // "." and ".."
		t.Fatal(err)
	}
	var img bytes.Buffer
	if err := stateify.Save(context.Background(), &img, tbl); err != nil {
		t.Fatal(err)
	}
	var out FDTable
	if err := stateify.Load(context.Background(), &img, &out); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	rd := getFD(t, &out, 0)
	if got := listDir(t, rd); !slices.Equal(got, wantDevListing[2:]) {
		t.Errorf("restored /dev continues with %q, want %q", got, wantDevListing[2:])
	}
}
