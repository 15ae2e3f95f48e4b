package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
)

// lowerTree fills dir with the lower layer testdata/c/overlay.c changes.
func lowerTree(t *testing.T, dir string) {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), 100000/16)
	files := map[string]string{
		"file.txt": "lower data\n", "big.bin": string(big), "keep.txt": "keep\n", "rm.txt": "rm\n",
		"x.txt": "x\n", "y.txt": "y\n", "hard.txt": "hard\n", "small.txt": "small\n",
		"dir/a.txt": "a\n", "dir/sub/b.txt": "b\n", "dots/in.txt": "in\n",
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, filepath.Dir(name)), filepath.Base(name), content)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// mountOverlay mounts a real overlayfs over lower (Linux's, for the native
// run) and returns its mount point; it is unmounted when t ends.
func mountOverlay(t *testing.T, lower string) string {
	t.Helper()
	base := t.TempDir()
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=off,index=off,metacopy=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		prereq.Missing(t, "mount -t overlay (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	return merged
}

// TestOverlayAgainstLinux runs testdata/c/overlay.c natively on Linux's
// overlayfs over a tree, and under snap run on the sandbox's overlay root
// over a copy of the tree: same output, and the copy on the host is what
// it was.
func TestOverlayAgainstLinux(t *testing.T) {
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			t.Parallel()
			bin := program(t, lc, "overlay")
			nativeLower, snapLower := t.TempDir(), t.TempDir()
			lowerTree(t, nativeLower)
			lowerTree(t, snapLower)
			merged := mountOverlay(t, nativeLower)
			native := execute(t, []string{bin, merged}, spec{}, t.TempDir())
			if native.status != 0 {
				t.Fatalf("native overlay: status %d, stderr %q", native.status, native.stderr)
			}
			before := hashTree(t, snapLower)
			got := execute(t, []string{snap(t), "run", "--", bin, snapLower}, spec{}, t.TempDir())
			if got.status != 0 || got.stdout != native.stdout {
				t.Errorf("snap run overlay: status %d, stderr %q; stdout differs from native: %s", got.status, got.stderr, diff(native.stdout, got.stdout))
			}
			if after := hashTree(t, snapLower); after != before {
				t.Errorf("the lower tree on the host changed under snap run")
			}
			ro := execute(t, []string{snap(t), "run", "--read-only", "--", bin, snapLower}, spec{}, t.TempDir())
			if !bytes.Contains([]byte(ro.stdout), []byte("write file.txt: EROFS")) {
				t.Errorf("snap run --read-only overlay: stdout lacks the EROFS of a write:\n%s", ro.stdout)
			}
		})
	}
}

// TestToolsInOverlay runs tools that write next to their inputs in the
// overlay root: gcc compiles and links a program that then runs, make -j2
// builds a tiny project, tar x then tar c round-trips a tree, git commits.
// The host directory holding the inputs is what it was.
func TestToolsInOverlay(t *testing.T) {
	for _, tool := range []string{"gcc", "make", "tar", "git"} {
		prereq.Binary(t, tool)
	}
	tests := []struct {
		name   string
		files  map[string]string
		script string
		want   string
	}{
		{"gcc", map[string]string{"hello.c": "#include <stdio.h>\nint main(void) { puts(\"built inside\"); return 0; }\n"},
			"gcc -O1 -o hello hello.c && ./hello", "built inside\n"},
		{"make -j2", map[string]string{
			"Makefile": "prog: a.o b.o\n\tgcc -o $@ a.o b.o\n%.o: %.c\n\tgcc -c -o $@ $<\n",
			"a.c":      "int b(void);\nint main(void) { return b() - 42; }\n",
			"b.c":      "int b(void) { return 42; }\n",
		}, "make -s -j2 && ./prog && echo made", "made\n"},
		{"tar", map[string]string{"src/a": "alpha\n", "src/d/b": "beta\n"},
			"tar cf one.tar -C src . && mkdir out && tar xf one.tar -C out && tar cf two.tar -C out . && " +
				"cmp one.tar two.tar && cat out/d/b", "beta\n"},
		{"git", map[string]string{"f": "first\n"},
			"git init -q r && cp f r/ && cd r && git add f && git -c user.email=s@x -c user.name=s commit -qm one && " +
				"git log --format=%s && git status --short | wc -l", "one\n0\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tc.files {
				writeFile(t, filepath.Join(dir, filepath.Dir(name)), filepath.Base(name), content)
			}
			before := hashTree(t, dir)
			s := spec{env: []string{"HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1"}}
			got := execute(t, []string{snap(t), "run", "--", "/bin/sh", "-c", tc.script}, s, dir)
			if got.status != 0 || got.stdout != tc.want {
				t.Errorf("%s: status %d, stdout %q, stderr %q; want status 0, stdout %q", tc.name, got.status, got.stdout, got.stderr, tc.want)
			}
			if hashTree(t, dir) != before {
				t.Errorf("%s changed the host directory", tc.name)
			}
		})
	}
}

// TestOverlayEscapes: a shell in the sandbox tries to reach host files
// through the overlay root: writes through symlinks (relative, absolute,
// climbing with ".."), through a hard link made to a lower file, through
// /proc/self/root (a magic link to the root, so the write lands in the
// overlay like the others), a directory moved (EXDEV, so mv copies it),
// removals, chmod and touch. Inside, the changes show; on the host both
// directories are byte for byte what they were.
func TestOverlayEscapes(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		prereq.Missing(t, "%s (Debian package busybox-static): %v", busyboxPath, err)
	}
	d, e := t.TempDir(), t.TempDir()
	writeFile(t, d, "f", "in d\n")
	writeFile(t, e, "target", "target\n")
	writeFile(t, filepath.Join(e, "sub"), "deep", "deep\n")
	before := hashTree(t, d) + hashTree(t, e)
	script := strings.Join([]string{
		"cd " + d,
		"ln -s " + e + "/target abs && echo via-abs >> abs",
		"ln -s ../" + filepath.Base(e) + "/sub/deep rel && echo via-rel >> rel",
		"ln -s /../../../.." + e + "/target climb && echo via-climb >> climb",
		"ln " + e + "/target hard && echo via-hard >> hard",
		"echo via-proc >> /proc/self/root" + e + "/target",
		"echo new > ../" + filepath.Base(e) + "/new",
		"mv " + e + "/sub " + d + "/moved", // EXDEV: mv copies
		"chmod 000 " + e + "/target && touch -d 2001-01-01 " + e,
		"rm -f f && echo changed > f",
		"cat " + e + "/target moved/deep; ls " + e,
	}, "\n")
	got := execute(t, []string{snap(t), "run", "--", busyboxPath, "sh", "-c", script}, spec{}, d)
	want := "target\nvia-abs\nvia-climb\nvia-hard\nvia-proc\ndeep\nvia-rel\nnew\ntarget\n"
	if got.status != 0 || got.stdout != want {
		t.Errorf("status %d, stdout %q, stderr %q; want status 0, stdout %q", got.status, got.stdout, got.stderr, want)
	}
	if hashTree(t, d)+hashTree(t, e) != before {
		t.Errorf("the host directories changed")
	}
}

// TestVolumes: a shell writes, renames and links in a bind mount (-v),
// which reach the host directory, while symlinks and ".." stay inside it
// and a rename out of it is EXDEV (mv then copies the file into the
// overlay root and removes it from the volume, leaving the host's tree
// outside the volume alone); a :ro volume is read-only; statfs and
// /proc/self/mounts show it.
func TestVolumes(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		prereq.Missing(t, "%s (Debian package busybox-static): %v", busyboxPath, err)
	}
	vol, ro, outside := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, vol, "in.txt", "from the host\n")
	writeFile(t, ro, "ro.txt", "read only\n")
	writeFile(t, outside, "secret", "secret\n")
	for name, target := range map[string]string{"abs": "/secret", "climb": "../../../../../" + outside + "/secret"} {
		if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	outsideBefore := hashTree(t, outside)
	script := strings.Join([]string{
		"cd /vol && echo written > new.txt && mkdir d && mv new.txt d/moved && ln d/moved hard",
		"echo via-abs > abs; (echo via-climb > climb) 2>/dev/null || echo climb stays inside",
		"cat " + outside + "/secret",
		"grep -c ' /vol ' /proc/self/mounts",
		"cat /vol/../vol/./in.txt",
		"(echo x > /ro/new) 2>/dev/null || echo ro refused",
		"cat /ro/ro.txt",
		"ln /vol/in.txt /outside 2>/dev/null || echo link across mounts refused",
		"echo moving > /vol/r.txt && mv /vol/r.txt /r-out && cat /r-out && ls /vol/r.txt 2>/dev/null || echo moved out by a copy",
	}, "\n")
	got := execute(t, []string{snap(t), "run", "-v", vol + ":/vol", "-v", ro + ":/ro:ro", "--", busyboxPath, "sh", "-c", script}, spec{}, vol)
	want := "climb stays inside\nsecret\n1\nfrom the host\nro refused\nread only\nlink across mounts refused\nmoving\nmoved out by a copy\n"
	if got.status != 0 || got.stdout != want {
		t.Errorf("status %d, stdout %q, stderr %q; want status 0, stdout %q", got.status, got.stdout, got.stderr, want)
	}
	for name, want := range map[string]string{"d/moved": "written\n", "hard": "written\n", "secret": "via-abs\n", "in.txt": "from the host\n"} {
		if b, err := os.ReadFile(filepath.Join(vol, name)); string(b) != want {
			t.Errorf("host %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if hashTree(t, outside) != outsideBefore {
		t.Errorf("the directory outside the volume changed")
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); !os.IsNotExist(err) {
		t.Errorf("a file appeared in the :ro volume: %v", err)
	}
	for _, p := range []string{filepath.Join(vol, "r.txt"), "/r-out"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("host %s after the move out of the volume: %v, want it absent", p, err)
		}
	}
}
