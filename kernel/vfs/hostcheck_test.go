package vfs

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
	"snapshotter/stateify"
)

// mountPseudo mounts a filesystem of type fstype at dir for the test, or
// reports the prerequisite missing (mounting needs CAP_SYS_ADMIN).
func mountPseudo(t *testing.T, fstype, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fstype, dir, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		prereq.Missing(t, "mount -t %s (root with CAP_SYS_ADMIN): %v", fstype, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// TestHostPseudoFiles checks the host-file rule: whatever the path, files
// on a host pseudo filesystem are not found (EACCES for every lookup), and
// host FIFOs, sockets and devices are listed and stat'ed but never opened.
// It holds for the host root as the sandbox's root and for the overlay
// over it, whose walk looks lower files up in one openat2 from the root
// for a caller who may search every directory and name by name from
// the directories it keeps open for one who may not.
func TestHostPseudoFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlay bool
		creds   *Creds
	}{
		{"root", false, nil},
		{"overlay", true, nil},
		{"overlay-unprivileged", true, &Creds{FSUID: 1000, FSGID: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) { testHostPseudoFiles(t, tc.overlay, tc.creds) })
	}
}

func testHostPseudoFiles(t *testing.T, overlay bool, creds *Creds) {
	rootDir, fs := testTree(t)
	if overlay {
		if err := fs.Root().Mounts().MountOverlay(64 << 20); err != nil {
			t.Fatalf("MountOverlay = %v", err)
		}
	}
	if err := os.Chmod(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(rootDir, "mnt")
	mountPseudo(t, "proc", filepath.Join(mnt, "proc2"))
	mountPseudo(t, "sysfs", filepath.Join(mnt, "sys2"))
	if err := unix.Mknod(filepath.Join(mnt, "null2"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		prereq.Missing(t, "mknod (root): %v", err)
	}
	l, err := net.Listen("unix", filepath.Join(mnt, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		path     string
		flags    uint32
		want     error
		statWant error
	}{
		{"/mnt/proc2", unix.O_DIRECTORY, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/1/status", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/" + pid + "/environ", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/" + pid + "/mem", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/self", unix.O_PATH | unix.O_NOFOLLOW, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/kallsyms", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/timer_list", unix.O_PATH, unix.EACCES, unix.EACCES},
		// Missing names inside are refused the same way: ENOENT would tell
		// which host processes exist.
		{"/mnt/proc2/999999999/status", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/no-such-file", 0, unix.EACCES, unix.EACCES},
		{"/mnt/proc2/self/fd/0/x", 0, unix.EACCES, unix.EACCES},
		// The host root resolves ".." before the name after it, the
		// overlay looks every name up in turn, as Linux does, and refuses
		// proc2 first (EACCES, set in the loop).
		{"/mnt/proc2/../no-such-file", 0, unix.ENOENT, unix.ENOENT},
		{"/mnt/no-such-file", 0, unix.ENOENT, unix.ENOENT},
		{"/mnt/sys2/kernel", unix.O_DIRECTORY, unix.EACCES, unix.EACCES},
		{"/mnt/sys2/devices/system/cpu/online", 0, unix.EACCES, unix.EACCES},
		{"/mnt/null2", 0, unix.EACCES, nil},
		{"/mnt/null2", unix.O_NONBLOCK, unix.EACCES, nil},
		{"/mnt/sock", 0, unix.EACCES, nil},
		{"/fifo", unix.O_RDONLY, unix.EACCES, nil},
	} {
		if overlay && tc.path == "/mnt/proc2/../no-such-file" {
			tc.want, tc.statWant = unix.EACCES, unix.EACCES
		}
		f, err := fs.OpenAtAs(Owner{Creds: creds}, nil, tc.path, tc.flags, 0)
		if err == nil {
			f.DecRef()
		}
		if err != tc.want {
			t.Errorf("OpenAt(%q, %#x) = %v, want %v", tc.path, tc.flags, err, tc.want)
		}
		if _, err := fs.FstatatAs(creds, nil, tc.path, unix.AT_SYMLINK_NOFOLLOW); err != tc.statWant {
			t.Errorf("Fstatat(%q) = %v, want %v", tc.path, err, tc.statWant)
		}
	}
	if err := fs.ChdirAs(creds, nil, "/mnt/proc2"); err != unix.EACCES {
		t.Errorf("Chdir(/mnt/proc2) = %v, want EACCES", err)
	}
	if _, err := fs.ReadlinkatAs(creds, nil, "/mnt/proc2/self"); err != unix.EACCES {
		t.Errorf("Readlinkat(/mnt/proc2/self) = %v, want EACCES", err)
	}
	if _, err := fs.StatfsAs(creds, nil, "/mnt/sys2"); err != unix.EACCES {
		t.Errorf("Statfs(/mnt/sys2) = %v, want EACCES", err)
	}
	// The mount points and special files stay visible in listings.
	d, err := fs.OpenAtAs(Owner{Creds: creds}, nil, "/mnt", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.DecRef()
	got := listDir(t, d)
	slices.Sort(got)
	if want := []string{".", "..", "null2", "proc2", "sock", "sys2"}; !slices.Equal(got, want) {
		t.Errorf("listing of /mnt = %q, want %q", got, want)
	}
}

// TestPseudoRootRefused checks that a root on a pseudo filesystem is
// refused when it is opened.
func TestPseudoRootRefused(t *testing.T) {
	for _, dir := range []string{"/proc", "/sys"} {
		if r, err := OpenRoot(dir); err == nil {
			r.Close()
			t.Errorf("OpenRoot(%s) succeeded, want ErrPseudoRoot", dir)
		} else if !errors.Is(err, ErrPseudoRoot) {
			t.Errorf("OpenRoot(%s) = %v, want ErrPseudoRoot", dir, err)
		}
	}
}

// TestSentryDirs checks the sentry's /proc and /sys as vfs serves them
// (the kernel adds the per-process entries of /proc).
func TestSentryDirs(t *testing.T) {
	rootDir, fs := testTree(t)
	// A host /sys and /proc under the root are ignored.
	for _, d := range []string{"sys/class", "proc/1"} {
		if err := os.MkdirAll(filepath.Join(rootDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	online := "0\n"
	if n := runtime.NumCPU(); n > 1 {
		online = "0-" + strconv.Itoa(n-1) + "\n"
	}
	for _, tc := range []struct {
		path  string
		flags uint32
		want  string // contents, or a listing of a directory
		err   error
	}{
		{"/sys/devices/system/cpu/online", 0, online, nil},
		{"/sys/devices/system/cpu/possible", 0, online, nil},
		{"/sys/devices/system/cpu/../cpu/online", 0, online, nil},
		{"/sys/devices/system/cpu/online", unix.O_WRONLY, "", unix.EACCES},
		{"/sys/devices/system/cpu/online/", 0, "", unix.ENOTDIR},
		{"/sys/devices/system/cpu", unix.O_DIRECTORY, ". .. online possible", nil},
		{"/sys", unix.O_DIRECTORY, ". .. devices", nil},
		{"/sys/class", 0, "", unix.ENOENT},
		{"/sys/kernel/mm/transparent_hugepage/enabled", 0, "", unix.ENOENT},
		{"/proc", unix.O_DIRECTORY, ". ..", nil},
		{"/proc/cpuinfo", 0, "", unix.ENOENT},
		{"/proc/1", unix.O_DIRECTORY, "", unix.ENOENT},
		{"/dev/fd/0", 0, "", unix.ENOENT}, // the kernel answers /dev/fd/N
		{"/dev/null/x", 0, "", unix.ENOTDIR},
	} {
		f, err := fs.OpenAt(nil, tc.path, tc.flags, 0)
		if err != tc.err {
			t.Errorf("OpenAt(%q, %#x) = %v, want %v", tc.path, tc.flags, err, tc.err)
		}
		if err != nil {
			continue
		}
		var got string
		if f.IsDir() {
			for i, n := range listDir(t, f) {
				if i > 0 {
					got += " "
				}
				got += n
			}
		} else {
			got = readAll(t, f)
		}
		f.DecRef()
		if got != tc.want {
			t.Errorf("contents of %q = %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct {
		path  string
		flags int
		mode  uint32
	}{
		{"/proc", 0, unix.S_IFDIR},
		{"/sys/devices", 0, unix.S_IFDIR},
		{"/sys/devices/system/cpu/online", 0, unix.S_IFREG},
		{"/dev/stdin", unix.AT_SYMLINK_NOFOLLOW, unix.S_IFLNK},
		{"/dev/null", 0, unix.S_IFCHR},
	} {
		st, err := fs.Fstatat(nil, tc.path, tc.flags)
		if err != nil || st.FileType() != tc.mode {
			t.Errorf("Fstatat(%q) = type %#o, %v; want %#o", tc.path, st.FileType(), err, tc.mode)
		}
	}
	if got, err := fs.Readlinkat(nil, "/dev/fd"); got != "/proc/self/fd" || err != nil {
		t.Errorf("Readlinkat(/dev/fd) = %q, %v; want /proc/self/fd", got, err)
	}
	for p, magic := range map[string]int64{"/proc": unix.PROC_SUPER_MAGIC, "/sys/devices": unix.SYSFS_MAGIC, "/dev": tmpfsMagic} {
		b, err := fs.Statfs(nil, p)
		if err != nil || decodeStatfs(t, b).Type != magic {
			t.Errorf("Statfs(%q) type = %#x, %v; want %#x", p, decodeStatfs(t, b).Type, err, magic)
		}
	}
	if err := fs.Chdir(nil, "/sys/devices"); err != nil || fs.Getcwd() != "/sys/devices" {
		t.Fatalf("Chdir(/sys/devices) = %v, cwd %q", err, fs.Getcwd())
	}
	f, err := fs.OpenAt(nil, "system/cpu/online", 0, 0)
	if err != nil {
		t.Fatalf("OpenAt(system/cpu/online) from /sys/devices = %v", err)
	}
	if got := readAll(t, f); got != online {
		t.Errorf("relative read = %q, want %q", got, online)
	}
	f.DecRef()
	for name, err := range map[string]error{
		"mkdir /sys/x":   fs.Mkdirat(Owner{}, nil, "/sys/x", 0o755),
		"mkdir /sys":     fs.Mkdirat(Owner{}, nil, "/sys", 0o755),
		"unlink /proc":   fs.Unlinkat(nil, "/proc", unix.AT_REMOVEDIR),
		"mkdir /sys/x/y": fs.Mkdirat(Owner{}, nil, "/sys/x/y", 0o755),
	} {
		want := map[string]error{"mkdir /sys/x": unix.EROFS, "mkdir /sys": unix.EEXIST, "unlink /proc": unix.EROFS, "mkdir /sys/x/y": unix.ENOENT}[name]
		if err != want {
			t.Errorf("%s = %v, want %v", name, err, want)
		}
	}
}

// TestSyntheticDirStateify saves a /sys directory open in the middle of a
// listing; the restored one continues where it was.
func TestSyntheticDirStateify(t *testing.T) {
	_, fs := testTree(t)
	d, err := fs.OpenAt(nil, "/sys/devices/system/cpu", unix.O_DIRECTORY, 0)
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
	if got, want := listDir(t, rd), []string{"online", "possible"}; !slices.Equal(got, want) {
		t.Errorf("restored /sys/devices/system/cpu continues with %q, want %q", got, want)
	}
	if rd.Path() != "/sys/devices/system/cpu" || !rd.IsDir() {
		t.Errorf("restored Path, IsDir = %q, %v; want /sys/devices/system/cpu, true", rd.Path(), rd.IsDir())
	}
}
