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
