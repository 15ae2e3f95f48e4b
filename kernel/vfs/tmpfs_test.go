package vfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/stateify"
)

// writeFileAt creates p in fs with contents s.
func writeFileAt(t *testing.T, fs *FS, p, s string) {
	t.Helper()
	f, err := fs.OpenAt(nil, p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	defer f.DecRef()
	if n, err := f.Write(nil, []byte(s)); n != len(s) || err != nil {
		t.Fatalf("write %s = %d, %v", p, n, err)
	}
}

func readFileAt(fs *FS, p string) (string, error) {
	return readFileAs(fs, nil, p)
}

// TestTmpfsPaths checks how paths cross between /run (a tmpfs), the
// host root and the sentry's /dev: "..", symlinks that leave the tmpfs,
// and operations across mounts (EXDEV).
func TestTmpfsPaths(t *testing.T) {
	_, fs := testTree(t)
	writeFileAt(t, fs, "/run/file", "in run")
	if err := fs.Mkdirat(Owner{}, nil, "/run/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ target, name string }{
		{"/etc/hello.txt", "/run/abs"}, {"../etc/hello.txt", "/run/rel"}, {"../../run/file", "/run/dir/back"},
		{"/dev/null", "/run/null"}, {"loop", "/run/loop"},
	} {
		if err := fs.Symlinkat(Owner{}, l.target, nil, l.name); err != nil {
			t.Fatalf("symlink %s: %v", l.name, err)
		}
	}
	reads := []struct {
		name, path, want string
		err              error
	}{
		{"file", "/run/file", "in run", nil},
		{"dotdot at the mount root", "/run/../etc/hello.txt", "hello\n", nil},
		{"dotdot in the tmpfs", "/run/dir/../file", "in run", nil},
		{"absolute symlink out", "/run/abs", "hello\n", nil},
		{"relative symlink out", "/run/rel", "hello\n", nil},
		{"symlink out and back", "/run/dir/back", "in run", nil},
		{"symlink to a device", "/run/null", "", nil},
		{"symlink loop", "/run/loop", "", unix.ELOOP},
		{"missing", "/run/nope", "", unix.ENOENT},
		{"file as directory", "/run/file/x", "", unix.ENOTDIR},
		{"host path into the tmpfs", "/etc/../run/file", "in run", nil},
		{"dev shm", "/dev/shm/../shm/../null", "", nil},
	}
	for _, tc := range reads {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readFileAt(fs, tc.path)
			if !errors.Is(err, tc.err) || err == nil && got != tc.want {
				t.Errorf("read %s = %q, %v, want %q, %v", tc.path, got, err, tc.want, tc.err)
			}
		})
	}
	ops := []struct {
		name string
		op   func() error
		want error
	}{
		{"link across mounts", func() error { return fs.Linkat(nil, "/run/file", nil, "/dev/shm/x", 0) }, unix.EXDEV},
		{"rename to the host", func() error { return fs.Renameat(nil, "/run/file", nil, "/etc/x", 0) }, unix.EXDEV},
		{"rename from the host", func() error { return fs.Renameat(nil, "/etc/hello.txt", nil, "/run/x", 0) }, unix.EXDEV},
		// As Linux: only the parents are looked up before the mounts are compared.
		{"rename missing across mounts", func() error { return fs.Renameat(nil, "/run/nope", nil, "/etc/x", 0) }, unix.EXDEV},
		{"rename from a missing directory", func() error { return fs.Renameat(nil, "/run/nodir/x", nil, "/etc/x", 0) }, unix.ENOENT},
		{"rmdir the mount point", func() error { return fs.Unlinkat(nil, "/run", unix.AT_REMOVEDIR) }, unix.EBUSY},
		{"mkdir the mount point", func() error { return fs.Mkdirat(Owner{}, nil, "/run", 0o755) }, unix.EEXIST},
		{"rename with both flags", func() error {
			return fs.Renameat(nil, "/run/file", nil, "/run/x", unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE)
		}, unix.EINVAL},
		{"rename whiteout", func() error { return fs.Renameat(nil, "/run/file", nil, "/run/x", unix.RENAME_WHITEOUT) }, unix.EINVAL},
		{"create through a symlink to the host", func() error {
			_, err := fs.OpenAt(nil, "/run/abs", unix.O_WRONLY|unix.O_CREAT, 0o644)
			return err
		}, unix.EROFS},
		{"host stays read-only", func() error { return fs.Mkdirat(Owner{}, nil, "/etc/new", 0o755) }, unix.EROFS},
	}
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if err := fs.Chdir(nil, "/run/dir"); err != nil {
		t.Fatal(err)
	}
	if got, err := readFileAt(fs, "../file"); got != "in run" || err != nil {
		t.Errorf("read ../file from /run/dir = %q, %v", got, err)
	}
	if cwd := fs.Getcwd(); cwd != "/run/dir" {
		t.Errorf("Getcwd = %q, want /run/dir", cwd)
	}
}

// TestMountTmpfsErrors: the mount points MountTmpfs refuses.
func TestMountTmpfsErrors(t *testing.T) {
	_, fs := testTree(t)
	mt := fs.Root().Mounts()
	if err := mt.MountTmpfs("/a/b", 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "rel", "/", "/proc", "/proc/x", "/sys/x", "/a/b/c", "/run/x", "/a", "/dev"} {
		if err := mt.MountTmpfs(p, 0); !errors.Is(err, ErrBadMountPoint) {
			t.Errorf("MountTmpfs(%q) = %v, want ErrBadMountPoint", p, err)
		}
	}
	for _, p := range []string{"/dev/x", "/run", "/a/c"} {
		if err := mt.MountTmpfs(p, 1<<20); err != nil {
			t.Errorf("MountTmpfs(%q) = %v, want success", p, err)
		}
	}
}

// TestTmpfsFull fills a small tmpfs: the write that crosses the limit is
// short, the next fails with ENOSPC, statfs shows no free block, and
// removing the file gives the space back.
func TestTmpfsFull(t *testing.T) {
	_, fs := testTree(t)
	const limit = 64 << 10
	if err := fs.Root().Mounts().MountTmpfs("/small", limit); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenAt(nil, "/small/f", unix.O_WRONLY|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 48<<10)
	if n, err := f.Write(nil, chunk); n != len(chunk) || err != nil {
		t.Fatalf("first write = %d, %v, want %d, nil", n, err, len(chunk))
	}
	if n, err := f.Write(nil, chunk); n != limit-len(chunk) || err != nil {
		t.Fatalf("second write = %d, %v, want %d (up to the limit), nil", n, err, limit-len(chunk))
	}
	if n, err := f.Write(nil, chunk); n != 0 || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("third write = %d, %v, want 0, ENOSPC", n, err)
	}
	if err := f.Fallocate(0, limit, 4096); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("fallocate past the limit = %v, want ENOSPC", err)
	}
	bfree := func() uint64 {
		b, err := fs.Statfs(nil, "/small")
		if err != nil {
			t.Fatal(err)
		}
		if typ := binary.LittleEndian.Uint64(b[0:]); typ != tmpfsMagic {
			t.Errorf("statfs f_type = %#x, want tmpfs", typ)
		}
		return binary.LittleEndian.Uint64(b[24:])
	}
	if n := bfree(); n != 0 {
		t.Errorf("free blocks when full = %d, want 0", n)
	}
	if err := fs.Unlinkat(nil, "/small/f", 0); err != nil {
		t.Fatal(err)
	}
	if n := bfree(); n != 0 {
		t.Errorf("free blocks with the unlinked file still open = %d, want 0", n)
	}
	f.DecRef()
	if n := bfree(); n != limit/4096 {
		t.Errorf("free blocks after the last close = %d, want %d", n, limit/4096)
	}
}

// TestTmpfsRoundTrip saves a process's filesystem context through the
// generated code and finds the tmpfs tree in the loaded one: contents,
// links, attributes and the mount table.
func TestTmpfsRoundTrip(t *testing.T) {
	_, fs := testTree(t)
	writeFileAt(t, fs, "/run/a", "alpha")
	if err := fs.Mkdirat(Owner{}, nil, "/run/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fs.Linkat(nil, "/run/a", nil, "/run/d/hard", 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.Symlinkat(Owner{}, "../a", nil, "/run/d/sym"); err != nil {
		t.Fatal(err)
	}
	if err := fs.SetAttrAt(nil, "/run/a", 0, &SetAttr{Mask: SetAttrMode | SetAttrUID, Mode: 0o640, UID: 42}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Root().Mounts().MountTmpfs("/extra", 1<<20); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, fs, "/extra/x", "in extra")
	if err := fs.Chdir(nil, "/run/d"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, fs); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	var got FS
	if err := stateify.Load(context.Background(), &buf, &got); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	t.Cleanup(func() { got.Root().Close() })
	for _, tc := range []struct{ path, want string }{
		{"/run/a", "alpha"}, {"hard", "alpha"}, {"sym", "alpha"}, {"/extra/x", "in extra"}, {"/etc/hello.txt", "hello\n"},
	} {
		if s, err := readFileAt(&got, tc.path); s != tc.want || err != nil {
			t.Errorf("after load: read %s = %q, %v, want %q", tc.path, s, err, tc.want)
		}
	}
	st, err := got.Fstatat(nil, "/run/a", 0)
	if err != nil || st.Mode != unix.S_IFREG|0o640 || st.UID != 42 || st.Nlink != 2 {
		t.Errorf("after load: stat /run/a = mode %o uid %d nlink %d, %v; want mode 100640 uid 42 nlink 2", st.Mode, st.UID, st.Nlink, err)
	}
	if !bytes.Contains(got.Root().Mounts().ProcMounts(), []byte("tmpfs /extra tmpfs")) {
		t.Errorf("after load: mounts lack /extra:\n%s", got.Root().Mounts().ProcMounts())
	}
	writeFileAt(t, &got, "/run/new", "written after load")
	if s, _ := readFileAt(fs, "/run/new"); s != "" {
		t.Errorf("the saved tmpfs sees a file created in the loaded one: %q", s)
	}
}

// TestTmpfsThroughHostSymlink: a host symlink into a tmpfs mount point
// (as Debian's /var/run -> /run) reaches the tmpfs for files created
// through it and for files created in the tmpfs.
func TestTmpfsThroughHostSymlink(t *testing.T) {
	rootDir, fs := testTree(t)
	if err := os.MkdirAll(filepath.Join(rootDir, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(rootDir, "var", "run")); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, fs, "/var/run/pid", "42")
	if err := fs.Mkdirat(Owner{}, nil, "/var/run/sub", 0o755); err != nil {
		t.Fatalf("mkdir through the symlink: %v", err)
	}
	writeFileAt(t, fs, "/run/sub/x", "in sub")
	for _, tc := range []struct{ path, want string }{
		{"/run/pid", "42"}, {"/var/run/pid", "42"}, {"/var/run/sub/x", "in sub"},
	} {
		if s, err := readFileAt(fs, tc.path); s != tc.want || err != nil {
			t.Errorf("read %s = %q, %v, want %q", tc.path, s, err, tc.want)
		}
	}
	if err := fs.Renameat(nil, "/var/run/pid", nil, "/var/run/sub/pid", 0); err != nil {
		t.Errorf("rename through the symlink = %v", err)
	}
	if err := fs.Unlinkat(nil, "/var/run/sub/pid", 0); err != nil {
		t.Errorf("unlink through the symlink = %v", err)
	}
	if _, err := fs.Fstatat(nil, "/var/run/nope", 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("stat of a missing file through the symlink = %v, want ENOENT", err)
	}
	if _, err := os.Lstat(filepath.Join(rootDir, "run")); !os.IsNotExist(err) {
		t.Errorf("host %s/run: %v, want it absent", rootDir, err)
	}
}

// TestTmpfsMknod checks which file types mknod makes in a tmpfs: regular
// files, FIFOs and socket files; device nodes and directories are EPERM,
// unknown types EINVAL; opening a socket file is ENXIO.
func TestTmpfsMknod(t *testing.T) {
	_, fs := testTree(t)
	for _, c := range []struct {
		name string
		mode uint32
		err  error
		typ  uint32
	}{
		{"plain", 0o600, nil, unix.S_IFREG},
		{"reg", unix.S_IFREG | 0o600, nil, unix.S_IFREG},
		{"fifo", unix.S_IFIFO | 0o600, nil, unix.S_IFIFO},
		{"sock", unix.S_IFSOCK | 0o600, nil, unix.S_IFSOCK},
		{"chr", unix.S_IFCHR | 0o600, unix.EPERM, 0},
		{"blk", unix.S_IFBLK | 0o600, unix.EPERM, 0},
		{"dir", unix.S_IFDIR | 0o700, unix.EPERM, 0},
		{"bad", 0o160000 | 0o600, unix.EINVAL, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := "/run/" + c.name
			if err := fs.Mknodat(Owner{}, nil, p, c.mode, 0); !errors.Is(err, c.err) && err != c.err {
				t.Fatalf("Mknodat(%s, %#o) = %v, want %v", p, c.mode, err, c.err)
			}
			if c.err != nil {
				return
			}
			st, err := fs.Fstatat(nil, p, 0)
			if err != nil || st.FileType() != c.typ {
				t.Errorf("Fstatat(%s) = %#o, %v, want type %#o", p, st.Mode, err, c.typ)
			}
		})
	}
	if _, err := fs.OpenAt(nil, "/run/sock", unix.O_RDONLY, 0); !errors.Is(err, unix.ENXIO) {
		t.Errorf("open of a socket file = %v, want ENXIO", err)
	}
	f, err := fs.OpenAt(nil, "/run/fifo", unix.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open O_RDWR of a FIFO = %v", err)
	}
	defer f.DecRef()
	if n, err := f.Write(nil, []byte("abc")); n != 3 || err != nil {
		t.Fatalf("write to the FIFO = %d, %v", n, err)
	}
	var b [8]byte
	if n, err := f.Read(nil, b[:]); string(b[:n]) != "abc" || err != nil {
		t.Errorf("read from the FIFO = %q, %v, want \"abc\"", b[:n], err)
	}
}
