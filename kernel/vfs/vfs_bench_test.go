package vfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkOpenReadClose opens a small host file through the root, reads it
// and closes it: the work behind one `cat` of a small file. Baseline: the
// same on the host with os.ReadFile, measured in the same run.
func BenchmarkOpenReadClose(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "f"), make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	root, err := OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	fs := NewFS(root)
	buf := make([]byte, 8192)
	b.Run("vfs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := fs.OpenAt(nil, "/etc/f", unix.O_RDONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := f.Read(nil, buf); n != 4096 || err != nil {
				b.Fatalf("Read = %d, %v", n, err)
			}
			f.DecRef()
		}
	})
	b.Run("host-baseline", func(b *testing.B) {
		b.ReportAllocs()
		p := filepath.Join(dir, "etc", "f")
		for b.Loop() {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := unix.Read(fd, buf); n != 4096 || err != nil {
				b.Fatalf("Read = %d, %v", n, err)
			}
			unix.Close(fd)
		}
	})
}

// BenchmarkPipe moves 4 KiB through an in-sentry pipe; baseline: a host
// pipe(2) with write(2)/read(2).
func BenchmarkPipe(b *testing.B) {
	msg := make([]byte, 4096)
	buf := make([]byte, 4096)
	b.Run("vfs", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		r, w := NewPipe(0)
		defer r.DecRef()
		defer w.DecRef()
		for b.Loop() {
			w.Write(nil, msg)
			r.Read(nil, buf)
		}
	})
	b.Run("host-baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		for b.Loop() {
			unix.Write(p[1], msg)
			unix.Read(p[0], buf)
		}
	})
}

// linkedTree builds, under a new directory, the layout of a merged-/usr
// distribution that a dynamically linked program's start walks: /lib,
// /lib64 and /bin are symlinks into /usr, the loader's name is a symlink
// again, and the files are regular files of a few KiB. A program of
// usr/lib/jvm/jdk is also reached through a symlink deeper down
// (usr/lib/jvm/default), as alternatives are.
func linkedTree(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/bin", "etc", "usr/lib/jvm/jdk/bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, f := range []string{"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/bin/true", "etc/ld.so.cache", "usr/lib/jvm/jdk/bin/java"} {
		if err := os.WriteFile(filepath.Join(dir, f), make([]byte, 4096), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"lib":                            "usr/lib",
		"lib64":                          "usr/lib64",
		"bin":                            "usr/bin",
		"usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"usr/lib/jvm/default":            "jdk",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// BenchmarkOverlayOpenLinked opens, for reading, and closes host files
// through the overlay root by the paths a dynamically linked program's
// start opens them (execve of /bin/true, its loader, the loader's cache
// and libc), each through symlinks of the lower layer, and a program
// behind a symlink three directories down. Baseline: the same opens on
// the host, measured in the same run.
func BenchmarkOverlayOpenLinked(b *testing.B) {
	dir := linkedTree(b)
	root, err := OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	if err := root.Mounts().MountOverlay(64 << 20); err != nil {
		b.Fatal(err)
	}
	fs := NewFS(root)
	paths := []string{"/bin/true", "/lib64/ld-linux-x86-64.so.2", "/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/jvm/default/bin/java"}
	for _, p := range paths {
		b.Run("vfs"+p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f, err := fs.OpenAt(nil, p, unix.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				f.DecRef()
			}
		})
	}
	for _, p := range paths {
		b.Run("host-baseline"+p, func(b *testing.B) {
			b.ReportAllocs()
			hp := filepath.Join(dir, p)
			for b.Loop() {
				fd, err := unix.Open(hp, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		})
	}
}
