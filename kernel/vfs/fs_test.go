package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// testTree builds a sandbox root under a temp dir, next to a file outside it:
//
//	outside.txt                 (outside the root: must never be reachable)
//	root/etc/hello.txt          "hello\n"
//	root/etc/abs-link -> /etc/hello.txt
//	root/etc/rel-link -> ../etc/hello.txt
//	root/etc/escape-rel -> ../../../../outside.txt
//	root/etc/escape-abs -> /../../outside.txt
//	root/etc/proc-link -> /proc/self/root/etc/hello.txt
//	root/dir/sub/deep.txt       "deep"
//	root/dir/dirlink -> sub
//	root/fifo                   (a FIFO)
func testTree(t *testing.T) (rootDir string, fs *FS) {
	t.Helper()
	base := t.TempDir()
	rootDir = filepath.Join(base, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(base, "outside.txt"), []byte("secret"), 0o644))
	must(os.MkdirAll(filepath.Join(rootDir, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(rootDir, "dir", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(rootDir, "etc", "hello.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(rootDir, "dir", "sub", "deep.txt"), []byte("deep"), 0o644))
	must(os.Symlink("/etc/hello.txt", filepath.Join(rootDir, "etc", "abs-link")))
	must(os.Symlink("../etc/hello.txt", filepath.Join(rootDir, "etc", "rel-link")))
	must(os.Symlink("../../../../outside.txt", filepath.Join(rootDir, "etc", "escape-rel")))
	must(os.Symlink("/../../outside.txt", filepath.Join(rootDir, "etc", "escape-abs")))
	must(os.Symlink("/proc/self/root/etc/hello.txt", filepath.Join(rootDir, "etc", "proc-link")))
	must(os.Symlink("sub", filepath.Join(rootDir, "dir", "dirlink")))
	must(unix.Mkfifo(filepath.Join(rootDir, "fifo"), 0o644))
	root, err := OpenRoot(rootDir)
	must(err)
	t.Cleanup(func() { root.Close() })
	return rootDir, NewFS(root)
}

func readAll(t *testing.T, f *File) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 3)
	for {
		n, err := f.Read(nil, buf)
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

func TestOpenAtResolution(t *testing.T) {
	_, fs := testTree(t)
	tests := []struct {
		name    string
		cwd     string
		path    string
		flags   uint32
		want    string // content, if no error
		wantErr error
	}{
		{name: "absolute", path: "/etc/hello.txt", want: "hello\n"},
		{name: "relative to cwd", cwd: "/etc", path: "hello.txt", want: "hello\n"},
		{name: "dotdot above root stays in root", path: "/../../../etc/hello.txt", want: "hello\n"},
		{name: "relative dotdot above root", cwd: "/dir/sub", path: "../../../../../etc/hello.txt", want: "hello\n"},
		{name: "absolute symlink resolves in root", path: "/etc/abs-link", want: "hello\n"},
		{name: "relative symlink", path: "/etc/rel-link", want: "hello\n"},
		{name: "relative symlink escaping root", path: "/etc/escape-rel", wantErr: unix.ENOENT},
		{name: "absolute symlink escaping root", path: "/etc/escape-abs", wantErr: unix.ENOENT},
		{name: "magic link refused", path: "/etc/proc-link", wantErr: unix.ENOENT},
		{name: "directory symlink", path: "/dir/dirlink/deep.txt", want: "deep"},
		{name: "dotdot through symlinked dir", cwd: "/dir/dirlink", path: "../sub/deep.txt", want: "deep"},
		{name: "missing", path: "/nope", wantErr: unix.ENOENT},
		{name: "empty path", path: "", wantErr: unix.ENOENT},
		{name: "file as directory", path: "/etc/hello.txt/x", wantErr: unix.ENOTDIR},
		{name: "O_DIRECTORY on a file", path: "/etc/hello.txt", flags: unix.O_DIRECTORY, wantErr: unix.ENOTDIR},
		{name: "O_NOFOLLOW on a symlink", path: "/etc/abs-link", flags: unix.O_NOFOLLOW, wantErr: unix.ELOOP},
		{name: "host FIFO refused", path: "/fifo", wantErr: unix.EACCES},
		{name: "host FIFO refused, nonblocking", path: "/fifo", flags: unix.O_NONBLOCK, wantErr: unix.EACCES},
		{name: "O_CREAT of existing file read-only", path: "/etc/hello.txt", flags: unix.O_CREAT, want: "hello\n"},
		{name: "O_CREAT|O_EXCL of existing file", path: "/etc/hello.txt", flags: unix.O_CREAT | unix.O_EXCL, wantErr: unix.EEXIST},
		{name: "O_CREAT|O_EXCL of a dangling symlink", path: "/etc/escape-abs", flags: unix.O_CREAT | unix.O_EXCL, wantErr: unix.EEXIST},
		{name: "O_CREAT through a dangling symlink", path: "/etc/escape-abs", flags: unix.O_CREAT, wantErr: unix.EROFS},
		{name: "O_CREAT in missing directory", path: "/nodir/x", flags: unix.O_CREAT, wantErr: unix.ENOENT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cwd := tc.cwd
			if cwd == "" {
				cwd = "/"
			}
			if err := fs.Chdir(nil, cwd); err != nil {
				t.Fatalf("Chdir(%q) = %v", cwd, err)
			}
			f, err := fs.OpenAt(nil, tc.path, tc.flags, 0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenAt(%q, %#x) = %v, want %v", tc.path, tc.flags, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenAt(%q, %#x) = %v, want success", tc.path, tc.flags, err)
			}
			defer f.DecRef()
			if got, want := f.StatusFlags(), uint32(unix.O_RDONLY|0x8000); got != want {
				t.Errorf("StatusFlags() = %#x, want O_RDONLY|O_LARGEFILE (%#x), as Linux reports", got, want)
			}
			if got := readAll(t, f); got != tc.want {
				t.Errorf("content of %q = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestOpenAtDirFD(t *testing.T) {
	_, fs := testTree(t)
	dir, err := fs.OpenAt(nil, "/dir/dirlink", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.DecRef()
	if got := dir.FileType(); got != unix.S_IFDIR || !dir.IsDir() {
		t.Errorf("FileType() of a directory = %#o, IsDir %v; want S_IFDIR", got, dir.IsDir())
	}
	if got, want := dir.Path(), "/dir/sub"; got != want || dir.LinkName() != want {
		t.Errorf("Path(), LinkName() of /dir/dirlink = %q, %q; want %q", got, dir.LinkName(), want)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"deep.txt", "deep"},
		{"../../etc/hello.txt", "hello\n"},
		{"/etc/rel-link", "hello\n"},
	} {
		f, err := fs.OpenAt(dir, tc.path, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("OpenAt(dir, %q) = %v", tc.path, err)
		}
		if got := readAll(t, f); got != tc.want {
			t.Errorf("OpenAt(dir, %q) content = %q, want %q", tc.path, got, tc.want)
		}
		f.DecRef()
	}
	file, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.DecRef()
	if _, err := fs.OpenAt(file, "x", 0, 0); err != unix.ENOTDIR {
		t.Errorf("OpenAt(regular file, \"x\") = %v, want ENOTDIR", err)
	}
}

// TestWriteIntentsEROFS checks that every way to modify the host fails and
// that the host tree is unchanged afterwards.
func TestWriteIntentsEROFS(t *testing.T) {
	rootDir, fs := testTree(t)
	before := snapshotTree(t, rootDir)
	open := func(p string, flags uint32) func() error {
		return func() error {
			f, err := fs.OpenAt(nil, p, flags, 0o644)
			if err == nil {
				f.DecRef()
			}
			return err
		}
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"O_WRONLY", open("/etc/hello.txt", unix.O_WRONLY), unix.EROFS},
		{"O_RDWR", open("/etc/hello.txt", unix.O_RDWR), unix.EROFS},
		{"O_TRUNC", open("/etc/hello.txt", unix.O_RDONLY|unix.O_TRUNC), unix.EROFS},
		{"O_CREAT new", open("/etc/new.txt", unix.O_WRONLY|unix.O_CREAT), unix.EROFS},
		{"O_CREAT new read-only", open("/etc/new.txt", unix.O_RDONLY|unix.O_CREAT), unix.EROFS},
		{"O_WRONLY via symlink", open("/etc/abs-link", unix.O_WRONLY), unix.EROFS},
		{"O_TMPFILE", open("/etc", unix.O_TMPFILE|unix.O_RDWR), unix.EROFS},
		{"O_WRONLY directory", open("/etc", unix.O_WRONLY), unix.EISDIR},
		{"mkdir", func() error { return fs.Mkdirat(Owner{}, nil, "/etc/newdir", 0o755) }, unix.EROFS},
		{"mkdir existing", func() error { return fs.Mkdirat(Owner{}, nil, "/etc", 0o755) }, unix.EEXIST},
		{"mkdir missing parent", func() error { return fs.Mkdirat(Owner{}, nil, "/a/b", 0o755) }, unix.ENOENT},
		{"mknod", func() error { return fs.Mknodat(Owner{}, nil, "/etc/node", unix.S_IFIFO|0o644, 0) }, unix.EROFS},
		{"symlink", func() error { return fs.Symlinkat(Owner{}, "/x", nil, "/etc/sl") }, unix.EROFS},
		{"link", func() error { return fs.Linkat(nil, "/etc/hello.txt", nil, "/etc/hl", 0) }, unix.EROFS},
		{"link missing source", func() error { return fs.Linkat(nil, "/etc/nope", nil, "/etc/hl", 0) }, unix.ENOENT},
		{"unlink", func() error { return fs.Unlinkat(nil, "/etc/hello.txt", 0) }, unix.EROFS},
		{"unlink symlink", func() error { return fs.Unlinkat(nil, "/etc/escape-abs", 0) }, unix.EROFS},
		{"unlink missing", func() error { return fs.Unlinkat(nil, "/etc/nope", 0) }, unix.ENOENT},
		{"rmdir", func() error { return fs.Unlinkat(nil, "/dir/sub", unix.AT_REMOVEDIR) }, unix.EROFS},
		{"rename", func() error { return fs.Renameat(nil, "/etc/hello.txt", nil, "/etc/moved", 0) }, unix.EROFS},
		{"rename missing", func() error { return fs.Renameat(nil, "/etc/nope", nil, "/etc/moved", 0) }, unix.ENOENT},
		{"chmod/chown/utimes/truncate", func() error { return fs.SetAttrAt(nil, "/etc/hello.txt", 0, nil) }, unix.EROFS},
		{"access W_OK", func() error { return fs.Faccessat(nil, "/etc/hello.txt", unix.W_OK, 0) }, unix.EROFS},
		{"fchmod on open file", func() error {
			f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
			if err != nil {
				return err
			}
			defer f.DecRef()
			return f.SetAttr(nil)
		}, unix.EROFS},
		{"write to read-only File", func() error {
			f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
			if err != nil {
				return err
			}
			defer f.DecRef()
			_, err = f.Write(nil, []byte("x"))
			return err
		}, unix.EBADF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if after := snapshotTree(t, rootDir); !slices.Equal(before, after) {
		t.Errorf("host tree changed:\nbefore %q\nafter  %q", before, after)
	}
}

// snapshotTree lists every path with its mode, size and mtime.
func snapshotTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p+" "+info.Mode().String()+" "+info.ModTime().String()+" "+strconv.FormatInt(info.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPathQueries(t *testing.T) {
	rootDir, fs := testTree(t)
	t.Run("readlink", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/etc/abs-link", "/etc/hello.txt"},
			{"/etc/rel-link", "../etc/hello.txt"},
			{"/etc/escape-abs", "/../../outside.txt"},
		} {
			got, err := fs.Readlinkat(nil, tc.path)
			if err != nil || got != tc.want {
				t.Errorf("Readlinkat(%q) = %q, %v, want %q", tc.path, got, err, tc.want)
			}
		}
		if _, err := fs.Readlinkat(nil, "/etc/hello.txt"); err != unix.EINVAL {
			t.Errorf("Readlinkat(regular file) = %v, want EINVAL", err)
		}
	})
	t.Run("access", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			mode uint32
			want error
		}{
			{"/etc/hello.txt", unix.F_OK, nil},
			{"/etc/hello.txt", unix.R_OK, nil},
			{"/etc/hello.txt", unix.X_OK, unix.EACCES},
			{"/etc", unix.X_OK, nil},
			{"/nope", unix.F_OK, unix.ENOENT},
			{"/dev/null", unix.W_OK, nil},
		} {
			if err := fs.Faccessat(nil, tc.path, tc.mode, 0); err != tc.want {
				t.Errorf("Faccessat(%q, %d) = %v, want %v", tc.path, tc.mode, err, tc.want)
			}
		}
	})
	t.Run("fstatat", func(t *testing.T) {
		var want unix.Stat_t
		if err := unix.Stat(filepath.Join(rootDir, "etc", "hello.txt"), &want); err != nil {
			t.Fatal(err)
		}
		st, err := fs.Fstatat(nil, "/etc/abs-link", 0)
		if err != nil || st.Ino != want.Ino || st.Size != uint64(want.Size) {
			t.Errorf("Fstatat(abs-link) = ino %d size %d, %v; want ino %d size %d", st.Ino, st.Size, err, want.Ino, want.Size)
		}
		st, err = fs.Fstatat(nil, "/etc/abs-link", unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || st.FileType() != unix.S_IFLNK {
			t.Errorf("Fstatat(abs-link, NOFOLLOW) type = %#o, %v; want S_IFLNK", st.FileType(), err)
		}
		if err := fs.Chdir(nil, "/etc"); err != nil {
			t.Fatal(err)
		}
		st, err = fs.Fstatat(nil, "", unix.AT_EMPTY_PATH)
		if err != nil || st.FileType() != unix.S_IFDIR {
			t.Errorf("Fstatat(AT_FDCWD, \"\", AT_EMPTY_PATH) type = %#o, %v; want S_IFDIR", st.FileType(), err)
		}
		if _, err := fs.Fstatat(nil, "", 0); err != unix.ENOENT {
			t.Errorf("Fstatat(\"\", 0) = %v, want ENOENT", err)
		}
	})
	t.Run("chdir", func(t *testing.T) {
		for _, tc := range []struct {
			path    string
			wantCwd string
			wantErr error
		}{
			{"/dir/dirlink", "/dir/sub", nil},
			{"..", "/dir", nil},
			{"../../..", "/", nil},
			{"/etc/hello.txt", "/", unix.ENOTDIR},
			{"/nope", "/", unix.ENOENT},
		} {
			err := fs.Chdir(nil, tc.path)
			if err != tc.wantErr || fs.Getcwd() != tc.wantCwd {
				t.Errorf("Chdir(%q) = %v, cwd %q; want %v, cwd %q", tc.path, err, fs.Getcwd(), tc.wantErr, tc.wantCwd)
			}
		}
		d, err := fs.OpenAt(nil, "/etc", unix.O_PATH, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.DecRef()
		if err := fs.Fchdir(d); err != nil || fs.Getcwd() != "/etc" {
			t.Errorf("Fchdir(/etc O_PATH) = %v, cwd %q; want /etc", err, fs.Getcwd())
		}
	})
}

func TestOPath(t *testing.T) {
	_, fs := testTree(t)
	f, err := fs.OpenAt(nil, "/etc/abs-link", unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	if _, err := f.Read(nil, make([]byte, 1)); err != unix.EBADF {
		t.Errorf("Read(O_PATH) = %v, want EBADF", err)
	}
	st, err := f.Stat()
	if err != nil || st.FileType() != unix.S_IFLNK {
		t.Errorf("Stat(O_PATH symlink) type = %#o, %v; want S_IFLNK", st.FileType(), err)
	}
	if got, err := fs.Readlinkat(f, ""); err != nil || got != "/etc/hello.txt" {
		t.Errorf("Readlinkat(O_PATH symlink, \"\") = %q, %v; want /etc/hello.txt", got, err)
	}
	if f.StatusFlags()&unix.O_PATH == 0 {
		t.Errorf("StatusFlags() = %#x, want O_PATH set", f.StatusFlags())
	}
}

func TestFDAlias(t *testing.T) {
	_, fs := testTree(t)
	tests := []struct {
		path   string
		want   int32
		wantOK bool
	}{
		{"/dev/stdin", 0, true},
		{"/dev/stdout", 1, true},
		{"/dev//stderr", 2, true},
		{"/dev/fd/7", 7, true},
		{"/proc/self/fd/12", 12, true},
		{"/proc/self/fd/x", -1, false},
		{"/proc/self/fd/-1", -1, false},
		{"/proc/12/fd/3", -1, false},
		{"/dev/null", -1, false},
		{"", -1, false},
	}
	for _, tc := range tests {
		if got, ok := fs.FDAlias(nil, tc.path); got != tc.want || ok != tc.wantOK {
			t.Errorf("FDAlias(%q) = %d, %v; want %d, %v", tc.path, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestDescriptorAlias(t *testing.T) {
	_, fs := testTree(t)
	tests := []struct {
		path     string
		who, tid string
		fd       int32
		ok       bool
	}{
		{"/dev/fd/7", "", "", 7, true},
		{"/proc/self/fd/12", "", "", 12, true},
		{"/proc/12/fd/3", "12", "", 3, true},
		{"/proc/12/task/14/fd/3", "12", "14", 3, true},
		{"/proc/self/task/14/fd/3", "self", "14", 3, true},
		{"/proc/thread-self/fd/3", "thread-self", "", 3, true},
		{"/proc/thread-self/task/14/fd/3", "", "", -1, false},
		{"/proc/12/fd/03", "", "", -1, false},
		{"/proc/12/fd", "", "", -1, false},
		{"/proc/12/fdinfo/3", "", "", -1, false},
	}
	for _, tc := range tests {
		who, tid, fd, ok := fs.DescriptorAlias(nil, tc.path)
		if ok != tc.ok || ok && (who != tc.who || tid != tc.tid || fd != tc.fd) {
			t.Errorf("DescriptorAlias(%q) = %q, %q, %d, %v; want %q, %q, %d, %v", tc.path, who, tid, fd, ok, tc.who, tc.tid, tc.fd, tc.ok)
		}
	}
}

// TestHostRootProcUnreachable uses the real host root, which has a procfs
// at /proc: the sandbox's /proc is the sentry's, so the host's per-process
// files (and their magic links) are never reached.
func TestHostRootProcUnreachable(t *testing.T) {
	root, err := OpenRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fs := NewFS(root)
	for _, p := range []string{"/proc/self/root/etc/passwd", "/proc/self/exe", "/proc/self/cwd", "/proc/1/environ", "/proc/kallsyms", "/proc/../proc/keys"} {
		if f, err := fs.OpenAt(nil, p, 0, 0); err != unix.ENOENT {
			if err == nil {
				f.DecRef()
			}
			t.Errorf("OpenAt(%q) = %v, want ENOENT", p, err)
		}
	}
}

func TestRootDotDot(t *testing.T) {
	_, fs := testTree(t)
	d, err := fs.OpenAt(nil, "/", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.DecRef()
	buf := make([]byte, 1<<16)
	n, err := d.Getdents64(buf)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := ParseDirents64(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	inos := map[string]uint64{}
	for _, e := range ents {
		inos[e.Name] = e.Ino
	}
	if inos["."] == 0 || inos[".."] != inos["."] {
		t.Errorf("at the root, d_ino of \"..\" = %d, want that of \".\" (%d)", inos[".."], inos["."])
	}
}
