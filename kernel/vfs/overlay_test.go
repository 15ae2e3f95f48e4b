package vfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
	"snapshotter/stateify"
)

// overlayTree is testTree with the root made a writable overlay.
func overlayTree(t *testing.T) (string, *FS) {
	t.Helper()
	dir, fs := testTree(t)
	if err := fs.Root().Mounts().MountOverlay(64 << 20); err != nil {
		t.Fatalf("MountOverlay = %v", err)
	}
	return dir, fs
}

// hostTree maps every path under dir to its contents ("<dir>" for a
// directory, "-> target" for a symlink).
func hostTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[p] = "-> " + target
		case info.IsDir():
			m[p] = "<dir> " + info.Mode().String()
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			m[p] = string(b) + " " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listNames(t *testing.T, fs *FS, p string) []string {
	t.Helper()
	f, err := fs.OpenAt(nil, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.DecRef()
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := f.Getdents64(buf)
		if err != nil {
			t.Fatalf("getdents %s: %v", p, err)
		}
		if n == 0 {
			break
		}
		ents, err := ParseDirents64(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				names = append(names, e.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestOverlayChanges makes every kind of change in the overlay and checks
// what the sandbox sees and that the host tree is untouched.
func TestOverlayChanges(t *testing.T) {
	dir, fs := overlayTree(t)
	before := hostTree(t, dir)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Copy-up by writing, a new file, a directory made over a removed one.
	held, err := fs.OpenAt(nil, "/etc/hello.txt", unix.O_RDONLY, 0)
	must("open lower", err)
	defer held.DecRef()
	before1, _ := held.Stat()
	writeFileAt(t, fs, "/etc/hello.txt", "changed")
	writeFileAt(t, fs, "/dir/sub/new.txt", "new")
	must("unlink lower", fs.Unlinkat(nil, "/dir/sub/deep.txt", 0))
	must("symlink", fs.Symlinkat(Owner{}, "sub/new.txt", nil, "/dir/to-new"))
	must("link", fs.Linkat(nil, "/etc/rel-link", nil, "/etc/hard", unix.AT_SYMLINK_FOLLOW))
	must("chmod lower", fs.SetAttrAt(nil, "/etc", 0, &SetAttr{Mask: SetAttrMode, Mode: 0o700}))

	reads := []struct{ path, want string }{
		{"/etc/hello.txt", "changed"},
		{"/etc/abs-link", "changed"}, // a lower symlink to a copied-up file
		{"/etc/hard", "changed"},
		{"/dir/to-new", "new"},
		{"/dir/dirlink/new.txt", "new"}, // a lower symlink into a copied-up directory
	}
	for _, r := range reads {
		if got, err := readFileAt(fs, r.path); got != r.want || err != nil {
			t.Errorf("read %s = %q, %v, want %q", r.path, got, err, r.want)
		}
	}
	if got := readAll(t, held); got != "changed" {
		t.Errorf("a description opened before the copy-up reads %q, want the copy's %q", got, "changed")
	}
	after1, err := fs.Fstatat(nil, "/etc/hello.txt", 0)
	if err != nil || after1.Ino != before1.Ino || after1.DevMinor != before1.DevMinor {
		t.Errorf("stat after copy-up = ino %d dev %d, %v; want the lower's ino %d dev %d", after1.Ino, after1.DevMinor, err, before1.Ino, before1.DevMinor)
	}
	if _, err := fs.Fstatat(nil, "/dir/sub/deep.txt", 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("stat of a removed lower file = %v, want ENOENT", err)
	}
	if got, want := listNames(t, fs, "/dir/sub"), []string{"new.txt"}; !slices.Equal(got, want) {
		t.Errorf("listing of a merged directory = %v, want %v", got, want)
	}
	if got, want := listNames(t, fs, "/dir"), []string{"dirlink", "sub", "to-new"}; !slices.Equal(got, want) {
		t.Errorf("listing of /dir = %v, want %v", got, want)
	}
	if st, err := fs.Fstatat(nil, "/etc", 0); err != nil || st.Mode&0o777 != 0o700 {
		t.Errorf("stat /etc after chmod = %o, %v, want 0700", st.Mode, err)
	}
	if diff := hostDiff(before, hostTree(t, dir)); diff != "" {
		t.Errorf("the host tree changed: %s", diff)
	}
}

func hostDiff(a, b map[string]string) string {
	for k, v := range a {
		if b[k] != v {
			return k + ": " + v + " -> " + b[k]
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return "new " + k
		}
	}
	return ""
}

// TestOverlayErrors checks the answers Linux's overlayfs gives.
func TestOverlayErrors(t *testing.T) {
	_, fs := overlayTree(t)
	writeFileAt(t, fs, "/dir/sub/more", "x")
	if err := fs.Mkdirat(Owner{}, nil, "/fresh", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, fs, "/fresh/f", "in fresh")
	if err := fs.Mkdirat(Owner{}, nil, "/gone", 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"rmdir of a merged non-empty directory", func() error { return fs.Unlinkat(nil, "/dir/sub", unix.AT_REMOVEDIR) }, unix.ENOTEMPTY},
		{"rmdir of a lower non-empty directory", func() error { return fs.Unlinkat(nil, "/dir", unix.AT_REMOVEDIR) }, unix.ENOTEMPTY},
		{"rename of a directory with lower content", func() error { return fs.Renameat(nil, "/dir", nil, "/moved", 0) }, unix.EXDEV},
		{"exchange with a lower directory", func() error { return fs.Renameat(nil, "/fresh", nil, "/etc", unix.RENAME_EXCHANGE) }, unix.EXDEV},
		{"noreplace onto a lower file", func() error {
			return fs.Renameat(nil, "/fresh/f", nil, "/etc/hello.txt", unix.RENAME_NOREPLACE)
		}, unix.EEXIST},
		{"mkdir over a lower file", func() error { return fs.Mkdirat(Owner{}, nil, "/etc/hello.txt", 0o755) }, unix.EEXIST},
		{"create under a lower file", func() error {
			_, err := fs.OpenAt(nil, "/etc/hello.txt/x", unix.O_CREAT|unix.O_WRONLY, 0o644)
			return err
		}, unix.ENOTDIR},
		{"rename of a directory made in the overlay", func() error { return fs.Renameat(nil, "/fresh", nil, "/fresh2", 0) }, nil},
		{"rmdir of an empty directory made in the overlay", func() error { return fs.Unlinkat(nil, "/gone", unix.AT_REMOVEDIR) }, nil},
		{"open a lower FIFO", func() error {
			_, err := fs.OpenAt(nil, "/fifo", unix.O_RDWR, 0)
			return err
		}, unix.EACCES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if got, err := readFileAt(fs, "/fresh2/f"); got != "in fresh" || err != nil {
		t.Errorf("read /fresh2/f = %q, %v after rename", got, err)
	}
}

// TestOverlayWhiteoutsAndOpaque removes lower entries, makes a directory
// again over one and renames files over and out of lower ones.
func TestOverlayWhiteoutsAndOpaque(t *testing.T) {
	_, fs := overlayTree(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("unlink deep", fs.Unlinkat(nil, "/dir/sub/deep.txt", 0))
	must("rmdir sub", fs.Unlinkat(nil, "/dir/sub", unix.AT_REMOVEDIR))
	must("mkdir sub again", fs.Mkdirat(Owner{}, nil, "/dir/sub", 0o755))
	if got := listNames(t, fs, "/dir/sub"); len(got) != 0 {
		t.Errorf("a directory made over a removed one lists %v, want nothing (opaque)", got)
	}
	must("rename lower file", fs.Renameat(nil, "/etc/hello.txt", nil, "/dir/sub/hello", 0))
	if _, err := fs.Fstatat(nil, "/etc/hello.txt", 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("stat of a renamed lower file's old name = %v, want ENOENT", err)
	}
	if got, _ := readFileAt(fs, "/dir/sub/hello"); got != "hello\n" {
		t.Errorf("renamed lower file reads %q", got)
	}
	writeFileAt(t, fs, "/a", "A")
	writeFileAt(t, fs, "/b", "B")
	must("exchange", fs.Renameat(nil, "/a", nil, "/b", unix.RENAME_EXCHANGE))
	if a, _ := readFileAt(fs, "/a"); a != "B" {
		t.Errorf("after exchange /a = %q, want B", a)
	}
	f, err := fs.OpenAt(nil, "/etc", unix.O_TMPFILE|unix.O_RDWR, 0o600)
	must("O_TMPFILE", err)
	f.Write(nil, []byte("tmp"))
	must("link O_TMPFILE", fs.Linkat(f, "", nil, "/etc/named", unix.AT_EMPTY_PATH))
	f.DecRef()
	if got, _ := readFileAt(fs, "/etc/named"); got != "tmp" {
		t.Errorf("linked O_TMPFILE reads %q", got)
	}
	if got, want := listNames(t, fs, "/etc"), []string{"abs-link", "escape-abs", "escape-rel", "named", "proc-link", "rel-link"}; !slices.Equal(got, want) {
		t.Errorf("listing of /etc = %v, want %v", got, want)
	}

	if _, err := fs.XattrAt(nil, "/etc/named", true, &XattrOp{Kind: XattrSet, Name: "user.k", Value: []byte("v")}); err != nil {
		t.Fatalf("setxattr: %v", err)
	}

	// Save and load: the whiteouts still hide, the data is there.
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, fs); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	var got FS
	if err := stateify.Load(context.Background(), &buf, &got); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	t.Cleanup(func() { got.Root().Close() })
	if _, err := got.Fstatat(nil, "/etc/hello.txt", 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("after load: stat of a whited-out file = %v, want ENOENT", err)
	}
	if s, _ := readFileAt(&got, "/dir/sub/hello"); s != "hello\n" {
		t.Errorf("after load: /dir/sub/hello = %q", s)
	}
	if v, err := got.XattrAt(nil, "/etc/named", true, &XattrOp{Kind: XattrGet, Name: "user.k"}); string(v) != "v" || err != nil {
		t.Errorf("after load: getxattr user.k = %q, %v, want v", v, err)
	}
	if names := listNames(t, &got, "/dir/sub"); !slices.Equal(names, []string{"hello"}) {
		t.Errorf("after load: /dir/sub lists %v, want [hello]", names)
	}
}

// TestOverlayTmp checks that /tmp becomes a tmpfs only when the root's is
// empty.
func TestOverlayTmp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(root string) error
		mounted bool
	}{
		{"missing", func(string) error { return nil }, true},
		{"empty", func(root string) error { return os.Mkdir(filepath.Join(root, "tmp"), 0o1777) }, true},
		{"holding a file", func(root string) error {
			if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, "tmp", "prog"), nil, 0o755)
		}, false},
		{"holding more files than one read of the directory returns", func(root string) error {
			if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
				return err
			}
			for i := range 300 {
				if err := os.WriteFile(filepath.Join(root, "tmp", fmt.Sprintf("file-%03d", i)), nil, 0o644); err != nil {
					return err
				}
			}
			return nil
		}, false},
		{"holding a directory", func(root string) error {
			return os.MkdirAll(filepath.Join(root, "tmp", "d"), 0o1777)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := tc.setup(root); err != nil {
				t.Fatal(err)
			}
			r, err := OpenRoot(root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			mt := r.Mounts()
			if err := mt.MountOverlay(1 << 20); err != nil {
				t.Fatal(err)
			}
			got, err := mt.MountTmpIfEmpty(r, 1<<20)
			if err != nil || got != tc.mounted {
				t.Errorf("MountTmpIfEmpty = %v, %v, want %v", got, err, tc.mounted)
			}
			if mounts := string(mt.ProcMounts()); bytes.Contains([]byte(mounts), []byte(" /tmp tmpfs")) != tc.mounted {
				t.Errorf("mounts:\n%s", mounts)
			}
		})
	}
}

// TestBindMount checks a volume's confinement, EXDEV across mounts, and
// that a load finds its host directory again (or reports it missing).
func TestBindMount(t *testing.T) {
	_, fs := overlayTree(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "v.txt"), []byte("volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/../../v.txt", filepath.Join(vol, "up")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Root().Mounts().MountBind(vol, "/vol", false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"rename out of the volume", func() error { return fs.Renameat(nil, "/vol/v.txt", nil, "/etc/v", 0) }, unix.EXDEV},
		{"rename into the volume", func() error { return fs.Renameat(nil, "/etc/hello.txt", nil, "/vol/h", 0) }, unix.EXDEV},
		{"link out of the volume", func() error { return fs.Linkat(nil, "/vol/v.txt", nil, "/v", 0) }, unix.EXDEV},
		{"mknod of a FIFO", func() error { return fs.Mknodat(Owner{}, nil, "/vol/fifo", unix.S_IFIFO|0o644, 0) }, unix.EPERM},
		{"rename inside", func() error { return fs.Renameat(nil, "/vol/v.txt", nil, "/vol/w.txt", 0) }, nil},
	} {
		if err := tc.op(); err != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/vol/w.txt", "volume"}, {"/vol/../etc/hello.txt", "hello\n"}, {"/vol/up", ""},
	} {
		got, _ := readFileAt(fs, tc.path)
		if got != tc.want {
			t.Errorf("read %s = %q, want %q", tc.path, got, tc.want)
		}
	}
	var host unix.Statfs_t
	if err := unix.Statfs(vol, &host); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		magic  int64
		blocks uint64
	}{{"/", overlayMagic, 64 << 20 / 4096}, {"/vol/w.txt", host.Type, host.Blocks}, {"/run", tmpfsMagic, DefaultTmpfsSize / 4096}} {
		b, err := fs.Statfs(nil, tc.path)
		magic, blocks := int64(binary.LittleEndian.Uint64(b[0:])), binary.LittleEndian.Uint64(b[16:])
		if err != nil || magic != tc.magic || blocks != tc.blocks {
			t.Errorf("statfs %s = type %#x, %d blocks, %v; want %#x, %d", tc.path, magic, blocks, err, tc.magic, tc.blocks)
		}
	}
	if mounts := string(fs.Root().Mounts().ProcMountinfo()); !strings.Contains(mounts, " /vol rw - bind "+vol) || !strings.Contains(mounts, " / rw,relatime - overlay overlay rw,lowerdir=") {
		t.Errorf("mountinfo lacks the volume or the overlay:\n%s", mounts)
	}

	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, fs); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	saved := buf.Bytes()
	moved := vol + ".moved"
	if err := os.Rename(vol, moved); err != nil {
		t.Fatal(err)
	}
	var errs RestoreErrors
	var got FS
	if err := stateify.Load(WithRestoreErrors(context.Background(), &errs), bytes.NewReader(saved), &got); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	got.Root().Close()
	if err := errs.Err(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(vol)) {
		t.Errorf("load without the volume's directory: %v, want an error naming %s", err, vol)
	}
	var again FS
	ctx := WithRestoreBinds(context.Background(), map[string]string{"/vol": moved})
	if err := stateify.Load(ctx, bytes.NewReader(saved), &again); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	defer again.Root().Close()
	if s, _ := readFileAt(&again, "/vol/w.txt"); s != "volume" {
		t.Errorf("after a load remapping the volume: /vol/w.txt = %q", s)
	}
}

// TestOverlayMknod checks named pipes and socket files in the overlay:
// made in the upper layer (parents copied up, a whiteout replaced, EEXIST
// over a lower entry, also a host FIFO), a FIFO passing bytes through the
// sentry's pipe, a socket bound and found again by path, and the host
// left alone.
func TestOverlayMknod(t *testing.T) {
	dir, fs := overlayTree(t)
	before := hostTree(t, dir)
	if err := fs.Unlinkat(nil, "/etc/hello.txt", 0); err != nil {
		t.Fatal(err)
	}
	var sock struct{ name string }
	for _, tc := range []struct {
		name string
		op   func() error
		want error
		typ  uint32
		path string
	}{
		{"FIFO in a lower directory", func() error { return fs.Mknodat(Owner{}, nil, "/dir/sub/f", unix.S_IFIFO|0o600, 0) }, nil, unix.S_IFIFO, "/dir/sub/f"},
		{"FIFO over a whiteout", func() error { return fs.Mknodat(Owner{}, nil, "/etc/hello.txt", unix.S_IFIFO|0o644, 0) }, nil, unix.S_IFIFO, "/etc/hello.txt"},
		{"socket file", func() error { return fs.Mknodat(Owner{}, nil, "/etc/s", unix.S_IFSOCK|0o644, 0) }, nil, unix.S_IFSOCK, "/etc/s"},
		{"FIFO over a lower file", func() error { return fs.Mknodat(Owner{}, nil, "/dir/sub/deep.txt", unix.S_IFIFO|0o644, 0) }, unix.EEXIST, 0, ""},
		{"FIFO over a host FIFO", func() error { return fs.Mknodat(Owner{}, nil, "/fifo", unix.S_IFIFO|0o644, 0) }, unix.EEXIST, 0, ""},
		{"device node", func() error { return fs.Mknodat(Owner{}, nil, "/etc/null", unix.S_IFCHR|0o644, 0) }, unix.EPERM, 0, ""},
		{"unknown type", func() error { return fs.Mknodat(Owner{}, nil, "/etc/bad", 0o160000|0o644, 0) }, unix.EINVAL, 0, ""},
		{"bind", func() error { return fs.BindSocket(Owner{}, nil, "/dir/sock", 0o755, &sock) }, nil, unix.S_IFSOCK, "/dir/sock"},
		{"bind over a lower file", func() error { return fs.BindSocket(Owner{}, nil, "/etc/rel-link", 0o755, &sock) }, unix.EADDRINUSE, 0, ""},
		{"bind again", func() error { return fs.BindSocket(Owner{}, nil, "/dir/sock", 0o755, &sock) }, unix.EADDRINUSE, 0, ""},
	} {
		if err := tc.op(); err != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			continue
		}
		if tc.path == "" {
			continue
		}
		if st, err := fs.Fstatat(nil, tc.path, 0); err != nil || st.FileType() != tc.typ {
			t.Errorf("%s: Fstatat(%s) = %#o, %v, want type %#o", tc.name, tc.path, st.Mode, err, tc.typ)
		}
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{"/dir/sock", nil}, {"/etc/s", unix.ECONNREFUSED}, {"/fifo", unix.ECONNREFUSED},
		{"/etc/hello.txt", unix.ECONNREFUSED}, {"/dir/none", unix.ENOENT},
	} {
		s, err := fs.LookupSocket(nil, nil, tc.path)
		if err != tc.want || tc.want == nil && s != &sock {
			t.Errorf("LookupSocket(%s) = %v, %v, want %v", tc.path, s, err, tc.want)
		}
	}
	f, err := fs.OpenAt(nil, "/dir/sub/f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open O_RDWR of the FIFO = %v", err)
	}
	defer f.DecRef()
	if n, err := f.Write(nil, []byte("abc")); n != 3 || err != nil {
		t.Fatalf("write to the FIFO = %d, %v", n, err)
	}
	var b [8]byte
	if n, err := f.Read(nil, b[:]); string(b[:n]) != "abc" || err != nil {
		t.Errorf("read from the FIFO = %q, %v, want \"abc\"", b[:n], err)
	}
	if _, err := fs.OpenAt(nil, "/etc/s", unix.O_RDONLY, 0); err != unix.ENXIO {
		t.Errorf("open of a socket file = %v, want ENXIO", err)
	}
	if got := listNames(t, fs, "/dir/sub"); !slices.Equal(got, []string{"deep.txt", "f"}) {
		t.Errorf("listing of /dir/sub = %v, want [deep.txt f]", got)
	}
	if after := hostTree(t, dir); !maps.Equal(before, after) {
		t.Errorf("the host changed: %v, was %v", after, before)
	}
}

// TestOverlayPermissions checks that a caller who is not root gets the
// tmpfs permission checks in the overlay: on lower files by their host
// mode and owner (a root-owned 0644 file is not writable, a sticky
// directory keeps others' files), and on upper ones by theirs.
func TestOverlayPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		prereq.Missing(t, "root, to make host files of other owners")
	}
	dir, fs := testTree(t)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"sticky", 0o777 | os.ModeSticky}, {"closed", 0o700}} {
		if err := os.Mkdir(filepath.Join(dir, d.path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d.path), d.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"sticky/rootfile", "closed/f"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sticky", "userfile"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "sticky", "userfile"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := fs.Root().Mounts().MountOverlay(64 << 20); err != nil {
		t.Fatal(err)
	}
	c := &Creds{FSUID: 1000, FSGID: 1000}
	user := Owner{UID: 1000, GID: 1000, Creds: c}
	root := Owner{Creds: &Creds{Caps: 1<<capDACOverride | 1<<capFowner | 1<<capChown}}
	open := func(o Owner, p string, flags uint32) error {
		f, err := fs.OpenAtAs(o, nil, p, flags, 0o644)
		if err == nil {
			f.DecRef()
		}
		return err
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"read root's 0644", func() error { return open(user, "/etc/hello.txt", unix.O_RDONLY) }, nil},
		{"write root's 0644", func() error { return open(user, "/etc/hello.txt", unix.O_WRONLY) }, unix.EACCES},
		{"truncate root's 0644", func() error {
			return fs.SetAttrAt(nil, "/etc/hello.txt", 0, &SetAttr{Mask: SetAttrSize, Creds: c})
		}, unix.EACCES},
		{"chmod root's 0644", func() error {
			return fs.SetAttrAt(nil, "/etc/hello.txt", 0, &SetAttr{Mask: SetAttrMode, Mode: 0o666, Creds: c})
		}, unix.EPERM},
		{"create in root's 0755", func() error { return open(user, "/etc/new", unix.O_CREAT|unix.O_WRONLY) }, unix.EACCES},
		{"mkdir in root's 0755", func() error { return fs.Mkdirat(user, nil, "/etc/d", 0o755) }, unix.EACCES},
		{"mkfifo in root's 0755", func() error { return fs.Mknodat(user, nil, "/etc/p", unix.S_IFIFO|0o644, 0) }, unix.EACCES},
		{"unlink in root's 0755", func() error { return fs.UnlinkatAs(user, nil, "/etc/hello.txt", 0) }, unix.EACCES},
		{"unlink root's file in a sticky directory", func() error { return fs.UnlinkatAs(user, nil, "/sticky/rootfile", 0) }, unix.EPERM},
		{"rename root's file in a sticky directory", func() error {
			return fs.RenameatAs(user, nil, "/sticky/rootfile", nil, "/sticky/r2", 0)
		}, unix.EPERM},
		{"stat in root's 0700", func() error { _, err := fs.FstatatAs(c, nil, "/closed/f", 0); return err }, unix.EACCES},
		{"access in root's 0700", func() error { return fs.FaccessatAs(c, nil, "/closed/f", unix.R_OK, 0) }, unix.EACCES},
		{"access W_OK root's 0644", func() error { return fs.FaccessatAs(c, nil, "/etc/hello.txt", unix.W_OK, 0) }, unix.EACCES},
		{"chdir to root's 0700", func() error { return fs.ChdirAs(c, nil, "/closed") }, unix.EACCES},
		{"open in root's 0700", func() error { return open(user, "/closed/f", unix.O_RDONLY) }, unix.EACCES},
		{"create in a sticky directory", func() error { return open(user, "/sticky/mine", unix.O_CREAT|unix.O_WRONLY) }, nil},
		{"write own upper file", func() error { return open(user, "/sticky/mine", unix.O_WRONLY) }, nil},
		{"rename own lower file in a sticky directory", func() error {
			return fs.RenameatAs(user, nil, "/sticky/userfile", nil, "/sticky/u2", 0)
		}, nil},
		{"unlink own upper file in a sticky directory", func() error { return fs.UnlinkatAs(user, nil, "/sticky/u2", 0) }, nil},
		{"root writes root's 0644", func() error { return open(root, "/etc/hello.txt", unix.O_WRONLY) }, nil},
		{"root reads in 0700", func() error { return open(root, "/closed/f", unix.O_RDONLY) }, nil},
	} {
		if err := tc.op(); err != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
		}
	}
	st, err := fs.Fstatat(nil, "/sticky/mine", 0)
	if err != nil || st.UID != 1000 {
		t.Errorf("Fstatat(/sticky/mine) = uid %d, %v, want 1000", st.UID, err)
	}
}

// TestOverlayLowerDirs creates and removes files in more lower
// directories than the overlay keeps open (lowerDirs), twice over: a name
// the lower layer has is found through a kept directory (EEXIST, a
// whiteout when removed), one it lacks is not (no whiteout, and nothing
// left in tmpNode.lowerAbsent), and closing the root closes every kept
// directory.
func TestOverlayLowerDirs(t *testing.T) {
	dir, fs := overlayTree(t)
	const dirs = lowerDirSlots + 4
	for i := range dirs {
		d := filepath.Join(dir, "many", fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "lower"), []byte("low"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		for i := range dirs {
			d := fmt.Sprintf("/many/%d", i)
			f, err := fs.OpenAt(nil, d+"/new", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatalf("round %d: create %s/new = %v", round, d, err)
			}
			f.DecRef()
			if round == 0 {
				if _, err := fs.OpenAt(nil, d+"/lower", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644); !errors.Is(err, unix.EEXIST) {
					t.Errorf("create %s/lower with O_EXCL = %v, want EEXIST", d, err)
				}
				if err := fs.Unlinkat(nil, d+"/lower", 0); err != nil {
					t.Fatalf("unlink %s/lower = %v", d, err)
				}
			}
			if err := fs.Unlinkat(nil, d+"/new", 0); err != nil {
				t.Fatalf("round %d: unlink %s/new = %v", round, d, err)
			}
			if got := listNames(t, fs, d); len(got) != 0 {
				t.Errorf("round %d: %s lists %v, want nothing", round, d, got)
			}
		}
	}
	// A name the lower layer lacks, renamed to another such name and
	// removed, leaves no whiteout either.
	writeFileAt(t, fs, "/many/0/a", "a")
	if err := fs.Renameat(nil, "/many/0/a", nil, "/many/1/b", 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlinkat(nil, "/many/1/b", 0); err != nil {
		t.Fatal(err)
	}
	up := fs.Root().Mounts().byPoint("/").fs.(*overlayFS).upper
	up.mu.Lock()
	for i := range dirs {
		d := up.root.children["many"].children[fmt.Sprint(i)]
		if got := slices.Sorted(maps.Keys(d.whiteouts)); !slices.Equal(got, []string{"lower"}) {
			t.Errorf("whiteouts of /many/%d = %v, want [lower]", i, got)
		}
		if len(d.lowerAbsent) != 0 {
			t.Errorf("/many/%d still records %v as missing from the lower layer, with no such entry", i, d.lowerAbsent)
		}
	}
	var kept []int
	for _, e := range up.ovl.lowerDirs.ents {
		if e.path != "" {
			kept = append(kept, e.fd)
		}
	}
	up.mu.Unlock()
	if len(kept) != lowerDirSlots {
		t.Errorf("%d lower directories kept open, want %d", len(kept), lowerDirSlots)
	}
	fs.Root().Close()
	for _, fd := range kept {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("kept directory descriptor %d after closing the root: F_GETFD = %v, want EBADF", fd, err)
		}
	}
}

// linkedOverlay returns linkedTree's directory (searchable by everyone)
// and an FS whose root is an overlay over it.
func linkedOverlay(t *testing.T) (string, *FS) {
	t.Helper()
	dir := linkedTree(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	if err := root.Mounts().MountOverlay(64 << 20); err != nil {
		t.Fatal(err)
	}
	return dir, NewFS(root)
}

// TestOverlayLowerChanges changes the host tree under the overlay between
// two opens, the way a package upgrade does: a file replaced, removed or
// made, a symlink on the way pointed elsewhere, a directory replaced by
// another or by a symlink. The next lookup sees each change, both for a
// caller who may search every directory (one openat2 from the root while
// no symlink is on the way) and for one who may not (a lookup per name,
// in the lower directories the overlay keeps open).
func TestOverlayLowerChanges(t *testing.T) {
	dir, fs := linkedOverlay(t)
	host := func(p string) string { return filepath.Join(dir, p) }
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(host(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host(p+".new"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(host(p+".new"), host(p)); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	relink := func(link, target string) {
		t.Helper()
		must(os.Remove(host(link)))
		must(os.Symlink(target, host(link)))
	}
	const (
		libc   = "/lib/x86_64-linux-gnu/libc.so.6"
		loader = "/lib64/ld-linux-x86-64.so.2"
	)
	write("usr/lib/x86_64-linux-gnu/libc.so.6", "libc 1")
	write("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "ld 1")
	write("usr/bin/true", "true 1")
	steps := []struct {
		name   string
		change func()
		want   map[string]string // path -> contents, or "error: " + errno
	}{
		{"before", func() {}, map[string]string{
			libc: "libc 1", loader: "ld 1", "/bin/true": "true 1", "/etc/ld.so.preload": "error: no such file or directory",
		}},
		{"file replaced", func() { write("usr/lib/x86_64-linux-gnu/libc.so.6", "libc 2") }, map[string]string{
			libc: "libc 2", "/usr/lib/x86_64-linux-gnu/libc.so.6": "libc 2",
		}},
		{"file made", func() { write("etc/ld.so.preload", "preload") }, map[string]string{
			"/etc/ld.so.preload": "preload",
		}},
		{"symlink on the way changed", func() {
			write("usr/lib2/x86_64-linux-gnu/libc.so.6", "libc 3")
			relink("lib", "usr/lib2")
		}, map[string]string{
			libc: "libc 3", "/usr/lib/x86_64-linux-gnu/libc.so.6": "libc 2",
		}},
		{"symlink at the end changed", func() {
			write("usr/lib2/x86_64-linux-gnu/ld.so", "ld 2")
			relink("usr/lib64/ld-linux-x86-64.so.2", "../lib2/x86_64-linux-gnu/ld.so")
		}, map[string]string{
			loader: "ld 2",
		}},
		{"file removed", func() { must(os.Remove(host("usr/lib2/x86_64-linux-gnu/libc.so.6"))) }, map[string]string{
			libc: "error: no such file or directory", loader: "ld 2",
		}},
		{"directory replaced", func() {
			must(os.Rename(host("usr/lib2/x86_64-linux-gnu"), host("usr/lib2/old")))
			write("usr/lib2/x86_64-linux-gnu/libc.so.6", "libc 4")
		}, map[string]string{
			libc: "libc 4", loader: "error: no such file or directory", "/usr/lib2/old/ld.so": "ld 2",
		}},
		{"directory replaced by a symlink", func() {
			must(os.Rename(host("usr/bin"), host("usr/bin-old")))
			write("usr/bin2/true", "true 2")
			must(os.Symlink("bin2", host("usr/bin")))
		}, map[string]string{
			"/bin/true": "true 2", "/usr/bin/true": "true 2",
		}},
	}
	callers := []struct {
		name  string
		creds *Creds
	}{
		{"privileged", nil},
		{"unprivileged", &Creds{FSUID: 1000, FSGID: 1000}},
	}
	for _, step := range steps {
		step.change()
		for _, c := range callers {
			for p, want := range step.want {
				got, err := readFileAs(fs, c.creds, p)
				if err != nil {
					got = "error: " + err.Error()
				}
				if got != want {
					t.Errorf("%s: %s caller: %s reads %q, want %q", step.name, c.name, p, got, want)
				}
			}
		}
	}
	// No open, found or failed, leaves a host descriptor behind: once the
	// kept directories are open, opening everything again opens none.
	openAll := func() {
		for _, step := range steps {
			for _, c := range callers {
				for p := range step.want {
					readFileAs(fs, c.creds, p)
				}
			}
		}
	}
	openAll()
	before := openFDs(t)
	openAll()
	if after := openFDs(t); after != before {
		t.Errorf("%d host descriptors open after opening every path again, want %d as before", after, before)
	}
	// Nor does an open for writing, which copies the file up and opens
	// the copy instead of the lower file its walk found.
	f, err := fs.OpenAt(nil, "/usr/lib/x86_64-linux-gnu/libc.so.6", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.DecRef()
	if after := openFDs(t); after != before {
		t.Errorf("%d host descriptors open after a copy-up, want %d as before", after, before)
	}
}

// openFDs counts the test process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// readFileAs reads the first 4 KiB of p as a caller with creds c.
func readFileAs(fs *FS, c *Creds, p string) (string, error) {
	f, err := fs.OpenAtAs(Owner{Creds: c}, nil, p, unix.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.DecRef()
	buf := make([]byte, 4096)
	n, err := f.Read(nil, buf)
	return string(buf[:n]), err
}

// TestOverlayLowerSymlinks checks what a walk that meets a lower symlink
// at its end answers, for a caller who may search every directory (the
// host walks the path in one lookup and hands the symlink back) and one
// who may not (name by name): stat and readlink see the symlink, an open
// follows it unless O_NOFOLLOW, a trailing slash follows it, O_DIRECTORY
// on a file is ENOTDIR, and a file made through a symlinked directory
// lands in the directory it points to.
func TestOverlayLowerSymlinks(t *testing.T) {
	for _, c := range []struct {
		name  string
		creds *Creds
	}{
		{"privileged", nil},
		{"root-without-capabilities", &Creds{FSUID: 0, FSGID: 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, fs := linkedOverlay(t)
			const loader = "/usr/lib64/ld-linux-x86-64.so.2"
			st, err := fs.FstatatAs(c.creds, nil, loader, unix.AT_SYMLINK_NOFOLLOW)
			if err != nil || st.FileType() != unix.S_IFLNK {
				t.Errorf("lstat %s = %#o, %v, want a symlink", loader, st.FileType(), err)
			}
			if got, err := fs.ReadlinkatAs(c.creds, nil, loader); got != "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" || err != nil {
				t.Errorf("readlink %s = %q, %v", loader, got, err)
			}
			st, err = fs.FstatatAs(c.creds, nil, loader, 0)
			if err != nil || st.FileType() != unix.S_IFREG || st.Size != 4096 {
				t.Errorf("stat %s = %#o size %d, %v, want the 4096-byte file", loader, st.FileType(), st.Size, err)
			}
			for _, tc := range []struct {
				path  string
				flags uint32
				want  error
			}{
				{loader, unix.O_RDONLY, nil},
				{loader, unix.O_RDONLY | unix.O_NOFOLLOW, unix.ELOOP},
				{loader, unix.O_PATH | unix.O_NOFOLLOW, nil},
				{"/lib64/", unix.O_RDONLY, nil},
				{"/lib64/ld-linux-x86-64.so.2/", unix.O_RDONLY, unix.ENOTDIR},
				{"/lib/x86_64-linux-gnu/libc.so.6", unix.O_RDONLY | unix.O_DIRECTORY, unix.ENOTDIR},
				{"/lib/x86_64-linux-gnu", unix.O_RDONLY | unix.O_DIRECTORY, nil},
				{"/lib/x86_64-linux-gnu/missing", unix.O_RDONLY, unix.ENOENT},
				{"/lib/x86_64-linux-gnu/libc.so.6/x", unix.O_RDONLY, unix.ENOTDIR},
			} {
				f, err := fs.OpenAtAs(Owner{Creds: c.creds}, nil, tc.path, tc.flags, 0)
				if err == nil {
					f.DecRef()
				}
				if err != tc.want {
					t.Errorf("open %s, %#x = %v, want %v", tc.path, tc.flags, err, tc.want)
				}
			}
			f, err := fs.OpenAtAs(Owner{Creds: c.creds}, nil, "/lib/x86_64-linux-gnu/new", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatalf("create /lib/x86_64-linux-gnu/new = %v", err)
			}
			f.DecRef()
			if _, err := fs.FstatatAs(c.creds, nil, "/usr/lib/x86_64-linux-gnu/new", 0); err != nil {
				t.Errorf("stat /usr/lib/x86_64-linux-gnu/new after creating it through /lib = %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "usr/lib/x86_64-linux-gnu/new")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the host has the new file: lstat = %v", err)
			}
		})
	}
}
